/**
 * The registry of running machines: $STATE_DIR/machines/NAME/{lock,state.json}, written by
 * the helper (see native/SPEC.md). A machine runs while its lock is held by the supervisor
 * named in state.json (same pid and start time), its leader is that supervisor's live child
 * and its cgroup is populated. An entry whose lock is free, or whose supervisor is gone (pid
 * reused by another process), belongs to a supervisor that died without cleaning up (kill -9)
 * and is removed here, with its cgroups. A live supervisor between two runs (reboot) or
 * shutting down is "closing": never shown as running, never removed.
 */
import { lazyMiniSchemas } from "../lazy-zod.ts";
import { type Host, isPermissionError } from "../host/host.ts";
import { type Confinement, parseConfinement } from "../spec/confinement.ts";
import { procStat, processRunning } from "./proc-stat.ts";

export { procStat, processRunning };

/** The files of an entry (native/supervisor.c registry_*), removed before its directory. */
const ENTRY_FILES = ["state.json", ".state.json.tmp", "lock"] as const;

/** An entry without state.json may be a supervisor that is just starting: leave it alone this long. */
const STARTING_GRACE_MS = 10_000;

export interface MachineState {
  leader: number;
  supervisor: number;
  name: string;
  root: string;
  cgroups: string[];
  /** The fields below are optional in the file (older helpers, hand-written entries). */
  uuid: string;
  class: string;
  service: string;
  boot: boolean;
  /** CLOCK_REALTIME at start, microseconds. */
  startedUsec: bigint | undefined;
  /** Field 22 of the supervisor's /proc/PID/stat when it started. */
  supervisorStartTime: string;
  /** The cgroup2 directory (host path), or "". */
  cgroup: string;
  os: string;
  version: string;
  /** The image's architecture (Debian's name; "" when unknown), and whether the host runs it through qemu-user. */
  architecture: string;
  emulated: boolean;
  /** -Z: the SELinux label of the payload, applied to what `machinactl shell/exec/login` enter. */
  selinuxContext?: string;
  /** What the container's payload was confined with (src/spec/confinement.ts); undefined when not recorded. */
  confinement: Confinement | undefined;
  /** The images it holds locked (src/image/in-use.ts): the root image and a --template base. */
  images: string[];
}

export type Liveness = "running" | "opening" | "closing" | "dead";

export function machinesDir(stateDir: string): string {
  return `${stateDir}/machines`;
}

/** The lock a machine's supervisor holds for as long as it runs. */
export function machineLockPath(stateDir: string, name: string): string {
  return `${machinesDir(stateDir)}/${name}/lock`;
}

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const registrySchemas = lazyMiniSchemas((z) => {
  /** Text fields: "" when missing or not text; lists: their strings (older helpers, hand-written entries). */
  const text = z.catch(z.string(), "");
  const strings = z.pipe(
    z.catch(z.array(z.unknown()), []),
    z.transform((a: unknown[]) => a.filter((c): c is string => typeof c === "string")),
  );
  /** state.json as the helper writes it (native/SPEC.md): leader, supervisor and name are required. */
  const StateFileSchema = z.object({
    leader: z.number(),
    supervisor: z.number(),
    name: z.string(),
    root: text,
    cgroups: strings,
    uuid: text,
    class: text,
    service: text,
    boot: z.catch(z.boolean(), false),
    started_usec: text,
    supervisor_starttime: text,
    cgroup: text,
    os: text,
    version: text,
    architecture: text,
    emulated: z.catch(z.boolean(), false),
    selinux_context: text,
    confinement: z.optional(z.unknown()),
    images: strings,
  });
  return { text, strings, StateFileSchema };
});

export function readState(host: Host, stateDir: string, name: string): MachineState | undefined {
  const content = host.readFile(`${machinesDir(stateDir)}/${name}/state.json`);
  if (content === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(content);
  } catch {
    return undefined;
  }
  const parsed = registrySchemas().StateFileSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  // parsed when asked for (enter, exec): a list of many machines never needs it, and it is large
  let confinement: Confinement | undefined | null = null;
  return {
    leader: r.leader,
    supervisor: r.supervisor,
    name: r.name,
    root: r.root,
    cgroups: r.cgroups,
    uuid: r.uuid,
    class: r.class || "container",
    service: r.service || "machina-nspawn",
    boot: r.boot,
    startedUsec: /^[0-9]+$/.test(r.started_usec) ? BigInt(r.started_usec) : undefined,
    supervisorStartTime: r.supervisor_starttime,
    cgroup: r.cgroup || (r.cgroups[0] ?? ""),
    os: r.os,
    version: r.version,
    architecture: r.architecture,
    emulated: r.emulated,
    ...(r.selinux_context !== "" ? { selinuxContext: r.selinux_context } : {}),
    get confinement() {
      if (confinement === null) confinement = parseConfinement(r.confinement);
      return confinement;
    },
    images: r.images,
  };
}

