/**
 * User namespaces (--private-users, -U, --private-users-ownership): which UID/GID range the
 * container gets, how the tree's ownership is made to match (off, chown, map = ID-mapped
 * root), and how the setup ops change when the child runs in a user namespace. Pure: the
 * facts arrive in UsernsFacts (host/userns-facts.ts), the helper carries out the result
 * (native/SPEC.md "User namespaces").
 */
import { MachinaError, invalidError } from "../errors.ts";
import type { UsernsFacts } from "../host/userns-facts.ts";
import type { IdMapLine } from "../settings/compound-values.ts";
import type { OwnershipMode, Settings } from "../settings/settings.ts";
import { type BoundUser, idMapWithUsers } from "./bind-user.ts";
import { MS } from "./mount-flags.ts";
import { siphash24 } from "./siphash.ts";
import type { RunSpec, SetupOp } from "./types.ts";

/** systemd's CONTAINER_UID_BASE_MIN / _MAX: where `pick` chooses ranges. */
export const PICK_MIN = 0x00080000;
export const PICK_MAX = 0x6fff0000;
export const RANGE = 0x10000;
/** nspawn's key for hashing the machine name into a range (nspawn.c uid_shift_pick). */
const HASH_KEY = new Uint8Array([0xe1, 0x56, 0xe0, 0xf0, 0x4a, 0xf0, 0x41, 0xaf, 0x96, 0x41, 0xcf, 0x41, 0x33, 0x94, 0xff, 0x72]);
const PICK_TRIES = 100;

/** File systems that accept ID-mapped mounts (FS_ALLOW_IDMAP) on the kernels machina targets. */
export const IDMAP_FILESYSTEMS = [
  "ext2",
  "ext3",
  "ext4",
  "xfs",
  "btrfs",
  "f2fs",
  "vfat",
  "msdos",
  "fat",
  "tmpfs",
  "overlay",
  "erofs",
  "ntfs3",
  "bcachefs",
  "ceph",
];

export type { IdMapLine };

export interface UsernsPlan {
  /** The host uid of the container's root (and the range's start for -U). */
  base: number;
  count: number;
  /** machina-oci's exact maps (PrivateUsers `maps`): used as given, the tree's ownership untouched. */
  maps: { uid: IdMapLine[]; gid: IdMapLine[] } | undefined;
  ownership: "off" | "chown" | "map";
  /** `pick`: the range lock the supervisor holds while the container runs. */
  lock: string | undefined;
  /** The container's root owns the tree (chown, map, or a tree already in the range): it can write it. */
  treeOwned: boolean;
}

/** What the helper gets (RunSpec.userns); every field maps to one record. */
export interface SpecUserns {
  uidMap: IdMapLine[];
  gidMap: IdMapLine[];
  cgroupOwner: { uid: number; gid: number };
  lock: string | undefined;
  chownRoot: { base: number; count: number } | undefined;
  idmapRoot: { base: number; count: number } | undefined;
}

/** nspawn's hash of the machine name into [PICK_MIN, PICK_MAX), 65536-aligned. */
export function hashedRange(machine: string): number {
  const h = Number(siphash24(new TextEncoder().encode(machine), HASH_KEY) & 0xffffffffn);
  return (((h % (PICK_MAX - PICK_MIN)) + PICK_MIN) & 0xffff0000) >>> 0;
}

/** Deterministic "random" candidates after the hashed one (seeded by the host's random id). */
function nextCandidate(seed: string, i: number): number {
  const h = Number(siphash24(new TextEncoder().encode(`${seed}:${i}`), HASH_KEY) & 0xffffffffn);
  return (((h % (PICK_MAX - PICK_MIN)) + PICK_MIN) & 0xffff0000) >>> 0;
}

function rangeFree(base: number, facts: UsernsFacts): boolean {
  if (base < PICK_MIN || base > PICK_MAX || (base & 0xffff) !== 0) return false;
  if (facts.rangesInUse.includes(base)) return false;
  // nspawn's "superficial" check: the first and (almost) last id of the range are unknown to the host
  for (const id of [base, base + 0xfffe]) if (facts.hostUids.includes(id) || facts.hostGids.includes(id)) return false;
  return true;
}

/** The ownership mode in effect: explicit, else `auto` for pick and `off` otherwise (nspawn). */
function ownershipMode(settings: Settings): OwnershipMode {
  if (settings.provenance.has("privateUsersOwnership")) return settings.privateUsersOwnership;
  return settings.privateUsers.mode === "pick" ? "auto" : "off";
}

