/**
 * OCI image layouts (image-spec image-layout.md: `oci-layout`, `index.json`, `blobs/sha256/…`)
 * and `docker save` archives (`manifest.json`, a config and layer tars), read as one image:
 * its config and its layers, bottom first. A tar of either (oci-archive, docker-archive) is
 * extracted by the caller (with import-tar's confinement) and read as a directory.
 *
 * Nothing is used before it is verified: every blob's SHA-256 (and size) against its digest,
 * docker save's layers against the config's diff_ids (or the digest in their name). Files are
 * reached only through real directories (no symlink is followed) and must be regular files.
 * JSON documents go through the zod schemas of manifest.ts.
 *
 * Also writes the layout of an export (one layer + a config, OCI media types).
 */
import { z } from "zod";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { sha256File } from "../host/transfer-io.ts";
import { normalizeMemberName } from "../image/archive-scan.ts";
import type { Layer } from "./layers.ts";
import { formatPlatform, hostPlatform } from "./platform.ts";
import { formatImageReference, parseImageReference } from "./reference.ts";
import {
  imageConfigSchema,
  imageIndexSchema,
  INDEX_MEDIA_TYPES,
  layerCompression,
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPES,
  ociLayoutSchema,
  parseManifestOrIndex,
  zodLine,
  type Descriptor,
  type ImageConfig,
  type Platform,
} from "./manifest.ts";

/** JSON documents (index, manifests, configs) larger than this are refused. */
export const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
/** Nested indexes followed at most. */
const MAX_INDEX_DEPTH = 4;

export interface ImageSource {
  format: "oci" | "docker-archive";
  /** The manifest's digest (OCI), or the config's (docker save). */
  digest: string;
  config: ImageConfig;
  /** os/architecture[/variant] of the config. */
  platform: string;
  /** The ref name annotation (OCI) or first RepoTag (docker save), when there is one. */
  reference: string | undefined;
  layers: Layer[];
}

function matches(p: Platform, want: Platform): boolean {
  if (p.os !== want.os || p.architecture !== want.architecture) return false;
  if (want.variant !== undefined) return (p.variant ?? (p.architecture === "arm64" ? "v8" : undefined)) === want.variant;
  return true;
}

class Reader {
  constructor(
    private readonly host: Host,
    readonly root: string,
    readonly shown: string,
  ) {}

  fail(message: string, hint?: string): never {
    throw new MachinaError("E_INVALID", `"${this.shown}": ${message}`, { path: this.shown }, hint);
  }

  /** The absolute path of `rel` (relative, no `..`), reached through real directories only, a regular file. */
  file(rel: string, what: string): string {
    const parts = normalizeMemberName(rel);
    if (typeof parts === "string" || parts.length === 0)
      this.fail(`${what} ${JSON.stringify(rel)} is not a relative path inside it (${typeof parts === "string" ? parts : "empty"})`);
    let cur = this.root;
    for (const [i, p] of parts.entries()) {
      cur = `${cur}/${p}`;
      const kind = this.host.lstat(cur);
      if (kind === undefined) this.fail(`${what} ${JSON.stringify(rel)} is missing`);
      if (i < parts.length - 1 && kind !== "dir")
        this.fail(`${what} ${JSON.stringify(rel)}: ${JSON.stringify(parts.slice(0, i + 1).join("/"))} is a ${kind}, not a directory`);
      if (i === parts.length - 1 && kind !== "file") this.fail(`${what} ${JSON.stringify(rel)} is a ${kind}, not a regular file`);
    }
    return cur;
  }

  has(rel: string): boolean {
    return this.host.lstat(`${this.root}/${rel}`) !== undefined;
  }

  /** A small JSON file, parsed (not yet validated). */
  json(path: string, what: string): unknown {
    const size = this.host.stat(path, false)?.size ?? 0;
    if (size > MAX_DOCUMENT_BYTES) this.fail(`${what} is larger than ${MAX_DOCUMENT_BYTES} bytes`);
    const text = this.host.readFile(path) ?? "";
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      this.fail(`${what} is not JSON (${(e as Error).message})`);
    }
  }

  /** blobs/sha256/HEX of an OCI layout, verified against the descriptor (digest and size). */
  async blob(d: Pick<Descriptor, "digest" | "size">, what: string): Promise<string> {
    const hex = d.digest.slice("sha256:".length);
    const path = this.file(`blobs/sha256/${hex}`, `the blob of ${what}`);
    const size = this.host.stat(path, false)!.size;
    if (size !== d.size) this.fail(`the blob of ${what} (${d.digest}) has ${size} bytes, its descriptor says ${d.size}`);
    const actual = await sha256File(path);
    if (actual !== hex) this.fail(`the blob of ${what} does not match its digest: expected ${d.digest}, got sha256:${actual}`);
    return path;
  }

  parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
    const r = schema.safeParse(value);
    if (!r.success) this.fail(`${what}: ${zodLine(r.error)}`);
    return r.data;
  }
}

