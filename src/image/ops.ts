/**
 * Image operations on the pool, as machined carries them out: clone, rename, read-only,
 * remove, set-limit, clean. Each locks the names it uses (pool.ts), works under a `.#`
 * temporary name where it creates something, and leaves the pool consistent when it fails or
 * is killed (a half-made clone is only ever a `.#` temporary, removed by the next operation).
 */
import { dirname } from "node:path";
import { MachinaError } from "../errors.ts";
import type { CommandResult, HeldLock, Host } from "../host/host.ts";
import { machinesDir, readState } from "../machine/registry.ts";
import { Reverter } from "../reverter.ts";
import { claimUnused } from "./in-use.ts";
import { rawImagesInUse } from "./raw.ts";
import { SIZE_SYNTAX, U64_MAX, readSize } from "../settings/size.ts";
import {
  beginTemporary,
  checkImageName,
  cleanTemporaries,
  ensureWritablePool,
  entryName,
  findImage,
  getImage,
  lockImage,
  lockImages,
  nameTaken,
  poolRoots,
  RAW_SUFFIX,
  SETTINGS_SUFFIX,
  type Image,
} from "./pool.ts";

export interface PoolContext {
  host: Host;
  /** paths(env).pool: writable root first. */
  pool: string[];
  stateDir: string;
}

const exists = (name: string) => new MachinaError("E_INVALID", `image "${name}" already exists`, { value: name });

function requireWritablePool(image: Image, what: string): void {
  if (!image.writablePool)
    throw new MachinaError("E_INVALID", `cannot ${what} image "${image.name}": it is in the read-only pool ${image.root}`, { path: image.path });
}

function fsError(e: unknown, what: string, path: string): MachinaError {
  const code = e instanceof Error && "code" in e ? String(e.code) : undefined;
  const msg = e instanceof Error ? e.message : String(e);
  return new MachinaError("E_SYSTEM", `failed to ${what} "${path}": ${msg}`, { path, ...(code ? { errno: code } : {}) });
}

/** Names of running machines that use this image: as their root or --template base (machine registry), and -i mounts. */
export function machinesUsing(ctx: PoolContext, image: Image): string[] {
  const { host } = ctx;
  const users: string[] = [];
  const base = machinesDir(ctx.stateDir);
  for (const name of host.readdir(base)) {
    const free = host.tryLock(`${base}/${name}/lock`);
    if (free !== undefined) {
      free.release(); // not running
      continue;
    }
    const state = readState(host, ctx.stateDir, name);
    if (state === undefined) continue;
    const root = host.realpath(state.root) ?? state.root;
    if (root === image.target || state.images.includes(image.target)) users.push(name);
  }
  // Raw images mounted through a loop device (machina-nspawn -i): their records in the state directory.
  for (const r of rawImagesInUse(host, ctx.stateDir, Date.now())) if (r.image === image.target) users.push(r.machine);
  return [...new Set(users)];
}

/**
 * Refuse when a running container uses the image, and keep it from starting one while the
 * operation works: the image's in-use lock (in-use.ts), held exclusively until released.
 */
export function claimImage(ctx: PoolContext, image: Image, what: string): HeldLock {
  const users = () => machinesUsing(ctx, image);
  const lock = claimUnused(ctx.host, ctx.stateDir, image.target, what, image.name, users);
  // Containers whose supervisor holds no image lock (started by an older helper): the registry.
  const named = users();
  if (named.length > 0) {
    lock.release();
    throw new MachinaError("E_BUSY", `cannot ${what} image "${image.name}": it is in use by the running machine ${named.map((u) => `"${u}"`).join(", ")}`, {
      machine: named[0]!,
      path: image.target,
    });
  }
  return lock;
}

function run(ctx: { host: Host }, argv: string[], what: string, path: string, fds: number[] = []): void {
  const r = ctx.host.run(argv, { fds });
  if (r.status !== 0)
    throw new MachinaError("E_SYSTEM", `failed to ${what} "${path}": ${r.stderr.trim() || `${argv[0]} exited with status ${r.status}`}`, { path });
}

