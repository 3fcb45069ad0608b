/**
 * Which service a command uses: machinad's API when a daemon answers on its socket
 * (MACHINA_API_SOCKET, default /run/machina/api.sock), else the core in this process — with
 * identical results either way. MACHINA_NO_DAEMON=1 forces the core. Without a socket file the
 * check is one lstat; with one, one request (/v1/version).
 */
import { machinaEnv } from "../config.ts";
import type { ImageService } from "../api/image-service.ts";
import type { MachineService } from "../api/service.ts";
import type { Host } from "../host/host.ts";
import type { Paths } from "../paths.ts";
import type { MachinaClient } from "./client.ts";
import { apiSocketPath } from "./socket-path.ts";

type Env = Readonly<Record<string, string | undefined>>;

// The client and the core are loaded only when chosen (dynamic imports): a short-lived command
// pays for the modules of the side it uses, not both (the client's response schemas alone are ~5 ms).

/** The client of a machinad that answers, or undefined. */
export async function daemonClient(host: Host, env: Env): Promise<MachinaClient | undefined> {
  if (machinaEnv(env, "MACHINA_NO_DAEMON")) return undefined;
  const socket = apiSocketPath(env);
  if (host.lstat(socket) !== "socket") return undefined;
  const { MachinaClient } = await import("./client.ts");
  const client = new MachinaClient(socket);
  return (await client.ping()) ? client : undefined;
}

export async function selectMachineService(host: Host, paths: Paths, env: Env): Promise<MachineService> {
  return (await daemonClient(host, env)) ?? new (await import("../api/local-service.ts")).LocalMachineService(host, paths, env);
}

export async function selectImageService(host: Host, paths: Paths, env: Env): Promise<ImageService> {
  return (await daemonClient(host, env)) ?? new (await import("../api/image-service.ts")).LocalImageService(host, paths, env);
}
