/**
 * import-oci and export-oci: an OCI image layout (directory, or its tar: oci-archive) or a
 * `docker save` archive into the pool, and a pool image out as a one-layer OCI layout.
 *
 * Import: the archive (when a file) is extracted with import-tar's confinement into a sibling
 * of the pool temporary; the image is read and every blob verified (layout.ts); the layers
 * are applied into the temporary (layers.ts); the image's config becomes `NAME.nspawn`
 * (image-config.ts) and its origin (reference, digest, platform) is recorded on the image
 * (origin.ts). The image appears by rename when complete; an error or cancel leaves nothing.
 */
import { basename, dirname, resolve } from "node:path";
import { MachinaError } from "../errors.ts";
import { exportTar, extractTar, sha256File } from "../host/transfer-io.ts";
import { ArchiveScanner, aboutArchive, scanLimitsFromEnv } from "../image/archive-scan.ts";
import { stripImageSuffixes } from "../image/compression.ts";
import { readOrigin } from "../image/origin.ts";
import { beginTemporary, findImage, getImage, lockImage, Reverter, SETTINGS_SUFFIX } from "../image/pool.ts";
import { commit, prepare, type ImportOptions, type TransferContext } from "../image/transfer.ts";
import { parseNspawnFile } from "../settings/nspawn-file.ts";
import { settingsFromConfig } from "./image-config.ts";
import { applyLayers } from "./layers.ts";
import { BlobCache } from "./blob-cache.ts";
import { layoutDocuments, readImageSource, type ImageSource } from "./layout.ts";
import { formatPlatform, hostPlatform } from "./platform.ts";
import { defaultImageName, formatImageReference, parseImageReference } from "./reference.ts";
import { pullOciImage, resolveOciManifest, type RegistryOptions } from "./registry.ts";
import type { ImageConfig, ImageRuntimeConfig, Platform } from "./manifest.ts";

export interface OciImportOptions extends ImportOptions {
  /** The platform to pick from an index; default: this machine's. */
  platform?: Platform;
}

export interface OciImported {
  image: string;
  digest: string;
  platform: string;
  reference: string | undefined;
  /** pull-oci: the image was already in the pool at the digest the registry names; nothing changed */
  upToDate?: boolean;
}

/** The image name for PATH: its base name without .tar/.oci/compression suffixes. */
export function ociNameFromPath(path: string): string {
  return stripImageSuffixes(basename(path), "tar").replace(/\.(oci|docker)$/, "");
}

/** Where a loader may put what it needs (an unpacked archive, downloads): removed with the temporary. */
export interface LoadContext {
  /** A fresh path next to the pool temporary (nothing there yet), removed on success and on failure. */
  sibling(base: string): string;
  /** An empty directory for the confined tar's root (extractTar's `scratch`). */
  scratch: string;
  /** The temporary's guard lock: children that write next to it inherit it. */
  lockFd: number;
}

/**
 * Make image NAME of an OCI image that `load` finds (reads a layout, or pulls from a registry):
 * under the pool temporary, layers applied, NAME.nspawn from its config, origin recorded, then
 * renamed into place; an error or cancel leaves nothing. `how`/`source`: the origin record.
 */
