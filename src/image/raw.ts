/**
 * Raw disk images as container roots (machina-nspawn -i IMAGE.raw), the layouts systemd-nspawn
 * 252's image dissection accepts: a bare file system; a GPT disk following the Discoverable
 * Partitions Specification (the root partition found by its type GUID for this architecture,
 * optional /usr, /home and /srv partitions); a GPT disk with no such root but exactly one
 * generic Linux data partition (0FC63DAF-…, as older cloud images have, next to a BIOS-boot or
 * EFI partition); an MBR disk with exactly one bootable (active) Linux partition (type 0x83).
 * More than one candidate is refused, as nspawn does. Each file system is attached to
 * a loop device over its byte range (LOOP_CONFIGURE with lo_offset/lo_sizelimit,
 * LO_FLAGS_AUTOCLEAR, read-only when asked; a bare file system with a partition scan) and
 * mounted at `$STATE_DIR/raw-mounts/ID/root`; the helper's `host_umount` records detach it when
 * the container exits, and the loop device goes with its last mount. A record
 * (`$STATE_DIR/raw-mounts/ID/record.json`) lets the next start clean up after a SIGKILL.
 */
import { lazySchemas } from "../lazy-zod.ts";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { Reverter } from "../reverter.ts";
import { parseJson } from "../json.ts";
import { lockHeld } from "../host/locks.ts";
import { machineLockPath } from "../machine/registry.ts";
import { mkdirPrivate } from "../host/state-dir.ts";
import { writeAtomic } from "../host/write-atomic.ts";

/** Discoverable Partitions Specification type GUIDs: root and /usr per architecture. */
export const DPS_TYPES: Record<string, { root: string; usr: string }> = {
  x64: { root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", usr: "8484680c-9521-48c6-9c11-b0720656f69e" },
  arm64: { root: "b921b045-1df0-41c3-af44-4c6f280d3fae", usr: "b0e01050-ee5f-4390-949a-9101b17104e9" },
};

/** DPS partitions of every architecture mounted below the root, in mount order (systemd 252 mounts /home and /srv; /var needs a UUID match, left out). */
export const DPS_SHARED: ReadonlyArray<{ path: "/home" | "/srv"; type: string }> = [
  { path: "/home", type: "933ac7e1-2eb4-4f13-b844-0e14e2aef915" },
  { path: "/srv", type: "3b8f8425-20e0-4f3b-907f-1a25a76f98e8" },
];

/** GPT's generic "Linux filesystem data" type: the root when a disk has exactly one and no DPS root. */
export const GPT_LINUX_GENERIC = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/** An MBR partition (primary entries only), as sfdisk's "dos" label writes them. */
export interface MbrPartition {
  number: number;
  type: number;
  bootable: boolean;
  offset: number;
  size: number;
}

/** The primary partitions of an MBR (DOS) partition table, or undefined when sector 0 has none (or is GPT's protective MBR). Pure. */
export function parseMbr(read: Reader): MbrPartition[] | undefined {
  const s0 = read(0, 512);
  if (s0.length < 512 || s0[510] !== 0x55 || s0[511] !== 0xaa) return undefined;
  const dv = new DataView(s0.buffer, s0.byteOffset, s0.byteLength);
  const parts: MbrPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = 446 + i * 16;
    const status = s0[e]!;
    if (status !== 0 && status !== 0x80) return undefined; // not a partition table (boot code of a file system)
    const type = s0[e + 4]!;
    const start = dv.getUint32(e + 8, true);
    const count = dv.getUint32(e + 12, true);
    if (type === 0 || count === 0) continue;
    if (type === 0xee) return undefined; // GPT's protective MBR
    parts.push({ number: i + 1, type, bootable: status === 0x80, offset: start * 512, size: count * 512 });
  }
  return parts;
}

export interface GptPartition {
  /** 1-based, as the kernel names the devices (loop0p1). */
  number: number;
  type: string;
  offset: number;
  size: number;
  /** GPT attribute bit 60 (the DPS "read-only" flag). */
  readOnly: boolean;
  /** GPT attribute bit 63 (the DPS "do not auto-mount" flag). */
  noAuto: boolean;
}

