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
import { machinaEnv } from "../config.ts";
import { dirname } from "node:path";
import { LocalImageService } from "../api/image-service.ts";
import { LocalMachineService } from "../api/local-service.ts";
import { MachinaError, renderError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { LinuxHost } from "../host/linux.ts";
import { readState } from "../machine/registry.ts";
import { registerWithMachined } from "../machine/systemd.ts";
import { paths, VERSION } from "../paths.ts";
import { sweepLeftovers } from "../runtime/sweep.ts";
import { provideZod } from "../lazy-zod.ts";
import { z } from "zod";
import { apiSocketPath, MachinaClient } from "../client/client.ts";
import { err, out } from "../cli/output.ts";
import { createApp } from "./app.ts";
import { Supervisor, type RestartPolicy } from "./supervise.ts";
import { getopt, type ArgKind } from "../settings/getopt.ts";
import { optionSyntax, renderHelpEntry, wrap } from "../settings/option-help.ts";
import { parseChoice } from "../settings/values.ts";

// The API's schemas load zod's ES build anyway: the lazily built ones use it too, not a second (CommonJS) copy (lazy-zod.ts).
provideZod(z);

const PROG = "machinad";

interface DaemonOptions {
  help: boolean;
  version: boolean;
  socket: string;
  policy: RestartPolicy;
  autostart: boolean;
}

/** machinad's options, declared once: getopt, --help and the man page come from here. */
export const MACHINAD_TABLE: ReadonlyArray<{
  id: string;
  long: string;
  short?: string;
  arg: ArgKind;
  argName?: string;
  help: string;
  apply(o: DaemonOptions, v: string): void;
}> = [
  { id: "help", long: "help", short: "h", arg: "none", help: "Show this help", apply: (o) => void (o.help = true) },
  { id: "version", long: "version", arg: "none", help: "Show the version", apply: (o) => void (o.version = true) },
  {
    id: "socket",
    long: "socket",
    arg: "required",
    argName: "PATH",
    help: "Socket path (default $MACHINA_API_SOCKET or /run/machina/api.sock)",
    apply: (o, v) => void (o.socket = v),
  },
  {
    id: "restart",
    long: "restart",
    arg: "required",
    argName: "POLICY",
    help: "no (default), on-failure, always; exit status 133 always restarts",
    apply: (o, v) => void (o.policy = parseChoice(v, RESTART_POLICIES, { flag: "--restart" })),
  },
  { id: "no-autostart", long: "no-autostart", arg: "none", help: "Do not start enabled machines", apply: (o) => void (o.autostart = false) },
];
const RESTART_POLICIES = ["no", "on-failure", "always"] as const;

export const MACHINAD_DESCRIPTION =
  "The optional machina daemon: machinectl's machine verbs as a REST API on a Unix socket (root only), start of enabled machines, restart per policy. Containers do not depend on it.";
export const MACHINAD_COMMANDS = [{ syntax: "register NAME", text: "Register running machine NAME with systemd-machined" }];

const USAGE =
  [
    `${PROG} [OPTIONS...]`,
    `${PROG} register NAME`,
    "",
    ...wrap(MACHINAD_DESCRIPTION, 92),
    "",
    "Options:",
    ...MACHINAD_TABLE.map((r) => renderHelpEntry({ syntax: optionSyntax(r), text: r.help })),
    "",
    "Commands:",
    ...MACHINAD_COMMANDS.map((c) => renderHelpEntry(c)),
  ].join("\n") + "\n";

function log(event: string, fields: Record<string, unknown> = {}): void {
  err(JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + "\n");
}

export async function main(argv: string[]): Promise<number> {
  try {
    const o: DaemonOptions = { help: false, version: false, socket: apiSocketPath(), policy: "no", autostart: true };
    const envPolicy = machinaEnv(process.env, "MACHINA_RESTART");
    if (envPolicy !== undefined) o.policy = parseChoice(envPolicy, RESTART_POLICIES, { flag: "MACHINA_RESTART" });
    const { options, operands: rest } = getopt(argv, MACHINAD_TABLE, { permute: true });
    for (const { id, value } of options) MACHINAD_TABLE.find((r) => r.id === id)!.apply(o, value ?? "");
    if (o.help) {
      out(USAGE);
      return 0;
    }
    if (o.version) {
      out(`${PROG} ${VERSION}\n`);
      return 0;
    }
    const { socket, policy, autostart } = o;
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
    const state = readState(host, p.stateDir, name);
    if (state !== undefined) {
      await registerWithMachined(host, { name, uuid: state.uuid, leader: state.leader, root: state.root });
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
    images: new LocalImageService(host, p),
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
