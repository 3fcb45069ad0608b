/**
 * machinad's samples of its machines' counters (CPU time, memory, tasks, network bytes), taken
 * every few seconds and kept in memory for the last minutes: the dashboard's graphs and live
 * columns (GET /v1/samples, GET /v1/machines/{name}/samples). A machine's history goes with it.
 */
import type { Machine, MachineSample } from "../machine/machines.ts";

/** What is sampled: the running machines, and one machine's counters (machines.ts in machinad). */
export interface SampledMachines {
  machines(): Machine[];
  sample(m: Machine, now: number): MachineSample;
}

export interface SampleSource {
  readonly intervalMs: number;
  /** Oldest first; undefined: no such machine is sampled. */
  history(name: string): MachineSample[] | undefined;
  /** The newest sample of every sampled machine. */
  latest(): Record<string, MachineSample>;
}

export class Sampler implements SampleSource {
  private readonly series = new Map<string, MachineSample[]>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly source: SampledMachines,
    readonly intervalMs = 2000,
    /** samples kept per machine (150 × 2 s: five minutes) */
    readonly keep = 150,
  ) {}

  /** One round: every running machine sampled, the gone ones forgotten. */
  sample(now = Date.now()): void {
    const seen = new Set<string>();
    for (const m of this.source.machines()) {
      seen.add(m.name);
      let s: MachineSample;
      try {
        s = this.source.sample(m, now);
      } catch {
        continue; // it went away while it was read
      }
      const list = this.series.get(m.name) ?? [];
      list.push(s);
      if (list.length > this.keep) list.splice(0, list.length - this.keep);
      this.series.set(m.name, list);
    }
    for (const name of this.series.keys()) if (!seen.has(name)) this.series.delete(name);
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  history(name: string): MachineSample[] | undefined {
    return this.series.get(name);
  }

  latest(): Record<string, MachineSample> {
    return Object.fromEntries([...this.series].map(([name, list]) => [name, list[list.length - 1]!]));
  }
}
