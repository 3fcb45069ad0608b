/**
 * A machine's log: its journal when it has one (journalctl -D on the journal directory: the
 * host's /var/log/journal/MACHINE-ID per --link-journal, else /var/log/journal/MACHINE-ID or
 * /run/log/journal/MACHINE-ID inside its root), else the console output machina keeps for
 * containers started in the background ($STATE_DIR/logs/NAME.log; older output in NAME.log.1,
 * NAME.log.2, … — the supervisor rotates while the container runs, see src/runtime/launch.ts).
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { readFileInRoot, resolveInRoot } from "../host/resolve-in-root.ts";
import type { Paths } from "../paths.ts";
import type { Machine, MachineContext } from "./machines.ts";
import { scanRegistry } from "./registry.ts";

export type LogSource = { kind: "journal"; dir: string; machineId: string } | { kind: "console"; files: string[] } | { kind: "none" };

/** The current console log file of a machine. */
export function consoleLogPath(paths: Paths, name: string): string {
  return `${paths.stateDir}/logs/${name}.log`;
}

/** Console log files of a machine that exist, oldest first (… NAME.log.2, NAME.log.1, NAME.log). */
export function consoleLogFiles(host: Host, paths: Paths, name: string): string[] {
  const log = consoleLogPath(paths, name);
  const prefix = `${name}.log.`;
  const rotated = host
    .readdir(`${paths.stateDir}/logs`)
    .filter((f) => f.startsWith(prefix) && /^[1-9][0-9]{0,2}$/.test(f.slice(prefix.length)))
    .map((f) => Number(f.slice(prefix.length)))
    .sort((a, b) => b - a)
    .map((i) => `${log}.${i}`);
  return [...rotated, log].filter((f) => host.lstat(f) === "file");
}

/** The container's machine id: /etc/machine-id inside it, else its UUID without dashes. */
export function machineId(host: Host, m: Machine): string {
  const text = readFileInRoot(host, `/proc/${m.leader}/root`, "/etc/machine-id")?.trim() ?? "";
  return /^[0-9a-f]{32}$/.test(text) ? text : m.uuid.replace(/-/g, "");
}

function hasJournalFiles(host: Host, dir: string): boolean {
  return host.readdir(dir).some((f) => f.endsWith(".journal") || f.endsWith(".journal~"));
}

/** Where this machine's log is. `m` undefined: the machine is not running (console log only). */
export function logSource(ctx: MachineContext, name: string, m: Machine | undefined): LogSource {
  const host = ctx.host;
  if (m !== undefined) {
    const id = machineId(host, m);
    if (id !== "") {
      const hostDir = host.realpath(`/var/log/journal/${id}`);
      if (hostDir !== undefined && host.lstat(hostDir) === "dir" && hasJournalFiles(host, hostDir)) return { kind: "journal", dir: hostDir, machineId: id };
      for (const d of [`/var/log/journal/${id}`, `/run/log/journal/${id}`]) {
        const p = resolveInRoot(host, `/proc/${m.leader}/root`, d);
        if (p !== undefined && host.lstat(p) === "dir" && hasJournalFiles(host, p)) return { kind: "journal", dir: p, machineId: id };
      }
    }
  }
  const files = consoleLogFiles(host, ctx.paths, name);
  return files.length > 0 ? { kind: "console", files } : { kind: "none" };
}

/**
 * The last `n` lines of the console log files, oldest first (each rotated file continues into
 * the next); files are read newest first, only as many as the lines need.
 */
export function consoleTail(host: Host, files: string[], n: number): string[] {
  if (n <= 0) return [];
  let text = "";
  for (let i = files.length - 1; i >= 0; i--) {
    text = (host.readFile(files[i]!) ?? "") + text;
    // more than n newlines: the n-th last line is complete
    if (n < Number.MAX_SAFE_INTEGER && (text.match(/\n/g)?.length ?? 0) > n) break;
  }
  const lines = text.split("\n").map((l) => l.replace(/\r/g, ""));
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-n);
}

/** The last `n` lines of the machine's log (status). */
export async function machineLogTail(ctx: MachineContext, m: Machine, n: number): Promise<string[]> {
  if (n <= 0) return [];
  const src = logSource(ctx, m.name, m);
  if (src.kind === "journal") {
    const r = await ctx.host.runAsync(["journalctl", "-D", src.dir, "-n", String(n), "--no-pager", "-q", "-o", "short"], { timeoutMs: 5000 });
    return r.status === 0 ? r.stdout.split("\n").filter((l) => l !== "") : [];
  }
  if (src.kind === "console") return consoleTail(ctx.host, src.files, n);
  return [];
}

/** Bytes of a file from `offset` on (at most 1 MiB, as UTF-8) and where they end; undefined when missing. */
function readFrom(host: Host, path: string, offset: number): { text: string; size: number } | undefined {
  const st = host.stat(path, true);
  if (st === undefined) return undefined;
  if (offset >= st.size) return { text: "", size: st.size };
  let bytes: Uint8Array;
  try {
    bytes = host.readAt(path, offset, Math.min(st.size - offset, 1 << 20));
  } catch {
    return undefined; // removed meanwhile
  }
  return { text: Buffer.from(bytes).toString("utf8"), size: offset + bytes.length };
}

