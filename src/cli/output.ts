/**
 * Plain writes to stdout/stderr. process.stdout/process.stderr cost ~9 ms to set up in Bun,
 * a fifth of a container start, so the commands write to the fds directly.
 */
import { writeSync } from "node:fs";

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, "utf8");
  let off = 0;
  while (off < bytes.length) {
    try {
      off += writeSync(fd, bytes, off);
    } catch (e) {
      if (e instanceof Error && "code" in e && e.code === "EAGAIN") continue;
      if (e instanceof Error && "code" in e && e.code === "EPIPE") return;
      throw e;
    }
  }
}

export const out = (text: string): void => writeAll(1, text);
/** To an fd the caller gave us (MACHINA_STATUS_FD). */
export const toFd = (fd: number, text: string): void => writeAll(fd, text);
export const err = (text: string): void => writeAll(2, text);
