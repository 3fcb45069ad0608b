/** FakeProcs: records signals, runs and writes for unit tests (see procs.ts). */
import type { FakeHost } from "./fake.ts";
import type { ProcRunOptions, ProcRunResult, ProcSpawnOptions, Procs } from "./procs.ts";

export class FakeProcs implements Procs {
  /** Signals sent: [pid, signal]. */
  readonly signals: Array<[number, number]> = [];
  /** Pids that are "gone" (kill fails with ESRCH). */
  readonly deadPids = new Set<number>();
  readonly runs: Array<{ argv: string[]; options: ProcRunOptions | ProcSpawnOptions }> = [];
  /** Answers for run(), by argv[0]. */
  readonly results = new Map<string, ProcRunResult>();
  /** Called after each kill (e.g. to make a fake machine disappear). */
  onKill: ((pid: number, signal: number) => void) | undefined;
  private clock = 0;

  constructor(private readonly host?: FakeHost) {}

  kill(pid: number, signal: number): boolean {
    if (this.deadPids.has(pid)) return false;
    this.signals.push([pid, signal]);
    this.onKill?.(pid, signal);
    return true;
  }

  run(argv: string[], options: ProcRunOptions = {}): Promise<ProcRunResult> {
    this.runs.push({ argv, options });
    return Promise.resolve(this.results.get(argv[0] ?? "") ?? { code: 0, stdout: "", stderr: "" });
  }

  spawnDetached(argv: string[], options: ProcSpawnOptions = {}): number {
    this.runs.push({ argv, options });
    return 9999;
  }

  writeFile(path: string, content: string): void {
    this.host?.add(path, content);
  }

  makeDirs(path: string): void {
    if (this.host !== undefined && this.host.lstat(path) === undefined) this.host.add(path, { kind: "dir" });
  }

  symlink(target: string, path: string): void {
    this.host?.add(path, { kind: "symlink", target });
  }

  sleep(ms: number): Promise<void> {
    this.clock += ms;
    return Promise.resolve();
  }

  monotonicMs(): number {
    return this.clock;
  }

  readFrom(path: string, offset: number): { text: string; size: number } | undefined {
    const text = this.host?.readFile(path);
    if (text === undefined) return undefined;
    const bytes = Buffer.from(text, "utf8");
    return { text: bytes.subarray(Math.min(offset, bytes.length)).toString("utf8"), size: bytes.length };
  }
}
