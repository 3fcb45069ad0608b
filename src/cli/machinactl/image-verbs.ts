/**
 * machinactl's image verbs (machinectl's "Image Commands"): list-images, image-status,
 * show-image, clone, rename, read-only, remove, set-limit, clean. Output as machinectl 252
 * prints it; --json gives the same data as JSON.
 */
import type { ImageService } from "../../api/image-service.ts";
import type * as S from "../../api/schemas.ts";
import { parseBoolean } from "../../settings/values.ts";
import { formatBytes, formatTimestamp, json, properties, table, warnIfNotMachineName, type Column } from "./format.ts";
import type { Verb, VerbContext } from "./verb.ts";

/** machinad's API when a daemon answers, else the core in this process (src/client/select.ts): the same results. */
async function images(ctx: VerbContext): Promise<ImageService> {
  return (await import("../../client/select.ts")).selectImageService(ctx.host, ctx.paths, ctx.env);
}

/** µs since the epoch (null: unknown) as machinectl prints it, or undefined. */
const stamp = (us: number | null): string | undefined => (us === null ? undefined : formatTimestamp(us / 1000));

export const IMAGE_COLUMNS: Column<S.ImageSummary>[] = [
  { header: "NAME", value: (i) => i.name },
  { header: "TYPE", value: (i) => i.type },
  { header: "RO", value: (i) => (i.ro ? "yes" : "no") },
  { header: "USAGE", value: (i) => (i.usage === null ? "-" : formatBytes(i.usage)) },
  { header: "CREATED", value: (i) => stamp(i.created) ?? "-" },
  { header: "MODIFIED", value: (i) => stamp(i.modified) ?? "-" },
];

