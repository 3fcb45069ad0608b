/**
 * -Z/--selinux-context= and -L/--selinux-apifs-context= (systemd-nspawn 252). Pure.
 *
 * -Z: the payload is executed with the label (the helper writes it to
 * /proc/thread-self/attr/exec right before execve, as setexeccon does); it is also kept in the
 * machine's state, so that `machinactl shell/exec/login` run what they enter with it.
 *
 * -L: `context="LABEL"` is appended to the mount options of the API file systems nspawn labels:
 * every tmpfs it mounts (/tmp, /dev, /dev/shm, /run, --tmpfs=, the --volatile= roots and /var)
 * and /dev/pts (nspawn-mount.c tmpfs_patch_options(), nspawn.c setup_pts()). Not mqueue, sysfs,
 * proc, cgroup2 or the credentials ramfs, which nspawn 252 mounts without it, nor the tmpfs
 * under -x, where nspawn copies the image instead of using a tmpfs.
 *
 * Both need SELinux enabled on the host; without it nspawn fails later (setexeccon or mount
 * EINVAL); machina refuses before anything is touched.
 */
import { MachinaError } from "../errors.ts";
import type { HostFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";
import type { RootSetup, SetupOp } from "./types.ts";

/** The flag as the user spelled it (`-Z`, `--selinux-context`), for messages. */
function spelled(settings: Settings, key: "selinuxContext" | "selinuxApifsContext", long: string): string {
  const src = settings.provenance.get(key);
  return src?.kind === "cli" && src.flag.startsWith("--") ? `${src.flag}=` : src?.kind === "cli" ? src.flag : long;
}

/** Refuse -Z/-L on a host without SELinux: one line, before anything is touched. */
export function checkSelinux(settings: Settings, host: HostFacts): void {
  if (host.selinux.enabled) return;
  for (const [key, long] of [
    ["selinuxContext", "--selinux-context="],
    ["selinuxApifsContext", "--selinux-apifs-context="],
  ] as const) {
    if (settings[key] === undefined) continue;
    const flag = spelled(settings, key, long);
    throw new MachinaError("E_UNSUPPORTED", `${flag} requires SELinux, which is not enabled on this host`, { flag, value: settings[key] });
  }
}

/** `OPTIONS,context="LABEL"` (nspawn's tmpfs_patch_options: appended last, in double quotes). */
export function withContext(data: string, label: string): string {
  return `${data}${data === "" ? "" : ","}context="${label}"`;
}

/** The setup ops with -L applied: every tmpfs and devpts mount gets the context. */
export function labelApiFs(ops: SetupOp[], label: string | undefined): SetupOp[] {
  if (label === undefined) return ops;
  return ops.map((op) => (op.op === "mount" && (op.fstype === "tmpfs" || op.fstype === "devpts") ? { ...op, data: withContext(op.data, label) } : op));
}

/** -L for the root's tmpfs (--volatile=yes, --volatile=overlay's upper); not -x (see above). */
export function labelRootMode(setup: RootSetup, label: string | undefined, ephemeral: boolean): RootSetup {
  if (label === undefined || ephemeral || setup.rootMode === undefined) return setup;
  return { ...setup, rootMode: { ...setup.rootMode, data: withContext(setup.rootMode.data, label) } };
}
