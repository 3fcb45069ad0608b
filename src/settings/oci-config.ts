/**
 * An OCI runtime-spec bundle's config.json (runtime-spec v1.0–v1.2) -> the Settings it asks
 * for: one more source of Settings, like a .nspawn file (DESIGN.md "One engine, several front
 * doors"), merged under the command line by mergeSettings(). Used by `machina-nspawn
 * --oci-bundle=DIR` and meant for the OCI runtime command. Pure: the caller reads the file.
 *
 * The mapping follows systemd-nspawn 252 (src/nspawn/nspawn-oci.c) where it can: the payload
 * runs as PID 1 with resolv.conf, timezone and journal linking off; API mounts nspawn insists
 * on setting up itself are taken as machina's own; maskedPaths become --inaccessible (missing
 * paths are skipped), readonlyPaths read-only binds of the path onto itself; one uid/gid
 * mapping with container base 0 becomes -U's range. Where nspawn and the spec differ, the spec
 * wins for unknown fields (ignored, as the spec requires; nspawn refuses them) and for the
 * version (1.0.x to 1.2.x; nspawn takes only 1.0.0). What machina cannot honour is refused with
 * one line naming the config.json field — including fields nspawn silently drops (selinux and
 * apparmor labels are mapped or refused, hooks refused, sysctl refused).
 */
import type { z } from "zod";
import { lazySchemas } from "../lazy-zod.ts";
import { jsonValue, validated } from "../json.ts";
import { invalidError, type ErrorContext } from "../errors.ts";
import { CAPABILITIES, type CapabilityName } from "./capabilities.ts";
import { PROPAGATIONS, parseCpuSet, type BindMount, type IdMapLine, type PrivateUsers, type Propagation, type TmpfsMount } from "./compound-values.ts";
import type { FileSettings } from "./nspawn-file.ts";
import { RLIMITS, type LimitValue, type Rlimit } from "./rlimits.ts";
import { mapOciSeccomp } from "./oci-seccomp.ts";
import { parseSelinuxLabel } from "./selinux-label.ts";
import type { CgroupValue, Settings, Source } from "./settings.ts";
import type { DeviceRule } from "../spec/devices.ts";
import { isValidEnvName, parseHostname, parseSlice } from "./values.ts";

// ------------------------------------------------------------------ the schema (fields machina reads)

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const ociSchemas = lazySchemas((z) => {
  const str = z.string();
  const strList = z.array(z.string());
  const uint32 = z.number().int().min(0).max(0xffffffff);
  const int64 = z.number().int();
  const Mount = z.object({
    destination: str,
    source: str.optional(),
    type: str.optional(),
    options: strList.optional(),
    uidMappings: z.array(z.unknown()).optional(),
    gidMappings: z.array(z.unknown()).optional(),
  });
  const IdMapping = z.object({ containerID: uint32, hostID: uint32, size: uint32 });
  const Process = z.object({
    terminal: z.boolean().optional(),
    consoleSize: z.object({ height: uint32, width: uint32 }).optional(),
    user: z.object({ uid: uint32, gid: uint32, umask: uint32.optional(), additionalGids: z.array(uint32).optional(), username: str.optional() }).optional(),
    args: strList.optional(),
    commandLine: str.optional(),
    env: strList.optional(),
    cwd: str,
    capabilities: z
      .object({
        bounding: strList.optional(),
        effective: strList.optional(),
        inheritable: strList.optional(),
        permitted: strList.optional(),
        ambient: strList.optional(),
      })
      .optional(),
    rlimits: z.array(z.object({ type: str, soft: int64, hard: int64 })).optional(),
    noNewPrivileges: z.boolean().optional(),
    apparmorProfile: str.optional(),
    oomScoreAdj: int64.optional(),
    scheduler: z.unknown().optional(),
    selinuxLabel: str.optional(),
    ioPriority: z.unknown().optional(),
    execCPUAffinity: z.unknown().optional(),
  });
  const SeccompSyscall = z.object({
    names: strList,
    action: str,
    errnoRet: uint32.optional(),
    args: z.array(z.unknown()).optional(),
  });
  const Resources = z.object({
    devices: z
      .array(z.object({ allow: z.boolean(), type: str.optional(), major: int64.optional(), minor: int64.optional(), access: str.optional() }))
      .optional(),
    memory: z
      .object({
        limit: int64.optional(),
        reservation: int64.optional(),
        swap: int64.optional(),
        kernel: int64.optional(),
        kernelTCP: int64.optional(),
        swappiness: int64.optional(),
        disableOOMKiller: z.boolean().optional(),
        useHierarchy: z.boolean().optional(),
        checkBeforeUpdate: z.boolean().optional(),
      })
      .optional(),
    cpu: z
      .object({
        shares: int64.optional(),
        quota: int64.optional(),
        burst: int64.optional(),
        period: int64.optional(),
        realtimeRuntime: int64.optional(),
        realtimePeriod: int64.optional(),
        cpus: str.optional(),
        mems: str.optional(),
        idle: int64.optional(),
      })
      .optional(),
    pids: z.object({ limit: int64 }).optional(),
    blockIO: z.unknown().optional(),
    hugepageLimits: z.array(z.unknown()).optional(),
    network: z.unknown().optional(),
    rdma: z.unknown().optional(),
    unified: z.record(z.string(), z.string()).optional(),
  });
  const Linux = z.object({
    namespaces: z.array(z.object({ type: str, path: str.optional() })).optional(),
    uidMappings: z.array(IdMapping).optional(),
    gidMappings: z.array(IdMapping).optional(),
    timeOffsets: z.unknown().optional(),
    devices: z.array(z.unknown()).optional(),
    cgroupsPath: str.optional(),
    resources: Resources.optional(),
    rootfsPropagation: str.optional(),
    seccomp: z
      .object({
        defaultAction: str,
        defaultErrnoRet: uint32.optional(),
        architectures: strList.optional(),
        flags: strList.optional(),
        listenerPath: str.optional(),
        listenerMetadata: str.optional(),
        syscalls: z.array(SeccompSyscall).optional(),
      })
      .optional(),
    sysctl: z.record(z.string(), z.string()).optional(),
    maskedPaths: strList.optional(),
    readonlyPaths: strList.optional(),
    mountLabel: str.optional(),
    intelRdt: z.unknown().optional(),
    personality: z.unknown().optional(),
  });
  const Hook = z.object({ path: str, args: strList.optional(), env: strList.optional(), timeout: int64.optional() });
  /** runtime-spec config.json, the fields machina maps or refuses; others are ignored (the spec: "MUST ignore unknown properties"). */
  const OciConfigSchema = z.object({
    ociVersion: str,
    root: z.object({ path: str, readonly: z.boolean().optional() }).optional(),
    mounts: z.array(Mount).optional(),
    process: Process.optional(),
    hostname: str.optional(),
    domainname: str.optional(),
    hooks: z.record(z.string(), z.array(Hook)).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    linux: Linux.optional(),
    solaris: z.unknown().optional(),
    windows: z.unknown().optional(),
    vm: z.unknown().optional(),
    zos: z.unknown().optional(),
  });
  return { str, strList, uint32, int64, Mount, IdMapping, Process, SeccompSyscall, Resources, Linux, Hook, OciConfigSchema };
});
/** A runtime-spec `process` object (machina-oci exec --process). */
export const OciProcessSchemaOf = (): ReturnType<typeof ociSchemas>["Process"] => ociSchemas().Process;
export type OciProcess = z.infer<ReturnType<typeof ociSchemas>["Process"]>;

