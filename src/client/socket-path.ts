/** Where machinad listens: its API socket and the front ends' sockets (machina-oci, machina-nspawn, machinactl) (no other imports: short-lived commands load this first). */
import { machinaEnv } from "../config.ts";

export const DEFAULT_SOCKET = "/run/machina/api.sock";

export function apiSocketPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_API_SOCKET") ?? DEFAULT_SOCKET;
}

/** A front end's socket: $VARIABLE, else NAME beside the API socket (native/front.c reads the same). */
function frontSocketPath(
  apiSocket: string,
  env: Readonly<Record<string, string | undefined>>,
  variable: "MACHINA_OCI_SOCKET" | "MACHINA_NSPAWN_SOCKET" | "MACHINA_MACHINACTL_SOCKET",
  name: string,
): string {
  return machinaEnv(env, variable) ?? `${apiSocket.slice(0, Math.max(apiSocket.lastIndexOf("/"), 0))}/${name}`;
}

/** machinad's socket for machina-oci's front end. */
export function ociSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return frontSocketPath(apiSocket, env, "MACHINA_OCI_SOCKET", "oci.sock");
}

/** machinad's socket for machina-nspawn's front end. */
export function nspawnSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return frontSocketPath(apiSocket, env, "MACHINA_NSPAWN_SOCKET", "nspawn.sock");
}

/** machinad's socket for machinactl's front end. */
export function machinactlSocketPath(apiSocket: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  return frontSocketPath(apiSocket, env, "MACHINA_MACHINACTL_SOCKET", "machinactl.sock");
}
