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
 * With --listen=ADDR:PORT it serves the same API over HTTP (HTTPS with --tls-cert/--tls-key) on
 * TCP too, where every request needs the token of STATE_DIR/web.token or a login session
 * (web-auth.ts).
 *
 *   machinad [--socket=PATH] [--listen=ADDR:PORT [--tls-cert=FILE --tls-key=FILE]] [--restart=no|on-failure|always] [--no-autostart]
 *   machinad --new-token       replace the web token and exit
 *   machinad register NAME     register a running machine with systemd-machined (unit's ExecStartPost)
 */
import { machinaEnv } from "../config.ts";
import { dirname, join } from "node:path";
import { LocalImageService } from "../api/image-service.ts";
import { LocalMachineService } from "../api/local-service.ts";
import { MachinaError, renderError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { LinuxHost } from "../host/linux.ts";
import { readState } from "../machine/registry.ts";
import { registerWithMachined } from "../machine/systemd.ts";
import { paths, REPO_ROOT, VERSION } from "../paths.ts";
import { Sampler } from "./samples.ts";
import { MAX_UPLOAD_BYTES } from "../api/routes.ts";
import { shellWebSocket } from "./shell-socket.ts";
import { listMachines, machineSample } from "../machine/machines.ts";
import { WebAssets } from "./web-assets.ts";
import { sweepLeftovers } from "../runtime/sweep.ts";
import { provideZod } from "../lazy-zod.ts";
import { z } from "zod";
import { MachinaClient } from "../client/client.ts";
import { apiSocketPath, machinactlSocketPath, nspawnSocketPath, ociSocketPath } from "../client/socket-path.ts";
import { serveNspawnDoor } from "./nspawn-door.ts";
import { serveMachinactlDoor } from "./machinactl-door.ts";
import { serveOciDoor } from "./oci-door.ts";
import { activatedDoors, LISTEN_VARIABLES, listenFds, startupErrno } from "./activation.ts";
import { inheritedSocketPaths } from "../host/listen-fds.ts";
import { setCloseOnExec } from "../host/libc.ts";
import { notifyServiceManager } from "../host/notify.ts";
import { err, out } from "../cli/output.ts";
import { createApp } from "./app.ts";
import { newToken, readToken, tokenPath } from "./token-file.ts";
import { guard, parseListen, Sessions } from "./web-auth.ts";
import { readFileSync } from "node:fs";
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
  listen?: { hostname: string; port: number };
  tlsCert?: string;
  tlsKey?: string;
  newToken: boolean;
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
  {
    id: "listen",
    long: "listen",
    arg: "required",
    argName: "ADDR:PORT",
    help: "Serve the API over TCP too (e.g. 127.0.0.1:8080, [::1]:8080), authenticated by the token in STATE_DIR/web.token",
    apply: (o, v) => void (o.listen = parseListen(v)),
  },
  {
    id: "tls-cert",
    long: "tls-cert",
    arg: "required",
    argName: "FILE",
    help: "With --listen: serve HTTPS with this certificate (PEM; needs --tls-key)",
    apply: (o, v) => void (o.tlsCert = v),
  },
  { id: "tls-key", long: "tls-key", arg: "required", argName: "FILE", help: "The private key of --tls-cert (PEM)", apply: (o, v) => void (o.tlsKey = v) },
  {
    id: "new-token",
    long: "new-token",
    arg: "none",
    help: "Replace the web token (STATE_DIR/web.token) with a new random one and exit",
    apply: (o) => void (o.newToken = true),
  },
  { id: "no-autostart", long: "no-autostart", arg: "none", help: "Do not start enabled machines", apply: (o) => void (o.autostart = false) },
];
const RESTART_POLICIES = ["no", "on-failure", "always"] as const;

export const MACHINAD_DESCRIPTION =
  "The optional machina daemon: machinectl's machine verbs as a REST API on a Unix socket (root only) and, with --listen, over HTTP(S) with a token, start of enabled machines, restart per policy. Containers do not depend on it.";
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

/** The service manager's notify socket (Type=notify; start-stop-daemon --notify-await), taken from the environment when main starts. */
let notifySocket: string | undefined;
let notifiedReady = false;

/**
 * Tell the service manager `state`. A failed STOPPING=1 is not logged: start-stop-daemon's socket
 * is gone once it has had READY=1 (src/machine/sysv.ts).
 */
function notify(state: string): void {
  const failed = notifyServiceManager(notifySocket, state);
  if (state.startsWith("READY=1")) notifiedReady = true;
  if (failed !== undefined && !state.startsWith("STOPPING=1")) log("notify-failed", { state: state.split("\n")[0], error: failed.message });
}

export async function main(argv: string[]): Promise<number> {
  // not passed on to anything machinad runs: a container it starts would forward its READY=1 to it (spec/build.ts)
  notifySocket = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  try {
    const o: DaemonOptions = { help: false, version: false, socket: apiSocketPath(), policy: "no", autostart: true, newToken: false };
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
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined))
      throw new MachinaError("E_USAGE", "--tls-cert and --tls-key go together: give both, or neither", {
        flag: o.tlsCert === undefined ? "--tls-key" : "--tls-cert",
      });
    if (o.tlsCert !== undefined && o.listen === undefined)
      throw new MachinaError("E_USAGE", "--tls-cert and --tls-key need --listen=ADDR:PORT", { flag: "--tls-cert" });
    if (o.newToken) {
      if (rest.length > 0) throw new MachinaError("E_USAGE", "--new-token takes no command");
      const path = tokenPath(paths(process.env).stateDir);
      newToken(new LinuxHost(), path);
      out(`${path}\n`);
      return 0;
    }
    if (rest[0] === "register") {
      if (rest.length !== 2) throw new MachinaError("E_USAGE", "usage: machinad register NAME");
      return await register(rest[1]!);
    }
    if (rest.length > 0) throw new MachinaError("E_USAGE", `unknown command "${rest[0]}"`, {}, `see ${PROG} --help`);
    return await serve(socket, policy, autostart, o);
  } catch (error) {
    const message = renderError(PROG, error);
    err(message + "\n");
    // a service manager waiting for READY=1 learns of the failure now (start-stop-daemon would wait out its timeout)
    if (!notifiedReady) notify(`ERRNO=${startupErrno(error)}\nSTATUS=${message.split("\n")[0]}`);
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

/**
 * The socket's directory: ours and writable by nobody else (made 0755 when missing, as machina's
 * state directory, which it is by default: /run/machina — the shared dnsmasq of booted containers'
 * veths re-reads its files there as "nobody"; the state directory is made 0755 again, any other
 * existing one only loses group and other write).
 * Each socket is 0600, which is what keeps other users out (connect(2) needs write on it). Refuses
 * to start next to a live daemon.
 */
async function prepareSocket(host: Host, socket: string, stateDir: string): Promise<void> {
  const dir = dirname(socket);
  host.mkdirp(dir, 0o755);
  const st = host.stat(dir, true);
  if (st?.uid !== process.getuid!()) throw new MachinaError("E_INVALID", `socket directory "${dir}" is not owned by this user`, { path: dir });
  // the state directory's mode is machina's (0755; an older machinad made it 0700); another one only loses write
  const mode = dir === stateDir ? 0o755 : st.mode & ~0o022;
  if (mode !== st.mode) host.chmod(dir, mode);
  if (host.stat(socket, true) !== undefined) {
    if (await new MachinaClient(socket).ping(1000)) throw new MachinaError("E_BUSY", `another machinad is already serving "${socket}"`, { path: socket });
    host.unlink(socket); // stale: its daemon died
  }
}

/** The TCP listener's TLS files, read now: a missing or unreadable one is refused before anything starts. */
function tlsFiles(o: DaemonOptions): { cert: string; key: string } | undefined {
  if (o.tlsCert === undefined || o.tlsKey === undefined) return undefined;
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch (e) {
      throw new MachinaError("E_INVALID", `${flag}: cannot read "${path}": ${(e as Error).message}`, { flag, path });
    }
  };
  return { cert: read("--tls-cert", o.tlsCert), key: read("--tls-key", o.tlsKey) };
}