/** The OciConfigSchema schema (built on first use). */
export const OciConfigSchemaOf = (): ReturnType<typeof ociSchemas>["OciConfigSchema"] => ociSchemas().OciConfigSchema;

export type OciConfig = z.infer<ReturnType<typeof ociSchemas>["OciConfigSchema"]>;

// ------------------------------------------------------------------ the mapping

/** Runtime-spec versions machina reads: 1.0.x to 1.2.x (with pre-release tails such as 1.0.2-dev). */
const VERSION = /^1\.[0-2]\.[0-9]+(?:[-+].*)?$/;

/**
 * API file systems machina mounts itself, with the types a config may ask for there (accepted
 * as machina's own mount, their options not applied). Paths nspawn 252 also keeps for itself
 * (oci_exclude_mount) but machina does not list here are accepted and left to machina too.
 */
const API_MOUNTS: Readonly<Record<string, readonly string[]>> = {
  "/proc": ["proc"],
  "/dev": ["tmpfs", "devtmpfs"],
  "/dev/pts": ["devpts"],
  "/dev/shm": ["tmpfs"],
  "/dev/mqueue": ["mqueue"],
  "/sys": ["sysfs"],
  "/sys/fs/cgroup": ["cgroup", "cgroup2"],
  "/run": ["tmpfs"],
};

/** nspawn 252's oci_exclude_mount(): destinations it never takes from config.json. */
const NSPAWN_OWN = new Set([
  "/dev",
  "/dev/mqueue",
  "/dev/pts",
  "/dev/shm",
  "/proc",
  "/proc/acpi",
  "/proc/apm",
  "/proc/asound",
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/kallsyms",
  "/proc/kcore",
  "/proc/keys",
  "/proc/scsi",
  "/proc/sys",
  "/proc/sys/net",
  "/proc/sysrq-trigger",
  "/proc/timer_list",
  "/run",
  "/sys",
  "/sys/fs/selinux",
  "/tmp",
]);
const nspawnOwns = (p: string) => NSPAWN_OWN.has(p) || p === "/sys/fs/cgroup" || p.startsWith("/sys/fs/cgroup/");

function normalize(p: string): string {
  return p.replace(/\/+/g, "/").replace(/(.)\/$/, "$1");
}

/** A path inside the container: absolute, without ".." (as the command line's paths). */
function containerPath(p: string, field: string, fail: Fail): string {
  if (!p.startsWith("/")) fail(field, `"${p}" is not an absolute path`);
  if (p.split("/").includes("..")) fail(field, `"${p}" may not contain ".." components`);
  return normalize(p.replace(/\/\.(?=\/|$)/g, "")) || "/";
}

export interface OciHook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/** The hooks machina-oci runs (--oci-bundle refuses them all). */
export interface OciHooks {
  /** prestart (deprecated) and createRuntime: runtime namespace, once the namespaces exist, before pivot_root */
  createRuntime: OciHook[];
  /** the container's namespaces, its mounts set up, before pivot_root (the path is the host's): the helper runs them */
  createContainer: OciHook[];
  /** in the container, right before the process is executed (the path is the container's): the helper runs them */
  startContainer: OciHook[];
  poststart: OciHook[];
  poststop: OciHook[];
}

export interface OciMapped extends FileSettings {
  /** The bundle's root directory (root.path, relative to the bundle unless absolute). */
  root: string;
  hooks: OciHooks;
  annotations: Record<string, string>;
  /** linux.cgroupsPath as given (machina-oci places the container there) */
  cgroupsPath: string | undefined;
  /** process.terminal */
  terminal: boolean;
  /** linux.sysctl (machina-oci writes them in the container's namespaces before it starts) */
  sysctl: Record<string, string>;
}

/**
 * Parse and map config.json. `bundle` is the absolute bundle directory; `text` the file's
 * contents. `runtime`: for machina-oci (hooks it runs are returned, linux.cgroupsPath is a path
 * of the cgroup tree as runc's cgroupfs driver takes it); else for --oci-bundle (as nspawn).
 */
