/**
 * Shared utilities for the integration tests (root): run machina-nspawn and systemd-nspawn,
 * scratch directories, background containers, leftover snapshots, the probe's report type.
 *
 * Every resource a helper creates is registered with a Scratch, whose cleanup() (called from
 * afterEach/afterAll) kills what still runs and removes what is still there, also when a test
 * failed halfway.
 */
import { spawn, type Subprocess } from "bun";
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const MACHINA_NSPAWN = join(REPO, "bin/machina-nspawn");
export const TEST_NOTIFY = join(REPO, "native/build/test-notify");
export const SUBREAPER = join(import.meta.dir, "subreaper.py");
export const CGROUP_V2 = "/sys/fs/cgroup/unified";
export const CGROUP_V1_SYSTEMD = "/sys/fs/cgroup/systemd";
export const MACHINE_SLICES = [`${CGROUP_V2}/machine.slice`, `${CGROUP_V1_SYSTEMD}/machine.slice`];

// ------------------------------------------------------------------ probe report

export interface DevEntry {
  name: string;
  type: "char" | "block" | "dir" | "symlink" | "file" | "fifo" | "socket";
  mode: number;
  uid: number;
  gid: number;
  major: number | null;
  minor: number | null;
  target?: string;
}
export interface MountEntry {
  mountId: number;
  parentId: number;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}
export type Limit = { soft: number | "infinity"; hard: number | "infinity" };
export interface ProbeReport {
  pid: number;
  ppid: number;
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  groups: number[];
  hostname: string;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
  mountinfo: MountEntry[];
  dev: DevEntry[] | null;
  devPts: DevEntry[] | null;
  runHost: DevEntry[] | null;
  caps: Record<"CapInh" | "CapPrm" | "CapEff" | "CapBnd" | "CapAmb", string>;
  noNewPrivs: number;
  seccomp: number;
  fds: Record<string, string | null>;
  cgroup: string[];
  rlimits: Record<string, Limit | null>;
  namespaces: Record<string, string>;
  oomScoreAdj: number;
  tty: { stdin: boolean; stdout: boolean; stderr: boolean; stdinName: string | null; foregroundPgid: number | null };
  machineId: string | null;
  pgid: number;
  sid: number;
  umask: number;
}

/** Parse the probe's one JSON line out of stdout (ignoring anything else printed). */
export function parseProbe(stdout: string): ProbeReport {
  const line = stdout.split(/\r?\n/).find((l) => l.startsWith("{"));
  if (line === undefined) throw new Error(`no probe JSON in output: ${JSON.stringify(stdout.slice(0, 500))}`);
  return JSON.parse(line) as ProbeReport;
}

/** "rw,nosuid,nodev,relatime" -> the flags tests compare: ro/rw + nosuid/nodev/noexec. */
export function mountFlags(options: string): string {
  const o = options.split(",");
  return [o.includes("ro") ? "ro" : "rw", ...["nosuid", "nodev", "noexec"].filter((f) => o.includes(f))].join(",");
}

/** Mount list as "MOUNTPOINT FSTYPE FLAGS" lines (in mount order). */
export function mountSummary(r: ProbeReport): string[] {
  return r.mountinfo.map((m) => `${m.mountPoint} ${m.fsType} ${mountFlags(m.options)}`);
}

export function findMount(r: ProbeReport, mountPoint: string): MountEntry | undefined {
  // the last one mounted there is the visible one
  return [...r.mountinfo].reverse().find((m) => m.mountPoint === mountPoint);
}

// ------------------------------------------------------------------ capabilities

export const CAP_NUMBERS: Record<string, number> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** systemd-nspawn 252's retained capabilities (reference/nspawn-facts.md), by name. */
export const NSPAWN_DEFAULT_CAP_NAMES = [
  "AUDIT_CONTROL",
  "AUDIT_WRITE",
  "CHOWN",
  "DAC_OVERRIDE",
  "DAC_READ_SEARCH",
  "FOWNER",
  "FSETID",
  "IPC_OWNER",
  "KILL",
  "LEASE",
  "LINUX_IMMUTABLE",
  "MKNOD",
  "NET_BIND_SERVICE",
  "NET_BROADCAST",
  "NET_RAW",
  "SETFCAP",
  "SETGID",
  "SETPCAP",
  "SETUID",
  "SYS_ADMIN",
  "SYS_BOOT",
  "SYS_CHROOT",
  "SYS_NICE",
  "SYS_PTRACE",
  "SYS_RESOURCE",
  "SYS_TTY_CONFIG",
];

