/**
 * Running machines, as machinectl sees them: list, status, properties, processes, signals.
 * The core that machinactl's verbs and machinad's API both call; returns typed data, prints
 * nothing. Reads the registry (registry.ts), /proc and the machines' cgroups through Host;
 * sends signals through it too.
 */
import { MachinaError } from "../errors.ts";
import { type Host, isPermissionError } from "../host/host.ts";
import { parseOsRelease } from "../host/os-release.ts";
import { readFileInRoot } from "../host/resolve-in-root.ts";
import type { Paths } from "../paths.ts";
import { isValidMachineName, SIGRTMIN } from "../settings/values.ts";
import { OCI_CLASS, ociMachines } from "./oci-machines.ts";
import { commandSpec, machineConfinement, runEnter } from "./enter.ts";
import { type Liveness, type MachineState, machinesDir, procStat, scanEntry, scanRegistry } from "./registry.ts";

export interface MachineContext {
  host: Host;
  paths: Paths;
}

export const SIGINT = 2;
export const SIGKILL = 9;
export const SIGTERM = 15;
/** machinectl poweroff: SIGRTMIN+4 to the leader (systemd's "poweroff" signal). */
export const SIGNAL_POWEROFF = SIGRTMIN + 4;
/** The supervisor's stop signal for a booted init (nspawn's kill signal with -b): systemd's "halt". */
export const SIGNAL_HALT = SIGRTMIN + 3;
/** machinectl reboot: SIGINT to the leader (systemd's ctrl-alt-del, i.e. reboot). */
export const SIGNAL_REBOOT = SIGINT;

export interface Machine {
  name: string;
  class: string;
  service: string;
  state: Exclude<Liveness, "dead">;
  leader: number;
  supervisor: number;
  root: string;
  /** UUID with dashes ("" when unknown). */
  uuid: string;
  boot: boolean;
  /** Start time, µs since the epoch (0 when unknown). */
  timestampUsec: number;
  /** Start time, µs of CLOCK_MONOTONIC/boottime (0 when unknown). */
  timestampMonotonicUsec: number;
  /** cgroup2 directory on the host ("" when none) and its path in the hierarchy. */
  cgroupDir: string;
  controlGroup: string;
  unit: string;
  /** All cgroup directories of the machine (v2 first, then v1 ones). */
  cgroups: string[];
  os: string;
  version: string;
  /** The image's architecture (Debian's name; "" when unknown) and whether it runs under qemu-user emulation. */
  architecture: string;
  emulated: boolean;
  /** -Z: SELinux label of the payload, given to what is entered (machine/enter.ts). */
  selinuxContext?: string;
}

export interface MachineSummary {
  machine: string;
  class: string;
  service: string;
  os: string;
  version: string;
  /** The image's architecture ("" when unknown). */
  architecture: string;
  addresses: string[];
  state: Exclude<Liveness, "dead">;
  /** start time, µs since the epoch (0 when unknown): the API's, not machinectl's columns */
  timestampUsec: number;
}

export interface NetworkInfo {
  /** False when the container shares the host's network namespace (addresses are the host's). */
  private: boolean;
  /** Interfaces (not loopback) inside the container: index and name. */
  interfaces: Array<{ index: number; name: string }>;
  addresses: string[];
}

export interface ProcessNode {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string;
}

export interface CgroupNode {
  /** Path in the hierarchy, e.g. "/machine.slice/machine-web.scope/init.scope". */
  path: string;
  processes: ProcessNode[];
  children: CgroupNode[];
}

export interface Resources {
  /** Bytes; undefined when no memory accounting is available. */
  memoryBytes: number | undefined;
  memorySource: "memory.current" | "memory.usage_in_bytes" | undefined;
  tasks: number;
  /** CPU time, µs; undefined when not available. */
  cpuUsec: number | undefined;
}