export function mapOciConfig(text: string, bundle: string, mode: "nspawn" | "runtime" = "nspawn"): OciMapped {
  const file = `${bundle.replace(/\/+$/, "")}/config.json`;
  const fail = (field: string, what: string): never => {
    throw invalidError(`${file}: ${field}: ${what}`, { file, flag: "--oci-bundle", value: field });
  };
  const json = jsonValue(text, file, { file, flag: "--oci-bundle" });
  if (typeof json !== "object" || json === null || Array.isArray(json) || !("ociVersion" in json))
    throw invalidError(`${file}: not an OCI runtime configuration (no "ociVersion")`, { file, flag: "--oci-bundle" });
  const c = validated(ociSchemas().OciConfigSchema, json, file, { file, flag: "--oci-bundle" });
  if (!VERSION.test(c.ociVersion)) fail("ociVersion", `version "${c.ociVersion}" is not supported (machina reads runtime-spec 1.0.x to 1.2.x)`);

  const values: Partial<Settings> = {};
  const provenance = new Map<keyof Settings, Source>();
  const warnings: string[] = [];
  const src: Source = { kind: "file", file, line: 0, trusted: true };
  const set = <K extends keyof Settings>(k: K, v: Settings[K]) => {
    values[k] = v;
    provenance.set(k, src);
  };
  const ctx = (field: string): ErrorContext => ({ file, flag: `${file}: ${field}` });

  for (const k of ["solaris", "windows", "vm", "zos"] as const)
    if (c[k] !== undefined) fail(k, `a ${k} configuration cannot be run by machina (Linux containers only)`);

  // As nspawn's oci_load(): the payload is PID 1, no resolv.conf/timezone/journal set-up.
  set("boot", false);
  set("asPid2", false);
  set("resolvConf", "off");
  set("timezone", "off");
  set("linkJournal", "no");

  // root
  if (c.root === undefined || c.root.path === "") fail("root.path", 'is required (the bundle\'s root file system, e.g. "rootfs")');
  const rootPath = c.root!.path.startsWith("/") ? normalize(c.root!.path) : normalize(`${bundle}/${c.root!.path}`);
  set("directory", rootPath);
  if (c.root!.readonly === true) set("readOnly", true);

  if (c.hostname !== undefined && c.hostname !== "") set("hostname", parseHostname(c.hostname, ctx("hostname")));
  if (c.domainname !== undefined && c.domainname !== "") fail("domainname", "setting an NIS domain name is not supported by machina");

  mapProcess(c, set, fail, ctx);
  const binds: BindMount[] = [];
  const tmpfs: TmpfsMount[] = [];
  const inaccessible: string[] = [];
  const apiMounts: NonNullable<Settings["ociApiMounts"]> = [];
  mapMounts(c, bundle, binds, tmpfs, fail, mode, warnings, apiMounts);
  if (mode === "runtime") set("ociApiMounts", apiMounts);
  mapLinux(c, set, fail, ctx, warnings, binds, inaccessible, mode);
  if (binds.length > 0) set("binds", binds);
  if (tmpfs.length > 0) set("tmpfs", tmpfs);
  if (inaccessible.length > 0) set("inaccessible", inaccessible);

  const hooks: OciHooks = { createRuntime: [], createContainer: [], startContainer: [], poststart: [], poststop: [] };
  for (const [name, list] of Object.entries(c.hooks ?? {})) {
    if (list.length === 0) continue;
    if (mode === "nspawn") fail(`hooks.${name}`, "hooks are not supported by machina-nspawn (machina-oci runs them)");
    list.forEach((h, i) => {
      if (!h.path.startsWith("/")) fail(`hooks.${name}[${i}].path`, `"${h.path}" is not an absolute path`);
      if (h.timeout !== undefined && h.timeout <= 0) fail(`hooks.${name}[${i}].timeout`, `${h.timeout} is not a positive number of seconds`);
    });
    const copy = list.map((h) => ({
      path: h.path,
      ...(h.args ? { args: h.args } : {}),
      ...(h.env ? { env: h.env } : {}),
      ...(h.timeout ? { timeout: h.timeout } : {}),
    }));
    if (name === "prestart" || name === "createRuntime") hooks.createRuntime.push(...copy);
    else if (name === "createContainer" || name === "startContainer" || name === "poststart" || name === "poststop") hooks[name].push(...copy);
    // unknown hook names: ignored, as unknown properties
  }
  const cgroupsPath = mode === "runtime" ? c.linux?.cgroupsPath : undefined;
  const sysctl = mode === "runtime" ? (c.linux?.sysctl ?? {}) : {};
  return {
    file,
    trusted: true,
    values,
    provenance,
    warnings,
    root: rootPath,
    hooks,
    annotations: c.annotations ?? {},
    cgroupsPath,
    sysctl,
    terminal: c.process?.terminal === true,
  };
}

type Setter = <K extends keyof Settings>(k: K, v: Settings[K]) => void;
export type Fail = (field: string, what: string) => never;

