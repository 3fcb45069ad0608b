/**
 * The in-process tar scanner: every archive is read here, entry by entry, before (or while)
 * GNU tar extracts it, and rejected as a whole at the first entry that could write outside
 * the target or that the policy forbids. Pure: fed with bytes, no OS access.
 *
 * Policy (docs/transfers.md):
 * - names: relative, no `..` component, at most PATH_MAX (4095) bytes, components at most
 *   NAME_MAX (255), depth at most 256; a leading `./` and trailing `/` are fine;
 * - no entry may pass through a symlink or a non-directory created earlier in the archive
 *   (symlink-then-write-through); an entry may repeat an earlier path only with the same kind
 *   (a directory never becomes a symlink or a file by a duplicate entry);
 * - hardlinks only to an earlier regular file entry of the archive;
 * - directories, symlinks, hardlinks, devices and FIFOs carry no data (size 0);
 * - device nodes, FIFOs, setuid/setgid bits and numeric owners are data: kept, never opened;
 * - uid/gid at most 2^32-2; unknown entry types refused;
 * - entry count and total decompressed bytes bounded (decompression bombs).
 */
import { machinaEnv } from "../config.ts";
import * as tarStream from "tar-stream";
import { MachinaError, type ErrorContext } from "../errors.ts";

export interface ScanLimits {
  /** Entries at most. */
  maxEntries: number;
  /** Decompressed archive bytes at most (tar blocks included). */
  maxBytes: number;
  /** Path components at most. */
  maxDepth: number;
}

export const PATH_MAX = 4095;
export const NAME_MAX = 255;
export const MAX_ID = 4294967294; // 2^32-2: (uid_t)-1 is "no change"

export const DEFAULT_SCAN_LIMITS: ScanLimits = {
  maxEntries: 10_000_000,
  maxBytes: 64 * 1024 ** 3,
  maxDepth: 256,
};

/** Limits from the environment: MACHINA_IMPORT_MAX_ENTRIES, MACHINA_IMPORT_MAX_BYTES (tests). */
export function scanLimitsFromEnv(env: Readonly<Record<string, string | undefined>>): ScanLimits {
  return {
    maxEntries: machinaEnv(env, "MACHINA_IMPORT_MAX_ENTRIES") ?? DEFAULT_SCAN_LIMITS.maxEntries,
    maxBytes: machinaEnv(env, "MACHINA_IMPORT_MAX_BYTES") ?? DEFAULT_SCAN_LIMITS.maxBytes,
    maxDepth: machinaEnv(env, "MACHINA_IMPORT_MAX_DEPTH") ?? DEFAULT_SCAN_LIMITS.maxDepth,
  };
}

export type EntryKind = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";

/** An entry that passed the checks: its normalized path ("" = the root) and kind. */
export interface ScannedEntry {
  path: string;
  kind: EntryKind;
}

export interface ScanSummary {
  entries: number;
  /** Decompressed bytes read (the tar stream). */
  bytes: number;
  /** Data bytes of regular files. */
  dataBytes: number;
}

/**
 * Something wrong with an archive's content (unsafe, truncated, not decompressible). The code
 * that reads it does not know what the user called the file (a pull reads a temporary): the
 * caller names it with aboutArchive().
 */
export class ArchiveError extends MachinaError {
  constructor(message: string, context: ErrorContext = {}) {
    super("E_INVALID", message, context);
    this.name = "ArchiveError";
  }
}

/** `"FILE": MESSAGE` for an ArchiveError (FILE as the user gave it: a path or a URL); other errors as they are. */
export function aboutArchive(e: unknown, shown: string): unknown {
  return e instanceof ArchiveError ? new MachinaError(e.code, `"${shown}": ${e.message}`, { ...e.context, file: shown }) : e;
}

/** An archive refused by the scanner. */
export class UnsafeArchiveError extends ArchiveError {
  constructor(message: string, entry?: string) {
    super(
      entry === undefined ? `unsafe archive: ${message}` : `unsafe archive: ${message}: ${JSON.stringify(entry)}`,
      entry === undefined ? {} : { path: entry },
    );
    this.name = "UnsafeArchiveError";
  }
}

const KINDS: Record<string, EntryKind> = {
  file: "file",
  "contiguous-file": "file",
  directory: "dir",
  symlink: "symlink",
  link: "hardlink",
  "character-device": "char",
  "block-device": "block",
  fifo: "fifo",
};

/**
 * A member name as the list of its components, or a reason why it is refused.
 * "./a//b/" -> ["a","b"]; "." and "./" -> [] (the target itself).
 */
