/**
 * Typed client of machinad's API over its Unix socket (Bun's fetch `unix:` option). It
 * implements MachineService exactly as the in-process core does: same results, same errors
 * (MachinaErrors rebuilt from the API's {code, message, details}). Paths and types are not
 * written here: each method calls an entry of the route table (src/api/routes.ts), and its
 * arguments and result are typed from that entry's schemas.
 */
import type { z } from "zod";
import { isErrorCode, MachinaError } from "../errors.ts";
import { apiSocketPath } from "./socket-path.ts";
import { API, type BodyIn, checkPathParam, type Params, pathOf, pathParams, type Query, type Result, type Route } from "../api/routes.ts";
import * as S from "../api/schemas.ts";
import type { Compression } from "../image/compression.ts";
import type { MachineStatus, MachineSummary } from "../machine/machines.ts";
import type { ImageService } from "../api/image-service.ts";
import type { KillOptions, LogsOptions, LongOperationOptions, MachineService, StopOptions } from "../api/service.ts";

/** One line of GET /v1/jobs/{id}/events: a progress event, or the finished job (the last line). */
const EventLine = API.jobEvents.responses[200].ndjson;
/** One line of GET /v1/machines/{name}/logs. */
const LogLineSchema = API.machineLogs.responses[200].ndjson;

function parseEventLine(text: string): S.JobStreamLine {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MachinaError("E_SYSTEM", `machinad sent a job event that is not JSON: ${(e as Error).message}`);
  }
  const r = EventLine.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MachinaError(
      "E_SYSTEM",
      `machinad sent an invalid job event: ${issue ? `${issue.path.join(".") || "(line)"}: ${issue.message}` : r.error.message}`,
    );
  }
  return r.data;
}

/** A finished job, or its error thrown (a job that did not end "done"). */
function finished(job: S.Job): S.Job {
  if (job.state !== "done") throw fromApiError(job.error ?? { code: "E_INTERNAL", message: `job ${job.id} ${job.state}` });
  return job;
}

/** A file route's answer: its bytes, and its size from X-File-Size (src/daemon/app.ts fileAnswer). */
function fileOf(res: Response): { stream: ReadableStream<Uint8Array>; size: number } {
  return { stream: res.body ?? new Blob([]).stream(), size: Number(res.headers.get("x-file-size") ?? "0") };
}

/** The API's error as the core's MachinaError: the same code (E_INTERNAL, the daemon's own, becomes E_SYSTEM). */
function fromApiError(err: S.ApiError): MachinaError {
  const { hint, ...context } = (err.details ?? {}) as Record<string, unknown>;
  const e = new MachinaError(isErrorCode(err.code) ? err.code : "E_SYSTEM", err.message, context, typeof hint === "string" ? hint : undefined);
  (e as MachinaError & { apiCode: string }).apiCode = err.code;
  return e;
}

/** The arguments of a route: its path parameters, query and body, each only where the route has them. */
export type CallArgs<R extends Route> = (keyof Params<R> extends never ? { params?: undefined } : { params: Params<R> }) &
  (R["query"] extends object ? { query?: Query<R> } : { query?: undefined }) &
  (R["body"] extends z.ZodType ? { body?: BodyIn<R> } : { body?: undefined });

/** The routes that run a job: start, stop. */
type JobRoute = typeof API.startMachine | typeof API.stopMachine;

export class MachinaClient implements MachineService, ImageService {
  constructor(readonly socket: string = apiSocketPath()) {}

  /** Send a request for a route (URL from its path and query, JSON body); an error answer is thrown as a MachinaError. */
  async request<R extends Route>(route: R, args: CallArgs<R>, signal?: AbortSignal, raw?: ReadableStream<Uint8Array> | Uint8Array): Promise<Response> {
    // A bad name is refused here as the daemon would ("..", "." would not even reach it: URL parsing resolves them).
    for (const name of pathParams(route.path)) checkPathParam(name, (args.params as Record<string, string> | undefined)?.[name] ?? "");
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(args.query ?? {})) if (typeof v === "string") q.set(k, v);
    const url = `http://localhost${pathOf(route, (args.params ?? {}) as Params<R>)}${q.size > 0 ? `?${q}` : ""}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: route.method.toUpperCase(),
        unix: this.socket,
        ...(args.body !== undefined ? { body: JSON.stringify(args.body), headers: { "content-type": "application/json" } } : {}),
        ...(raw !== undefined
          ? { body: raw instanceof Uint8Array ? new Blob([raw as Uint8Array<ArrayBuffer>]) : raw, headers: { "content-type": "application/octet-stream" } }
          : {}),
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

  /** Call a JSON route: its answer, typed from the route's response schemas. */
  async call<R extends Route>(route: R, args: CallArgs<R>, signal?: AbortSignal): Promise<Result<R>> {
    return (await (await this.request(route, args, signal)).json()) as Result<R>;
  }

  /** True when a machinad answers on the socket (quickly: a missing socket is one stat). */
  async ping(timeoutMs = 500): Promise<boolean> {
    try {
      const res = await fetch(`http://localhost${API.version.path}`, { unix: this.socket, signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  }