export async function installOciImage(
  ctx: TransferContext,
  image: string,
  opts: ImportOptions,
  origin: { how: "import-oci" | "pull-oci"; source: string },
  load: (l: LoadContext) => Promise<ImageSource>,
): Promise<OciImported> {
  let result: OciImported | undefined;
  await Reverter.run(async (r) => {
    const { temp, final, replace } = prepare(ctx, image, "dir", opts, r);
    const scratch = temp.sibling("extract-root");
    ctx.host.mkdirp(scratch, 0o700);
    const loaded: string[] = [];
    const source = await load({
      scratch,
      lockFd: temp.lock.fd,
      sibling: (b) => {
        const p = temp.sibling(`${image}.${b}`);
        loaded.push(p);
        return p;
      },
    });
    ctx.host.mkdirp(temp.path, 0o755);
    try {
      await applyLayers(source.layers, {
        host: ctx.host,
        target: temp.path,
        scratch,
        limits: scanLimitsFromEnv(ctx.env),
        inheritFds: [temp.lock.fd],
        signal: ctx.signal,
        onLayer: (i, l) => ctx.progress.start(`Applying layer ${i + 1}/${source.layers.length}`, ctx.host.stat(l.file, false)?.size),
        onProgress: (n) => ctx.progress.update(n),
      });
    } catch (e) {
      throw aboutArchive(e, origin.source);
    } finally {
      ctx.progress.stop();
    }
    const settings = settingsFromConfig(source.config, [
      `OCI image ${source.reference ?? origin.source} (${source.digest}, ${source.platform}), from ${origin.source}`,
    ]);
    for (const line of settings.skipped) ctx.log(`Note: ${line}.`);
    const settingsTemp = temp.sibling(`${image}${SETTINGS_SUFFIX}`);
    ctx.host.writeFile(settingsTemp, settings.text, 0o644);
    for (const p of loaded) ctx.host.removeTree(p);
    ctx.host.removeTree(scratch);
    commit(ctx, temp, final, replace, opts, "dir", {
      ...origin,
      digest: source.digest,
      platform: source.platform,
      ...(source.reference !== undefined ? { reference: source.reference } : {}),
    });
    const settingsFinal = `${dirname(final)}/${image}${SETTINGS_SUFFIX}`;
    if (ctx.host.lstat(settingsFinal) !== undefined && !opts.force) {
      ctx.log(`Kept the existing ${settingsFinal} (use --force to replace it with the image's settings).`);
      ctx.host.removeTree(settingsTemp);
    } else {
      ctx.host.rename(settingsTemp, settingsFinal, false);
    }
    result = { image, digest: source.digest, platform: source.platform, reference: source.reference };
  });
  return result!;
}

/**
 * PATH or PATH:REF (skopeo's `oci:PATH:REF`): a path that exists is taken whole; otherwise the
 * text after the first colon that ends an existing path names the image of a layout (ref name) or a docker save archive (tag)
 * that holds several.
 */
export function splitSourceRef(ctx: Pick<TransferContext, "host">, path: string): { file: string; ref?: string } {
  if (ctx.host.lstat(resolve(path)) !== undefined) return { file: path };
  for (let colon = path.indexOf(":"); colon > 0 && colon < path.length - 1; colon = path.indexOf(":", colon + 1)) {
    const file = path.slice(0, colon);
    if (ctx.host.lstat(resolve(file)) !== undefined) return { file, ref: path.slice(colon + 1) };
  }
  return { file: path };
}

export async function importOci(ctx: TransferContext, path: string, name: string | undefined, opts: OciImportOptions): Promise<OciImported> {
  const { file, ref } = splitSourceRef(ctx, path);
  const src = resolve(file);
  const kind = ctx.host.stat(src, true)?.kind;
  if (kind !== "dir" && kind !== "file") throw new MachinaError("E_NOT_FOUND", `"${path}" is neither an OCI layout directory nor an archive file`, { path });
  const source = opts.sourceLabel ?? (ref === undefined ? src : `${src}:${ref}`);
  return installOciImage(ctx, name ?? ociNameFromPath(src), opts, { how: "import-oci", source }, async (l) => {
    let dir = src;
    if (kind === "file") {
      dir = l.sibling("oci-source");
      ctx.host.mkdirp(dir, 0o700);
      ctx.progress.start(`Unpacking ${basename(path)}`, ctx.host.stat(src, true)?.size);
      try {
        await extractTar({
          source: src,
          target: dir,
          scratch: l.scratch,
          inspector: new ArchiveScanner(scanLimitsFromEnv(ctx.env)),
          inheritFds: [l.lockFd],
          signal: ctx.signal,
          onProgress: (n) => ctx.progress.update(n),
        });
      } catch (e) {
        throw aboutArchive(e, path);
      } finally {
        ctx.progress.stop();
      }
    }
    ctx.progress.start(`Verifying ${basename(path)}`, undefined);
    try {
      return await readImageSource(ctx.host, dir, file, opts.platform ?? hostPlatform(), ctx.log, ref);
    } finally {
      ctx.progress.stop();
    }
  });
}