export interface MachineStatus extends Machine {
  leaderComm: string;
  osPrettyName: string;
  network: NetworkInfo;
  resources: Resources;
  cgroupTree: CgroupNode | undefined;
}

// ------------------------------------------------------------------ registry access

const CLK_TCK = 100;

/** Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host). */
export function cgroup2Mount(host: Host): string | undefined {
  let found: string | undefined;
  for (const line of host.mountinfo().split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(" ")[0];
    if (fstype !== "cgroup2") continue;
    const mp = line.split(" ")[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (found === undefined || mp === "/sys/fs/cgroup") found = mp;
  }
  return found;
}

/** A cgroup directory as its path in the cgroup2 hierarchy ("/machine.slice/…"); the directory when it is not below it. */
export function controlGroupOf(cgroupDir: string, cgMount: string | undefined): string {
  return cgMount !== undefined && cgroupDir.startsWith(`${cgMount}/`) ? cgroupDir.slice(cgMount.length) : cgroupDir;
}

function toMachine(host: Host, s: MachineState, state: Exclude<Liveness, "dead">, cgMount: string | undefined): Machine {
  const cgroupDir = s.cgroup;
  const controlGroup = controlGroupOf(cgroupDir, cgMount);
  const started = procStat(host, s.supervisor)?.startTime ?? s.supervisorStartTime;
  return {
    name: s.name,
    class: s.class,
    service: s.service,
    state,
    leader: s.leader,
    supervisor: s.supervisor,
    root: s.root,
    uuid: s.uuid,
    boot: s.boot,
    timestampUsec: s.startedUsec !== undefined ? Number(s.startedUsec) : 0,
    timestampMonotonicUsec: /^[0-9]+$/.test(started) ? Number(started) * (1_000_000 / CLK_TCK) : 0,
    cgroupDir,
    controlGroup,
    // the scope, or with --keep-unit the service whose payload/ it is
    unit:
      controlGroup
        .split("/")
        .reverse()
        .find((c) => /\.(scope|service)$/.test(c)) ??
      controlGroup.split("/").pop() ??
      "",
    cgroups: s.cgroups,
    os: s.os,
    version: s.version,
    architecture: s.architecture,
    emulated: s.emulated,
    ...(s.selinuxContext !== undefined ? { selinuxContext: s.selinuxContext } : {}),
  };
}

/** Every machine of the registry; `all` includes those starting up or shutting down. Dead entries are cleaned. */
export function listMachines(ctx: MachineContext, options: { all?: boolean } = {}): Machine[] {
  const cgMount = cgroup2Mount(ctx.host);
  const out: Machine[] = [];
  for (const e of scanRegistry(ctx.host, ctx.paths.stateDir, Date.now())) {
    if (e.liveness === "dead" || e.state === undefined) continue;
    if (e.liveness !== "running" && !options.all) continue;
    out.push(toMachine(ctx.host, e.state, e.liveness, cgMount));
  }
  // machina-oci's containers (class "oci"), where a name is not machina's own already
  for (const m of ociMachines(ctx.host, cgMount, options.all === true)) if (!out.some((o) => o.name === m.name)) out.push(m);
  return out;
}

/** One machine by name: E_NOT_FOUND unless it is running (or, with `all`, at least registered). */
export function getMachine(ctx: MachineContext, name: string, options: { all?: boolean } = {}): Machine {
  // this entry alone (reading every machine's made status with 200 running cost 50 ms); a name
  // that is not a machine name has no entry (and must not become a path)
  const e = isValidMachineName(name) ? scanEntry(ctx.host, ctx.paths.stateDir, name, Date.now()) : undefined;
  if (e === undefined || e.state === undefined || e.liveness === "dead" || (e.liveness !== "running" && !options.all)) {
    const oci = ociMachines(ctx.host, cgroup2Mount(ctx.host), options.all === true).find((m) => m.name === name);
    if (oci !== undefined) return oci;
    throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is running`, { machine: name }, "see machinactl list");
  }
  return toMachine(ctx.host, e.state, e.liveness, cgroup2Mount(ctx.host));
}

/** List rows (machinectl's columns) with addresses. */
export function listSummaries(ctx: MachineContext, options: { all?: boolean; maxAddresses?: number } = {}): MachineSummary[] {
  return listMachines(ctx, options).map((m) => {
    const addrs = machineNetwork(ctx.host, m.leader).addresses;
    return {
      machine: m.name,
      class: m.class,
      service: m.service,
      os: m.os,
      version: m.version,
      architecture: m.architecture,
      addresses: options.maxAddresses !== undefined ? addrs.slice(0, options.maxAddresses) : addrs,
      state: m.state,
      timestampUsec: m.timestampUsec,
    };
  });
}

// ------------------------------------------------------------------ network

/** IPv4 addresses from /proc/PID/net/fib_trie (the LOCAL /32 host routes of the netns). */
export function parseFibTrieLocal(text: string): string[] {
  const out: string[] = [];
  const lines = text.split("\n");
  let inLocal = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\S/.test(line)) inLocal = line.startsWith("Local:");
    if (!inLocal) continue;
    const m = /^\s+\|--\s+([0-9.]+)$/.exec(line);
    if (m && /\/32 host LOCAL/.test(lines[i + 1] ?? "")) out.push(m[1]!);
  }
  return [...new Set(out)];
}

/** IPv6 addresses from /proc/PID/net/if_inet6 (global ones: not loopback, not link-local). */
export function parseIfInet6(text: string): Array<{ address: string; index: number; name: string }> {
  const out: Array<{ address: string; index: number; name: string }> = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const hex = f[0]!;
    const scope = parseInt(f[3]!, 16);
    if (scope !== 0) continue; // 0x10 host, 0x20 link
    const groups = hex.match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
    // compress the longest run of zero groups
    let best = -1,
      bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== "0") {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === "0") j++;
      if (j - i > bestLen && j - i > 1) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    const address = best < 0 ? groups.join(":") : `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
    out.push({ address, index: parseInt(f[1]!, 16), name: f[5]! });
  }
  return out;
}

/** Interfaces from /proc/PID/net/igmp ("Idx Device : ..." lines), loopback left out. */
export function parseIgmpInterfaces(text: string): Array<{ index: number; name: string }> {
  const out: Array<{ index: number; name: string }> = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+)\s+(\S+)\s*:/.exec(line);
    if (m && m[2] !== "lo") out.push({ index: Number(m[1]), name: m[2]! });
  }
  return out;
}

