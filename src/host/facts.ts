/**
 * Facts about the host and the image that spec building needs, gathered through a Host.
 * Everything `spec/` knows about the outside world arrives through these two objects.
 */
import { machinaEnv } from "../config.ts";
import { isElf } from "../elf.ts";
import type { Host } from "./host.ts";
import { parseOsRelease } from "./os-release.ts";
import { chaseInRoot, kindInRoot, readFileInRoot, resolveInRoot, type Chased } from "./resolve-in-root.ts";
import { gatherMountFacts, type MountFacts } from "./mount-facts.ts";

export interface CgroupLayout {
  /** Mount point of the cgroup2 hierarchy, if any (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`). */
  v2: string | undefined;
  /** Mount point of the cgroup v1 `name=systemd` hierarchy, on hybrid and legacy hosts. */
  v1Systemd: string | undefined;
  /** Controllers available in the cgroup2 hierarchy (its root's cgroup.controllers). */
  v2Controllers: string[];
  /** Mount points of cgroup v1 controller hierarchies, by controller (memory, pids, cpu, blkio…). */
  v1Controllers: Record<string, string>;
  /** The cgroup machina-nspawn runs in, per v1 controller (from /proc/self/cgroup). */
  v1Own: Record<string, string>;
  /** The v1 blkio hierarchy has BFQ's files (blkio.bfq.weight instead of blkio.weight). */
  v1BlkioBfq: boolean;
}

/** Is systemd the host's service manager, and what machina-nspawn needs to work with it. */
export interface SystemdFacts {
  /** systemd is PID 1 (sd_booted(): /run/systemd/system exists; MACHINA_SYSTEMD=0|1 overrides). */
  booted: boolean;
  /** Our own cgroup2 path, e.g. "/system.slice/machina-nspawn@web.service" (the "0::" line of /proc/self/cgroup). */
  ownCgroup: string | undefined;
  /** systemd-machined is installed (its D-Bus activation file or its binary exists). */
  machined: boolean;
  /** busctl, by absolute path, if installed. */
  busctl: string | undefined;
}