export interface LogOptions {
  /** Last N lines (undefined: everything). */
  lines?: number;
  follow?: boolean;
  /** journalctl -o MODE. */
  output?: string;
  /** Where console lines go. */
  write: (text: string) => void;
  /** Aborting ends a follow (the console poll stops, journalctl -f is killed). */
  signal?: AbortSignal;
  /** The journal's lines through write too (journalctl's output captured), not on this process's stdio (machinad). */
  capture?: boolean;
}

/** Where the machine's log is, or E_NOT_FOUND when it has none (before anything is printed). */
export function requireLogSource(ctx: MachineContext, name: string, m: Machine | undefined): Exclude<LogSource, { kind: "none" }> {
  const src = logSource(ctx, name, m);
  if (src.kind !== "none") return src;
  if (m === undefined) throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is running and no console log of it exists`, { machine: name });
  throw new MachinaError("E_NOT_FOUND", `machine "${name}" has no journal and no console log (it was not started by machinactl start)`, { machine: name });
}

/**
 * Console log lines in journalctl's JSON output modes (json, json-pretty, json-seq, json-sse):
 * one object per line with the fields that have a meaning here — MESSAGE, and MACHINE as
 * machined's messages about a machine carry it. The console log has no timestamps, so there is
 * no __REALTIME_TIMESTAMP. Other modes print the lines as they are. `text` is whole lines.
 */
export function formatConsoleLines(text: string, name: string, output: string | undefined): string {
  const wrap: ((o: object) => string) | undefined =
    output === "json"
      ? (o) => `${JSON.stringify(o)}\n`
      : output === "json-pretty"
        ? (o) => `${JSON.stringify(o, null, "\t")}\n`
        : output === "json-seq"
          ? (o) => `\x1e${JSON.stringify(o)}\n`
          : output === "json-sse"
            ? (o) => `data: ${JSON.stringify(o)}\n\n`
            : undefined;
  if (wrap === undefined) return text;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => wrap({ MACHINE: name, MESSAGE: l })).join("");
}

/**
 * Print a machine's log: journalctl -D on its journal (stdio inherited), else its console log
 * (with `follow`, new output is printed until the machine is gone). Returns the exit status.
 */
export async function showLogs(ctx: MachineContext, name: string, m: Machine | undefined, given: LogOptions): Promise<number> {
  const options: LogOptions = { ...given, write: (text) => given.write(formatConsoleLines(text, name, given.output)) };
  const src = requireLogSource(ctx, name, m);
  if (src.kind === "journal") {
    const argv = ["journalctl", "-D", src.dir, "--no-pager"];
    if (options.lines !== undefined) argv.push("-n", String(options.lines));
    if (options.follow) argv.push("-f");
    if (options.output !== undefined) argv.push("-o", options.output);
    const signal = options.signal ? { signal: options.signal } : {};
    if (options.capture) return (await ctx.host.runAsync(argv, { onLine: (l) => given.write(`${l}\n`), ...signal })).status;
    return (await ctx.host.runAsync(argv, { output: "inherit", input: "inherit", ...signal })).status;
  }
  const tail = consoleTail(ctx.host, src.files, options.lines ?? Number.MAX_SAFE_INTEGER);
  if (tail.length > 0) options.write(tail.join("\n") + "\n");
  if (!options.follow) return 0;
  // Follow NAME.log by inode and offset: when the supervisor has rotated it (the inode now is
  // NAME.log.1, or older after several rotations), the rest of that file and the newer rotated
  // ones are printed before the new NAME.log.
  const file = consoleLogPath(ctx.paths, name);
  const host = ctx.host;
  let ino = host.stat(file, true)?.ino;
  let offset = readFrom(host, file, 0)?.size ?? 0;
  let pending = "";
  const emit = (text: string) => {
    pending += text.replace(/\r/g, "");
    const nl = pending.lastIndexOf("\n");
    if (nl >= 0) {
      options.write(pending.slice(0, nl + 1));
      pending = pending.slice(nl + 1);
    }
  };
  /** From `offset` of `path` to its end (in 1 MiB reads); the end offset. */
  const drain = (path: string, from: number): number => {
    for (;;) {
      const r = readFrom(host, path, from);
      if (r === undefined || r.text === "") return r?.size ?? from;
      emit(r.text);
      from = r.size;
    }
  };
  for (;;) {
    await host.sleep(200);
    if (options.signal?.aborted) return 0;
    const st = host.stat(file, true);
    let got = false;
    if (st !== undefined && st.ino !== ino) {
      // rotated (or a new start): the rest of the file we followed, then the newer rotated ones
      const files = consoleLogFiles(host, ctx.paths, name).slice(0, -1);
      const at = ino === undefined ? -1 : files.findIndex((f) => host.stat(f, true)?.ino === ino);
      if (at >= 0) {
        if (drain(files[at]!, offset) !== offset) got = true;
        for (const f of files.slice(at + 1)) if (drain(f, 0) !== 0) got = true;
      }
      ino = st.ino;
      offset = 0;
    } else if (st !== undefined && st.size < offset) {
      offset = 0; // truncated in place (KEEP 1)
    }
    if (st !== undefined) {
      const end = drain(file, offset);
      if (end !== offset) got = true;
      offset = end;
    }
    const running = scanRegistry(host, ctx.paths.stateDir, Date.now()).some((e) => e.name === name);
    if (!running && !got) {
      if (pending !== "") options.write(pending + "\n");
      return 0;
    }
  }
}