export function capMask(names: readonly string[]): bigint {
  let m = 0n;
  for (const n of names) {
    const bit = CAP_NUMBERS[n.replace(/^CAP_/, "")];
    if (bit === undefined) throw new Error(`unknown capability ${n}`);
    m |= 1n << BigInt(bit);
  }
  return m;
}

/** The test process's own bounding set: a container cannot get more than this. */
export function hostCapBnd(): bigint {
  const line = readFileSync("/proc/self/status", "utf8")
    .split("\n")
    .find((l) => l.startsWith("CapBnd:"));
  return BigInt(`0x${line!.split(/\s+/)[1]}`);
}

export function capHex(mask: bigint): string {
  return mask.toString(16).padStart(16, "0");
}

/** The bounding set a container started with `names` retained should show on this host. */
export function expectedCapBnd(names: readonly string[]): string {
  return capHex(capMask(names) & hostCapBnd());
}

// ------------------------------------------------------------------ scratch resources

let counter = 0;
/** A machine name unique to this test run (cgroup paths are global, state dirs are not). */
export function uniqueName(prefix = "mt"): string {
  return `${prefix}-${process.pid.toString(36)}${(counter++).toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

export class Scratch {
  private dirs: string[] = [];
  private procs: Subprocess[] = [];
  private names = new Set<string>();
  private cleanups: Array<() => void | Promise<void>> = [];

  /** A fresh temporary directory, removed at cleanup (after unmounting anything left below it). */
  dir(prefix = "machina-it-"): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  /** Register a machine name: its cgroups are killed and removed at cleanup if still there. */
  name(prefix?: string): string {
    const n = uniqueName(prefix);
    this.names.add(n);
    return n;
  }

  track(p: Subprocess): Subprocess {
    this.procs.push(p);
    return p;
  }

  defer(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  async cleanup(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
    for (const p of this.procs.splice(0)) {
      if (p.exitCode === null && p.signalCode === null) {
        try {
          p.kill("SIGKILL");
        } catch {
          // gone
        }
        await Promise.race([p.exited, Bun.sleep(3000)]);
      }
    }
    for (const n of this.names) await removeMachineCgroups(n);
    this.names.clear();
    for (const d of this.dirs.splice(0)) {
      unmountBelow(d);
      rmSync(d, { recursive: true, force: true });
    }
  }
}

/** systemd's unit-name escaping (`-` is `\x2d`), as in `machine-NAME.scope`. */
export function unitEscape(name: string): string {
  let out = "";
  for (const [i, ch] of [...name].entries()) {
    if (/[A-Za-z0-9:_]/.test(ch) || (ch === "." && i > 0)) out += ch;
    else for (const b of new TextEncoder().encode(ch)) out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** The machine's scope directory below `slice`. */
export function machineCgroup(name: string, slice = MACHINE_SLICES[0]!): string {
  return `${slice}/machine-${unitEscape(name)}.scope`;
}

/** Kill whatever is left in a machine's cgroups and remove them (test cleanup only). */
export async function removeMachineCgroups(name: string): Promise<void> {
  for (const slice of MACHINE_SLICES) {
    const dir = machineCgroup(name, slice);
    if (!existsSync(dir)) continue;
    for (let i = 0; i < 50; i++) {
      const pids = cgroupPidsBelow(dir);
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      try {
        removeCgroupTree(dir);
        break;
      } catch {
        await Bun.sleep(40);
      }
    }
  }
}

function cgroupPidsBelow(dir: string): number[] {
  const pids: number[] = [];
  try {
    for (const l of readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n")) if (l) pids.push(Number(l));
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...cgroupPidsBelow(`${dir}/${e.name}`));
  } catch {
    // gone
  }
  return pids;
}

function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(`${dir}/${e.name}`);
  rmdirSync(dir);
}

/** Lazily unmount every mount of this (host) mount namespace at or below `path`. */
export function unmountBelow(path: string): void {
  const points = hostMountPoints().filter((p) => p === path || p.startsWith(`${path}/`));
  for (const p of points.reverse()) Bun.spawnSync(["umount", "-l", p], { stderr: "ignore", stdout: "ignore" });
}

/**
 * The superblock options (mountinfo's last field, "rw,…" or "ro,…") of what is visible at
 * `mountPoint` in this (host) mount namespace: a remount without MS_BIND changes them for every
 * mount of that superblock.
 */
export function hostSuperOptions(mountPoint: string): string | undefined {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[4] === mountPoint)
    .at(-1)
    ?.at(-1);
}

function hostMountPoints(): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split(" ")[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

// ------------------------------------------------------------------ running

export interface RunOptions {
  /** Bytes for stdin; default: stdin is /dev/null. */
  input?: string | Uint8Array;
  /** Extra environment (merged over a minimal default environment). */
  env?: Record<string, string | undefined>;
  /** MACHINA_STATE_DIR for this run (required: tests never use /run/machina). */
  stateDir?: string;
  timeoutMs?: number;
  /** Extra fds (index 3...) for the child, e.g. a status pipe. */
  stdio?: Array<number | "pipe" | "ignore">;
  /** A command prefix, e.g. ["setpriv", "--bounding-set=-sys_resource", "--"]. */
  wrapper?: string[];
}

export interface RunResult {
  code: number;
  /** Name of the signal that killed the process, if any (never expected for the supervisor). */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** stderr lines, without empty ones. */
  lines: string[];
  ms: number;
}

export function baseEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", TERM: "xterm" };
  if (process.env.HOME) env.HOME = process.env.HOME;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

async function collect(cmd: string[], opts: RunOptions, scratch?: Scratch): Promise<RunResult> {
  const t0 = performance.now();
  const p = spawn([...(opts.wrapper ?? []), ...cmd], {
    stdin: opts.input === undefined ? "ignore" : typeof opts.input === "string" ? Buffer.from(opts.input) : opts.input,
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ ...(opts.stateDir ? { MACHINA_STATE_DIR: opts.stateDir } : {}), ...opts.env }),
  });
  scratch?.track(p);
  const timeout = opts.timeoutMs ?? 20_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, timeout);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  if (timedOut) throw new Error(`timed out after ${timeout} ms: ${cmd.join(" ")}\nstdout: ${stdout}\nstderr: ${stderr}`);
  return {
    code: p.exitCode ?? -1,
    signal: p.signalCode === null || p.signalCode === undefined ? null : String(p.signalCode),
    stdout,
    stderr,
    lines: stderr.split("\n").filter((l) => l.length > 0),
    ms: performance.now() - t0,
  };
}

/** Run `machina-nspawn ARGS` to completion. */
export function runNspawn(args: string[], opts: RunOptions = {}, scratch?: Scratch): Promise<RunResult> {
  return collect([MACHINA_NSPAWN, ...args], opts, scratch);
}

/** The line systemd-nspawn 252 prints on this host at every exit (see docs/FIXTURES.md). */
export const NSPAWN_PROPAGATE_NOISE = /^Attempted to remove disk file system under "\/run\/systemd\/nspawn\/propagate\/.*", and we can't allow that\.$/;

/**
 * Run the real `systemd-nspawn --register=no --keep-unit ARGS` in a cgroup of its own (as
 * test/fixtures/nspawn-boot-check.sh does), so it neither uses nor leaves the shared
 * /payload and /supervisor cgroups of the root; removes that cgroup and nspawn's propagate
 * directory afterwards. `machine` must be the -M name (or the directory's name).
 */
export async function runSystemdNspawn(args: string[], machine: string, opts: RunOptions = {}): Promise<RunResult> {
  const cg = `machina-it-${uniqueName("ns")}`;
  const dirs = [`${CGROUP_V1_SYSTEMD}/${cg}`, `${CGROUP_V2}/${cg}`];
  const script = `echo $$ > ${dirs[0]}/cgroup.procs && echo $$ > ${dirs[1]}/cgroup.procs && exec systemd-nspawn --register=no --keep-unit "$@"`;
  for (const d of dirs) Bun.spawnSync(["mkdir", "-p", d]);
  try {
    const r = await collect(["sh", "-c", script, "sh", ...args], opts);
    const lines = r.lines.filter((l) => !NSPAWN_PROPAGATE_NOISE.test(l));
    return { ...r, lines, stderr: lines.map((l) => `${l}\n`).join("") };
  } finally {
    for (const d of dirs) {
      for (let i = 0; i < 50; i++) {
        try {
          removeCgroupTree(d);
          break;
        } catch {
          for (const pid of cgroupPidsBelow(d)) {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // gone
            }
          }
          await Bun.sleep(40);
        }
      }
    }
    rmSync(`/run/systemd/nspawn/propagate/${machine}`, { recursive: true, force: true });
  }
}

export function haveSystemdNspawn(): boolean {
  return Bun.spawnSync(["sh", "-c", "command -v systemd-nspawn"]).exitCode === 0;
}

/** A container running in the background. */
export interface Background {
  proc: Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  stdout: Promise<string>;
  stderr: Promise<string>;
  /** Resolves with the exit status (128+N if killed by a signal). */
  exited: Promise<number>;
}

export function startNspawn(args: string[], opts: RunOptions & { wrapper?: string[] }, scratch: Scratch): Background {
  const proc = spawn([...(opts.wrapper ?? []), MACHINA_NSPAWN, ...args], {
    stdin: opts.input === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ ...(opts.stateDir ? { MACHINA_STATE_DIR: opts.stateDir } : {}), ...opts.env }),
  }) as Subprocess<"ignore" | "pipe", "pipe", "pipe">;
  scratch.track(proc);
  return {
    proc,
    stdout: new Response(proc.stdout).text(),
    stderr: new Response(proc.stderr).text(),
    exited: proc.exited,
  };
}

export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, stepMs = 20): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(stepMs);
  }
}

// ------------------------------------------------------------------ registry

export interface MachineState {
  leader: number;
  supervisor: number;
  name: string;
  root: string;
  uuid: string;
  boot: boolean;
  cgroup: string;
  [k: string]: unknown;
}

export function statePath(stateDir: string, name: string): string {
  return `${stateDir}/machines/${name}/state.json`;
}

export function readState(stateDir: string, name: string): MachineState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(stateDir, name), "utf8")) as MachineState;
  } catch {
    return undefined;
  }
}

/**
 * Wait for state.json of `name`, optionally for a leader different from `notLeader`. With `bg`,
 * give up at once (with its stderr) when that supervisor exits first.
 */
export async function waitForState(stateDir: string, name: string, notLeader?: number, timeoutMs = 10_000, bg?: Background): Promise<MachineState> {
  return waitFor(
    `state.json of ${name}`,
    async () => {
      const s = readState(stateDir, name);
      if (s && s.leader !== notLeader) return s;
      if (bg && (bg.proc.exitCode !== null || bg.proc.signalCode !== null))
        throw new Error(`the supervisor of ${name} exited (${bg.proc.exitCode ?? bg.proc.signalCode}) before state.json appeared: ${(await bg.stderr).trim()}`);
      return undefined;
    },
    timeoutMs,
  );
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ leftovers

export interface Snapshot {
  /** host mount points */
  mounts: string[];
  /** cgroup directories below machine.slice in both hierarchies */
  cgroups: string[];
  /** entries below $stateDir/machines */
  state: string[];
  /** this test process's machines in systemd-machined's records (/run/systemd/machines: files and unit: links) */
  records: string[];
}

/**
 * What this test process could have left behind: mounts below the temp dir or the fixture cache,
 * machine cgroups whose name was made by uniqueName() in this process, and state entries.
 * (Other users of the host — benchmarks, other test runs — may create their own meanwhile.)
 */
export function leftovers(stateDir: string): Snapshot {
  const tag = unitEscape(`-${process.pid.toString(36)}`);
  const cgroups: string[] = [];
  for (const slice of MACHINE_SLICES) {
    try {
      for (const e of readdirSync(slice, { withFileTypes: true })) if (e.isDirectory() && e.name.includes(tag)) cgroups.push(`${slice}/${e.name}`);
    } catch {
      // no slice yet
    }
  }
  let state: string[] = [];
  try {
    state = readdirSync(`${stateDir}/machines`);
  } catch {
    // none
  }
  const ours = (p: string) => p.startsWith(`${tmpdir()}/machina-`) || p.startsWith(process.env.MACHINA_FIXTURE_CACHE ?? "/var/cache/machina-test");
  let records: string[] = [];
  try {
    records = readdirSync("/run/systemd/machines").filter((n) => n.includes(tag) || n.includes(`-${process.pid.toString(36)}`));
  } catch {
    // none
  }
  return { mounts: hostMountPoints().filter(ours), cgroups, state, records };
}

/** What `after` has that `before` has not (only entries that could be ours: `filter`). */
export function newLeftovers(before: Snapshot, after: Snapshot): Snapshot {
  const added = (a: string[], b: string[]) => b.filter((x) => !a.includes(x));
  return {
    mounts: added(before.mounts, after.mounts),
    cgroups: added(before.cgroups, after.cgroups),
    state: added(before.state, after.state),
    records: added(before.records, after.records),
  };
}

export const NOTHING: Snapshot = { mounts: [], cgroups: [], state: [], records: [] };

/** The pid namespace of `pid` ("pid:[4026532185]"), or undefined when it is gone. */
export function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** Live processes in the pid namespace `ns` (i.e. still running inside that container). */
export function processesIn(ns: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(e)) continue;
    if (pidNamespace(Number(e)) === ns && alive(Number(e))) pids.push(Number(e));
  }
  return pids;
}

// ------------------------------------------------------------------ images

/** `cp -a --reflink=auto SRC DEST` (DEST must not exist). */
export function copyTree(src: string, dest: string): void {
  const r = Bun.spawnSync(["cp", "-a", "--reflink=auto", src, dest], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`cp -a ${src} ${dest}: ${r.stderr.toString()}`);
}

export function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** nsenter into all namespaces of `leader` and run a command. */
export async function nsenter(leader: number, cmd: string[], timeoutMs = 20_000): Promise<RunResult> {
  return collect(["nsenter", "-t", String(leader), "-a", ...cmd], { timeoutMs });
}

/** Run a shell command synchronously; its stdout, or an Error with its stderr when it fails. */
export function shOk(cmd: string): string {
  const r = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** bin/machinactl, synchronously, with exactly the given environment. */
export function machinactlSync(env: Record<string, string>, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync([join(REPO, "bin/machinactl"), ...args], { env, stdout: "pipe", stderr: "pipe" });
  return { status: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

let filesRuns = 0;
/**
 * Run argv with its stdout and stderr (and, with `status`, its fd 3) written to files in `dir` —
 * a container the command leaves running may keep a pipe open — and return what they got.
 */
export function runToFiles(
  dir: string,
  argv: string[],
  o: { env: Record<string, string>; cwd: string; status?: boolean },
): { code: number; stdout: string; stderr: string; status: string } {
  const n = ++filesRuns;
  const paths = ["out", "err", "status"].map((k) => join(dir, `${k}-${process.pid}-${n}`));
  const fds = paths.map((f) => openSync(f, "w"));
  try {
    const r = Bun.spawnSync(argv, { env: o.env, cwd: o.cwd, stdio: ["ignore", fds[0]!, fds[1]!, ...(o.status ? [fds[2]!] : [])] });
    const [stdout, stderr, status] = paths.map((f) => readFileSync(f, "utf8")) as [string, string, string];
    return { code: r.exitCode ?? -1, stdout, stderr, status };
  } finally {
    for (const fd of fds) closeSync(fd);
    for (const f of paths) rmSync(f, { force: true });
  }
}

/**
 * A native front end's full program for a test: DIR/full-NAME, a script that records each command
 * line the front end hands it (calls(), in order) and runs PROGRAM with it.
 */
export function recordedFallback(dir: string, name: string, program: string): { path: string; calls(): string[] } {
  const log = join(dir, `full-${name}.calls`);
  const path = join(dir, `full-${name}`);
  writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}\nexec ${program} "$@"\n`);
  chmodSync(path, 0o755);
  return {
    path,
    calls: () =>
      existsSync(log)
        ? readFileSync(log, "utf8")
            .split("\n")
            .filter((l) => l !== "")
        : [],
  };
}