export interface OciExportOptions {
  force: boolean;
}

/** The image's own settings (its .nspawn file, read as untrusted) as an image config's execution parameters. */
function runtimeConfig(ctx: TransferContext, settingsFile: string | undefined): ImageRuntimeConfig {
  if (settingsFile === undefined) return {};
  const text = ctx.host.readFile(settingsFile);
  if (text === undefined) return {};
  try {
    const v = parseNspawnFile(text, settingsFile, false).values;
    return {
      ...(v.command !== undefined && v.command.length > 0 ? { Cmd: v.command } : {}),
      ...(v.environment !== undefined && v.environment.length > 0 ? { Env: v.environment } : {}),
      ...(v.chdir !== undefined ? { WorkingDir: v.chdir } : {}),
      ...(v.user !== undefined ? { User: v.user } : {}),
    };
  } catch {
    ctx.log(`Note: ${settingsFile} does not parse: the exported image has no command or environment.`);
    return {};
  }
}

/** export-oci NAME PATH: a one-layer OCI layout directory, or its tar when PATH ends in .tar. */
export async function exportOci(ctx: TransferContext, name: string, path: string, opts: OciExportOptions): Promise<void> {
  const image = getImage(ctx.host, ctx.paths.pool, name);
  if (image.type === "raw") throw new MachinaError("E_UNSUPPORTED", `image "${name}" is a raw disk image: export-oci exports directory images`);
  const out = resolve(path);
  const archive = out.endsWith(".tar");
  if (ctx.host.lstat(out) !== undefined && !opts.force) throw new MachinaError("E_BUSY", `"${path}" already exists`, { path }, "use --force to replace it");
  if (ctx.host.stat(dirname(out), true)?.kind !== "dir")
    throw new MachinaError("E_NOT_FOUND", `cannot write "${path}": the directory "${dirname(out)}" does not exist`, { path });
  const lock = lockImage(ctx.host, ctx.paths.stateDir, name, "shared");
  try {
    await Reverter.run(async (r) => {
      const temp = beginTemporary(ctx.host, ctx.paths.stateDir, dirname(out), basename(out));
      r.add("discard temporary", () => temp.discard());
      const layout = archive ? temp.sibling(`${basename(out)}.layout`) : temp.path;
      ctx.host.mkdirp(`${layout}/blobs/sha256`, 0o755);
      const layerTemp = `${layout}/blobs/sha256/.layer`;
      ctx.progress.start(`Exporting ${name}`, undefined);
      try {
        await exportTar({
          source: image.target,
          output: layerTemp,
          compression: "uncompressed",
          signal: ctx.signal,
          onProgress: (n) => ctx.progress.update(n),
        });
      } finally {
        ctx.progress.stop();
      }
      const hex = await sha256File(layerTemp);
      const size = ctx.host.stat(layerTemp, false)!.size;
      ctx.host.rename(layerTemp, `${layout}/blobs/sha256/${hex}`, true);
      const platform = hostPlatform();
      const created = new Date().toISOString();
      const config: ImageConfig = {
        created,
        architecture: platform.architecture,
        os: platform.os,
        config: runtimeConfig(ctx, image.settingsFile),
        rootfs: { type: "layers", diff_ids: [`sha256:${hex}`] },
        history: [{ created, created_by: `machinactl export-oci ${name}` }],
      };
      for (const [rel, text] of layoutDocuments({ layer: { digest: `sha256:${hex}`, size }, config }, "latest"))
        ctx.host.writeFile(`${layout}/${rel}`, text, 0o644);
      if (archive) {
        const res = ctx.host.run([
          "tar",
          "-c",
          "-f",
          temp.path,
          "-C",
          layout,
          "--numeric-owner",
          "--owner=0",
          "--group=0",
          "oci-layout",
          "index.json",
          "blobs",
        ]);
        if (res.status !== 0) throw new MachinaError("E_SYSTEM", `tar failed writing "${path}": ${res.stderr.trim()}`, { path });
        ctx.host.removeTree(layout);
      }
      if (opts.force) ctx.host.removeTree(out);
      ctx.host.rename(temp.path, out, true);
      temp.release();
    });
  } finally {
    lock.release();
  }
}