/** Remove stale temporaries of dead processes from the writable root (before every change). */
export function sweepPool(ctx: PoolContext): string[] {
  return cleanTemporaries(ctx.host, ctx.stateDir, poolRoots(ctx.pool).writable);
}

export type CopyMethod = "snapshot" | "subvolume+copy" | "copy";

export interface CloneResult {
  image: Image;
  /** How the data was copied. */
  method: CopyMethod;
}

export interface CopyTreeOptions {
  /** A read-only snapshot / subvolume (plain copies are left to the caller: chattr +i after the rename). */
  readOnly?: boolean;
  /** On btrfs, copy a plain directory into a new subvolume (as machined does for clones). */
  subvolume?: boolean;
  /** Inherited by the children (a temporary's guard lock). */
  fds?: number[];
  /** For error messages: "failed to WHAT "SOURCE": …" (default "copy"). */
  what?: string;
}

/**
 * Copy the directory tree `source` to `dest`, which does not exist yet (a `.#` temporary) — the
 * copy of `machinactl clone` and of `machina-nspawn --template`: a btrfs snapshot when `dest` is
 * on btrfs and the source is a subvolume; with `subvolume`, otherwise on btrfs a new subvolume
 * filled with a reflink copy, owner and mode kept; else `cp -a --reflink=auto` (ownership,
 * modes, xattrs and ACLs, hardlinks, device nodes, copy-on-write where the file system can).
 * A snapshot that fails (across file systems) falls back to copying.
 */
export function copyTree(host: Host, source: string, dest: string, options: CopyTreeOptions = {}): CopyMethod {
  return runSteps(host, copyTreeSteps(host, source, dest, options));
}

/** copyTree with its commands run without blocking this process (machinad's planner). */
export function copyTreeAsync(host: Host, source: string, dest: string, options: CopyTreeOptions = {}): Promise<CopyMethod> {
  return runStepsAsync(host, copyTreeSteps(host, source, dest, options));
}

/** A command a step function yields; it gets the command's result back. */
export interface Command {
  argv: string[];
  fds: number[];
}

/** Steps that yield the commands they need run (copyTreeSteps, src/image/template.ts): one logic, run blocking or not. */
export type Steps<T> = Generator<Command, T, CommandResult>;

export function runSteps<T>(host: Host, steps: Steps<T>): T {
  let next = steps.next();
  while (!next.done) next = steps.next(host.run(next.value.argv, { fds: next.value.fds }));
  return next.value;
}

export async function runStepsAsync<T>(host: Host, steps: Steps<T>): Promise<T> {
  let next = steps.next();
  while (!next.done) next = steps.next(await host.runAsync(next.value.argv, { fds: next.value.fds }));
  return next.value;
}

/** A command that must succeed: "failed to WHAT "PATH": …" otherwise. */
function* must(argv: string[], what: string, path: string, fds: number[] = []): Steps<void> {
  const r = yield { argv, fds };
  if (r.status !== 0)
    throw new MachinaError("E_SYSTEM", `failed to ${what} "${path}": ${r.stderr.trim() || `${argv[0]} exited with status ${r.status}`}`, { path });
}

export function* copyTreeSteps(host: Host, source: string, dest: string, options: CopyTreeOptions = {}): Steps<CopyMethod> {
  const fds = options.fds ?? [];
  const what = options.what ?? "copy";
  const destOnBtrfs = host.fsType(dirname(dest)) === "btrfs";
  const st = host.stat(source, true);
  const sourceSubvolume = st !== undefined && st.ino === 256 && host.fsType(source) === "btrfs";
  const snapshot = destOnBtrfs && sourceSubvolume;
  if (snapshot && (yield { argv: ["btrfs", "subvolume", "snapshot", ...(options.readOnly ? ["-r"] : []), source, dest], fds }).status === 0) return "snapshot";
  if (destOnBtrfs && options.subvolume) {
    host.removeTree(dest);
    yield* must(["btrfs", "subvolume", "create", dest], "create a subvolume for", dest, fds);
    yield* must(["cp", "-a", "--reflink=auto", "--", `${source}/.`, `${dest}/`], what, source, fds);
    if (st !== undefined) yield* must(["chown", `${st.uid}:${st.gid}`, dest], "chown", dest);
    if (st !== undefined) host.chmod(dest, st.mode);
    if (options.readOnly) yield* must(["btrfs", "property", "set", "-ts", dest, "ro", "true"], "make read-only", dest);
    return "subvolume+copy";
  }
  if (snapshot) host.removeTree(dest); // a failed snapshot's leftovers
  yield* must(["cp", "-a", "--reflink=auto", "--", source, dest], what, source, fds);
  return "copy";
}

