/**
 * machinad: the optional daemon. Serves the machine core over REST on a Unix socket
 * (/run/machina/api.sock, env MACHINA_API_SOCKET), adopts running machines, starts enabled
 * ones, restarts them per policy. Containers never depend on it: they run under their own
 * supervisors in their own sessions; killing machinad (even with SIGKILL) leaves them running,
 * and the next machinad finds them in the registry.
 *
 * Access: root only. Bun.serve does not expose the peer's credentials (SO_PEERCRED), so the
 * socket is protected by the file system: the socket is created 0600 (under umask 0177, no
 * window) and owned by root, in a directory made 0700 — connect(2) needs write permission on
 * the socket and search permission on the directory, which only root has.
 *
 *   machinad [--socket=PATH] [--restart=no|on-failure|always] [--no-autostart]
 *   machinad register NAME     register a running machine with systemd-machined (unit's ExecStartPost)
 */
import { dirname } from "node:path";
import { LocalMachineService } from "../api/local-service.ts";
import { MachinaError, renderError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { LinuxHost } from "../host/linux.ts";
import { readState } from "../machine/registry.ts";
import { registerWithMachined } from "../machine/systemd.ts";
import { paths, VERSION } from "../paths.ts";
import { sweepLeftovers } from "../runtime/sweep.ts";
import { apiSocketPath, MachinaClient } from "../client/client.ts";
import { err, out } from "../cli/output.ts";
import { createApp } from "./app.ts";
import { Supervisor, type RestartPolicy } from "./supervise.ts";

const PROG = "machinad";

const USAGE = `${PROG} [OPTIONS...]
${PROG} register NAME

The optional machina daemon: machinectl's machine verbs as a REST API on a Unix socket
(root only), start of enabled machines, restart per policy. Containers do not depend on it.

Options:
  -h --help                 Show this help
     --version              Show the version
     --socket=PATH          Socket path (default $MACHINA_API_SOCKET or /run/machina/api.sock)
     --restart=POLICY       no (default), on-failure, always; exit status 133 always restarts
     --no-autostart         Do not start enabled machines

Commands:
  register NAME             Register running machine NAME with systemd-machined
`;

function log(event: string, fields: Record<string, unknown> = {}): void {
  err(JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + "\n");
}

export async function main(argv: string[]): Promise<number> {
  try {
    let socket = apiSocketPath();
    let policy: RestartPolicy = (process.env["MACHINA_RESTART"] as RestartPolicy | undefined) ?? "no";
    let autostart = true;
    const rest: string[] = [];
    for (const a of argv) {
      if (a === "-h" || a === "--help") {
        out(USAGE);
        return 0;
      } else if (a === "--version") {
        out(`${PROG} ${VERSION}\n`);
        return 0;
      } else if (a.startsWith("--socket=")) socket = a.slice(9);
      else if (a.startsWith("--restart=")) policy = a.slice(10) as RestartPolicy;
      else if (a === "--no-autostart") autostart = false;
      else if (a.startsWith("-")) throw new MachinaError("E_USAGE", `unknown option ${a}`, {}, `see ${PROG} --help`);
      else rest.push(a);
    }
    if (!["no", "on-failure", "always"].includes(policy)) throw new MachinaError("E_USAGE", `invalid --restart=${policy}: expected no, on-failure or always`);
    if (rest[0] === "register") {
      if (rest.length !== 2) throw new MachinaError("E_USAGE", "usage: machinad register NAME");
      return await register(rest[1]!);
    }
    if (rest.length > 0) throw new MachinaError("E_USAGE", `unknown command "${rest[0]}"`, {}, `see ${PROG} --help`);
    return await serve(socket, policy, autostart);
  } catch (error) {
    err(renderError(PROG, error) + "\n");
    return 1;
  }
}

async function register(name: string): Promise<number> {
  const host = new LinuxHost();
  const p = paths(host.env());
  // By hand (machina-nspawn registers by itself); allow a short grace for a container just started.
  for (let i = 0; i < 100; i++) {
    const text = host.readFile(`${p.stateDir}/machines/${name}/state.json`);
    const state = readState(host, p.stateDir, name);
    if (text !== undefined && state !== undefined) {
      const raw = JSON.parse(text) as { uuid?: string };
      await registerWithMachined(host, { name, uuid: raw.uuid ?? "", leader: state.leader, root: state.root });
      return 0;
    }
    await host.sleep(20);
  }
  throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is running`, { machine: name });
}

/** Make the socket's directory root-only, and refuse to start next to a live daemon. */
async function prepareSocket(host: Host, socket: string): Promise<void> {
  const dir = dirname(socket);
  host.mkdirp(dir, 0o700);
  host.chmod(dir, 0o700);
  const st = host.stat(dir, true);
  if (st?.uid !== process.getuid!()) throw new MachinaError("E_INVALID", `socket directory "${dir}" is not owned by this user`, { path: dir });
  if (host.stat(socket, true) !== undefined) {
    if (await new MachinaClient(socket).ping(1000)) throw new MachinaError("E_BUSY", `another machinad is already serving "${socket}"`, { path: socket });
    host.unlink(socket); // stale: its daemon died
  }
}

async function serve(socket: string, policy: RestartPolicy, autostart: boolean): Promise<number> {
  const host = new LinuxHost();
  const p = paths(host.env());
  const service = new LocalMachineService(host, p);
  await prepareSocket(host, socket);
  for (const name of sweepLeftovers(host, p.stateDir)) log("swept", { machine: name, why: "its supervisor was gone" });
  const supervisor = new Supervisor(service, policy, log);
  const { app, jobs } = createApp({
    service,
    onStarted: (name) => supervisor.started(name),
    onStopped: (name) => supervisor.stopped(name),
  });

  const oldUmask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ unix: socket, fetch: app.fetch, maxRequestBodySize: 1024 * 1024 });
  } finally {
    process.umask(oldUmask);
  }
  host.chmod(socket, 0o600);
  log("listening", { socket, pid: process.pid, version: VERSION, restart: policy, stateDir: p.stateDir });

  await supervisor.boot(autostart);
  log("ready", { machines: service.runningNames().length });

  return await new Promise<number>((resolve) => {
    const shutdown = async (signal: string) => {
      log("stopping", { signal });
      supervisor.stop();
      await jobs.cancelAll();
      await server.stop(true);
      try {
        host.unlink(socket);
      } catch {
        // gone
      }
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
  });
}
