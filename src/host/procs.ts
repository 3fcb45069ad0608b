/**
 * Processes and small file effects for machine management (src/machine/): signals, running
 * programs (the helper with a spec on an inherited fd), background starts, atomic writes,
 * links. LinuxProcs does them; FakeProcs (procs-fake.ts) records them for unit tests.
 */
import * as fs from "node:fs";
import { constants as osConstants } from "node:os";
import { dirname } from "node:path";
import { clearNonBlocking, memfdCreate } from "./libc.ts";

export interface ProcRunOptions {
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
}

export interface ProcRunResult {
  /** Exit status, 128+N when killed by signal N. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ProcSpawnOptions {
  env?: Record<string, string>;
  /** stdout and stderr go to this file (appended), else /dev/null. */
  outputFile?: string;
  /** A file opened for appending and passed as fd 3 (e.g. the helper's status fd). */
  fd3File?: string;
}

export interface Procs {
  /** kill(2); false when there is no such process (ESRCH). */
  kill(pid: number, signal: number): boolean;
  /** Run a program to completion. */
  run(argv: string[], options?: ProcRunOptions): Promise<ProcRunResult>;
  /** Start a program in the background (not waited for); returns its pid. */
  spawnDetached(argv: string[], options?: ProcSpawnOptions): number;
  /** Write a file atomically (temporary file + rename), creating missing parents (0755). */
  writeFile(path: string, content: string, mode?: number): void;
  /** mkdir -p (0755). */
  makeDirs(path: string): void;
  /** Create a symlink; an existing symlink at path is replaced. */
  symlink(target: string, path: string): void;
  sleep(ms: number): Promise<void>;
  /** Milliseconds from a monotonic clock. */
  monotonicMs(): number;
  /** Bytes of a file from `offset` on (as UTF-8) and the file's size; undefined when missing. */
  readFrom(path: string, offset: number): { text: string; size: number } | undefined;
}

export class LinuxProcs implements Procs {
  kill(pid: number, signal: number): boolean {
    try {
      process.kill(pid, signal);
      return true;
    } catch (e) {
      if (e instanceof Error && "code" in e && e.code === "ESRCH") return false;
      throw e;
    }
  }

  async run(argv: string[], options: ProcRunOptions = {}): Promise<ProcRunResult> {
    const specFd = options.spec !== undefined ? memfdCreate("machina-spec") : undefined;
    try {
      if (specFd !== undefined) fs.writeSync(specFd, options.spec!);
      const inherit = options.output === "inherit";
      if (inherit || options.input === "inherit") for (const stdio of [0, 1, 2]) clearNonBlocking(stdio);
      const stdin = options.input === "inherit" ? "inherit" : (options.input ?? "ignore");
      const out = inherit ? "inherit" : "pipe";
      const stdio: Array<"inherit" | "pipe" | "ignore" | number | Uint8Array> = [stdin, out, out];
      if (specFd !== undefined) stdio.push(specFd);
      const p = Bun.spawn(specFd !== undefined ? [...argv, "3"] : argv, {
        stdio: stdio as ["inherit", "pipe", "pipe"],
        env: options.env ?? (process.env as Record<string, string>),
      });
      if (specFd !== undefined) {
        fs.closeSync(specFd);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (options.timeoutMs !== undefined) timer = setTimeout(() => p.kill("SIGKILL"), options.timeoutMs);
      const [stdout, stderr] = inherit
        ? ["", ""]
        : await Promise.all([new Response(p.stdout as ReadableStream).text(), new Response(p.stderr as ReadableStream).text()]);
      await p.exited;
      if (timer !== undefined) clearTimeout(timer);
      const sig = p.signalCode ? ((osConstants.signals as Record<string, number>)[p.signalCode] ?? 0) : 0;
      return { code: p.exitCode ?? 128 + sig, stdout, stderr };
    } catch (e) {
      if (specFd !== undefined) fs.closeSync(specFd);
      throw e;
    }
  }

  spawnDetached(argv: string[], options: ProcSpawnOptions = {}): number {
    const outFd = options.outputFile !== undefined ? fs.openSync(options.outputFile, "a", 0o640) : "ignore";
    const fd3 = options.fd3File !== undefined ? fs.openSync(options.fd3File, "a", 0o600) : undefined;
    try {
      const stdio: Array<"ignore" | number> = ["ignore", outFd, outFd];
      if (fd3 !== undefined) stdio.push(fd3);
      const p = Bun.spawn(argv, { stdio: stdio as ["ignore", "ignore", "ignore"], env: options.env ?? (process.env as Record<string, string>) });
      p.unref();
      return p.pid;
    } finally {
      if (typeof outFd === "number") fs.closeSync(outFd);
      if (fd3 !== undefined) fs.closeSync(fd3);
    }
  }

  writeFile(path: string, content: string, mode = 0o644): void {
    const dir = dirname(path);
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const tmp = `${dir}/.${path.slice(dir.length + 1)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, content, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, path);
  }

  makeDirs(path: string): void {
    fs.mkdirSync(path, { recursive: true, mode: 0o755 });
  }

  symlink(target: string, path: string): void {
    try {
      if (fs.lstatSync(path).isSymbolicLink()) fs.unlinkSync(path);
    } catch {
      // missing
    }
    fs.symlinkSync(target, path);
  }

  sleep(ms: number): Promise<void> {
    return Bun.sleep(ms);
  }

  monotonicMs(): number {
    return performance.now();
  }

  readFrom(path: string, offset: number): { text: string; size: number } | undefined {
    let fd: number;
    try {
      fd = fs.openSync(path, "r");
    } catch {
      return undefined;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (offset >= size) return { text: "", size };
      const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      return { text: buf.subarray(0, n).toString("utf8"), size: offset + n };
    } finally {
      fs.closeSync(fd);
    }
  }
}
