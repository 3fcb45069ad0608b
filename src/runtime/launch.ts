/**
 * Launch one container in the background, detached from the caller: the same plan as
 * `machina-nspawn` with the managed-machine flags (settings/managed.ts: those of
 * systemd-nspawn@.service — -U, --network-veth, --settings=override, …; image from the pool, its
 * .nspawn file) and `--console=pipe`, made in this process,
 * then the helper spawned in a new session (setsid) with the spec on fd 3 and its status lines
 * on fd 4. The supervisor is not a process that dies with the caller: when machinad is killed
 * the container keeps running and a new machinad finds it in the registry.
 *
 * Console output (stdout/stderr of the supervisor and, with --console=pipe, of the payload)
 * goes to $STATE_DIR/logs/NAME.log, read by `logs`: the supervisor writes it (the `console_log`
 * record), rotated to NAME.log.1 … NAME.log.(KEEP-1) before it would exceed MAXBYTES, also
 * while the container runs; a new start rotates once more, so the previous run's output stays.
 */
import { machinaEnv } from "../config.ts";
import { z } from "zod";
import { MachinaError } from "../errors.ts";
import type { DetachedChild, Host } from "../host/host.ts";
import type { Paths } from "../paths.ts";
import { managedNspawnArgs } from "../settings/managed.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import { prepareContainer } from "./prepare.ts";
import { requireImage } from "../image/pool.ts";
import { machinesDir, removeAbandonedEntry } from "../machine/registry.ts";
import { encodeSpec } from "../spec/wire.ts";
import { mkdirPrivate } from "../host/state-dir.ts";

/** One status line of the helper (native/SPEC.md): the fields read here; others pass through. */
const StatusLineSchema = z.looseObject({
  stage: z.string().optional(),
  event: z.string().optional(),
  leader: z.number().optional(),
  supervisor: z.number().optional(),
  status: z.number().optional(),
  error: z
    .looseObject({
      syscall: z.string().optional(),
      path: z.string().optional(),
      errno: z.number().optional(),
      code: z.string().optional(),
      message: z.string().optional(),
    })
    .optional(),
});
export type StatusLine = z.infer<typeof StatusLineSchema>;

