/**
 * Jobs: long operations (start, stop; transfers later) run in the daemon, observable while
 * they run (events, NDJSON stream) and cancellable (an AbortController). Finished jobs are kept
 * for a while (the newest KEEP) so that a client can still fetch the outcome.
 */
import { MachinaError } from "../errors.ts";
import type { ApiError, Job, JobEvent } from "../api/schemas.ts";

const KEEP = 200;

export interface RunningJob {
  job: Job;
  abort: AbortController;
  done: Promise<Job>;
  listeners: Set<(event: JobEvent | null) => void>;
}

export function toApiError(error: unknown): ApiError {
  if (error instanceof MachinaError) {
    const details: Record<string, unknown> = { ...error.context };
    if (error.hint) details["hint"] = error.hint;
    return { code: error.code, message: error.message, ...(Object.keys(details).length > 0 ? { details } : {}) };
  }
  return { code: "E_INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

export class JobManager {
  private jobs = new Map<string, RunningJob>();
  private seq = 0;

  list(): Job[] {
    return [...this.jobs.values()].map((j) => j.job);
  }

  get(id: string): RunningJob | undefined {
    return this.jobs.get(id);
  }

  /** Start a job; `work` gets a progress callback and the abort signal. */
  run(
    kind: Job["kind"],
    machine: string,
    work: (progress: (e: Omit<JobEvent, "time"> & { time?: number }) => void, signal: AbortSignal, job: Job) => Promise<Job["result"]>,
  ): RunningJob {
    const id = `${Date.now().toString(36)}-${(++this.seq).toString(36)}`;
    const job: Job = { id, kind, machine, state: "running", created: Date.now(), events: [] };
    const abort = new AbortController();
    const listeners = new Set<(event: JobEvent | null) => void>();
    const emit = (e: Omit<JobEvent, "time"> & { time?: number }) => {
      const event: JobEvent = { time: Date.now(), ...e };
      job.events.push(event);
      for (const l of listeners) l(event);
    };
    const done = (async (): Promise<Job> => {
      try {
        const result = await work(emit, abort.signal, job);
        if (abort.signal.aborted) throw new MachinaError("E_CANCELLED", `${kind} of "${machine}" cancelled`, { machine });
        job.result = result;
        job.state = "done";
      } catch (error) {
        job.error = toApiError(error);
        job.state = abort.signal.aborted || job.error.code === "E_CANCELLED" ? "cancelled" : "failed";
      }
      for (const l of listeners) l(null);
      listeners.clear();
      this.prune();
      return job;
    })();
    const running: RunningJob = { job, abort, done, listeners };
    this.jobs.set(id, running);
    return running;
  }

  cancel(id: string): RunningJob | undefined {
    const j = this.jobs.get(id);
    if (j && j.job.state === "running") j.abort.abort();
    return j;
  }

  /** Cancel everything still running (daemon shutdown). */
  async cancelAll(): Promise<void> {
    const running = [...this.jobs.values()].filter((j) => j.job.state === "running");
    for (const j of running) j.abort.abort();
    await Promise.all(running.map((j) => j.done));
  }

  private prune(): void {
    const finished = [...this.jobs.values()].filter((j) => j.job.state !== "running");
    for (const j of finished.slice(0, Math.max(0, finished.length - KEEP))) this.jobs.delete(j.job.id);
  }
}
