/**
 * The Host interface: every effect machina has on, or reads from, the operating system goes
 * through an implementation of this (LinuxHost for real, FakeHost in tests).
 */
export type FileKind = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

/** What lstat/stat report about one path (image pool, transfers). */
export interface FileStat {
  kind: FileKind;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Bytes allocated on disk (st_blocks * 512). */
  allocated: number;
  dev: number;
  ino: number;
  mtimeMs: number;
  /** statx birth time; 0 when the file system does not record it. */
  birthtimeMs: number;
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
  /** With maxCaptureBytes: which output was longer and was cut. */
  truncated?: { stdout: boolean; stderr: boolean };
}

/** Options of Host.runAsync. */
export interface RunAsyncOptions {
  /** Bytes for stdin; default /dev/null; "inherit": this process's stdin. */
  input?: Uint8Array | "inherit";
  /** stdout/stderr: captured (default) or this process's own. */
  output?: "capture" | "inherit";
  /** Environment (default: this process's). */
  env?: Record<string, string>;
  /** A spec for the helper, readable on inherited fd 3; "3" is appended to argv. */
  spec?: Uint8Array;
  /** Kill the program (SIGKILL) after this long. */
  timeoutMs?: number;
  /** argv[0] as the program sees it, when it is not argv's first element (the path run). */
  argv0?: string;
  /** File descriptors the program inherits as 3, 4, … (after a spec's). */
  fds?: number[];
  /** SIGTERM to the program when this aborts (it undoes its own work, e.g. debootstrap's mounts). */
  signal?: AbortSignal;
  /** Each complete line of captured stdout/stderr as it arrives (the output is still returned). */
  onLine?: (line: string) => void;
  /** Keep at most this many bytes of each captured output (the rest is read and dropped: memory stays bounded). */
  maxCaptureBytes?: number;
}

/** A program started by Host.spawnDetached. */
export interface DetachedChild {
  pid: number;
  /** Our end of the pipe on the child's fd 4 (the helper's status lines). */
  status: ReadableStream<Uint8Array>;
  /** Close our end of the status pipe (already closed is fine). */
  closeStatus(): void;
  /** Resolves with its exit status (128+N when killed by signal N) while this process is its parent. */
  exited: Promise<number>;
}

/** A program on a pseudo-terminal (Host.spawnOnPty). */
export interface PtyChild {
  pid: number;
  /** The terminal's output, chunk by chunk; called until the program and its terminal are gone. */
  onData(listener: (chunk: Uint8Array) => void): void;
  /** Stop and go on reading the terminal (the reader is slower than the program). */
  pause(): void;
  resume(): void;
  write(data: Uint8Array): void;
  resize(rows: number, cols: number): void;
  /** Its exit status (128+N: signal N), once it ended and its terminal was read to the end. */
  exited: Promise<number>;
  kill(signal: number): void;
}

/** A fifo's read end, never blocking. */
export interface FifoReader {
  /** What is there now; "open": a writer has it open (more may come), "eof": no writer has it open. */
  read(): { text: string; state: "open" | "eof" };
  close(): void;
}

export interface HeldLock {
  /** The open lock file descriptor (pass it to children to keep the lock while they run). */
  fd: number;
  release(): void;
}

/** Whether a Host method failed for want of permission (EACCES, EPERM): another user than root reading root's files. */
export const isPermissionError = (e: unknown): boolean => e instanceof Error && "code" in e && (e.code === "EACCES" || e.code === "EPERM");

