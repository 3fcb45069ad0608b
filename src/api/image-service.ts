/**
 * ImageService: machinactl's image verbs (list-images, image-status, show-image, clone, rename,
 * read-only, remove, set-limit, clean) as data. Two implementations with identical results: the
 * core in this process (LocalImageService, a thin adapter over src/image/) and the typed client
 * of machinad's API (src/client/client.ts). Results are the JSON that `machinactl --json` prints;
 * errors are MachinaErrors with the core's codes on both sides.
 */
import type { Host } from "../host/host.ts";
import { parseOsRelease } from "../host/os-release.ts";
import { imageProgram } from "../host/facts.ts";
import { readFileInRoot } from "../host/resolve-in-root.ts";
import { architectureOfElf, architectureOfPlatform } from "../settings/architectures.ts";
import { btrfsQgroup, cleanPool, cloneImage, removeImage, renameImage, setImageLimit, setImageReadOnly, withQgroup, type PoolContext } from "../image/ops.ts";
import { readOrigin } from "../image/origin.ts";
import { discoverImages, getImage, poolRoots, type Image } from "../image/pool.ts";
import { cleanBlobCache, ociCacheDir } from "../oci/blob-cache.ts";
import type { Paths } from "../paths.ts";
import type * as S from "./schemas.ts";
import { SETTINGS_TEXT_CAP } from "./schemas.ts";
import type { LongOperationOptions } from "./service.ts";
import { exportImage, importRaw, importTar, pullImage, pullImageName, type Progress, transferContext } from "../image/transfer.ts";
import type { Compression } from "../image/compression.ts";
import { stateTemp, streamAndUnlink, writeStreamToFile } from "../host/stream-file.ts";
import { MAX_UPLOAD_BYTES } from "./routes.ts";
import { parsePlatform } from "../oci/platform.ts";
import { exportOci, importOci, pullOci } from "../oci/transfer.ts";
import {
  cancelTransfer,
  listTransfers,
  registerTransfer,
  type TransferRecord,
  transferJson,
  unregisterTransfer,
  updateTransfer,
} from "../image/transfer-registry.ts";
import { defaultImageName, parseImageReference } from "../oci/reference.ts";
import { MachinaError } from "../errors.ts";
import { bootstrap, planBootstrap } from "../image/bootstrap.ts";

/**
 * What a pull reads and the image it makes, as its transfer record names them (machinad's job
 * is named after the image too). A bad URL or reference throws here (E_INVALID).
 */
export function pullTransfer(request: S.PullSpec): Pick<TransferRecord, "type" | "remote" | "local"> {
  return request.kind === "oci"
    ? { type: "pull-oci", remote: request.ref, local: request.name ?? defaultImageName(parseImageReference(request.ref)) }
    : { type: `pull-${request.kind}`, remote: request.url, local: pullImageName(request.kind, request.url, request.name) };
}

export interface ImageService {
  /** list-images (`all`: hidden images too). */
  listImages(options?: { all?: boolean }): Promise<S.ImageSummary[]>;
  /** image-status NAME. */
  imageStatus(name: string): Promise<S.ImageStatus>;
  /** show-image NAME. */
  showImage(name: string): Promise<S.ImageInfo>;
  /** The image's .nspawn file and its text. */
  settings(name: string): Promise<S.ImageSettings>;
  /** show-image without NAME: the pool. */
  pool(): Promise<S.PoolInfo>;
  clone(from: string, to: string, options?: { readOnly?: boolean }): Promise<S.CloneResult>;
  rename(from: string, to: string): Promise<S.RenameResult>;
  setReadOnly(name: string, readOnly: boolean): Promise<S.ReadOnlyResult>;
  remove(name: string): Promise<S.RemoveResult>;
  /** name undefined: the pool; limit undefined: none. */
  setLimit(name: string | undefined, limit: number | undefined): Promise<S.LimitResult>;
  clean(options?: { all?: boolean }): Promise<S.CleanResult>;
  /** machinactl's transfers (list-transfers). */
  transfers(): Promise<S.Transfer[]>;
  /** cancel-transfer: E_NOT_FOUND when there is no such transfer. `cancelJob`: machinad's, for the transfers it runs as jobs. */
  cancelTransfer(id: number, cancelJob?: (job: string) => boolean): Promise<void>;
  /** import-tar/-raw/-oci of an upload: `data` becomes image `name`. */
  importArchive(
    name: string,
    kind: "tar" | "raw" | "oci",
    data: ReadableStream<Uint8Array>,
    options?: { force?: boolean; readOnly?: boolean },
  ): Promise<S.PullResult>;
  /** export-tar/-raw/-oci as a stream. */
  exportArchive(name: string, kind: "tar" | "raw" | "oci", compression?: Compression): Promise<{ stream: ReadableStream<Uint8Array>; size: number }>;
  /** bootstrap: what it would refuse at once (an unknown distribution, a bad name, no build tool), so an API can answer before it queues a job. */
  checkBootstrap?(request: S.BootstrapSpec): void;
  /** bootstrap: the build tool's lines as progress messages; aborting cancels it and leaves nothing. */
  bootstrap(request: S.BootstrapSpec, options?: LongOperationOptions): Promise<S.PullResult>;
  /** pull-tar / pull-raw: progress (bytes done and total) as it downloads; aborting cancels it and leaves nothing. */
  pull(request: S.PullSpec, options?: LongOperationOptions): Promise<S.PullResult>;
}

