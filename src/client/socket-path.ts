/** Where machinad listens: its API socket and machina-oci's front-end socket (no other imports: short-lived commands load this first). */
import { machinaEnv } from "../config.ts";

export const DEFAULT_SOCKET = "/run/machina/api.sock";

export function apiSocketPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_API_SOCKET") ?? DEFAULT_SOCKET;
}

/** machinad's socket for machina-oci's front end: $MACHINA_OCI_SOCKET, else oci.sock beside the API socket (native/oci-front.c reads the same). */
export function ociSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_OCI_SOCKET") ?? `${apiSocket.slice(0, Math.max(apiSocket.lastIndexOf("/"), 0))}/oci.sock`;
}