/** Is the supervisor recorded in state.json the process that runs now under that pid? */
function supervisorAlive(host: Host, state: MachineState): boolean {
  return processRunning(host, state.supervisor, state.supervisorStartTime);
}

/** cgroup2 `populated` (the whole subtree); true when it cannot be told (v1 only). */
function cgroupPopulated(host: Host, cgroup: string): boolean {
  if (cgroup === "") return true;
  const events = host.readFile(`${cgroup}/cgroup.events`);
  if (events === undefined) return host.lstat(cgroup) === "dir";
  return /^populated 1$/m.test(events);
}

/**
 * The liveness of one entry whose lock is held (a caller holding the lock itself knows it is
 * dead): opening (no state.json yet), running, closing (supervisor alive, leader gone or
 * cgroup empty: between reboots or shutting down), dead (the supervisor named is gone).
 */
export function liveness(host: Host, state: MachineState | undefined): Liveness {
  if (state === undefined) return "opening";
  if (!supervisorAlive(host, state)) return "dead";
  const leader = procStat(host, state.leader);
  if (leader === undefined || leader.state === "Z" || leader.state === "X" || leader.ppid !== state.supervisor) return "closing";
  if (!cgroupPopulated(host, state.cgroup)) return "closing";
  return "running";
}

export interface RegistryEntry {
  name: string;
  state: MachineState | undefined;
  liveness: Liveness;
}

function removeEntry(host: Host, dir: string, state: MachineState | undefined): void {
  for (const cg of state?.cgroups ?? [])
    if (/\/machine-[^/]+\.scope$/.test(cg)) {
      try {
        host.removeDirTree(cg);
      } catch {
        // still populated (EBUSY): left for the next sweep
      }
    }
  for (const file of ENTRY_FILES) host.unlink(`${dir}/${file}`);
  host.removeDirTree(dir);
}

function removeEmptyDir(host: Host, dir: string): void {
  try {
    host.removeDirTree(dir);
  } catch {
    // not empty: not an abandoned entry
  }
}

/** The pids in a cgroup and its descendants. */
function cgroupTreePids(host: Host, cgroup: string): number[] {
  const pids = (host.readFile(`${cgroup}/cgroup.procs`) ?? "")
    .split("\n")
    .filter((l) => /^[0-9]+$/.test(l))
    .map(Number);
  for (const sub of host.readdir(cgroup)) if (host.lstat(`${cgroup}/${sub}`) === "dir") pids.push(...cgroupTreePids(host, `${cgroup}/${sub}`));
  return pids;
}

/**
 * After a supervisor of ours was killed before it could undo anything itself (a cancelled
 * start): its registry entry and its cgroups. Its children share its lock until they are gone
 * too (PDEATHSIG), so the lock is waited for a moment; an entry it had made but not locked yet
 * gets our lock (the supervisor's own protocol: a lock unlinked under a waiter is retried).
 * Holding the lock, we own the name: what is left in the cgroups made for this start is killed,
 * and they are removed. A lock still held after that moment is another start's: left alone.
 */
export function removeAbandonedEntry(host: Host, dir: string, cgroups: string[], sleep: (ms: number) => void): void {
  const lockPath = `${dir}/lock`;
  let lock: { release(): void } | undefined;
  for (let i = 0; i < 300 && lock === undefined; i++) {
    if (host.lstat(dir) !== "dir") return; // never made: its cgroups come after its lock
    try {
      lock = host.lstat(lockPath) === "file" ? host.tryLock(lockPath) : host.lockFile(lockPath, "exclusive");
    } catch {
      lock = undefined; // removed under us
    }
    if (lock === undefined) sleep(10);
  }
  if (lock === undefined) return;
  try {
    for (const cg of cgroups) {
      for (let i = 0; i < 300; i++) {
        try {
          host.removeDirTree(cg);
        } catch {
          // populated (EBUSY)
        }
        if (host.lstat(cg) === undefined) break;
        for (const pid of cgroupTreePids(host, cg)) host.kill(pid, 9 /* SIGKILL */);
        sleep(10);
      }
    }
    for (const file of ENTRY_FILES) host.unlink(`${dir}/${file}`);
    removeEmptyDir(host, dir);
  } finally {
    lock.release();
  }
}