export interface Host {
  /** Kind of the path itself (no symlink following), or undefined when missing. */
  lstat(path: string): FileKind | undefined;
  readlink(path: string): string;
  /** Whole file as UTF-8, or undefined when missing. Follows symlinks (host paths only). */
  readFile(path: string): string | undefined;
  /** access(2) with W_OK: false on a read-only file system or without permission. */
  writable(path: string): boolean;
  /** realpath(3), or undefined when missing. */
  realpath(path: string): string | undefined;
  isatty(fd: number): boolean;
  env(): Readonly<Record<string, string | undefined>>;
  pid(): number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot), as a string. */
  processStartTime(pid: number): string | undefined;
  /** CLOCK_REALTIME in microseconds. */
  nowUsec(): bigint;
  randomHex(bytes: number): string;
  /** Contents of /proc/self/mountinfo. */
  mountinfo(): string;
  /** Names in a directory ([] when missing). */
  readdir(path: string): string[];
  /** Modification time in milliseconds since the epoch, or undefined when missing. */
  mtimeMs(path: string): number | undefined;
  /** Exclusive flock without waiting; undefined when it is held elsewhere or missing. */
  tryLock(path: string): { release(): void } | undefined;
  /** Owner of the path (symlinks followed), or undefined when missing. */
  owner(path: string): { uid: number; gid: number } | undefined;
  /** symlink(2): create `path` pointing at `target`; throws (EEXIST) when `path` exists. */
  symlink(target: string, path: string): void;
  /** Remove a file or symlink; missing is fine. */
  unlink(path: string): void;
  /** Remove a directory and the (empty) directories below it, deepest first (cgroups). */
  removeDirTree(path: string): void;
  /**
   * Replace the current process by `path` with the given spec bytes readable on an inherited
   * fd, whose number is appended to argv. The real host never returns (it throws on
   * failure); a fake records the call and returns the exit status it was told to.
   */
  execWithSpec(path: string, argv: string[], spec: Uint8Array): number;
  /**
   * Start the helper with a spec on fd 3 and a new pseudo-terminal of this host as its stdin,
   * stdout, stderr and controlling terminal (machinad's shell over a WebSocket): its output
   * arrives through onData, input and the window size go in.
   */
  spawnOnPty(argv: string[], options: { spec: Uint8Array; env: Record<string, string>; rows: number; cols: number }): PtyChild;
  /**
   * Replace this process by PATH (execve(2)) with ARGV and exactly ENV, in directory CWD (`/`
   * when CWD cannot be entered). The real host never returns (it throws on failure); a fake
   * records the call and returns 0.
   */
  execProgram(path: string, argv: string[], env: Record<string, string>, cwd: string): number;

  // --- image pool and storage (src/image/) ---
  /** stat(2) (follow) or lstat(2) details; undefined when missing. */
  stat(path: string, follow: boolean): FileStat | undefined;
  /** File system type name of the path ("btrfs", "ext2/ext3", "tmpfs", "xfs", …), as `stat -f -c %T`. */
  fsType(path: string): string | undefined;
  /** mkdir -p with the given mode for the directories it creates. */
  mkdirp(path: string, mode: number): void;
  /**
   * rename(2); with noReplace renameat2(RENAME_NOREPLACE): throws an Error with code "EEXIST"
   * when the target exists. Errors carry Node's `code` ("ENOENT", "EEXIST", "EXDEV", …).
   */
  rename(from: string, to: string, noReplace: boolean): void;
  /** rm -rf of a file, symlink or directory tree on one file system (btrfs subvolumes below included); missing is fine. */
  removeTree(path: string): void;
  /**
   * flock(2) on a lock file, created (0600) when missing, without waiting. undefined when
   * another open file description holds a conflicting lock.
   */
  lockFile(path: string, mode: "exclusive" | "shared"): HeldLock | undefined;
  /** Run a command to completion, stdin from /dev/null (or `input`); `fds` are inherited by the child as fds 3, 4, … */
  run(argv: string[], options?: { fds?: number[]; input?: string }): CommandResult;
  /** chmod(2) (follows symlinks). */
  chmod(path: string, mode: number): void;
  /** chown(2) (follows symlinks). */
  chown(path: string, uid: number, gid: number): void;
  /** Copy a regular file's bytes to `to` (created or truncated; symlinks followed). */
  copyFile(from: string, to: string): void;
  /** FS_IOC_GETFLAGS & FS_IMMUTABLE_FL (chattr +i); false where the file system has no such flag. */
  immutable(path: string): boolean;
  /** FS_IOC_SETFLAGS: set or clear FS_IMMUTABLE_FL. */
  setImmutable(path: string, on: boolean): void;
  /** An extended attribute (getxattr(2), symlinks followed) as UTF-8; undefined when the file has none of that name. */
  getXattr(path: string, name: string): string | undefined;
  /** setxattr(2) (symlinks followed): create or replace; throws when the file system refuses it. */
  setXattr(path: string, name: string, value: string): void;
  /** BTRFS_IOC_SUBVOL_GETFLAGS & BTRFS_SUBVOL_RDONLY for a subvolume root. */
  btrfsReadOnly(path: string): boolean;
  /** Bytes of a file at an offset (short at the end of the file). */
  readAt(path: string, offset: number, length: number): Uint8Array;
  /**
   * A free loop device backed by `file` (LOOP_CONFIGURE with LO_FLAGS_AUTOCLEAR, read-only when
   * asked), covering `size` bytes from `offset` (0 = to the end; a partition found by the
   * caller), or the whole file with a partition scan. The returned fd keeps it; once it is
   * closed, the device goes away with its last mount.
   */
  attachLoop(file: string, readOnly: boolean, range?: { offset: number; size: number }): { device: string; fd: number };
  closeFd(fd: number): void;
  /** mount(2); flags as MS_* numbers. */
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  /** umount2(2), MNT_DETACH when `lazy`; not mounted / missing is fine. */
  umount(target: string, lazy: boolean): void;

  // --- networking (src/net/) ---
  /** Create or truncate a file with the content (mode for a new file, default 0644). Not atomic: rename a temporary over it. */
  writeFile(path: string, content: string, mode?: number): void;
  /** kill(2); false when the process does not exist (ESRCH). */
  kill(pid: number, signal: number): boolean;

  // --- processes and time for the event loop (src/machine/, machinad) ---
  /**
   * Run a program to completion without blocking the event loop (run() blocks it): the helper
   * with a spec on fd 3, journalctl, systemctl, busctl. Status is 128+N when killed by signal N;
   * with output "inherit" stdout/stderr are "".
   */
  runAsync(argv: string[], options?: RunAsyncOptions): Promise<CommandResult>;
  /**
   * Start `path` (argv[0] = `argv[0]`… as given, "3" appended) in a new session (setsid), with an
   * empty environment, `spec` readable on fd 3, stdout and stderr on `logPath` (created 0600, or
   * truncated; O_APPEND) and a pipe on fd 4 for its status lines. The helper's background start.
   */
  spawnDetached(argv: string[], options: { spec: Uint8Array; logPath: string }): DetachedChild;
  /**
   * Start `path` as spawnDetached does, but in our session with our stdin, stdout and stderr and
   * environment `env` (machina-oci: the container gets the caller's stdio, as runc's).
   */
  spawnWithStatus(argv: string[], options: { spec: Uint8Array; env: Record<string, string> }): DetachedChild;
  /**
   * A hint that spawnWithStatus(argv, { env }) follows once its spec is planned: a host that can
   * start the program ahead (machina-oci's front end, src/daemon/oci-door.ts) does.
   */
  announceSpawn?(argv: string[], env: Record<string, string>): void;
  /** mkfifo(path, mode), then chmod to mode (no umask). */
  mkfifo(path: string, mode: number): void;
  /** Open the fifo for reading, without waiting for a writer (the reader stays while it is open). */
  openFifo(path: string): FifoReader;
  sleep(ms: number): Promise<void>;
  /** Milliseconds from a monotonic clock. */
  monotonicMs(): number;
}