export interface HostFacts {
  env: Readonly<Record<string, string | undefined>>;
  osRelease: Record<string, string>;
  /** Host path of the os-release file (bind-mounted to /run/host/os-release). */
  osReleasePath: string | undefined;
  stdinTty: boolean;
  stdoutTty: boolean;
  cgroup: CgroupLayout;
  systemd: SystemdFacts;
  /** Zone name when /etc/localtime is a symlink into a zoneinfo directory ("Etc/UTC"). */
  timezone: string | undefined;
  /** Host path of the real localtime file, if any. */
  localtimePath: string | undefined;
  /** Host resolv.conf candidates that exist, by nspawn's names. */
  resolvConf: { host?: string; static?: string; uplink?: string; stub?: string; resolvedRunning: boolean };
  stateDir: string;
  pid: number;
  startTime: string | undefined;
  nowUsec: bigint;
  /** Our RLIMIT_NOFILE hard limit (from /proc/self/limits), inherited by the payload. */
  nofileHard: bigint | "infinity" | undefined;
  /** 32 random hex digits, used when a machine id must be invented. */
  randomId: string;
  /** Kernel architecture (uname -m, from /proc/sys/kernel/arch), e.g. "x86_64". */
  arch: string | undefined;
  /** MemTotal of /proc/meminfo in bytes. */
  memTotal: bigint | undefined;
  /** SELinux is enabled: selinuxfs is mounted (mountinfo) and has its `enforce` file (as libselinux's is_selinux_enabled). */
  selinux: { enabled: boolean; fs: string | undefined };
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface ImageFacts {
  /** Absolute, symlink-free host path of the root directory. */
  root: string;
  exists: boolean;
  isDirectory: boolean;
  hasUsr: boolean;
  osRelease: Record<string, string> | undefined;
  writable: boolean;
  /** Content of /etc/machine-id when it holds a valid id. */
  machineId: string | undefined;
  passwd: PasswdEntry[];
  /** Group memberships by user name (from /etc/group). */
  groups: Array<{ name: string; gid: number; members: string[] }>;
  /** Whether the image has the host's zone file (for --timezone=symlink). */
  hasHostZone: boolean;
  resolvConfKind: ReturnType<Host["lstat"]>;
  localtimeKind: ReturnType<Host["lstat"]>;
  /** Where /etc/resolv.conf and /etc/localtime lead inside the image, when they are symlinks. */
  resolvConfChased?: Chased;
  localtimeChased?: Chased;
  /** For --private-users (host/userns-facts.ts); gathered only when user namespaces are asked for. */
  userns?: import("./userns-facts.ts").UsernsFacts;
  /** Init candidates that exist in the image, in nspawn's order. */
  inits: string[];
  /** For the mount planners (spec/root-modes.ts, spec/journal.ts); absent when the root is no directory. */
  mounts?: MountFacts;
  /** The first of PROGRAM_WITNESSES that is an ELF file, and its first 64 bytes: the image's architecture (settings/architectures.ts). */
  program?: { path: string; header: Uint8Array };
}

/** Where an image's architecture is read: the first of these that is an ELF file (symlinks followed inside the image). */
export const PROGRAM_WITNESSES = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init", "/bin/sh", "/usr/bin/sh", "/bin/busybox"] as const;

/** The first PROGRAM_WITNESSES program of the image at `root` that is an ELF file, with its header. */
export function imageProgram(host: Host, root: string): { path: string; header: Uint8Array } | undefined {
  for (const path of PROGRAM_WITNESSES) {
    const p = resolveInRoot(host, root, path);
    if (p === undefined || host.lstat(p) !== "file") continue;
    let header: Uint8Array;
    try {
      header = host.readAt(p, 0, 64);
    } catch {
      continue;
    }
    if (header.length >= 20 && isElf(header)) return { path, header };
  }
  return undefined;
}

export const INIT_CANDIDATES = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"] as const;

const V1_CONTROLLERS = [
  "cpu",
  "cpuacct",
  "cpuset",
  "memory",
  "devices",
  "freezer",
  "net_cls",
  "blkio",
  "perf_event",
  "net_prio",
  "hugetlb",
  "pids",
  "rdma",
  "misc",
];

export function parseCgroupLayout(mountinfo: string): CgroupLayout {
  let v2: string | undefined;
  let v1Systemd: string | undefined;
  const v1Controllers: Record<string, string> = {};
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep === -1) continue;
    const fields = line.slice(0, sep).split(" ");
    const [fstype, , superOpts = ""] = line.slice(sep + 3).split(" ");
    const mountPoint = unescapeMountinfo(fields[4] ?? "");
    if (fstype === "cgroup2" && (v2 === undefined || mountPoint === "/sys/fs/cgroup")) v2 = mountPoint;
    if (fstype === "cgroup" && superOpts.split(",").includes("name=systemd")) v1Systemd = mountPoint;
    if (fstype === "cgroup")
      for (const c of superOpts.split(",")) if (V1_CONTROLLERS.includes(c) && v1Controllers[c] === undefined) v1Controllers[c] = mountPoint;
  }
  return { v2, v1Systemd, v2Controllers: [], v1Controllers, v1Own: {}, v1BlkioBfq: false };
}

/** `/proc/self/cgroup` -> v1 controller -> path ("4:memory:/a/b" gives memory: "/a/b"). */
export function parseOwnCgroups(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (text ?? "").split("\n")) {
    const m = /^[0-9]+:([^:]+):(.*)$/.exec(line);
    if (m) for (const c of m[1]!.split(",")) out[c] = m[2]!;
  }
  return out;
}

