/**
 * Image transfers: import-tar/raw/fs, export-tar/raw, pull-tar/raw (machinectl's and importctl's
 * verbs). Every new image is built under a pool temporary (`.#NAME-XXXXXXXX`, its guard lock
 * inherited by the children that fill it) and renamed into place only when complete; any error,
 * SIGTERM (cancel-transfer) or SIGKILL leaves no visible image (a killed run's temporary is
 * removed by the next transfer, pool.cleanTemporaries()).
 */
import { machinaEnv } from "../config.ts";
import { basename, dirname, resolve } from "node:path";
import { MachinaError } from "../errors.ts";
import type { HeldLock, Host } from "../host/host.ts";
import {
  download,
  exportRaw,
  exportTar,
  extractTar,
  fetchText,
  gpgVerify,
  importRawFile,
  sha256File,
  treeBytes,
  type StreamProgress,
} from "../host/transfer-io.ts";
import type { Paths } from "../paths.ts";
import { aboutArchive, ArchiveScanner, scanLimitsFromEnv, UnsafeArchiveError } from "./archive-scan.ts";
import { claimImage } from "./ops.ts";
import { recordOrigin, type Origin } from "./origin.ts";
import { rawImageKind } from "./raw.ts";
import { compressionFromSuffix, detectCompression, stripImageSuffixes, type Compression } from "./compression.ts";
import {
  beginTemporary,
  checkImageName,
  cleanTemporaries,
  ensureWritablePool,
  entryName,
  findImage,
  getImage,
  lockImage,
  Reverter,
  type Temporary,
} from "./pool.ts";

export const DEFAULT_PULL_MAX_BYTES = 64 * 1024 ** 3;

/** The largest checksum list or signature a pull downloads. */
const CHECKSUM_MAX_BYTES = 16 * 1024 * 1024;

export interface Progress {
  /** `total` in bytes when known. */
  start(what: string, total: number | undefined): void;
  update(done: number): void;
  stop(): void;
}

export const NO_PROGRESS: Progress = { start() {}, update() {}, stop() {} };

/** A transfer's context for a caller without a terminal (machinad): silent and never cancelled unless given otherwise. */
export function transferContext(
  host: Host,
  paths: Paths,
  env: Readonly<Record<string, string | undefined>>,
  parts: Partial<Pick<TransferContext, "progress" | "signal" | "log">> = {},
): TransferContext {
  return { host, paths, env, progress: NO_PROGRESS, signal: new AbortController().signal, log: () => undefined, ...parts };
}

export interface TransferContext {
  host: Host;
  paths: Paths;
  env: Readonly<Record<string, string | undefined>>;
  progress: Progress;
  signal: AbortSignal;
  /** Informational lines ("Imported …"); library code does not print. */
  log: (line: string) => void;
}

export interface ImportOptions {
  force: boolean;
  readOnly: boolean;
  /** What the image's origin record names as its source (default: the file's path); machinad's uploads say "upload". */
  sourceLabel?: string;
}

/** --force: the in-use lock of the image a temporary replaces (in-use.ts), released once it is replaced. */
const replacedInUse = new WeakMap<Temporary, HeldLock>();

/** Lock NAME, refuse (or, with --force, schedule the removal of) an existing image, open a temporary. */
export function prepare(
  ctx: TransferContext,
  name: string,
  kind: "dir" | "raw",
  opts: ImportOptions,
  r: Reverter,
): { temp: Temporary; final: string; replace: string | undefined } {
  checkImageName(name);
  const writable = ensureWritablePool(ctx.host, ctx.paths.pool);
  cleanTemporaries(ctx.host, ctx.paths.stateDir, writable);
  const lock = lockImage(ctx.host, ctx.paths.stateDir, name, "exclusive");
  r.always("unlock", () => lock.release());
  const existing = findImage(ctx.host, [writable], name);
  const final = `${writable}/${entryName(name, kind === "raw" ? "raw" : "directory")}`;
  let replace: string | undefined;
  let inUse: HeldLock | undefined;
  if (existing !== undefined || ctx.host.lstat(final) !== undefined) {
    if (!opts.force) throw new MachinaError("E_BUSY", `image "${name}" already exists`, { value: name }, "use --force to replace it");
    replace = existing?.path ?? final;
    // The image it replaces must not be in use: held unused until the replacement is in place.
    if (existing !== undefined) {
      const pool = { host: ctx.host, pool: ctx.paths.pool, stateDir: ctx.paths.stateDir };
      inUse = claimImage(pool, existing, "replace");
      r.add("release the replaced image", () => inUse!.release());
    }
  }
  const temp = beginTemporary(ctx.host, ctx.paths.stateDir, writable, entryName(name, kind === "raw" ? "raw" : "directory"));
  r.add("discard temporary", () => temp.discard());
  if (inUse !== undefined) replacedInUse.set(temp, inUse);
  return { temp, final, replace };
}