function capList(list: string[] | undefined, field: string, fail: Fail): CapabilityName[] | undefined {
  if (list === undefined) return undefined;
  return list.map((n, i) => {
    if (!(CAPABILITIES as readonly string[]).includes(n)) fail(`${field}[${i}]`, `unknown capability "${n}" (expected a name such as CAP_NET_ADMIN)`);
    return n as CapabilityName;
  });
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === new Set(a).size && new Set(a).size === new Set(b).size && a.every((x) => b.includes(x));

function limitValue(n: number): LimitValue {
  return n < 0 ? "infinity" : BigInt(n);
}

function mapProcess(c: OciConfig, set: Setter, fail: Fail, ctx: (f: string) => ErrorContext): void {
  const p = c.process;
  if (p === undefined) return;
  if (p.args !== undefined) {
    if (p.args.length === 0) fail("process.args", "the argument list is empty");
    if (p.args[0] === "") fail("process.args[0]", "the executable name is empty");
    set("command", p.args);
  }
  if (p.commandLine !== undefined) fail("process.commandLine", "is for Windows; use process.args");
  if (p.env !== undefined) {
    p.env.forEach((e, i) => {
      const eq = e.indexOf("=");
      if (eq <= 0 || !isValidEnvName(e.slice(0, eq))) fail(`process.env[${i}]`, `"${e}" is not a NAME=VALUE assignment`);
    });
    set("environment", p.env);
  }
  set("chdir", containerPath(p.cwd, "process.cwd", fail));
  if (p.terminal === false) set("console", "pipe");
  // consoleSize: the pty takes the size of the terminal machina-nspawn runs on.
  if (p.user !== undefined) {
    if (p.user.umask !== undefined) {
      if (p.user.umask > 0o777) fail("process.user.umask", `${p.user.umask} is not a umask (0 to 0777)`);
      if (p.user.umask !== 0o022) set("umask", p.user.umask);
    }
    set("user", String(p.user.uid));
    set("userIds", { uid: p.user.uid, gid: p.user.gid, additionalGids: p.user.additionalGids ?? [] });
  }
  const caps = p.capabilities;
  if (caps !== undefined) {
    const bounding = capList(caps.bounding, "process.capabilities.bounding", fail);
    const ambient = capList(caps.ambient, "process.capabilities.ambient", fail) ?? [];
    const effective = capList(caps.effective, "process.capabilities.effective", fail);
    const permitted = capList(caps.permitted, "process.capabilities.permitted", fail);
    const inheritable = capList(caps.inheritable, "process.capabilities.inheritable", fail);
    if (bounding !== undefined) {
      // As nspawn: the bounding set is the capability set (Capability= the set, DropCapability= the rest).
      set("capabilities", bounding);
      set(
        "dropCapabilities",
        CAPABILITIES.filter((n) => !bounding.includes(n)),
      );
    }
    const bset = bounding ?? undefined;
    for (const a of ambient) if (bset !== undefined && !bset.includes(a)) fail("process.capabilities.ambient", `${a} is not in the bounding set`);
    if (ambient.length > 0) set("ambientCapabilities", ambient);
    // What the kernel gives the payload after execve(): root keeps the bounding set as effective
    // and permitted; any other user holds the ambient set. Other sets cannot be honoured.
    const uid = p.user?.uid ?? 0;
    const expected = uid === 0 ? bset : ambient;
    const what = uid === 0 ? "the bounding set (the payload runs as root)" : "the ambient set (the payload is not root)";
    for (const [name, list] of [
      ["effective", effective],
      ["permitted", permitted],
    ] as const)
      if (list !== undefined && expected !== undefined && !sameSet(list, expected))
        fail(`process.capabilities.${name}`, `must equal ${what}: machina cannot give the payload a different ${name} set`);
    if (inheritable !== undefined && !sameSet(inheritable, ambient) && inheritable.length > 0)
      fail("process.capabilities.inheritable", "must be empty or equal the ambient set: machina sets the inheritable set to the ambient set");
  }
  if (p.rlimits !== undefined) {
    const seen = new Set<string>();
    const limits: Rlimit[] = p.rlimits.map((r, i) => {
      const name = r.type.startsWith("RLIMIT_") ? r.type.slice(7) : undefined;
      if (name === undefined || RLIMITS[name] === undefined)
        fail(`process.rlimits[${i}].type`, `unknown resource limit "${r.type}" (expected RLIMIT_NOFILE, RLIMIT_NPROC, …)`);
      if (seen.has(name!)) fail(`process.rlimits[${i}].type`, `${r.type} is given twice`);
      seen.add(name!);
      const soft = limitValue(r.soft);
      const hard = limitValue(r.hard);
      if (hard !== "infinity" && (soft === "infinity" || soft > hard)) fail(`process.rlimits[${i}]`, `soft limit ${r.soft} is above the hard limit ${r.hard}`);
      return { resource: RLIMITS[name!]!, name: name!, soft, hard };
    });
    if (limits.length > 0) set("rlimits", limits);
  }
  if (p.noNewPrivileges === true) set("noNewPrivileges", true);
  if (p.oomScoreAdj !== undefined) {
    if (p.oomScoreAdj < -1000 || p.oomScoreAdj > 1000) fail("process.oomScoreAdj", `${p.oomScoreAdj} is out of range (-1000 to 1000)`);
    set("oomScoreAdjust", p.oomScoreAdj);
  }
  if (p.apparmorProfile !== undefined && p.apparmorProfile !== "")
    fail("process.apparmorProfile", "AppArmor is not supported by machina (this host has no AppArmor); remove the field");
  if (p.selinuxLabel !== undefined && p.selinuxLabel !== "") {
    const label = parseSelinuxLabel(p.selinuxLabel, ctx("process.selinuxLabel"));
    if (label !== undefined) set("selinuxContext", label);
  }
  if (p.scheduler !== undefined) fail("process.scheduler", "setting a scheduling policy is not supported by machina");
  if (p.ioPriority !== undefined) fail("process.ioPriority", "setting an I/O priority is not supported by machina");
  if (p.execCPUAffinity !== undefined) fail("process.execCPUAffinity", "is not supported by machina (use linux.resources.cpu.cpus)");
}

/** Access-time options: a bind keeps its source's. */
const ATIME_OPTIONS = new Set([
  "atime",
  "noatime",
  "relatime",
  "norelatime",
  "strictatime",
  "nostrictatime",
  "diratime",
  "nodiratime",
  "lazytime",
  "nolazytime",
]);

/** machina-oci: a mount option that chooses the new mount's propagation (runc applies it after the mount). */
const isPropagation = (o: string): o is Propagation => (PROPAGATIONS as readonly string[]).includes(o);

function mapMounts(
  c: OciConfig,
  bundle: string,
  binds: BindMount[],
  tmpfs: TmpfsMount[],
  fail: Fail,
  mode: "nspawn" | "runtime",
  warnings: string[],
  apiMounts: NonNullable<Settings["ociApiMounts"]>,
): void {
  const runtime = mode === "runtime";
  (c.mounts ?? []).forEach((m, i) => {
    const field = `mounts[${i}]`;
    const dest = containerPath(m.destination, `${field}.destination`, fail);
    const opts = m.options ?? [];
    const isBind = m.type === undefined || m.type === "bind" || ((m.type === "none" || m.type === "") && opts.some((o) => o === "bind" || o === "rbind"));
    if (m.uidMappings !== undefined || m.gidMappings !== undefined) fail(`${field}.uidMappings`, "id-mapped mounts are not supported from config.json");
    const api = API_MOUNTS[dest];
    // machina-oci: a bind onto an API path (podman's /dev/shm, /etc/hosts…) is honoured over
    // machina's own mount; a file system of the API kind there is machina's own.
    const own = runtime ? api !== undefined && !isBind : api !== undefined || nspawnOwns(dest);
    if (own) {
      // machina mounts these itself: the config's mount is taken as machina's when it is the
      // same kind of file system (or, as in `runc spec --rootless`, a bind of the host's own).
      const type = m.type ?? "bind";
      const ok = api === undefined || api.includes(type) || (isBind && m.source !== undefined && normalize(m.source) === dest);
      if (!ok) fail(field, `machina mounts its own ${api!.join("/")} on ${dest}; a ${type} mount there cannot be honoured`);
      // machina-oci: in the config's order, with its source name and options (build.ts)
      if (runtime) apiMounts.push({ destination: dest, type, source: m.source ?? type, options: opts });
      return;
    }
    if (isBind) {
      if (m.source === undefined || m.source === "") fail(`${field}.source`, "a bind mount needs a source");
      const source = m.source!.startsWith("/") ? normalize(m.source!) : normalize(`${bundle}/${m.source}`);
      let readOnly = false;
      let recursive = false;
      let propagation: Propagation | undefined;
      const restrict: Array<"nosuid" | "nodev" | "noexec"> = [];
      for (const o of opts) {
        if (o === "bind") recursive = false;
        else if (o === "rbind") recursive = true;
        else if (o === "ro") readOnly = true;
        else if (o === "rw") readOnly = false;
        else if (runtime && isPropagation(o)) propagation = o;
        else if (o === "private" || o === "rprivate")
          continue; // machina-nspawn: the container's mounts never propagate
        else if (runtime && (o === "z" || o === "Z"))
          continue; // SELinux relabel requests: the caller's (this host has none enabled)
        else if (runtime && ATIME_OPTIONS.has(o))
          continue; // access-time updates: the source's
        else if (runtime && o.includes("=")) {
          // file system data (tmpfs's mode=, size=): mount(2) ignores it for a bind, as with runc
          warnings.push(`config.json: ${field}.options: "${o}" is file system data, which a bind mount does not take (ignored)`);
          continue;
        } else if (runtime && (o === "nosuid" || o === "nodev" || o === "noexec")) {
          if (!restrict.includes(o)) restrict.push(o);
        } else
          fail(
            `${field}.options`,
            `bind option "${o}" cannot be honoured (supported: bind, rbind, ro, rw, private, rprivate${runtime ? ", shared, slave, unbindable and their r… forms, nosuid, nodev, noexec, access-time options, z, Z, KEY=VALUE data (ignored)" : ""})`,
          );
      }
      binds.push({
        source,
        sourceInImage: false,
        destination: dest,
        readOnly,
        recursive,
        idmap: "noidmap",
        ...(propagation !== undefined ? { propagation } : {}),
        ...(runtime ? { order: i } : {}),
        ...(restrict.length > 0 ? { restrict } : {}),
      });
      return;
    }
    if (m.type === "tmpfs") {
      // runc's tmpcopyup: the new tmpfs starts with a copy of the image's directory (machina-oci;
      // machina-nspawn --oci-bundle: not done, the tmpfs starts empty)
      const kept = opts.filter((o) => !(runtime && (o === "tmpcopyup" || isPropagation(o) || o === "z" || o === "Z")));
      const copyUp = runtime && opts.includes("tmpcopyup");
      if (!runtime && opts.includes("tmpcopyup")) warnings.push(`config.json: ${field}.options: "tmpcopyup" is not supported; ${dest} starts empty`);
      const propagation = runtime ? opts.filter(isPropagation).at(-1) : undefined;
      tmpfs.push({
        destination: dest,
        options: kept.length > 0 ? kept.join(",") : "mode=0755",
        ...(propagation !== undefined ? { propagation } : {}),
        ...(runtime ? { order: i } : {}),
        ...(copyUp ? { copyUp } : {}),
      });
      return;
    }
    fail(
      field,
      `a ${m.type} mount on ${dest} cannot be honoured (config.json may add bind and tmpfs mounts; machina mounts proc, sysfs, cgroup, mqueue and devpts only at their usual places)`,
    );
  });
}

/** The kernel's limit of lines in /proc/PID/uid_map and gid_map. */
const MAX_MAP_LINES = 340;

/**
 * linux.uidMappings or gidMappings as map lines, checked as the kernel checks a map (no
 * overlapping ranges on either side, at most 340 lines), plus machina's own need: the container's
 * root (ID 0) is mapped (the container is set up as its root).
 */
function idMapLines(list: readonly { containerID: number; hostID: number; size: number }[], name: string, fail: Fail): IdMapLine[] {
  if (list.length > MAX_MAP_LINES) fail(`linux.${name}`, `has ${list.length} mappings; the kernel allows at most ${MAX_MAP_LINES}`);
  const lines = list.map((m, i) => {
    if (m.size === 0) fail(`linux.${name}[${i}].size`, "a mapping of size 0 maps nothing");
    if (m.containerID + m.size - 1 > 0xfffffffe || m.hostID + m.size - 1 > 0xfffffffe) fail(`linux.${name}[${i}]`, "the range goes beyond the valid IDs");
    return { inside: m.containerID, outside: m.hostID, count: m.size };
  });
  const overlap = (a: number, b: number, n: number, k: number) => a < b + k && b < a + n;
  lines.forEach((l, i) => {
    for (const [j, o] of lines.slice(0, i).entries()) {
      if (overlap(l.inside, o.inside, l.count, o.count)) fail(`linux.${name}[${i}]`, `its container IDs overlap those of linux.${name}[${j}]`);
      if (overlap(l.outside, o.outside, l.count, o.count)) fail(`linux.${name}[${i}]`, `its host IDs overlap those of linux.${name}[${j}]`);
    }
  });
  if (!lines.some((l) => l.inside === 0)) fail(`linux.${name}`, "must map container ID 0 (machina sets the container up as its root)");
  return lines;
}

const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"] as const;

/** Sysctls that belong to a namespace of the container (runc's list): prefixes end with ".". */
const NAMESPACED_SYSCTL = [
  "kernel.msgmax",
  "kernel.msgmnb",
  "kernel.msgmni",
  "kernel.sem",
  "kernel.shmall",
  "kernel.shmmax",
  "kernel.shmmni",
  "kernel.shm_rmid_forced",
  "fs.mqueue.",
  "net.",
];

function mapLinux(
  c: OciConfig,
  set: Setter,
  fail: Fail,
  ctx: (f: string) => ErrorContext,
  warnings: string[],
  binds: BindMount[],
  inaccessible: string[],
  mode: "nspawn" | "runtime",
): void {
  const l = c.linux;
  if (l === undefined) fail("linux", "is required (machina runs Linux containers: at least linux.namespaces)");
  const L = l!;
  // namespaces
  const ns = new Map<string, string | undefined>();
  (L.namespaces ?? []).forEach((n, i) => {
    const field = `linux.namespaces[${i}]`;
    if (!(NAMESPACE_TYPES as readonly string[]).includes(n.type)) fail(`${field}.type`, `unknown namespace type "${n.type}"`);
    if (ns.has(n.type)) fail(field, `the ${n.type} namespace is listed twice`);
    if (n.path !== undefined) {
      const joinable = mode === "runtime" ? ["network", "ipc", "uts", "mount", "pid"] : ["network"];
      if (!joinable.includes(n.type))
        fail(`${field}.path`, `joining an existing ${n.type} namespace is not supported (only the ${joinable.join(", ")} namespace can be joined by path)`);
      if (!n.path.startsWith("/")) fail(`${field}.path`, `"${n.path}" is not an absolute path`);
    }
    ns.set(n.type, n.path);
  });
  if (!ns.has("mount")) fail("linux.namespaces", "containers without a mount namespace are not supported");
  for (const t of ["pid", "ipc", "uts"] as const)
    if (!ns.has(t)) {
      // machina-oci: the runtime's own (podman --pid=host, a pod's hostPID): joined as by path, the helper's own namespace
      if (mode === "runtime") ns.set(t, `/proc/self/ns/${t}`);
      else fail("linux.namespaces", `machina always gives a container its own ${t} namespace: sharing the host's cannot be honoured (add {"type": "${t}"})`);
    }
  if (ns.has("time")) fail("linux.namespaces", "time namespaces are not supported by machina");
  const ipcPath = ns.get("ipc");
  if (ipcPath !== undefined) set("ipcNamespacePath", ipcPath);
  const mountPath = ns.get("mount");
  const pidPath = ns.get("pid");
  if ((mountPath !== undefined || pidPath !== undefined) && ns.has("user"))
    fail("linux.namespaces", "joining a mount or PID namespace by path cannot be combined with a new user namespace");
  if (mountPath !== undefined) set("mountNamespacePath", mountPath);
  if (pidPath !== undefined) set("pidNamespacePath", pidPath);
  const utsPath = ns.get("uts");
  // a hostname is then set in the joined namespace, as runc (the helper refuses the host's own)
  if (utsPath !== undefined) set("utsNamespacePath", utsPath);
  if (ns.has("network")) {
    const path = ns.get("network");
    if (path !== undefined) set("networkNamespacePath", path);
    else set("privateNetwork", true);
  }
  // cgroup: machina gives the container its own cgroup namespace where the host has them, listed or not.
  const uidMap = L.uidMappings ?? [];
  const gidMap = L.gidMappings ?? [];
  if (ns.has("user") && mode === "runtime") {
    // machina-oci: the exact maps, as runc (the tree's ownership is left as it is)
    if (uidMap.length === 0 || gidMap.length === 0) fail("linux.uidMappings", "a user namespace needs uidMappings and gidMappings");
    const uid = idMapLines(uidMap, "uidMappings", fail);
    const gid = idMapLines(gidMap, "gidMappings", fail);
    const maps: PrivateUsers = { mode: "maps", uid, gid };
    set("privateUsers", maps);
  } else if (ns.has("user")) {
    if (uidMap.length === 0 || gidMap.length === 0) fail("linux.uidMappings", "a user namespace needs one uidMappings and one gidMappings entry");
    for (const [name, list] of [
      ["uidMappings", uidMap],
      ["gidMappings", gidMap],
    ] as const) {
      if (list.length > 1) fail(`linux.${name}`, "more than one mapping is not supported");
      const m = list[0]!;
      if (m.containerID !== 0) fail(`linux.${name}[0].containerID`, "a mapping must start at container ID 0");
      if (m.size === 0) fail(`linux.${name}[0].size`, "a mapping of size 0 maps nothing");
      if (m.hostID + m.size - 1 > 0xfffffffe) fail(`linux.${name}[0]`, "the range goes beyond the valid IDs");
    }
    const u = uidMap[0]!;
    const g = gidMap[0]!;
    if (u.hostID !== g.hostID || u.size !== g.size) fail("linux.gidMappings", "uidMappings and gidMappings must be the same range");
    if (u.size < 65536) warnings.push(`config.json: linux.uidMappings: fewer than 65536 IDs mapped; most images need 65536`);
    const pu: PrivateUsers = { mode: "range", base: u.hostID, count: u.size };
    set("privateUsers", pu);
  } else if (uidMap.length > 0 || gidMap.length > 0) {
    fail("linux.uidMappings", "mappings are given but linux.namespaces has no user namespace");
  }
  if (L.timeOffsets !== undefined) fail("linux.timeOffsets", "time namespaces are not supported by machina");
  if (L.devices !== undefined && L.devices.length > 0) {
    if (mode === "nspawn") fail("linux.devices", "creating device nodes from config.json is not supported by machina-nspawn (machina-oci creates them)");
    const TYPES: Record<string, number> = { c: 0o020000, u: 0o020000, b: 0o060000, p: 0o010000 };
    const devices = L.devices.map((raw, i) => {
      const field = `linux.devices[${i}]`;
      const d = raw as { path?: unknown; type?: unknown; major?: unknown; minor?: unknown; fileMode?: unknown; uid?: unknown; gid?: unknown };
      if (typeof d.path !== "string") fail(`${field}.path`, "is required");
      const path = containerPath(d.path as string, `${field}.path`, fail);
      const kind = typeof d.type === "string" ? TYPES[d.type] : undefined;
      if (kind === undefined) fail(`${field}.type`, `${JSON.stringify(d.type)} is not a device type (c, u, b or p)`);
      const num = (v: unknown, f: string, max: number): number => {
        if (v === undefined) return 0;
        if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) fail(`${field}.${f}`, `${JSON.stringify(v)} is out of range (0 to ${max})`);
        return v as number;
      };
      const major = num(d.major, "major", 0xfff);
      const minor = num(d.minor, "minor", 0xfffff);
      const fileMode = d.fileMode === undefined ? 0o666 : num(d.fileMode, "fileMode", 0o7777);
      if (num(d.uid, "uid", 0xfffffffe) !== 0 || num(d.gid, "gid", 0xfffffffe) !== 0)
        fail(`${field}.uid`, "device nodes owned by another user than root are not supported yet");
      return { path, mode: kind! | (fileMode & 0o777), major: kind === 0o010000 ? 0 : major, minor: kind === 0o010000 ? 0 : minor };
    });
    set("ociDevices", devices);
  }
  if (L.cgroupsPath !== undefined && L.cgroupsPath !== "" && mode === "nspawn") {
    if (!/^[^/]+\.slice$/.test(L.cgroupsPath)) fail("linux.cgroupsPath", `"${L.cgroupsPath}" cannot be honoured (only a slice name such as machine.slice)`);
    set("slice", parseSlice(L.cgroupsPath, ctx("linux.cgroupsPath")));
  }
  mapResources(L, set, fail, ctx, mode);
  if (L.rootfsPropagation !== undefined && L.rootfsPropagation !== "") {
    const v = L.rootfsPropagation;
    if (!(PROPAGATIONS as readonly string[]).includes(v))
      fail("linux.rootfsPropagation", `"${v}" is not a propagation type (shared, slave, private, unbindable, or rshared, rslave, rprivate, runbindable)`);
    // machina-nspawn: ignored, as nspawn (the container's mounts never propagate to the host)
    if (mode === "runtime") set("ociRootPropagation", v as Propagation);
  }
  if (L.sysctl !== undefined && Object.keys(L.sysctl).length > 0) {
    if (mode === "nspawn") fail(`linux.sysctl`, `setting sysctls (${Object.keys(L.sysctl)[0]}) is not supported by machina-nspawn (machina-oci sets them)`);
    for (const key of Object.keys(L.sysctl)) {
      const ok = NAMESPACED_SYSCTL.some((p) => (p.endsWith(".") ? key.startsWith(p) : key === p));
      if (!ok || !/^[a-z0-9_.-]+$/.test(key))
        fail(`linux.sysctl.${key}`, "only sysctls of the container's own namespaces can be set (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)");
      if (key.startsWith("net.") && !ns.has("network")) fail(`linux.sysctl.${key}`, "net.* sysctls need a network namespace of the container's");
    }
  }
  if (L.seccomp !== undefined) set("seccompProfile", mapOciSeccomp(L.seccomp, fail));
  for (const [i, p] of (L.maskedPaths ?? []).entries()) {
    const n = containerPath(p, `linux.maskedPaths[${i}]`, fail);
    if (nspawnOwns(n)) continue; // machina masks or mounts these itself
    inaccessible.push(n);
  }
  for (const [i, p] of (L.readonlyPaths ?? []).entries()) {
    const n = containerPath(p, `linux.readonlyPaths[${i}]`, fail);
    if (nspawnOwns(n)) continue; // machina mounts these read-only itself
    if (n === "/proc" || n.startsWith("/proc/") || n === "/sys" || n.startsWith("/sys/") || n === "/dev" || n.startsWith("/dev/"))
      fail(`linux.readonlyPaths[${i}]`, `"${n}" is inside an API file system machina mounts: it cannot be made read-only`);
    binds.push({ source: n, sourceInImage: true, destination: n, readOnly: true, recursive: true, idmap: "noidmap" });
  }
  if (L.mountLabel !== undefined && L.mountLabel !== "") {
    const label = parseSelinuxLabel(L.mountLabel, ctx("linux.mountLabel"));
    if (label !== undefined) set("selinuxApifsContext", label);
  }
  if (L.intelRdt !== undefined) fail("linux.intelRdt", "Intel RDT is not supported by machina");
  if (L.personality !== undefined) fail("linux.personality", "is not supported from config.json (use --personality=)");
}