/** The container's network as seen through /proc/LEADER/net (its network namespace). */
export function machineNetwork(host: Host, leader: number): NetworkInfo {
  let own: string | undefined;
  let theirs: string | undefined;
  try {
    own = host.readlink("/proc/self/ns/net");
    theirs = host.readlink(`/proc/${leader}/ns/net`);
  } catch {
    return { private: false, interfaces: [], addresses: [] };
  }
  if (own === theirs) return { private: false, interfaces: [], addresses: [] };
  const v4 = parseFibTrieLocal(host.readFile(`/proc/${leader}/net/fib_trie`) ?? "").filter((a) => !a.startsWith("127."));
  const v6 = parseIfInet6(host.readFile(`/proc/${leader}/net/if_inet6`) ?? "");
  const interfaces = parseIgmpInterfaces(host.readFile(`/proc/${leader}/net/igmp`) ?? "");
  return { private: true, interfaces, addresses: [...v4, ...v6.map((a) => a.address)] };
}

// ------------------------------------------------------------------ processes and cgroups

function processNode(host: Host, pid: number): ProcessNode | undefined {
  const st = procStat(host, pid);
  if (st === undefined) return undefined;
  const raw = host.readFile(`/proc/${pid}/cmdline`) ?? "";
  const cmdline = raw.replace(/\0+$/, "").split("\0").join(" ");
  return { pid, ppid: st.ppid, comm: st.comm, cmdline: cmdline || `[${st.comm}]` };
}

