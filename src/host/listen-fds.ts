/**
 * The path an inherited fd listens on, for socket activation (src/daemon/activation.ts): the
 * fd's socket inode (/proc/self/fd/N → "socket:[INODE]") looked up in /proc/net/unix, whose
 * entry says whether it listens (__SO_ACCEPTCON), its type, and the path it is bound to.
 */
import { readFileSync, readlinkSync } from "node:fs";

/** __SO_ACCEPTCON in /proc/net/unix's Flags: the socket listens. */
const ACCEPTCON = 0x10000;
/** SOCK_STREAM in its Type column. */
const STREAM = 1;

/**
 * One /proc/net/unix table (its header first): inode → path of each listening stream socket
 * bound to a path (not abstract, not unnamed).
 */
export function listeningUnixPaths(table: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of table.split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [flags, type, inode, path] = [Number.parseInt(f[3]!, 16), Number.parseInt(f[4]!, 16), f[6]!, f.slice(7).join(" ")];
    if ((flags & ACCEPTCON) !== 0 && type === STREAM && path.startsWith("/")) out.set(inode, path);
  }
  return out;
}

/** fd → the path it listens on, undefined for an fd that is not a listening Unix stream socket bound to a path. */
export function inheritedSocketPaths(fds: readonly number[]): Map<number, string | undefined> {
  const out = new Map<number, string | undefined>();
  if (fds.length === 0) return out;
  const listening = listeningUnixPaths(readFileSync("/proc/net/unix", "utf8"));
  for (const fd of fds) {
    let link = "";
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // not open
    }
    const inode = /^socket:\[([0-9]+)\]$/.exec(link)?.[1];
    out.set(fd, inode === undefined ? undefined : listening.get(inode));
  }
  return out;
}