export interface OciPullOptions extends OciImportOptions {
  /** The blob cache directory (layers already there are not downloaded again). */
  cacheDir: string;
  tlsVerify?: boolean;
  certDir?: string;
  authFile?: string;
}

/**
 * `machinactl pull-oci REF [NAME]`: the image from its registry (src/oci/registry.ts: every blob
 * checked against its digest while it streams, into the blob cache), then made an image of the
 * pool exactly as import-oci makes one (installOciImage).
 */
export async function pullOci(ctx: TransferContext, refText: string, name: string | undefined, opts: OciPullOptions): Promise<OciImported> {
  const ref = parseImageReference(refText);
  const shown = formatImageReference(ref);
  const image = name ?? defaultImageName(ref);
  const registry: RegistryOptions & { platform?: string } = {
    env: ctx.env,
    ...(opts.platform !== undefined ? { platform: formatPlatform(opts.platform) } : {}),
    ...(opts.tlsVerify !== undefined ? { tlsVerify: opts.tlsVerify } : {}),
    ...(opts.certDir !== undefined ? { certDir: opts.certDir } : {}),
    ...(opts.authFile !== undefined ? { authFile: opts.authFile } : {}),
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
  };
  if (!opts.force) {
    const current = await pulledAlready(ctx, image, shown, registry);
    if (current !== undefined) return current;
  }
  const cache = new BlobCache({ dir: opts.cacheDir, lock: (p) => ctx.host.lockFile(p, "exclusive") });
  return installOciImage(ctx, image, opts, { how: "pull-oci", source: shown }, async () => {
    ctx.progress.start(`Pulling ${shown}`, undefined);
    try {
      const pulled = await pullOciImage(ref, { ...registry, cache });
      return {
        format: "oci",
        digest: pulled.manifestDigest,
        config: pulled.config,
        platform: formatPlatform(pulled.platform),
        reference: shown,
        layers: pulled.layers.map((l) => ({ file: l.path, shown: l.digest, compression: l.compression })),
      };
    } finally {
      ctx.progress.stop();
    }
  });
}

/**
 * Image NAME already pulled from REF (its recorded origin): when the registry still names the same
 * manifest for the platform, the image is up to date and nothing is downloaded or changed (only
 * manifests are fetched). When the registry has another one, the image is not replaced without
 * --force. undefined: no such image, or one of another origin (then the pull goes on, and
 * prepare() refuses an existing name as for every import).
 */
async function pulledAlready(
  ctx: TransferContext,
  image: string,
  shown: string,
  registry: RegistryOptions & { platform?: string },
): Promise<OciImported | undefined> {
  const existing = findImage(ctx.host, ctx.paths.pool, image);
  if (existing === undefined) return undefined;
  const origin = readOrigin(ctx.host, existing.path);
  if (origin === undefined || origin === "unknown" || origin.how !== "pull-oci" || origin.source !== shown || origin.digest === undefined) return undefined;
  ctx.progress.start(`Checking ${shown}`, undefined);
  let resolved: Awaited<ReturnType<typeof resolveOciManifest>>;
  try {
    resolved = await resolveOciManifest(shown, registry);
  } finally {
    ctx.progress.stop();
  }
  if (resolved.digest !== origin.digest) {
    throw new MachinaError(
      "E_BUSY",
      `image "${image}" already exists, pulled from ${shown} at ${origin.digest}; the registry now has ${resolved.digest}`,
      { value: image },
      "use --force to replace it",
    );
  }
  return { image, digest: origin.digest, platform: origin.platform ?? "unknown", reference: shown, upToDate: true };
}
