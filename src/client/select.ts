/**
 * Which service a command uses: machinad's API when a daemon answers on its socket
 * (MACHINA_API_SOCKET, default /run/machina/api.sock), else the core in this process — with
 * identical results either way. MACHINA_NO_DAEMON=1 forces the core. Without a socket file the
 * check is one lstat; with one, one request (/v1/version).
 */
import { machinaEnv } from "../config.ts";
import { type ImageService, LocalImageService } from "../api/image-service.ts";
import { LocalMachineService } from "../api/local-service.ts";
import type { MachineService } from "../api/service.ts";
import type { Host } from "../host/host.ts";
import type { Paths } from "../paths.ts";
import { apiSocketPath, MachinaClient } from "./client.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** The client of a machinad that answers, or undefined. */
async function daemon(host: Host, env: Env): Promise<MachinaClient | undefined> {
  if (machinaEnv(env, "MACHINA_NO_DAEMON")) return undefined;
  const socket = apiSocketPath(env);
  if (host.lstat(socket) !== "socket") return undefined;
  const client = new MachinaClient(socket);
  return (await client.ping()) ? client : undefined;
}

export async function selectMachineService(host: Host, paths: Paths, env: Env): Promise<MachineService> {
  return (await daemon(host, env)) ?? new LocalMachineService(host, paths, env);
}

export async function selectImageService(host: Host, paths: Paths, env: Env): Promise<ImageService> {
  return (await daemon(host, env)) ?? new LocalImageService(host, paths, env);
}