/**
 * Read the image at `dir` (an OCI layout, or an unpacked `docker save` archive). `ref`: the image to
 * take when it holds several (an OCI ref name annotation, or a docker save RepoTag).
 */
export async function readImageSource(host: Host, dir: string, shown: string, want: Platform, log: (line: string) => void, ref?: string): Promise<ImageSource> {
  const r = new Reader(host, dir, shown);
  if (r.has("oci-layout")) return readOciLayout(r, want, log, ref);
  if (r.has("manifest.json")) return readDockerArchive(r, log, ref);
  return r.fail("not an OCI image layout (no oci-layout file) nor a docker save archive (no manifest.json)");
}

const REF_NAME = "org.opencontainers.image.ref.name";

/** The names images go by in a list, for a message: `"a", "b"` (or "none"). */
const listNames = (names: ReadonlyArray<string | undefined>) => {
  const set = [...new Set(names.filter((n): n is string => n !== undefined))];
  return set.length === 0 ? "none" : set.map((n) => JSON.stringify(n)).join(", ");
};

async function readOciLayout(r: Reader, want: Platform, log: (line: string) => void, ref: string | undefined): Promise<ImageSource> {
  const layout = r.parse(ociLayoutSchema, r.json(r.file("oci-layout", "oci-layout"), "oci-layout"), "oci-layout");
  if (!layout.imageLayoutVersion.startsWith("1.")) r.fail(`image layout version ${JSON.stringify(layout.imageLayoutVersion)} is not supported (1.x is)`);
  const index = r.parse(imageIndexSchema, r.json(r.file("index.json", "index.json"), "index.json"), "index.json");

  // Walk the index (and nested ones) to the manifest for the wanted platform.
  let candidates: Descriptor[] = index.manifests;
  let reference: string | undefined;
  if (ref !== undefined) {
    candidates = index.manifests.filter((d) => d.annotations?.[REF_NAME] === ref);
    if (candidates.length === 0)
      r.fail(`no image named ${JSON.stringify(ref)} in index.json; its ref names: ${listNames(index.manifests.map((d) => d.annotations?.[REF_NAME]))}`);
  }
  for (let depth = 0; ; depth++) {
    const usable = candidates.filter((d) => INDEX_MEDIA_TYPES.includes(d.mediaType) || MANIFEST_MEDIA_TYPES.includes(d.mediaType));
    if (usable.length === 0) r.fail("the index lists no image manifest");
    const withPlatform = usable.filter((d) => d.platform !== undefined);
    let chosen: Descriptor | undefined;
    if (withPlatform.length > 0) {
      chosen = withPlatform.find((d) => matches(d.platform!, want)) ?? usable.find((d) => d.platform === undefined && INDEX_MEDIA_TYPES.includes(d.mediaType));
      if (chosen === undefined)
        r.fail(`no image for ${formatPlatform(want)}: it has ${[...new Set(withPlatform.map((d) => formatPlatform(d.platform!)))].join(", ")}`);
    } else {
      const names = new Set(usable.map((d) => d.digest));
      if (names.size > 1)
        r.fail(
          depth === 0
            ? `index.json lists ${names.size} images (ref names: ${listNames(usable.map((d) => d.annotations?.[REF_NAME]))}); name one as PATH:REF`
            : `the index lists ${names.size} different images and says no platform for them`,
        );
      chosen = usable[0]!;
    }
    reference ??= chosen.annotations?.["org.opencontainers.image.ref.name"];
    const doc = r.json(await r.blob(chosen, `manifest ${chosen.digest}`), `manifest ${chosen.digest}`);
    const parsed = parseManifestOrIndex(doc, chosen.mediaType);
    if (!parsed.ok) r.fail(`manifest ${chosen.digest}: ${parsed.error}`);
    if (parsed.value.kind === "index") {
      if (depth >= MAX_INDEX_DEPTH) r.fail(`indexes nested deeper than ${MAX_INDEX_DEPTH}`);
      candidates = parsed.value.index.manifests;
      continue;
    }
    const manifest = parsed.value.manifest;
    const config = r.parse(imageConfigSchema, r.json(await r.blob(manifest.config, "the image config"), "the image config"), "the image config");
    if (manifest.layers.length !== config.rootfs.diff_ids.length)
      r.fail(`the manifest has ${manifest.layers.length} layers, its config ${config.rootfs.diff_ids.length} diff_ids`);
    const layers: Layer[] = [];
    for (const [i, d] of manifest.layers.entries()) {
      const compression = layerCompression(d.mediaType);
      if (compression === undefined) r.fail(`layer ${i + 1} (${d.digest}): media type ${JSON.stringify(d.mediaType)} is not a layer type machina applies`);
      layers.push({ file: await r.blob(d, `layer ${i + 1}`), shown: d.digest, compression });
    }
    const platform = formatPlatform(config);
    if (config.os !== want.os || config.architecture !== want.architecture)
      log(`Note: the image is for ${platform}, this machine runs ${formatPlatform(want)}.`);
    return { format: "oci", digest: chosen.digest, config, platform, reference, layers };
  }
}

