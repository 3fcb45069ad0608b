/**
 * FakeHost: an in-memory Host for unit tests. Files, directories and symlinks are declared up
 * front; calls with effects (execWithSpec) are recorded instead of performed.
 */
import type { CommandResult, DetachedChild, FifoReader, FileKind, FileStat, HeldLock, Host, PtyChild, RunAsyncOptions } from "./host.ts";

export type FakeNode =
  | { kind: "file"; content: string }
  | { kind: "dir" }
  | { kind: "symlink"; target: string }
  | { kind: Exclude<FileKind, "file" | "dir" | "symlink"> };

export interface FakeHostOptions {
  files?: Record<string, string | FakeNode>;
  env?: Record<string, string>;
  tty?: boolean;
  pid?: number;
  readOnly?: string[];
  mountinfo?: string;
  /** File system type by path prefix (longest match wins); default "ext2/ext3". */
  fsTypes?: Record<string, string>;
  /** Result of run(argv) and runAsync(argv); default status 0 with no output. */
  onRun?: (argv: string[]) => CommandResult | undefined;
}

export interface ExecRecord {
  path: string;
  argv: string[];
  spec: Uint8Array;
}

export class FakeHost implements Host {
  readonly nodes = new Map<string, FakeNode>();
  readonly execs: ExecRecord[] = [];
  /** Paths whose lock is held by "another process". */
  readonly heldLocks = new Set<string>();
  readonly mtimes = new Map<string, number>();
  /** stdin given to run(), in order (commands without input are not listed). */
  readonly inputs: string[] = [];
  private readonly options: FakeHostOptions;

  constructor(options: FakeHostOptions = {}) {
    this.options = options;
    this.nodes.set("/", { kind: "dir" });
    for (const [path, node] of Object.entries(options.files ?? {})) this.add(path, node);
  }

  add(path: string, node: string | FakeNode): void {
    const parts = path.split("/").filter((p) => p.length > 0);
    for (let i = 1; i < parts.length; i++) {
      const dir = "/" + parts.slice(0, i).join("/");
      if (!this.nodes.has(dir)) this.nodes.set(dir, { kind: "dir" });
    }
    this.nodes.set("/" + parts.join("/"), typeof node === "string" ? { kind: "file", content: node } : node);
  }