/** A status line, or undefined for a line that is not one (not JSON, or fields of the wrong type). */
export function parseStatusLine(text: string): StatusLine | undefined {
  try {
    const r = StatusLineSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export interface LaunchRequest {
  name: string;
  /** Extra machina-nspawn arguments (after the managed-machine flags and `--console=pipe`). */
  extraArgs?: string[];
  onStatus?: (line: StatusLine) => void;
  signal?: AbortSignal;
}

export interface Launched {
  supervisor: number;
  leader: number;
  /** Resolves with the supervisor's exit status (128+N for a signal) while this process is its parent. */
  exited: Promise<number>;
}

/** The console log `machinactl logs` reads (src/machine/logs.ts); older output is in NAME.log.1, .2, …. */
export function consoleLogPath(stateDir: string, name: string): string {
  return `${stateDir}/logs/${name}.log`;
}

/** Bound of one console log file, and how many files are kept (NAME.log included). */
export const CONSOLE_LOG_MAX_BYTES = 1 << 20;
export const CONSOLE_LOG_KEEP = 3;

/** The bound in effect: the defaults above, or MACHINA_CONSOLE_LOG_MAX_BYTES / _KEEP (tests). */
export function consoleLogLimits(env: Record<string, string | undefined>): { maxBytes: number; keep: number } {
  return {
    maxBytes: machinaEnv(env, "MACHINA_CONSOLE_LOG_MAX_BYTES") ?? CONSOLE_LOG_MAX_BYTES,
    keep: machinaEnv(env, "MACHINA_CONSOLE_LOG_KEEP") ?? CONSOLE_LOG_KEEP,
  };
}

/** Shift NAME.log → NAME.log.1 → … → NAME.log.(keep-1) (the oldest is replaced); NAME.log is gone after. */
export function rotateConsoleLog(host: Host, path: string, keep: number): void {
  for (let i = keep - 1; i >= 1; i--) {
    try {
      host.rename(i === 1 ? path : `${path}.${i - 1}`, `${path}.${i}`, false);
    } catch {
      // missing
    }
  }
  if (keep <= 1) host.unlink(path);
}

/**
 * Start the container and resolve once its payload runs ("started" + "ready") with the pids;
 * reject with a MachinaError (the helper's message) when the start fails, or E_CANCELLED when
 * `signal` aborts first (the half-started supervisor is killed).
 */
export async function launchDetached(host: Host, paths: Paths, request: LaunchRequest): Promise<Launched> {
  const { name } = request;
  // machinactl start / the API name an image of the pool: say so, not machina-nspawn's "-D or -i" hint.
  requireImage(host, paths.pool, name);
  const env = host.env();
  const argv = [...managedNspawnArgs(name), "--console=pipe", ...(request.extraArgs ?? [])];
  const parsed = parseNspawnCommandLine(argv, env, "/");
  if (parsed.action !== "run") throw new MachinaError("E_INVALID", `unexpected arguments for a start: ${argv.join(" ")}`);
  // The same preparation as machina-nspawn's (src/runtime/prepare.ts): pool lookup (directory or
  // NAME.raw), .nspawn file, raw image, facts, spec, stale entries, network.
  const prepared = prepareContainer(host, paths, parsed.settings, "/", { prog: "machina-nspawn", statusFd: 4, detached: true });
  const { spec } = prepared;
  if (request.signal?.aborted) throw prepared.abandonAfter(new MachinaError("E_CANCELLED", `start of "${name}" cancelled`, { machine: name }));

  mkdirPrivate(host, paths.stateDir, `${paths.stateDir}/logs`);
  const logPath = consoleLogPath(paths.stateDir, name);
  const limits = consoleLogLimits(env);
  rotateConsoleLog(host, logPath, limits.keep);
  spec.consoleLog = { path: logPath, ...limits };
  let proc: DetachedChild;
  try {
    // Our log fd gets only what the helper says before it has read the spec (it opens logPath itself).
    proc = host.spawnDetached([paths.helper, "run", "--spec-fd"], { spec: encodeSpec(spec), logPath });
  } catch (e) {
    // The helper never ran: undo the network and raw mounts prepared for it.
    throw prepared.abandonAfter(e);
  }
  const { exited } = proc;

  const onAbort = () => {
    try {
      host.kill(proc.pid, 9 /* SIGKILL */);
    } catch {
      // gone
    }
  };
  request.signal?.addEventListener("abort", onAbort, { once: true });
  if (request.signal?.aborted) onAbort(); // aborted while the helper was being spawned: no event comes any more
  let said: StartStatus;
  try {
    said = await readUntilReady(proc, request.onStatus);
  } finally {
    request.signal?.removeEventListener("abort", onAbort);
  }
  const { started, leader, supervisor, failure } = said;
  if (request.signal?.aborted) {
    await exited;
    // Killed before it could undo anything itself (its on_exit never ran): its registry entry and
    // cgroups, then what the preparation made for it — the network (veth, dnsmasq, nft) and raw mounts.
    removeAbandonedEntry(host, `${machinesDir(paths.stateDir)}/${name}`, spec.cgroups, Bun.sleepSync);
    throw prepared.abandonAfter(new MachinaError("E_CANCELLED", `start of "${name}" cancelled`, { machine: name }));
  }
  if (!started || leader === 0) {
    const status = await exited;
    const log = readTail(host, consoleLogPath(paths.stateDir, name));
    const message = failure?.message ?? (log || `the supervisor exited with status ${status}`);
    throw new MachinaError("E_SYSTEM", `failed to start "${name}": ${message}`, {
      machine: name,
      ...(failure?.syscall ? { syscall: failure.syscall } : {}),
      ...(failure?.path ? { path: failure.path } : {}),
      ...(failure?.code ? { errno: failure.code } : {}),
    });
  }
  return { supervisor, leader, exited };
}

/** What the helper's status lines said about a start. */
export interface StartStatus {
  started: boolean;
  leader: number;
  supervisor: number;
  failure: StatusLine["error"] | undefined;
}

/**
 * The helper's status lines, each to `onLine` until it returns true or the pipe ends (EOF: the
 * supervisor and whatever holds the pipe exited); then our end is closed. The helper ignores the
 * EPIPE of later lines (SIGPIPE is ignored there).
 */
export async function readStatusLines(proc: DetachedChild, onLine: (line: StatusLine) => boolean | undefined): Promise<void> {
  try {
    const reader = proc.status.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    outer: for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = parseStatusLine(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (line !== undefined && onLine(line) === true) break outer;
      }
    }
    await reader.cancel().catch(() => undefined);
  } finally {
    proc.closeStatus();
  }
}

/** Read the helper's status lines until "ready" (the container runs) or EOF (the supervisor exited). */
export async function readUntilReady(proc: DetachedChild, onStatus?: (line: StatusLine) => void): Promise<StartStatus> {
  const out: StartStatus = { started: false, leader: 0, supervisor: proc.pid, failure: undefined };
  await readStatusLines(proc, (line) => {
    onStatus?.(line);
    if (line.error) out.failure = line.error;
    if (line.event === "started") {
      out.started = true;
      out.leader = line.leader ?? 0;
      out.supervisor = line.supervisor ?? out.supervisor;
    }
    return line.event === "ready" && out.started;
  });
  return out;
}

function readTail(host: Host, path: string): string {
  const text = host.readFile(path) ?? "";
  return text
    .trim()
    .split("\n")
    .slice(-3)
    .join("; ")
    .replace(/^machina-nspawn: /, "");
}
