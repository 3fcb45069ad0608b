/**
 * Applying OCI image layers, in order, to a new image directory (a pool temporary), with the
 * confinement of import-tar (docs/transfers.md) and the whiteouts of the image-spec
 * (layer.md): `DIR/.wh.NAME` removes NAME of the lower layers, `DIR/.wh..wh..opq` removes
 * everything the lower layers put in DIR. Per layer:
 *
 * 1. scan it whole (archive-scan.ts: no absolute or `..` names, no symlink or file passed
 *    through inside the layer, hard links only to earlier files of the layer, size caps);
 * 2. check it against what the lower layers left: no entry passes through a lower symlink or
 *    non-directory (unless the layer itself made that path a directory first), a whiteout
 *    names one plain component (never `.`, `..` or empty);
 * 3. apply its whiteouts, and remove a lower entry the layer replaces with a different kind
 *    (a directory by a file or the reverse) — removals inside the target only, on paths
 *    whose every parent was checked to be a real directory (never through a symlink);
 * 4. extract it with GNU tar confined to the target (transfer-io.ts), without the `.wh.*`
 *    entries; the scanner reads the same stream again.
 *
 * The caller owns the target (a temporary): on any error it is discarded whole.
 */
import type { Host } from "../host/host.ts";
import { extractTar, scanTarFile } from "../host/transfer-io.ts";
import { ArchiveError, ArchiveScanner, UnsafeArchiveError, type ScanLimits, type ScannedEntry } from "../image/archive-scan.ts";
import type { Compression } from "../image/compression.ts";
import type { LayerCompression } from "./manifest.ts";

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_WHITEOUT = ".wh..wh..opq";
/** GNU tar --exclude pattern of every whiteout entry (matched against each member's base name). */
export const WHITEOUT_EXCLUDE = ".wh.*";

export interface Layer {
  /** The blob file (verified against its digest by the caller). */
  file: string;
  /** How the user knows it (digest), for messages. */
  shown: string;
  /** From the media type; undefined: not said (docker save), any. */
  compression?: LayerCompression;
}

/** What one layer does to the lower ones: whiteouts, and the entries it extracts. */
export interface LayerPlan {
  /** Paths (relative, normalized) the layer removes. */
  remove: string[];
  /** Directories whose lower contents the layer removes (opaque). */
  opaque: string[];
  /** The entries it extracts, in order. */
  entries: ScannedEntry[];
}

const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
const baseOf = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);

/** Split a layer's scanned entries into whiteouts and content; refuses a whiteout that is not one plain name. Pure. */
export function planLayer(entries: readonly ScannedEntry[]): LayerPlan {
  const plan: LayerPlan = { remove: [], opaque: [], entries: [] };
  for (const e of entries) {
    const base = baseOf(e.path);
    if (!base.startsWith(WHITEOUT_PREFIX)) {
      plan.entries.push(e);
      continue;
    }
    const dir = parentOf(e.path);
    if (e.kind === "dir") throw new UnsafeArchiveError("a whiteout that is a directory", e.path);
    if (base === OPAQUE_WHITEOUT) {
      plan.opaque.push(dir);
      continue;
    }
    const name = base.slice(WHITEOUT_PREFIX.length);
    // `.wh..wh.*`: aufs metadata (hard-link directories), not a whiteout: skipped like it.
    if (name.startsWith(WHITEOUT_PREFIX)) continue;
    if (name === "" || name === "." || name === "..") throw new UnsafeArchiveError(`a whiteout naming ${JSON.stringify(name)}`, e.path);
    plan.remove.push(join(dir, name));
  }
  return plan;
}

type Lower = "absent" | "dir" | "other" | "symlink";

/**
 * What the lower layers have at `rel` inside `root`, each parent checked to be a real
 * directory; `through`: the parent that is not ("symlink"/"other"), when one is not.
 */
function lowerAt(host: Host, root: string, rel: string, cache: Map<string, Lower>): { kind: Lower; blocked?: { at: string; kind: Lower } } {
  const parts = rel === "" ? [] : rel.split("/");
  let cur = "";
  for (let i = 0; i < parts.length; i++) {
    cur = join(cur, parts[i]!);
    let kind = cache.get(cur);
    if (kind === undefined) {
      const k = host.lstat(`${root}/${cur}`);
      kind = k === undefined ? "absent" : k === "dir" ? "dir" : k === "symlink" ? "symlink" : "other";
      cache.set(cur, kind);
    }
    if (i === parts.length - 1) return { kind };
    if (kind === "absent") return { kind: "absent" };
    if (kind !== "dir") return { kind: "absent", blocked: { at: cur, kind } };
  }
  return { kind: "dir" };
}

/**
 * Check a layer against the tree below it and make the removals it implies (whiteouts, kind
 * changes). Throws UnsafeArchiveError before removing anything when an entry would pass
 * through a lower symlink or file.
 */