/** linux.resources as config.json gives it. */
export type OciResources = NonNullable<NonNullable<OciConfig["linux"]>["resources"]>;
export const OciResourcesSchemaOf = (): ReturnType<typeof ociSchemas>["Resources"] => ociSchemas().Resources;

/**
 * linux.resources' memory, cpu and pids as runc writes them (libcontainer's fs and fs2
 * managers), one entry per value with its cgroup v2 and v1 forms: memory.limit ->
 * memory.max / memory.limit_in_bytes (-1: unlimited), reservation -> memory.low /
 * memory.soft_limit_in_bytes, swap (memory+swap) -> memory.swap.max (swap - limit) /
 * memory.memsw.limit_in_bytes; cpu.shares -> cpu.weight (runc's conversion) / cpu.shares;
 * quota and period -> cpu.max "QUOTA PERIOD" / cpu.cfs_period_us then cpu.cfs_quota_us;
 * realtimePeriod then realtimeRuntime -> cpu.rt_period_us, cpu.rt_runtime_us (v1 only);
 * cpus, mems -> cpuset.cpus, cpuset.mems; pids.limit -> pids.max (0 or less: "max"). A 0 is
 * "not set", as runc reads it. What machina cannot honour is refused naming the field.
 */
export function ociCgroupValues(r: Pick<OciResources, "memory" | "cpu" | "pids">, fail: Fail, prefix = "linux.resources."): CgroupValue[] {
  const out: CgroupValue[] = [];
  const f = (k: string) => `${prefix}${k}`;
  const m = r.memory;
  if (m !== undefined) {
    const limit = m.limit ?? 0;
    if (limit !== 0)
      out.push({
        controller: "memory",
        field: f("memory.limit"),
        v2: ["memory.max", limit < 0 ? "max" : String(limit)],
        v1: [["memory.limit_in_bytes", limit < 0 ? "-1" : String(limit)]],
      });
    const res = m.reservation ?? 0;
    if (res !== 0)
      out.push({
        controller: "memory",
        field: f("memory.reservation"),
        v2: ["memory.low", res < 0 ? "max" : String(res)],
        v1: [["memory.soft_limit_in_bytes", res < 0 ? "-1" : String(res)]],
      });
    const swap = m.swap ?? 0;
    if (swap !== 0) {
      if (swap > 0 && (limit <= 0 || swap < limit)) fail(f("memory.swap"), "memory+swap needs memory.limit, and may not be below it");
      out.push({
        controller: "memory",
        field: f("memory.swap"),
        v2: ["memory.swap.max", swap < 0 ? "max" : String(swap - limit)],
        v1: [["memory.memsw.limit_in_bytes", String(swap)]],
      });
    }
    // kernel and kernelTCP 0 are "not set" (runc), the flags false their default
    for (const k of ["kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"] as const)
      if (m[k] !== undefined && m[k] !== false && !(m[k] === 0 && (k === "kernel" || k === "kernelTCP")))
        fail(f(`memory.${k}`), "is not supported by machina (supported: memory.limit, memory.reservation, memory.swap)");
  }
  const cpu = r.cpu;
  if (cpu !== undefined) {
    const shares = cpu.shares ?? 0;
    if (shares !== 0) {
      if (shares < 2 || shares > 262144) fail(f("cpu.shares"), `${shares} is out of range (2 to 262144)`);
      // cgroup v1 shares -> v2 weight, as runc and crun convert them.
      out.push({
        controller: "cpu",
        field: f("cpu.shares"),
        v2: ["cpu.weight", String(1 + Math.floor(((shares - 2) * 9999) / 262142))],
        v1: [["cpu.shares", String(shares)]],
      });
    }
    const quota = cpu.quota ?? 0;
    const period = cpu.period ?? 0;
    if (period < 0) fail(f("cpu.period"), `${period} is out of range`);
    if (quota !== 0 || period !== 0) {
      const v1: Array<[string, string]> = [];
      if (period !== 0) v1.push(["cpu.cfs_period_us", String(period)]);
      if (quota !== 0) v1.push(["cpu.cfs_quota_us", quota < 0 ? "-1" : String(quota)]);
      out.push({ controller: "cpu", field: f("cpu.quota"), v2: ["cpu.max", `${quota <= 0 ? "max" : quota} ${period === 0 ? 100000 : period}`], v1 });
    }
    const rtPeriod = cpu.realtimePeriod ?? 0;
    const rtRuntime = cpu.realtimeRuntime ?? 0;
    if (rtPeriod !== 0 || rtRuntime !== 0) {
      if (rtPeriod < 0) fail(f("cpu.realtimePeriod"), `${rtPeriod} is out of range`);
      const v1: Array<[string, string]> = [];
      if (rtPeriod !== 0) v1.push(["cpu.rt_period_us", String(rtPeriod)]);
      if (rtRuntime !== 0) v1.push(["cpu.rt_runtime_us", String(rtRuntime)]);
      out.push({ controller: "cpu", field: f("cpu.realtimeRuntime"), v2: undefined, v1 });
    }
    for (const k of ["cpus", "mems"] as const) {
      const v = cpu[k];
      if (v === undefined || v === "") continue;
      if (!/^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$/.test(v)) fail(f(`cpu.${k}`), `"${v}" is not a list of numbers and ranges (e.g. 0-3,6)`);
      out.push({ controller: "cpuset", field: f(`cpu.${k}`), v2: [`cpuset.${k}`, v], v1: [[`cpuset.${k}`, v]] });
    }
    for (const k of ["burst", "idle"] as const) if (cpu[k] !== undefined) fail(f(`cpu.${k}`), "is not supported by machina");
  }
  if (r.pids !== undefined) {
    const n = r.pids.limit <= 0 ? "max" : String(r.pids.limit);
    out.push({ controller: "pids", field: f("pids.limit"), v2: ["pids.max", n], v1: [["pids.max", n]] });
  }
  return out;
}