/** Put the finished temporary in place (after removing the image it replaces, with --force). */
export function commit(
  ctx: TransferContext,
  temp: Temporary,
  final: string,
  replace: string | undefined,
  opts: ImportOptions,
  kind: "dir" | "raw",
  origin: Omit<Origin, "time">,
): void {
  // It came from outside: say so on the image itself (origin.ts), before anything makes it immutable.
  recordOrigin(ctx.host, temp.path, { ...origin, time: Date.now() });
  if (opts.readOnly && kind === "raw") ctx.host.chmod(temp.path, 0o444);
  if (replace !== undefined) {
    ctx.host.removeTree(replace);
    if (replace !== final) ctx.host.removeTree(final);
  }
  temp.commit(final);
  temp.release();
  replacedInUse.get(temp)?.release();
  // An immutable directory cannot be renamed: mark it after the rename.
  if (opts.readOnly && kind === "dir") ctx.host.setImmutable(final, true);
}

function fileSize(host: Host, path: string): number | undefined {
  return host.stat(path, true)?.size;
}

/** The size of an uncompressed file (its content is its size), undefined for a compressed one (counted while it streams). */
function uncompressedSize(host: Host, path: string): number | undefined {
  return detectCompression(host.readAt(path, 0, 16)) === "uncompressed" ? fileSize(host, path) : undefined;
}

/** The archive `file` extracted into the temporary; `shown`: the file as the user named it (a pull's URL), for messages. */
/** A tar archive's entries into `temp` (a new directory), checked and confined as an import's (machinad's directory uploads too). */
export async function fillDirFromTar(ctx: TransferContext, temp: Temporary, file: string, shown: string): Promise<void> {
  ctx.host.mkdirp(temp.path, 0o755);
  const scratch = temp.sibling("extract-root");
  ctx.host.mkdirp(scratch, 0o700);
  ctx.progress.start(`Importing ${basename(shown)}`, fileSize(ctx.host, file));
  try {
    const limits = scanLimitsFromEnv(ctx.env);
    if ((uncompressedSize(ctx.host, file) ?? 0) > limits.maxBytes)
      throw new UnsafeArchiveError(`more than ${limits.maxBytes} bytes uncompressed (limit; MACHINA_IMPORT_MAX_BYTES)`);
    await extractTar({
      source: file,
      target: temp.path,
      scratch,
      inspector: new ArchiveScanner(limits),
      inheritFds: [temp.lock.fd],
      signal: ctx.signal,
      onProgress: (n) => ctx.progress.update(n),
    });
  } catch (e) {
    throw aboutArchive(e, shown);
  } finally {
    ctx.progress.stop();
    ctx.host.removeTree(scratch);
  }
}

async function fillRaw(ctx: TransferContext, temp: Temporary, file: string, shown: string): Promise<void> {
  ctx.progress.start(`Importing ${basename(shown)}`, fileSize(ctx.host, file));
  try {
    const maxBytes = machinaEnv(ctx.env, "MACHINA_IMPORT_MAX_BYTES") ?? DEFAULT_PULL_MAX_BYTES;
    if ((uncompressedSize(ctx.host, file) ?? 0) > maxBytes)
      throw new MachinaError("E_INVALID", `image larger than ${maxBytes} bytes (limit; MACHINA_IMPORT_MAX_BYTES)`);
    await importRawFile({
      source: file,
      output: temp.path,
      maxBytes,
      tooLarge: () => new MachinaError("E_INVALID", `image larger than ${maxBytes} bytes uncompressed (limit; MACHINA_IMPORT_MAX_BYTES)`),
      signal: ctx.signal,
      onProgress: (n) => ctx.progress.update(n),
    });
  } catch (e) {
    throw aboutArchive(e, shown);
  } finally {
    ctx.progress.stop();
  }
  const kind = rawImageKind(ctx.host, temp.path);
  if (kind === "qcow2") throw new MachinaError("E_UNSUPPORTED", `"${shown}": qcow2 images are not supported: convert with qemu-img convert -O raw first`);
  if (kind === undefined) throw new MachinaError("E_INVALID", `"${shown}": not a raw disk image (no partition table, GPT or MBR, and no known file system)`);
}

export function nameFromPath(path: string, kind: "tar" | "raw"): string {
  return stripImageSuffixes(basename(path), kind);
}