async function listImages(ctx: VerbContext): Promise<number> {
  const rows = await (await images(ctx)).listImages({ all: ctx.options.all });
  if (ctx.options.json !== "off") {
    ctx.out(json(rows, ctx.options));
    return 0;
  }
  ctx.out(table(rows, IMAGE_COLUMNS, ctx.options, ["image", "images"]));
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

/** machinectl's image-status block for one image. */
export function imageStatusText(image: S.ImageStatus, nowMs: number): string {
  const lines = [image.name, `\t    Type: ${image.type}`, `\t    Path: ${image.path}`];
  if (image.os !== null) lines.push(`\t      OS: ${image.os}`);
  if (image.architecture !== null) lines.push(`\t    Arch: ${image.architecture}`);
  lines.push(`\t      RO: ${image.readOnly ? "read-only" : "writable"}`);
  if (image.creationTimestamp !== null) lines.push(`\t Created: ${stamp(image.creationTimestamp)}; ${relative(image.creationTimestamp / 1000, nowMs)}`);
  if (image.modificationTimestamp !== null)
    lines.push(`\tModified: ${stamp(image.modificationTimestamp)}; ${relative(image.modificationTimestamp / 1000, nowMs)}`);
  if (image.usage !== null) lines.push(`\t   Usage: ${formatBytes(image.usage)}`);
  if (image.limit !== null) lines.push(`\t   Limit: ${formatBytes(image.limit)}`);
  const origin = image.origin;
  if (origin === "unknown") lines.push(`\t  Origin: from outside (unreadable record)`);
  else if (origin !== null) {
    lines.push(`\t  Origin: ${origin.how} ${origin.source}${origin.reference !== undefined ? ` (${origin.reference})` : ""}; ${formatTimestamp(origin.time)}`);
    if (origin.digest !== undefined) lines.push(`\t  Digest: ${origin.digest}`);
    if (origin.platform !== undefined) lines.push(`\tPlatform: ${origin.platform}`);
  }
  return lines.join("\n") + "\n";
}

async function imageStatus(ctx: VerbContext, names: string[]): Promise<number> {
  const svc = await images(ctx);
  // no NAME: every image (hidden ones too with -a), as list-images
  const wanted = names.length > 0 ? names : (await svc.listImages({ all: ctx.options.all })).map((i) => i.name);
  const all: S.ImageStatus[] = [];
  for (const n of wanted) all.push(await svc.imageStatus(n));
  if (ctx.options.json !== "off") {
    ctx.out(json(all, ctx.options));
    return 0;
  }
  const now = Number(ctx.host.nowUsec() / 1000n);
  ctx.out(all.map((i) => imageStatusText(i, now)).join("\n"));
  return 0;
}

/** show-image's properties (machined's Image object). */
export function imageProperties(image: S.ImageInfo): Array<[string, string]> {
  const n = (v: number | null) => (v === null ? "" : String(v));
  return [
    ["Name", image.name],
    ["Path", image.path],
    ["Type", image.type],
    ["ReadOnly", image.readOnly ? "yes" : "no"],
    ["CreationTimestamp", stamp(image.creationTimestamp) ?? ""],
    ["ModificationTimestamp", stamp(image.modificationTimestamp) ?? ""],
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
export async function showManager(ctx: VerbContext): Promise<number> {
  const pool = await (await images(ctx)).pool();
  if (ctx.options.json !== "off") {
    ctx.out(json(pool, ctx.options));
    return 0;
  }
  const props: Array<[string, string]> = [
    ["PoolPath", pool.poolPath],
    ["PoolUsage", pool.poolUsage === null ? UINT64_MAX : String(pool.poolUsage)],
    ["PoolLimit", pool.poolLimit === null ? UINT64_MAX : String(pool.poolLimit)],
  ];
  ctx.out(properties(props, ctx.options));
  return 0;
}

async function showImage(ctx: VerbContext, names: string[]): Promise<number> {
  if (names.length === 0) return showManager(ctx);
  const svc = await images(ctx);
  const all: S.ImageInfo[] = [];
  for (const n of names) all.push(await svc.showImage(n));
  if (ctx.options.json !== "off") {
    ctx.out(json(all, ctx.options));
    return 0;
  }
  ctx.out(all.map((i) => properties(imageProperties(i), ctx.options)).join("\n"));
  return 0;
}

function done(ctx: VerbContext, value: object): number {
  if (ctx.options.json !== "off") ctx.out(json(value, ctx.options));
  return 0;
}

async function removeVerb(ctx: VerbContext, names: string[]): Promise<number> {
  const svc = await images(ctx);
  const removed: string[] = [];
  let status = 0;
  for (const name of names) {
    try {
      removed.push(...(await svc.remove(name)).removed);
    } catch (e) {
      if (names.length === 1) throw e;
      ctx.err(`machinactl: ${e instanceof Error ? e.message : String(e)}\n`);
      status = 1;
    }
  }
  if (ctx.options.json !== "off") ctx.out(json({ removed }, ctx.options));
  return status;
}

async function cleanVerb(ctx: VerbContext): Promise<number> {
  const r = await (await images(ctx)).clean({ all: ctx.options.all });
  if (ctx.options.json !== "off") {
    ctx.out(json(r, ctx.options));
    return 0;
  }
  for (const s of r.skipped) ctx.err(`machinactl: ${s.reason}\n`);
  if (!ctx.options.quiet)
    for (const i of r.removed)
      ctx.out(i.freed === null ? `Removed image '${i.name}'.\n` : `Removed image '${i.name}'. Freed exclusive disk space: ${formatBytes(i.freed)}\n`);
  if (!ctx.options.quiet && r.ociCache.removed > 0)
    ctx.out(`Removed ${r.ociCache.removed} cached OCI blob${r.ociCache.removed === 1 ? "" : "s"}. Freed ${formatBytes(r.ociCache.freed)}\n`);
  return 0;
}

async function readOnlyVerb(ctx: VerbContext, args: string[]): Promise<number> {
  const flag = args[1] === undefined ? true : parseBoolean(args[1], { flag: "read-only's BOOL", value: args[1] });
  return done(ctx, await (await images(ctx)).setReadOnly(args[0]!, flag));
}

async function setLimitVerb(ctx: VerbContext, args: string[]): Promise<number> {
  const [name, size] = args.length === 1 ? [undefined, args[0]!] : [args[0]!, args[1]!];
  const limit = (await import("../../image/ops.ts")).parseSizeLimit(size);
  return done(ctx, await (await images(ctx)).setLimit(name, limit));
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
    run: listImages,
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
    run: async (ctx, [from, to]) => {
      const r = await (await images(ctx)).clone(from!, to!, { readOnly: ctx.options.readOnly });
      warnIfNotMachineName(ctx.err, r.name);
      return done(ctx, r);
    },
  }),
  verb({
    name: "rename",
    options: [],
    usage: "rename NAME NAME",
    summary: "Rename an image",
    minArgs: 2,
    maxArgs: 2,
    run: async (ctx, [from, to]) => {
      const r = await (await images(ctx)).rename(from!, to!);
      warnIfNotMachineName(ctx.err, r.name);
      return done(ctx, r);
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
  verb({ name: "clean", options: ["all"], usage: "clean", summary: "Remove hidden (or all) images", minArgs: 0, maxArgs: 0, run: cleanVerb }),
];
