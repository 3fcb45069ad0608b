/**
 * How the container's root is made: the image as is, a fresh tmpfs with the image's /usr
 * (--volatile=yes), the image read-only with a tmpfs /var (--volatile=state), an overlay with
 * a tmpfs upper over the image (--volatile=overlay, -x/--ephemeral), and --pivot-root. Pure.
 *
 * Ephemeral containers live entirely in the container's mount namespace: the tmpfs upper and
 * the overlay vanish with it, also when the payload or the supervisor is killed, and nothing is
 * ever written to the image or to /var/tmp.
 */
import { MachinaError } from "../errors.ts";
import type { ImageFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";
import { MS } from "./mount-flags.ts";
import type { RootSetup, SetupOp } from "./types.ts";

/** nspawn 252's tmpfs for volatile roots and /var (mode=755 + TMPFS_LIMITS_ROOTFS). */
export const VOLATILE_TMPFS = "mode=755,size=25%,nr_inodes=1m";
/** The tmpfs upper of -x: the kernel's default size (half of RAM). */
export const EPHEMERAL_TMPFS = "mode=755";

export interface RootPlan {
  setup: RootSetup;
  /** Ops that come before the API file systems (the /usr bind, base file system, /var tmpfs). */
  preOps: SetupOp[];
  /** The root mount is made read-only (--read-only, --volatile=state). */
  readOnly: boolean;
  /** Files like /etc/resolv.conf may be written into the root (else they are bind-mounted). */
  writable: boolean;
}

function volatileYesOps(image: ImageFacts): SetupOp[] {
  const m = image.mounts;
  if (m?.binKind === "dir")
    throw new MachinaError(
      "E_UNSUPPORTED",
      "Sorry, --volatile=yes mode is not supported with OS images that have not merged /bin/, /sbin/, /lib/, /lib64/ into /usr/. Please work with your distribution and help them adopt the merged /usr scheme.",
      { flag: "--volatile", path: image.root },
    );
  if (m?.binKind !== undefined && m.binKind !== "symlink")
    throw new MachinaError(
      "E_INVALID",
      "Error starting image: if --volatile=yes is used /bin must be a symlink (for merged /usr support) or non-existent (in which case a symlink is created automatically).",
      { flag: "--volatile", path: image.root },
    );
  const has = (p: string) => m?.usrPresent.includes(p) ?? false;
  const ops: SetupOp[] = [{ op: "mount", source: "+/usr", target: "/usr", fstype: "", flags: MS.BIND | MS.REC | MS.RDONLY, data: "", create: "dir" }];
  // systemd's base file system: symlinks into /usr where their targets exist, a few directories.
  for (const [name, target] of [
    ["bin", "usr/bin"],
    ["lib", "usr/lib"],
    ["sbin", "usr/sbin"],
  ] as const)
    if (has(target)) ops.push({ op: "symlink", target, path: `/${name}` });
  if (has("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")) ops.push({ op: "symlink", target: "usr/lib/x86_64-linux-gnu", path: "/lib64" });
  else if (has("usr/lib64/ld-linux-x86-64.so.2")) ops.push({ op: "symlink", target: "usr/lib64", path: "/lib64" });
  ops.push({ op: "mkdir", path: "/root", mode: 0o750 }, { op: "mkdir", path: "/var", mode: 0o755 }, { op: "mkdir", path: "/etc", mode: 0o755 });
  return ops;
}

export function planRoot(settings: Settings, image: ImageFacts): RootPlan {
  const setup: RootSetup = { scratchDirs: [], hostMkdirs: [], hostSymlinks: [] };
  if (settings.pivotRoot !== undefined) setup.pivotRoot = { newRoot: settings.pivotRoot.newRoot, oldRoot: settings.pivotRoot.oldRoot };
  const imageWritable = image.writable && !settings.readOnly;
  if (settings.ephemeral) {
    if (settings.volatile !== "no") throw new MachinaError("E_USAGE", "--ephemeral and --volatile= cannot be combined", { flag: "--ephemeral" });
    setup.rootMode = { kind: "overlay", data: EPHEMERAL_TMPFS };
    return { setup, preOps: [], readOnly: settings.readOnly, writable: !settings.readOnly };
  }
  switch (settings.volatile) {
    case "no":
      return { setup, preOps: [], readOnly: settings.readOnly, writable: imageWritable };
    case "yes":
      setup.rootMode = { kind: "tmpfs", data: VOLATILE_TMPFS };
      // nspawn implies --read-only with every volatile mode: files are bind-mounted, not copied.
      return { setup, preOps: volatileYesOps(image), readOnly: settings.readOnly, writable: false };
    case "overlay":
      setup.rootMode = { kind: "overlay", data: VOLATILE_TMPFS };
      return { setup, preOps: [], readOnly: settings.readOnly, writable: false };
    case "state":
      return {
        setup,
        preOps: [{ op: "mount", source: "tmpfs", target: "/var", fstype: "tmpfs", flags: MS.STRICTATIME, data: VOLATILE_TMPFS, create: "dir" }],
        readOnly: true,
        writable: false,
      };
  }
}

const octal = (mode: number) => "0" + mode.toString(8);

/** Wire records (native/SPEC.md "Root and host-side directories"). */
export function rootSetupRecords(r: RootSetup): Array<[string, string[]]> {
  const out: Array<[string, string[]]> = [];
  if (r.rootMode) out.push([r.rootMode.kind === "tmpfs" ? "root_tmpfs" : "root_overlay", [r.rootMode.data]]);
  if (r.pivotRoot) out.push(["pivot_root_dir", [r.pivotRoot.newRoot, r.pivotRoot.oldRoot ?? ""]]);
  if (r.scratchList !== undefined && r.scratchDirs.length > 0) out.push(["scratch_list", [r.scratchList]]);
  for (const d of r.scratchDirs) out.push(["scratch_dir", [d.path, octal(d.mode)]]);
  for (const d of r.hostMkdirs) out.push(["host_mkdir", [d.path, octal(d.mode)]]);
  for (const l of r.hostSymlinks) out.push(["host_symlink", [l.target, l.path]]);
  return out;
}
