/**
 * OCI image-spec and Docker (distribution) schema-2 documents as zod schemas: descriptors,
 * image indexes / manifest lists, image manifests and image configs. Registry responses,
 * OCI layouts and archives are parsed through these, never trusted as raw JSON.
 * Pure: no I/O.
 */
import { z } from "zod";

/** Media types, once. */
export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  ociLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  ociLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  ociLayerNondistributableZstd: "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  ociLayout: "application/vnd.oci.layout.header.v1+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerLayerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export const INDEX_MEDIA_TYPES: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifestList];
export const MANIFEST_MEDIA_TYPES: readonly string[] = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];

/** How a layer blob is compressed, from its media type; undefined: not a layer type we know. */
export type LayerCompression = "none" | "gzip" | "zstd";
const LAYER_COMPRESSION: Readonly<Record<string, LayerCompression>> = {
  [MEDIA_TYPES.ociLayer]: "none",
  [MEDIA_TYPES.ociLayerGzip]: "gzip",
  [MEDIA_TYPES.ociLayerZstd]: "zstd",
  [MEDIA_TYPES.ociLayerNondistributable]: "none",
  [MEDIA_TYPES.ociLayerNondistributableGzip]: "gzip",
  [MEDIA_TYPES.ociLayerNondistributableZstd]: "zstd",
  [MEDIA_TYPES.dockerLayerGzip]: "gzip",
  [MEDIA_TYPES.dockerLayerForeignGzip]: "gzip",
};
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return LAYER_COMPRESSION[mediaType];
}

/** `sha256:` + 64 lowercase hex digits: the only algorithm machina verifies. */
export const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Any digest the grammar allows (algorithm:encoded); used where we only carry it along. */
const ANY_DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export const digestSchema = z.string().regex(SHA256_DIGEST, "a digest must be sha256: and 64 lowercase hex digits");
export const anyDigestSchema = z.string().regex(ANY_DIGEST, "not a digest (algorithm:hex)");

export const platformSchema = z.object({
  architecture: z.string().min(1),
  os: z.string().min(1),
  "os.version": z.string().optional(),
  "os.features": z.array(z.string()).optional(),
  variant: z.string().optional(),
});
export type Platform = z.infer<typeof platformSchema>;

export const annotationsSchema = z.record(z.string(), z.string());

export const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: digestSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: annotationsSchema.optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

/** An OCI image index or a Docker manifest list. */
export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsSchema.optional(),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

/** An OCI image manifest or a Docker schema-2 manifest. */
export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: annotationsSchema.optional(),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

const stringList = z.array(z.string()).nullish();
const emptyObjectSet = z.record(z.string(), z.unknown()).nullish();

/** The execution parameters of an image config (`config` in OCI, `config` in Docker too). */
export const imageRuntimeConfigSchema = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: emptyObjectSet,
  Env: stringList,
  Entrypoint: stringList,
  Cmd: stringList,
  Volumes: emptyObjectSet,
  WorkingDir: z.string().optional(),
  Labels: z.record(z.string(), z.string()).nullish(),
  StopSignal: z.string().optional(),
  ArgsEscaped: z.boolean().optional(),
});
export type ImageRuntimeConfig = z.infer<typeof imageRuntimeConfigSchema>;

export const historySchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  created_by: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});

/** An OCI image config (also Docker's container image JSON, a superset). */
export const imageConfigSchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().min(1),
  os: z.string().min(1),
  "os.version": z.string().optional(),
  "os.features": z.array(z.string()).optional(),
  variant: z.string().optional(),
  config: imageRuntimeConfigSchema.nullish(),
  rootfs: z.object({
    type: z.literal("layers"),
    diff_ids: z.array(anyDigestSchema),
  }),
  history: z.array(historySchema).optional(),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;

/** `oci-layout` file of an OCI image layout. */
export const ociLayoutSchema = z.object({ imageLayoutVersion: z.string() });

/** A manifest or an index, told apart by mediaType, or by shape when mediaType is absent. */
export type ManifestOrIndex = { kind: "index"; index: ImageIndex } | { kind: "manifest"; manifest: ImageManifest };

/**
 * Parse a manifest-or-index document. `contentType` is the HTTP Content-Type (or the
 * descriptor's media type), used when the document does not name its own.
 * Returns an error string (for the caller's one-line message) rather than throwing.
 */
export function parseManifestOrIndex(body: unknown, contentType?: string): { ok: true; value: ManifestOrIndex } | { ok: false; error: string } {
  if (typeof body !== "object" || body === null) return { ok: false, error: "not a JSON object" };
  const declared = (body as { mediaType?: unknown }).mediaType;
  const mediaType = typeof declared === "string" ? declared : contentType?.split(";")[0]?.trim();
  const isIndex =
    mediaType !== undefined && INDEX_MEDIA_TYPES.includes(mediaType)
      ? true
      : mediaType !== undefined && MANIFEST_MEDIA_TYPES.includes(mediaType)
        ? false
        : Array.isArray((body as { manifests?: unknown }).manifests);
  if (isIndex) {
    const r = imageIndexSchema.safeParse(body);
    return r.success ? { ok: true, value: { kind: "index", index: r.data } } : { ok: false, error: zodLine(r.error) };
  }
  const r = imageManifestSchema.safeParse(body);
  return r.success ? { ok: true, value: { kind: "manifest", manifest: r.data } } : { ok: false, error: zodLine(r.error) };
}

/** The first zod issue as "path: message". */
export function zodLine(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  const path = issue.path.length > 0 ? issue.path.join(".") : "(document)";
  return `${path}: ${issue.message}`;
}