const usec = (ms: number): number | null => (ms > 0 ? Math.round(ms * 1000) : null);

/** The JSON form of an image (machined's property names, in lower camel case). */
export function imageInfo(image: Image): S.ImageInfo {
  return {
    name: image.name,
    type: image.type,
    path: image.path,
    readOnly: image.readOnly,
    hidden: image.hidden,
    creationTimestamp: usec(image.crtimeMs),
    modificationTimestamp: usec(image.mtimeMs),
    usage: image.usage ?? null,
    limit: image.limit ?? null,
    settingsFile: image.settingsFile ?? null,
  };
}

/** PRETTY_NAME (or NAME) of a directory image's os-release. */
export function osPrettyName(host: Host, image: Image): string | undefined {
  if (image.type === "raw") return undefined;
  // resolved inside the image: /etc/os-release is often an absolute symlink to /usr/lib/os-release
  const text = readFileInRoot(host, image.target, "/etc/os-release") ?? readFileInRoot(host, image.target, "/usr/lib/os-release");
  if (text === undefined) return undefined;
  const os = parseOsRelease(text);
  return os["PRETTY_NAME"] ?? os["NAME"];
}

/** The image's architecture: its programs' ELF headers (a directory), else the platform it was pulled for. */
export function imageArchitectureName(host: Host, image: Image, origin: ReturnType<typeof readOrigin>): string | undefined {
  if (image.type !== "raw") {
    const program = imageProgram(host, image.target);
    return program === undefined ? undefined : architectureOfElf(program.header)?.name;
  }
  if (origin === undefined || origin === "unknown" || origin.platform === undefined) return undefined;
  const [, arch, variant] = origin.platform.split("/");
  return arch === undefined ? undefined : architectureOfPlatform(arch, variant)?.name;
}

export function imageStatusOf(host: Host, image: Image): S.ImageStatus {
  const origin = readOrigin(host, image.target);
  return {
    ...imageInfo(image),
    os: osPrettyName(host, image) ?? null,
    architecture: imageArchitectureName(host, image, origin) ?? null,
    origin: origin ?? null,
  };
}

export class LocalImageService implements ImageService {
  readonly ctx: PoolContext;

  constructor(
    readonly host: Host,
    readonly paths: Paths,
    readonly env: Readonly<Record<string, string | undefined>> = host.env(),
  ) {
    this.ctx = { host, pool: paths.pool, stateDir: paths.stateDir };
  }

  private image(name: string): Image {
    return withQgroup(this.host, getImage(this.host, this.paths.pool, name));
  }

  async listImages(options: { all?: boolean } = {}): Promise<S.ImageSummary[]> {
    return discoverImages(this.host, this.paths.pool, { hidden: options.all ?? false })
      .map((i) => withQgroup(this.host, i))
      .map((i) => ({ name: i.name, type: i.type, ro: i.readOnly, usage: i.usage ?? null, created: usec(i.crtimeMs), modified: usec(i.mtimeMs) }));
  }

