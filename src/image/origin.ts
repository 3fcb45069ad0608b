/**
 * Where an image came from: import-tar, import-raw, import-fs, pull-tar and pull-raw record it on
 * the image itself (its root directory, or the .raw file) in the extended attribute
 * `trusted.machina.origin`, a small JSON document read through a schema. The attribute belongs
 * to the inode, so it follows a rename and `cp -a` (clone) keeps it; it goes with the image.
 * `trusted.*` attributes can be written only with CAP_SYS_ADMIN in the host's user namespace, so a
 * container with a user namespace cannot remove the mark from its own root. On a file system
 * without trusted attributes nothing is recorded (the import does not fail).
 *
 * Used for one warning: an image from outside started without a user namespace (root in the
 * container is root on the host).
 */
import { basename } from "node:path";
import type { z } from "zod";
import { lazySchemas } from "../lazy-zod.ts";
import type { Host } from "../host/host.ts";
import { parseJson } from "../json.ts";
import type { Settings } from "../settings/settings.ts";

export const ORIGIN_XATTR = "trusted.machina.origin";

export const ORIGIN_KINDS = ["import-tar", "import-raw", "import-fs", "import-oci", "pull-tar", "pull-raw", "pull-oci"] as const;

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const originSchemas = lazySchemas((z) => {
  const OriginSchema = z.object({
    /** The machinactl verb that brought it in. */
    how: z.enum(ORIGIN_KINDS),
    /** The file, directory or URL it came from. */
    source: z.string(),
    /** When, ms since the epoch. */
    time: z.number().int().nonnegative(),
    /** OCI images: the reference (a tag or ref name) when there is one. */
    reference: z.string().optional(),
    /** OCI images: the manifest's digest (docker save: the config's). */
    digest: z.string().optional(),
    /** OCI images: os/architecture[/variant]. */
    platform: z.string().optional(),
  });
  return { OriginSchema };
});
export type Origin = z.infer<ReturnType<typeof originSchemas>["OriginSchema"]>;

/** Record where the image at `path` came from; false when the file system keeps no such attribute. */
export function recordOrigin(host: Host, path: string, origin: Origin): boolean {
  try {
    host.setXattr(path, ORIGIN_XATTR, JSON.stringify(originSchemas().OriginSchema.parse(origin)));
    return true;
  } catch {
    return false;
  }
}

/**
 * The recorded origin of the image at `path`: undefined when it has none (made locally: bootstrap,
 * clone of a local image, a directory of the administrator's). A mark that does not parse still
 * counts as "from outside" (only root on the host can write it: it was meant to say so).
 */
export function readOrigin(host: Host, path: string): Origin | "unknown" | undefined {
  let text: string | undefined;
  try {
    text = host.getXattr(path, ORIGIN_XATTR);
  } catch {
    return undefined; // no attributes here (EOPNOTSUPP) or unreadable
  }
  if (text === undefined) return undefined;
  return parseJson(originSchemas().OriginSchema, text) ?? "unknown";
}

/**
 * The warning for a container without a user namespace whose image (the root, or a --template
 * base) came from outside; undefined when there is nothing to say: -U in effect, -q, or
 * PrivateUsers=no chosen by a trusted setting (the command line or a trusted .nspawn file).
 */
export function outsideImageWarning(host: Host, settings: Settings): string | undefined {
  if (settings.privateUsers.mode !== "no" || settings.quiet) return undefined;
  const chosen = settings.provenance.get("privateUsers");
  if (chosen?.kind === "cli" || (chosen?.kind === "file" && chosen.trusted)) return undefined;
  for (const path of [settings.image ?? settings.directory, settings.template]) {
    if (path === undefined || readOrigin(host, path) === undefined) continue;
    const name = basename(path.replace(/\/+$/, "")).replace(/\.raw$/, "");
    return `warning: image "${name}" was imported from outside and runs without a user namespace (root in the container is root on the host); use -U`;
  }
  return undefined;
}
