/**
 * The mounts an administrator asks for: --bind/--bind-ro, --tmpfs, --overlay/--overlay-ro,
 * --inaccessible, as setup ops in systemd-nspawn's order (sorted by destination, then binds,
 * tmpfs, overlays, inaccessible), plus the temporary directories the supervisor creates and
 * removes. Pure.
 *
 * Sources prefixed with "+" stay "+CPATH" in the spec: the helper resolves them inside the
 * image (openat2 RESOLVE_IN_ROOT), so a symlink in the image never leads out of it.
 */
import type { HostFacts } from "../host/facts.ts";
import type { BindMount, OverlayMount, Propagation, TmpfsMount } from "../settings/compound-values.ts";
import type { Settings } from "../settings/settings.ts";
import { MS, REFUSED_MOUNT_OPTIONS, mangleMountOptions, propagationFlags } from "./mount-flags.ts";
import { invalid } from "../settings/values.ts";
import type { SetupOp } from "./types.ts";

/** Where empty sources (--bind=:/x, --overlay=A::/x) get their temporary directory. */
export const TEMP_PARENT = "/var/tmp";
export const TEMP_PREFIX = "machina-temp-";

export interface UserMountPlan {
  ops: SetupOp[];
  scratchDirs: Array<{ path: string; mode: number }>;
}

type Custom =
  | { kind: 0; dest: string; bind: BindMount }
  | { kind: 1; dest: string; tmpfs: TmpfsMount }
  | { kind: 2; dest: string; overlay: OverlayMount }
  | { kind: 3; dest: string };

/** systemd's path_compare: component by component, a prefix first. */
export function pathCompare(a: string, b: string): number {
  const pa = a.split("/").filter((p) => p.length > 0);
  const pb = b.split("/").filter((p) => p.length > 0);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** A mount's propagation type bit (a new mount has no submounts: recursive or not is the same, and a bind's MS_REC is its own). */
const propagationType = (p: Propagation | undefined) => (p === undefined ? 0 : propagationFlags(p) & ~MS.REC);

const dirname = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";
const basename = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/**
 * The container's user namespace range, when it has one (for --bind=…:idmap/rootidmap).
 * Without one, `idmap` is a plain bind (the identity) and `rootidmap` maps the source's owner to 0.
 */
export interface BindIdRange {
  base: number;
  count: number;
}

export function userMountPlan(settings: Settings, host: HostFacts, userns?: BindIdRange): UserMountPlan {
  const list: Custom[] = [
    ...settings.binds.map((bind): Custom => ({ kind: 0, dest: bind.destination, bind })),
    ...settings.tmpfs.map((tmpfs): Custom => ({ kind: 1, dest: tmpfs.destination, tmpfs })),
    ...settings.overlays.map((overlay): Custom => ({ kind: 2, dest: overlay.destination, overlay })),
    ...settings.inaccessible.map((dest): Custom => ({ kind: 3, dest })),
  ];
  if (settings.ociRuntime) {
    // machina-oci: config.json's order (runc's), the masks after the mounts
    const order = (c: Custom) => (c.kind === 0 ? c.bind.order : c.kind === 1 ? c.tmpfs.order : undefined) ?? Number.MAX_SAFE_INTEGER;
    list.sort((a, b) => order(a) - order(b));
  } else {
    // stable sort, as nspawn's qsort by (destination, type)
    list.sort((a, b) => pathCompare(a.dest, b.dest) || a.kind - b.kind);
  }

  const scratchDirs: UserMountPlan["scratchDirs"] = [];
  let n = 0;
  const rand = () => `${host.randomId.slice(0, 12)}${(n++).toString(16)}`;
  /** A fresh temporary directory below /var/tmp (0700) with "src" (0755) in it. */
  const tempSource = () => {
    const base = `${TEMP_PARENT}/${TEMP_PREFIX}${rand()}`;
    scratchDirs.push({ path: base, mode: 0o700 }, { path: `${base}/src`, mode: 0o755 });
    return `${base}/src`;
  };

  const ops: SetupOp[] = [];
  for (const m of list) {
    if (m.kind === 0) {
      const b = m.bind;
      const source = b.source === "" ? tempSource() : b.sourceInImage ? `+${b.source}` : b.source;
      // machina-oci's propagation: its type only; the helper applies it with the bind's own MS_REC
      const restrict = (b.restrict ?? []).reduce((f, o) => f | (o === "nosuid" ? MS.NOSUID : o === "nodev" ? MS.NODEV : MS.NOEXEC), 0);
      const flags = MS.BIND | (b.recursive ? MS.REC : 0) | (b.readOnly ? MS.RDONLY : 0) | restrict | propagationType(b.propagation);
      const base = userns?.base ?? 0;
      if (b.idmap === "rootidmap")
        // the source's owner is the container's root (host 0 without a user namespace)
        ops.push({ op: "idmapBind", source, target: b.destination, flags, create: "auto", from: "owner", to: base, count: 1 });
      else if (b.idmap === "idmap" && userns !== undefined && base !== 0)
        // on-disk 0…N-1 are the container's 0…N-1
        ops.push({ op: "idmapBind", source, target: b.destination, flags, create: "auto", from: 0, to: base, count: userns.count });
      else ops.push({ op: "mount", source, target: b.destination, fstype: "", flags, data: "", create: "auto" });
    } else if (m.kind === 1) {
      // nspawn: mount flags in the option list (ro, nosuid, noexec…) are flags, the rest tmpfs data
      const o = mangleMountOptions(m.tmpfs.options, MS.NODEV | MS.STRICTATIME);
      if ("refused" in o)
        throw invalid(
          { flag: "--tmpfs/TemporaryFileSystem" },
          `${m.dest}:${m.tmpfs.options}`,
          `tmpfs options and mount flags (${o.refused} is not one: ${REFUSED_MOUNT_OPTIONS.join(", ")} are refused)`,
        );
      ops.push({
        op: "mount",
        source: "tmpfs",
        target: m.dest,
        fstype: "tmpfs",
        flags: o.flags | propagationType(m.tmpfs.propagation),
        data: o.data,
        // machina-oci's tmpcopyup: the helper copies the image's directory into the new tmpfs
        create: m.tmpfs.copyUp === true ? "copyup" : "dir",
      });
    } else if (m.kind === 2) {
      const o = m.overlay;
      const lower = o.lower.map((l) => (l.inImage ? `+${l.path}` : l.path));
      if (o.readOnly || o.upper === undefined) {
        // --overlay-ro=A:B means lower A, top B, mounted at B (the parser keeps B as destination only)
        if (lower.length === 1 && lower[0] !== o.destination) lower.push(o.destination);
        ops.push({ op: "overlay", target: o.destination, flags: MS.RDONLY, upper: "", work: "", lower });
        continue;
      }
      let upper: string;
      let work: string;
      if (o.upper.path === "") {
        upper = tempSource();
        work = `${dirname(upper)}/.#${basename(upper)}${rand()}`;
      } else {
        upper = o.upper.inImage ? `+${o.upper.path}` : o.upper.path;
        // nspawn's work directory: a sibling of the upper one (the same file system)
        const dir = dirname(o.upper.path);
        work = `${o.upper.inImage ? "+" : ""}${dir === "/" ? "" : dir}/.#${basename(o.upper.path)}${rand()}`;
      }
      scratchDirs.push({ path: work, mode: 0o700 });
      ops.push({ op: "overlay", target: o.destination, flags: 0, upper, work, lower });
    } else {
      ops.push({ op: "mask", path: m.dest });
    }
  }
  return { ops, scratchDirs };
}
