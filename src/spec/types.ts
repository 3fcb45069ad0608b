/**
 * RunSpec: everything the native helper needs to start one container, computed in advance.
 * Mirrors native/SPEC.md record for record; `wire.ts` encodes it.
 */
import type { DeviceRule } from "./devices.ts";
import type { CgroupSet } from "./resources.ts";
import type { SeccompFilter } from "./seccomp.ts";
import type { SpecUserns } from "./userns.ts";

/** How a mount target is created when missing. */
export type CreateMode = "dir" | "file" | "none" | "optional" | "auto" | "copyup";

export type SetupOp =
  | { op: "mount"; source: string; target: string; fstype: string; flags: number; data: string; create: CreateMode }
  | { op: "rebind"; target: string; flags: number; optional: boolean }
  | { op: "mkdir"; path: string; mode: number }
  | { op: "mknod"; path: string; mode: number; major: number; minor: number }
  | { op: "symlink"; target: string; path: string }
  | { op: "write"; path: string; mode: number; content: string }
  | { op: "copy"; source: string; path: string; mode: number }
  | { op: "remove"; path: string }
  | { op: "mask"; path: string }
  | { op: "cgroupns" }
  | { op: "notify"; path: string }
  /** A file system the supervisor creates in the host's namespaces (userns.ts): sysfs without a netns of our own. */
  | { op: "fsmount"; fstype: string; target: string; flags: number; data: string }
  /**
   * An ID-mapped bind mount (--bind=…:idmap/rootidmap), prepared by the supervisor: on-disk ids
   * from…from+count-1 (from "owner" = the source's owner) appear as host ids to…; the same map
   * for uids and gids. source HPATH or "+CPATH".
   */
  | { op: "idmapBind"; source: string; target: string; flags: number; create: CreateMode; from: number | "owner"; to: number; count: number }
  /** overlayfs at target; layers HPATH or "+CPATH" (in the image), bottom first; upper/work "" = read-only. */
  | { op: "overlay"; target: string; flags: number; upper: string; work: string; lower: string[] };

export type Namespace = "mnt" | "pid" | "uts" | "ipc" | "net" | "cgroup" | "user";
export type SpecConsole = "interactive" | "read-only" | "passive" | "pipe";

export interface ExecCandidate {
  path: string;
  argv0: string;
}

export interface SpecRlimit {
  resource: number;
  soft: bigint | "infinity";
  hard: bigint | "infinity";
  /**
   * "closest": when the limits cannot be raised (EPERM), set the nearest ones the container may
   * (both capped at its hard limit), as nspawn applies --rlimit=/Limit*= (setrlimit_closest).
   */
  mode: "exact" | "closest";
}

/** A runtime-spec hook the helper runs in the container (native/SPEC.md `oci_hook`). */
export interface SpecOciHook {
  stage: "create_container" | "start_container";
  path: string;
  /** seconds; 0 = none */
  timeout: number;
  /** argv[0] first */
  argv: string[];
  env: string[];
}