/**
 * Clone `from` to the new image `to` in the writable root: a btrfs snapshot when both are on
 * btrfs and the source is a subvolume; a new subvolume filled with a reflink copy when the pool
 * is btrfs and the source a plain directory (as machined); else `cp -a --reflink=auto`
 * (ownership, modes, xattrs and ACLs, hardlinks, device nodes, sparse files kept). NAME.nspawn
 * is copied along. With readOnly the clone is marked read-only before it becomes visible
 * (directories: after, since an immutable directory cannot be renamed).
 */
export function cloneImage(ctx: PoolContext, from: string, to: string, readOnly: boolean): CloneResult {
  const { host } = ctx;
  checkImageName(to);
  const lock = lockImages(host, ctx.stateDir, [
    [from, "shared"],
    [to, "exclusive"],
  ]);
  try {
    const source = getImage(host, ctx.pool, from);
    if (nameTaken(host, ctx.pool, to)) throw exists(to);
    const root = ensureWritablePool(host, ctx.pool);
    sweepPool(ctx);
    const final = `${root}/${entryName(to, source.type)}`;
    const tmp = beginTemporary(host, ctx.stateDir, root, entryName(to, source.type));
    const r = new Reverter();
    r.add("discard the temporary copy", () => tmp.discard());
    try {
      let method: CopyMethod = "copy";
      const fds = [tmp.lock.fd]; // children keep the temporary's guard lock while they write
      if (source.type === "raw") {
        run(ctx, ["cp", "-a", "--reflink=auto", "--sparse=always", "--", source.target, tmp.path], "copy", source.target, fds);
        if (readOnly) host.chmod(tmp.path, (host.stat(tmp.path, false)?.mode ?? 0o644) & ~0o222);
      } else {
        method = copyTree(host, source.target, tmp.path, { readOnly, subvolume: true, fds });
      }
      let settingsTmp: string | undefined;
      if (source.settingsFile !== undefined && host.lstat(`${root}/${to}${SETTINGS_SUFFIX}`) === undefined) {
        settingsTmp = tmp.sibling(`${to}${SETTINGS_SUFFIX}`);
        run(ctx, ["cp", "-a", "--", source.settingsFile, settingsTmp], "copy", source.settingsFile);
      }
      tmp.commit(final);
      if (readOnly && source.type !== "raw" && method === "copy") host.setImmutable(final, true);
      if (settingsTmp !== undefined) {
        try {
          tmp.commit(`${root}/${to}${SETTINGS_SUFFIX}`, settingsTmp);
        } catch {
          host.unlink(settingsTmp); // one appeared meanwhile: keep it, as machined does
        }
      }
      r.commit();
      tmp.release();
      return { image: findImage(host, ctx.pool, to)!, method };
    } catch (e) {
      throw r.fail(e);
    }
  } finally {
    lock.release();
  }
}