const dockerManifestSchema = z.array(
  z.object({
    Config: z.string(),
    RepoTags: z.array(z.string()).nullish(),
    Layers: z.array(z.string()),
  }),
);

/** A RepoTag of docker save names REF: the same text, or the same after normalization (busybox = docker.io/library/busybox:latest). */
function tagNames(tag: string, ref: string): boolean {
  if (tag === ref) return true;
  try {
    return formatImageReference(parseImageReference(tag)) === formatImageReference(parseImageReference(ref));
  } catch {
    return false;
  }
}

async function readDockerArchive(r: Reader, log: (line: string) => void, ref: string | undefined): Promise<ImageSource> {
  const all = r.parse(dockerManifestSchema, r.json(r.file("manifest.json", "manifest.json"), "manifest.json"), "manifest.json");
  const tags = () => listNames(all.flatMap((e) => e.RepoTags ?? []));
  const entries = ref === undefined ? all : all.filter((e) => (e.RepoTags ?? []).some((t) => tagNames(t, ref)));
  if (ref !== undefined && entries.length === 0) r.fail(`no image tagged ${JSON.stringify(ref)} in manifest.json; its tags: ${tags()}`);
  if (entries.length !== 1) r.fail(`manifest.json lists ${entries.length} images (tags: ${tags()}); name one as PATH:TAG`);
  const entry = entries[0]!;
  const configPath = r.file(entry.Config, "the config");
  const configHex = /([a-f0-9]{64})(?:\.json)?$/.exec(entry.Config)?.[1];
  if (configHex === undefined) r.fail(`the config ${JSON.stringify(entry.Config)} is not named by its digest`);
  const actual = await sha256File(configPath);
  if (actual !== configHex) r.fail(`the config ${JSON.stringify(entry.Config)} does not match its digest: expected sha256:${configHex}, got sha256:${actual}`);
  const config = r.parse(imageConfigSchema, r.json(configPath, "the config"), "the config");
  if (entry.Layers.length !== config.rootfs.diff_ids.length)
    r.fail(`manifest.json lists ${entry.Layers.length} layers, the config ${config.rootfs.diff_ids.length} diff_ids`);
  const layers: Layer[] = [];
  for (const [i, rel] of entry.Layers.entries()) {
    const file = r.file(rel, `layer ${i + 1}`);
    const hex = await sha256File(file);
    const named = /([a-f0-9]{64})(?:\.tar)?$/.exec(rel)?.[1];
    if (`sha256:${hex}` !== config.rootfs.diff_ids[i] && hex !== named)
      r.fail(`layer ${i + 1} (${JSON.stringify(rel)}) does not match its digest: expected ${config.rootfs.diff_ids[i]}, got sha256:${hex}`);
    layers.push({ file, shown: `sha256:${hex}` });
  }
  const platform = formatPlatform(config);
  const host = hostPlatform();
  if (config.architecture !== host.architecture) log(`Note: the image is for ${platform}, this machine runs ${formatPlatform(host)}.`);
  return { format: "docker-archive", digest: `sha256:${configHex}`, config, platform, reference: ref ?? entry.RepoTags?.[0], layers };
}

// ------------------------------------------------------------------ export

export interface ExportedBlobs {
  /** The layer: an uncompressed tar, its digest and size. */
  layer: { digest: string; size: number };
  config: ImageConfig;
}

/** The JSON documents of a one-layer OCI layout: [path, text] pairs (blobs named by their digest). Pure except hashing. */
export function layoutDocuments(b: ExportedBlobs, refName: string): Array<[string, string]> {
  const sha = (text: string) => `sha256:${new Bun.CryptoHasher("sha256").update(text).digest("hex")}`;
  const configText = JSON.stringify(b.config);
  const configDigest = sha(configText);
  const manifestText = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: Buffer.byteLength(configText) },
    layers: [{ mediaType: MEDIA_TYPES.ociLayer, digest: b.layer.digest, size: b.layer.size }],
  });
  const manifestDigest = sha(manifestText);
  const indexText = JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [
      {
        mediaType: MEDIA_TYPES.ociManifest,
        digest: manifestDigest,
        size: Buffer.byteLength(manifestText),
        platform: { os: b.config.os, architecture: b.config.architecture, ...(b.config.variant ? { variant: b.config.variant } : {}) },
        annotations: { "org.opencontainers.image.ref.name": refName },
      },
    ],
  });
  const blob = (d: string) => `blobs/sha256/${d.slice("sha256:".length)}`;
  return [
    ["oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })],
    [blob(configDigest), configText],
    [blob(manifestDigest), manifestText],
    ["index.json", indexText],
  ];
}