  /** Follow symlinks in every component (like the kernel does for host paths). */
  private resolve(path: string, followLast: boolean, depth = 0): string | undefined {
    if (depth > 40) return undefined;
    const parts = path.split("/").filter((p) => p.length > 0 && p !== ".");
    let cur: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part === "..") {
        cur.pop();
        continue;
      }
      const candidate = "/" + [...cur, part].join("/");
      const node = this.nodes.get(candidate);
      if (node === undefined) return undefined;
      const last = i === parts.length - 1;
      if (node.kind === "symlink" && (!last || followLast)) {
        const base = node.target.startsWith("/") ? node.target : "/" + [...cur, node.target].join("/");
        const rest = parts.slice(i + 1).join("/");
        return this.resolve(rest ? `${base}/${rest}` : base, followLast, depth + 1);
      }
      cur = [...cur, part];
    }
    return "/" + cur.join("/");
  }

  lstat(path: string): FileKind | undefined {
    const r = this.resolve(path, false);
    return r === undefined ? undefined : this.nodes.get(r)?.kind;
  }

  readlink(path: string): string {
    const node = this.nodes.get(this.resolve(path, false) ?? "");
    if (node?.kind !== "symlink") throw new Error(`EINVAL: readlink ${path}`);
    return node.target;
  }

  readFile(path: string): string | undefined {
    const node = this.nodes.get(this.resolve(path, true) ?? "");
    return node?.kind === "file" ? node.content : undefined;
  }

  writable(path: string): boolean {
    return !(this.options.readOnly ?? []).some((p) => path === p || path.startsWith(p + "/"));
  }

  realpath(path: string): string | undefined {
    return this.resolve(path, true);
  }

  isatty(): boolean {
    return this.options.tty ?? false;
  }

  env(): Readonly<Record<string, string | undefined>> {
    return this.options.env ?? {};
  }

  pid(): number {
    return this.options.pid ?? 4242;
  }

  processStartTime(): string | undefined {
    return "123456";
  }

  nowUsec(): bigint {
    return 1_700_000_000_000_000n;
  }

  randomHex(bytes: number): string {
    return "ab".repeat(bytes);
  }

  mountinfo(): string {
    return (
      this.options.mountinfo ??
      [
        "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - tmpfs tmpfs rw,mode=755",
        "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw",
        "32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd",
      ].join("\n")
    );
  }

  readdir(path: string): string[] {
    const dir = this.resolve(path, true);
    if (dir === undefined || this.nodes.get(dir)?.kind !== "dir") return [];
    const prefix = dir === "/" ? "/" : `${dir}/`;
    return [...this.nodes.keys()].filter((p) => p.startsWith(prefix) && p !== dir && !p.slice(prefix.length).includes("/")).map((p) => p.slice(prefix.length));
  }

  mtimeMs(path: string): number | undefined {
    return this.nodes.has(path) ? (this.mtimes.get(path) ?? 0) : undefined;
  }

  /** Owners by path (default 0:0 for every existing node). */
  readonly owners = new Map<string, { uid: number; gid: number }>();

  owner(path: string): { uid: number; gid: number } | undefined {
    const r = this.resolve(path, true);
    if (r === undefined || !this.nodes.has(r)) return undefined;
    return this.owners.get(r) ?? { uid: 0, gid: 0 };
  }

  tryLock(path: string): { release(): void } | undefined {
    if (!this.nodes.has(path) || this.heldLocks.has(path)) return undefined;
    this.heldLocks.add(path);
    return { release: () => this.heldLocks.delete(path) };
  }

  symlink(target: string, path: string): void {
    if (this.lstat(path) !== undefined) throw Object.assign(new Error(`EEXIST: symlink "${path}"`), { code: "EEXIST" });
    this.add(path, { kind: "symlink", target });
  }

  unlink(path: string): void {
    if (this.nodes.get(path)?.kind !== "dir") this.nodes.delete(path);
  }

  removeDirTree(path: string): void {
    // deepest first; like rmdir, a directory that still holds a file is kept
    const keys = () => [...this.nodes.keys()];
    for (const p of keys()
      .filter((k) => k.startsWith(`${path}/`))
      .sort((a, b) => b.length - a.length))
      if (this.nodes.get(p)?.kind === "dir" && !keys().some((k) => k.startsWith(`${p}/`))) this.nodes.delete(p);
    if ([...this.nodes.keys()].some((k) => k.startsWith(`${path}/`))) return; // not empty: kept, like rmdir
    this.nodes.delete(path);
  }

  execWithSpec(path: string, argv: string[], spec: Uint8Array): number {
    this.execs.push({ path, argv, spec });
    return 0;
  }

  /** execProgram() calls, in order. */
  readonly programExecs: Array<{ path: string; argv: string[]; env: Record<string, string>; cwd: string }> = [];
  execProgram(path: string, argv: string[], env: Record<string, string>, cwd: string): number {
    this.programExecs.push({ path, argv, env, cwd });
    return 0;
  }

  /** stat details by path (merged over defaults derived from the node). */
  readonly stats = new Map<string, Partial<FileStat>>();
  readonly immutables = new Set<string>();
  readonly btrfsReadOnlys = new Set<string>();
  readonly commands: string[][] = [];
  /** Locks held by this fake "process", with their mode. */
  readonly fileLocks = new Map<string, { mode: "exclusive" | "shared"; count: number }>();

  stat(path: string, follow: boolean): FileStat | undefined {
    const r = this.resolve(path, follow);
    const node = r === undefined ? undefined : this.nodes.get(r);
    if (r === undefined || node === undefined) return undefined;
    const ino = [...this.nodes.keys()].indexOf(r) + 1000;
    return {
      kind: node.kind,
      mode: node.kind === "dir" ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      size: node.kind === "file" ? node.content.length : 0,
      allocated: node.kind === "file" ? 4096 : 0,
      dev: 1,
      ino,
      mtimeMs: this.mtimes.get(r) ?? 0,
      birthtimeMs: 0,
      ...this.stats.get(r),
    };
  }

  fsType(path: string): string | undefined {
    const r = this.resolve(path, true);
    if (r === undefined) return undefined;
    let best: [string, string] | undefined;
    for (const [prefix, type] of Object.entries(this.options.fsTypes ?? {}))
      if ((r === prefix || r.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`)) && (best === undefined || prefix.length > best[0].length))
        best = [prefix, type];
    return best?.[1] ?? "ext2/ext3";
  }

  /** Creates the missing directories of `path`, each with `mode` (like mkdir -p -m). */
  mkdirp(path: string, mode = 0o755): void {
    const parts = path.split("/").filter((p) => p.length > 0);
    for (let i = 1; i <= parts.length; i++) {
      const dir = "/" + parts.slice(0, i).join("/");
      if (this.lstat(dir) !== undefined) continue;
      this.nodes.set(dir, { kind: "dir" });
      this.stats.set(dir, { ...this.stats.get(dir), mode });
    }
  }

  rename(from: string, to: string, noReplace: boolean): void {
    if (!this.nodes.has(from)) throw Object.assign(new Error(`ENOENT: rename "${from}"`), { code: "ENOENT" });
    if (noReplace && this.nodes.has(to)) throw Object.assign(new Error(`EEXIST: rename "${to}"`), { code: "EEXIST" });
    for (const key of [...this.nodes.keys()]) {
      if (key !== from && !key.startsWith(`${from}/`)) continue;
      const moved = to + key.slice(from.length);
      this.nodes.set(moved, this.nodes.get(key)!);
      this.nodes.delete(key);
      for (const m of [this.stats, this.mtimes])
        if (m.has(key as never)) {
          (m as Map<string, unknown>).set(moved, m.get(key as never));
          m.delete(key as never);
        }
    }
  }

  removeTree(path: string): void {
    for (const key of [...this.nodes.keys()]) if (key === path || key.startsWith(`${path}/`)) this.nodes.delete(key);
  }

  lockFile(path: string, mode: "exclusive" | "shared"): HeldLock | undefined {
    if (this.heldLocks.has(path)) return undefined;
    const held = this.fileLocks.get(path);
    if (held !== undefined && (held.mode === "exclusive" || mode === "exclusive")) return undefined;
    if (!this.nodes.has(path)) this.add(path, "");
    this.fileLocks.set(path, { mode, count: (held?.count ?? 0) + 1 });
    let open = true;
    return {
      fd: 99,
      release: () => {
        if (!open) return;
        open = false;
        const h = this.fileLocks.get(path);
        if (h !== undefined && --h.count === 0) this.fileLocks.delete(path);
      },
    };
  }

  run(argv: string[], options: { input?: string } = {}): CommandResult {
    this.commands.push(argv);
    if (options.input !== undefined) this.inputs.push(options.input);
    return this.options.onRun?.(argv) ?? { status: 0, stdout: "", stderr: "" };
  }

  chmod(path: string, mode: number): void {
    const r = this.resolve(path, true);
    if (r !== undefined) this.stats.set(r, { ...this.stats.get(r), mode });
  }

  chown(path: string, uid: number, gid: number): void {
    const r = this.resolve(path, true);
    if (r === undefined) throw Object.assign(new Error(`ENOENT: chown "${path}"`), { code: "ENOENT" });
    this.owners.set(r, { uid, gid });
  }

  copyFile(from: string, to: string): void {
    const node = this.nodes.get(this.resolve(from, true) ?? "");
    if (node?.kind !== "file")
      throw Object.assign(new Error(`${node === undefined ? "ENOENT" : "EISDIR"}: copyFile "${from}"`), { code: node === undefined ? "ENOENT" : "EISDIR" });
    this.add(to, node.content);
  }

  immutable(path: string): boolean {
    return this.immutables.has(path);
  }

  setImmutable(path: string, on: boolean): void {
    if (on) this.immutables.add(path);
    else this.immutables.delete(path);
  }

  btrfsReadOnly(path: string): boolean {
    return this.btrfsReadOnlys.has(path);
  }

  /** Extended attributes: path -> name -> value. */
  readonly xattrs = new Map<string, Map<string, string>>();

  getXattr(path: string, name: string): string | undefined {
    return this.xattrs.get(path)?.get(name);
  }

  setXattr(path: string, name: string, value: string): void {
    if (this.lstat(path) === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    const m = this.xattrs.get(path) ?? new Map<string, string>();
    m.set(name, value);
    this.xattrs.set(path, m);
  }

  /** Raw bytes of files for readAt (else the node's content). */
  readonly bytes = new Map<string, Uint8Array>();
  readonly loops: Array<{ file: string; readOnly: boolean; device: string; range: { offset: number; size: number } | undefined }> = [];
  readonly mounts: Array<{ source: string; target: string; fstype: string; flags: number; data: string }> = [];
  readonly umounts: string[] = [];

  readAt(path: string, offset: number, length: number): Uint8Array {
    const b = this.bytes.get(path) ?? Buffer.from(this.readFile(path) ?? "");
    return b.subarray(offset, offset + length);
  }

  attachLoop(file: string, readOnly: boolean, range?: { offset: number; size: number }): { device: string; fd: number } {
    const device = `/dev/loop${this.loops.length}`;
    this.loops.push({ file, readOnly, device, range });
    return { device, fd: 100 + this.loops.length };
  }

  /** Fds given to closeFd(), in order. */
  readonly closedFds: number[] = [];
  /** Called before a mount / umount is recorded: throw to make it fail. */
  onMount: ((target: string) => void) | undefined;
  onUmount: ((target: string) => void) | undefined;

  closeFd(fd: number): void {
    this.closedFds.push(fd);
  }

  mount(source: string, target: string, fstype: string, flags: number, data: string): void {
    this.onMount?.(target);
    this.mounts.push({ source, target, fstype, flags, data });
  }

  umount(target: string): void {
    this.onUmount?.(target);
    this.umounts.push(target);
  }

  /** Signals sent with kill(): [pid, signal]. */
  readonly kills: Array<[number, number]> = [];
  /** Pids that are "gone" (kill fails with ESRCH: false, not recorded). */
  readonly deadPids = new Set<number>();
  /** Called after each kill (e.g. to make a fake machine disappear). */
  onKill: ((pid: number, signal: number) => void) | undefined;
  /** runAsync() calls, in order. */
  readonly asyncRuns: Array<{ argv: string[]; options: RunAsyncOptions }> = [];
  private clock = 0;

  writeFile(path: string, content: string): void {
    this.add(path, content);
  }

  kill(pid: number, signal: number): boolean {
    if (this.deadPids.has(pid)) return false;
    this.kills.push([pid, signal]);
    this.onKill?.(pid, signal);
    return true;
  }

  runAsync(argv: string[], options: RunAsyncOptions = {}): Promise<CommandResult> {
    this.asyncRuns.push({ argv, options });
    return Promise.resolve(this.options.onRun?.(argv) ?? { status: 0, stdout: "", stderr: "" });
  }

  /** spawnDetached() calls, in order. */
  readonly detachedSpawns: Array<{ argv: string[]; spec: Uint8Array; logPath: string }> = [];
  /** What a detached child "does": its status lines (without newlines) and exit status; default none and 0. */
  onSpawnDetached: ((argv: string[]) => { statusLines: string[]; status: number }) | undefined;

  spawnWithStatus(argv: string[], options: { spec: Uint8Array; env: Record<string, string> }): DetachedChild {
    this.detachedSpawns.push({ argv, spec: options.spec, logPath: "" });
    const { statusLines, status } = this.onSpawnDetached?.(argv) ?? { statusLines: [], status: 0 };
    const bytes = new TextEncoder().encode(statusLines.map((l) => `${l}\n`).join(""));
    return { pid: 5000 + this.detachedSpawns.length, status: new Blob([bytes]).stream(), closeStatus: () => undefined, exited: Promise.resolve(status) };
  }

  mkfifo(path: string, _mode: number): void {
    this.add(path, "");
  }

  spawnOnPty(argv: string[], _options: { spec: Uint8Array; env: Record<string, string>; rows: number; cols: number }): PtyChild {
    throw new Error(`FakeHost: no pseudo-terminals (${argv.join(" ")})`);
  }

  /** What openFifo()'s reads answer, in order (then "0" and end of file); each open's path is recorded. */
  readonly fifoAnswers: { text: string; state: "open" | "eof" }[] = [];
  readonly fifoReads: string[] = [];
  openFifo(path: string): FifoReader {
    if (!this.nodes.has(path)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    this.fifoReads.push(path);
    let done = false;
    return {
      read: () => {
        const next = this.fifoAnswers.shift();
        if (next !== undefined) return next;
        const text = done ? "" : "0";
        done = true;
        return { text, state: "eof" };
      },
      close: () => undefined,
    };
  }

  spawnDetached(argv: string[], options: { spec: Uint8Array; logPath: string }): DetachedChild {
    this.detachedSpawns.push({ argv, ...options });
    this.add(options.logPath, "");
    const { statusLines, status } = this.onSpawnDetached?.(argv) ?? { statusLines: [], status: 0 };
    const bytes = new TextEncoder().encode(statusLines.map((l) => `${l}\n`).join(""));
    return {
      pid: 5000 + this.detachedSpawns.length,
      status: new Blob([bytes]).stream(),
      closeStatus: () => undefined,
      exited: Promise.resolve(status),
    };
  }

  /** Advances the fake monotonic clock instead of waiting. */
  sleep(ms: number): Promise<void> {
    this.clock += ms;
    return Promise.resolve();
  }

  monotonicMs(): number {
    return this.clock;
  }
}
