/** The real Host: Linux through Bun's fs and, where Bun has no API, libc via FFI. */
import * as fs from "node:fs";
import type { FileKind, Host } from "./host.ts";
import { clearNonBlocking, execve, isatty, memfdCreate, tryFlockExclusive } from "./libc.ts";

function kindOf(st: fs.Stats): FileKind {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

const isMissing = (e: unknown) =>
  e instanceof Error && "code" in e && (e.code === "ENOENT" || e.code === "ENOTDIR" || e.code === "ELOOP");

export class LinuxHost implements Host {
  lstat(path: string): FileKind | undefined {
    try {
      return kindOf(fs.lstatSync(path));
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  readlink(path: string): string {
    return fs.readlinkSync(path);
  }

  readFile(path: string): string | undefined {
    try {
      return fs.readFileSync(path, "utf8");
    } catch (e) {
      if (isMissing(e) || (e instanceof Error && "code" in e && e.code === "EISDIR")) return undefined;
      throw e;
    }
  }

  writable(path: string): boolean {
    try {
      fs.accessSync(path, fs.constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  realpath(path: string): string | undefined {
    try {
      return fs.realpathSync(path);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  isatty(fd: number): boolean {
    return isatty(fd);
  }

  env(): Readonly<Record<string, string | undefined>> {
    return process.env;
  }

  pid(): number {
    return process.pid;
  }

  processStartTime(pid: number): string | undefined {
    const stat = this.readFile(`/proc/${pid}/stat`);
    if (stat === undefined) return undefined;
    // Fields after the command name (which may contain spaces and parentheses).
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19];
  }

  nowUsec(): bigint {
    return BigInt(Date.now()) * 1000n;
  }

  randomHex(bytes: number): string {
    const buf = new Uint8Array(bytes);
    crypto.getRandomValues(buf);
    return Buffer.from(buf).toString("hex");
  }

  mountinfo(): string {
    return fs.readFileSync("/proc/self/mountinfo", "utf8");
  }

  readdir(path: string): string[] {
    try {
      return fs.readdirSync(path);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  mtimeMs(path: string): number | undefined {
    try {
      return fs.lstatSync(path).mtimeMs;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  owner(path: string): { uid: number; gid: number } | undefined {
    try {
      const st = fs.statSync(path);
      return { uid: st.uid, gid: st.gid };
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  tryLock(path: string): { release(): void } | undefined {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
    if (!tryFlockExclusive(fd)) {
      fs.closeSync(fd);
      return undefined;
    }
    return { release: () => fs.closeSync(fd) };
  }

  unlink(path: string): void {
    try {
      fs.unlinkSync(path);
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  removeDirTree(path: string): void {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path, { withFileTypes: true });
    } catch (e) {
      if (isMissing(e)) return;
      throw e;
    }
    for (const entry of entries) if (entry.isDirectory()) this.removeDirTree(`${path}/${entry.name}`);
    try {
      fs.rmdirSync(path);
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
  }

  execWithSpec(path: string, argv: string[], spec: Uint8Array): number {
    const fd = memfdCreate("machina-spec");
    fs.writeSync(fd, spec);
    for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
    return execve(path, [...argv, String(fd)], []);
  }
}