  async version(): Promise<S.Version> {
    return this.call(API.version, {});
  }

  async list(options: { all?: boolean; maxAddresses?: number } = {}): Promise<MachineSummary[]> {
    const query = {
      ...(options.all ? { all: "1" as const } : {}),
      ...(options.maxAddresses !== undefined ? { maxAddresses: String(options.maxAddresses) } : {}),
    };
    return (await this.call(API.listMachines, { query })).machines as MachineSummary[];
  }
  async status(name: string): Promise<MachineStatus> {
    return (await this.call(API.machineStatus, { params: { name } })) as MachineStatus;
  }
  async show(name: string): Promise<S.MachineProperties> {
    return this.call(API.machineProperties, { params: { name } });
  }
  async poweroff(name: string): Promise<void> {
    await this.call(API.poweroffMachine, { params: { name } });
  }
  async reboot(name: string): Promise<void> {
    await this.call(API.rebootMachine, { params: { name } });
  }
  async kill(name: string, options: KillOptions = {}): Promise<void> {
    await this.call(API.killMachine, {
      params: { name },
      body: { ...(options.whom ? { whom: options.whom } : {}), ...(options.signal ? { signal: options.signal } : {}) },
    });
  }
  async enable(name: string, options: { now?: boolean } = {}): Promise<S.EnableResult> {
    return this.call(API.enableMachine, { params: { name }, body: { now: options.now ?? false } });
  }
  async disable(name: string, options: { now?: boolean } = {}): Promise<S.EnableResult> {
    return this.call(API.disableMachine, { params: { name }, body: { now: options.now ?? false } });
  }

  /** GET …/logs: each {line} of the NDJSON stream to onLine; aborting the signal closes the connection (machinad's follower stops). */
  async logs(name: string, options: LogsOptions): Promise<number> {
    const query = { ...(options.lines !== undefined ? { lines: String(options.lines) } : {}), ...(options.follow ? { follow: "1" as const } : {}) };
    const res = await this.request(API.machineLogs, { params: { name }, query }, options.signal);
    try {
      for await (const text of ndjsonLines(res)) {
        let raw: unknown;
        try {
          raw = JSON.parse(text);
        } catch {
          raw = undefined;
        }
        const line = LogLineSchema.safeParse(raw);
        if (!line.success) throw new MachinaError("E_SYSTEM", `machinad sent an invalid log line: ${text.slice(0, 200)}`);
        options.onLine(line.data.line);
      }
    } catch (e) {
      if (options.signal?.aborted) return 0;
      throw e;
    }
    return 0;
  }