/**
 * linux.resources.devices for machina-oci, as runc applies them: the rules after the last
 * deny-all entry are allowed (in order, before machina's standard nodes). A deny rule for some
 * devices is accepted before any allow rule (machina denies everything but its standard nodes
 * anyway) and refused after one.
 */
function ociDeviceCgroupRules(list: NonNullable<OciResources["devices"]>, fail: Fail): DeviceRule[] {
  let rules: DeviceRule[] = [];
  for (const [i, d] of list.entries()) {
    const field = `linux.resources.devices[${i}]`;
    const type = d.type ?? "a";
    if (type !== "a" && type !== "c" && type !== "b") fail(`${field}.type`, `"${type}" is not a device type (a, c or b)`);
    const access = d.access ?? "rwm";
    if (!/^(?!.*(.).*\1)[rwm]{1,3}$/.test(access)) fail(`${field}.access`, `"${access}" is not an access (one or more of r, w, m)`);
    for (const k of ["major", "minor"] as const) {
      const v = d[k];
      if (v !== undefined && v !== -1 && (v < 0 || v > 0xffffffff)) fail(`${field}.${k}`, `${v} is out of range (0 to 4294967295, or -1 for any)`);
    }
    const rule: DeviceRule = {
      type: type as DeviceRule["type"],
      major: type === "a" || d.major === undefined || d.major === -1 ? undefined : d.major,
      minor: type === "a" || d.minor === undefined || d.minor === -1 ? undefined : d.minor,
      access,
    };
    if (d.allow) rules.push(rule);
    else if (rule.type === "a" && access.length === 3) rules = [];
    else if (rules.length > 0)
      fail(
        field,
        "a deny rule after allow rules cannot be honoured (machina allows the listed rules and its standard device nodes; deny-all entries are accepted)",
      );
  }
  return rules;
}