  async imageStatus(name: string): Promise<S.ImageStatus> {
    return imageStatusOf(this.host, this.image(name));
  }

  async showImage(name: string): Promise<S.ImageInfo> {
    return imageInfo(this.image(name));
  }

  async settings(name: string): Promise<S.ImageSettings> {
    const file = this.image(name).settingsFile;
    if (file === undefined) return { file: null, text: null };
    const text = this.host.readFile(file);
    return { file, text: text === undefined ? null : Buffer.from(text).subarray(0, SETTINGS_TEXT_CAP).toString() };
  }

  async pool(): Promise<S.PoolInfo> {
    const root = poolRoots(this.paths.pool).writable;
    const q = btrfsQgroup(this.host, root);
    return { poolPath: root, poolUsage: q?.referenced ?? null, poolLimit: q?.maxReferenced ?? null, pools: [...this.paths.pool] };
  }

  async clone(from: string, to: string, options: { readOnly?: boolean } = {}): Promise<S.CloneResult> {
    const r = cloneImage(this.ctx, from, to, options.readOnly ?? false);
    return { name: r.image.name, from, type: r.image.type, method: r.method, readOnly: r.image.readOnly, path: r.image.path };
  }

  async rename(from: string, to: string): Promise<S.RenameResult> {
    const image = renameImage(this.ctx, from, to);
    return { name: image.name, from, path: image.path };
  }

  async setReadOnly(name: string, readOnly: boolean): Promise<S.ReadOnlyResult> {
    const image = setImageReadOnly(this.ctx, name, readOnly);
    return { name: image.name, readOnly: image.readOnly };
  }

  async remove(name: string): Promise<S.RemoveResult> {
    removeImage(this.ctx, name);
    return { removed: [name] };
  }

  async setLimit(name: string | undefined, limit: number | undefined): Promise<S.LimitResult> {
    setImageLimit(this.ctx, name, limit);
    return { name: name ?? null, limit: limit ?? null };
  }

  async clean(options: { all?: boolean } = {}): Promise<S.CleanResult> {
    const r = cleanPool(this.ctx, options.all ?? false);
    // pull-oci's layer cache is what hidden images are to pull-tar: a cache, emptied by clean.
    const blobs = cleanBlobCache(this.host, ociCacheDir(this.env));
    return {
      removed: r.removed.map((i) => ({ name: i.name, freed: i.usage ?? null })),
      skipped: r.skipped.map((s) => ({ name: s.image.name, reason: s.reason })),
      temporaries: r.temporaries,
      ociCache: { removed: blobs.removed, freed: blobs.bytes },
    };
  }

  async importArchive(
    name: string,
    kind: "tar" | "raw" | "oci",
    data: ReadableStream<Uint8Array>,
    options: { force?: boolean; readOnly?: boolean } = {},
  ): Promise<S.PullResult> {
    const temp = stateTemp(this.host, this.paths.stateDir, "archive", kind === "raw" ? ".raw" : ".tar");
    try {
      await writeStreamToFile(data, temp, MAX_UPLOAD_BYTES);
      const opts = { force: options.force ?? false, readOnly: options.readOnly ?? false, sourceLabel: "upload" };
      const ctx = transferContext(this.host, this.paths, this.env);
      const image =
        kind === "oci"
          ? (await importOci(ctx, temp, name, opts)).image
          : kind === "raw"
            ? await importRaw(ctx, temp, name, opts)
            : await importTar(ctx, temp, name, opts);
      return { image, from: "upload" };
    } finally {
      this.host.removeTree(temp);
    }
  }