function cgroupPids(host: Host, dir: string): number[] {
  return (host.readFile(`${dir}/cgroup.procs`) ?? "")
    .split("\n")
    .filter((l) => l !== "")
    .map(Number)
    .sort((a, b) => a - b);
}

export function cgroupTree(host: Host, dir: string, path: string, depth = 0): CgroupNode {
  const processes = cgroupPids(host, dir)
    .map((p) => processNode(host, p))
    .filter((p): p is ProcessNode => p !== undefined);
  const children: CgroupNode[] = [];
  if (depth < 32)
    for (const name of host.readdir(dir).sort())
      if (host.lstat(`${dir}/${name}`) === "dir") children.push(cgroupTree(host, `${dir}/${name}`, `${path}/${name}`, depth + 1));
  return { path, processes, children };
}

function allPids(node: CgroupNode): number[] {
  return [...node.processes.map((p) => p.pid), ...node.children.flatMap(allPids)];
}

/** Every pid in the machine's cgroup (the whole subtree). */
export function machinePids(host: Host, m: Machine): number[] {
  if (m.cgroupDir === "" || host.lstat(m.cgroupDir) !== "dir") return [m.leader];
  return allPids(cgroupTree(host, m.cgroupDir, m.controlGroup));
}

function numberFrom(text: string | undefined): number | undefined {
  const t = text?.trim();
  return t !== undefined && /^[0-9]+$/.test(t) ? Number(t) : undefined;
}

/** Memory, tasks and CPU from the cgroup files: v2 first, else the machine's v1 hierarchies. */
export function machineResources(host: Host, m: Machine, tree: CgroupNode | undefined): Resources {
  const v1 = (controller: string) => m.cgroups.find((c) => new RegExp(`/${controller}(,[^/]*)?/`).test(c) || c.includes(`/${controller}/`));
  let memoryBytes = m.cgroupDir ? numberFrom(host.readFile(`${m.cgroupDir}/memory.current`)) : undefined;
  let memorySource: Resources["memorySource"] = memoryBytes !== undefined ? "memory.current" : undefined;
  if (memoryBytes === undefined) {
    const dir = v1("memory");
    memoryBytes = dir ? numberFrom(host.readFile(`${dir}/memory.usage_in_bytes`)) : undefined;
    if (memoryBytes !== undefined) memorySource = "memory.usage_in_bytes";
  }
  let tasks = m.cgroupDir ? numberFrom(host.readFile(`${m.cgroupDir}/pids.current`)) : undefined;
  if (tasks === undefined) {
    const dir = v1("pids");
    tasks = dir ? numberFrom(host.readFile(`${dir}/pids.current`)) : undefined;
  }
  if (tasks === undefined) {
    // Count threads of every process of the tree (what pids.current counts).
    const pids = tree ? allPids(tree) : machinePids(host, m);
    tasks = pids.reduce((n, pid) => n + Math.max(1, host.readdir(`/proc/${pid}/task`).length), 0);
  }
  let cpuUsec: number | undefined;
  const cpuStat = m.cgroupDir ? host.readFile(`${m.cgroupDir}/cpu.stat`) : undefined;
  const usage = cpuStat !== undefined ? /^usage_usec (\d+)$/m.exec(cpuStat) : null;
  if (usage) cpuUsec = Number(usage[1]);
  else {
    const dir = v1("cpuacct");
    const ns = dir ? numberFrom(host.readFile(`${dir}/cpuacct.usage`)) : undefined;
    if (ns !== undefined) cpuUsec = Math.floor(ns / 1000);
  }
  return { memoryBytes, memorySource, tasks, cpuUsec };
}

