/**
 * Settings: what the user asked for, from the command line and .nspawn files, with the
 * provenance of every value. Pure data; `spec/` turns it into a RunSpec.
 */
import type { CapabilityName } from "./capabilities.ts";
import type { BindMount, Credential, OverlayMount, PortForward, PrivateUsers, Propagation, TmpfsMount } from "./compound-values.ts";
import type { Rlimit } from "./rlimits.ts";
import type { SeccompFilter } from "../spec/seccomp.ts";
import type { DeviceRule } from "../spec/devices.ts";

/** The cgroup controllers machina sets values of, each with the name of its cgroup v1 hierarchy. */
export const V1_HIERARCHY = { memory: "memory", pids: "pids", cpu: "cpu", cpuset: "cpuset", io: "blkio" } as const;
export type CgroupController = keyof typeof V1_HIERARCHY;

/**
 * One value of a container's resources, in both cgroup versions: the v2 file and value where
 * the controller is in cgroup v2, else the v1 files and values (written in order) in its v1
 * hierarchy. `v2` undefined: cgroup v2 has no equivalent (refused there, naming `field`).
 */
export interface CgroupValue {
  controller: CgroupController;
  /** What asked for it (a config.json field or a --property name), for messages. */
  field: string;
  v2: [file: string, value: string] | undefined;
  v1: Array<[file: string, value: string]>;
}

export const CONSOLE_MODES = ["interactive", "read-only", "passive", "pipe", "autopipe"] as const;
export type ConsoleMode = (typeof CONSOLE_MODES)[number];

export const RESOLV_CONF_MODES = [
  "off",
  "copy-host",
  "copy-static",
  "copy-uplink",
  "copy-stub",
  "replace-host",
  "replace-static",
  "replace-uplink",
  "replace-stub",
  "bind-host",
  "bind-static",
  "bind-uplink",
  "bind-stub",
  "delete",
  "auto",
] as const;
export type ResolvConfMode = (typeof RESOLV_CONF_MODES)[number];

export const TIMEZONE_MODES = ["off", "copy", "bind", "symlink", "delete", "auto"] as const;
export type TimezoneMode = (typeof TIMEZONE_MODES)[number];

export const LINK_JOURNAL_MODES = ["no", "auto", "guest", "host", "try-guest", "try-host"] as const;
export type LinkJournalMode = (typeof LINK_JOURNAL_MODES)[number];

export const SETTINGS_MODES = ["yes", "no", "override", "trusted"] as const;
export type SettingsMode = (typeof SETTINGS_MODES)[number];

export const VOLATILE_MODES = ["no", "yes", "state", "overlay"] as const;
export type VolatileMode = (typeof VOLATILE_MODES)[number];

export const OWNERSHIP_MODES = ["off", "chown", "map", "auto"] as const;
export type OwnershipMode = (typeof OWNERSHIP_MODES)[number];

/** Where a value came from. */
export type Source = { kind: "default" } | { kind: "cli"; flag: string } | { kind: "file"; file: string; line: number; trusted: boolean };

