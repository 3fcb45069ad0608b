/** The real Host: Linux through Bun's fs and, where Bun has no API, libc via FFI. */
import * as fs from "node:fs";
import { spawning } from "./deps.ts";
import { isElf } from "../elf.ts";
import type { CommandResult, DetachedChild, FifoReader, FileKind, FileStat, HeldLock, Host, PtyChild, RunAsyncOptions } from "./host.ts";
import {
  clearNonBlocking,
  execve,
  getXattr,
  ioctlBuffer,
  ioctlValue,
  isatty,
  memfdCreate,
  sealedCopy,
  mkfifo,
  mount,
  renameat2,
  setXattr,
  tryFlockExclusive,
  tryFlockShared,
  umount2,
  openPty,
  setWindowSize,
} from "./libc.ts";

// statfs(2) f_type values, named as `stat -f -c %T` names them.
const FS_MAGIC: Record<number, string> = {
  0x9123683e: "btrfs",
  0xef53: "ext2/ext3",
  0x01021994: "tmpfs",
  0x58465342: "xfs",
  0x794c7630: "overlayfs",
  0xf2f52010: "f2fs",
  0x2fc12fc1: "zfs",
  0x9fa0: "proc",
  0x62656572: "sysfs",
  0x6969: "nfs",
  0x65735546: "fuseblk",
  0x4d44: "msdos",
  0x5346544e: "ntfs",
  0xcafe4a11: "bpf",
  0x858458f6: "ramfs",
  0x73717368: "squashfs",
  0xca451a4e: "bcachefs",
};
const FS_IOC_GETFLAGS = 0x80086601n;
const FS_IOC_SETFLAGS = 0x40086602n;
const FS_IMMUTABLE_FL = 0x10n;
const BTRFS_IOC_SUBVOL_GETFLAGS = 0x80089419n;
const BTRFS_SUBVOL_RDONLY = 2n;

function kindOf(st: fs.Stats): FileKind {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

/**
 * The number of the signal that ended a child (Bun's signalCode, "SIGTERM"), 0 when none. node:os
 * is loaded only then: it costs every start of a command ~0.6 ms, and few children die by a signal.
 */
function signalNumber(code: string | number | null | undefined): number {
  if (!code) return 0;
  if (typeof code === "number") return code;
  const { constants } = require("node:os") as typeof import("node:os");
  return (constants.signals as Record<string, number>)[code] ?? 0;
}

const isMissing = (e: unknown) =>
  e instanceof Error && "code" in e && (e.code === "ENOENT" || e.code === "ENOTDIR" || e.code === "ELOOP" || e.code === "ESRCH" || e.code === "ENODEV");
// ESRCH: a /proc/PID file whose process exited while it was read; ENODEV: a file of a cgroup removed meanwhile

/** All of a stream as text, calling `onLine` for each complete line as it arrives. */
/** The first `max` bytes of a stream (UTF-8, a character cut at the end dropped); the rest is drained. */
async function readCapped(stream: ReadableStream<Uint8Array>, max: number, onCut: () => void): Promise<string> {
  const kept: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    if (size >= max) {
      if (chunk.length > 0) onCut();
      continue;
    }
    const take = chunk.subarray(0, max - size);
    if (take.length < chunk.length) onCut();
    kept.push(take);
    size += take.length;
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(kept)).replace(/\uFFFD$/, "");
}

