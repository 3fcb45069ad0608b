/**
 * machinactl's image verbs (machinectl's "Image Commands"): list-images, image-status,
 * show-image, clone, rename, read-only, remove, set-limit, clean. Output as machinectl 252
 * prints it; --json gives the same data as JSON.
 */
import type { Host } from "../../host/host.ts";
import { cleanBlobCache, ociCacheDir } from "../../oci/blob-cache.ts";
import { parseOsRelease } from "../../host/os-release.ts";
import {
  btrfsQgroup,
  cleanPool,
  cloneImage,
  parseSizeLimit,
  removeImage,
  renameImage,
  setImageLimit,
  setImageReadOnly,
  withQgroup,
  type PoolContext,
} from "../../image/ops.ts";
import { discoverImages, getImage, poolRoots, type Image } from "../../image/pool.ts";
import { readOrigin } from "../../image/origin.ts";
import { parseBoolean } from "../../settings/values.ts";
import { formatBytes, formatTimestamp, json, properties, table, warnIfNotMachineName, type Column } from "./format.ts";
import type { Verb, VerbContext } from "./verb.ts";

function poolContext(ctx: VerbContext): PoolContext {
  return { host: ctx.host, pool: ctx.paths.pool, stateDir: ctx.paths.stateDir };
}

const usec = (ms: number): number | null => (ms > 0 ? Math.round(ms * 1000) : null);

/** The JSON form of an image (machined's property names, in lower camel case). */
export function imageJson(image: Image): Record<string, unknown> {
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

export const IMAGE_COLUMNS: Column<Image>[] = [
  { header: "NAME", value: (i) => i.name },
  { header: "TYPE", value: (i) => i.type },
  { header: "RO", value: (i) => (i.readOnly ? "yes" : "no") },
  { header: "USAGE", value: (i) => (i.usage === undefined ? "-" : formatBytes(i.usage)) },
  { header: "CREATED", value: (i) => (i.crtimeMs > 0 ? formatTimestamp(i.crtimeMs) : "-") },
  { header: "MODIFIED", value: (i) => (i.mtimeMs > 0 ? formatTimestamp(i.mtimeMs) : "-") },
];

function listImages(ctx: VerbContext): number {
  const images = discoverImages(ctx.host, ctx.paths.pool, { hidden: ctx.options.all }).map((i) => withQgroup(ctx.host, i));
  if (ctx.options.json !== "off") {
    ctx.out(
      json(
        images.map((i) => ({
          name: i.name,
          type: i.type,
          ro: i.readOnly,
          usage: i.usage ?? null,
          created: usec(i.crtimeMs),
          modified: usec(i.mtimeMs),
        })),
        ctx.options,
      ),
    );
    return 0;
  }
  ctx.out(table(images, IMAGE_COLUMNS, ctx.options, ["image", "images"]));
  return 0;
}

/** "3h 5min ago"-style relative time, as systemd's FORMAT_TIMESTAMP_RELATIVE. */
export function relative(ms: number, nowMs: number): string {
  let s = Math.max(0, Math.floor((nowMs - ms) / 1000));
  if (s === 0) return "now";
  const units: Array<[string, number]> = [
    ["y", 31557600],
    ["month", 2629800],
    ["w", 604800],
    ["d", 86400],
    ["h", 3600],
    ["min", 60],
    ["s", 1],
  ];
  const parts: string[] = [];
  for (const [unit, size] of units) {
    if (s >= size && parts.length < 2) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    } else if (parts.length > 0) break;
  }
  return `${parts.join(" ")} ago`;
}

function osPrettyName(host: Host, image: Image): string | undefined {
  if (image.type === "raw") return undefined;
  const text = host.readFile(`${image.target}/etc/os-release`) ?? host.readFile(`${image.target}/usr/lib/os-release`);
  if (text === undefined) return undefined;
  const os = parseOsRelease(text);
  return os["PRETTY_NAME"] ?? os["NAME"];
}

/** machinectl's image-status block for one image. */
export function imageStatusText(host: Host, image: Image, nowMs: number): string {
  const lines = [image.name, `\t    Type: ${image.type}`, `\t    Path: ${image.path}`];
  const os = osPrettyName(host, image);
  if (os !== undefined) lines.push(`\t      OS: ${os}`);
  lines.push(`\t      RO: ${image.readOnly ? "read-only" : "writable"}`);
  if (image.crtimeMs > 0) lines.push(`\t Created: ${formatTimestamp(image.crtimeMs)}; ${relative(image.crtimeMs, nowMs)}`);
  if (image.mtimeMs > 0) lines.push(`\tModified: ${formatTimestamp(image.mtimeMs)}; ${relative(image.mtimeMs, nowMs)}`);
  if (image.usage !== undefined) lines.push(`\t   Usage: ${formatBytes(image.usage)}`);
  if (image.limit !== undefined) lines.push(`\t   Limit: ${formatBytes(image.limit)}`);
  const origin = readOrigin(host, image.target);
  if (origin === "unknown") lines.push(`\t  Origin: from outside (unreadable record)`);
  else if (origin !== undefined) {
    lines.push(`\t  Origin: ${origin.how} ${origin.source}${origin.reference !== undefined ? ` (${origin.reference})` : ""}; ${formatTimestamp(origin.time)}`);
    if (origin.digest !== undefined) lines.push(`\t  Digest: ${origin.digest}`);
    if (origin.platform !== undefined) lines.push(`\tPlatform: ${origin.platform}`);
  }
  return lines.join("\n") + "\n";
}