async function serve(socket: string, policy: RestartPolicy, autostart: boolean, o: DaemonOptions): Promise<number> {
  // socket activation: read once, and not passed on to anything machinad runs (the variables
  // removed; the fds close-on-exec from now on — Bun's listen marks them so too, later, and its
  // spawn passes a child only the fds it is given), as the notify socket was (main)
  const passed = listenFds(process.env, process.pid);
  for (const v of LISTEN_VARIABLES) delete process.env[v];
  for (const fd of passed) setCloseOnExec(fd);
  const host = new LinuxHost();
  const ociSocket = ociSocketPath(socket, host.env());
  const nspawnSocket = nspawnSocketPath(socket, host.env());
  const machinactlSocket = machinactlSocketPath(socket, host.env());
  // the ones a service manager bound and passed (machinad.socket): served on its fds, left to it; checked before anything is made
  const doors = [ociSocket, nspawnSocket, machinactlSocket];
  const activated = activatedDoors(inheritedSocketPaths(passed), doors, socket);
  const p = paths(host.env());
  const service = new LocalMachineService(host, p);
  const tls = tlsFiles(o);
  const token = o.listen !== undefined ? tokenPath(p.stateDir) : undefined;
  if (token !== undefined) readToken(host, token); // made now if missing; a bad one is refused before anything starts
  await prepareSocket(host, socket, p.stateDir);
  for (const name of sweepLeftovers(host, p.stateDir)) log("swept", { machine: name, why: "its supervisor was gone" });
  const supervisor = new Supervisor(service, policy, log);
  const sampler = new Sampler({ machines: () => listMachines(service.ctx), sample: (m, now) => machineSample(host, m, now) });
  sampler.start();
  const { app, jobs } = createApp({
    service,
    web: new WebAssets(join(REPO_ROOT, "dist/web")),
    samples: sampler,
    images: new LocalImageService(host, p),
    onStarted: (name) => supervisor.started(name),
    onStopped: (name) => supervisor.stopped(name),
  });

  const websocket = shellWebSocket(log);
  const oldUmask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({ unix: socket, fetch: app.fetch, websocket, maxRequestBodySize: MAX_UPLOAD_BYTES });
  } finally {
    process.umask(oldUmask);
  }
  host.chmod(socket, 0o600);
  // the front ends of machina-oci, machina-nspawn and machinactl (native/front.c): their commands planned here, warm
  const frontSockets = doors.filter((path) => !activated.has(path));
  // the API socket was free: these are a dead daemon's
  for (const path of frontSockets) if (host.stat(path, true) !== undefined) host.unlink(path);
  const ociDoor = await serveOciDoor(ociSocket, log, activated.get(ociSocket));
  const nspawnDoor = await serveNspawnDoor(nspawnSocket, log, activated.get(nspawnSocket));
  const machinactlDoor = await serveMachinactlDoor(machinactlSocket, log, activated.get(machinactlSocket));
  for (const path of frontSockets) host.chmod(path, 0o600);
  const closeDoors = () => {
    ociDoor.close();
    nspawnDoor.close();
    machinactlDoor.close();
  };
  let web: ReturnType<typeof Bun.serve> | undefined;
  const sessions = new Sessions();
  if (o.listen !== undefined && token !== undefined) {
    const { hostname, port } = o.listen;
    const scheme = tls ? "https" : "http";
    const origin = `${scheme}://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
    const fetch = guard({ token: () => readToken(host, token), sessions, origin, secure: tls !== undefined }, app.fetch);
    try {
      web = Bun.serve({ hostname, port, fetch, websocket, maxRequestBodySize: MAX_UPLOAD_BYTES, ...(tls ? { tls } : {}) });
    } catch (e) {
      await server.stop(true);
      closeDoors();
      host.unlink(socket);
      for (const path of frontSockets) if (host.stat(path, true) !== undefined) host.unlink(path);
      throw new MachinaError("E_SYSTEM", `--listen: cannot listen on ${origin}: ${(e as Error).message}`, { flag: "--listen" });
    }
    log("listening-tcp", { url: origin, tokenFile: token });
  }
  log("listening", {
    socket,
    ociSocket,
    nspawnSocket,
    machinactlSocket,
    ...(activated.size > 0 ? { activated: [...activated.keys()] } : {}),
    pid: process.pid,
    version: VERSION,
    restart: policy,
    stateDir: p.stateDir,
  });

  await supervisor.boot(autostart);
  log("ready", { machines: service.runningNames().length });
  notify(`READY=1\nSTATUS=serving ${socket}\nMAINPID=${process.pid}`);

  return await new Promise<number>((resolve) => {
    const shutdown = async (signal: string) => {
      log("stopping", { signal });
      notify("STOPPING=1");
      supervisor.stop();
      sampler.stop();
      await jobs.cancelAll();
      await server.stop(true);
      await web?.stop(true);
      closeDoors();
      sessions.clear();
      for (const path of [socket, ...frontSockets])
        try {
          host.unlink(path);
        } catch {
          // gone
        }
      resolve(0);
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
  });
}