export interface RunSpec {
  prog: string;
  machine: string;
  root: string;
  readOnly: boolean;
  namespaces: Namespace[];
  /** Set in the new UTS namespace; absent when the host's is shared ($SYSTEMD_NSPAWN_SHARE_NS_UTS). */
  hostname?: string;
  statusFd: number | undefined;
  registry: string | undefined;
  /** JSON members without braces. */
  stateJson: string | undefined;
  cgroups: string[];
  killSignal: number;
  boot: boolean;
  onReboot: "restart" | "exit133";
  notifyReady: boolean;
  notifyForward: string | undefined;
  console: SpecConsole;
  consoleOpost: boolean;
  /** console_log: the supervisor writes the payload's output (console pipe) and its own messages
   * to `path`, rotated to path.1 … path.(keep-1) before path would exceed maxBytes. */
  consoleLog?: { path: string; maxBytes: number; keep: number };
  quiet: boolean;
  /**
   * machina-oci create (native/SPEC.md "OCI runtime"): the payload waits at `execFifo` before its
   * execve; with `detach` the supervisor exits once it waits there. `consoleSocket`: the pty
   * master is sent there instead of being relayed. `hooks`: the createContainer and startContainer
   * hooks the helper runs (oci_hook), each stage's with `hookState` (JSON members without braces;
   * the helper adds "pid").
   */
  oci?: {
    detach: boolean;
    execFifo: string;
    consoleSocket?: string;
    hooks?: SpecOciHook[];
    hookState?: Partial<Record<SpecOciHook["stage"], string>>;
  };
  /** The payload's umask (default 022): an OCI config's process.user.umask. */
  umask?: number;
  /** machina-oci: propagation flags (MS_SHARED, MS_SLAVE, MS_PRIVATE or MS_UNBINDABLE, maybe with MS_REC) set on "/" after the pivot. */
  rootPropagation?: number;
  ops: SetupOp[];
  env: string[];
  chdir: string | undefined;
  /** Hex masks, bit n = capability n. */
  capsBounding: string;
  capsAmbient: string;
  rlimits: SpecRlimit[];
  noNewPrivs: boolean;
  user: { uid: number; gid: number; groups: number[] } | undefined;
  asPid2: boolean;
  /** Seccomp filters, loaded in order (see spec/seccomp.ts). */
  seccomp: SeccompFilter[];
  /** Where the helper caches the compiled filters (native/SPEC.md, `seccomp_cache`). */
  seccompCache?: string;
  /** personality(2) of the container's PID 1, when --personality= is given. */
  personality: number | undefined;
  oomScoreAdjust: number | undefined;
  cpuAffinity: number[] | undefined;
  /** Cgroup files written by the supervisor after the child joined its cgroups. */
  cgroupSets: CgroupSet[];
  /** -Z: SELinux label the payload is executed with (`selinux_context`). */
  selinuxContext?: string;
  exec: ExecCandidate[];
  args: string[];
  /** User namespace (userns.ts); absent = the host's. */
  userns?: SpecUserns;
  /** Root modes, pivot_root_dir and host-side directories (spec/root-modes.ts, mounts-user.ts, journal.ts). */
  rootSetup?: RootSetup;
  /** Network namespace to join instead of creating one: prepared by src/net/, or --network-namespace-path. */
  netns?: string;
  /** IPC and UTS namespaces joined by path instead of created (machina-oci: a pod's). */
  ipcns?: string;
  utsns?: string;
  /** machina-oci: a mount namespace the container joins (the root is set up in it), instead of "mnt". */
  mntns?: string;
  /** machina-oci: a PID namespace the container joins (its first process is not that namespace's init), instead of "pid". */
  pidns?: string;
  /** `net_*` records (src/net/plan.ts helperNetOps): the main veth, made by the supervisor after each clone. */
  netOps?: string[][];
  /** Started by the supervisor in the background before the first clone, awaited before the child is released (src/net/: the nft table's base). */
  prestart?: string[];
  /** [FAMILY, NAME]: `prestart` is not started when that nft table exists (the base applied by an earlier start). */
  prestartUnlessTable?: [string, string];
  /** Run by the supervisor after the container is gone: the undo of src/net/'s setup. */
  onExit?: string[];
  /** onExit started in the background and not waited for (spec/build.ts detachOnExit); the main veth is left to it. */
  onExitDetach?: boolean;
  /** Created by the supervisor when the container is gone, before onExit (spec/network.ts netExitMarkPath). */
  exitMark?: string;
  /** Host mounts (a raw image's file system, -i) the supervisor detaches at exit: `host_umount` records. */
  hostUmounts?: string[];
  /** The device policy (spec/devices.ts): the cgroup2 directory its BPF program is attached to, and the allowed devices. */
  devicePolicy?: { cgroup: string; allow: readonly DeviceRule[] };
  /** Files and empty directories the supervisor removes right after them (their record): `host_remove` records. */
  hostRemoves?: string[];
  /** Files the supervisor writes with every state.json, "{leader}" replaced (systemd-machined's record when none runs: spec/machined-records.ts). */
  hostRecords?: Array<{ path: string; body: string }>;
  /** Symlinks made with them (`host_record_link`): machined's `unit:` link. */
  hostRecordLinks?: Array<{ target: string; path: string }>;
  /** Locks on the images the container uses, held by the supervisor for its whole life (src/image/in-use.ts). */
  imageLocks?: ImageLock[];
  /** Cgroup the supervisor moves itself into first (--keep-unit under systemd: the unit's `supervisor/`). */
  supervisorCgroup?: string;
  /** Run by the supervisor with each new leader (`{leader}` = its pid) before it goes on: the registration with systemd-machined. */
  onLeader?: string[];
}

/** One `image_lock` record: the lock file, how it is held, and the image it stands for (messages, state.json). */
export interface ImageLock {
  path: string;
  mode: "exclusive" | "shared";
  image: string;
}

export interface RootSetup {
  /** The root is a fresh tmpfs, or an overlay with a tmpfs upper over the image (tmpfs options). */
  rootMode?: { kind: "tmpfs" | "overlay"; data: string };
  pivotRoot?: { newRoot: string; oldRoot: string | undefined };
  /** Created by the supervisor before the container, removed (recursively) when it exits. */
  scratchDirs: Array<{ path: string; mode: number }>;
  /** Where the supervisor lists the scratch dirs, so that the next start removes them after a crash. */
  scratchList?: string;
  hostMkdirs: Array<{ path: string; mode: number }>;
  hostSymlinks: Array<{ target: string; path: string }>;
}

/** An `on_leader` argument the helper replaces by the leader's pid (native/hooks.h). */
export const HOOK_LEADER_ARG = "{leader}";
