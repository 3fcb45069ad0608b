/**
 * The few libc calls Bun has no API for (memfd_create, execve, fcntl, xattrs, a Unix datagram),
 * through bun:ffi.
 * Loaded lazily so that importing host/ costs nothing until a call is made.
 */
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { closeSync, openSync, writeSync } from "node:fs";

const symbols = {
  memfd_create: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  isatty: { args: [FFIType.i32], returns: FFIType.i32 },
  renameat2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  umount2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  getxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  setxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  mkfifo: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  posix_openpt: { args: [FFIType.i32], returns: FFIType.i32 },
  grantpt: { args: [FFIType.i32], returns: FFIType.i32 },
  unlockpt: { args: [FFIType.i32], returns: FFIType.i32 },
  ptsname_r: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
} as const;

type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let libc: Libc | undefined;

function lib(): Libc {
  libc ??= dlopen("libc.so.6", symbols).symbols;
  return libc;
}

export function errno(): number {
  const p = lib().__errno_location();
  return p === null ? 0 : read.i32(p as Pointer, 0);
}

const cstr = (s: string) => Buffer.from(s + "\0", "utf8");

export class SyscallError extends Error {
  constructor(
    readonly syscall: string,
    readonly errnoValue: number,
    readonly path?: string,
  ) {
    super(`${syscall}${path ? ` "${path}"` : ""} failed: errno ${errnoValue}`);
  }
}

/** memfd_create(name, 0): the fd survives execve (no MFD_CLOEXEC). */
export function memfdCreate(name: string): number {
  const fd = lib().memfd_create(cstr(name), 0);
  if (fd < 0) throw new SyscallError("memfd_create", errno());
  return fd;
}

/**
 * A sealed copy of the file at path in a memfd (write, grow, shrink and further seals refused):
 * what machina-helper re-executes itself from (native/main.c reexec_sealed), made once ahead.
 * The fd is close-on-exec; the caller keeps it.
 */