/** import-tar / import-raw: a local file into a new image (NAME from the file's name without suffixes when not given). */
async function importFile(ctx: TransferContext, kind: "tar" | "raw", file: string, name: string | undefined, opts: ImportOptions): Promise<string> {
  const src = resolve(file);
  if (ctx.host.stat(src, true)?.kind !== "file") throw new MachinaError("E_NOT_FOUND", `"${file}" is not a file`, { path: file });
  const image = name ?? nameFromPath(src, kind);
  const entry = kind === "raw" ? "raw" : "dir";
  await Reverter.run(async (r) => {
    const { temp, final, replace } = prepare(ctx, image, entry, opts, r);
    await (kind === "raw" ? fillRaw : fillDirFromTar)(ctx, temp, src, file);
    commit(ctx, temp, final, replace, opts, entry, { how: `import-${kind}`, source: opts.sourceLabel ?? src });
  });
  return image;
}

export function importTar(ctx: TransferContext, file: string, name: string | undefined, opts: ImportOptions): Promise<string> {
  return importFile(ctx, "tar", file, name, opts);
}

export function importRaw(ctx: TransferContext, file: string, name: string | undefined, opts: ImportOptions): Promise<string> {
  return importFile(ctx, "raw", file, name, opts);
}

export async function importFs(ctx: TransferContext, dir: string, name: string | undefined, opts: ImportOptions): Promise<string> {
  const src = resolve(dir);
  if (ctx.host.stat(src, true)?.kind !== "dir") throw new MachinaError("E_NOT_FOUND", `"${dir}" is not a directory`, { path: dir });
  const image = name ?? basename(src);
  await Reverter.run(async (r) => {
    const { temp, final, replace } = prepare(ctx, image, "dir", opts, r);
    ctx.progress.start(`Copying ${src}`, undefined);
    const res = ctx.host.run(["cp", "-a", "--reflink=auto", "--no-target-directory", "--", src, temp.path], { fds: [temp.lock.fd] });
    ctx.progress.stop();
    if (res.status !== 0) throw new MachinaError("E_SYSTEM", `copying "${src}" failed: ${res.stderr.trim()}`, { path: src });
    commit(ctx, temp, final, replace, opts, "dir", { how: "import-fs", source: src });
  });
  return image;
}

/** An OS error writing the temporary next to `file` ("EACCES: …, open '/dir/.#x.tar-1234'") as one naming `file`. */
function namingFile(e: unknown, file: string): unknown {
  if (e instanceof MachinaError || !(e instanceof Error) || !("code" in e) || typeof e.code !== "string") return e;
  const reason = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1] ?? e.code;
  return new MachinaError("E_SYSTEM", `cannot write "${file}": ${reason}`, { path: file, errno: e.code });
}

export interface ExportOptions {
  format: Compression | undefined;
  force: boolean;
}

/** export-tar / export-raw into FILE (via a temporary next to it), or to stdout when file is undefined. */
export async function exportImage(ctx: TransferContext, kind: "tar" | "raw", name: string, file: string | undefined, opts: ExportOptions): Promise<void> {
  const image = getImage(ctx.host, ctx.paths.pool, name);
  if (kind === "tar" && image.type === "raw") throw new MachinaError("E_UNSUPPORTED", `image "${name}" is a raw disk image: use export-raw`);
  if (kind === "raw" && image.type !== "raw") throw new MachinaError("E_UNSUPPORTED", `image "${name}" is a directory: use export-tar`);
  const compression = opts.format ?? (file !== undefined ? compressionFromSuffix(file) : undefined) ?? "uncompressed";
  const lock = lockImage(ctx.host, ctx.paths.stateDir, name, "shared");
  try {
    if (file === undefined) {
      await (kind === "tar" ? exportTar : exportRaw)({ source: image.target, output: "-", compression, signal: ctx.signal });
      return;
    }
    const out = resolve(file);
    if (ctx.host.stat(out, true)?.kind === "dir")
      throw new MachinaError("E_INVALID", `"${file}" is a directory: give the name of the file to write`, { path: file });
    if (ctx.host.lstat(out) !== undefined && !opts.force)
      throw new MachinaError("E_BUSY", `"${file}" already exists`, { path: file }, "use --force to replace it");
    const dir = dirname(out);
    if (ctx.host.stat(dir, true)?.kind !== "dir")
      throw new MachinaError("E_NOT_FOUND", `cannot write "${file}": the directory "${dir}" does not exist`, { path: file });
    await Reverter.run(async (r) => {
      const temp = beginTemporary(ctx.host, ctx.paths.stateDir, dirname(out), basename(out));
      r.add("discard temporary", () => temp.discard());
      // Progress: the bytes tar (or cat/cp) has written of the image's size (a tree's apparent size).
      const total = kind === "tar" ? treeBytes(image.target) : fileSize(ctx.host, image.target);
      ctx.progress.start(`Exporting ${name}`, total);
      try {
        await (kind === "tar" ? exportTar : exportRaw)({
          source: image.target,
          output: temp.path,
          compression,
          signal: ctx.signal,
          onProgress: (n) => ctx.progress.update(n),
        });
        if (total !== undefined) ctx.progress.update(total);
      } catch (e) {
        throw namingFile(e, file);
      } finally {
        ctx.progress.stop();
      }
      ctx.host.rename(temp.path, out, false);
      temp.release();
    });
  } finally {
    lock.release();
  }
}