/** Rename an image (and NAME.nspawn) in the writable root. */
export function renameImage(ctx: PoolContext, from: string, to: string): Image {
  const { host } = ctx;
  checkImageName(to);
  const lock = lockImages(host, ctx.stateDir, [
    [from, "exclusive"],
    [to, "exclusive"],
  ]);
  let inUse: HeldLock | undefined;
  try {
    const image = getImage(host, ctx.pool, from);
    requireWritablePool(image, "rename");
    if (from === to) return image;
    if (nameTaken(host, ctx.pool, to)) throw exists(to);
    inUse = claimImage(ctx, image, "rename");
    const final = `${image.root}/${entryName(to, image.type)}`;
    const isLink = host.lstat(image.path) === "symlink";
    const immutable = !isLink && image.type === "directory" && host.immutable(image.path);
    const r = new Reverter();
    if (immutable) {
      host.setImmutable(image.path, false); // an immutable directory cannot be moved
      r.add("make the image immutable again", () => host.setImmutable(image.path, true));
    }
    try {
      host.rename(image.path, final, true);
      r.commit();
    } catch (e) {
      if (e instanceof Error && "code" in e && e.code === "EEXIST") throw r.fail(exists(to));
      throw r.fail(fsError(e, "rename", image.path));
    }
    if (immutable) host.setImmutable(final, true);
    if (image.settingsFile !== undefined) {
      try {
        host.rename(image.settingsFile, `${image.root}/${to}${SETTINGS_SUFFIX}`, true);
      } catch {
        // A settings file for the new name exists already: leave both (machined ignores this too).
      }
    }
    return findImage(host, ctx.pool, to)!;
  } finally {
    inUse?.release();
    lock.release();
  }
}

/** Mark an image read-only or writable: btrfs ro property, FS_IMMUTABLE_FL on a directory, the write bits of a raw file. */
export function setImageReadOnly(ctx: PoolContext, name: string, readOnly: boolean): Image {
  const { host } = ctx;
  const lock = lockImage(host, ctx.stateDir, name, "exclusive");
  let inUse: HeldLock | undefined;
  try {
    const image = getImage(host, ctx.pool, name);
    requireWritablePool(image, readOnly ? "mark read-only the" : "make writable the");
    inUse = claimImage(ctx, image, "change the read-only flag of");
    try {
      if (image.type === "subvolume")
        run(ctx, ["btrfs", "property", "set", "-ts", image.target, "ro", readOnly ? "true" : "false"], "set the ro property of", image.target);
      else if (image.type === "directory") host.setImmutable(image.target, readOnly);
      else {
        const mode = host.stat(image.target, true)?.mode ?? 0o644;
        host.chmod(image.target, (mode & 0o444) | (readOnly ? 0 : 0o200));
      }
    } catch (e) {
      if (e instanceof MachinaError) throw e;
      throw fsError(e, "change the read-only flag of", image.target);
    }
    return findImage(host, ctx.pool, name)!;
  } finally {
    inUse?.release();
    lock.release();
  }
}

/**
 * Remove an image and its NAME.nspawn. The entry is first renamed to a `.#` temporary (so it
 * disappears at once and a kill halfway leaves only a temporary), then deleted. A symlink entry
 * is removed, not what it points to.
 */
export function removeImage(ctx: PoolContext, name: string): Image {
  const { host } = ctx;
  const lock = lockImage(host, ctx.stateDir, name, "exclusive");
  let inUse: HeldLock | undefined;
  try {
    const image = getImage(host, ctx.pool, name);
    requireWritablePool(image, "remove");
    inUse = claimImage(ctx, image, "remove");
    sweepPool(ctx);
    if (host.lstat(image.path) === "symlink") {
      host.unlink(image.path);
    } else {
      if (image.type === "directory" && host.immutable(image.path)) host.setImmutable(image.path, false);
      const tmp = beginTemporary(host, ctx.stateDir, image.root, entryName(name, image.type));
      // A failure leaves at most a stale temporary (its lock dropped): the next operation removes it.
      const r = new Reverter();
      r.add("release the temporary", () => tmp.release());
      try {
        host.rename(image.path, tmp.path, true);
      } catch (e) {
        throw r.fail(fsError(e, "remove", image.path));
      }
      try {
        host.removeTree(tmp.path);
      } catch (e) {
        throw r.fail(fsError(e, "remove", tmp.path));
      }
      r.commit();
      tmp.release();
    }
    if (image.settingsFile !== undefined) host.unlink(image.settingsFile);
    return image;
  } finally {
    inUse?.release();
    lock.release();
  }
}