export function prepareLower(host: Host, root: string, plan: LayerPlan): void {
  // Paths this layer makes directories (explicitly), in order: tar replaces a lower symlink there.
  const madeDirs = new Set<string>();
  const removals: string[] = [];
  const cache = new Map<string, Lower>();
  // Whiteouts come first: they apply to the lower layers only.
  const whitedOut = (p: string) => plan.remove.some((r) => p === r || p.startsWith(`${r}/`)) || plan.opaque.some((d) => d === "" || p.startsWith(`${d}/`));
  const check = (rel: string, what: string): Lower => {
    const at = lowerAt(host, root, rel, cache);
    if (at.blocked !== undefined && !madeDirs.has(at.blocked.at) && !whitedOut(at.blocked.at))
      throw new UnsafeArchiveError(
        `${what} passes through a ${at.blocked.kind === "symlink" ? "symlink" : "non-directory"} of a lower layer (${JSON.stringify(at.blocked.at)})`,
        rel,
      );
    return at.blocked !== undefined ? "absent" : at.kind;
  };
  for (const r of plan.remove) if (check(r, "a whiteout") !== "absent") removals.push(r);
  for (const d of plan.opaque) {
    const lower = check(d, "an opaque whiteout");
    if (lower === "dir") for (const name of host.readdir(d === "" ? root : `${root}/${d}`)) removals.push(join(d, name));
    // In a lower symlink or file: nothing below it to hide, and nothing is followed — unless the layer does not make it a directory.
    else if (lower !== "absent" && !plan.entries.some((e) => e.path === d && e.kind === "dir"))
      throw new UnsafeArchiveError(
        `an opaque whiteout in a ${lower === "symlink" ? "symlink" : "non-directory"} of a lower layer (${JSON.stringify(d)})`,
        join(d, OPAQUE_WHITEOUT),
      );
  }
  for (const e of plan.entries) {
    // Checked even when whited out: a parent the layer hides may still be a lower symlink tar would follow.
    const found = check(e.path, "the entry");
    const lower = whitedOut(e.path) ? "absent" : found;
    if (e.kind === "dir") {
      if (lower === "other") removals.push(e.path); // a lower file or device becomes a directory
      madeDirs.add(e.path);
    } else if (lower === "dir") {
      removals.push(e.path); // a lower directory becomes a file, link or node
    }
  }
  for (const r of removals) {
    // Every parent was checked above (or belongs to a removed tree): a real directory of the target.
    host.removeTree(`${root}/${r}`);
  }
}

function compressionMatches(declared: LayerCompression | undefined, found: Compression): boolean {
  if (declared === undefined) return true;
  return (declared === "none" ? "uncompressed" : declared) === found;
}

export interface ApplyOptions {
  host: Host;
  /** The new image's root (an existing empty directory). */
  target: string;
  /** A scratch directory for tar's confined root (empty; made and removed by the caller). */
  scratch: string;
  limits: ScanLimits;
  inheritFds?: number[];
  signal?: AbortSignal;
  /** Called before each layer (0-based). */
  onLayer?: (index: number, layer: Layer) => void;
  onProgress?: (done: number) => void;
}

/** Apply `layers` bottom first. The limits hold for all layers together. Errors name the layer (its digest). */
export async function applyLayers(layers: readonly Layer[], o: ApplyOptions): Promise<void> {
  const used = { bytes: 0, entries: 0 };
  for (const [i, layer] of layers.entries()) {
    o.onLayer?.(i, layer);
    const shown = `layer ${i + 1} (${layer.shown})`;
    // What the layers below used counts against the caps (a thousand layers are no way around them).
    const limits: ScanLimits = { ...o.limits, maxBytes: o.limits.maxBytes - used.bytes, maxEntries: o.limits.maxEntries - used.entries };
    try {
      const entries: ScannedEntry[] = [];
      const { summary, compression } = await scanTarFile(layer.file, new ArchiveScanner(limits, (e) => entries.push(e)), o.signal);
      const bytes = summary.bytes;
      used.bytes += bytes;
      used.entries += entries.length;
      if (!compressionMatches(layer.compression, compression))
        throw new UnsafeArchiveError(`its media type says ${layer.compression === "none" ? "uncompressed" : layer.compression}, its content is ${compression}`);
      prepareLower(o.host, o.target, planLayer(entries));
      await extractTar({
        source: layer.file,
        target: o.target,
        scratch: o.scratch,
        inspector: new ArchiveScanner(limits),
        inheritFds: o.inheritFds,
        exclude: [WHITEOUT_EXCLUDE],
        signal: o.signal,
        onProgress: o.onProgress,
      });
    } catch (e) {
      // "layer N (DIGEST): …", still an ArchiveError: the caller names the image file (aboutArchive).
      throw e instanceof ArchiveError ? new ArchiveError(`${shown}: ${e.message}`, e.context) : e;
    }
  }
}