  async exportArchive(name: string, kind: "tar" | "raw" | "oci", compression?: Compression): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
    this.image(name); // an unknown image: 404 before anything is made
    const temp = stateTemp(this.host, this.paths.stateDir, "archive", kind === "oci" ? ".tar" : "");
    try {
      const ctx = transferContext(this.host, this.paths, this.env);
      if (kind === "oci") await exportOci(ctx, name, temp, { force: false });
      else await exportImage(ctx, kind, name, temp, { format: compression ?? "uncompressed", force: false });
      return streamAndUnlink(temp);
    } catch (e) {
      this.host.removeTree(temp);
      throw e;
    }
  }

  async transfers(): Promise<S.Transfer[]> {
    return listTransfers(this.host, this.paths.stateDir).map(transferJson);
  }

  async cancelTransfer(id: number, cancelJob?: (job: string) => boolean): Promise<void> {
    if (!(await cancelTransfer(this.host, this.paths.stateDir, id, cancelJob)))
      throw new MachinaError("E_NOT_FOUND", `no transfer with id ${id}`, { value: String(id) });
  }

  /** `work` as machinad's job `options.job` (when given): recorded as a transfer while it runs (list-transfers, cancel-transfer), its progress as the record's. */
  private async asTransfer<T>(
    options: LongOperationOptions,
    what: Pick<TransferRecord, "type" | "remote" | "local">,
    work: (progress: (fraction: number | null) => void) => Promise<T>,
  ): Promise<T> {
    if (options.job === undefined) return work(() => undefined);
    const rec = registerTransfer(this.host, this.paths.stateDir, { ...what, job: options.job });
    try {
      return await work((fraction) => updateTransfer(this.host, this.paths.stateDir, rec, fraction));
    } finally {
      unregisterTransfer(this.host, this.paths.stateDir, rec.id);
    }
  }

  private bootstrapRequest(request: S.BootstrapSpec) {
    return {
      name: request.name,
      distro: request.distro,
      release: request.release,
      mirror: request.mirror,
      arch: request.arch,
      rootPassword: request.rootPassword,
    };
  }

  checkBootstrap(request: S.BootstrapSpec): void {
    planBootstrap(this.host, this.bootstrapRequest(request));
  }

  async bootstrap(request: S.BootstrapSpec, options: LongOperationOptions = {}): Promise<S.PullResult> {
    const emit = options.onProgress ?? (() => undefined);
    // the record's REMOTE as machinactl bootstrap writes it: DISTRO [RELEASE] [MIRROR]
    const remote = [request.distro, request.release, request.mirror].filter((x) => x !== undefined).join(" ");
    const plan = await this.asTransfer(options, { type: "bootstrap", remote, local: request.name }, () =>
      bootstrap(
        {
          host: this.host,
          paths: this.paths,
          force: request.force ?? false,
          log: (line) => emit({ time: Date.now(), stage: "bootstrap", message: line }),
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        },
        this.bootstrapRequest(request),
      ),
    );
    return { image: request.name, from: `${plan.distro} ${plan.release}` };
  }

  async pull(request: S.PullSpec, options: LongOperationOptions = {}): Promise<S.PullResult> {
    return this.asTransfer(options, pullTransfer(request), (fraction) => this.pullNow(request, options, fraction));
  }

  private async pullNow(request: S.PullSpec, options: LongOperationOptions, fraction: (f: number | null) => void): Promise<S.PullResult> {
    const emit = options.onProgress ?? (() => undefined);
    let what = "";
    let total: number | undefined;
    let last = 0;
    const progress: Progress = {
      start: (w, t) => {
        what = w;
        total = t;
        emit({ time: Date.now(), stage: "download", message: w, done: 0, ...(t !== undefined ? { total: t } : {}) });
      },
      update: (done) => {
        // at most every 100 ms, and the last one
        const now = Date.now();
        if (now - last < 100 && done !== total) return;
        last = now;
        emit({ time: now, stage: "download", message: what, done, ...(total !== undefined ? { total } : {}) });
        fraction(total !== undefined && total > 0 ? Math.min(done / total, 1) : null);
      },
      stop: () => undefined,
    };
    const ctx = transferContext(this.host, this.paths, this.env, {
      progress,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      log: (line) => emit({ time: Date.now(), message: line }),
    });
    const base = { force: request.force ?? false, readOnly: request.readOnly ?? false };
    if (request.kind === "oci") {
      const r = await pullOci(ctx, request.ref, request.name, {
        ...base,
        ...(request.platform !== undefined ? { platform: parsePlatform(request.platform) } : {}),
        tlsVerify: request.tlsVerify ?? true,
        cacheDir: ociCacheDir(this.env),
      });
      return { image: r.image, from: request.ref };
    }
    const image = await pullImage(ctx, request.kind, request.url, request.name, { ...base, verify: request.verify ?? "signature" });
    return { image, from: request.url };
  }
}