/**
 * Every entry of the registry with its liveness; dead entries are removed (with their cgroups)
 * and not returned. An entry without state.json gets STARTING_GRACE_MS to finish starting.
 * `quick` (the sweep before a start): an entry whose lock is held is taken as alive without
 * reading it — a lock test per machine, not a parse — and not returned; the rare held lock of a
 * dead supervisor (its pid reused) is left to the next full scan (list, machinad).
 */
export function scanRegistry(host: Host, stateDir: string, now: number, quick = false): RegistryEntry[] {
  const out: RegistryEntry[] = [];
  for (const name of host.readdir(machinesDir(stateDir)).sort()) {
    const e = scanEntry(host, stateDir, name, now, quick);
    if (e !== undefined) out.push(e);
  }
  return out;
}

/**
 * scanRegistry's work for the one entry NAME: undefined when there is none, when it was dead
 * (and is removed now), and with `quick` when its lock is held.
 */
export function scanEntry(host: Host, stateDir: string, name: string, now: number, quick = false): RegistryEntry | undefined {
  if (name === "" || name === "." || name === ".." || name.includes("/")) return undefined; // never a path outside the registry
  const dir = `${machinesDir(stateDir)}/${name}`;
  let lock: { release(): void } | undefined;
  try {
    lock = host.tryLock(`${dir}/lock`);
  } catch (e) {
    // another user than root (machinactl list, status): the lock is root's (0600, so that nobody
    // else can hold it and make a dead machine look alive); the supervisor's pid and start time
    // say whether it runs, and nothing is removed
    if (!isPermissionError(e)) throw e;
    const state = readState(host, stateDir, name);
    const l = liveness(host, state);
    return l === "dead" ? undefined : { name, state, liveness: l };
  }
  if (lock !== undefined) {
    // Nobody holds the lock: the supervisor is gone (or has not locked it yet).
    try {
      const state = readState(host, stateDir, name);
      if (state === undefined && now - (host.mtimeMs(dir) ?? 0) < STARTING_GRACE_MS) return { name, state, liveness: "opening" };
      removeEntry(host, dir, state);
    } finally {
      lock.release();
    }
    return undefined;
  }
  if (host.lstat(`${dir}/lock`) !== "file") {
    // A supervisor killed between making its entry and creating its lock (a cancelled start)
    // leaves an empty directory: removed once it is older than a start could take.
    if (host.lstat(dir) === "dir" && now - (host.mtimeMs(dir) ?? now) >= STARTING_GRACE_MS) removeEmptyDir(host, dir);
    return undefined;
  }
  if (quick) return undefined;
  const state = readState(host, stateDir, name);
  const l = liveness(host, state);
  if (l === "dead") {
    // The lock is held, but not by the supervisor state.json names (it died; its pid may
    // even have been reused). Its files go; the lock's holder keeps an unlinked inode.
    if (state !== undefined && !cgroupPopulated(host, state.cgroup)) removeEntry(host, dir, state);
    return undefined;
  }
  return { name, state, liveness: l };
}

/**
 * Extra sweeps run at the end of every sweepStale (e.g. src/net/: the networks of supervisors
 * that are gone), so that every start cleans up after a kill -9 in one place.
 */
export type SweepHook = (host: Host, stateDir: string, sweep: { removed: readonly string[]; quick: boolean }) => void;
const sweepHooks: SweepHook[] = [];

export function addSweepHook(hook: SweepHook): void {
  if (!sweepHooks.includes(hook)) sweepHooks.push(hook);
}

function runSweepHooks(host: Host, stateDir: string, sweep: { removed: readonly string[]; quick: boolean }): void {
  for (const hook of sweepHooks) hook(host, stateDir, sweep);
}

/**
 * Remove the entries (and cgroups) of machines whose supervisor is gone. Returns their names.
 * Only cgroups below a `machine.slice`-style scope recorded by the helper are touched.
 */
export function sweepStale(host: Host, stateDir: string, now: number, quick = false): string[] {
  const before = host.readdir(machinesDir(stateDir));
  scanRegistry(host, stateDir, now, quick);
  const after = new Set(host.readdir(machinesDir(stateDir)));
  const removed = before.filter((n) => !after.has(n)).sort();
  runSweepHooks(host, stateDir, { removed, quick });
  return removed;
}
