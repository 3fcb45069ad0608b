/**
 * The environment variables systemd-nspawn 252 documents or honours (systemd's ENVIRONMENT.md,
 * "systemd-nspawn"), read here and nowhere else: a typed view of the caller's environment. Each
 * one is either carried out or refused with one line naming it; a malformed value is refused as
 * nspawn refuses it ("Failed to parse $NAME"). Pure: the caller passes the environment.
 * docs/options.md lists them.
 */
import { usageError } from "../errors.ts";
import { parseBoolean } from "./values.ts";

export interface NspawnEnvironment {
  /**
   * $SYSTEMD_NSPAWN_API_VFS_WRITABLE: "ro" (unset or false: nspawn's read-only /sys, /proc/sys…),
   * "rw" (true: /sys and /proc writable), "network" (read-only, but /proc/sys/net writable).
   */
  apiVfs: "ro" | "rw" | "network";
  /** $SYSTEMD_NSPAWN_TMPFS_TMP (default true): a tmpfs on /tmp; false keeps the image's /tmp. */
  tmpfsTmp: boolean;
  /** $SYSTEMD_NSPAWN_SHARE_NS_IPC / _UTS (or $SYSTEMD_NSPAWN_SHARE_SYSTEM): keep the host's namespace. */
  shareIpc: boolean;
  shareUts: boolean;
  /** $SYSTEMD_SUPPRESS_SYNC: as --suppress-sync= (the command line and .nspawn files win). */
  suppressSync: boolean | undefined;
  /** $SYSTEMD_NSPAWN_CONTAINER_SERVICE: the service name given to systemd-machined. */
  containerService: string | undefined;
  /** $SYSTEMD_NSPAWN_LOCK (default true): lock the image while it runs. */
  lockImage: boolean;
}

/** The variables, with what machina does with each (docs/options.md repeats this). */
export const NSPAWN_ENVIRONMENT = [
  "SYSTEMD_NSPAWN_API_VFS_WRITABLE",
  "SYSTEMD_NSPAWN_TMPFS_TMP",
  "SYSTEMD_NSPAWN_SHARE_NS_IPC",
  "SYSTEMD_NSPAWN_SHARE_NS_UTS",
  "SYSTEMD_NSPAWN_SHARE_NS_PID",
  "SYSTEMD_NSPAWN_SHARE_SYSTEM",
  "SYSTEMD_SUPPRESS_SYNC",
  "SYSTEMD_NSPAWN_CONTAINER_SERVICE",
  "SYSTEMD_NSPAWN_LOCK",
  "SYSTEMD_NSPAWN_USE_CGNS",
  "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY",
] as const;

type Env = Readonly<Record<string, string | undefined>>;

function bool(env: Env, name: string): boolean | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  return parseBoolean(v, { flag: `$${name}` });
}

function refuse(name: string, value: string, why: string): never {
  throw usageError(`$${name}=${value} is not supported by machina-nspawn: ${why}`, { flag: `$${name}`, value });
}

export function parseNspawnEnvironment(env: Env): NspawnEnvironment {
  const vfs = env["SYSTEMD_NSPAWN_API_VFS_WRITABLE"];
  const apiVfs = vfs === undefined ? "ro" : vfs === "network" ? "network" : bool(env, "SYSTEMD_NSPAWN_API_VFS_WRITABLE") ? "rw" : "ro";
  const shareSystem = bool(env, "SYSTEMD_NSPAWN_SHARE_SYSTEM") ?? false;
  const sharePid = bool(env, "SYSTEMD_NSPAWN_SHARE_NS_PID") ?? shareSystem;
  if (sharePid)
    refuse(
      env["SYSTEMD_NSPAWN_SHARE_NS_PID"] !== undefined ? "SYSTEMD_NSPAWN_SHARE_NS_PID" : "SYSTEMD_NSPAWN_SHARE_SYSTEM",
      env["SYSTEMD_NSPAWN_SHARE_NS_PID"] ?? env["SYSTEMD_NSPAWN_SHARE_SYSTEM"]!,
      "a container always has its own pid namespace (its payload is PID 1)",
    );
  if (bool(env, "SYSTEMD_NSPAWN_USE_CGNS") === false)
    refuse("SYSTEMD_NSPAWN_USE_CGNS", env["SYSTEMD_NSPAWN_USE_CGNS"]!, "a container always has its own cgroup namespace and cgroup2 hierarchy");
  if (bool(env, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY") === false)
    refuse(
      "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY",
      env["SYSTEMD_NSPAWN_UNIFIED_HIERARCHY"]!,
      "containers get the unified (cgroup2) hierarchy only (docs/COMPATIBILITY.md)",
    );
  const service = env["SYSTEMD_NSPAWN_CONTAINER_SERVICE"];
  if (service !== undefined && service !== "" && !/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/.test(service))
    throw usageError(
      `invalid value ${JSON.stringify(service)} for $SYSTEMD_NSPAWN_CONTAINER_SERVICE: expected a service name (letters, digits, '-', '_', '.', '@')`,
      { flag: "$SYSTEMD_NSPAWN_CONTAINER_SERVICE", value: service },
    );
  let suppressSync: boolean | undefined;
  try {
    suppressSync = bool(env, "SYSTEMD_SUPPRESS_SYNC");
  } catch {
    suppressSync = undefined; // nspawn ignores a malformed value (debug message)
  }
  return {
    apiVfs,
    tmpfsTmp: bool(env, "SYSTEMD_NSPAWN_TMPFS_TMP") ?? true,
    shareIpc: bool(env, "SYSTEMD_NSPAWN_SHARE_NS_IPC") ?? shareSystem,
    shareUts: bool(env, "SYSTEMD_NSPAWN_SHARE_NS_UTS") ?? shareSystem,
    suppressSync,
    containerService: service === "" ? undefined : service,
    lockImage: bool(env, "SYSTEMD_NSPAWN_LOCK") ?? true,
  };
}