// ------------------------------------------------------------------ pull

export type VerifyMode = "no" | "checksum" | "signature";

export interface PullOptions extends ImportOptions {
  verify: VerifyMode;
}

/** The keyring for --verify=signature: $MACHINA_IMPORT_PUBRING, else systemd's (/etc first). */
export function importKeyring(host: Host, env: TransferContext["env"]): string {
  const candidates =
    machinaEnv(env, "MACHINA_IMPORT_PUBRING") !== undefined
      ? [machinaEnv(env, "MACHINA_IMPORT_PUBRING")!]
      : ["/etc/systemd/import-pubring.gpg", "/usr/lib/systemd/import-pubring.gpg"];
  const found = candidates.find((p) => host.lstat(p) !== undefined);
  if (found === undefined)
    throw new MachinaError(
      "E_NOT_FOUND",
      `no keyring for --verify=signature (looked for ${candidates.join(", ")})`,
      {},
      "install one, or pull with --verify=checksum",
    );
  return found;
}

/** The checksum for `file` in a SHA256SUMS-style text ("HEX  NAME" / "HEX *NAME"), or undefined. */
export function checksumFor(text: string, file: string): string | undefined {
  for (const line of text.split("\n")) {
    const m = /^([0-9a-fA-F]{64}) [ *](.+?)\r?$/.exec(line);
    if (m && (m[2] === file || m[2] === `./${file}`)) return m[1]!.toLowerCase();
  }
  return undefined;
}

/** The body of an OpenPGP clearsigned message (dash-escaping undone), or the text itself. */
export function clearsignedBody(text: string): string {
  const m = /-----BEGIN PGP SIGNED MESSAGE-----\r?\n(?:[^\n]*\S[^\n]*\r?\n)*\r?\n([\s\S]*?)\r?\n-----BEGIN PGP SIGNATURE-----/.exec(text);
  if (!m) return text;
  return m[1]!
    .split("\n")
    .map((l) => (l.startsWith("- ") ? l.slice(2) : l))
    .join("\n");
}

export function pullUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "not a URL";
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return "only http:// and https:// URLs can be pulled";
  if (basename(decodeURIComponent(u.pathname)) === "") return "the URL names no file";
  return undefined;
}