type Reader = (offset: number, length: number) => Uint8Array;

function guid(b: Uint8Array): string {
  const h = (from: number, to: number, reverse: boolean) => {
    const part = Array.from(b.subarray(from, to));
    return (reverse ? part.reverse() : part).map((x) => x.toString(16).padStart(2, "0")).join("");
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

/** The GPT partitions of a disk image, or undefined when it has no GPT (a bare file system). Pure. */
export function parseGpt(read: Reader): GptPartition[] | undefined {
  for (const sector of [512, 4096]) {
    const hdr = read(sector, 92);
    if (hdr.length < 92 || Buffer.from(hdr.subarray(0, 8)).toString("latin1") !== "EFI PART") continue;
    const dv = new DataView(hdr.buffer, hdr.byteOffset, hdr.byteLength);
    const entriesLba = Number(dv.getBigUint64(72, true));
    const count = dv.getUint32(80, true);
    const entrySize = dv.getUint32(84, true);
    if (count > 1024 || entrySize < 128 || entrySize > 4096) return [];
    const table = read(entriesLba * sector, count * entrySize);
    const parts: GptPartition[] = [];
    for (let i = 0; i < count && (i + 1) * entrySize <= table.length; i++) {
      const e = table.subarray(i * entrySize, (i + 1) * entrySize);
      if (e.subarray(0, 16).every((x) => x === 0)) continue;
      const ev = new DataView(e.buffer, e.byteOffset, e.byteLength);
      const first = Number(ev.getBigUint64(32, true));
      const last = Number(ev.getBigUint64(40, true));
      const attrs = ev.getBigUint64(48, true);
      parts.push({
        number: i + 1,
        type: guid(e.subarray(0, 16)),
        offset: first * sector,
        size: (last - first + 1) * sector,
        readOnly: (attrs & (1n << 60n)) !== 0n,
        noAuto: (attrs & (1n << 63n)) !== 0n,
      });
    }
    return parts;
  }
  return undefined;
}

/** The file system type at `offset`, from its superblock magic. Pure. */
export function detectFileSystem(read: Reader, offset: number): string | undefined {
  const at = (off: number, len: number) => read(offset + off, len);
  const ext = at(0x438, 2);
  if (ext.length === 2 && ext[0] === 0x53 && ext[1] === 0xef) return "ext4";
  if (Buffer.from(at(0x10040, 8)).toString("latin1") === "_BHRfS_M") return "btrfs";
  if (Buffer.from(at(0, 4)).toString("latin1") === "XFSB") return "xfs";
  if (Buffer.from(at(0, 4)).toString("latin1") === "hsqs") return "squashfs";
  const erofs = at(1024, 4);
  if (erofs.length === 4 && new DataView(erofs.buffer, erofs.byteOffset).getUint32(0, true) === 0xe0f5e1e2) return "erofs";
  const fat = at(0x52, 5);
  if (Buffer.from(fat).toString("latin1") === "FAT32" || Buffer.from(at(0x36, 3)).toString("latin1") === "FAT") return "vfat";
  return undefined;
}

/**
 * What an imported raw image looks like: "gpt" (a GPT disk), "mbr" (an MBR partition table), a
 * known file system, "qcow2" (refused by import-raw), or undefined.
 */
export function rawImageKind(host: Host, path: string): string | undefined {
  const read: Reader = (offset, length) => host.readAt(path, offset, length);
  if (Buffer.from(read(512, 8)).toString("latin1") === "EFI PART" || Buffer.from(read(4096, 8)).toString("latin1") === "EFI PART") return "gpt";
  const fileSystem = detectFileSystem(read, 0);
  if (fileSystem !== undefined) return fileSystem;
  if (Buffer.from(read(0, 4)).toString("latin1") === "QFI\xfb") return "qcow2";
  return (parseMbr(read)?.length ?? 0) > 0 ? "mbr" : undefined;
}

export interface RawPart {
  /** Partition number (undefined = the whole image is the file system). */
  number: number | undefined;
  offset: number;
  size: number;
  fstype: string;
  readOnly: boolean;
}

export interface RawLayout {
  /** Which rule found the root: "filesystem" (no partition table), "dps", "gpt-generic", "mbr". */
  kind: "filesystem" | "dps" | "gpt-generic" | "mbr";
  root: RawPart;
  /** Mounted below the root, in this order: /usr, /home, /srv (DPS partitions). */
  below: Array<{ path: "/usr" | "/home" | "/srv"; part: RawPart }>;
}

/**
 * Where root (and /usr, /home, /srv) are in a raw image, by systemd-nspawn 252's rules. Pure
 * (reads through `read`).
 */
export function rawLayout(read: Reader, image: string, arch: string = process.arch): RawLayout {
  const fsOf = (number: number, offset: number) => {
    const t = detectFileSystem(read, offset);
    if (t === undefined) throw new MachinaError("E_INVALID", `partition ${number} of "${image}" has no known file system`, { path: image });
    return t;
  };
  const parts = parseGpt(read);
  if (parts === undefined) {
    const fstype = detectFileSystem(read, 0);
    if (fstype !== undefined) return { kind: "filesystem", root: { number: undefined, offset: 0, size: 0, fstype, readOnly: false }, below: [] };
    const mbr = parseMbr(read);
    if (mbr === undefined)
      throw new MachinaError("E_INVALID", `"${image}" has neither a partition table (GPT or MBR) nor a known file system`, { path: image });
    // As systemd 252: only a Linux partition (0x83) with the bootable flag is a root candidate.
    const linux = mbr.filter((p) => p.type === 0x83 && p.bootable);
    if (linux.length !== 1)
      throw new MachinaError(
        "E_INVALID",
        linux.length === 0
          ? `"${image}" has an MBR partition table but no bootable Linux partition (type 83 with the bootable flag)${
              mbr.some((p) => p.type === 0x83)
                ? `: partition ${mbr
                    .filter((p) => p.type === 0x83)
                    .map((p) => p.number)
                    .join(", ")} is not marked bootable`
                : ""
            }`
          : `"${image}" has more than one bootable Linux partition (${linux.map((p) => p.number).join(", ")}): which is the root is ambiguous`,
        { path: image },
        linux.length === 0
          ? "mark the root partition bootable (sfdisk --activate IMAGE N), as systemd-nspawn requires too"
          : "keep the bootable flag on the root partition only",
      );
    const p = linux[0]!;
    return { kind: "mbr", root: { number: p.number, offset: p.offset, size: p.size, fstype: fsOf(p.number, p.offset), readOnly: false }, below: [] };
  }
  const types = DPS_TYPES[arch];
  if (types === undefined) throw new MachinaError("E_UNSUPPORTED", `no Discoverable Partitions types known for the architecture ${arch}`, { path: image });
  const usable = parts.filter((p) => !p.noAuto).sort((a, b) => a.number - b.number);
  const pick = (type: string) => usable.find((p) => p.type === type);
  const part = (p: GptPartition): RawPart => ({ number: p.number, offset: p.offset, size: p.size, fstype: fsOf(p.number, p.offset), readOnly: p.readOnly });
  const below = (): RawLayout["below"] => {
    const out: RawLayout["below"] = [];
    const usr = pick(types.usr);
    if (usr !== undefined) out.push({ path: "/usr", part: part(usr) });
    for (const s of DPS_SHARED) {
      const p = pick(s.type);
      if (p !== undefined) out.push({ path: s.path, part: part(p) });
    }
    return out;
  };
  const root = pick(types.root);
  if (root !== undefined) return { kind: "dps", root: part(root), below: below() };
  // No DPS root: a single generic Linux data partition is the root (older cloud images).
  const generic = usable.filter((p) => p.type === GPT_LINUX_GENERIC);
  if (generic.length === 1) return { kind: "gpt-generic", root: part(generic[0]!), below: below() };
  throw new MachinaError(
    "E_INVALID",
    generic.length === 0
      ? `"${image}" has a GPT but no root partition: neither one for ${arch} (type ${types.root}) nor a generic Linux data partition (type ${GPT_LINUX_GENERIC})`
      : `"${image}" has a GPT with more than one generic Linux data partition (${generic.map((p) => p.number).join(", ")}) and no root partition for ${arch}: which is the root is ambiguous`,
    { path: image },
    generic.length === 0
      ? "see the Discoverable Partitions Specification"
      : `give the root partition the type ${types.root} (sfdisk --part-type IMAGE N ${types.root.toUpperCase()})`,
  );
}

export function rawMountsDir(stateDir: string): string {
  return `${stateDir}/raw-mounts`;
}

export interface RawRecord {
  image: string;
  machine: string;
  loops: string[];
  /** Mount points, outermost first (root, then root/usr). */
  mounts: string[];
}

export interface RawRoot {
  /** The mounted root directory (use it as -D). */
  root: string;
  /** Host mount points for the helper's `host_umount` records (the root; its submounts go with it). */
  umounts: string[];
  record: string;
  /** For the helper's `host_remove` records: the record, then its directory. */
  removes: string[];
  /** Undo everything now (setup failed before the helper took over). */
  release(): void;
}

const MS_RDONLY = 1;
const MS_NODEV = 4;

/** Attach and mount a raw image for a container; the caller hands `umounts` to the helper. */
export function setupRawRoot(host: Host, stateDir: string, image: string, readOnly: boolean, machine: string): RawRoot {
  if (host.stat(image, true)?.kind !== "file")
    throw new MachinaError("E_NOT_FOUND", `image "${image}" is not a regular file`, { path: image, flag: "--image" });
  const layout = rawLayout((o, l) => host.readAt(image, o, l), image);
  const ro = readOnly || layout.root.readOnly;
  const id = `${machine}-${host.randomHex(4)}`;
  const dir = `${rawMountsDir(stateDir)}/${id}`;
  const root = `${dir}/root`;
  mkdirPrivate(host, stateDir, root);
  // Undone newest first by release() (the start did not happen) or when a step here fails.
  const r = new Reverter();
  const release = () => {
    const failed = r.revert();
    if (failed !== undefined) throw failed;
  };
  const record: RawRecord = { image, machine, loops: [], mounts: [root] };
  const recordPath = `${dir}/record.json`;
  const fds: number[] = [];
  const closeFds = () => {
    for (const fd of fds.splice(0)) host.closeFd(fd);
  };
  r.add(`remove "${dir}"`, () => host.removeTree(dir));
  r.add("close the loop devices", closeFds);
  try {
    for (const b of layout.below) record.mounts.push(`${root}${b.path}`);
    // One loop device per file system, over its byte range (no dependence on the kernel's
    // partition-table support: a kernel without CONFIG_EFI_PARTITION never shows loopNpM).
    const attach = (part: RawPart) => {
      const loop = host.attachLoop(image, ro || part.readOnly, part.number === undefined ? undefined : { offset: part.offset, size: part.size });
      fds.push(loop.fd);
      record.loops.push(loop.device);
      return loop.device;
    };
    const rootDev = attach(layout.root);
    const belowDevs = layout.below.map((b) => attach(b.part));
    writeAtomic(host, recordPath, JSON.stringify(record) + "\n", 0o600);
    host.mount(rootDev, root, layout.root.fstype, ro || layout.root.readOnly ? MS_RDONLY | MS_NODEV : MS_NODEV, "");
    r.add(`unmount "${root}"`, () => host.umount(root, true));
    for (const [i, b] of layout.below.entries()) {
      const at = `${root}${b.path}`;
      // A mount point missing from the root is made, as systemd's mkdir_p_root does — only in a
      // root that is writable; never through a symlink (the image's /home -> … stays inside it).
      const kind = host.lstat(at);
      if (kind === undefined) {
        if (ro)
          throw new MachinaError("E_INVALID", `"${image}": the root has no ${b.path} for partition ${b.part.number} and is mounted read-only`, { path: image });
        host.mkdirp(at, 0o755);
      } else if (kind !== "dir")
        throw new MachinaError(
          "E_INVALID",
          `"${image}": ${b.path} in the root is not a directory (a ${kind}), so partition ${b.part.number} cannot be mounted there`,
          {
            path: image,
          },
        );
      host.mount(belowDevs[i]!, at, b.part.fstype, ro || b.part.readOnly ? MS_RDONLY | MS_NODEV : MS_NODEV, "");
      r.add(`unmount "${at}"`, () => host.umount(at, true));
    }
    // The mounts hold the loop devices from here on; with LO_FLAGS_AUTOCLEAR they go with their mounts.
    closeFds();
  } catch (e) {
    if (e instanceof MachinaError) throw r.fail(e);
    throw r.fail(
      new MachinaError("E_SYSTEM", `failed to set up the raw image "${image}": ${e instanceof Error ? e.message : String(e)}`, {
        path: image,
        flag: "--image",
      }),
    );
  }
  // Only the root: a lazy umount detaches the mounts below it too, and the helper's rmdir of
  // each host_umount path must never hit a directory inside the image (root/usr).
  return { root, umounts: [root], record: recordPath, removes: [recordPath, dir], release };
}

const STARTING_GRACE_MS = 10_000;

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const rawSchemas = lazySchemas((z) => {
  const RawRecordSchema = z.object({
    image: z.string(),
    machine: z.string(),
    loops: z.array(z.string()),
    mounts: z.array(z.string()),
  });
  return { RawRecordSchema };
});

/** A record as written by setupRawRoot, or undefined when it is missing or not one. */
function readRecord(host: Host, dir: string): RawRecord | undefined {
  return parseJson(rawSchemas().RawRecordSchema, host.readFile(`${dir}/record.json`));
}

/**
 * Whether the container a raw-image record belongs to may still run: its registry lock is held,
 * or the record is young enough that its supervisor may not have taken the lock yet.
 */
function recordLive(host: Host, stateDir: string, dir: string, record: RawRecord | undefined, nowMs: number): boolean {
  const young = nowMs - (host.mtimeMs(dir) ?? 0) < STARTING_GRACE_MS;
  if (record === undefined) return young; // being written
  const lockPath = machineLockPath(stateDir, record.machine);
  if (host.lstat(lockPath) === undefined) return young;
  return lockHeld(host, lockPath); // held: running
}

/**
 * Detach the mounts of raw images whose container is gone (its supervisor was SIGKILLed, so
 * the `host_umount`/`host_remove` records never ran) and remove their records.
 */
export function sweepRawMounts(host: Host, stateDir: string, nowMs: number): string[] {
  const removed: string[] = [];
  const base = rawMountsDir(stateDir);
  for (const id of host.readdir(base)) {
    const dir = `${base}/${id}`;
    const record = readRecord(host, dir);
    if (recordLive(host, stateDir, dir, record, nowMs)) continue;
    for (const m of [...(record?.mounts ?? [])].reverse()) if (m.startsWith(`${dir}/`)) host.umount(m, true);
    if (host.mountinfo().includes(` ${dir}/`)) continue; // still mounted (busy): keep the record for the next sweep
    host.removeTree(dir);
    removed.push(id);
  }
  return removed;
}

/** Raw images in use by running containers (for the pool's remove/rename guard): realpaths of images. */
export function rawImagesInUse(host: Host, stateDir: string, nowMs: number): Array<{ image: string; machine: string }> {
  const inUse: Array<{ image: string; machine: string }> = [];
  const base = rawMountsDir(stateDir);
  for (const id of host.readdir(base)) {
    const dir = `${base}/${id}`;
    const record = readRecord(host, dir);
    if (record === undefined || !recordLive(host, stateDir, dir, record, nowMs)) continue;
    inUse.push({ image: host.realpath(record.image) ?? record.image, machine: record.machine });
  }
  return inUse;
}