/** Bytes received and sent on the interfaces of the machine's network namespace, lo left out (/proc/LEADER/net/dev). */
export function parseNetDev(text: string | undefined): { rxBytes: number; txBytes: number } | undefined {
  if (text === undefined) return undefined;
  let rxBytes = 0;
  let txBytes = 0;
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (m === null || m[1] === "lo") continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    rxBytes += f[0] ?? 0;
    txBytes += f[8] ?? 0;
  }
  return { rxBytes, txBytes };
}

/** One sample of a machine's counters (the dashboard's graphs, src/daemon/samples.ts). */
export interface MachineSample {
  /** ms since the epoch */
  t: number;
  cpuUsec?: number;
  memoryBytes?: number;
  tasks: number;
  rxBytes?: number;
  txBytes?: number;
}

export function machineSample(host: Host, m: Machine, now: number): MachineSample {
  const r = machineResources(host, m, undefined);
  // network counters only of a network namespace of its own (the host's would count the host's traffic)
  const ns = (pid: string) => {
    try {
      return host.readlink(`/proc/${pid}/ns/net`);
    } catch {
      return undefined;
    }
  };
  const own = ns(String(m.leader));
  const net = own !== undefined && own !== ns("self") ? parseNetDev(host.readFile(`/proc/${m.leader}/net/dev`)) : undefined;
  return {
    t: now,
    tasks: r.tasks,
    ...(r.cpuUsec !== undefined ? { cpuUsec: r.cpuUsec } : {}),
    ...(r.memoryBytes !== undefined ? { memoryBytes: r.memoryBytes } : {}),
    ...(net !== undefined ? net : {}),
  };
}

// ------------------------------------------------------------------ status

/** os-release of the running container, read through its root (symlinks resolved inside it). */
export function machineOsRelease(host: Host, m: Machine): Record<string, string> {
  const root = `/proc/${m.leader}/root`;
  let text: string | undefined;
  try {
    text = readFileInRoot(host, root, "/etc/os-release") ?? readFileInRoot(host, root, "/usr/lib/os-release");
  } catch (e) {
    // another user than root may not look into the container's root: the OS recorded at its start
    if (!isPermissionError(e)) throw e;
  }
  return text !== undefined ? parseOsRelease(text) : {};
}

export function machineStatus(ctx: MachineContext, name: string): MachineStatus {
  const m = getMachine(ctx, name, { all: true });
  const host = ctx.host;
  const tree = m.cgroupDir !== "" && host.lstat(m.cgroupDir) === "dir" ? cgroupTree(host, m.cgroupDir, m.controlGroup) : undefined;
  const osr = machineOsRelease(host, m);
  return {
    ...m,
    os: osr["ID"] ?? m.os,
    version: osr["VERSION_ID"] ?? m.version,
    leaderComm: procStat(host, m.leader)?.comm ?? "",
    osPrettyName: osr["PRETTY_NAME"] ?? osr["NAME"] ?? "",
    network: machineNetwork(host, m.leader),
    resources: machineResources(host, m, tree),
    cgroupTree: tree,
  };
}

/** machinectl show's properties, in its order. */
export function machineProperties(ctx: MachineContext, name: string): Array<[string, string]> {
  const m = getMachine(ctx, name, { all: true });
  const net = machineNetwork(ctx.host, m.leader);
  return [
    ["Name", m.name],
    ["Id", m.uuid.replace(/-/g, "")],
    ["Timestamp", m.timestampUsec ? formatTimestampUsec(m.timestampUsec) : ""],
    ["TimestampMonotonic", String(m.timestampMonotonicUsec)],
    ["Service", m.service],
    ["Unit", m.unit],
    ["Leader", String(m.leader)],
    ["Supervisor", String(m.supervisor)],
    ["Class", m.class],
    ["RootDirectory", m.root],
    ["NetworkInterfaces", net.interfaces.map((i) => i.index).join(" ")],
    ["State", m.state],
  ];
}

