/**
 * buildSpec: Settings + image facts + host facts -> RunSpec. Pure: every decision about how a
 * container is set up is made here, and unit tests assert the result exactly.
 */
import { MachinaError, invalidError, usageError } from "../errors.ts";
import type { HostFacts, ImageFacts } from "../host/facts.ts";
import { NSPAWN_DEFAULT_CAPS, capabilityMask, type CapabilityName } from "../settings/capabilities.ts";
import { machineNameFromDirectory } from "../settings/machine-name.ts";
import { parseNspawnEnvironment, type NspawnEnvironment } from "../settings/nspawn-env.ts";
import type { Settings } from "../settings/settings.ts";
import { SIGRTMIN, uuidFromHex } from "../settings/values.ts";
import { bindUserOps, planBindUsers } from "./bind-user.ts";
import { credentialDirOps, credentialEnv, credentialOps } from "./credentials.ts";
import { containerDeviceRules } from "./devices.ts";
import { planJournal } from "./journal.ts";
import { MS, S_IF, mangleMountOptions, propagationFlags } from "./mount-flags.ts";
import { userMountPlan } from "./mounts-user.ts";
import { personalityValue } from "./process.ts";
import { machinedRegistration, resourcePlan } from "./resources.ts";
import { machinedRecords } from "./machined-records.ts";
import { MACHINED_SERVICE, chainOnExit, machinedRegisterCommand, machinedUnregisterCommand } from "./register.ts";
import { planRoot } from "./root-modes.ts";
import { stateJsonWithConfinement } from "./confinement.ts";
import { seccompFilters } from "./seccomp.ts";
import { checkSelinux, labelApiFs, labelRootMode } from "./selinux.ts";
import { applyUserns, planUserns } from "./userns.ts";
import { netExitMarkPath, netnsPath, routedNetwork, wantsManagedNetwork, wantsPreparedNetns } from "./network.ts";
import type { CreateMode, ExecCandidate, ImageLock, Namespace, RunSpec, SetupOp, SpecConsole } from "./types.ts";

import { DEFAULT_PATH } from "./default-path.ts";
import { architectureOfElf, foreignArchitecture, signalForEmulated, type Architecture } from "../settings/architectures.ts";
export { DEFAULT_PATH };

/** The image's architecture when the host runs it only under emulation (binfmt_misc with qemu-user). */
export function foreignImage(image: ImageFacts, host: HostFacts): Architecture | undefined {
  return image.program === undefined ? undefined : foreignArchitecture(host.arch, image.program.header);
}

export interface BuildOptions {
  prog: string;
  statusFd?: number;
  /**
   * argv of the at-exit undo (`machina-net teardown`: the network, a foreign architecture's
   * binfmt_misc claim), run by the supervisor at exit when there is one; the machine name is appended.
   */
  netTeardown?: string[];
  /** This start holds a claim on machina's binfmt_misc entry (runtime/binfmt.ts): the at-exit command releases it. */
  binfmtClaim?: boolean;
  /** Host mounts made for this container (a raw image's file system, -i), detached by the supervisor at exit. */
  hostUmounts?: string[];
  /** Their record and its directory, removed by the supervisor right after them. */
  hostRemoves?: string[];
  /** Image locks the supervisor holds (src/image/in-use.ts); their images are listed in state.json. */
  imageLocks?: ImageLock[];
}

/** The name the machine runs under: -M, else derived from the directory. */
export function machineName(settings: Settings, image: ImageFacts): string {
  if (settings.machine !== undefined) return settings.machine;
  const derived = machineNameFromDirectory(image.root);
  if (derived === undefined) throw invalidError(`cannot derive a machine name from "${image.root}"`, { path: image.root }, "use -M NAME");
  return derived;
}

/** How the user asked for a setting: the flag, or FILE:LINE of a settings file. */
function origin(settings: Settings, key: keyof Settings): string {
  const src = settings.provenance.get(key);
  if (src?.kind === "cli") return src.flag;
  if (src?.kind === "file") return `${src.file}:${src.line}`;
  return String(key);
}

/**
 * Settings that were asked for but that this build does not carry out yet. Each is refused
 * (never silently ignored); the list shrinks as features land.
 */
export function unimplementedSettings(s: Settings): string[] {
  const set: Array<[keyof Settings, boolean]> = [];
  return [...s.unsupported, ...set.filter(([, on]) => on).map(([key]) => origin(s, key))];
}

