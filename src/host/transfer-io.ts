/**
 * The OS side of image transfers (Linux): streaming decompression, the checked extraction
 * (the in-process scanner and GNU tar side by side, tar confined to a private mount namespace
 * whose root is a scratch tmpfs with the host's /usr read-only and the target at /target),
 * tar export, sparse raw copies and HTTP downloads with Range resume.
 *
 * Nothing here decides policy: the caller's inspector (src/image/archive-scan.ts's scanner) says
 * what an archive may contain, src/image/transfer.ts decides names, temporaries, verification and
 * size limits (the caps here stop a stream at the caller's number with the caller's error), and
 * src/image/transfer-registry.ts keeps the records of running transfers.
 */
import { machinaEnv } from "../config.ts";
import * as fs from "node:fs";
import { resolve } from "node:path";
import { createGunzip } from "node:zlib";
import { ArchiveError, TruncatedArchiveError } from "../image/archive-scan.ts";
import { compressCommand, decompressCommand, detectCompression, type Compression } from "../image/compression.ts";
import { MachinaError } from "../errors.ts";
import { isMissingProgram, missingProgramError, spawning } from "./deps.ts";

export interface StreamProgress {
  /** Bytes of the (compressed) source consumed so far. */
  (done: number): void;
}

export class TransferAborted extends MachinaError {
  constructor() {
    super("E_SYSTEM", "transfer cancelled");
    this.name = "TransferAborted";
  }
}

const CHUNK = 256 * 1024;

