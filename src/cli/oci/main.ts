/**
 * machina-oci: the runc command line (global flags, commands, exit status 1 with one message on
 * failure, JSON log lines for containerd's shim and conmon) over src/oci-runtime/. The commands
 * and their flags are declared once in COMMANDS; parsing and --help derive from it.
 */
import { HandOver } from "../../host/hand-over.ts";
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import { MachinaError, renderError } from "../../errors.ts";
import type { Host } from "../../host/host.ts";
import { LinuxHost } from "../../host/linux.ts";
import { paths, VERSION } from "../../paths.ts";
import { containerPids, deleteContainer, killContainer, pauseContainer, runCreateHooks, startContainer } from "../../oci-runtime/lifecycle.ts";
import { parseSignal } from "../../settings/values.ts";
import type { OciProcess } from "../../settings/oci-config.ts";
import { DEFAULT_ROOT, defaultRoot, listIds, OCI_VERSION, ociState, readState, status } from "../../oci-runtime/state.ts";
import { DEFAULT_PATH } from "../../spec/default-path.ts";
import { provideZod } from "../../lazy-zod.ts";
import { z } from "zod";

// Every command but --help/--version parses state.json or config.json: zod's ES build (lazy-zod.ts).
provideZod(z);

const PROG = "machina-oci";

interface Flag {
  name: string;
  short?: string;
  /** takes a value */
  value?: boolean;
  /** may be given more than once (values collected in order) */
  repeat?: boolean;
  help: string;
}

interface Command {
  name: string;
  usage: string;
  summary: string;
  flags: Flag[];
  minArgs: number;
  maxArgs: number;
  /** machinad's planner may run it (src/daemon/oci-door.ts); the others need their own process */
  resident?: boolean;
}

const BUNDLE: Flag = { name: "bundle", short: "b", value: true, help: "the bundle directory (default: the current directory)" };
const PID_FILE: Flag = { name: "pid-file", value: true, help: "write the container's init pid there" };
const CONSOLE_SOCKET: Flag = { name: "console-socket", value: true, help: "a Unix socket the pty master is sent to (process.terminal)" };
const NO_PIVOT: Flag = { name: "no-pivot", help: "accepted; machina always pivots (pivot_root)" };
const NO_NEW_KEYRING: Flag = { name: "no-new-keyring", help: "accepted; the session keyring is the caller's" };
const PRESERVE_FDS: Flag = { name: "preserve-fds", value: true, help: "only 0 is supported" };
const FORMAT: Flag = { name: "format", short: "f", value: true, help: "table or json" };

