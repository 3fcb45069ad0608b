/**
 * A content-addressed blob cache: DIR/blobs/sha256/HEX, each file written as DIR/blobs/sha256/HEX.partial
 * and renamed into place only after its sha256 and size matched, so a file under its digest's name is
 * always that digest's content. A size limit with LRU eviction (mtime is the last use), and
 * cleanBlobCache() for `machinactl clean`. Identical layers are never downloaded twice: within one process the
 * client shares a running download, across processes a `lock` (flock(2) through the Host, e.g.
 * `(p) => host.lockFile(p, "exclusive")`) on DIR/blobs/sha256/HEX.lock makes the second wait
 * and then find the blob. Like src/host/transfer-io.ts, this module does file I/O itself.
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { SHA256_DIGEST } from "./manifest.ts";
import { invalidError, MachinaError } from "../errors.ts";
import { machinaEnv } from "../config.ts";
import type { Host } from "../host/host.ts";

/** The cache pull-oci uses and `machinactl clean` empties: $MACHINA_OCI_CACHE or /var/cache/machina/oci. */
export const ociCacheDir = (env: Readonly<Record<string, string | undefined>>): string => machinaEnv(env, "MACHINA_OCI_CACHE") ?? "/var/cache/machina/oci";

/** Default size limit of a cache: 20 GiB. */
export const DEFAULT_BLOB_CACHE_MAX_BYTES = 20 * 1024 ** 3;

export interface BlobCacheOptions {
  /** the cache directory, e.g. $POOL/.cache/oci */
  dir: string;
  /** evict least recently used blobs above this many bytes (default 20 GiB) */
  maxBytes?: number;
  /** an exclusive lock without waiting (undefined: held elsewhere); without it, no cross-process lock */
  lock?: (path: string) => { release(): void } | undefined;
}

export interface CleanResult {
  removed: number;
  bytes: number;
}

export class BlobCache {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly blobDir: string;
  private readonly lockFn: BlobCacheOptions["lock"];

  constructor(options: BlobCacheOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? DEFAULT_BLOB_CACHE_MAX_BYTES;
    this.blobDir = join(options.dir, "blobs", "sha256");
    this.lockFn = options.lock;
  }

  /**
   * Hold the digest's download lock (waiting while another process holds it); a no-op without
   * a lock function. The caller looks the blob up again once it has the lock.
   */
  async lockBlob(digest: string, signal?: AbortSignal): Promise<{ release(): void }> {
    const lockFn = this.lockFn;
    if (!lockFn) return { release() {} };
    const path = `${this.path(digest)}.lock`;
    for (let wait = 50; ; wait = Math.min(wait * 2, 1000)) {
      const held = lockFn(path);
      if (held) return held;
      if (signal?.aborted) throw new MachinaError("E_CANCELLED", "pull cancelled");
      await Bun.sleep(wait);
    }
  }

  /** The path a digest's blob has (whether or not it is there). */
  path(digest: string): string {
    if (!SHA256_DIGEST.test(digest)) throw invalidError(`blob cache: "${digest}" is not a sha256 digest`, { value: digest });
    return join(this.blobDir, digest.slice("sha256:".length));
  }

  /** Where a download of the digest is written before it is verified (kept for a resume). */
  partialPath(digest: string): string {
    return `${this.path(digest)}.partial`;
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true, mode: 0o700 });
  }

  /** The blob's path when it is cached with the expected size (and marks it used), else undefined. */
  async lookup(digest: string, size?: number): Promise<string | undefined> {
    const p = this.path(digest);
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) return undefined;
    if (size !== undefined && st.size !== size) {
      await rm(p, { force: true });
      return undefined;
    }
    const now = new Date();
    await utimes(p, now, now).catch(() => undefined);
    return p;
  }

  /** Move a verified partial file into place (fsync first: the name promises the content). */
  async commit(digest: string, verifiedFile: string): Promise<string> {
    const fd = openSync(verifiedFile, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const p = this.path(digest);
    await rename(verifiedFile, p);
    return p;
  }

  /** Blobs with size and last use, oldest first. */
  async entries(): Promise<{ digest: string; path: string; size: number; used: number }[]> {
    const names = await readdir(this.blobDir).catch(() => [] as string[]);
    const out: { digest: string; path: string; size: number; used: number }[] = [];
    for (const name of names) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const p = join(this.blobDir, name);
      const st = await stat(p).catch(() => undefined);
      if (st?.isFile()) out.push({ digest: `sha256:${name}`, path: p, size: st.size, used: st.mtimeMs });
    }
    return out.sort((a, b) => a.used - b.used);
  }

  /** Evict least recently used blobs until the cache is within maxBytes; `keep` digests are never evicted. */
  async evict(keep: Iterable<string> = []): Promise<CleanResult> {
    const pinned = new Set(keep);
    const entries = await this.entries();
    let total = entries.reduce((n, e) => n + e.size, 0);
    const result: CleanResult = { removed: 0, bytes: 0 };
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      if (pinned.has(e.digest)) continue;
      await rm(e.path, { force: true });
      total -= e.size;
      result.removed++;
      result.bytes += e.size;
    }
    return result;
  }
}

/**
 * Empty the blob cache in DIR (`machinactl clean`), through the Host: every blob and partial
 * download. A blob whose download lock is held (a pull is fetching it right now) is left alone;
 * lock files stay, since removing a lock file someone waits on would let two downloads of one
 * blob run at once.
 */
export function cleanBlobCache(host: Pick<Host, "readdir" | "stat" | "unlink" | "lockFile">, dir: string): CleanResult {
  const blobDir = join(dir, "blobs", "sha256");
  const result: CleanResult = { removed: 0, bytes: 0 };
  const hexes = new Set(host.readdir(blobDir).flatMap((n) => /^([a-f0-9]{64})(\.partial)?$/.exec(n)?.[1] ?? []));
  for (const hex of hexes) {
    const held = host.lockFile(`${join(blobDir, hex)}.lock`, "exclusive");
    if (!held) continue;
    try {
      for (const p of [join(blobDir, hex), join(blobDir, `${hex}.partial`)]) {
        const st = host.stat(p, false);
        if (st?.kind !== "file") continue;
        host.unlink(p);
        result.removed++;
        result.bytes += st.size;
      }
    } finally {
      held.release();
    }
  }
  return result;
}
