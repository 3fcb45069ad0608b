/**
 * The Host interface: every effect machina has on, or reads from, the operating system goes
 * through an implementation of this (LinuxHost for real, FakeHost in tests).
 */
export type FileKind = "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket";

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
}