/** Every command, its flags and arguments: one declaration for parsing and --help. */
export const COMMANDS: readonly Command[] = [
  {
    name: "create",
    usage: "create [flags] ID",
    summary: "create a container: set up, the init waits for start",
    flags: [BUNDLE, PID_FILE, CONSOLE_SOCKET, NO_PIVOT, NO_NEW_KEYRING, PRESERVE_FDS],
    minArgs: 1,
    maxArgs: 1,
    resident: true,
  },
  { name: "start", usage: "start ID", summary: "start the user process of a created container", flags: [], minArgs: 1, maxArgs: 1, resident: true },
  {
    name: "run",
    usage: "run [flags] ID",
    summary: "create and start a container (and wait for it unless --detach)",
    flags: [
      BUNDLE,
      PID_FILE,
      CONSOLE_SOCKET,
      NO_PIVOT,
      NO_NEW_KEYRING,
      PRESERVE_FDS,
      { name: "detach", short: "d", help: "do not wait for the container" },
      { name: "keep", help: "do not delete the container after it exits" },
    ],
    minArgs: 1,
    maxArgs: 1,
  },
  {
    name: "exec",
    usage: "exec [flags] ID [COMMAND [ARG...]]",
    summary: "run a process in a running container (--process FILE, or COMMAND)",
    flags: [
      { name: "process", short: "p", value: true, help: "a runtime-spec process JSON file" },
      { name: "tty", short: "t", help: "a pty in the container" },
      { name: "detach", short: "d", help: "do not wait (the process is left to the caller)" },
      PID_FILE,
      CONSOLE_SOCKET,
      { name: "env", short: "e", value: true, repeat: true, help: "NAME=VALUE (repeatable)" },
      { name: "cwd", value: true, help: "working directory in the container" },
      { name: "user", short: "u", value: true, help: "UID[:GID]" },
      { name: "additional-gids", short: "g", value: true, repeat: true, help: "supplementary group (repeatable)" },
      { name: "cap", short: "c", value: true, repeat: true, help: "a capability of the process (repeatable)" },
      { name: "no-new-privs", help: "set no_new_privs" },
      { name: "ignore-paused", help: "exec into a paused container" },
      PRESERVE_FDS,
      { name: "process-label", value: true, help: "not supported (SELinux label of the process)" },
      { name: "apparmor", value: true, help: "not supported (no AppArmor)" },
      { name: "cgroup", value: true, help: "not supported (a sub-cgroup)" },
    ],
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
  },
  { name: "state", usage: "state ID", summary: "the container's state (runtime-spec JSON)", flags: [], minArgs: 1, maxArgs: 1, resident: true },
  {
    name: "kill",
    usage: "kill [--all] ID [SIGNAL]",
    summary: "send a signal (default SIGTERM) to the init (--all: every process)",
    flags: [{ name: "all", short: "a", help: "every process of the container" }],
    minArgs: 1,
    maxArgs: 2,
    resident: true,
  },
  {
    name: "delete",
    usage: "delete [--force] ID",
    summary: "delete a stopped container (--force: kill it first)",
    flags: [{ name: "force", short: "f", help: "kill a running container" }],
    minArgs: 1,
    maxArgs: 1,
    resident: true,
  },
  { name: "pause", usage: "pause ID", summary: "freeze every process of the container", flags: [], minArgs: 1, maxArgs: 1, resident: true },
  { name: "resume", usage: "resume ID", summary: "thaw a paused container", flags: [], minArgs: 1, maxArgs: 1, resident: true },
  { name: "ps", usage: "ps [--format table|json] ID", summary: "the container's processes", flags: [FORMAT], minArgs: 1, maxArgs: 1, resident: true },
  {
    name: "list",
    usage: "list [--format table|json] [--quiet]",
    summary: "the containers under --root",
    flags: [FORMAT, { name: "quiet", short: "q", help: "ids only" }],
    minArgs: 0,
    maxArgs: 0,
    resident: true,
  },
  {
    name: "update",
    usage: "update [--resources FILE|-] [flags] ID",
    summary: "new resource limits (linux.resources) for a running container",
    flags: [
      { name: "resources", short: "r", value: true, help: "linux.resources JSON (- for stdin)" },
      { name: "memory", value: true, help: "memory limit in bytes" },
      { name: "memory-swap", value: true, help: "memory+swap limit in bytes" },
      { name: "memory-reservation", value: true, help: "memory low mark in bytes" },
      { name: "cpu-shares", value: true, help: "relative CPU weight (2-262144)" },
      { name: "cpu-quota", value: true, help: "CPU microseconds per period" },
      { name: "cpu-period", value: true, help: "CPU period in microseconds" },
      { name: "cpuset-cpus", value: true, help: "CPUs" },
      { name: "cpuset-mems", value: true, help: "memory nodes" },
      { name: "pids-limit", value: true, help: "maximum number of tasks" },
    ],
    minArgs: 1,
    maxArgs: 1,
  },
  { name: "features", usage: "features", summary: "what this runtime supports (JSON, as runc features)", flags: [], minArgs: 0, maxArgs: 0 },
  {
    name: "spec",
    usage: "spec [--bundle DIR]",
    summary: "write a default config.json",
    flags: [BUNDLE, { name: "rootless", help: "accepted; not different" }],
    minArgs: 0,
    maxArgs: 0,
  },
];