export function readHead(path: string, n = 16): Uint8Array {
  const fd = fs.openSync(path, "r");
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

export function fileCompression(path: string): Compression {
  return detectCompression(readHead(path));
}

/** `pos:` of fd 0 of a process (how far a decompressor has read its input file). */
function stdinPosition(pid: number): number | undefined {
  try {
    const m = /^pos:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/0`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

interface Decompressed {
  chunks: AsyncIterable<Uint8Array>;
  /** Source bytes consumed so far. */
  position(): number;
  /** Resolves when the decompressor is done; throws when it failed. */
  finished(): Promise<void>;
  kill(): void;
}

/** Decompressors' words for input that ends early (zstd, xz, bzip2, gzip/zlib). */
const ENDS_EARLY = /premature end|unexpected end|ends unexpectedly|truncated/i;

/** A decompressor's failure: "the archive is truncated" when it ran out of input, else its last line. */
function decompressFailure(tool: string, message: string): ArchiveError {
  const detail = message.trim().split("\n").pop() ?? "";
  if (ENDS_EARLY.test(message)) return new TruncatedArchiveError(`${tool} found the end of the file inside compressed data`);
  return new ArchiveError(`${tool} failed: ${detail}`);
}

/** The decompressed bytes of a file, format from its content. */
function decompressFile(path: string, compression: Compression, chunk = CHUNK): Decompressed {
  if (compression === "uncompressed") {
    const stream = fs.createReadStream(path, { highWaterMark: chunk });
    return {
      chunks: stream,
      position: () => stream.bytesRead,
      finished: async () => undefined,
      kill: () => stream.destroy(),
    };
  }
  if (compression === "gzip") {
    const input = fs.createReadStream(path, { highWaterMark: CHUNK });
    const gunzip = createGunzip({ chunkSize: CHUNK });
    let failure: Error | undefined;
    gunzip.on("error", (e) => (failure = e));
    input.pipe(gunzip);
    const chunks = (async function* () {
      try {
        for await (const c of gunzip) yield c as Uint8Array;
      } catch (e) {
        throw decompressFailure("gzip", (e as Error).message);
      }
    })();
    return {
      chunks,
      position: () => input.bytesRead,
      finished: async () => {
        if (failure) throw decompressFailure("gzip", failure.message);
      },
      kill: () => {
        input.destroy();
        gunzip.destroy();
      },
    };
  }
  const cmd = decompressCommand(compression)!;
  const proc = spawning(cmd, () => Bun.spawn(cmd, { stdin: Bun.file(path), stdout: "pipe", stderr: "pipe" }));
  let last = 0;
  return {
    chunks: proc.stdout as unknown as AsyncIterable<Uint8Array>,
    position: () => (last = stdinPosition(proc.pid) ?? last),
    finished: async () => {
      const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
      if (code !== 0) throw decompressFailure(cmd[0]!, err || `exit status ${code}`);
    },
    kill: () => proc.kill("SIGKILL"),
  };
}

/** Runs in the new mount namespace: $1 = scratch root (empty dir), $2 = target, then tar's arguments. */
const CONFINE_SCRIPT = `set -eu
S=$1; T=$2; shift 2
mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev machina-extract "$S"
mkdir "$S/usr" "$S/target"
mount --rbind /usr "$S/usr"
mount -o remount,bind,ro,nosuid,nodev "$S/usr"
ln -s usr/bin "$S/bin"; ln -s usr/sbin "$S/sbin"; ln -s usr/lib "$S/lib"
[ -e /usr/lib64 ] && ln -s usr/lib64 "$S/lib64"
mount --bind "$T" "$S/target"
cd /
exec chroot "$S" "$@"
`;

export const TAR_EXTRACT_ARGS = [
  "tar",
  "-x",
  "-f",
  "-",
  "-C",
  "/target",
  "--numeric-owner",
  "--xattrs",
  "--xattrs-include=*",
  "--acls",
  "--same-permissions",
  "--same-owner",
  "--no-overwrite-dir",
  "--warning=no-unknown-keyword",
  "--warning=no-timestamp",
];

/**
 * What checks the decompressed stream before tar sees it (src/image/archive-scan.ts's scanner):
 * write() rejects at its first refusal, which stops the extraction; end() gives its summary.
 */
export interface StreamInspector<S> {
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<S>;
  abort(): void;
  /** Its refusal, once it has refused. */
  readonly error: Error | undefined;
}

export interface ExtractOptions<S> {
  /** The archive file (any supported compression). */
  source: string;
  /** An existing empty directory: the new image's root. */
  target: string;
  /** An existing empty directory used as the mount point of the confined root. */
  scratch: string;
  inspector: StreamInspector<S>;
  /** File descriptors the children inherit (the temporary's guard lock). */
  inheritFds?: number[];
  /** GNU tar --exclude patterns (members scanned, not extracted: OCI whiteouts). */
  exclude?: readonly string[];
  signal?: AbortSignal;
  onProgress?: StreamProgress;
}

/**
 * Read a whole tar archive (any supported compression) through an inspector without
 * extracting it: the inspector's summary and the compression found, or the inspector's refusal.
 */
export async function scanTarFile<S>(source: string, inspector: StreamInspector<S>, signal?: AbortSignal): Promise<{ summary: S; compression: Compression }> {
  const compression = fileCompression(source);
  const dec = decompressFile(source, compression);
  const onAbort = () => {
    dec.kill();
    inspector.abort();
  };
  signal?.addEventListener("abort", onAbort);
  try {
    try {
      for await (const chunk of dec.chunks) {
        if (signal?.aborted) throw new TransferAborted();
        await inspector.write(chunk);
      }
    } catch (e) {
      dec.kill();
      if (signal?.aborted) throw new TransferAborted();
      if (inspector.error && !inspector.error.message.endsWith("aborted")) throw inspector.error;
      throw e;
    }
    await dec.finished();
    return { summary: await inspector.end(), compression };
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** A stream of `chunks` in which each chunk is passed to the inspector before tar may read it. */
function scannedStream<S>(
  chunks: AsyncIterable<Uint8Array>,
  scanner: StreamInspector<S>,
): { stream: ReadableStream<Uint8Array>; fed: Promise<void>; error(): unknown } {
  let feedError: unknown;
  let feedDone!: () => void;
  const fed = new Promise<void>((r) => (feedDone = r));
  const iterator = chunks[Symbol.asyncIterator]();
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await iterator.next();
          if (done) {
            controller.close();
            feedDone();
            return;
          }
          await scanner.write(value);
          controller.enqueue(value);
        } catch (e) {
          feedError = e;
          controller.error(e);
          feedDone();
        }
      },
      cancel() {
        feedDone();
      },
    },
    { highWaterMark: 8 },
  );
  return { stream, fed, error: () => feedError };
}

/** GNU tar extracting its input into the target, confined to it (CONFINE_SCRIPT) in a mount namespace of its own. */
function spawnConfinedTar<S>(o: ExtractOptions<S>, input: number | ReadableStream<Uint8Array>): Bun.Subprocess<"ignore", "ignore", "pipe"> {
  const argv = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    CONFINE_SCRIPT,
    "sh",
    o.scratch,
    o.target,
    ...TAR_EXTRACT_ARGS,
    ...(o.exclude ?? []).map((p) => `--exclude=${p}`),
  ];
  return spawning(["unshare"], () => Bun.spawn(argv, { stdio: [input, "ignore", "pipe", ...(o.inheritFds ?? [])] })) as unknown as Bun.Subprocess<
    "ignore",
    "ignore",
    "pipe"
  >;
}

/**
 * Extract a tar archive into `target`: the inspector and GNU tar read the same decompressed
 * stream; the first refusal kills tar (which is confined to the target) and throws. The caller
 * removes the target on any error.
 */
export async function extractTar<S>(o: ExtractOptions<S>): Promise<S & { compression: Compression }> {
  const compression = fileCompression(o.source);
  o = { ...o, source: resolve(o.source), target: resolve(o.target), scratch: resolve(o.scratch) };
  const scanner = o.inspector;
  // Uncompressed: tar reads the file itself while the scanner reads it here (no copy through
  // this process). Compressed: one decompressor, its output fed to both.
  const direct = compression === "uncompressed" && !machinaEnv(process.env, "MACHINA_IMPORT_STREAM");
  const dec = direct ? decompressFile(o.source, compression, 4 * 1024 * 1024) : decompressFile(o.source, compression);
  // Compressed (or MACHINA_IMPORT_STREAM=1): tar reads a stream whose every chunk the scanner
  // has passed first, so tar never sees the header of an entry the scanner refuses.
  const gated = direct ? undefined : scannedStream(dec.chunks, scanner);
  const tarInput = direct ? fs.openSync(o.source, "r") : gated!.stream;
  const tar = spawnConfinedTar(o, tarInput);
  if (typeof tarInput === "number") fs.closeSync(tarInput);
  const tarErr = new Response(tar.stderr).text();
  const tarExit = tar.exited;

  const killAll = () => {
    dec.kill();
    scanner.abort();
    try {
      tar.kill("SIGKILL");
    } catch {
      // gone
    }
  };
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    killAll();
  };
  o.signal?.addEventListener("abort", onAbort);
  const timer = o.onProgress ? setInterval(() => o.onProgress!(dec.position()), 200) : undefined;
  try {
    if (o.signal?.aborted) throw new TransferAborted();
    try {
      if (direct) {
        for await (const chunk of dec.chunks) {
          if (aborted) throw new TransferAborted();
          await scanner.write(chunk);
        }
      } else {
        // Done feeding, or tar exited early (then its status says why).
        const { fed } = gated!;
        const first = await Promise.race([fed.then(() => "fed"), tarExit.then(() => "tar")]);
        if (first === "tar" && !aborted) {
          await Promise.race([fed, Bun.sleep(100)]);
          if (gated!.error() === undefined) {
            killAll();
            const text = (await tarErr).trim().split("\n").slice(-3).join("; ");
            throw new MachinaError("E_SYSTEM", `tar failed (exit ${await tarExit}): ${text}`);
          }
        }
        if (aborted) throw new TransferAborted();
        if (gated!.error() !== undefined) throw gated!.error();
      }
    } catch (e) {
      killAll();
      await tarExit;
      if (aborted) throw new TransferAborted();
      if (scanner.error && !scanner.error.message.endsWith("aborted")) throw scanner.error;
      throw e;
    }
    // A decompressor that failed (truncated input): tar may still be writing what it was fed —
    // it must be gone before the caller removes the target, or the target outlives the removal.
    await dec.finished().catch(async (e: unknown) => {
      killAll();
      await tarExit;
      throw e;
    });
    const summary = await scanner.end().catch(async (e: unknown) => {
      killAll();
      await tarExit;
      throw e;
    });
    const code = await tarExit;
    if (aborted) throw new TransferAborted();
    if (code !== 0) {
      const text = (await tarErr).trim().split("\n").slice(-3).join("; ");
      throw new MachinaError("E_SYSTEM", `tar failed (exit ${code}): ${text}`);
    }
    o.onProgress?.(fs.statSync(o.source).size);
    return { ...summary, compression };
  } finally {
    if (timer) clearInterval(timer);
    o.signal?.removeEventListener("abort", onAbort);
  }
}

export interface ExportOptions {
  /** The image directory. */
  source: string;
  /** The file to write (created; the caller renames it into place), "-" for stdout. */
  output: string;
  compression: Compression;
  signal?: AbortSignal;
  onProgress?: StreamProgress;
}

/** `wchar` of /proc/PID/io: the bytes a process has written so far (how far a producer is). */
function bytesWritten(pid: number): number | undefined {
  try {
    const m = /^wchar:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/io`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Report `pid`'s written bytes every 200 ms; returns the stop function. */
function watchWritten(pid: number, onProgress: StreamProgress | undefined): () => void {
  if (onProgress === undefined) return () => undefined;
  let last = 0;
  const timer = setInterval(() => onProgress((last = bytesWritten(pid) ?? last)), 200);
  return () => clearInterval(timer);
}

/** Bytes an export of a directory tree will stream, about (apparent sizes, this file system only). */
export function treeBytes(dir: string): number | undefined {
  const r = spawning(["du"], () => Bun.spawnSync(["du", "-s", "--apparent-size", "-B1", "--one-file-system", "--", dir], { stdout: "pipe", stderr: "ignore" }));
  const n = Number(/^(\d+)/.exec(r.stdout.toString())?.[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

async function pipeToFile(
  producer: string[],
  compression: Compression,
  output: string,
  signal: AbortSignal | undefined,
  what: string,
  onProgress?: StreamProgress,
): Promise<void> {
  const toStdout = output === "-";
  const outFd = toStdout ? 1 : fs.openSync(output, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
  const procs: Bun.Subprocess[] = [];
  let unwatch = () => undefined as void;
  try {
    const comp = compressCommand(compression);
    const first = spawning(producer, () => Bun.spawn(producer, { stdin: "ignore", stdout: comp ? "pipe" : outFd, stderr: "pipe" }));
    procs.push(first);
    unwatch = watchWritten(first.pid, onProgress);
    try {
      if (comp) procs.push(spawning(comp, () => Bun.spawn(comp, { stdin: first.stdout as ReadableStream<Uint8Array>, stdout: outFd, stderr: "pipe" })));
    } catch (e) {
      first.kill("SIGKILL"); // no compressor (e.g. not installed): the producer is not left writing into a pipe
      await first.exited;
      throw e;
    }
    const onAbort = () => {
      for (const p of procs) p.kill("SIGKILL");
    };
    signal?.addEventListener("abort", onAbort);
    try {
      const results = await Promise.all(procs.map(async (p) => [await p.exited, await new Response(p.stderr as ReadableStream).text()] as const));
      if (signal?.aborted) throw new TransferAborted();
      results.forEach(([code, err], i) => {
        if (code !== 0)
          throw new MachinaError("E_SYSTEM", `${i === 0 ? what : comp![0]} failed (exit ${code}): ${err.trim().split("\n").slice(-3).join("; ")}`);
      });
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    unwatch();
    if (!toStdout) fs.closeSync(outFd);
  }
}

/** `tar -c` of a directory image (numeric owners, xattrs, ACLs), compressed as asked. */
export async function exportTar(o: ExportOptions): Promise<void> {
  await pipeToFile(
    ["tar", "-c", "-f", "-", "-C", o.source, "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sparse", "--one-file-system", "."],
    o.compression,
    o.output,
    o.signal,
    "tar",
    o.onProgress,
  );
}

/** A raw image file, compressed as asked (holes read as zeros). */
export async function exportRaw(o: ExportOptions): Promise<void> {
  if (o.compression === "uncompressed" && o.output !== "-") {
    const cp = spawning(["cp"], () =>
      Bun.spawn(["cp", "--sparse=always", "--reflink=auto", "--", o.source, o.output], { stdin: "ignore", stdout: "ignore", stderr: "pipe" }),
    );
    const unwatch = watchWritten(cp.pid, o.onProgress);
    const onAbort = () => cp.kill("SIGKILL");
    o.signal?.addEventListener("abort", onAbort);
    try {
      const [code, err] = await Promise.all([cp.exited, new Response(cp.stderr).text()]);
      if (o.signal?.aborted) throw new TransferAborted();
      if (code !== 0) throw new MachinaError("E_SYSTEM", `cp failed: ${err.trim()}`);
    } finally {
      unwatch();
      o.signal?.removeEventListener("abort", onAbort);
    }
    return;
  }
  await pipeToFile(["cat", "--", o.source], o.compression, o.output, o.signal, "cat", o.onProgress);
}

export interface RawImportOptions {
  source: string;
  output: string;
  /** Decompression stops with tooLarge() beyond this many bytes (a compressed source; the caller checks an uncompressed one's size). */
  maxBytes: number;
  tooLarge: () => MachinaError;
  signal?: AbortSignal;
  onProgress?: StreamProgress;
}

const BLOCK = 4096;

function allZero(buf: Uint8Array): boolean {
  const words = new BigUint64Array(buf.buffer, buf.byteOffset, buf.byteLength >> 3);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  for (let i = words.length << 3; i < buf.byteLength; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Decompress (format from content) into a new sparse file: all-zero 4 KiB blocks become holes. */
export async function importRawFile(o: RawImportOptions): Promise<{ bytes: number; compression: Compression }> {
  const compression = fileCompression(o.source);
  if (compression === "uncompressed") {
    const size = fs.statSync(o.source).size;
    const r = spawning(["cp"], () => Bun.spawnSync(["cp", "--sparse=always", "--reflink=auto", "--", o.source, o.output], { stderr: "pipe" }));
    if (r.exitCode !== 0) throw new MachinaError("E_SYSTEM", `cp failed: ${r.stderr.toString().trim()}`);
    o.onProgress?.(size);
    return { bytes: size, compression };
  }
  const dec = decompressFile(o.source, compression);
  const fd = fs.openSync(o.output, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
  const onAbort = () => dec.kill();
  o.signal?.addEventListener("abort", onAbort);
  const timer = o.onProgress ? setInterval(() => o.onProgress!(dec.position()), 200) : undefined;
  let pos = 0;
  // Carry partial blocks so holes stay aligned.
  let carry = new Uint8Array(0);
  const writeBlocks = (buf: Uint8Array) => {
    for (let off = 0; off < buf.byteLength; off += BLOCK) {
      const block = buf.subarray(off, Math.min(off + BLOCK, buf.byteLength));
      if (!allZero(block)) fs.writeSync(fd, block, 0, block.byteLength, pos);
      pos += block.byteLength;
    }
  };
  try {
    for await (const chunk of dec.chunks) {
      if (o.signal?.aborted) throw new TransferAborted();
      let data = chunk;
      if (carry.byteLength > 0) {
        const merged = new Uint8Array(carry.byteLength + chunk.byteLength);
        merged.set(carry);
        merged.set(chunk, carry.byteLength);
        data = merged;
      }
      const whole = data.byteLength - (data.byteLength % BLOCK);
      writeBlocks(data.subarray(0, whole));
      carry = data.slice(whole);
      if (pos + carry.byteLength > o.maxBytes) {
        dec.kill();
        throw o.tooLarge();
      }
    }
    if (o.signal?.aborted) throw new TransferAborted();
    writeBlocks(carry);
    fs.ftruncateSync(fd, pos);
    await dec.finished();
    o.onProgress?.(fs.statSync(o.source).size);
    return { bytes: pos, compression };
  } finally {
    if (timer) clearInterval(timer);
    o.signal?.removeEventListener("abort", onAbort);
    fs.closeSync(fd);
  }
}

// ------------------------------------------------------------------ downloads

export interface DownloadOptions {
  url: string;
  output: string;
  /** The download stops with tooLarge(total from Content-Length, when known) beyond this many bytes. */
  maxBytes: number;
  tooLarge: (total: number | undefined) => MachinaError;
  /** Attempts in all (the first request and Range resumes). */
  attempts?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number | undefined) => void;
}

/**
 * GET `url` into `output` (created), resuming with Range after a connection that breaks
 * mid-body. Returns the bytes written. 404 -> E_NOT_FOUND.
 */
export async function download(o: DownloadOptions): Promise<number> {
  const attempts = o.attempts ?? 5;
  const fd = fs.openSync(o.output, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
  let done = 0;
  let total: number | undefined;
  let lastError: unknown;
  try {
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (o.signal?.aborted) throw new TransferAborted();
      const headers: Record<string, string> = {};
      if (done > 0) headers["Range"] = `bytes=${done}-`;
      let res: Response;
      try {
        res = await fetch(o.url, { headers, signal: o.signal, redirect: "follow" });
      } catch (e) {
        if (o.signal?.aborted) throw new TransferAborted();
        lastError = e;
        await Bun.sleep(100 * (attempt + 1));
        continue;
      }
      if (res.status === 404) throw new MachinaError("E_NOT_FOUND", `${o.url}: 404 Not Found`);
      if (done > 0 && res.status === 200) {
        // The server ignores Range: start over.
        done = 0;
        fs.ftruncateSync(fd, 0);
      } else if (done > 0 && res.status !== 206) {
        throw new MachinaError("E_SYSTEM", `${o.url}: HTTP ${res.status} when resuming`);
      } else if (done === 0 && res.status !== 200) {
        throw new MachinaError("E_SYSTEM", `${o.url}: HTTP ${res.status} ${res.statusText}`);
      }
      const len = res.headers.get("content-length");
      if (len !== null && /^\d+$/.test(len)) total = done + Number(len);
      if (total !== undefined && total > o.maxBytes) throw o.tooLarge(total);
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          fs.writeSync(fd, chunk, 0, chunk.byteLength, done);
          done += chunk.byteLength;
          if (done > o.maxBytes) throw o.tooLarge(undefined);
          o.onProgress?.(done, total);
        }
      } catch (e) {
        if (e instanceof MachinaError) throw e;
        if (o.signal?.aborted) throw new TransferAborted();
        lastError = e;
        continue;
      }
      if (total !== undefined && done < total) {
        lastError = new Error(`connection closed after ${done} of ${total} bytes`);
        continue;
      }
      return done;
    }
    throw new MachinaError(
      "E_SYSTEM",
      `${o.url}: download failed after ${attempts} attempts: ${lastError instanceof Error ? lastError.message : String(lastError)}`,
    );
  } finally {
    fs.closeSync(fd);
  }
}

/** A small text file over HTTP (checksum lists), or undefined on 404. */
export async function fetchText(url: string, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
  const res = await fetch(url, { signal, redirect: "follow" });
  if (res.status === 404 || res.status === 410) return undefined;
  if (res.status !== 200) throw new MachinaError("E_SYSTEM", `${url}: HTTP ${res.status} ${res.statusText}`);
  const buf = new Uint8Array(await res.arrayBuffer());
  if (buf.byteLength > maxBytes) throw new MachinaError("E_INVALID", `${url}: larger than ${maxBytes} bytes`);
  return buf;
}

/** SHA-256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const c of fs.createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Uint8Array);
  return h.digest("hex");
}

/** gpgv: is `sig` (detached, or inline when `data` is undefined) a good signature by a key in `keyring`? */
export function gpgVerify(keyring: string, sig: string, data: string | undefined): { ok: boolean; message: string } {
  const args = ["gpgv", "--keyring", keyring, sig, ...(data !== undefined ? [data] : [])];
  let r: Bun.SyncSubprocess<"pipe", "pipe">;
  try {
    r = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe", env: { ...process.env, LC_ALL: "C" } });
  } catch (e) {
    if (!isMissingProgram(e)) throw e;
    const missing = missingProgramError("gpgv");
    throw new MachinaError(missing.code, missing.message, missing.context, "or pull with --verify=checksum");
  }
  return { ok: r.exitCode === 0, message: (r.stderr.toString() + r.stdout.toString()).trim() };
}