/** Refuse what cannot work, before anything is touched. */
export function checkRunnable(settings: Settings, image: ImageFacts, host: HostFacts): void {
  const missing = unimplementedSettings(settings);
  if (missing.length > 0) {
    const flags = [...new Set(missing)].join(", ");
    throw new MachinaError("E_UNSUPPORTED", `not supported by this version of machina-nspawn yet: ${flags}`, {
      flag: missing[0]!,
    });
  }
  if (settings.directory === undefined) throw new MachinaError("E_USAGE", "no container root given", {}, "use -D DIRECTORY (see --help)");
  checkSelinux(settings, host);
  // --private-network may go with it (nspawn accepts the pair: the namespace is joined)
  if (settings.networkNamespacePath !== undefined && wantsManagedNetwork(settings))
    throw new MachinaError("E_USAGE", `${origin(settings, "networkNamespacePath")} may not be combined with other network options`, {
      flag: origin(settings, "networkNamespacePath"),
    });
  if (settings.ports.length > 0 && !routedNetwork(settings))
    throw new MachinaError(
      "E_USAGE",
      `${origin(settings, "ports")} needs --network-veth or --network-zone= (machina forwards to the address it gave the container)`,
      { flag: origin(settings, "ports") },
    );
  if (!image.exists) throw new MachinaError("E_NOT_FOUND", `directory "${settings.directory}" does not exist`, { path: settings.directory });
  if (!image.isDirectory) throw invalidError(`"${settings.directory}" is not a directory`, { path: settings.directory });
  if (image.root === "/") throw invalidError("refusing to use the host's root directory as a container", { path: image.root });
  if (!image.hasUsr && !settings.ociRuntime)
    throw invalidError(`directory "${image.root}" doesn't look like an OS tree (/usr/ is missing); refusing`, { path: image.root });
  if (settings.boot) {
    if (image.osRelease === undefined)
      throw invalidError(`directory "${image.root}" has no os-release file (/etc/os-release or /usr/lib/os-release); refusing to boot it`, {
        path: image.root,
      });
    if (image.inits.length === 0)
      throw invalidError(`no init found in "${image.root}" (looked for ${["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"].join(", ")})`, {
        path: image.root,
      });
  }
  if (host.cgroup.v2 === undefined)
    throw new MachinaError("E_UNSUPPORTED", "this host has no cgroup2 hierarchy mounted", {}, "mount -t cgroup2 none /sys/fs/cgroup/unified");
}

export function retainedCapabilities(settings: Settings): CapabilityName[] {
  const base = new Set<CapabilityName>(NSPAWN_DEFAULT_CAPS);
  if (settings.privateNetwork) base.add("CAP_NET_ADMIN");
  for (const c of settings.capabilities) base.add(c);
  if (settings.dropCapabilities === "all") base.clear();
  else for (const c of settings.dropCapabilities) base.delete(c);
  return [...base];
}

function consoleMode(settings: Settings, host: HostFacts): SpecConsole {
  const tty = host.stdinTty && host.stdoutTty;
  switch (settings.console) {
    case undefined:
      return tty ? "interactive" : "read-only";
    case "autopipe":
      return tty ? "interactive" : "pipe";
    default:
      return settings.console;
  }
}

interface UserInfo {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
  name: string;
}

function resolveUser(settings: Settings, image: ImageFacts): UserInfo | undefined {
  const wanted = settings.user;
  if (wanted === undefined) return undefined;
  // An OCI config's numeric user: its gid and groups exactly, the home directory from passwd if listed.
  const ids = settings.userIds;
  if (ids !== undefined && wanted === String(ids.uid)) {
    const entry = image.passwd.find((p) => p.uid === ids.uid);
    return {
      uid: ids.uid,
      gid: ids.gid,
      groups: [...new Set(ids.additionalGids)],
      home: entry?.home ?? (ids.uid === 0 ? "/root" : "/"),
      name: entry?.name ?? wanted,
    };
  }
  // As nspawn (change_uid_gid): root always exists — uid 0, gid 0, no supplementary groups,
  // home /root — whether or not the image has an /etc/passwd.
  if (wanted === "root" || wanted === "0") return { uid: 0, gid: 0, groups: [], home: "/root", name: wanted };
  const entry = /^[0-9]+$/.test(wanted) ? image.passwd.find((p) => p.uid === Number(wanted)) : image.passwd.find((p) => p.name === wanted);
  if (entry === undefined) {
    if (/^[0-9]+$/.test(wanted)) {
      const uid = Number(wanted);
      if (uid > 0xfffffffe) throw invalidError(`invalid value "${wanted}" for --user: a numeric user is at most 4294967294`, { flag: "--user", value: wanted });
      return { uid, gid: uid, groups: [], home: "/", name: wanted };
    }
    throw new MachinaError("E_NOT_FOUND", `user "${wanted}" not found in the container's /etc/passwd`, { flag: "--user", value: wanted });
  }
  const groups = image.groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid);
  return { uid: entry.uid, gid: entry.gid, groups: [...new Set(groups)], home: entry.home, name: entry.name };
}

/** The container's UUID: --uuid, else the image's machine id, else a fresh random one. */
export function containerUuid(settings: Settings, image: ImageFacts, host: HostFacts): string {
  return settings.uuid ?? uuidFromHex(image.machineId ?? host.randomId);
}

function devOps(privateNetwork: boolean): SetupOp[] {
  const ops: SetupOp[] = [
    {
      op: "mount",
      source: "tmpfs",
      target: "/dev",
      fstype: "tmpfs",
      flags: MS.NOSUID | MS.STRICTATIME,
      data: "mode=0755,size=4m,nr_inodes=64k",
      create: "dir",
    },
  ];
  const nodes: Array<[string, number, number]> = [
    ["null", 1, 3],
    ["zero", 1, 5],
    ["full", 1, 7],
    ["random", 1, 8],
    ["urandom", 1, 9],
    ["tty", 5, 0],
  ];
  if (privateNetwork) nodes.push(["net/tun", 10, 200]);
  for (const [name, major, minor] of nodes) ops.push({ op: "mknod", path: `/dev/${name}`, mode: S_IF.CHR | 0o666, major, minor });
  for (const [name, major, minor] of nodes) ops.push({ op: "symlink", target: `../${name}`, path: `/dev/char/${major}:${minor}` });
  ops.push(
    {
      op: "mount",
      source: "tmpfs",
      target: "/dev/shm",
      fstype: "tmpfs",
      flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
      data: "mode=1777,size=10%,nr_inodes=400k",
      create: "dir",
    },
    {
      op: "mount",
      source: "devpts",
      target: "/dev/pts",
      fstype: "devpts",
      flags: MS.NOSUID | MS.NOEXEC,
      data: "newinstance,ptmxmode=0666,mode=620,gid=5",
      create: "dir",
    },
    { op: "symlink", target: "pts/ptmx", path: "/dev/ptmx" },
    { op: "mount", source: "mqueue", target: "/dev/mqueue", fstype: "mqueue", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "dir" },
    { op: "symlink", target: "/proc/self/fd", path: "/dev/fd" },
    { op: "symlink", target: "/proc/self/fd/0", path: "/dev/stdin" },
    { op: "symlink", target: "/proc/self/fd/1", path: "/dev/stdout" },
    { op: "symlink", target: "/proc/self/fd/2", path: "/dev/stderr" },
  );
  return ops;
}