function mapResources(L: NonNullable<OciConfig["linux"]>, set: Setter, fail: Fail, ctx: (f: string) => ErrorContext, mode: "nspawn" | "runtime"): void {
  const r = L.resources;
  if (mode === "runtime" && L.cgroupsPath !== undefined && L.cgroupsPath.startsWith("/")) set("cgroupPathAbsolute", true);
  if (r === undefined) return;
  for (const [k, what] of [
    ["blockIO", "is not supported by machina"],
    ["network", "is not supported by machina"],
    ["rdma", "is not supported by machina"],
  ] as const)
    if (r[k] !== undefined) fail(`linux.resources.${k}`, what);
  if (r.hugepageLimits !== undefined && r.hugepageLimits.length > 0) fail("linux.resources.hugepageLimits", "is not supported by machina");
  if (r.unified !== undefined && Object.keys(r.unified).length > 0) fail("linux.resources.unified", "raw cgroup v2 settings are not supported by machina");
  if (mode === "runtime") {
    // machina-oci: exact values, as runc writes them (the engine that wrote the config asks as root).
    const values = ociCgroupValues(r, fail);
    if (values.length > 0) set("ociResources", values);
    const rules = ociDeviceCgroupRules(r.devices ?? [], fail);
    if (rules.length > 0) set("ociDeviceRules", rules);
    return;
  }
  // machina-nspawn --oci-bundle: as systemd properties (an image's config asks for no more than machina's policy).
  const props: Array<{ name: string; value: string }> = [];
  for (const [i, d] of (r.devices ?? []).entries()) {
    // machina allows only its own standard device nodes: a deny-all entry says the same.
    const denyAll =
      !d.allow && (d.type === undefined || d.type === "a") && d.major === undefined && d.minor === undefined && (d.access === undefined || d.access === "rwm");
    if (!denyAll)
      fail(
        `linux.resources.devices[${i}]`,
        "device access rules cannot be honoured (machina allows its standard device nodes only; a deny-all entry is accepted)",
      );
  }
  const m = r.memory;
  if (m !== undefined) {
    if (m.limit !== undefined) props.push({ name: "MemoryMax", value: m.limit < 0 ? "infinity" : String(m.limit) });
    for (const k of ["reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"] as const)
      if (m[k] !== undefined) fail(`linux.resources.memory.${k}`, "is not supported by machina (supported: memory.limit)");
  }
  const cpu = r.cpu;
  if (cpu !== undefined) {
    if (cpu.shares !== undefined) {
      if (cpu.shares < 2 || cpu.shares > 262144) fail("linux.resources.cpu.shares", `${cpu.shares} is out of range (2 to 262144)`);
      // cgroup v1 shares -> v2 weight, as runc and crun convert them.
      props.push({ name: "CPUWeight", value: String(1 + Math.floor(((cpu.shares - 2) * 9999) / 262142)) });
    }
    if (cpu.quota !== undefined && cpu.quota > 0) {
      const period = cpu.period ?? 100000;
      if (period <= 0) fail("linux.resources.cpu.period", `${period} is out of range`);
      const permyriad = Math.max(1, Math.floor((cpu.quota * 10000) / period));
      props.push({ name: "CPUQuota", value: `${Math.floor(permyriad / 100)}.${String(permyriad % 100).padStart(2, "0")}%` });
    }
    if (cpu.cpus !== undefined && cpu.cpus !== "") set("cpuAffinity", parseCpuSet(cpu.cpus, ctx("linux.resources.cpu.cpus")));
    for (const k of ["burst", "realtimeRuntime", "realtimePeriod", "mems", "idle"] as const)
      if (cpu[k] !== undefined)
        fail(`linux.resources.cpu.${k}`, "is not supported by machina-nspawn (supported: cpu.shares, cpu.quota with cpu.period, cpu.cpus)");
  }
  if (r.pids !== undefined) props.push({ name: "TasksMax", value: r.pids.limit <= 0 ? "infinity" : String(r.pids.limit) });
  if (props.length > 0) set("properties", props);
}