const GLOBAL: readonly Flag[] = [
  { name: "root", value: true, help: `state directory (default $MACHINA_OCI_ROOT, else ${DEFAULT_ROOT})` },
  { name: "log", value: true, help: "append error messages to this file" },
  { name: "log-format", value: true, help: "text or json (the log file's lines)" },
  { name: "debug", help: "accepted" },
  { name: "systemd-cgroup", help: 'linux.cgroupsPath is "SLICE:PREFIX:NAME"' },
  { name: "rootless", value: true, help: "accepted (auto, true, false)" },
  { name: "criu", value: true, help: "accepted; checkpointing is not supported" },
];

type Values = Map<string, string | true | string[]>;

function parseFlags(args: string[], flags: readonly Flag[], stopAtOperand: boolean): { values: Values; rest: string[] } {
  const values: Values = new Map();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      rest.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      if (stopAtOperand) {
        rest.push(...args.slice(i));
        break;
      }
      rest.push(a);
      continue;
    }
    const long = a.startsWith("--");
    const body = a.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const flag = flags.find((f) => (long || name.length > 1 ? f.name === name : f.short === name) || f.short === name);
    if (flag === undefined) throw new MachinaError("E_USAGE", `flag provided but not defined: ${a}`, { flag: a });
    if (flag.value === true) {
      const v = eq >= 0 ? body.slice(eq + 1) : args[++i];
      if (v === undefined) throw new MachinaError("E_USAGE", `flag needs an argument: ${a}`, { flag: a });
      if (flag.repeat === true) values.set(flag.name, [...((values.get(flag.name) as string[] | undefined) ?? []), v]);
      else values.set(flag.name, v);
    } else {
      if (eq >= 0 && !["true", "false"].includes(body.slice(eq + 1))) throw new MachinaError("E_USAGE", `invalid boolean value for ${a}`, { flag: a });
      if (eq < 0 || body.slice(eq + 1) === "true") values.set(flag.name, true);
    }
  }
  return { values, rest };
}

function help(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `${PROG} [global flags] COMMAND [flags] ARGS`,
    "",
    "An OCI runtime (runc's command line) running machina's containers.",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    "",
    "Global flags:",
    ...GLOBAL.map((f) => `  --${f.name}${f.value ? " VALUE" : ""}  ${f.help}`),
    "  --version, -v  the version",
    "  --help, -h     this text",
    "",
  ].join("\n");
}

const str = (v: Values, k: string) => {
  const x = v.get(k);
  return typeof x === "string" ? x : undefined;
};
const list = (v: Values, k: string): string[] => {
  const x = v.get(k);
  return Array.isArray(x) ? x : [];
};

/** Where a command's output goes and where its relative paths start: this process, or a front end's (src/daemon/oci-door.ts). */
export interface OciIo {
  out(text: string): void;
  err(text: string): void;
  cwd: string;
  /** run inside machinad's planner: commands without `resident`, and hooks that must run in the caller's process, are refused with NeedsOwnProcess */
  resident: boolean;
}

export const processIo = (): OciIo => ({
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  cwd: process.cwd(),
  resident: false,
});

/** Thrown in the planner, before any effect, for what the full machina-oci must do in its own process. */
export class NeedsOwnProcess extends Error {}

async function waitInit(host: Host, root: string, id: string): Promise<number> {
  // `run`: we are the init's subreaper (set before create), so its status reaches us.
  const { waitpidBlocking } = await import("../../host/libc.ts");
  const st = readState(host, root, id);
  return waitpidBlocking(st.pid);
}