const RO_API = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC;

/** /run/host/inaccessible: one empty node of each kind, the sources of the `mask` op. */
function inaccessibleOps(): SetupOp[] {
  return [
    { op: "mkdir", path: "/run/host/inaccessible", mode: 0o755 },
    { op: "mknod", path: "/run/host/inaccessible/reg", mode: S_IF.REG, major: 0, minor: 0 },
    { op: "mkdir", path: "/run/host/inaccessible/dir", mode: 0 },
    { op: "mknod", path: "/run/host/inaccessible/chr", mode: S_IF.CHR, major: 0, minor: 0 },
    { op: "mknod", path: "/run/host/inaccessible/blk", mode: S_IF.BLK, major: 0, minor: 0 },
    { op: "mknod", path: "/run/host/inaccessible/fifo", mode: S_IF.FIFO, major: 0, minor: 0 },
    { op: "mknod", path: "/run/host/inaccessible/sock", mode: S_IF.SOCK, major: 0, minor: 0 },
  ];
}

function runHostOps(host: HostFacts, uuid: string, beforeSeal: SetupOp[] = []): SetupOp[] {
  const ops: SetupOp[] = [
    {
      op: "mount",
      source: "tmpfs",
      target: "/run",
      fstype: "tmpfs",
      flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
      data: "mode=0755,size=20%,nr_inodes=800k",
      create: "dir",
    },
    { op: "mkdir", path: "/run/host", mode: 0o755 },
    ...inaccessibleOps(),
    { op: "mkdir", path: "/run/host/incoming", mode: 0o700 },
  ];
  if (host.osReleasePath !== undefined)
    ops.push({ op: "mount", source: host.osReleasePath, target: "/run/host/os-release", fstype: "", flags: MS.BIND | RO_API, data: "", create: "file" });
  ops.push(
    { op: "write", path: "/run/host/container-manager", mode: 0o444, content: "systemd-nspawn\n" },
    { op: "write", path: "/run/host/container-uuid", mode: 0o444, content: `${uuid}\n` },
    { op: "notify", path: "/run/host/notify" },
    ...beforeSeal,
    { op: "rebind", target: "/run/host", flags: RO_API, optional: false },
  );
  return ops;
}

/**
 * The signal the supervisor sends the container's init on SIGTERM: --kill-signal, else SIGRTMIN+3
 * (halt) for a boot and SIGKILL otherwise, as nspawn; an emulated init gets it through qemu-user,
 * which shifts the real-time signals (signalForEmulated).
 */
function killSignalFor(settings: Settings, image: ImageFacts, host: HostFacts): number {
  const signal = settings.killSignal ?? (settings.boot ? SIGRTMIN + 3 : 9);
  return foreignImage(image, host) !== undefined ? signalForEmulated(signal) : signal;
}

/** systemd's drop-in for every service of an emulated boot (emulatedBootOps). */
export const EMULATED_BOOT_DROPIN = "/run/systemd/system/service.d/50-machina-qemu-user.conf";
/** Units masked (in /run, for this boot) under qemu-user: they cannot run there. */
export const EMULATED_BOOT_MASKED = ["systemd-networkd.service", "systemd-networkd.socket"];

/**
 * A booted image under qemu-user: systemd sets up a service's credentials in a child cloned with
 * CLONE_NEWNS, which qemu-user refuses (EINVAL), so every unit with LoadCredential= or
 * SetCredential= fails (systemd-sysusers, systemd-tmpfiles-setup…) and the system is degraded.
 * A runtime drop-in for all services empties those lists; the units run as on a host without
 * credentials. systemd-networkd cannot run either (qemu-user's netlink has no NETLINK_GENERIC:
 * "Could not setup manager: Protocol not supported"): it is masked for this boot, and a managed
 * network configures host0 from outside (net/plan.ts). Only /run of this container is touched,
 * not the image.
 */
function emulatedBootOps(settings: Settings, image: ImageFacts, host: HostFacts): SetupOp[] {
  if (!settings.boot || foreignImage(image, host) === undefined) return [];
  const dirs = ["/run/systemd", "/run/systemd/system", "/run/systemd/system/service.d"];
  return [
    ...dirs.map((path): SetupOp => ({ op: "mkdir", path, mode: 0o755 })),
    {
      op: "write",
      path: EMULATED_BOOT_DROPIN,
      mode: 0o644,
      content:
        "# machina: this container runs under qemu-user, which cannot set up service credentials\n[Service]\nLoadCredential=\nLoadCredentialEncrypted=\nSetCredential=\nSetCredentialEncrypted=\n",
    },
    ...EMULATED_BOOT_MASKED.map((unit): SetupOp => ({ op: "symlink", target: "/dev/null", path: `/run/systemd/system/${unit}` })),
  ];
}