export function normalizeMemberName(name: string): string[] | string {
  if (name.length === 0) return "empty name";
  if (name.includes("\0")) return "NUL in name";
  if (name.startsWith("/")) return "absolute path";
  if (Buffer.byteLength(name, "latin1") > PATH_MAX) return `name longer than PATH_MAX (${PATH_MAX})`;
  const parts: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") return "`..` component";
    if (part.length > NAME_MAX) return `component longer than NAME_MAX (${NAME_MAX})`;
    parts.push(part);
  }
  return parts;
}

type Known = Exclude<EntryKind, "hardlink">;

/** An archive that ends early (a partial download or copy): not unsafe, just incomplete. */
export class TruncatedArchiveError extends ArchiveError {
  constructor(detail: string) {
    super(`the archive is truncated (${detail})`);
    this.name = "TruncatedArchiveError";
  }
}

/** tar-stream's reason without its guesses ("Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?"). */
const tarStreamReason = (e: Error) => e.message.replace(/\. Maybe .*$/, "").replace(/^Invalid tar header$/, "a block is not a tar header");

/** tar-stream's error for input that ends inside a header or an entry's data. */
const isEndOfData = (e: Error) => /unexpected end of data/i.test(e.message);

export class ArchiveScanner {
  private readonly limits: ScanLimits;
  private readonly extract: tarStream.Extract;
  /** Every path seen (explicit or implied parent) and what it is. "" is the target itself. */
  private readonly seen = new Map<string, Known>([["", "dir"]]);
  private failure: Error | undefined;
  private finished = false;
  private readonly done: Promise<void>;
  private summary: ScanSummary = { entries: 0, bytes: 0, dataBytes: 0 };
  private readonly onEntry: ((entry: ScannedEntry) => void) | undefined;

  /** `onEntry`: told of every entry that passed the checks, in archive order (OCI layers' whiteouts). */
  constructor(limits: ScanLimits = DEFAULT_SCAN_LIMITS, onEntry?: (entry: ScannedEntry) => void) {
    this.limits = limits;
    this.onEntry = onEntry;
    // latin1: one char per byte, so names compare exactly as the kernel and GNU tar see them.
    this.extract = tarStream.extract({ filenameEncoding: "latin1" } as Parameters<typeof tarStream.extract>[0]);
    this.extract.on("entry", (header, stream, next) => {
      try {
        this.check(header);
      } catch (e) {
        this.fail(e as Error);
        stream.resume();
        return;
      }
      stream.on("error", (e: Error) =>
        this.fail(isEndOfData(e) ? new TruncatedArchiveError("it ends inside an entry") : new UnsafeArchiveError(`truncated archive (${e.message})`)),
      );
      stream.on("end", next);
      stream.resume();
    });
    this.done = new Promise<void>((resolve) => {
      this.extract.on("finish", () => {
        this.finished = true;
        resolve();
      });
      this.extract.on("error", (e: Error) => {
        this.fail(
          isEndOfData(e) ? new TruncatedArchiveError("it ends inside an entry") : new UnsafeArchiveError(`not a valid tar archive (${tarStreamReason(e)})`),
        );
        resolve();
      });
      this.extract.on("close", () => resolve());
    });
  }

  /** The first reason to refuse the archive, once one was found. */
  get error(): Error | undefined {
    return this.failure;
  }

  private fail(e: Error): void {
    if (this.failure === undefined) this.failure = e;
    this.extract.destroy();
  }

  /** Feed decompressed bytes; resolves when the scanner is ready for more. Throws once refused. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    this.summary.bytes += chunk.byteLength;
    if (this.summary.bytes > this.limits.maxBytes) {
      this.fail(new UnsafeArchiveError(`more than ${this.limits.maxBytes} bytes uncompressed (limit; MACHINA_IMPORT_MAX_BYTES)`));
      throw this.failure!;
    }
    const more = this.extract.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if (!more && !this.failure) {
      await new Promise<void>((resolve) => {
        const go = () => {
          this.extract.off("drain", go);
          this.extract.off("close", go);
          resolve();
        };
        this.extract.on("drain", go);
        this.extract.on("close", go);
      });
    }
    if (this.failure) throw this.failure;
  }

  /** End of input: the summary, or the reason the archive is refused. */
  async end(): Promise<ScanSummary> {
    if (!this.failure) this.extract.end(undefined as unknown as Buffer);
    await this.done;
    if (this.failure) throw this.failure;
    if (!this.finished) throw new UnsafeArchiveError("truncated archive");
    if (this.summary.entries === 0) throw new UnsafeArchiveError("the archive has no entries");
    return { ...this.summary };
  }