export interface Settings {
  directory: string | undefined;
  /** Command and arguments (operands after the options). */
  command: string[];
  boot: boolean;
  asPid2: boolean;
  machine: string | undefined;
  hostname: string | undefined;
  uuid: string | undefined;
  /** `NAME=VALUE` entries, later ones win. */
  environment: string[];
  chdir: string | undefined;
  user: string | undefined;
  /** Numeric identity from an OCI config (process.user): exact gid and supplementary groups, with `user` = the uid. */
  userIds: { uid: number; gid: number; additionalGids: number[] } | undefined;
  /**
   * machina-oci: the config's API file systems (proc, /dev, devpts, shm, mqueue, sysfs, cgroup,
   * /run), in its order and with its source names and options: mounted as listed, not in
   * machina-nspawn's order. undefined: machina-nspawn's API mounts.
   */
  ociApiMounts: Array<{ destination: string; type: string; source: string; options: string[] }> | undefined;
  /** machina-oci: device nodes to create (linux.devices); MODE includes the file type bits. */
  ociDevices: Array<{ path: string; mode: number; major: number; minor: number }> | undefined;
  /**
   * machina-oci: the propagation of the container's root mount (linux.rootfsPropagation), set
   * after the pivot; undefined: machina-nspawn's (a slave of the host's, nothing propagates out).
   */
  ociRootPropagation: Propagation | undefined;
  /** The payload's umask (an OCI config's process.user.umask); default 022. */
  umask: number | undefined;
  /** machina-oci runs this container: the root is any directory (no OS tree required), as runc. */
  ociRuntime: boolean;
  /** machina-oci: IPC and UTS namespaces to join (linux.namespaces[].path), instead of new ones. */
  ipcNamespacePath: string | undefined;
  /** machina-oci: mount and PID namespaces to join (linux.namespaces[].path), instead of new ones. */
  mountNamespacePath: string | undefined;
  pidNamespacePath: string | undefined;
  utsNamespacePath: string | undefined;
  /** machina-oci: the container's cgroup, below the cgroup2 root (linux.cgroupsPath); else the machine's scope in --slice. */
  cgroupPath: string | undefined;
  /**
   * machina-oci: linux.cgroupsPath is absolute ("/a/b"): in cgroup v1 hierarchies it is taken
   * from the hierarchy's root, as runc; otherwise below the cgroup machina-oci runs in there.
   */
  cgroupPathAbsolute: boolean;
  /** machina-oci: linux.resources exactly as runc writes them (settings/oci-config.ts ociCgroupValues), in order. */
  ociResources: CgroupValue[] | undefined;
  /**
   * machina-oci: linux.resources.devices' allow rules in order (those after the last deny-all),
   * allowed before machina's standard nodes; undefined: machina's device policy alone.
   */
  ociDeviceRules: DeviceRule[] | undefined;
  /** --oci-bundle=: the bundle directory (config.json + root), read by runtime/prepare.ts. */
  ociBundle: string | undefined;
  quiet: boolean;
  killSignal: number | undefined;
  notifyReady: boolean;
  console: ConsoleMode | undefined;
  readOnly: boolean;
  capabilities: CapabilityName[];
  dropCapabilities: CapabilityName[] | "all";
  ambientCapabilities: CapabilityName[];
  noNewPrivileges: boolean;
  rlimits: Rlimit[];
  resolvConf: ResolvConfMode;
  timezone: TimezoneMode;
  linkJournal: LinkJournalMode;
  settingsMode: SettingsMode;
  register: boolean;
  keepUnit: boolean;
  privateNetwork: boolean;
  // Image and root
  template: string | undefined;
  ephemeral: boolean;
  image: string | undefined;
  volatile: VolatileMode;
  /** `PATH[:PATH]`: new root inside the image, and where the old root goes. */
  pivotRoot: { newRoot: string; oldRoot: string | undefined } | undefined;
  // Execution
  personality: string | undefined;
  suppressSync: boolean;
  credentials: Credential[];
  // Mounts
  binds: BindMount[];
  tmpfs: TmpfsMount[];
  overlays: OverlayMount[];
  inaccessible: string[];
  bindUsers: string[];
  // Isolation and resources
  /** Syscall names and @groups: allowed in addition to the default, and denied. */
  systemCallFilter: { allow: string[]; deny: string[] };
  /**
   * The exact seccomp filter of an OCI config.json (linux.seccomp, src/settings/oci-seccomp.ts):
   * replaces machina's default filter (and so systemCallFilter and suppressSync's filter).
   */
  seccompProfile: SeccompFilter[] | undefined;
  /** -Z: SELinux label the payload (and what `machinactl shell` enters) is executed with. */
  selinuxContext: string | undefined;
  /** -L: SELinux context of the API file systems (tmpfs, devpts), as `context="…"` mount option. */
  selinuxApifsContext: string | undefined;
  privateUsers: PrivateUsers;
  privateUsersOwnership: OwnershipMode;
  oomScoreAdjust: number | undefined;
  cpuAffinity: number[] | undefined;
  properties: Array<{ name: string; value: string }>;
  slice: string | undefined;
  // Networking (carried out by net/)
  networkVeth: boolean;
  networkVethExtra: string[];
  networkBridge: string | undefined;
  networkZone: string | undefined;
  networkInterfaces: string[];
  networkMacvlan: string[];
  networkIpvlan: string[];
  networkNamespacePath: string | undefined;
  ports: PortForward[];
  /** Flags that were given but that this build cannot carry out yet. */
  unsupported: string[];
  /** Provenance of each setting that does not have its default. */
  provenance: Map<keyof Settings, Source>;
}

export function defaultSettings(): Settings {
  return {
    directory: undefined,
    command: [],
    boot: false,
    asPid2: false,
    machine: undefined,
    hostname: undefined,
    uuid: undefined,
    environment: [],
    chdir: undefined,
    user: undefined,
    userIds: undefined,
    cgroupPath: undefined,
    cgroupPathAbsolute: false,
    ociResources: undefined,
    ociDeviceRules: undefined,
    ociRuntime: false,
    umask: undefined,
    ociApiMounts: undefined,
    ociDevices: undefined,
    ociRootPropagation: undefined,
    ipcNamespacePath: undefined,
    mountNamespacePath: undefined,
    pidNamespacePath: undefined,
    utsNamespacePath: undefined,
    ociBundle: undefined,
    quiet: false,
    killSignal: undefined,
    notifyReady: false,
    console: undefined,
    readOnly: false,
    capabilities: [],
    dropCapabilities: [],
    ambientCapabilities: [],
    noNewPrivileges: false,
    rlimits: [],
    resolvConf: "auto",
    timezone: "auto",
    linkJournal: "auto",
    settingsMode: "yes",
    register: true,
    keepUnit: false,
    privateNetwork: false,
    template: undefined,
    ephemeral: false,
    image: undefined,
    volatile: "no",
    pivotRoot: undefined,
    personality: undefined,
    suppressSync: false,
    credentials: [],
    binds: [],
    tmpfs: [],
    overlays: [],
    inaccessible: [],
    bindUsers: [],
    systemCallFilter: { allow: [], deny: [] },
    seccompProfile: undefined,
    selinuxContext: undefined,
    selinuxApifsContext: undefined,
    privateUsers: { mode: "no" },
    privateUsersOwnership: "auto",
    oomScoreAdjust: undefined,
    cpuAffinity: undefined,
    properties: [],
    slice: undefined,
    networkVeth: false,
    networkVethExtra: [],
    networkBridge: undefined,
    networkZone: undefined,
    networkInterfaces: [],
    networkMacvlan: [],
    networkIpvlan: [],
    networkNamespacePath: undefined,
    ports: [],
    unsupported: [],
    provenance: new Map(),
  };
}