/** The range the root directory's owner marks (yes, pick): upper 16 bits of uid and gid, which must agree. */
function rootBase(root: string, facts: UsernsFacts): number {
  const owner = facts.rootOwner;
  if (owner === undefined) throw new MachinaError("E_NOT_FOUND", `directory "${root}" does not exist`, { path: root });
  const uidBase = (owner.uid & 0xffff0000) >>> 0;
  if (uidBase !== (owner.gid & 0xffff0000) >>> 0)
    throw invalidError(
      `UID and GID base of ${root} don't match.`,
      { path: root },
      "chown the tree so that the root directory's owner and group are in the same range",
    );
  return uidBase;
}

export function planUserns(settings: Settings, root: string, machine: string, facts: UsernsFacts | undefined, seed: string): UsernsPlan | undefined {
  const pu = settings.privateUsers;
  if (pu.mode === "no") return undefined;
  if (facts === undefined) throw new MachinaError("E_SYSTEM", "user namespace facts were not gathered", {});
  if (pu.mode === "maps") return mapsPlan(pu.uid, pu.gid, facts);
  let ownership = ownershipMode(settings);
  let base: number;
  let count = RANGE;
  let lock: string | undefined;
  switch (pu.mode) {
    case "identity":
      base = 0;
      break;
    case "range":
      base = pu.base;
      count = pu.count;
      break;
    case "yes":
    case "pick": {
      base = rootBase(root, facts);
      if (base !== 0) {
        // An already shifted tree: nspawn keeps chowning it (or refuses map) for compatibility.
        if (ownership === "auto") ownership = "chown";
        else if (ownership === "map")
          throw invalidError(`UID base of ${root} is not zero, UID mapping not supported.`, { path: root, flag: "--private-users-ownership" });
      }
      if (pu.mode === "pick") {
        // the root's own range, the name's, then seeded ones: each hashed only when the one before is taken
        const candidate = (i: number) => (i === 0 ? base : i === 1 ? hashedRange(machine) : nextCandidate(seed, i - 2));
        let chosen: number | undefined;
        for (let i = 0; i < PICK_TRIES && chosen === undefined; i++) {
          const c = candidate(i);
          if (rangeFree(c, facts)) chosen = c;
        }
        if (chosen === undefined)
          throw new MachinaError("E_BUSY", `failed to pick a UID/GID range for the container (${PICK_TRIES} candidates in use)`, { flag: "--private-users" });
        base = chosen;
        lock = `${facts.lockDir}/${base}`;
      }
      break;
    }
  }
  if (base + count - 1 > 0xfffffffe) throw invalidError("UID base too high for UID range.", { flag: "--private-users" });
  let mode: UsernsPlan["ownership"] = "off";
  if (ownership === "chown") mode = "chown";
  else if ((ownership === "map" || ownership === "auto") && base !== 0) {
    const idmap = facts.rootFsType !== undefined && IDMAP_FILESYSTEMS.includes(facts.rootFsType);
    if (idmap) mode = "map";
    else if (ownership === "auto") mode = "chown";
    else
      throw new MachinaError(
        "E_UNSUPPORTED",
        `ID mapped mounts are apparently not available for ${root} (${facts.rootFsType ?? "unknown file system"}), sorry.`,
        { path: root, flag: "--private-users-ownership" },
        "use --private-users-ownership=chown",
      );
  }
  if (mode === "chown" && (base % RANGE !== 0 || count !== RANGE))
    throw new MachinaError("E_UNSUPPORTED", `--private-users-ownership=chown needs a range of 65536 starting at a multiple of 65536 (got ${base}:${count})`, {
      flag: "--private-users-ownership",
    });
  const owner = facts.rootOwner;
  const treeOwned = mode !== "off" || (owner !== undefined && owner.uid === base && owner.gid === base);
  return { base, count, maps: undefined, ownership: mode, lock, treeOwned };
}

/**
 * machina-oci's exact maps (runc): no range is picked or locked and the tree's ownership is
 * never changed; the container's root (which both maps must cover) owns the tree only when it
 * already did.
 */
function mapsPlan(uid: IdMapLine[], gid: IdMapLine[], facts: UsernsFacts): UsernsPlan {
  const rootUid = mapToHost(uid, 0);
  const rootGid = mapToHost(gid, 0);
  if (rootUid === undefined || rootGid === undefined)
    throw invalidError("the user namespace maps no root (container ID 0 must be in uidMappings and gidMappings)", { flag: "linux.uidMappings" });
  const line = uid.find((l) => l.inside === 0)!; // ids are never negative: the line of 0 starts at 0
  const owner = facts.rootOwner;
  const treeOwned = owner !== undefined && owner.uid === rootUid && owner.gid === rootGid;
  return { base: rootUid, count: line.count, maps: { uid, gid }, ownership: "off", lock: undefined, treeOwned };
}

