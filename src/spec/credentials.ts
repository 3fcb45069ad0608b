/**
 * Credentials (--set-credential=, --load-credential=): files in /run/host/credentials/ on a ramfs
 * of their own (directory 0500, files 0400, mounted read-only, nosuid, nodev, noexec) and
 * $CREDENTIALS_DIRECTORY in PID 1's environment, as systemd-nspawn does. Pure.
 */
import { invalidError } from "../errors.ts";
import type { HostFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";
import { MS } from "./mount-flags.ts";
import type { SetupOp } from "./types.ts";

export const CREDENTIALS_DIR = "/run/host/credentials";

/** Ops that must run while /run/host is still writable (before it is sealed). */
export function credentialDirOps(settings: Settings): SetupOp[] {
  return settings.credentials.length === 0 ? [] : [{ op: "mkdir", path: CREDENTIALS_DIR, mode: 0o500 }];
}

/** Ops after /run/host is sealed: the ramfs, the files, the read-only remount. */
export function credentialOps(settings: Settings, host: HostFacts): SetupOp[] {
  if (settings.credentials.length === 0) return [];
  const ops: SetupOp[] = [
    { op: "mount", source: "none", target: CREDENTIALS_DIR, fstype: "ramfs", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "mode=0500", create: "none" },
  ];
  for (const c of settings.credentials) {
    const path = `${CREDENTIALS_DIR}/${c.id}`;
    if (c.value.kind === "literal") {
      ops.push({ op: "write", path, mode: 0o400, content: c.value.data });
      continue;
    }
    let source = c.value.path;
    if (!source.startsWith("/")) {
      // As systemd: a relative path is looked up in the caller's own credentials.
      const dir = host.env["CREDENTIALS_DIRECTORY"];
      if (!dir)
        throw invalidError(`--load-credential=${c.id}:${source}: a relative path needs $CREDENTIALS_DIRECTORY (else give an absolute path)`, {
          flag: "--load-credential",
          value: source,
        });
      source = `${dir}/${source}`;
    }
    ops.push({ op: "copy", source, path, mode: 0o400 });
  }
  ops.push({ op: "rebind", target: CREDENTIALS_DIR, flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, optional: false });
  return ops;
}

export function credentialEnv(settings: Settings): string[] {
  return settings.credentials.length === 0 ? [] : [`CREDENTIALS_DIRECTORY=${CREDENTIALS_DIR}`];
}
