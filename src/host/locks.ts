/** flock(2) questions asked of lock files, through the Host. */
import type { Host } from "./host.ts";

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