/** "Sun 2026-11-29 07:44:12 UTC" (machinectl's style). */
export function formatTimestampUsec(usec: number): string {
  const d = new Date(Math.floor(usec / 1000));
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getUTCDay()];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${day} ${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

// ------------------------------------------------------------------ ps

export interface MachineProcess extends ProcessNode {
  /** The machine the process belongs to ("" for host processes). */
  machine: string;
}

/** Which machine a /proc/PID/cgroup belongs to, by the machines' control groups. */
function machineOfCgroup(procCgroup: string, byGroup: Array<[string, string]>): string {
  for (const line of procCgroup.split("\n")) {
    const m = /^0::(.*)$/.exec(line);
    if (!m) continue;
    const path = m[1]!;
    for (const [group, name] of byGroup) if (path === group || path.startsWith(`${group}/`)) return name;
  }
  return "";
}

/**
 * Host processes with the machine each belongs to (from /proc/PID/cgroup matched against the
 * machines' scopes). With `name`, only that machine's; `all` adds host processes.
 */
export function machineProcesses(ctx: MachineContext, options: { name?: string; all?: boolean } = {}): MachineProcess[] {
  const machines = options.name !== undefined ? [getMachine(ctx, options.name, { all: true })] : listMachines(ctx, { all: true });
  const byGroup: Array<[string, string]> = machines.filter((m) => m.controlGroup !== "").map((m) => [m.controlGroup, m.name]);
  const out: MachineProcess[] = [];
  const pids = ctx.host
    .readdir("/proc")
    .filter((p) => /^[0-9]+$/.test(p))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    const machine = machineOfCgroup(ctx.host.readFile(`/proc/${pid}/cgroup`) ?? "", byGroup);
    if (machine === "" && !options.all) continue;
    const node = processNode(ctx.host, pid);
    if (node !== undefined) out.push({ ...node, machine });
  }
  return out;
}

// ------------------------------------------------------------------ control

export type KillWhom = "leader" | "all";

/**
 * Send `signal` to the leader, or to every process of the machine's cgroup. Returns the pids
 * signalled. A real-time signal for a machine under emulation is sent from inside (insideKill).
 */
export async function killMachine(ctx: MachineContext, name: string, options: { whom?: KillWhom; signal?: number } = {}): Promise<number[]> {
  const m = getMachine(ctx, name, { all: true });
  const signal = options.signal ?? SIGTERM;
  const whom = options.whom ?? "all";
  if (m.emulated && signal >= SIGRTMIN) return (await insideKill(ctx, m, signal, whom)) ? [m.leader] : [];
  const targets = whom === "leader" ? [m.leader] : machinePids(ctx.host, m);
  const sent: number[] = [];
  // Leader first (as systemd does with KillMode=mixed's main process), then the rest.
  for (const pid of [m.leader, ...targets.filter((p) => p !== m.leader)]) {
    if (!targets.includes(pid)) continue;
    if (ctx.host.kill(pid, signal)) sent.push(pid);
  }
  return sent;
}

/**
 * A real-time signal for a machine whose programs run under qemu-user: qemu keeps host real-time
 * signals for itself and maps the guest's to other host numbers (Debian 12's qemu 7.2: guest
 * SIGRTMIN+N is host SIGRTMIN+N+2), so the host's SIGRTMIN+4 would reach the guest's init as
 * SIGRTMIN+2 (emergency mode). Sent instead by kill(1) inside the machine, confined as any
 * command entered (machinactl exec), whose own qemu maps it right. False when that failed.
 */
async function insideKill(ctx: MachineContext, m: Machine, signal: number, whom: KillWhom): Promise<boolean> {
  const script = whom === "leader" ? `kill -${signal} 1` : `kill -${signal} -1; kill -${signal} 1`;
  const records = commandSpec(ctx.host, m, { command: ["/bin/sh", "-c", script], console: "pipe" }, machineConfinement(ctx.host, ctx.paths.stateDir, m));
  const res = await runEnter(ctx.host, ctx.paths.helper, records);
  return res.status === 0;
}

