/** flock(2) questions asked of lock files, through the Host. */
import { MachinaError } from "../errors.ts";
import type { HeldLock, Host } from "./host.ts";

/**
 * An exclusive lock on `path` (created, with its directory), waited for — polled every 2 ms, as
 * the locks machina holds this way are held for milliseconds — for at most a minute; then
 * E_BUSY naming WHAT ("the network lock …").
 */
export function lockWaiting(host: Host, path: string, what: string): HeldLock {
  host.mkdirp(path.slice(0, path.lastIndexOf("/")) || "/", 0o755);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const lock = host.lockFile(path, "exclusive");
    if (lock !== undefined) return lock;
    if (Date.now() > deadline) throw new MachinaError("E_BUSY", `the ${what} lock "${path}" is held for more than a minute`, { path });
    Bun.sleepSync(2);
  }
}

/**
 * Whether another open file description holds a lock on `path`: tried without waiting and
 * released at once. A missing file is not held.
 */
export function lockHeld(host: Host, path: string): boolean {
  const lock = host.tryLock(path);
  if (lock !== undefined) {
    lock.release();
    return false;
  }
  return host.lstat(path) !== undefined;
}
