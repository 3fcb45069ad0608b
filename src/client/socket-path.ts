/** Where machinad listens: its API socket and the front ends' sockets (machina-oci, machina-nspawn) (no other imports: short-lived commands load this first). */
import { machinaEnv } from "../config.ts";

export const DEFAULT_SOCKET = "/run/machina/api.sock";

export function apiSocketPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_API_SOCKET") ?? DEFAULT_SOCKET;
}

/** machinad's socket for machina-oci's front end: $MACHINA_OCI_SOCKET, else oci.sock beside the API socket (native/front.c reads the same). */
export function ociSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_OCI_SOCKET") ?? `${apiSocket.slice(0, Math.max(apiSocket.lastIndexOf("/"), 0))}/oci.sock`;
}

/** machinad's socket for machina-nspawn's front end: $MACHINA_NSPAWN_SOCKET, else nspawn.sock beside the API socket (native/front.c reads the same). */
export function nspawnSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_NSPAWN_SOCKET") ?? `${apiSocket.slice(0, Math.max(apiSocket.lastIndexOf("/"), 0))}/nspawn.sock`;
}