/** "-"/"none"/"infinity" = no limit (as machinectl set-limit); else a size (settings/size.ts: a bare number is bytes). */
export function parseSizeLimit(text: string): number | undefined {
  if (text === "-" || text === "none" || text === "infinity") return undefined;
  const r = readSize(text);
  if (typeof r !== "bigint" || r >= U64_MAX)
    throw new MachinaError("E_USAGE", `invalid size "${text}": expected ${r === "range" || r === U64_MAX ? "at most 2^64-2 bytes" : SIZE_SYNTAX}, or "-"`, {
      value: text,
    });
  return Number(r);
}

export interface Qgroup {
  referenced: number;
  exclusive: number;
  maxReferenced: number | undefined;
}

/** The level-0 qgroup of a btrfs subvolume (needs quotas enabled), or undefined. */
export function btrfsQgroup(host: Host, path: string): Qgroup | undefined {
  const r = host.run(["btrfs", "qgroup", "show", "--raw", "-rf", path]);
  if (r.status !== 0) return undefined;
  for (const line of r.stdout.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (!/^0\/[0-9]+$/.test(f[0] ?? "")) continue;
    const max = f[3];
    return { referenced: Number(f[1]), exclusive: Number(f[2]), maxReferenced: max === undefined || max === "none" ? undefined : Number(max) };
  }
  return undefined;
}

/** Set (or with undefined clear) the size limit of one image, or with name undefined of the whole pool. btrfs only. */
export function setImageLimit(ctx: PoolContext, name: string | undefined, limit: number | undefined): void {
  const { host } = ctx;
  const lock = name === undefined ? undefined : lockImage(host, ctx.stateDir, name, "exclusive");
  try {
    let path: string;
    let label: string;
    if (name === undefined) {
      path = poolRoots(ctx.pool).writable;
      label = `the pool ${path}`;
    } else {
      const image = getImage(host, ctx.pool, name);
      requireWritablePool(image, "limit");
      path = image.target;
      label = `image "${name}"`;
    }
    const fs = host.fsType(path);
    if (fs !== "btrfs")
      throw new MachinaError(
        "E_UNSUPPORTED",
        `cannot set a size limit on ${label}: "${path}" is on ${fs ?? "an unknown file system"}, and size limits need btrfs quotas`,
        { path },
        "keep the pool on btrfs (or use a btrfs loop file for /var/lib/machines) to use set-limit",
      );
    if (host.stat(path, true)?.ino !== 256)
      throw new MachinaError(
        "E_UNSUPPORTED",
        `cannot set a size limit on ${label}: "${path}" is a plain directory, not a btrfs subvolume`,
        { path },
        "clone it (clone makes a subvolume on btrfs) and limit the clone",
      );
    run(ctx, ["btrfs", "quota", "enable", path], "enable quotas on", path);
    run(ctx, ["btrfs", "qgroup", "limit", limit === undefined ? "none" : String(limit), path], "set the qgroup limit of", path);
  } finally {
    lock?.release();
  }
}

/** Usage and limit of a subvolume from its qgroup (when quotas are on). */
export function withQgroup(host: Host, image: Image): Image {
  if (image.type !== "subvolume") return image;
  const q = btrfsQgroup(host, image.target);
  if (q === undefined) return image;
  return { ...image, usage: q.exclusive, limit: q.maxReferenced };
}

export interface CleanResult {
  removed: Image[];
  skipped: Array<{ image: Image; reason: string }>;
  temporaries: string[];
}

/** `clean`: remove hidden images (all with `all`) of the writable root, skipping busy ones; and stale temporaries. */
export function cleanPool(ctx: PoolContext, all: boolean): CleanResult {
  const result: CleanResult = { removed: [], skipped: [], temporaries: sweepPool(ctx) };
  const root = poolRoots(ctx.pool).writable;
  for (const entry of ctx.host.readdir(root).sort()) {
    if (entry.startsWith(".#")) continue;
    const name = entry.endsWith(RAW_SUFFIX) ? entry.slice(0, -RAW_SUFFIX.length) : entry;
    const image = findImage(ctx.host, [root], name);
    if (image === undefined || image.path !== `${root}/${entry}`) continue;
    if (!all && !image.hidden) continue;
    try {
      result.removed.push(removeImage({ ...ctx, pool: [root] }, name));
    } catch (e) {
      result.skipped.push({ image, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  return result;
}
