/**
 * --bind-user=NAME (BindUser=): a host user (and its private group) mapped into the container
 * at a free UID/GID of nspawn's range 60514…60577, its home bound at /run/host/home/NAME, and
 * JSON user/group records in /run/host/userdb/ (NAME.user, NAME.group, NAME.user-privileged and
 * the UID.* symlinks) for nss-systemd in the guest — as systemd-nspawn 252's
 * nspawn-bind-user.c. Pure: the host's and the image's user databases arrive as facts.
 */
import { invalidError, MachinaError } from "../errors.ts";
import type { ImageFacts } from "../host/facts.ts";
import type { UsernsFacts } from "../host/userns-facts.ts";
import type { Settings } from "../settings/settings.ts";
import { MS } from "./mount-flags.ts";
import type { SetupOp } from "./types.ts";
import type { IdMapLine, UsernsPlan } from "./userns.ts";

/** systemd's MAP_UID_MIN / MAP_UID_MAX: where bound users land in the container. */
export const MAP_UID_MIN = 60514;
export const MAP_UID_MAX = 60577;
export const USERDB_DIR = "/run/host/userdb";
export const HOME_DIR = "/run/host/home";

export interface BoundUser {
  name: string;
  hostUid: number;
  hostGid: number;
  hostHome: string;
  /** UID = GID in the container. */
  uid: number;
  hashedPassword: string | undefined;
}

const flag = "--bind-user";

export function planBindUsers(settings: Settings, image: ImageFacts, plan: UsernsPlan | undefined): BoundUser[] {
  if (settings.bindUsers.length === 0) return [];
  if (plan === undefined) throw invalidError("--bind-user= requires --private-users", { flag }, "add -U or --private-users=pick");
  const facts = image.userns as UsernsFacts;
  const inRange = (id: number) => id >= plan.base && id < plan.base + plan.count;
  const out: BoundUser[] = [];
  let next = MAP_UID_MIN;
  for (const name of settings.bindUsers) {
    if (out.some((u) => u.name === name)) continue;
    const u = facts.hostUsers.find((p) => p.name === name);
    if (u === undefined) throw new MachinaError("E_NOT_FOUND", `Failed to resolve user '${name}': no such user on the host`, { flag, value: name });
    if (u.uid === 0) throw invalidError("Mapping 'root' user not supported, sorry.", { flag, value: name });
    if (u.uid === 65534) throw invalidError("Mapping 'nobody' user not supported, sorry.", { flag, value: name });
    if (inRange(u.uid))
      throw invalidError(`UID ${u.uid} of user '${name}' to map is already in container UID range (${plan.base} - ${plan.base + plan.count}), refusing.`, {
        flag,
        value: name,
      });
    const g = facts.hostGroups.find((x) => x.gid === u.gid);
    if (g === undefined)
      throw new MachinaError("E_NOT_FOUND", `Failed to resolve group of user '${name}': no group ${u.gid} on the host`, { flag, value: name });
    if (inRange(g.gid)) throw invalidError(`GID of group '${g.name}' to map is already in container GID range, refusing.`, { flag, value: name });
    if (g.name !== name)
      throw new MachinaError("E_UNSUPPORTED", "Sorry, mapping users without private groups is currently not supported.", { flag, value: name });
    // the first UID (also used as GID) the image's /etc/passwd and /etc/group do not know
    while (image.passwd.some((p) => p.uid === next) || image.groups.some((x) => x.gid === next)) next++;
    if (next > MAP_UID_MAX || next > plan.count)
      throw new MachinaError("E_BUSY", `No suitable available UID in range ${MAP_UID_MIN}…${MAP_UID_MAX} in container detected, can't map user.`, {
        flag,
        value: name,
      });
    if (image.passwd.some((p) => p.name === name))
      throw new MachinaError("E_BUSY", `Sorry, the user '${name}' already exists in the container.`, { flag, value: name });
    if (image.groups.some((x) => x.name === name))
      throw new MachinaError("E_BUSY", `Sorry, the group '${name}' already exists in the container.`, { flag, value: name });
    out.push({ name, hostUid: u.uid, hostGid: u.gid, hostHome: u.home, uid: next, hashedPassword: facts.hostShadow[name] });
    next++;
  }
  return out;
}

/** nspawn's make_uid_map_string(): the range, with a hole of one id per bound user. */
export function idMapWithUsers(plan: UsernsPlan, bound: BoundUser[], which: "uid" | "gid"): IdMapLine[] {
  const lines: IdMapLine[] = [];
  let previous = 0;
  for (const u of [...bound].sort((a, b) => a.uid - b.uid)) {
    if (u.uid > previous) lines.push({ inside: previous, outside: plan.base + previous, count: u.uid - previous });
    lines.push({ inside: u.uid, outside: which === "uid" ? u.hostUid : u.hostGid, count: 1 });
    previous = u.uid + 1;
  }
  if (previous < plan.count) lines.push({ inside: previous, outside: plan.base + previous, count: plan.count - previous });
  return lines;
}

export function userRecord(u: BoundUser): string {
  return JSON.stringify({ userName: u.name, uid: u.uid, gid: u.uid, homeDirectory: `${HOME_DIR}/${u.name}`, service: "io.systemd.NSpawn" });
}
export function groupRecord(u: BoundUser): string {
  return JSON.stringify({ groupName: u.name, gid: u.uid, service: "io.systemd.NSpawn" });
}

/** Ops while /run/host is writable: the records, their symlinks, the home directories. */
export function bindUserOps(bound: BoundUser[]): SetupOp[] {
  if (bound.length === 0) return [];
  const ops: SetupOp[] = [
    { op: "mkdir", path: USERDB_DIR, mode: 0o755 },
    { op: "mkdir", path: HOME_DIR, mode: 0o755 },
  ];
  for (const u of bound) {
    const files: Array<[string, string, number]> = [
      [".user", userRecord(u), 0o644],
      [".group", groupRecord(u), 0o644],
    ];
    if (u.hashedPassword) files.push([".user-privileged", JSON.stringify({ privileged: { hashedPassword: [u.hashedPassword] } }), 0o600]);
    for (const [suffix, json, mode] of files) {
      ops.push({ op: "symlink", target: `${u.name}${suffix}`, path: `${USERDB_DIR}/${u.uid}${suffix}` });
      ops.push({ op: "write", path: `${USERDB_DIR}/${u.name}${suffix}`, mode, content: `${json}\n` });
    }
    ops.push({ op: "mount", source: u.hostHome, target: `${HOME_DIR}/${u.name}`, fstype: "", flags: MS.BIND, data: "", create: "dir" });
  }
  return ops;
}
