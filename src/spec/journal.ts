/**
 * --link-journal= (systemd-nspawn's setup_journal): make the container's persistent journal,
 * /var/log/journal/MACHINE-ID, visible on the host. The machine id is the image's
 * /etc/machine-id; the host directory is /var/log/journal (MACHINA_HOST_JOURNAL_DIR for tests).
 *
 *   host   the journal lives on the host: HOSTDIR/ID (created) is bind-mounted into the guest
 *   guest  the journal lives in the image: HOSTDIR/ID becomes a symlink to it
 *   try-*  the same, but a missing host journal directory, a read-only image or equal machine
 *          ids are no error (nothing is linked)
 *   auto   HOSTDIR/ID a directory: bind it; a symlink to the guest's directory: keep it; else nothing
 *   no     nothing; also nothing with --ephemeral
 * Pure: host-side effects are records (host_mkdir, host_symlink) the supervisor carries out.
 */
import { MachinaError } from "../errors.ts";
import type { ImageFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";
import { MS } from "./mount-flags.ts";
import type { RootSetup, SetupOp } from "./types.ts";

export interface JournalPlan {
  ops: SetupOp[];
  hostMkdirs: RootSetup["hostMkdirs"];
  hostSymlinks: RootSetup["hostSymlinks"];
}

export function planJournal(settings: Settings, image: ImageFacts, writable: boolean): JournalPlan {
  const none: JournalPlan = { ops: [], hostMkdirs: [], hostSymlinks: [] };
  const mode = settings.linkJournal;
  const id = image.machineId;
  const facts = image.mounts?.journal;
  if (mode === "no" || settings.ephemeral || id === undefined || facts === undefined) return none;
  const tryOnly = mode === "auto" || mode.startsWith("try-");
  const kind = mode === "auto" ? "auto" : mode.endsWith("guest") ? "guest" : "host";
  const fail = (message: string): JournalPlan => {
    if (tryOnly) return none;
    throw new MachinaError("E_INVALID", message, { flag: "--link-journal", value: mode });
  };
  if (facts.hostMachineId === id) return fail(`Host and machine ids are equal (${id}): refusing to link journals`);

  const guestDir = `/var/log/journal/${id}`;
  const hostEntry = `${facts.hostDir}/${id}`;
  const guestOnHost = `${image.root === "/" ? "" : image.root}${guestDir}`;
  const mkdirGuest: SetupOp = { op: "mkdir", path: guestDir, mode: 0o755 };
  const bind: SetupOp = { op: "mount", source: hostEntry, target: guestDir, fstype: "", flags: MS.BIND, data: "", create: "dir" };

  if (!writable && kind !== "auto") return fail(`cannot create ${guestDir} in a read-only container`);
  if (facts.entryKind === "symlink") {
    if ((kind === "guest" || kind === "auto") && facts.entryTarget === guestOnHost) return writable ? { ...none, ops: [mkdirGuest] } : none;
    if (kind === "auto") return none;
    if (kind === "host") return fail(`${hostEntry} is a symlink; refusing to use it for the container's journal`);
  }
  if (kind === "guest") {
    if (!facts.hostDirExists) return fail(`the host has no persistent journal directory ${facts.hostDir}`);
    if (facts.entryKind !== undefined && facts.entryKind !== "dir" && facts.entryKind !== "symlink")
      return fail(`${hostEntry} already exists and is neither a symlink nor a directory`);
    return { ops: [mkdirGuest], hostMkdirs: [], hostSymlinks: [{ target: guestOnHost, path: hostEntry }] };
  }
  if (kind === "host") {
    if (!facts.hostDirExists) return fail(`the host has no persistent journal directory ${facts.hostDir}`);
    if (facts.entryKind !== undefined && facts.entryKind !== "dir") return fail(`${hostEntry} exists and is not a directory`);
    return { ops: [bind], hostMkdirs: [{ path: hostEntry, mode: 0o755 }], hostSymlinks: [] };
  }
  // auto: only an existing host directory is linked
  if (facts.entryKind === "dir") return writable ? { ...none, ops: [bind] } : none;
  return none;
}
