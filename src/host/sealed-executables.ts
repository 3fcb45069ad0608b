/**
 * Sealed in-memory copies of executables, kept by a long-running process (machinad's planner for
 * machina-oci's front end): machina-helper re-executes itself from a sealed memfd before it goes
 * near a container (native/main.c reexec_sealed: no process in a container can reach the host's
 * binary through /proc/PID/exe), and a helper started from such a copy skips that second exec.
 * The copy is reached by path as /proc/OUR_PID/fd/N (root only), and made again when the file
 * changes (its device, inode, size or modification time).
 */
import { closeSync, readFileSync, statSync } from "node:fs";
import { sealedCopy } from "./libc.ts";

interface Copy {
  key: string;
  fd: number;
}

const MAX_COPIES = 4;
const RETIRE_MS = 60_000;

export class SealedExecutables {
  private readonly copies = new Map<string, Copy>();
  private readonly retired = new Set<number>();

  /** The path to exec for `path`: its sealed copy, or `path` itself when no copy can be made. */
  pathFor(path: string): string {
    let key: string;
    try {
      const st = statSync(path, { bigint: true });
      if (!st.isFile()) return path;
      key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch {
      return path; // the exec will say what is wrong with it
    }
    const known = this.copies.get(path);
    if (known?.key === key) return `/proc/${process.pid}/fd/${known.fd}`;
    try {
      const fd = sealedCopy(path, readFileSync(path));
      if (known !== undefined) this.retire(known.fd);
      this.copies.delete(path);
      // a few programs at most (MACHINA_HELPER may name others): the oldest goes
      for (const [old, c] of this.copies) {
        if (this.copies.size < MAX_COPIES) break;
        this.retire(c.fd);
        this.copies.delete(old);
      }
      this.copies.set(path, { key, fd });
      return `/proc/${process.pid}/fd/${fd}`;
    } catch {
      return path;
    }
  }

  /**
   * Closed a while later: a front end may be about to execute /proc/OUR_PID/fd/N, and while N
   * stays open no other file can take its number.
   */
  private retire(fd: number): void {
    this.retired.add(fd);
    setTimeout(() => {
      if (this.retired.delete(fd)) closeSync(fd);
    }, RETIRE_MS).unref();
  }

  close(): void {
    for (const c of this.copies.values()) closeSync(c.fd);
    for (const fd of this.retired) closeSync(fd);
    this.copies.clear();
    this.retired.clear();
  }
}