function cgroupLayout(host: Host): CgroupLayout {
  const layout = parseCgroupLayout(host.mountinfo());
  if (layout.v2 !== undefined) layout.v2Controllers = (host.readFile(`${layout.v2}/cgroup.controllers`) ?? "").split(/\s+/).filter((c) => c !== "");
  layout.v1Own = parseOwnCgroups(host.readFile("/proc/self/cgroup"));
  const blkio = layout.v1Controllers["blkio"];
  layout.v1BlkioBfq = blkio !== undefined && host.lstat(`${blkio}/blkio.bfq.io_serviced`) !== undefined;
  return layout;
}

/** Mount point of selinuxfs in mountinfo (normally /sys/fs/selinux). */
export function parseSelinuxfs(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep !== -1 && line.slice(sep + 3).split(" ")[0] === "selinuxfs") return unescapeMountinfo(line.slice(0, sep).split(" ")[4] ?? "");
  }
  return undefined;
}

function selinuxFacts(host: Host): HostFacts["selinux"] {
  const fs = parseSelinuxfs(host.mountinfo());
  return { enabled: fs !== undefined && host.lstat(`${fs}/enforce`) === "file", fs };
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroup2 path of the "0::PATH" line of /proc/self/cgroup. */
export function parseOwnCgroup2(text: string | undefined): string | undefined {
  const m = /^0::(\/.*)$/m.exec(text ?? "");
  return m ? m[1] : undefined;
}

export function systemdFacts(host: Host): SystemdFacts {
  const env = host.env();
  const forced = machinaEnv(env, "MACHINA_SYSTEMD");
  const exists = (p: string) => host.lstat(p) !== undefined;
  return {
    booted: forced ?? host.lstat("/run/systemd/system") === "dir",
    ownCgroup: parseOwnCgroup2(host.readFile("/proc/self/cgroup")),
    machined: ["/usr/share/dbus-1/system-services/org.freedesktop.machine1.service", "/usr/lib/systemd/systemd-machined", "/lib/systemd/systemd-machined"].some(
      exists,
    ),
    busctl: ["/usr/bin/busctl", "/bin/busctl"].find(exists),
  };
}

export function gatherHostFacts(host: Host, stateDir: string): HostFacts {
  const osReleasePath = ["/etc/os-release", "/usr/lib/os-release"].map((p) => host.realpath(p)).find((p): p is string => p !== undefined);
  let timezone: string | undefined;
  if (host.lstat("/etc/localtime") === "symlink") {
    const m = /(?:^|\/)zoneinfo\/(.+)$/.exec(host.readlink("/etc/localtime"));
    if (m) timezone = m[1];
  }
  const existing = (p: string) => (host.lstat(p) !== undefined ? host.realpath(p) : undefined);
  const resolved = existing("/run/systemd/resolve/stub-resolv.conf");
  const pid = host.pid();
  return {
    env: host.env(),
    osRelease: osReleasePath ? parseOsRelease(host.readFile(osReleasePath) ?? "") : {},
    osReleasePath,
    stdinTty: host.isatty(0),
    stdoutTty: host.isatty(1),
    cgroup: cgroupLayout(host),
    systemd: systemdFacts(host),
    timezone,
    localtimePath: existing("/etc/localtime"),
    resolvConf: {
      ...(existing("/etc/resolv.conf") ? { host: existing("/etc/resolv.conf")! } : {}),
      ...(existing("/usr/lib/systemd/resolv.conf") ? { static: existing("/usr/lib/systemd/resolv.conf")! } : {}),
      ...(existing("/run/systemd/resolve/resolv.conf") ? { uplink: existing("/run/systemd/resolve/resolv.conf")! } : {}),
      ...(resolved ? { stub: resolved } : {}),
      resolvedRunning: resolved !== undefined,
    },
    stateDir,
    pid,
    startTime: host.processStartTime(pid),
    nowUsec: host.nowUsec(),
    nofileHard: parseNofileHard(host.readFile("/proc/self/limits")),
    randomId: host.randomHex(16),
    arch: host.readFile("/proc/sys/kernel/arch")?.trim() || undefined,
    memTotal: memTotal(host.readFile("/proc/meminfo")),
    selinux: selinuxFacts(host),
  };
}

function memTotal(text: string | undefined): bigint | undefined {
  const m = /^MemTotal:\s+([0-9]+) kB$/m.exec(text ?? "");
  return m ? BigInt(m[1]!) * 1024n : undefined;
}

export function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || f[0] === "" || line.startsWith("#")) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] || "/", shell: f[6] || "/bin/sh" });
  }
  return out;
}

