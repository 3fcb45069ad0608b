/**
 * Facts about an image and the host that the mount planners (spec/root-modes.ts,
 * spec/journal.ts) need: the /usr merge of the image, and the journal directories.
 */
import { machinaEnv } from "../config.ts";
import type { Host } from "./host.ts";
import { kindInRoot, resolveInRoot } from "./resolve-in-root.ts";

/** Paths below the image's /usr whose existence --volatile=yes's base file system depends on. */
export const USR_PROBES = ["usr/bin", "usr/sbin", "usr/lib", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2"] as const;

export interface JournalFacts {
  /** Host directory holding persistent journals (MACHINA_HOST_JOURNAL_DIR, else /var/log/journal). */
  hostDir: string;
  hostDirExists: boolean;
  /** The host's own machine id (to refuse linking a container with the same id). */
  hostMachineId: string | undefined;
  /** Kind of HOSTDIR/ID for the image's machine id, and a symlink's target. */
  entryKind: ReturnType<Host["lstat"]>;
  entryTarget: string | undefined;
}

export interface MountFacts {
  /** Kind of the image's /bin itself (not followed): --volatile=yes needs a symlink or nothing. */
  binKind: ReturnType<Host["lstat"]>;
  /** Which of USR_PROBES exist in the image. */
  usrPresent: string[];
  journal: JournalFacts;
}

export function gatherMountFacts(host: Host, root: string, machineId: string | undefined): MountFacts {
  const hostDir = machinaEnv(host.env(), "MACHINA_HOST_JOURNAL_DIR") ?? "/var/log/journal";
  const id = host.readFile("/etc/machine-id")?.trim();
  const entry = machineId === undefined ? undefined : `${hostDir}/${machineId}`;
  const entryKind = entry === undefined ? undefined : host.lstat(entry);
  return {
    binKind: host.lstat(`${root === "/" ? "" : root}/bin`),
    usrPresent: USR_PROBES.filter((p) => kindInRoot(host, root, `/${p}`) !== undefined),
    journal: {
      hostDir,
      hostDirExists: host.lstat(hostDir) === "dir" || (host.lstat(hostDir) === "symlink" && host.realpath(hostDir) !== undefined),
      hostMachineId: id && /^[0-9a-f]{32}$/.test(id) ? id : undefined,
      entryKind,
      entryTarget: entryKind === "symlink" ? host.readlink(entry!) : undefined,
    },
  };
}

/** Host path of a path inside the image (symlinks resolved inside the root), if it exists. */
export function hostPathInImage(host: Host, root: string, path: string): string | undefined {
  return resolveInRoot(host, root, path);
}