  /** Aborting the signal closes the request: machinad sends the command SIGTERM. */
  async exec(name: string, request: S.ExecRequest, options: { signal?: AbortSignal } = {}): Promise<S.ExecResult> {
    return this.call(API.execMachine, { params: { name }, body: request }, options.signal);
  }
  async bind(name: string, request: S.BindRequest): Promise<void> {
    await this.call(API.bindMachine, { params: { name }, body: request });
  }
  async putFile(name: string, path: string, data: ReadableStream<Uint8Array> | Uint8Array, options: { force?: boolean; archive?: "tar" } = {}): Promise<void> {
    const query = { path, ...(options.force ? { force: "1" as const } : {}), ...(options.archive !== undefined ? { archive: options.archive } : {}) };
    await this.request(API.putMachineFile, { params: { name }, query }, undefined, data);
  }
  async getFile(name: string, path: string, options: { archive?: "tar" } = {}): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
    const res = await this.request(API.getMachineFile, {
      params: { name },
      query: { path, ...(options.archive !== undefined ? { archive: options.archive } : {}) },
    });
    return fileOf(res);
  }
  async networks(): Promise<S.NetworkOverview> {
    return this.call(API.networks, {});
  }

  async listImages(options: { all?: boolean } = {}): Promise<S.ImageSummary[]> {
    return (await this.call(API.listImages, { query: options.all ? { all: "1" } : {} })).images;
  }
  async imageStatus(name: string): Promise<S.ImageStatus> {
    return this.call(API.imageStatus, { params: { image: name } });
  }
  async settings(name: string): Promise<S.ImageSettings> {
    return this.call(API.imageSettings, { params: { image: name } });
  }
  async showImage(name: string): Promise<S.ImageInfo> {
    return this.call(API.imageProperties, { params: { image: name } });
  }
  async pool(): Promise<S.PoolInfo> {
    return this.call(API.pool, {});
  }
  async clone(from: string, to: string, options: { readOnly?: boolean } = {}): Promise<S.CloneResult> {
    return this.call(API.cloneImage, { params: { image: from }, body: { to, readOnly: options.readOnly ?? false } });
  }
  async rename(from: string, to: string): Promise<S.RenameResult> {
    return this.call(API.renameImage, { params: { image: from }, body: { to } });
  }
  async setReadOnly(name: string, readOnly: boolean): Promise<S.ReadOnlyResult> {
    return this.call(API.setImageReadOnly, { params: { image: name }, body: { readOnly } });
  }
  async remove(name: string): Promise<S.RemoveResult> {
    return this.call(API.removeImage, { params: { image: name } });
  }
  async setLimit(name: string | undefined, limit: number | undefined): Promise<S.LimitResult> {
    const body = { limit: limit ?? null };
    return name === undefined ? this.call(API.setPoolLimit, { body }) : this.call(API.setImageLimit, { params: { image: name }, body });
  }
  async clean(options: { all?: boolean } = {}): Promise<S.CleanResult> {
    return this.call(API.cleanPool, { body: { all: options.all ?? false } });
  }

  async importArchive(
    name: string,
    kind: "tar" | "raw" | "oci",
    data: ReadableStream<Uint8Array> | Uint8Array,
    options: { force?: boolean; readOnly?: boolean } = {},
  ): Promise<S.PullResult> {
    const query = { kind, ...(options.force ? { force: "1" as const } : {}), ...(options.readOnly ? { readOnly: "1" as const } : {}) };
    return (await (await this.request(API.importImage, { params: { image: name }, query }, undefined, data)).json()) as S.PullResult;
  }
  async exportArchive(name: string, kind: "tar" | "raw" | "oci", compression?: Compression): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
    const res = await this.request(API.exportImage, { params: { image: name }, query: { kind, ...(compression !== undefined ? { compression } : {}) } });
    return fileOf(res);
  }

  async transfers(): Promise<S.Transfer[]> {
    return (await this.call(API.listTransfers, {})).transfers;
  }
  async cancelTransfer(id: number): Promise<void> {
    await this.call(API.cancelTransfer, { params: { transfer: String(id) } });
  }

  /** bootstrap through machinad: a job followed to its end. */
  async bootstrap(request: S.BootstrapSpec, options: LongOperationOptions = {}): Promise<S.PullResult> {
    return (await this.followJob(await this.call(API.bootstrapImage, { body: { ...request, wait: false } }), options)).result as S.PullResult;
  }

  /** A job already made: its events to onProgress until it ends (DELETE when the signal aborts); its error thrown. */
  private async followJob(created: S.Job, options: LongOperationOptions): Promise<S.Job> {
    let job = created;
    const onAbort = () => void this.request(API.cancelJob, { params: { id: job.id } }).catch(() => undefined);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      job = await this.follow(job.id, options.onProgress);
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
    return finished(job);
  }

  /** pull-tar / pull-raw through machinad: a job followed to its end (progress, cancellation as a start's). */
  async pull(request: S.PullSpec, options: LongOperationOptions = {}): Promise<S.PullResult> {
    return (await this.followJob(await this.call(API.pullImage, { body: { ...request, wait: false } }), options)).result as S.PullResult;
  }

  async start(name: string, options: LongOperationOptions = {}): Promise<MachineStatus> {
    const job = await this.runJob(API.startMachine, name, {}, options);
    return job.result as MachineStatus;
  }

  async terminate(name: string, options: StopOptions = {}): Promise<"stopped" | "killed"> {
    const job = await this.runJob(API.stopMachine, name, options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}, options);
    return job.outcome ?? "stopped";
  }

  /**
   * Run a job: without progress or cancellation, one request that waits; else create it, follow
   * its NDJSON events, and DELETE it when the signal aborts.
   */
  async runJob<R extends JobRoute>(route: R, name: string, body: Omit<BodyIn<R>, "wait">, options: LongOperationOptions): Promise<S.Job> {
    if (!options.onProgress && !options.signal) return finished(await this.call<JobRoute>(route, { params: { name }, body: { ...body, wait: true } }));
    return this.followJob(await this.call<JobRoute>(route, { params: { name }, body: { ...body, wait: false } }), options);
  }

  /** Stream a job's events (NDJSON) to onProgress; resolves with the finished job. */
  async follow(id: string, onProgress?: (e: S.JobEvent) => void): Promise<S.Job> {
    const res = await this.request(API.jobEvents, { params: { id } });
    for await (const text of ndjsonLines(res)) {
      const line = parseEventLine(text);
      if ("job" in line) return line.job; // (leaving the loop cancels the stream)
      onProgress?.(line);
    }
    return this.call(API.getJob, { params: { id } });
  }
}

/** The lines of an NDJSON response as they arrive; the stream is cancelled when the caller stops early or fails. */
async function* ndjsonLines(res: Response): AsyncGenerator<string> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        yield line;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