export function parseGroup(text: string | undefined): ImageFacts["groups"] {
  const out: ImageFacts["groups"] = [];
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || f[0] === "" || line.startsWith("#")) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid) || gid < 0) continue;
    out.push({ name: f[0]!, gid, members: f[3]!.split(",").filter((m) => m.length > 0) });
  }
  return out;
}

export function gatherImageFacts(host: Host, directory: string, hostTimezone: string | undefined): ImageFacts {
  const root = host.realpath(directory) ?? directory;
  const kind = host.lstat(root);
  const base = {
    root,
    exists: kind !== undefined,
    isDirectory: kind === "dir",
  };
  if (kind !== "dir") {
    return {
      ...base,
      hasUsr: false,
      osRelease: undefined,
      writable: false,
      machineId: undefined,
      passwd: [],
      groups: [],
      hasHostZone: false,
      resolvConfKind: undefined,
      localtimeKind: undefined,
      inits: [],
    };
  }
  const osText = readFileInRoot(host, root, "/etc/os-release") ?? readFileInRoot(host, root, "/usr/lib/os-release");
  const machineId = readFileInRoot(host, root, "/etc/machine-id")?.trim();
  const etcResolv = resolveInRoot(host, root, "/etc");
  const program = imageProgram(host, root);
  return {
    ...base,
    hasUsr: kindInRoot(host, root, "/usr") === "dir",
    osRelease: osText === undefined ? undefined : parseOsRelease(osText),
    writable: host.writable(root),
    machineId: machineId && /^[0-9a-f]{32}$/.test(machineId) && !/^0+$/.test(machineId) ? machineId : undefined,
    passwd: parsePasswd(readFileInRoot(host, root, "/etc/passwd")),
    groups: parseGroup(readFileInRoot(host, root, "/etc/group")),
    hasHostZone: hostTimezone !== undefined && kindInRoot(host, root, `/usr/share/zoneinfo/${hostTimezone}`) === "file",
    resolvConfKind: etcResolv === undefined ? undefined : host.lstat(`${etcResolv}/resolv.conf`),
    localtimeKind: etcResolv === undefined ? undefined : host.lstat(`${etcResolv}/localtime`),
    resolvConfChased: etcResolv !== undefined && host.lstat(`${etcResolv}/resolv.conf`) === "symlink" ? chaseInRoot(host, root, "/etc/resolv.conf") : undefined,
    localtimeChased: etcResolv !== undefined && host.lstat(`${etcResolv}/localtime`) === "symlink" ? chaseInRoot(host, root, "/etc/localtime") : undefined,
    mounts: gatherMountFacts(host, root, machineId && /^[0-9a-f]{32}$/.test(machineId) && !/^0+$/.test(machineId) ? machineId : undefined),
    inits: INIT_CANDIDATES.filter((p) => {
      const k = kindInRoot(host, root, p);
      return k === "file";
    }),
    ...(program !== undefined ? { program } : {}),
  };
}

/** The hard limit of "Max open files" in /proc/PID/limits. */
export function parseNofileHard(limits: string | undefined): bigint | "infinity" | undefined {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(limits ?? "");
  if (!m) return undefined;
  return m[1] === "unlimited" ? "infinity" : /^[0-9]+$/.test(m[1]!) ? BigInt(m[1]!) : undefined;
}