export async function main(argv: string[], host: Host = new LinuxHost(), io: OciIo = processIo()): Promise<number> {
  const out = io.out;
  const abs = (path: string | undefined) => (path === undefined ? undefined : resolve(io.cwd, path));
  let logFile: string | undefined;
  let logJson = false;
  try {
    if (argv.includes("--version") || argv.includes("-v") || argv[0] === "version") {
      out(`${PROG} version ${VERSION}\nspec: ${OCI_VERSION}\n`);
      return 0;
    }
    const g = parseFlags(argv, [...GLOBAL, { name: "help", short: "h", help: "" }], true);
    logFile = abs(str(g.values, "log"));
    logJson = str(g.values, "log-format") === "json";
    const fmt = str(g.values, "log-format");
    if (fmt !== undefined && fmt !== "text" && fmt !== "json")
      throw new MachinaError("E_USAGE", `--log-format "${fmt}": allowed are text and json`, { flag: "--log-format" });
    const [name, ...args] = g.rest;
    if (g.values.has("help") || name === undefined || name === "help") {
      out(help());
      return name === undefined && !g.values.has("help") ? 1 : 0;
    }
    const root = abs(str(g.values, "root")) ?? defaultRoot(host.env());
    if (io.resident && COMMANDS.find((c) => c.name === name)?.resident !== true) throw new NeedsOwnProcess(`the command "${name}" runs in its own process`);
    if (name === "_run-hooks") {
      await runCreateHooks(host, root, args[0]!, Number(args[1]));
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === name);
    if (cmd === undefined) throw new MachinaError("E_USAGE", `no such command: ${name}`, { value: name }, `${PROG} --help lists them`);
    const { values: v, rest } = parseFlags(args, [...cmd.flags, { name: "help", short: "h", help: "" }], name === "ps" || name === "exec");
    if (v.has("help")) {
      out(
        `${PROG} ${cmd.usage}\n\n${cmd.summary}\n\n${cmd.flags.map((f) => `  --${f.name}${f.short ? `, -${f.short}` : ""}${f.value ? " VALUE" : ""}  ${f.help}`).join("\n")}\n`,
      );
      return 0;
    }
    if (rest.length < cmd.minArgs || (rest.length > cmd.maxArgs && name !== "ps"))
      throw new MachinaError("E_USAGE", `${name}: expected ${cmd.usage.replace(/^\S+ /, "")}, got ${rest.length} arguments`);
    const id = rest[0]!;
    const p = paths(host.env());
    const preserve = str(v, "preserve-fds");
    if (preserve !== undefined && preserve !== "0")
      throw new MachinaError("E_UNSUPPORTED", `--preserve-fds=${preserve}: passing extra file descriptors is not supported yet`, { flag: "--preserve-fds" });
    switch (name) {
      case "create":
      case "run": {
        if (name === "run" && !v.has("detach")) (await import("../../host/libc.ts")).setChildSubreaper();
        // the planning layer is loaded only here (start, kill, delete and state stay light)
        const { createContainer } = await import("../../oci-runtime/create.ts");
        await createContainer(host, p, {
          root,
          id,
          bundle: abs(str(v, "bundle")) ?? io.cwd,
          ...(str(v, "pid-file") !== undefined ? { pidFile: abs(str(v, "pid-file"))! } : {}),
          ...(str(v, "console-socket") !== undefined ? { consoleSocket: str(v, "console-socket")! } : {}),
          systemdCgroup: g.values.has("systemd-cgroup"),
        });
        if (name === "create") return 0;
        await startContainer(host, root, id);
        if (v.has("detach")) return 0;
        const code = await waitInit(host, root, id);
        if (!v.has("keep")) await deleteContainer(host, root, id, true);
        return code;
      }
      case "exec": {
        for (const f of ["process-label", "apparmor", "cgroup"])
          if (v.has(f)) throw new MachinaError("E_UNSUPPORTED", `exec --${f} is not supported by machina-oci`, { flag: `--${f}` });
        const file = abs(str(v, "process"));
        let proc: OciProcess;
        if (file !== undefined) {
          const text = host.readFile(file);
          if (text === undefined) throw new MachinaError("E_NOT_FOUND", `--process ${file}: no such file`, { file });
          proc = (await import("../../oci-runtime/exec.ts")).parseProcess(text, file);
        } else {
          if (rest.length < 2) throw new MachinaError("E_USAGE", "exec: a command (or --process FILE) is required", { flag: "--process" });
          const u = str(v, "user");
          const um = u === undefined ? undefined : /^([0-9]+)(?::([0-9]+))?$/.exec(u);
          if (u !== undefined && um === null) throw new MachinaError("E_INVALID", `--user "${u}": allowed is UID[:GID]`, { flag: "--user" });
          const caps = list(v, "cap");
          proc = {
            args: rest.slice(1),
            cwd: str(v, "cwd") ?? "/",
            env: [`PATH=${DEFAULT_PATH}`, ...(v.has("tty") ? ["TERM=xterm"] : []), ...list(v, "env")],
            terminal: v.has("tty"),
            user: { uid: Number(um?.[1] ?? 0), gid: Number(um?.[2] ?? 0), additionalGids: list(v, "additional-gids").map(Number) },
            ...(caps.length > 0 ? { capabilities: { bounding: caps, effective: caps, permitted: caps } } : {}),
            ...(v.has("no-new-privs") ? { noNewPrivileges: true } : {}),
          };
        }
        if (file !== undefined && v.has("tty")) proc.terminal = true;
        const { execRecords } = await import("../../oci-runtime/exec.ts");
        const records = execRecords(host, root, id, proc, {
          detach: v.has("detach"),
          ...(str(v, "pid-file") !== undefined ? { pidFile: abs(str(v, "pid-file"))! } : {}),
          ...(str(v, "console-socket") !== undefined ? { consoleSocket: str(v, "console-socket")! } : {}),
          ignorePaused: v.has("ignore-paused"),
        });
        // the helper takes our place (our pid, stdio and parent), as machinactl's exec does
        const { encodeEnterSpec } = await import("../../machine/enter.ts");
        return host.execWithSpec(p.helper, ["machina-helper", "enter", "--spec-fd"], encodeEnterSpec(records));
      }
      case "start":
        if (io.resident) {
          // hooks run by start belong to the caller's process (stdio, cgroup), and the init's
          // startContainer hooks keep the exec fifo busy: the full machina-oci does those
          const st = readState(host, root, id);
          if (st.hooks.poststart.length > 0 || st.startHooks === true) throw new NeedsOwnProcess("the container has start hooks");
        }
        await startContainer(host, root, id);
        return 0;
      case "state":
        out(`${JSON.stringify(ociState(host, root, readState(host, root, id)), null, 2)}\n`);
        return 0;
      case "kill":
        killContainer(host, root, id, parseSignal(rest[1] ?? "SIGTERM", { flag: "SIGNAL" }), v.has("all"));
        return 0;
      case "delete":
        if (io.resident && readState(host, root, id).hooks.poststop.length > 0) throw new NeedsOwnProcess("the container has poststop hooks");
        await deleteContainer(host, root, id, v.has("force"));
        return 0;
      case "pause":
      case "resume":
        await pauseContainer(host, root, id, name === "pause");
        return 0;
      case "ps": {
        const st = readState(host, root, id);
        const pids = containerPids(host, st);
        if (str(v, "format") === "json") {
          out(`${JSON.stringify(pids)}\n`);
          return 0;
        }
        const r = host.run(["ps", ...(rest.length > 1 ? rest.slice(1) : ["-ef"])]);
        const lines = r.stdout.split("\n");
        const pidCol = (lines[0] ?? "").trim().split(/\s+/).indexOf("PID");
        out(`${[lines[0], ...lines.slice(1).filter((l) => pids.includes(Number(l.trim().split(/\s+/)[pidCol])))].join("\n")}\n`);
        return 0;
      }
      case "list": {
        const rows = listIds(host, root).map((cid) => {
          const st = readState(host, root, cid);
          return { id: cid, pid: st.pid, status: status(host, root, st), bundle: st.bundle, created: st.created, owner: "root" };
        });
        if (v.has("quiet")) out(rows.map((r) => `${r.id}\n`).join(""));
        else if (str(v, "format") === "json") out(`${JSON.stringify(rows.map((r) => ({ ociVersion: OCI_VERSION, ...r, rootfs: "" })))}\n`);
        else {
          const table = [
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
            ...rows.map((r) => [r.id, String(r.status === "stopped" ? 0 : r.pid), r.status, r.bundle, r.created, r.owner]),
          ];
          const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
          out(
            table
              .map(
                (row) =>
                  `${row
                    .map((c, i) => c.padEnd(widths[i]!))
                    .join("   ")
                    .trimEnd()}\n`,
              )
              .join(""),
          );
        }
        return 0;
      }
      case "update": {
        const file = str(v, "resources") === "-" ? "-" : abs(str(v, "resources"));
        const text = file === undefined ? "{}" : file === "-" ? await Bun.stdin.text() : host.readFile(file);
        if (text === undefined) throw new MachinaError("E_NOT_FOUND", `--resources ${file}: no such file`, { flag: "--resources" });
        const { parseResources, updateContainer } = await import("../../oci-runtime/update.ts");
        const r = parseResources(text, file === undefined ? "the flags" : `--resources ${file}`);
        const num = (flag: string): number | undefined => {
          const x = str(v, flag);
          if (x === undefined) return undefined;
          if (!/^-?[0-9]+$/.test(x)) throw new MachinaError("E_INVALID", `--${flag} "${x}": allowed is a number`, { flag: `--${flag}` });
          return Number(x);
        };
        const mem = { limit: num("memory"), swap: num("memory-swap"), reservation: num("memory-reservation") };
        if (Object.values(mem).some((x) => x !== undefined))
          r.memory = { ...r.memory, ...Object.fromEntries(Object.entries(mem).filter(([, x]) => x !== undefined)) };
        const cpu = { shares: num("cpu-shares"), quota: num("cpu-quota"), period: num("cpu-period"), cpus: str(v, "cpuset-cpus"), mems: str(v, "cpuset-mems") };
        if (Object.values(cpu).some((x) => x !== undefined))
          r.cpu = { ...r.cpu, ...Object.fromEntries(Object.entries(cpu).filter(([, x]) => x !== undefined)) };
        const pids = num("pids-limit");
        if (pids !== undefined) r.pids = { limit: pids };
        updateContainer(host, root, id, r);
        return 0;
      }
      case "features":
        out(`${JSON.stringify((await import("../../oci-runtime/documents.ts")).features(), null, 4)}\n`);
        return 0;
      case "spec": {
        const dir = abs(str(v, "bundle")) ?? io.cwd;
        const path = `${dir}/config.json`;
        if (host.lstat(path) !== undefined) throw new MachinaError("E_BUSY", `File ${path} exists. Remove it first`, { path });
        host.writeFile(path, `${JSON.stringify((await import("../../oci-runtime/documents.ts")).defaultSpec(), null, "\t")}\n`, 0o644);
        return 0;
      }
    }
    return 1;
  } catch (error) {
    if (error instanceof NeedsOwnProcess || error instanceof HandOver) throw error;
    const text = renderError(PROG, error);
    io.err(`${text}\n`);
    if (logFile !== undefined) {
      const msg = text.replace(new RegExp(`^${PROG}: `, "gm"), "").split("\n")[0]!;
      try {
        appendFileSync(
          logFile,
          logJson
            ? `${JSON.stringify({ level: "error", msg, time: new Date().toISOString() })}\n`
            : `time="${new Date().toISOString()}" level=error msg="${msg.replace(/"/g, '\\"')}"\n`,
        );
      } catch {
        // the log cannot be written: stderr has it
      }
    }
    return 1;
  }
}
