/**
 * The image pool, as machined keeps it: image discovery in the pool roots (the first is
 * writable, the others read-only), name rules, per-name locks, `.#` temporaries renamed into
 * place; multi-step operations undo with src/reverter.ts. Every effect goes through the Host.
 *
 * Locks: `$STATE_DIR/image-locks/NAME.lock`, flock(2), never waited for — the loser of a race
 * gets E_BUSY at once. Operations lock every name they read (shared) or change (exclusive).
 * Temporaries: `.#NAME-XXXXXXXX` in the writable root, each guarded by the lock
 * `$STATE_DIR/image-locks/.#XXXXXXXX.lock` held by its creator (and inherited by the children
 * that fill it), so a temporary whose lock is free belongs to a dead process and is removed by
 * cleanTemporaries().
 */
import { MachinaError } from "../errors.ts";
import type { FileStat, HeldLock, Host } from "../host/host.ts";
import { Reverter } from "../reverter.ts";

export type ImageType = "directory" | "subvolume" | "raw";

export interface Image {
  name: string;
  type: ImageType;
  /** The pool entry: `ROOT/NAME` or `ROOT/NAME.raw` (possibly a symlink). */
  path: string;
  /** The entry with symlinks resolved. */
  target: string;
  /** The pool root the image was found in. */
  root: string;
  /** In the writable root (index 0): may be renamed and removed. */
  writablePool: boolean;
  readOnly: boolean;
  hidden: boolean;
  /** Birth time (ms since the epoch), 0 when unknown. */
  crtimeMs: number;
  mtimeMs: number;
  /** Bytes on disk where known (raw files; btrfs with quotas), else undefined. */
  usage: number | undefined;
  /** Size limit where known (raw: the file size; btrfs qgroup limit), else undefined. */
  limit: number | undefined;
  /** The settings file next to the image (`ROOT/NAME.nspawn`), when present. */
  settingsFile: string | undefined;
}

export const DEFAULT_POOL = ["/var/lib/machines", "/usr/local/lib/machines", "/usr/lib/machines"];
export const RAW_SUFFIX = ".raw";
export const SETTINGS_SUFFIX = ".nspawn";
const NAME_MAX = 255;

// ---------------------------------------------------------------------------------------------
// Names

/** Why `name` is not a valid image name, or undefined when it is (machined's image_name_is_valid + .raw). */
export function imageNameProblem(name: string): string | undefined {
  if (name.length === 0) return "the name is empty";
  if (name === "." || name === "..") return `"${name}" is not a file name`;
  if (name.includes("/")) return "the name contains '/'";
  if (/[\x00-\x1f\x7f]/.test(name)) return "the name contains control characters";
  if (Buffer.byteLength(name, "utf8") > NAME_MAX) return `the name is longer than ${NAME_MAX} bytes`;
  if (Buffer.from(name, "utf8").toString("utf8") !== name || /[\ud800-\udfff]/.test(name)) return "the name is not valid UTF-8";
  if (name.startsWith(".#")) return 'names starting with ".#" are reserved for temporary files';
  if (name.endsWith(RAW_SUFFIX)) return `the name ends in "${RAW_SUFFIX}" (give the name without the suffix)`;
  if (name === ".host") return '".host" is reserved for the host\'s own root';
  // The entry NAME.raw (and the temporary `.#NAME.raw-XXXXXXXX`) must fit in a file name too.
  if (Buffer.byteLength(name, "utf8") + RAW_SUFFIX.length > NAME_MAX) return `the name is longer than ${NAME_MAX - RAW_SUFFIX.length} bytes`;
  return undefined;
}

export function validImageName(name: string): boolean {
  return imageNameProblem(name) === undefined;
}

/** Throws E_INVALID with the reason when `name` cannot be an image name. */
export function checkImageName(name: string): void {
  const problem = imageNameProblem(name);
  if (problem !== undefined) throw new MachinaError("E_INVALID", `invalid image name ${JSON.stringify(name)}: ${problem}`, { value: name });
}

// ---------------------------------------------------------------------------------------------
// Discovery

/** The pool roots, writable first (paths(env).pool). */
export function poolRoots(pool: readonly string[]): { writable: string; readOnly: string[] } {
  return { writable: pool[0] ?? DEFAULT_POOL[0]!, readOnly: pool.slice(1) };
}

/** Mode of the writable root when machina creates it (systemd creates /var/lib/machines 0700). */
export const POOL_MODE = 0o700;

/**
 * The writable root, created (mode 0700, as systemd does) when missing: whatever first puts an
 * image into the pool (import, pull, clone, bootstrap, the demo's busybox image) calls this, so a
 * fresh machine without /var/lib/machines works. Returns its path.
 */
export function ensureWritablePool(host: Host, pool: readonly string[]): string {
  const { writable } = poolRoots(pool);
  host.mkdirp(writable, POOL_MODE);
  return writable;
}

function subvolume(host: Host, path: string, st: FileStat): boolean {
  return st.ino === 256 && host.fsType(path) === "btrfs";
}