export function sealedCopy(path: string, bytes: Uint8Array): number {
  const MFD_CLOEXEC = 1;
  const MFD_ALLOW_SEALING = 2;
  const F_ADD_SEALS = 1033;
  const SEALS = 1 | 2 | 4 | 8; // F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE
  const fd = lib().memfd_create(cstr(path.slice(path.lastIndexOf("/") + 1)), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw new SyscallError("memfd_create", errno(), path);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    if (lib().fcntl(fd, F_ADD_SEALS, SEALS) < 0) throw new SyscallError("fcntl(F_ADD_SEALS)", errno(), path);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** mkfifo(path, mode) (the umask applies). */
export function mkfifo(path: string, mode: number): void {
  if (lib().mkfifo(cstr(path), mode) < 0) throw new SyscallError("mkfifo", errno(), path);
}

/** prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants become our children (waitable). */
export function setChildSubreaper(): void {
  if (lib().prctl(36 /* PR_SET_CHILD_SUBREAPER */, 1n, 0n, 0n, 0n) < 0) throw new SyscallError("prctl", errno());
}

/**
 * waitpid(pid) until it ends (EINTR retried): its status as a shell reports it (the exit code,
 * or 128+N when killed by signal N). Blocks the whole process: for `machina-oci run` only.
 */
export function waitpidBlocking(pid: number): number {
  const status = new Int32Array(1);
  for (;;) {
    const r = lib().waitpid(pid, status, 0);
    if (r === pid) break;
    if (r < 0 && errno() !== 4 /* EINTR */) throw new SyscallError("waitpid", errno());
  }
  const s = status[0]!;
  const sig = s & 0x7f;
  return sig === 0 ? (s >> 8) & 0xff : 128 + sig;
}

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

/** Clear O_NONBLOCK (Bun may set it on stdio pipes; a container must get blocking stdio). */
export function clearNonBlocking(fd: number): void {
  const flags = lib().fcntl(fd, F_GETFL, 0);
  if (flags >= 0 && flags & O_NONBLOCK) lib().fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Mark `fd` close-on-exec (an inherited fd nothing this process runs may get). */
export function setCloseOnExec(fd: number): void {
  const flags = lib().fcntl(fd, F_GETFD, 0);
  if (flags < 0 || lib().fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) throw new SyscallError("fcntl", errno());
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

/**
 * One datagram to the Unix socket `path` ("@NAME": an abstract one), as sd_notify(3) sends it.
 * Throws SyscallError when it cannot be sent.
 */
export function sendDatagram(path: string, message: string): void {
  const name = Buffer.from(path.startsWith("@") ? `\0${path.slice(1)}` : path, "utf8");
  if (name.length > 107) throw new SyscallError("sendto", 36 /* ENAMETOOLONG */, path);
  // struct sockaddr_un: sun_family (u16), sun_path[108]; an abstract name's length counts, not a NUL
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  const addrLen = 2 + name.length + (path.startsWith("@") ? 0 : 1);
  const fd = lib().socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError("socket", errno());
  try {
    const body = Buffer.from(message, "utf8");
    if (Number(lib().sendto(fd, body, BigInt(body.length), MSG_NOSIGNAL, addr, addrLen)) < 0) throw new SyscallError("sendto", errno(), path);
  } finally {
    lib().close(fd);
  }
}

/** execve(2). Returns only on failure, by throwing. */
export function execve(path: string, argv: readonly string[], envp: readonly string[]): never {
  const keep: Buffer[] = [];
  const vector = (items: readonly string[]) => {
    const arr = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      arr[i] = BigInt(ptr(b));
    });
    return arr;
  };
  const argvArr = vector(argv);
  const envArr = vector(envp);
  const pathBuf = cstr(path);
  lib().execve(pathBuf, argvArr, envArr);
  const e = errno();
  void keep;
  throw new SyscallError("execve", e, path);
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** flock(fd, LOCK_EX|LOCK_NB): false when another open file description holds a lock. */
export function tryFlockExclusive(fd: number): boolean {
  return lib().flock(fd, LOCK_EX | LOCK_NB) === 0;
}

/** isatty(3) (node:tty costs several milliseconds to load in Bun). */
export function isatty(fd: number): boolean {
  return lib().isatty(fd) === 1;
}

const LOCK_SH = 1;

/** flock(fd, LOCK_SH|LOCK_NB). */
export function tryFlockShared(fd: number): boolean {
  return lib().flock(fd, LOCK_SH | LOCK_NB) === 0;
}

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  25: "ENOTTY",
  30: "EROFS",
  39: "ENOTEMPTY",
  95: "EOPNOTSUPP",
};

/** An Error shaped like Node's fs errors (code, errno, syscall, path). */
export function errnoError(syscall: string, e: number, path?: string): Error {
  const code = ERRNO_NAMES[e] ?? `errno ${e}`;
  return Object.assign(new Error(`${code}: ${syscall}${path ? ` "${path}"` : ""}`), { code, errno: -e, syscall, ...(path ? { path } : {}) });
}

/** renameat2(AT_FDCWD, from, AT_FDCWD, to, noReplace ? RENAME_NOREPLACE : 0). */
export function renameat2(from: string, to: string, noReplace: boolean): void {
  if (lib().renameat2(AT_FDCWD, cstr(from), AT_FDCWD, cstr(to), noReplace ? RENAME_NOREPLACE : 0) !== 0) throw errnoError("renameat2", errno(), to);
}

/** ioctl(fd, request, &value) with a 64-bit in/out value (the kernel reads an int for FS_IOC_*FLAGS). */
export function ioctlValue(fd: number, request: bigint, value: bigint = 0n): bigint {
  const buf = new BigUint64Array([value]);
  if (lib().ioctl(fd, request, ptr(buf)) !== 0) throw errnoError("ioctl", errno());
  return buf[0]!;
}

/** ioctl(fd, request, buf): the return value (>= 0), or throws. buf may be null (an unused argument). */
export function ioctlBuffer(fd: number, request: bigint, buf: Uint8Array | null): number {
  const r = lib().ioctl(fd, request, buf === null ? null : ptr(buf));
  if (r < 0) throw errnoError("ioctl", errno());
  return r;
}

/** mount(2). */
export function mount(source: string, target: string, fstype: string | null, flags: number, data: string | null): void {
  const r = lib().mount(cstr(source), cstr(target), fstype === null ? null : cstr(fstype), BigInt(flags), data === null ? null : cstr(data));
  if (r !== 0) throw errnoError("mount", errno(), target);
}

/** umount2(2). */
export function umount2(target: string, flags: number): void {
  if (lib().umount2(cstr(target), flags) !== 0) throw errnoError("umount2", errno(), target);
}

const ENODATA = 61;
const ERANGE = 34;

/** getxattr(2) (symlinks followed): the value as UTF-8, or undefined when `path` has no such attribute. */
export function getXattr(path: string, name: string): string | undefined {
  for (let size = 256; size <= 65536; size *= 16) {
    const buf = Buffer.alloc(size);
    const n = Number(lib().getxattr(cstr(path), cstr(name), buf, size));
    if (n >= 0) return buf.subarray(0, n).toString("utf8");
    const e = errno();
    if (e !== ERANGE) {
      if (e === ENODATA) return undefined;
      throw new SyscallError("getxattr", e, path);
    }
  }
  throw new SyscallError("getxattr", ERANGE, path);
}

/** setxattr(2) (symlinks followed), created or replaced. */
export function setXattr(path: string, name: string, value: string): void {
  const v = Buffer.from(value, "utf8");
  if (lib().setxattr(cstr(path), cstr(name), v.length > 0 ? v : Buffer.alloc(1), v.length, 0) !== 0) throw new SyscallError("setxattr", errno(), path);
}

const O_RDWR = 2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const TIOCSWINSZ = 0x5414n;

/** A new pseudo-terminal of this host's devpts: its master and its peer, both close-on-exec. */
export function openPty(): { master: number; peer: number; path: string } {
  const master = lib().posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) throw new SyscallError("posix_openpt", errno());
  try {
    if (lib().grantpt(master) !== 0) throw new SyscallError("grantpt", errno());
    if (lib().unlockpt(master) !== 0) throw new SyscallError("unlockpt", errno());
    const name = Buffer.alloc(128);
    const r = lib().ptsname_r(master, ptr(name), BigInt(name.length));
    if (r !== 0) throw new SyscallError("ptsname_r", r);
    const path = name.toString("utf8", 0, name.indexOf(0));
    const peer = openSync(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    return { master, peer, path };
  } catch (e) {
    closeSync(master);
    throw e;
  }
}

/** TIOCSWINSZ: the terminal's size (its foreground process group gets SIGWINCH). */
export function setWindowSize(fd: number, rows: number, cols: number): void {
  const ws = new Uint16Array([rows, cols, 0, 0]);
  ioctlBuffer(fd, TIOCSWINSZ, new Uint8Array(ws.buffer));
}