function imageStatus(ctx: VerbContext, names: string[]): number {
  // no NAME: every image (hidden ones too with -a), as list-images
  const found =
    names.length > 0 ? names.map((n) => getImage(ctx.host, ctx.paths.pool, n)) : discoverImages(ctx.host, ctx.paths.pool, { hidden: ctx.options.all });
  const images = found.map((i) => withQgroup(ctx.host, i));
  if (ctx.options.json !== "off") {
    ctx.out(
      json(
        images.map((i) => {
          const origin = readOrigin(ctx.host, i.target);
          return { ...imageJson(i), os: osPrettyName(ctx.host, i) ?? null, origin: origin === undefined ? null : origin };
        }),
        ctx.options,
      ),
    );
    return 0;
  }
  const now = Number(ctx.host.nowUsec() / 1000n);
  ctx.out(images.map((i) => imageStatusText(ctx.host, i, now)).join("\n"));
  return 0;
}

/** show-image's properties (machined's Image object). */
export function imageProperties(image: Image): Array<[string, string]> {
  const n = (v: number | undefined) => (v === undefined ? "" : String(v));
  return [
    ["Name", image.name],
    ["Path", image.path],
    ["Type", image.type],
    ["ReadOnly", image.readOnly ? "yes" : "no"],
    ["CreationTimestamp", image.crtimeMs > 0 ? formatTimestamp(image.crtimeMs) : ""],
    ["ModificationTimestamp", image.mtimeMs > 0 ? formatTimestamp(image.mtimeMs) : ""],
    ["Usage", n(image.usage)],
    ["Limit", n(image.limit)],
    ["UsageExclusive", n(image.usage)],
    ["LimitExclusive", n(image.limit)],
  ];
}

const UINT64_MAX = "18446744073709551615";

/**
 * machined's manager properties, which `show` and `show-image` print without a NAME: PoolPath,
 * PoolUsage and PoolLimit (from the pool's btrfs quota group; like machined, 2^64-1 when unknown).
 */
export function showManager(ctx: VerbContext): number {
  const root = poolRoots(ctx.paths.pool).writable;
  const q = btrfsQgroup(ctx.host, root);
  const usage = q?.referenced;
  const limit = q?.maxReferenced;
  if (ctx.options.json !== "off") {
    ctx.out(json({ poolPath: root, poolUsage: usage ?? null, poolLimit: limit ?? null, pools: ctx.paths.pool }, ctx.options));
    return 0;
  }
  const props: Array<[string, string]> = [
    ["PoolPath", root],
    ["PoolUsage", usage === undefined ? UINT64_MAX : String(usage)],
    ["PoolLimit", limit === undefined ? UINT64_MAX : String(limit)],
  ];
  ctx.out(properties(props, ctx.options));
  return 0;
}

function showImage(ctx: VerbContext, names: string[]): number {
  if (names.length === 0) return showManager(ctx);
  const images = names.map((n) => withQgroup(ctx.host, getImage(ctx.host, ctx.paths.pool, n)));
  if (ctx.options.json !== "off") {
    ctx.out(json(images.map(imageJson), ctx.options));
    return 0;
  }
  ctx.out(images.map((i) => properties(imageProperties(i), ctx.options)).join("\n"));
  return 0;
}

function done(ctx: VerbContext, value: Record<string, unknown>): number {
  if (ctx.options.json !== "off") ctx.out(json(value, ctx.options));
  return 0;
}

function removeVerb(ctx: VerbContext, names: string[]): number {
  const removed: string[] = [];
  let status = 0;
  for (const name of names) {
    try {
      removeImage(poolContext(ctx), name);
      removed.push(name);
    } catch (e) {
      if (names.length === 1) throw e;
      ctx.err(`machinactl: ${e instanceof Error ? e.message : String(e)}\n`);
      status = 1;
    }
  }
  if (ctx.options.json !== "off") ctx.out(json({ removed }, ctx.options));
  return status;
}

