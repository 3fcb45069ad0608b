/**
 * Images in use by running containers, as machinectl's /run/systemd/nspawn/locks/: a running
 * container holds an flock(2) on one lock file per image it uses, named after the image's
 * device and inode ($STATE_DIR/image-use/DEV-INO, so a rename or a symlink in the pool does not
 * change it). The supervisor (native helper) takes these locks (`image_lock` records) right after
 * its registry lock and holds them for its whole life; the kernel drops them when it exits,
 * however it ends (kill -9 too), so a stale lock cannot exist.
 *
 *   root image (directory, subvolume, .raw file)   exclusive; shared when the container cannot
 *                                                  write it (--read-only, -x, --volatile)
 *   --template base                                shared
 *
 * Image commands that change or remove an image (remove, rename, read-only, import --force)
 * take the same lock exclusively for as long as they work, so they fail with E_BUSY while a
 * container uses the image, and a container cannot start while they run.
 */
import { MachinaError } from "../errors.ts";
import type { HeldLock, Host } from "../host/host.ts";
import type { Settings } from "../settings/settings.ts";
import type { ImageLock } from "../spec/types.ts";

export type ImageLockMode = ImageLock["mode"];

export function imageUseDir(stateDir: string): string {
  return `${stateDir}/image-use`;
}

/** Pure: the images a container with these settings uses, and how (see the table above). */
export function imagesOfContainer(settings: Settings): Array<{ path: string; mode: ImageLockMode }> {
  const out: Array<{ path: string; mode: ImageLockMode }> = [];
  const root = settings.image ?? settings.directory;
  if (root !== undefined) {
    const writes = !settings.readOnly && !settings.ephemeral && settings.volatile === "no";
    out.push({ path: root, mode: writes ? "exclusive" : "shared" });
  }
  if (settings.template !== undefined) out.push({ path: settings.template, mode: "shared" });
  return out;
}

/** The lock file of the image at `path` (followed), or undefined when it does not exist. */
export function imageLockPath(host: Host, stateDir: string, path: string): string | undefined {
  const st = host.stat(path, true);
  return st === undefined ? undefined : `${imageUseDir(stateDir)}/${st.dev}-${st.ino}`;
}

/** The `image_lock` records for a container (the lock directory is made here; the helper takes the locks). */
export function planImageLocks(host: Host, stateDir: string, settings: Settings): ImageLock[] {
  const out: ImageLock[] = [];
  for (const { path, mode } of imagesOfContainer(settings)) {
    const lock = imageLockPath(host, stateDir, path);
    if (lock === undefined || out.some((l) => l.path === lock)) continue;
    out.push({ path: lock, mode, image: host.realpath(path) ?? path });
  }
  if (out.length > 0) host.mkdirp(imageUseDir(stateDir), 0o755);
  return out;
}

/**
 * Hold the image at `target` unused (its lock, exclusively) while an operation changes it.
 * Throws E_BUSY naming the machines that use it (`users`, asked only when the lock is held).
 */
export function claimUnused(host: Host, stateDir: string, target: string, what: string, image: string, users: () => string[]): HeldLock {
  const path = imageLockPath(host, stateDir, target);
  if (path === undefined) return { fd: -1, release: () => undefined };
  host.mkdirp(imageUseDir(stateDir), 0o755);
  const lock = host.lockFile(path, "exclusive");
  if (lock !== undefined) return lock;
  const names = users();
  const by = names.length > 0 ? `the running machine ${names.map((u) => `"${u}"`).join(", ")}` : "a running container";
  throw new MachinaError("E_BUSY", `cannot ${what} image "${image}": it is in use by ${by}`, {
    ...(names[0] !== undefined ? { machine: names[0] } : {}),
    path: target,
  });
}