const HOST_DEVICE_NODES = new Set(["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/net/tun"]);

/**
 * The setup ops for a child that runs in the user namespace: device nodes cannot be made
 * (the host's are bound instead), nor a block node for /run/host/inaccessible, and sysfs can
 * be mounted only with a network namespace of the container's own (else the supervisor makes
 * it: `fsmount`).
 */
export function usernsOps(ops: SetupOp[], privateNetwork: boolean, treeOwned = true): SetupOp[] {
  const out: SetupOp[] = [];
  for (const op of ops) {
    // A tree the container's root does not own (ownership off): /etc cannot be written, so
    // host files are bound read-only instead of copied, and nothing is removed or replaced.
    if (!treeOwned && (op.op === "copy" || op.op === "remove" || op.op === "symlink") && op.path.startsWith("/etc/")) {
      if (op.op === "copy")
        out.push({
          op: "mount",
          source: op.source,
          target: op.path,
          fstype: "",
          flags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV,
          data: "",
          create: "optional",
        });
      continue;
    }
    if (op.op === "mknod" && HOST_DEVICE_NODES.has(op.path)) {
      out.push({ op: "mount", source: op.path, target: op.path, fstype: "", flags: MS.BIND, data: "", create: "file" });
    } else if (op.op === "mknod" && op.path === "/run/host/inaccessible/blk") {
      continue;
    } else if (op.op === "mount" && op.fstype === "sysfs" && !privateNetwork) {
      out.push({ op: "fsmount", fstype: "sysfs", target: op.target, flags: op.flags, data: "source=sysfs" });
    } else out.push(op);
  }
  return out;
}

export function specUserns(plan: UsernsPlan, bound: BoundUser[] = []): SpecUserns {
  if (plan.maps !== undefined)
    return {
      uidMap: plan.maps.uid,
      gidMap: plan.maps.gid,
      cgroupOwner: { uid: plan.base, gid: mapToHost(plan.maps.gid, 0)! },
      lock: undefined,
      chownRoot: undefined,
      idmapRoot: undefined,
    };
  return {
    uidMap: idMapWithUsers(plan, bound, "uid"),
    gidMap: idMapWithUsers(plan, bound, "gid"),
    cgroupOwner: { uid: plan.base, gid: plan.base },
    lock: plan.lock,
    chownRoot: plan.ownership === "chown" ? { base: plan.base, count: plan.count } : undefined,
    idmapRoot: plan.ownership === "map" ? { base: plan.base, count: plan.count } : undefined,
  };
}

/** Turn a spec built for the host's user namespace into one for the plan's. */
export function applyUserns(spec: RunSpec, plan: UsernsPlan | undefined, privateNetwork: boolean, bound: BoundUser[] = []): RunSpec {
  if (plan === undefined) return spec;
  const userns = specUserns(plan, bound);
  return {
    ...spec,
    namespaces: [...spec.namespaces, "user"],
    ops: hostIdOptions(usernsOps(spec.ops, privateNetwork, plan.treeOwned), userns),
    userns,
  };
}

/** Container id -> host id through the map (undefined when the map does not cover it). */
export function mapToHost(map: IdMapLine[], id: number): number | undefined {
  const line = map.find((l) => id >= l.inside && id < l.inside + l.count);
  return line === undefined ? undefined : line.outside + (id - line.inside);
}

/** File systems whose mount data names owners (`uid=`, `gid=`). */
const ID_OPTION_FILESYSTEMS = new Set(["tmpfs", "devpts", "ramfs", "hugetlbfs"]);

/**
 * With a user namespace the root is set up from the host's user namespace (SPEC.md "User
 * namespaces": then the container's mount namespace, copied from it, has every mount locked),
 * where mount options are read as host ids: `gid=5` of devpts must be the container's group 5.
 * A container id the map does not cover is refused, never passed through as a host id.
 */
export function hostIdOptions(ops: SetupOp[], userns: SpecUserns): SetupOp[] {
  return ops.map((op) => {
    if (op.op !== "mount" || !ID_OPTION_FILESYSTEMS.has(op.fstype) || !/(^|,)[ug]id=/.test(op.data)) return op;
    const data = op.data
      .split(",")
      .map((o) => {
        const m = /^([ug]id)=(\d+)$/.exec(o);
        if (m === null) return o;
        const host = mapToHost(m[1] === "uid" ? userns.uidMap : userns.gidMap, Number(m[2]));
        if (host === undefined)
          throw invalidError(`${m[1]}=${m[2]} of the ${op.fstype} on ${op.target} is outside the container's user namespace`, { path: op.target });
        return `${m[1]}=${host}`;
      })
      .join(",");
    return { ...op, data };
  });
}