/** The image for one pool entry (a directory, subvolume, `.raw` file or a symlink to one), or undefined. */
export function imageFromEntry(host: Host, root: string, entry: string, writablePool: boolean): Image | undefined {
  if (entry.startsWith(".#") || entry === "." || entry === "..") return undefined;
  const path = `${root}/${entry}`;
  const st = host.stat(path, true);
  if (st === undefined) return undefined; // dangling symlink
  let type: ImageType;
  let name: string;
  if (st.kind === "dir") {
    name = entry;
    type = subvolume(host, path, st) ? "subvolume" : "directory";
  } else if (st.kind === "file" && entry.endsWith(RAW_SUFFIX)) {
    name = entry.slice(0, -RAW_SUFFIX.length);
    type = "raw";
  } else return undefined;
  if (!validImageName(name)) return undefined;
  const target = host.realpath(path) ?? path;
  const roFs = !host.writable(root) || !writablePool;
  let readOnly: boolean;
  if (type === "subvolume") readOnly = host.btrfsReadOnly(target);
  else if (type === "directory") readOnly = host.immutable(target);
  else readOnly = (st.mode & 0o222) === 0;
  const settings = `${root}/${name}${SETTINGS_SUFFIX}`;
  return {
    name,
    type,
    path,
    target,
    root,
    writablePool,
    readOnly: readOnly || roFs,
    hidden: name.startsWith("."),
    crtimeMs: st.birthtimeMs,
    mtimeMs: st.mtimeMs,
    usage: type === "raw" ? st.allocated : undefined,
    limit: type === "raw" ? st.size : undefined,
    settingsFile: host.lstat(settings) === "file" ? settings : undefined,
  };
}