export async function poweroffMachine(ctx: MachineContext, name: string): Promise<void> {
  await killMachine(ctx, name, { whom: "leader", signal: SIGNAL_POWEROFF });
}

export async function rebootMachine(ctx: MachineContext, name: string): Promise<void> {
  await killMachine(ctx, name, { whom: "leader", signal: SIGNAL_REBOOT });
}

/** Wait until the machine's registry entry is gone; false on timeout. */
export async function waitGone(ctx: MachineContext, name: string, timeoutMs: number): Promise<boolean> {
  const end = ctx.host.monotonicMs() + timeoutMs;
  let pause = 5;
  for (;;) {
    // this entry only (a scan of every machine per poll made stopping N machines at once N²)
    // (a name that is not a machine name has no entry, and must not become a path)
    const registered = isValidMachineName(name) && scanEntry(ctx.host, ctx.paths.stateDir, name, Date.now()) !== undefined;
    const gone = !registered && !ociMachines(ctx.host, undefined, true).some((m) => m.name === name);
    if (gone) return true;
    if (ctx.host.monotonicMs() >= end) return false;
    // 5 ms, then longer, to 50 ms: a stop is seen at once, and N machines stopping together are not polled N times every 10 ms
    await ctx.host.sleep(pause);
    pause = Math.min(50, pause * 1.5);
  }
}

/**
 * Stop the machine: SIGTERM to its supervisor (which sends the container's kill signal:
 * SIGRTMIN+3 to a booted init, SIGKILL otherwise); after `timeoutMs`, SIGKILL to every process of
 * the container — its supervisor then undoes what it made (network, mounts, cgroups) as after any
 * exit; only a supervisor that is still there 5 s later is killed too (its leftovers are swept at
 * the next start). Returns once the entry is gone. (An init that has not yet set a handler for
 * the stop signal never gets it: a PID namespace's init is sent only the signals it handles.)
 */
export async function terminateMachine(ctx: MachineContext, name: string, options: { timeoutMs?: number } = {}): Promise<"stopped" | "killed"> {
  const m = getMachine(ctx, name, { all: true });
  if (m.class === OCI_CLASS) {
    // no supervisor: every process of the container at once, as machinectl's terminate of a scope;
    // its state stays for the runtime's caller (conmon, the shim) to delete
    for (const pid of machinePids(ctx.host, m)) ctx.host.kill(pid, SIGKILL);
    ctx.host.kill(m.leader, SIGKILL);
    if (!(await waitGone(ctx, name, options.timeoutMs ?? 10_000)))
      throw new MachinaError("E_BUSY", `machine "${name}" did not go away after SIGKILL`, { machine: name });
    return "killed";
  }
  // under emulation the supervisor's SIGRTMIN+3 would arrive as another signal (insideKill): halt from inside
  if (!(m.emulated && m.boot && (await insideKill(ctx, m, SIGNAL_HALT, "leader")))) ctx.host.kill(m.supervisor, SIGTERM);
  if (await waitGone(ctx, name, options.timeoutMs ?? 10_000)) return "stopped";
  for (const pid of machinePids(ctx.host, m)) ctx.host.kill(pid, SIGKILL);
  if (await waitGone(ctx, name, 5_000)) return "killed";
  ctx.host.kill(m.supervisor, SIGKILL);
  if (!(await waitGone(ctx, name, 5_000))) throw new MachinaError("E_BUSY", `machine "${name}" did not go away after SIGKILL`, { machine: name });
  return "killed";
}

/** state.json of a registered machine (running or not), for modules that need the raw entry. */
export function machineEntryDir(paths: Paths, name: string): string {
  return `${machinesDir(paths.stateDir)}/${name}`;
}
