/**
 * Which MachineService a command uses: machinad's API when a daemon answers on its socket
 * (MACHINA_API_SOCKET, default /run/machina/api.sock), else the core in this process — with
 * identical results either way. MACHINA_NO_DAEMON=1 forces the core. Without a socket file the
 * check is one lstat; with one, one request (/v1/version).
 */
import { machinaEnv } from "../config.ts";
import { LocalMachineService } from "../api/local-service.ts";
import type { MachineService } from "../api/service.ts";
import type { Host } from "../host/host.ts";
import type { Paths } from "../paths.ts";
import { apiSocketPath, MachinaClient } from "./client.ts";

export async function selectMachineService(host: Host, paths: Paths, env: Readonly<Record<string, string | undefined>>): Promise<MachineService> {
  if (!machinaEnv(env, "MACHINA_NO_DAEMON")) {
    const socket = apiSocketPath(env);
    if (host.lstat(socket) === "socket") {
      const client = new MachinaClient(socket);
      if (await client.ping()) return client;
    }
  }
  return new LocalMachineService(host, paths, env);
}