async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<string> {
  const decoder = new TextDecoder();
  let all = "";
  let pending = "";
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    const text = decoder.decode(chunk, { stream: true });
    all += text;
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  const tail = decoder.decode();
  if (pending + tail !== "") onLine(pending + tail);
  return all + tail;
}

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

  symlink(target: string, path: string): void {
    fs.symlinkSync(target, path);
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

  stat(path: string, follow: boolean): FileStat | undefined {
    let st: fs.Stats;
    try {
      st = follow ? fs.statSync(path) : fs.lstatSync(path);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
    return {
      kind: kindOf(st),
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      allocated: st.blocks * 512,
      dev: st.dev,
      ino: st.ino,
      mtimeMs: st.mtimeMs,
      birthtimeMs: Math.max(st.birthtimeMs, 0),
    };
  }

  fsType(path: string): string | undefined {
    try {
      const type = Number(fs.statfsSync(path).type) >>> 0;
      return FS_MAGIC[type] ?? `0x${type.toString(16)}`;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  mkdirp(path: string, mode: number): void {
    fs.mkdirSync(path, { recursive: true, mode });
  }

  rename(from: string, to: string, noReplace: boolean): void {
    if (noReplace) renameat2(from, to, true);
    else fs.renameSync(from, to);
  }

  removeTree(path: string): void {
    const st = this.stat(path, false);
    if (st === undefined) return;
    if (st.kind !== "dir") {
      this.unlink(path);
      return;
    }
    if (this.immutable(path)) this.setImmutable(path, false);
    if (st.ino === 256 && this.fsType(path) === "btrfs") {
      // A subvolume (read-only ones too): delete it whole; nested subvolumes need rm first.
      if (this.run(["btrfs", "subvolume", "delete", path]).status === 0) return;
      if (this.btrfsReadOnly(path)) this.run(["btrfs", "property", "set", "-ts", path, "ro", "false"]);
    }
    const r = this.run(["rm", "-rf", "--one-file-system", "--", path]);
    if (r.status !== 0 && this.lstat(path) !== undefined)
      throw Object.assign(new Error(`failed to remove "${path}": ${r.stderr.trim()}`), { code: "EIO", path });
  }

  lockFile(path: string, mode: "exclusive" | "shared"): HeldLock | undefined {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    if (!(mode === "shared" ? tryFlockShared(fd) : tryFlockExclusive(fd))) {
      fs.closeSync(fd);
      return undefined;
    }
    let open = true;
    return {
      fd,
      release: () => {
        if (open) fs.closeSync(fd);
        open = false;
      },
    };
  }

  run(argv: string[], options: { fds?: number[]; input?: string } = {}): CommandResult {
    const stdin = options.input !== undefined ? Buffer.from(options.input) : "ignore";
    const r = spawning(argv, () => Bun.spawnSync(argv, { stdio: [stdin, "pipe", "pipe", ...(options.fds ?? [])] }));
    return { status: r.exitCode ?? 128 + (signalNumber(r.signalCode) || 9), stdout: r.stdout?.toString() ?? "", stderr: r.stderr?.toString() ?? "" };
  }

  chmod(path: string, mode: number): void {
    fs.chmodSync(path, mode);
  }

  chown(path: string, uid: number, gid: number): void {
    fs.chownSync(path, uid, gid);
  }

  copyFile(from: string, to: string): void {
    fs.copyFileSync(from, to);
  }

  private withFd<T>(path: string, fn: (fd: number) => T): T {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | 0o2000000 /* O_CLOEXEC */);
    try {
      return fn(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  immutable(path: string): boolean {
    try {
      return this.withFd(path, (fd) => (ioctlValue(fd, FS_IOC_GETFLAGS) & FS_IMMUTABLE_FL) !== 0n);
    } catch {
      return false; // no such flag here (ENOTTY/EOPNOTSUPP), or unreadable
    }
  }

  setImmutable(path: string, on: boolean): void {
    this.withFd(path, (fd) => {
      const flags = ioctlValue(fd, FS_IOC_GETFLAGS) & 0xffffffffn;
      ioctlValue(fd, FS_IOC_SETFLAGS, on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL);
    });
  }

  getXattr(path: string, name: string): string | undefined {
    return getXattr(path, name);
  }

  setXattr(path: string, name: string, value: string): void {
    setXattr(path, name, value);
  }

  btrfsReadOnly(path: string): boolean {
    try {
      return this.withFd(path, (fd) => (ioctlValue(fd, BTRFS_IOC_SUBVOL_GETFLAGS) & BTRFS_SUBVOL_RDONLY) !== 0n);
    } catch {
      return false;
    }
  }

  readAt(path: string, offset: number, length: number): Uint8Array {
    const fd = fs.openSync(path, "r");
    try {
      const buf = Buffer.alloc(length);
      const n = fs.readSync(fd, buf, 0, length, offset);
      return buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }

  attachLoop(file: string, readOnly: boolean, range?: { offset: number; size: number }): { device: string; fd: number } {
    const LOOP_CTL_GET_FREE = 0x4c82n;
    const LOOP_CONFIGURE = 0x4c0an;
    const LO_FLAGS_READ_ONLY = 1;
    const LO_FLAGS_AUTOCLEAR = 4;
    const LO_FLAGS_PARTSCAN = 8;
    const backing = fs.openSync(file, readOnly ? "r" : "r+");
    try {
      const ctl = fs.openSync("/dev/loop-control", "r+");
      try {
        for (let attempt = 0; attempt < 64; attempt++) {
          const n = ioctlBuffer(ctl, LOOP_CTL_GET_FREE, null);
          const device = `/dev/loop${n}`;
          const fd = fs.openSync(device, readOnly ? "r" : "r+");
          // struct loop_config { u32 fd; u32 block_size; struct loop_info64 info (232 bytes); u64 reserved[8]; }
          const config = Buffer.alloc(304);
          config.writeUInt32LE(backing, 0);
          config.writeBigUInt64LE(BigInt(range?.offset ?? 0), 8 + 24); // info.lo_offset
          config.writeBigUInt64LE(BigInt(range?.size ?? 0), 8 + 32); // info.lo_sizelimit
          const scan = range === undefined ? LO_FLAGS_PARTSCAN : 0;
          config.writeUInt32LE(LO_FLAGS_AUTOCLEAR | scan | (readOnly ? LO_FLAGS_READ_ONLY : 0), 8 + 52); // info.lo_flags
          Buffer.from(file.slice(-63)).copy(config, 8 + 56); // info.lo_file_name (informational)
          try {
            ioctlBuffer(fd, LOOP_CONFIGURE, config);
            return { device, fd };
          } catch (e) {
            fs.closeSync(fd);
            if (e instanceof Error && "code" in e && e.code === "EBUSY") continue; // taken by someone else meanwhile
            throw e;
          }
        }
        throw Object.assign(new Error("no free loop device"), { code: "EBUSY" });
      } finally {
        fs.closeSync(ctl);
      }
    } finally {
      fs.closeSync(backing);
    }
  }

  closeFd(fd: number): void {
    fs.closeSync(fd);
  }

  mount(source: string, target: string, fstype: string, flags: number, data: string): void {
    mount(source, target, fstype === "" ? null : fstype, flags, data === "" ? null : data);
  }

  umount(target: string, lazy: boolean): void {
    try {
      umount2(target, (lazy ? 2 : 0) | 8 /* UMOUNT_NOFOLLOW */);
    } catch (e) {
      if (e instanceof Error && "code" in e && (e.code === "EINVAL" || e.code === "ENOENT")) return; // not mounted
      throw e;
    }
  }

  execWithSpec(path: string, argv: string[], spec: Uint8Array): number {
    const fd = memfdCreate("machina-spec");
    fs.writeSync(fd, spec);
    for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
    // The helper runs from a sealed copy of itself (native/main.c reexec_sealed: nothing in a
    // container can reach the host's binary through /proc/PID/exe); made here, the helper starts
    // from it at once instead of copying itself and executing a second time (~0.5 ms).
    // Only an ELF binary: a script run from /proc/self/fd/N finds that fd closed (close-on-exec).
    let sealed: number | undefined;
    try {
      const bytes = fs.readFileSync(path);
      if (isElf(bytes)) sealed = sealedCopy(path, bytes);
    } catch {
      // not possible here (no memfd sealing): the helper makes its copy itself
    }
    return execve(sealed === undefined ? path : `/proc/self/fd/${sealed}`, [...argv, String(fd)], []);
  }

  execProgram(path: string, argv: string[], env: Record<string, string>, cwd: string): number {
    for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
    try {
      process.chdir(cwd);
    } catch {
      process.chdir("/");
    }
    return execve(
      path,
      argv,
      Object.entries(env).map(([k, v]) => `${k}=${v}`),
    );
  }

  writeFile(path: string, content: string, mode = 0o644): void {
    fs.writeFileSync(path, content, { mode });
  }

  kill(pid: number, signal: number): boolean {
    try {
      process.kill(pid, signal);
      return true;
    } catch (e) {
      if (e instanceof Error && "code" in e && e.code === "ESRCH") return false;
      throw e;
    }
  }

  async runAsync(argv: string[], options: RunAsyncOptions = {}): Promise<CommandResult> {
    const specFd = options.spec !== undefined ? memfdCreate("machina-spec") : undefined;
    try {
      if (specFd !== undefined) fs.writeSync(specFd, options.spec!);
      const inherit = options.output === "inherit";
      if (inherit || options.input === "inherit") for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
      const stdin = options.input === "inherit" ? "inherit" : (options.input ?? "ignore");
      const out = inherit ? "inherit" : "pipe";
      const stdio: Array<"inherit" | "pipe" | "ignore" | number | Uint8Array> = [stdin, out, out];
      if (specFd !== undefined) stdio.push(specFd);
      stdio.push(...(options.fds ?? []));
      const p = spawning(argv, () =>
        Bun.spawn(specFd !== undefined ? [...argv, "3"] : argv, {
          stdio: stdio as ["inherit", "pipe", "pipe"],
          env: options.env ?? (process.env as Record<string, string>),
          ...(options.argv0 !== undefined ? { argv0: options.argv0 } : {}),
        }),
      );
      if (specFd !== undefined) {
        fs.closeSync(specFd);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (options.timeoutMs !== undefined) timer = setTimeout(() => p.kill("SIGKILL"), options.timeoutMs);
      const onAbort = () => p.kill("SIGTERM");
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener("abort", onAbort);
      const cut = { stdout: false, stderr: false };
      const read = (stream: ReadableStream<Uint8Array>, which: "stdout" | "stderr") =>
        options.maxCaptureBytes !== undefined
          ? readCapped(stream, options.maxCaptureBytes, () => void (cut[which] = true))
          : options.onLine === undefined
            ? new Response(stream).text()
            : readLines(stream, options.onLine);
      const [stdout, stderr] = inherit
        ? ["", ""]
        : await Promise.all([read(p.stdout as ReadableStream<Uint8Array>, "stdout"), read(p.stderr as ReadableStream<Uint8Array>, "stderr")]);
      await p.exited;
      options.signal?.removeEventListener("abort", onAbort);
      if (timer !== undefined) clearTimeout(timer);
      const sig = signalNumber(p.signalCode);
      return { status: p.exitCode ?? 128 + sig, stdout, stderr, ...(options.maxCaptureBytes !== undefined ? { truncated: cut } : {}) };
    } catch (e) {
      if (specFd !== undefined) fs.closeSync(specFd);
      throw e;
    }
  }

  spawnDetached(argv: string[], options: { spec: Uint8Array; logPath: string }): DetachedChild {
    // Our fd gets only what the child says before it opens its own log (the helper does).
    const log = fs.openSync(options.logPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_APPEND, 0o600);
    let specFd: number | undefined;
    try {
      specFd = memfdCreate("machina-spec");
      fs.writeSync(specFd, options.spec);
      const p = spawning(argv, () =>
        Bun.spawn([...argv, "3"], {
          stdio: ["ignore", log, log, specFd!, "pipe"],
          detached: true,
          env: {},
        }),
      );
      const statusFd = p.stdio[4] as unknown as number;
      const exited = p.exited.then(() => {
        const sig = signalNumber(p.signalCode);
        return p.exitCode ?? 128 + sig;
      });
      return {
        pid: p.pid,
        status: Bun.file(statusFd).stream(),
        closeStatus: () => {
          try {
            fs.closeSync(statusFd);
          } catch {
            // already closed by the stream
          }
        },
        exited,
      };
    } finally {
      if (specFd !== undefined) fs.closeSync(specFd);
      fs.closeSync(log);
    }
  }

  spawnWithStatus(argv: string[], options: { spec: Uint8Array; env: Record<string, string> }): DetachedChild {
    const specFd = memfdCreate("machina-spec");
    try {
      fs.writeSync(specFd, options.spec);
      for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
      const p = spawning(argv, () => Bun.spawn([...argv, "3"], { stdio: ["inherit", "inherit", "inherit", specFd, "pipe"], env: options.env }));
      const statusFd = p.stdio[4] as unknown as number;
      const exited = p.exited.then(() => {
        const sig = signalNumber(p.signalCode);
        return p.exitCode ?? 128 + sig;
      });
      return {
        pid: p.pid,
        status: Bun.file(statusFd).stream(),
        closeStatus: () => {
          try {
            fs.closeSync(statusFd);
          } catch {
            // already closed by the stream
          }
        },
        exited,
      };
    } finally {
      fs.closeSync(specFd);
    }
  }

  spawnOnPty(argv: string[], options: { spec: Uint8Array; env: Record<string, string>; rows: number; cols: number }): PtyChild {
    const { master, peer } = openPty();
    let specFd: number | undefined;
    try {
      setWindowSize(master, options.rows, options.cols);
      specFd = memfdCreate("machina-spec");
      fs.writeSync(specFd, options.spec);
      // setsid -c: a session of its own with the terminal as its controlling one (SIGWINCH, ^C)
      const setsid = Bun.which("setsid", { PATH: process.env.PATH ?? "/usr/bin:/bin" }) ?? "/usr/bin/setsid";
      const p = spawning(argv, () => Bun.spawn([setsid, "-c", ...argv, "3"], { stdio: [peer, peer, peer, specFd!], env: options.env }));
      const listeners: Array<(chunk: Uint8Array) => void> = [];
      let paused = false;
      let reading = false;
      let done = false;
      let ended!: () => void;
      const drained = new Promise<void>((r) => (ended = r));
      const buf = Buffer.alloc(65536);
      // blocking reads in the thread pool; EIO once no process has the terminal open any more
      const read = (): void => {
        if (paused || reading || done) return;
        reading = true;
        fs.read(master, buf, 0, buf.length, null, (err, n) => {
          reading = false;
          if (err !== null || n === 0) {
            done = true;
            fs.closeSync(master);
            ended();
            return;
          }
          const chunk = Uint8Array.prototype.slice.call(buf, 0, n);
          for (const l of listeners) l(chunk);
          read();
        });
      };
      let writes = Promise.resolve();
      const exited = p.exited.then(async () => {
        await drained;
        const sig = signalNumber(p.signalCode);
        return p.exitCode ?? 128 + sig;
      });
      read();
      return {
        pid: p.pid,
        onData: (l) => void listeners.push(l),
        pause: () => void (paused = true),
        resume: () => {
          paused = false;
          read();
        },
        write: (data) => {
          if (done) return;
          writes = writes.then(
            () =>
              new Promise<void>((resolve) => {
                if (done) resolve();
                else fs.write(master, data, () => resolve());
              }),
          );
        },
        resize: (rows, cols) => {
          if (!done) setWindowSize(master, rows, cols);
        },
        exited,
        kill: (signal) => {
          try {
            process.kill(-p.pid, signal); // its session's process group: the helper and what it runs
          } catch {
            try {
              p.kill(signal);
            } catch {
              // gone
            }
          }
        },
      };
    } catch (e) {
      fs.closeSync(master);
      throw e;
    } finally {
      fs.closeSync(peer);
      if (specFd !== undefined) fs.closeSync(specFd);
    }
  }

  mkfifo(path: string, mode: number): void {
    mkfifo(path, mode);
    fs.chmodSync(path, mode);
  }

  openFifo(path: string): FifoReader {
    const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    const buf = Buffer.alloc(64);
    return {
      read: () => {
        let text = "";
        for (;;) {
          let n: number;
          try {
            n = fs.readSync(fd, buf, 0, buf.length, null);
          } catch (e) {
            if (e instanceof Error && "code" in e && e.code === "EAGAIN") return { text, state: "open" };
            throw e;
          }
          if (n === 0) return { text, state: "eof" };
          text += buf.toString("latin1", 0, n);
        }
      },
      close: () => fs.closeSync(fd),
    };
  }

  sleep(ms: number): Promise<void> {
    return Bun.sleep(ms);
  }

  monotonicMs(): number {
    return performance.now();
  }
}