/** /proc; `netWritable`: /proc/sys/net stays writable; `apiWritable`: nothing made read-only ($SYSTEMD_NSPAWN_API_VFS_WRITABLE). */
function procOps(netWritable: boolean, apiWritable = false): SetupOp[] {
  const ops: SetupOp[] = [{ op: "mount", source: "proc", target: "/proc", fstype: "proc", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "dir" }];
  if (!apiWritable) {
    ops.push({ op: "rebind", target: "/proc/sys", flags: RO_API, optional: false });
    if (netWritable) ops.push({ op: "rebind", target: "/proc/sys/net", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, optional: true });
    for (const p of ["acpi", "apm", "asound", "bus", "fs", "irq", "scsi"]) ops.push({ op: "rebind", target: `/proc/${p}`, flags: RO_API, optional: true });
  }
  for (const p of ["kallsyms", "kcore", "keys", "sysrq-trigger", "timer_list"]) ops.push({ op: "mask", path: `/proc/${p}` });
  return ops;
}

/**
 * nspawn's read-only bind of a host file over /etc/resolv.conf or /etc/localtime. A symlink
 * there is followed inside the image (chase with CHASE_NONEXISTENT; it never leads out of
 * the image) and the file it leads to is bound over — created first when only that file is
 * missing and the image is writable; otherwise (dangling into a missing directory, a
 * directory, a read-only image) `fallback` is done instead, and the container starts.
 */
function bindOverEtc(
  cpath: string,
  source: string,
  kind: ImageFacts["localtimeKind"],
  chased: ImageFacts["localtimeChased"],
  writable: boolean,
  fallback: SetupOp[],
): SetupOp[] {
  const mount = (target: string, create: CreateMode): SetupOp[] => [
    { op: "mount", source, target, fstype: "", flags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV, data: "", create },
  ];
  if (kind !== "symlink") return mount(cpath, "file");
  if (chased === undefined || chased.kind === "dir") return fallback;
  if (chased.kind !== undefined) return mount(chased.path, "none");
  return chased.parentIsDir && writable ? mount(chased.path, "file") : fallback;
}

function resolvConfOps(settings: Settings, image: ImageFacts, host: HostFacts, writable: boolean): SetupOp[] {
  let mode = settings.resolvConf;
  if (mode === "off") return [];
  if (mode === "auto") {
    // A container that machina routes (veth, zone) reaches the host's upstream servers, not its stub.
    const routed = routedNetwork(settings);
    if (settings.privateNetwork && !routed) return [];
    const kind = host.resolvConf.resolvedRunning ? (routed ? "uplink" : "stub") : "host";
    mode = writable ? `copy-${kind}` : `bind-${kind}`;
  }
  if (mode === "delete") return writable ? [{ op: "remove", path: "/etc/resolv.conf" }] : [];
  const [action, which] = mode.split("-") as ["copy" | "replace" | "bind", "host" | "static" | "uplink" | "stub"];
  const source = host.resolvConf[which];
  if (source === undefined) return [];
  // a failed bind falls back to nspawn's copy with O_NOFOLLOW: nothing over a symlink
  if (action === "bind") return bindOverEtc("/etc/resolv.conf", source, image.resolvConfKind, image.resolvConfChased, writable, []);
  if (!writable) return [];
  if (action === "copy") {
    // nspawn leaves an existing non-regular file (e.g. a symlink) alone.
    if (image.resolvConfKind !== undefined && image.resolvConfKind !== "file") return [];
    return [{ op: "copy", source, path: "/etc/resolv.conf", mode: 0o644 }];
  }
  return [
    { op: "remove", path: "/etc/resolv.conf" },
    { op: "copy", source, path: "/etc/resolv.conf", mode: 0o644 },
  ];
}

function timezoneOps(settings: Settings, image: ImageFacts, host: HostFacts, writable: boolean): SetupOp[] {
  let mode = settings.timezone;
  if (mode === "off") return [];
  const bind = (): SetupOp[] => {
    const source = host.localtimePath;
    if (source === undefined) return [];
    // a failed bind falls back to nspawn's copy (replacing whatever is there)
    const copy: SetupOp[] = writable
      ? [
          { op: "remove", path: "/etc/localtime" },
          { op: "copy", source, path: "/etc/localtime", mode: 0o644 },
        ]
      : [];
    return bindOverEtc("/etc/localtime", source, image.localtimeKind, image.localtimeChased, writable, copy);
  };
  if (mode === "auto") mode = host.timezone !== undefined ? "symlink" : writable ? "copy" : "bind";
  switch (mode) {
    case "delete":
      return writable ? [{ op: "remove", path: "/etc/localtime" }] : [];
    case "bind":
      return bind();
    case "symlink":
      if (!writable || host.timezone === undefined || !image.hasHostZone) return bind();
      return [
        { op: "remove", path: "/etc/localtime" },
        { op: "symlink", target: `../usr/share/zoneinfo/${host.timezone}`, path: "/etc/localtime" },
      ];
    case "copy":
      if (!writable || host.localtimePath === undefined) return bind();
      return [
        { op: "remove", path: "/etc/localtime" },
        { op: "copy", source: host.localtimePath, path: "/etc/localtime", mode: 0o644 },
      ];
  }
}

