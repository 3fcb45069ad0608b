/**
 * Facts that user namespace planning (spec/userns.ts) needs: who owns the root directory, which
 * file system it is on (ID-mapped mounts), the host's users and groups, and which UID ranges
 * other containers hold (lock files in STATE/userns/, held by their supervisors).
 */
import type { Host } from "./host.ts";
import { type PasswdEntry, parseGroup, parsePasswd } from "./facts.ts";

export interface UsernsFacts {
  /** Owner of the root directory; undefined when it does not exist. */
  rootOwner: { uid: number; gid: number } | undefined;
  /** File system type of the mount the root directory is on ("ext4"). */
  rootFsType: string | undefined;
  /** UIDs and GIDs the host's /etc/passwd and /etc/group define. */
  hostUids: number[];
  hostGids: number[];
  /** Directory of the range lock files (`BASE` each). */
  lockDir: string;
  /** Range bases whose lock file is held by a running supervisor. */
  rangesInUse: number[];
  /** The host's users and groups, and password hashes by user name (/etc/shadow), for --bind-user. */
  hostUsers: PasswdEntry[];
  hostGroups: Array<{ name: string; gid: number }>;
  hostShadow: Record<string, string>;
}

/** User name -> password hash from /etc/shadow text (empty hashes left out). */
export function parseShadow(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(":");
    if (f.length >= 2 && f[0] !== "" && f[1] !== "" && !line.startsWith("#")) out[f[0]!] = f[1]!;
  }
  return out;
}

/** The mount whose mount point is the longest prefix of `path` (mountinfo order: last wins). */
export function fsTypeOf(mountinfo: string, path: string): string | undefined {
  let best: { len: number; type: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep === -1) continue;
    const mp = (line.slice(0, sep).split(" ")[4] ?? "").replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const type = line.slice(sep + 3).split(" ")[0] ?? "";
    const under = mp === "/" || path === mp || path.startsWith(`${mp}/`);
    if (under && (best === undefined || mp.length >= best.len)) best = { len: mp.length, type };
  }
  return best?.type;
}

export function gatherUsernsFacts(host: Host, root: string, stateDir: string): UsernsFacts {
  const lockDir = `${stateDir}/userns`;
  const rangesInUse: number[] = [];
  for (const name of host.readdir(lockDir)) {
    if (!/^[0-9]+$/.test(name)) continue;
    const lock = host.tryLock(`${lockDir}/${name}`);
    if (lock === undefined) rangesInUse.push(Number(name));
    else lock.release();
  }
  const hostUsers = parsePasswd(host.readFile("/etc/passwd"));
  const hostGroups = parseGroup(host.readFile("/etc/group")).map((g) => ({ name: g.name, gid: g.gid }));
  return {
    rootOwner: host.owner(root),
    rootFsType: fsTypeOf(host.mountinfo(), root),
    hostUids: hostUsers.map((p) => p.uid),
    hostGids: hostGroups.map((g) => g.gid),
    lockDir,
    rangesInUse: rangesInUse.sort((a, b) => a - b),
    hostUsers,
    hostGroups,
    hostShadow: parseShadow(host.readFile("/etc/shadow")),
  };
}