function cleanVerb(ctx: VerbContext): number {
  const r = cleanPool(poolContext(ctx), ctx.options.all);
  // pull-oci's layer cache is what hidden images are to pull-tar: a cache, emptied by clean.
  const blobs = cleanBlobCache(ctx.host, ociCacheDir(ctx.env));
  if (ctx.options.json !== "off") {
    ctx.out(
      json(
        {
          removed: r.removed.map((i) => ({ name: i.name, freed: i.usage ?? null })),
          skipped: r.skipped.map((s) => ({ name: s.image.name, reason: s.reason })),
          temporaries: r.temporaries,
          ociCache: { removed: blobs.removed, freed: blobs.bytes },
        },
        ctx.options,
      ),
    );
    return 0;
  }
  for (const s of r.skipped) ctx.err(`machinactl: ${s.reason}\n`);
  if (!ctx.options.quiet)
    for (const i of r.removed)
      ctx.out(i.usage === undefined ? `Removed image '${i.name}'.\n` : `Removed image '${i.name}'. Freed exclusive disk space: ${formatBytes(i.usage)}\n`);
  if (!ctx.options.quiet && blobs.removed > 0)
    ctx.out(`Removed ${blobs.removed} cached OCI blob${blobs.removed === 1 ? "" : "s"}. Freed ${formatBytes(blobs.bytes)}\n`);
  return 0;
}

function readOnlyVerb(ctx: VerbContext, args: string[]): number {
  const flag = args[1] === undefined ? true : parseBoolean(args[1], { flag: "read-only's BOOL", value: args[1] });
  const image = setImageReadOnly(poolContext(ctx), args[0]!, flag);
  return done(ctx, { name: image.name, readOnly: image.readOnly });
}

function setLimitVerb(ctx: VerbContext, args: string[]): number {
  const [name, size] = args.length === 1 ? [undefined, args[0]!] : [args[0]!, args[1]!];
  const limit = parseSizeLimit(size);
  setImageLimit(poolContext(ctx), name, limit);
  return done(ctx, { name: name ?? null, limit: limit ?? null });
}

const verb = (v: Omit<Verb, "section">): Verb => ({ ...v, section: "Image" });

export const IMAGE_VERBS: Verb[] = [
  verb({
    name: "list-images",
    options: ["all", "no-legend"],
    usage: "list-images",
    summary: "Show available container and VM images",
    minArgs: 0,
    maxArgs: 0,
    run: (ctx) => listImages(ctx),
  }),
  verb({
    name: "image-status",
    options: ["all"],
    usage: "image-status [NAME...]",
    summary: "Show image details (of every image without NAME)",
    minArgs: 0,
    maxArgs: Infinity,
    run: imageStatus,
  }),
  verb({
    name: "show-image",
    options: ["property", "P", "value", "all"],
    usage: "show-image [NAME...]",
    summary: "Show properties of image",
    minArgs: 0,
    maxArgs: Infinity,
    run: showImage,
  }),
  verb({
    name: "clone",
    options: ["read-only"],
    usage: "clone NAME NAME",
    summary: "Clone an image",
    minArgs: 2,
    maxArgs: 2,
    run: (ctx, [from, to]) => {
      const r = cloneImage(poolContext(ctx), from!, to!, ctx.options.readOnly);
      warnIfNotMachineName(ctx.err, r.image.name);
      return done(ctx, { name: r.image.name, from: from!, type: r.image.type, method: r.method, readOnly: r.image.readOnly, path: r.image.path });
    },
  }),
  verb({
    name: "rename",
    options: [],
    usage: "rename NAME NAME",
    summary: "Rename an image",
    minArgs: 2,
    maxArgs: 2,
    run: (ctx, [from, to]) => {
      const image = renameImage(poolContext(ctx), from!, to!);
      warnIfNotMachineName(ctx.err, image.name);
      return done(ctx, { name: image.name, from: from!, path: image.path });
    },
  }),
  verb({
    name: "read-only",
    options: [],
    usage: "read-only NAME [BOOL]",
    summary: "Mark or unmark image read-only",
    minArgs: 1,
    maxArgs: 2,
    run: readOnlyVerb,
  }),
  verb({ name: "remove", options: [], usage: "remove NAME...", summary: "Remove an image", minArgs: 1, maxArgs: Infinity, run: removeVerb }),
  verb({
    name: "set-limit",
    options: [],
    usage: "set-limit [NAME] BYTES",
    summary: "Set image or pool size limit (disk quota)",
    minArgs: 1,
    maxArgs: 2,
    run: setLimitVerb,
  }),
  verb({ name: "clean", options: ["all"], usage: "clean", summary: "Remove hidden (or all) images", minArgs: 0, maxArgs: 0, run: (ctx) => cleanVerb(ctx) }),
];