/** Every image in the pool (first root wins for a name; directories before `.raw` files), sorted by name. */
export function discoverImages(host: Host, pool: readonly string[], options: { hidden?: boolean } = {}): Image[] {
  const found = new Map<string, Image>();
  pool.forEach((root, index) => {
    const entries = host.readdir(root).sort((a, b) => (a.endsWith(RAW_SUFFIX) ? 1 : 0) - (b.endsWith(RAW_SUFFIX) ? 1 : 0) || (a < b ? -1 : a > b ? 1 : 0));
    for (const entry of entries) {
      const image = imageFromEntry(host, root, entry, index === 0);
      if (image === undefined || found.has(image.name)) continue;
      if (image.hidden && !options.hidden) continue;
      found.set(image.name, image);
    }
  });
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The image called `name`, searching the roots in order (NAME, then NAME.raw in each), or undefined. */
export function findImage(host: Host, pool: readonly string[], name: string): Image | undefined {
  if (!validImageName(name)) return undefined;
  for (const [index, root] of pool.entries())
    for (const entry of [name, `${name}${RAW_SUFFIX}`]) {
      const image = imageFromEntry(host, root, entry, index === 0);
      if (image !== undefined) return image;
    }
  return undefined;
}

/** The image of machine NAME in the pool (a directory, subvolume or NAME.raw); E_NOT_FOUND otherwise. */
export function requireImage(host: Host, pool: string[], name: string): string {
  const found = findImage(host, pool, name);
  if (found === undefined) throw new MachinaError("E_NOT_FOUND", `no image "${name}" in ${pool.join(", ")}`, { machine: name });
  return found.path;
}

/** findImage, or E_NOT_FOUND. */
export function getImage(host: Host, pool: readonly string[], name: string): Image {
  checkImageName(name);
  const image = findImage(host, pool, name);
  if (image === undefined) throw new MachinaError("E_NOT_FOUND", `no image "${name}" in ${pool.join(", ")}`, { value: name });
  return image;
}

/** The entry name an image of this type has in the pool. */
export function entryName(name: string, type: ImageType): string {
  return type === "raw" ? `${name}${RAW_SUFFIX}` : name;
}

/** Whether any entry (directory, raw file, or anything else) already takes `name` in the writable root. */
export function nameTaken(host: Host, pool: readonly string[], name: string): boolean {
  return (
    findImage(host, pool, name) !== undefined ||
    host.lstat(`${poolRoots(pool).writable}/${name}`) !== undefined ||
    host.lstat(`${poolRoots(pool).writable}/${name}${RAW_SUFFIX}`) !== undefined
  );
}

// ---------------------------------------------------------------------------------------------
// Locks

export function lockDir(stateDir: string): string {
  return `${stateDir}/image-locks`;
}

function lockFileName(name: string): string {
  // NAME.lock must be a file name; names near NAME_MAX get a hashed lock name instead.
  if (Buffer.byteLength(name, "utf8") <= 200) return `${name}.lock`;
  return `long-${new Bun.CryptoHasher("sha256").update(name).digest("hex")}.lock`;
}

/**
 * Lock the image name `name` (shared: others may read it too; exclusive: nobody else may use
 * it), without waiting. Throws E_BUSY naming the image when it is held elsewhere.
 */
export function lockImage(host: Host, stateDir: string, name: string, mode: "exclusive" | "shared"): HeldLock {
  checkImageName(name); // also keeps the lock path inside the lock directory
  host.mkdirp(lockDir(stateDir), 0o700);
  const lock = host.lockFile(`${lockDir(stateDir)}/${lockFileName(name)}`, mode);
  if (lock === undefined)
    throw new MachinaError("E_BUSY", `image "${name}" is busy: another operation is using it`, { value: name }, "try again when it has finished");
  return lock;
}

/** Lock several names at once (all or none); duplicates take the strongest mode. */
export function lockImages(host: Host, stateDir: string, wanted: Array<[string, "exclusive" | "shared"]>): HeldLock {
  const modes = new Map<string, "exclusive" | "shared">();
  for (const [name, mode] of wanted) if (modes.get(name) !== "exclusive") modes.set(name, mode);
  const held: HeldLock[] = [];
  Reverter.runSync((r) => {
    for (const [name, mode] of [...modes].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const lock = lockImage(host, stateDir, name, mode);
      held.push(lock);
      r.add(`unlock image "${name}"`, () => lock.release());
    }
  });
  return {
    fd: held[0]?.fd ?? -1,
    release: () => {
      for (const l of held.reverse()) l.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Temporaries

export interface Temporary {
  /** `DIR/.#BASE-XXXXXXXX`: create the new image (or file) here. */
  path: string;
  /** The XXXXXXXX suffix; further temporaries of the same operation may share it via temporarySibling(). */
  suffix: string;
  /** Held until release(); pass `lock.fd` to child processes that write into `path`. */
  lock: HeldLock;
  /** Remove what is at `path` (and siblings made with sibling()) if still there, then drop the lock. */
  discard(): void;
  /** Another temporary path with the same suffix (e.g. for the settings file). */
  sibling(base: string): string;
  /** rename(2) `path` (or a sibling) to `final` without replacing anything; E_BUSY-style error when taken. */
  commit(final: string, from?: string): void;
  /** Drop the lock (after commit or discard). */
  release(): void;
}

const TEMP_RE = /^\.#.*-([0-9a-f]{8})$/;

function tempBase(dir: string, base: string, suffix: string): string {
  // Keep `.#BASE-XXXXXXXX` within NAME_MAX by shortening BASE.
  let b = base;
  while (Buffer.byteLength(`.#${b}-${suffix}`, "utf8") > NAME_MAX) b = b.slice(0, -1);
  return `${dir}/.#${b}-${suffix}`;
}

/**
 * A new temporary name for `base` in `dir`, with its guard lock held. Nothing is created at
 * the path: the caller creates it (mkdir, snapshot, cp, extraction…) and then commit()s.
 */
export function beginTemporary(host: Host, stateDir: string, dir: string, base: string): Temporary {
  host.mkdirp(lockDir(stateDir), 0o700);
  for (;;) {
    const suffix = host.randomHex(4);
    const lockPath = `${lockDir(stateDir)}/.#${suffix}.lock`;
    const lock = host.lockFile(lockPath, "exclusive");
    if (lock === undefined) continue; // the same suffix in use: pick another
    const path = tempBase(dir, base, suffix);
    if (host.lstat(path) !== undefined) {
      lock.release();
      continue;
    }
    const made = [path];
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      host.unlink(lockPath);
      lock.release();
    };
    return {
      path,
      suffix,
      lock,
      sibling: (b: string) => {
        const p = tempBase(dir, b, suffix);
        made.push(p);
        return p;
      },
      commit: (final: string, from: string = path) => {
        try {
          host.rename(from, final, true);
        } catch (e) {
          if (e instanceof Error && "code" in e && e.code === "EEXIST") throw new MachinaError("E_BUSY", `"${final}" already exists`, { path: final });
          throw e;
        }
      },
      discard: () => {
        for (const p of made) host.removeTree(p);
        release();
      },
      release,
    };
  }
}

/**
 * Remove temporaries (`.#…-XXXXXXXX`) in `dir` whose creator is gone (its guard lock is free).
 * Returns the removed paths. Safe to run while other operations are in progress.
 */
export function cleanTemporaries(host: Host, stateDir: string, dir: string): string[] {
  const removed: string[] = [];
  const bySuffix = new Map<string, string[]>();
  for (const entry of host.readdir(dir)) {
    const m = TEMP_RE.exec(entry);
    if (m) bySuffix.set(m[1]!, [...(bySuffix.get(m[1]!) ?? []), `${dir}/${entry}`]);
  }
  if (bySuffix.size === 0) return removed;
  host.mkdirp(lockDir(stateDir), 0o700);
  for (const [suffix, paths] of bySuffix) {
    const lockPath = `${lockDir(stateDir)}/.#${suffix}.lock`;
    const lock = host.lockFile(lockPath, "exclusive");
    if (lock === undefined) continue; // its creator (or a child of it) is still at work
    try {
      for (const p of paths) {
        host.removeTree(p);
        removed.push(p);
      }
      host.unlink(lockPath);
    } finally {
      lock.release();
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Reverter

/** The undo stack of multi-step operations (one for all of machina: src/reverter.ts). */
export { Reverter } from "../reverter.ts";