function environment(settings: Settings, host: HostFacts, uuid: string, user: UserInfo | undefined, console: SpecConsole): string[] {
  const env = new Map<string, string>();
  const put = (k: string, v: string) => env.set(k, v);
  put("PATH", DEFAULT_PATH);
  put("container", "systemd-nspawn");
  put("container_uuid", uuid);
  for (const [key, name] of [
    ["ID", "container_host_id"],
    ["VERSION_ID", "container_host_version_id"],
    ["BUILD_ID", "container_host_build_id"],
    ["VARIANT_ID", "container_host_variant_id"],
  ] as const) {
    const v = host.osRelease[key];
    if (v !== undefined) put(name, v);
  }
  put("HOME", user?.home ?? "/root");
  put("USER", settings.user ?? "root");
  put("LOGNAME", settings.user ?? "root");
  put("NOTIFY_SOCKET", "/run/host/notify");
  // With a pty the container gets the caller's terminal type (or a safe default); with plain
  // pipes only what the caller has, as nspawn does.
  const term = host.env["TERM"];
  if (term) put("TERM", term);
  else if (console === "interactive" || console === "read-only") put("TERM", "vt220");
  // nspawn always starts PID 1 with the C.UTF-8 locale, whatever the caller's.
  put("LANG", "C.UTF-8");
  for (const entry of settings.environment) {
    const eq = entry.indexOf("=");
    put(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

function execCandidates(settings: Settings, image: ImageFacts): { exec: ExecCandidate[]; args: string[] } {
  if (settings.boot) {
    return { exec: image.inits.map((p) => ({ path: p, argv0: p })), args: settings.command };
  }
  const [cmd, ...rest] = settings.command;
  if (cmd === undefined) {
    // No command: a login shell, bash preferred.
    return {
      exec: [
        { path: "/bin/bash", argv0: "-bash" },
        { path: "/bin/sh", argv0: "-sh" },
      ],
      args: [],
    };
  }
  return { exec: [{ path: cmd, argv0: cmd }], args: rest };
}

const RLIMIT_NOFILE = 7;

/**
 * --rlimit values, plus nspawn's safe default for the payload: a NOFILE soft limit of 1024
 * (select() cannot handle more), the hard limit inherited. nspawn sets its limits with
 * setrlimit_closest(): a limit the container may not raise (no CAP_SYS_RESOURCE in the initial
 * user namespace, e.g. with -U) is clamped to its hard limit and the container starts.
 */
function payloadRlimits(settings: Settings, host: HostFacts): RunSpec["rlimits"] {
  const limits: RunSpec["rlimits"] = settings.rlimits.map((l) => ({ resource: l.resource, soft: l.soft, hard: l.hard, mode: "closest" }));
  const hard = host.nofileHard;
  if (hard !== undefined && !limits.some((l) => l.resource === RLIMIT_NOFILE))
    limits.push({ resource: RLIMIT_NOFILE, soft: hard === "infinity" || hard > 1024n ? 1024n : hard, hard, mode: "exact" });
  return limits;
}

/**
 * The Settings after nspawn's environment variables: $SYSTEMD_SUPPRESS_SYNC where neither the
 * command line nor a file set --suppress-sync; no registration when the UTS namespace is shared
 * (as nspawn).
 */
function withEnvironment(settings: Settings, env: NspawnEnvironment): Settings {
  const s = { ...settings };
  if (env.suppressSync !== undefined && !settings.provenance.has("suppressSync")) s.suppressSync = env.suppressSync;
  if (env.shareUts) s.register = false;
  return s;
}

export function buildSpec(cliSettings: Settings, image: ImageFacts, host: HostFacts, options: BuildOptions): RunSpec {
  const nenv = parseNspawnEnvironment(host.env);
  const settings = withEnvironment(cliSettings, nenv);
  checkRunnable(settings, image, host);
  const name = machineName(settings, image);
  const uuid = containerUuid(settings, image, host);
  if (settings.privateUsers.mode !== "no" && nenv.apiVfs === "rw")
    throw usageError("Cannot combine --private-users with read-write mounts ($SYSTEMD_NSPAWN_API_VFS_WRITABLE)", { flag: "$SYSTEMD_NSPAWN_API_VFS_WRITABLE" });
  if (settings.privateUsers.mode !== "no" && nenv.apiVfs === "network" && !settings.privateNetwork)
    throw usageError("Mounting sysfs with --private-users requires --private-network ($SYSTEMD_NSPAWN_API_VFS_WRITABLE=network)", {
      flag: "$SYSTEMD_NSPAWN_API_VFS_WRITABLE",
    });
  const usernsPlan = planUserns(settings, image.root, name, image.userns, host.randomId);
  const bound = planBindUsers(settings, image, usernsPlan); // --bind-user
  const user = resolveUser(settings, image);
  const rootPlan = planRoot(settings, image); // --volatile, -x, --pivot-root
  const writable = rootPlan.writable;
  const userMounts = userMountPlan(settings, host, usernsPlan); // --bind, --tmpfs, --overlay, --inaccessible
  const journal = planJournal(settings, image, writable);
  const namespaces: Namespace[] = ["mnt", "pid", "uts", "ipc", "cgroup"].filter(
    (ns) =>
      !(ns === "uts" && (nenv.shareUts || settings.utsNamespacePath !== undefined)) &&
      !(ns === "ipc" && (nenv.shareIpc || settings.ipcNamespacePath !== undefined)) &&
      !(ns === "mnt" && settings.mountNamespacePath !== undefined) &&
      !(ns === "pid" && settings.pidNamespacePath !== undefined),
  ) as Namespace[];
  // A network prepared by src/net/ (links moved into it before the start) or --network-namespace-path
  // is joined; otherwise the clone creates it (the helper adds the main veth: net_* records).
  const joinNetns = wantsPreparedNetns(settings) ? netnsPath(host.stateDir, name) : settings.networkNamespacePath;
  if (settings.privateNetwork && joinNetns === undefined) namespaces.push("net");
  const ops = setupOps(settings, image, host, nenv, { uuid, preOps: rootPlan.preOps, writable, bound, journalOps: journal.ops, userOps: userMounts.ops });

  const registry = `${host.stateDir}/machines/${name}`;
  const resources = resourcePlan(settings, name, host);
  const cgroups = resources.cgroups;
  const registration = machinedRegistration(settings, host);
  const records = machinedRecords(settings, host, { name, uuid, cgroupRel: resources.cgroup.slice(host.cgroup.v2!.length + 1) });
  const onExit = exitCommand(settings, host, options, name, registration);
  const retained = retainedCapabilities(settings);
  const stateJson = registryStateJson(settings, image, host, nenv, options, { name, uuid, resources });
  const { exec, args } = execCandidates(settings, image);
  const consoleMode_ = consoleMode(settings, host);

  const spec = applyUserns(
    {
      prog: options.prog,
      machine: name,
      root: image.root,
      readOnly: rootPlan.readOnly,
      namespaces,
      // a UTS namespace joined by path (machina-oci) gets the config's hostname only, as runc
      ...(nenv.shareUts
        ? {}
        : settings.utsNamespacePath !== undefined
          ? settings.hostname !== undefined
            ? { hostname: settings.hostname }
            : {}
          : { hostname: settings.hostname ?? name }),
      statusFd: options.statusFd,
      registry,
      stateJson,
      cgroups,
      killSignal: killSignalFor(settings, image, host),
      boot: settings.boot,
      onReboot: settings.keepUnit ? "exit133" : "restart",
      notifyReady: settings.notifyReady,
      notifyForward: host.env["NOTIFY_SOCKET"] || undefined,
      console: consoleMode_,
      consoleOpost: host.stdoutTty,
      quiet: settings.quiet,
      ops,
      env: [...environment(settings, host, uuid, user, consoleMode_), ...credentialEnv(settings)],
      chdir: settings.chdir,
      capsBounding: capabilityMask(retained),
      capsAmbient: capabilityMask(settings.ambientCapabilities),
      rlimits: payloadRlimits(settings, host),
      noNewPrivs: settings.noNewPrivileges,
      user: user ? { uid: user.uid, gid: user.gid, groups: user.groups } : undefined,
      asPid2: settings.asPid2,
      seccomp: settings.seccompProfile ?? seccompFilters(settings, retained, origin(settings, "systemCallFilter")),
      seccompCache: `${host.stateDir}/seccomp`,
      personality: personalityValue(settings, host),
      oomScoreAdjust: settings.oomScoreAdjust,
      cpuAffinity: settings.cpuAffinity,
      cgroupSets: resources.sets,
      ...(settings.selinuxContext !== undefined ? { selinuxContext: settings.selinuxContext } : {}),
      exec,
      args,
      rootSetup: {
        ...labelRootMode(rootPlan.setup, settings.selinuxApifsContext, settings.ephemeral),
        scratchDirs: [...rootPlan.setup.scratchDirs, ...userMounts.scratchDirs],
        scratchList: `${host.stateDir}/scratch/${name}`,
        hostMkdirs: [...journal.hostMkdirs, ...(records?.mkdirs ?? [])],
        hostSymlinks: journal.hostSymlinks,
      },
      ...(joinNetns !== undefined ? { netns: joinNetns } : {}),
      ...(settings.ipcNamespacePath !== undefined ? { ipcns: settings.ipcNamespacePath } : {}),
      ...(settings.mountNamespacePath !== undefined ? { mntns: settings.mountNamespacePath } : {}),
      ...(settings.pidNamespacePath !== undefined ? { pidns: settings.pidNamespacePath } : {}),
      ...(settings.umask !== undefined ? { umask: settings.umask } : {}),
      ...(settings.ociRootPropagation !== undefined ? { rootPropagation: propagationFlags(settings.ociRootPropagation) } : {}),
      ...(settings.utsNamespacePath !== undefined ? { utsns: settings.utsNamespacePath } : {}),
      ...(onExit !== undefined
        ? { onExit, ...(detachOnExit(settings, host, options) ? { onExitDetach: true, exitMark: netExitMarkPath(host.stateDir, name) } : {}) }
        : {}),
      ...hostSideExtras(options, resources, settings, records?.removes ?? []),
      ...(records !== undefined ? { hostRecords: [records.record], hostRecordLinks: [records.symlink] } : {}),
      ...(registration !== undefined
        ? {
            onLeader: machinedRegisterCommand({
              how: registration,
              name,
              uuid,
              root: image.root,
              busctl: host.systemd.busctl!,
              slice: settings.slice,
              service: nenv.containerService,
            }),
          }
        : {}),
    },
    usernsPlan,
    settings.privateNetwork && joinNetns === undefined,
    bound,
  );
  // A network namespace of its own has its loopback up, as nspawn's loopback_setup() (a managed
  // network's plan, src/net/plan.ts, replaces these records and brings it up too).
  if (namespaces.includes("net")) spec.netOps = [["net_up", "container", "lo"]];
  // what an entered process must get too (src/machine/enter.ts): recorded from the final spec
  return { ...spec, stateJson: stateJsonWithConfinement(stateJson, spec) };
}

/** The container's mounts in order: the root mode's, the API file systems, /run/host, credentials, resolv.conf, timezone, journal, the user's. */
type OciApiMount = NonNullable<Settings["ociApiMounts"]>[number];

/** mount(2) flags and data of an OCI mount's options, over `base` when it gives none of its own. */
function ociMountOptions(m: OciApiMount, base: number, data: string): { flags: number; data: string } {
  if (m.options.length === 0) return { flags: base, data };
  // propagation (never to the host), SELinux relabel requests and runc's tmpcopyup (ociApiOps) are not options of the mount
  const IGNORED = new Set(["private", "rprivate", "slave", "rslave", "z", "Z", "tmpcopyup"]);
  const r = mangleMountOptions(m.options.filter((o) => !IGNORED.has(o)).join(","), 0);
  if ("refused" in r) throw invalidError(`mount ${m.destination}: option "${r.refused}" cannot be honoured`, { value: r.refused });
  // never less than machina's own hardening of the API file systems
  return { flags: r.flags | (base & (MS.NOSUID | MS.NODEV | MS.NOEXEC)), data: r.data };
}

/**
 * machina-oci: the config's API file systems in its order, with its source names and options,
 * each with what machina sets up with it (device nodes and links with /dev, the read-only and
 * masked parts of /proc, the cgroup namespace with /sys/fs/cgroup); /proc, /dev and /dev/pts are
 * added when the config has none (the helper and the payload's terminal need them).
 */
function ociApiOps(settings: Settings, list: readonly OciApiMount[]): SetupOp[] {
  const has = (d: string) => list.some((m) => m.destination === d);
  const dev = devOps(settings.privateNetwork);
  const devBase = dev.filter((o) => !("target" in o && ["/dev/shm", "/dev/pts", "/dev/mqueue"].includes(o.target)) && !("path" in o && o.path === "/dev/ptmx"));
  const pick = (target: string) => dev.find((o) => "target" in o && o.target === target) as Extract<SetupOp, { op: "mount" }>;
  const ptmx: SetupOp = { op: "symlink", target: "pts/ptmx", path: "/dev/ptmx" };
  const ops: SetupOp[] = has("/dev") ? [] : devBase;
  // /proc's read-only and masked parts: once /run/host/inaccessible exists (the masks' sources)
  const procAfter: SetupOp[] = [];
  for (const m of list) {
    const mount = (def: Extract<SetupOp, { op: "mount" }>): Extract<SetupOp, { op: "mount" }> => ({
      ...def,
      source: m.source,
      ...ociMountOptions(m, def.flags, def.data),
      // runc's tmpcopyup (podman --read-only's /run): the tmpfs starts with the image's directory
      ...(def.fstype === "tmpfs" && m.options.includes("tmpcopyup") ? { create: "copyup" as const } : {}),
    });
    switch (m.destination) {
      case "/proc": {
        const [proc, ...rest] = procOps(settings.privateNetwork, false);
        ops.push(mount(proc as Extract<SetupOp, { op: "mount" }>));
        procAfter.push(...rest);
        break;
      }
      case "/dev":
        ops.push(mount(devBase[0] as Extract<SetupOp, { op: "mount" }>), ...devBase.slice(1));
        break;
      case "/dev/pts":
        ops.push(mount(pick("/dev/pts")), ptmx);
        break;
      case "/dev/shm":
      case "/dev/mqueue":
        ops.push(mount(pick(m.destination)));
        break;
      case "/sys":
        ops.push(mount({ op: "mount", source: "sysfs", target: "/sys", fstype: "sysfs", flags: RO_API, data: "", create: "dir" }));
        break;
      case "/sys/fs/cgroup":
        ops.push(
          { op: "cgroupns" },
          mount({
            op: "mount",
            source: "cgroup2",
            target: "/sys/fs/cgroup",
            fstype: "cgroup2",
            flags: MS.NOSUID | MS.NODEV | MS.NOEXEC,
            data: "",
            create: "dir",
          }),
        );
        break;
      case "/run":
        ops.push(
          mount({
            op: "mount",
            source: "tmpfs",
            target: "/run",
            fstype: "tmpfs",
            flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
            data: "mode=0755",
            create: "dir",
          }),
        );
        break;
    }
  }
  if (!has("/dev/pts")) ops.push(pick("/dev/pts"), ptmx);
  if (!has("/proc")) {
    const [proc, ...rest] = procOps(settings.privateNetwork, false);
    ops.push(proc!);
    procAfter.push(...rest);
  }
  if (!has("/sys/fs/cgroup")) ops.push({ op: "cgroupns" });
  // the sources of masks (procOps, --inaccessible, linux.maskedPaths): a small read-only tmpfs
  ops.push(
    { op: "mount", source: "tmpfs", target: "/run/host", fstype: "tmpfs", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "mode=0755,size=64k", create: "dir" },
    ...inaccessibleOps(),
    { op: "rebind", target: "/run/host", flags: RO_API, optional: false },
  );
  return [...ops, ...procAfter];
}

function setupOps(
  settings: Settings,
  image: ImageFacts,
  host: HostFacts,
  nenv: NspawnEnvironment,
  p: { uuid: string; preOps: SetupOp[]; writable: boolean; bound: ReturnType<typeof planBindUsers>; journalOps: SetupOp[]; userOps: SetupOp[] },
): SetupOp[] {
  const { uuid, writable, bound } = p;
  if (settings.ociApiMounts !== undefined) {
    // linux.devices: created in the container's /dev (machina's device policy still decides what opens)
    const devices = (settings.ociDevices ?? []).map((d): SetupOp => ({ op: "mknod", path: d.path, mode: d.mode, major: d.major, minor: d.minor }));
    return labelApiFs([...p.preOps, ...ociApiOps(settings, settings.ociApiMounts), ...devices, ...p.userOps], settings.selinuxApifsContext);
  }
  return labelApiFs(
    [
      ...p.preOps,
      ...(nenv.tmpfsTmp
        ? [
            {
              op: "mount",
              source: "tmpfs",
              target: "/tmp",
              fstype: "tmpfs",
              flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
              data: "mode=1777,size=10%,nr_inodes=400k",
              create: "dir",
            } satisfies SetupOp,
          ]
        : []),
      {
        op: "mount",
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: nenv.apiVfs === "rw" ? MS.NOSUID | MS.NODEV | MS.NOEXEC : RO_API,
        data: "",
        create: "dir",
      },
      ...devOps(settings.privateNetwork),
      ...runHostOps(host, uuid, [...credentialDirOps(settings), ...bindUserOps(bound)]),
      ...credentialOps(settings, host),
      ...emulatedBootOps(settings, image, host),
      ...procOps(settings.privateNetwork || nenv.apiVfs === "network", nenv.apiVfs === "rw"),
      { op: "cgroupns" },
      { op: "mount", source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "none" },
      // nspawn's order (outer_child): the timezone, then resolv.conf
      ...timezoneOps(settings, image, host, writable),
      ...resolvConfOps(settings, image, host, writable),
      ...p.journalOps,
      ...p.userOps,
    ],
    settings.selinuxApifsContext,
  );
}

/** The supervisor's command at exit: the network's teardown and binfmt_misc's release, and with --keep-unit machined's unregistration. */
function exitCommand(
  settings: Settings,
  host: HostFacts,
  options: BuildOptions,
  name: string,
  registration: ReturnType<typeof machinedRegistration>,
): string[] | undefined {
  const undo = wantsManagedNetwork(settings) || options.binfmtClaim === true;
  const netTeardown = undo && options.netTeardown ? [...options.netTeardown, name] : undefined;
  // --keep-unit: the unit stays active across a restart, so machined would keep the machine: drop it at exit
  return registration === "register" ? chainOnExit(netTeardown, machinedUnregisterCommand(host.systemd.busctl!, name)) : netTeardown;
}

/**
 * Whether the supervisor starts its at-exit command (the network's teardown) in the background
 * and exits at once: the container's exit does not wait for the kernel to delete links and
 * tables (RCU grace periods, ~15-40 ms each) nor for the teardown's own start. A start right
 * after finds the old network's record without an owner and tears it down itself, under the
 * network lock, before it sets up its own (net/setup.ts): the supervisor leaves the exit mark
 * for that. Not in a systemd unit (--keep-unit under systemd): the service manager kills what
 * is left in the unit's cgroup when its main process exits; nor with a claim on a binfmt_misc
 * entry, which a start of the same name right after would claim again.
 */
export function detachOnExit(settings: Settings, host: HostFacts, options: BuildOptions): boolean {
  return !(settings.keepUnit && host.systemd.booted) && options.binfmtClaim !== true && wantsManagedNetwork(settings);
}

/** The registry's state.json (machine/registry.ts reads it) without its braces: the helper completes it. */
function registryStateJson(
  settings: Settings,
  image: ImageFacts,
  host: HostFacts,
  nenv: NspawnEnvironment,
  options: BuildOptions,
  p: { name: string; uuid: string; resources: ReturnType<typeof resourcePlan> },
): string {
  const { resources } = p;
  const cgroups = resources.cgroups;
  const architecture = image.program !== undefined ? architectureOfElf(image.program.header) : undefined;
  const state = {
    name: p.name,
    class: "container",
    service: nenv.containerService ?? MACHINED_SERVICE,
    root: image.root,
    uuid: p.uuid,
    boot: settings.boot,
    started_usec: host.nowUsec.toString(),
    supervisor_starttime: host.startTime ?? "",
    cgroup: resources.cgroup,
    cgroups: resources.placement === "machined" ? [resources.cgroup, ...cgroups] : cgroups,
    os: image.osRelease?.["ID"] ?? "",
    version: image.osRelease?.["VERSION_ID"] ?? "",
    ...(architecture !== undefined ? { architecture: architecture.name, emulated: foreignImage(image, host) !== undefined } : {}),
    // -Z: what machinactl shell/exec/login enter is executed with the same label
    ...(settings.selinuxContext !== undefined ? { selinux_context: settings.selinuxContext } : {}),
    ...(options.imageLocks !== undefined && options.imageLocks.length > 0 ? { images: options.imageLocks.map((l) => l.image) } : {}),
  };
  return JSON.stringify(state).slice(1, -1);
}

/** What the supervisor does on the host besides the container: -i's unmounts and removals, the device policy, image locks, its own cgroup. */
function hostSideExtras(options: BuildOptions, resources: ReturnType<typeof resourcePlan>, settings: Settings, removes: string[]): Partial<RunSpec> {
  const hostRemoves = [...(options.hostRemoves ?? []), ...removes];
  return {
    ...(options.hostUmounts !== undefined && options.hostUmounts.length > 0 ? { hostUmounts: options.hostUmounts } : {}),
    // DevicePolicy=closed: on the cgroup2 directory the helper makes (systemd's scope gets it from CreateMachine)
    ...(resources.placement !== "machined" ? { devicePolicy: { cgroup: resources.cgroup, allow: containerDeviceRules(settings) } } : {}),
    ...(hostRemoves.length > 0 ? { hostRemoves } : {}),
    ...(options.imageLocks !== undefined && options.imageLocks.length > 0 ? { imageLocks: options.imageLocks } : {}),
    ...(resources.supervisorCgroup !== undefined ? { supervisorCgroup: resources.supervisorCgroup } : {}),
  };
}
