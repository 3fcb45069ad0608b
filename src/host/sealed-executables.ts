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

export class SealedExecutables {
  private readonly copies = new Map<string, Copy>();

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
      if (known !== undefined) closeSync(known.fd);
      this.copies.set(path, { key, fd });
      return `/proc/${process.pid}/fd/${fd}`;
    } catch {
      return path;
    }
  }

  close(): void {
    for (const c of this.copies.values()) closeSync(c.fd);
    this.copies.clear();
  }
}