async function verifyDownload(ctx: TransferContext, url: string, file: string, mode: VerifyMode, tmpSibling: (base: string) => string): Promise<void> {
  if (mode === "no") return;
  const u = new URL(url);
  const fileName = basename(decodeURIComponent(u.pathname));
  const dirUrl = new URL(".", u).toString();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const fetchTo = async (what: string, path: string): Promise<boolean> => {
    const data = await fetchText(what, CHECKSUM_MAX_BYTES, ctx.signal);
    if (data === undefined) return false;
    await Bun.write(path, data);
    return true;
  };
  let expected: string | undefined;
  let source = "";
  if (mode === "checksum") {
    const per = await fetchText(`${url}.sha256`, CHECKSUM_MAX_BYTES, ctx.signal);
    if (per !== undefined) {
      const body = clearsignedBody(text(per)).trim();
      expected = /^([0-9a-fA-F]{64})\b/.exec(body)?.[1]?.toLowerCase() ?? checksumFor(body, fileName);
      source = `${url}.sha256`;
    } else {
      const sums = await fetchText(`${dirUrl}SHA256SUMS`, CHECKSUM_MAX_BYTES, ctx.signal);
      if (sums === undefined)
        throw new MachinaError(
          "E_NOT_FOUND",
          `no checksum for ${url}: neither ${url}.sha256 nor ${dirUrl}SHA256SUMS exists`,
          {},
          "pull with --verify=no to skip verification",
        );
      expected = checksumFor(text(sums), fileName);
      source = `${dirUrl}SHA256SUMS`;
    }
  } else {
    const keyring = importKeyring(ctx.host, ctx.env);
    const sums = tmpSibling("SHA256SUMS");
    const sig = tmpSibling("SHA256SUMS.gpg");
    if (await fetchTo(`${dirUrl}SHA256SUMS`, sums)) {
      if (!(await fetchTo(`${dirUrl}SHA256SUMS.gpg`, sig)))
        throw new MachinaError(
          "E_NOT_FOUND",
          `${dirUrl}SHA256SUMS.gpg does not exist: the checksums cannot be verified`,
          {},
          "pull with --verify=checksum to check only the checksum",
        );
      const v = gpgVerify(keyring, sig, sums);
      if (!v.ok) throw new MachinaError("E_INVALID", `signature check of ${dirUrl}SHA256SUMS failed: ${v.message.split("\n").slice(-2).join("; ")}`);
      expected = checksumFor(await Bun.file(sums).text(), fileName);
      source = `${dirUrl}SHA256SUMS (signed)`;
    } else {
      const inline = tmpSibling("sha256");
      if (!(await fetchTo(`${url}.sha256`, inline)))
        throw new MachinaError(
          "E_NOT_FOUND",
          `no signed checksum for ${url}: neither ${dirUrl}SHA256SUMS nor ${url}.sha256 exists`,
          {},
          "pull with --verify=no to skip verification",
        );
      const v = gpgVerify(keyring, inline, undefined);
      if (!v.ok) throw new MachinaError("E_INVALID", `signature check of ${url}.sha256 failed: ${v.message.split("\n").slice(-2).join("; ")}`);
      const body = clearsignedBody(await Bun.file(inline).text()).trim();
      expected = /^([0-9a-fA-F]{64})\b/.exec(body)?.[1]?.toLowerCase();
      source = `${url}.sha256 (signed)`;
    }
  }
  if (expected === undefined) throw new MachinaError("E_INVALID", `${source} has no checksum for ${fileName}`);
  const actual = await sha256File(file);
  if (actual !== expected) throw new MachinaError("E_INVALID", `checksum mismatch for ${fileName}: expected ${expected} (${source}), got ${actual}`);
  ctx.log(`SHA256 checksum of ${fileName} is valid (${source}).`);
}

/** The image a pull makes: NAME, else the URL's file name without its image suffixes. Checks the URL. */
export function pullImageName(kind: "tar" | "raw", url: string, name: string | undefined): string {
  const problem = pullUrlProblem(url);
  if (problem !== undefined) throw new MachinaError("E_INVALID", `invalid URL ${JSON.stringify(url)}: ${problem}`);
  return name ?? stripImageSuffixes(basename(decodeURIComponent(new URL(url).pathname)), kind);
}

export async function pullImage(ctx: TransferContext, kind: "tar" | "raw", url: string, name: string | undefined, opts: PullOptions): Promise<string> {
  const image = pullImageName(kind, url, name);
  await Reverter.run(async (r) => {
    const { temp, final, replace } = prepare(ctx, image, kind === "raw" ? "raw" : "dir", opts, r);
    const downloaded = temp.sibling(`${entryName(image, kind === "raw" ? "raw" : "directory")}.download`);
    ctx.progress.start(`Downloading ${url}`, undefined);
    let started = false;
    try {
      const pullMax = machinaEnv(ctx.env, "MACHINA_PULL_MAX_BYTES") ?? DEFAULT_PULL_MAX_BYTES;
      await download({
        url,
        output: downloaded,
        maxBytes: pullMax,
        signal: ctx.signal,
        tooLarge: (total) =>
          new MachinaError(
            "E_INVALID",
            total !== undefined
              ? `${url}: ${total} bytes, more than the limit of ${pullMax} (MACHINA_PULL_MAX_BYTES)`
              : `${url}: more than the limit of ${pullMax} bytes (MACHINA_PULL_MAX_BYTES)`,
          ),
        onProgress: (done, total) => {
          if (!started && total !== undefined) {
            ctx.progress.start(`Downloading ${url}`, total);
            started = true;
          }
          ctx.progress.update(done);
        },
      });
    } finally {
      ctx.progress.stop();
    }
    await verifyDownload(ctx, url, downloaded, opts.verify, (b) => temp.sibling(`${image}.${b}`));
    if (kind === "tar") await fillDirFromTar(ctx, temp, downloaded, url);
    else await fillRaw(ctx, temp, downloaded, url);
    ctx.host.removeTree(downloaded);
    commit(ctx, temp, final, replace, opts, kind === "raw" ? "raw" : "dir", { how: kind === "raw" ? "pull-raw" : "pull-tar", source: url });
  });
  return image;
}

export type { StreamProgress };