  /** Stop early (the transfer failed elsewhere). */
  abort(): void {
    this.fail(new UnsafeArchiveError("aborted"));
  }

  private check(h: tarStream.Header): void {
    const raw = h.name;
    const kind = (h.type as string | null) ? KINDS[h.type] : undefined;
    if (kind === undefined) throw new UnsafeArchiveError(`unsupported entry type ${String(h.type)}`, raw);
    this.summary.entries++;
    if (this.summary.entries > this.limits.maxEntries)
      throw new UnsafeArchiveError(`more than ${this.limits.maxEntries} entries (limit; MACHINA_IMPORT_MAX_ENTRIES)`);

    const pax = (h.pax ?? {}) as Record<string, string>;
    // GNU tar takes the real name of a PAX sparse file from GNU.sparse.name.
    const names = [raw, ...(pax["GNU.sparse.name"] !== undefined ? [pax["GNU.sparse.name"]] : [])];
    let parts: string[] = [];
    for (const n of names) {
      const p = normalizeMemberName(n);
      if (typeof p === "string") throw new UnsafeArchiveError(p, n);
      parts = p;
    }
    if (parts.length > this.limits.maxDepth) throw new UnsafeArchiveError(`deeper than ${this.limits.maxDepth} components`, raw);

    for (const [what, value] of [
      ["uid", h.uid],
      ["gid", h.gid],
      ["uid", pax["uid"]],
      ["gid", pax["gid"]],
    ] as const) {
      if (value === undefined) continue;
      const n = typeof value === "number" ? value : /^[0-9]+$/.test(value) ? Number(value) : NaN;
      if (!(Number.isSafeInteger(n) && n >= 0 && n <= MAX_ID)) throw new UnsafeArchiveError(`${what} ${String(value)} out of range (at most ${MAX_ID})`, raw);
    }
    const size = h.size ?? 0;
    if (!(Number.isSafeInteger(size) && size >= 0)) throw new UnsafeArchiveError("invalid size", raw);
    if (kind !== "file" && size !== 0) throw new UnsafeArchiveError(`${kind} entry with data (size ${size})`, raw);
    if (kind === "file") {
      this.summary.dataBytes += size;
      if (this.summary.dataBytes > this.limits.maxBytes)
        throw new UnsafeArchiveError(`more than ${this.limits.maxBytes} bytes of data (limit; MACHINA_IMPORT_MAX_BYTES)`, raw);
    }

    // Every parent must be a directory: explicit, implied, or the target itself.
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const k = this.seen.get(parent);
      if (k === undefined) this.seen.set(parent, "dir");
      else if (k !== "dir")
        throw new UnsafeArchiveError(k === "symlink" ? "path passes through a symlink in the archive" : `path passes through a ${k} entry`, raw);
    }

    const path = parts.join("/");
    let effective: Known;
    if (kind === "hardlink") {
      const target = h.linkname ?? "";
      const t = normalizeMemberName(target);
      if (typeof t === "string") throw new UnsafeArchiveError(`hardlink target: ${t}`, `${raw} -> ${target}`);
      const tk = this.seen.get(t.join("/"));
      if (tk !== "file") throw new UnsafeArchiveError("hardlink to something that is not an earlier regular file of the archive", `${raw} -> ${target}`);
      if (t.join("/") === path) throw new UnsafeArchiveError("hardlink to itself", raw);
      effective = "file";
    } else if (kind === "symlink") {
      const target = h.linkname ?? "";
      if (target.length === 0) throw new UnsafeArchiveError("symlink with an empty target", raw);
      if (Buffer.byteLength(target, "latin1") > PATH_MAX) throw new UnsafeArchiveError("symlink target longer than PATH_MAX", raw);
      if (target.includes("\0")) throw new UnsafeArchiveError("NUL in symlink target", raw);
      effective = "symlink";
    } else {
      effective = kind;
    }

    const before = this.seen.get(path);
    if (path === "" && effective !== "dir") throw new UnsafeArchiveError("the archive's root is not a directory", raw);
    if (before !== undefined && before !== effective) throw new UnsafeArchiveError(`duplicate entry turns a ${before} into a ${effective}`, raw);
    this.seen.set(path, effective);
    this.onEntry?.({ path, kind });
  }
}

/** Scan a whole archive given as chunks (tests, `machinactl` checks). */
export async function scanArchive(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limits?: ScanLimits): Promise<ScanSummary> {
  const s = new ArchiveScanner(limits);
  try {
    for await (const c of chunks) await s.write(c);
  } catch (e) {
    if (s.error) throw s.error;
    throw e;
  }
  return s.end();
}
