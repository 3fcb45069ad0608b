/**
 * Typed client of machinad's API over its Unix socket (Bun's fetch `unix:` option). It
 * implements MachineService exactly as the in-process core does: same results, same errors
 * (MachinaErrors rebuilt from the API's {code, message, details}).
 */
import { machinaEnv } from "../config.ts";
import { z } from "zod";
import { isErrorCode, MachinaError } from "../errors.ts";
import * as S from "../api/schemas.ts";
import type { MachineStatus, MachineSummary } from "../machine/machines.ts";
import type { KillOptions, LongOperationOptions, MachineService, StopOptions } from "../api/service.ts";

export const DEFAULT_SOCKET = "/run/machina/api.sock";

export function apiSocketPath(env: Readonly<Record<string, string | undefined>> = process.env): string {
  return machinaEnv(env, "MACHINA_API_SOCKET") ?? DEFAULT_SOCKET;
}

/** One line of GET /v1/jobs/{id}/events: a progress event, or the finished job (the last line). */
const EventLine = z.union([z.object({ job: S.Job }), S.JobEvent]);

function parseEventLine(text: string): S.JobEvent | { job: S.Job } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MachinaError("E_SYSTEM", `machinad sent a job event that is not JSON: ${(e as Error).message}`);
  }
  const r = EventLine.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MachinaError("E_SYSTEM", `machinad sent an invalid job event: ${issue ? `${issue.path.join(".") || "(line)"}: ${issue.message}` : r.error.message}`);
  }
  return r.data;
}

/** The API's error as the core's MachinaError: the same code (E_INTERNAL, the daemon's own, becomes E_SYSTEM). */
function fromApiError(err: S.ApiError): MachinaError {
  const { hint, ...context } = (err.details ?? {}) as Record<string, unknown>;
  const e = new MachinaError(isErrorCode(err.code) ? err.code : "E_SYSTEM", err.message, context, typeof hint === "string" ? hint : undefined);
  (e as MachinaError & { apiCode: string }).apiCode = err.code;
  return e;
}

export class MachinaClient implements MachineService {
  constructor(readonly socket: string = apiSocketPath()) {}

  private async request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`http://localhost${path}`, {
        method,
        unix: this.socket,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      throw new MachinaError("E_SYSTEM", `cannot reach machinad on ${this.socket}: ${(e as Error).message}`, { path: this.socket });
    }
    if (!res.ok) {
      let err: S.ApiError;
      try {
        err = S.ApiError.parse(await res.json());
      } catch {
        err = { code: "E_INTERNAL", message: `machinad answered ${res.status}` };
      }
      throw fromApiError(err);
    }
    return res;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.request(method, path, body)).json()) as T;
  }

  private m(name: string, verb = ""): string {
    return `/v1/machines/${encodeURIComponent(name)}${verb ? `/${verb}` : ""}`;
  }

  /** True when a machinad answers on the socket (quickly: a missing socket is one stat). */
  async ping(timeoutMs = 500): Promise<boolean> {
    try {
      const res = await fetch("http://localhost/v1/version", { unix: this.socket, signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  async version(): Promise<S.Version> {
    return this.json("GET", "/v1/version");
  }

  async list(options: { all?: boolean; maxAddresses?: number } = {}): Promise<MachineSummary[]> {
    const q = new URLSearchParams();
    if (options.all) q.set("all", "1");
    if (options.maxAddresses !== undefined) q.set("maxAddresses", String(options.maxAddresses));
    const qs = q.size > 0 ? `?${q}` : "";
    return (await this.json<{ machines: MachineSummary[] }>("GET", `/v1/machines${qs}`)).machines;
  }
  async status(name: string): Promise<MachineStatus> {
    return this.json("GET", this.m(name));
  }
  async show(name: string): Promise<S.MachineProperties> {
    return this.json("GET", this.m(name, "properties"));
  }
  async poweroff(name: string): Promise<void> {
    await this.json("POST", this.m(name, "poweroff"));
  }
  async reboot(name: string): Promise<void> {
    await this.json("POST", this.m(name, "reboot"));
  }
  async kill(name: string, options: KillOptions = {}): Promise<void> {
    await this.json("POST", this.m(name, "kill"), { ...(options.whom ? { whom: options.whom } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  }
  async enable(name: string, options: { now?: boolean } = {}): Promise<S.EnableResult> {
    return this.json("POST", this.m(name, "enable"), { now: options.now ?? false });
  }
  async disable(name: string, options: { now?: boolean } = {}): Promise<S.EnableResult> {
    return this.json("POST", this.m(name, "disable"), { now: options.now ?? false });
  }

  async start(name: string, options: LongOperationOptions = {}): Promise<MachineStatus> {
    const job = await this.runJob(this.m(name, "start"), {}, options);
    return job.result as MachineStatus;
  }

  async terminate(name: string, options: StopOptions = {}): Promise<"stopped" | "killed"> {
    const job = await this.runJob(this.m(name, "stop"), options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}, options);
    return job.outcome ?? "stopped";
  }

  /**
   * Run a job: without progress or cancellation, one request that waits; else create it, follow
   * its NDJSON events, and DELETE it when the signal aborts.
   */
  async runJob(path: string, body: Record<string, unknown>, options: LongOperationOptions): Promise<S.Job> {
    let job: S.Job;
    if (!options.onProgress && !options.signal) {
      job = await this.json<S.Job>("POST", path, { ...body, wait: true });
    } else {
      job = await this.json<S.Job>("POST", path, { ...body, wait: false });
      const onAbort = () => void this.request("DELETE", `/v1/jobs/${job.id}`).catch(() => undefined);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      try {
        job = await this.follow(job.id, options.onProgress);
      } finally {
        options.signal?.removeEventListener("abort", onAbort);
      }
    }
    if (job.state !== "done") {
      throw fromApiError(job.error ?? { code: "E_INTERNAL", message: `job ${job.id} ${job.state}` });
    }
    return job;
  }

  /** Stream a job's events (NDJSON) to onProgress; resolves with the finished job. */
  async follow(id: string, onProgress?: (e: S.JobEvent) => void): Promise<S.Job> {
    const res = await this.request("GET", `/v1/jobs/${encodeURIComponent(id)}/events`);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = parseEventLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if ("job" in line) {
          await reader.cancel().catch(() => undefined);
          return line.job;
        }
        onProgress?.(line);
      }
    }
    return this.json<S.Job>("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  }
}
