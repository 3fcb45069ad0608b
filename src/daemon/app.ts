/**
 * machinad's HTTP API (hono): one handler per entry of the route table (src/api/routes.ts) over
 * a MachineService. The table's path parameters, query and body are validated here, before the
 * handler runs, so a bad request (malformed JSON, unknown fields, a bad name, an oversized body)
 * changes nothing. Every answer is JSON; every error is {code, message, details} with a 4xx/5xx
 * status.
 */
import { type Context, Hono } from "hono";
import type { z } from "zod";
import { openapiDocument } from "../api/openapi.ts";
import {
  API,
  type Body,
  checkPathParam,
  MAX_BODY_BYTES,
  MAX_UPLOAD_BYTES,
  type PATH_PARAMS,
  type Params,
  pathParams,
  type Query,
  type Reply,
  ROUTES,
  type Route,
  type RouteId,
  STATUS_OF,
} from "../api/routes.ts";
import type * as S from "../api/schemas.ts";
import { type ImageService, pullTransfer } from "../api/image-service.ts";
import type { MachineService } from "../api/service.ts";
import { MachinaError } from "../errors.ts";
import { VERSION } from "../paths.ts";
import { JobManager, type RunningJob, toApiError } from "./jobs.ts";
import type { SampleSource } from "./samples.ts";
import type { ShellSocketData } from "./shell-socket.ts";
import type { WebAssets } from "./web-assets.ts";

export interface AppOptions {
  service: MachineService;
  /** The image routes' core; without it they answer 501. */
  images?: ImageService;
  jobs?: JobManager;
  /** machinad's samples of its machines (absent: the samples routes answer 501) */
  samples?: SampleSource;
  /** The dashboard served at / (absent: / answers 404) */
  web?: WebAssets;
  /** Called after a machine was started or stopped through the API (restart policy bookkeeping). */
  onStarted?: (name: string) => void;
  onStopped?: (name: string) => void;
}

/** What a handler gets: the validated request of its route. */
export interface RouteRequest<R extends Route> {
  params: Params<R>;
  query: Query<R>;
  body: Body<R>;
  c: Context;
}
/** A handler answers with a success status and body of its route, or a Response of its own (a stream). */
export type Handler<R extends Route> = (req: RouteRequest<R>) => Reply<R> | Response | Promise<Reply<R> | Response>;
/** One handler per route: a route without one is a type error. */
export type Handlers = { [K in RouteId]: Handler<(typeof API)[K]> };

function fail(c: Context, error: unknown): Response {
  const body = toApiError(error);
  return c.json(body, STATUS_OF[body.code] as 400);
}

function issueText(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join(".") || "(body)"}: ${issue.message}` : error.message;
}

function pathParam(c: Context, name: keyof typeof PATH_PARAMS): string {
  return checkPathParam(name, c.req.param(name) ?? "");
}

function query(c: Context, defs: Route["query"]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(defs ?? {})) {
    const parsed = def.schema.safeParse(c.req.query(name));
    if (!parsed.success)
      throw new MachinaError(
        "E_INVALID",
        `invalid query parameter ${name}=${JSON.stringify(c.req.query(name))}: ${parsed.error.issues[0]?.message ?? def.description}`,
      );
    if (parsed.data !== undefined) out[name] = parsed.data;
  }
  return out;
}

/** Read and validate a JSON body: empty = {}; over MAX_BODY_BYTES (declared or counted) = 413; bad JSON = 400. */
async function body(c: Context, schema: z.ZodType): Promise<unknown> {
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) throw new MachinaError("E_TOO_LARGE", `request body of ${length} bytes is larger than ${MAX_BODY_BYTES}`);
  // read as it comes, to the limit and no further (machinad accepts large bodies for uploads)
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of c.req.raw.body ?? new Blob([]).stream()) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new MachinaError("E_TOO_LARGE", `request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  let raw: unknown = {};
  const text = new TextDecoder().decode(bytes);
  if (text.trim() !== "") {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new MachinaError("E_INVALID", `malformed JSON in the request body: ${(e as Error).message}`);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new MachinaError("E_INVALID", `invalid request body: ${issueText(parsed.error)}`);
  return parsed.data;
}

/** The upload's declared length, refused at once over MAX_UPLOAD_BYTES (the body is also counted as it streams). */
function checkUploadLength(c: Context): void {
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_UPLOAD_BYTES) throw new MachinaError("E_TOO_LARGE", `an upload of ${length} bytes is larger than ${MAX_UPLOAD_BYTES}`);
}

/** A file as an answer; its size also in X-File-Size: a streamed answer goes out chunked, without Content-Length. */
function fileAnswer(f: { stream: ReadableStream<Uint8Array>; size: number }): Response {
  return new Response(f.stream, { headers: { "content-type": "application/octet-stream", "x-file-size": String(f.size) } });
}

/** The files routes' path query, required. */
function filePath(path: string | undefined): string {
  if (path === undefined) throw new MachinaError("E_USAGE", "the query parameter path (the file in the machine) is required");
  return path;
}

const honoPath = (path: string): string => path.replace(/\{([a-z]+)\}/gi, ":$1");

/** Register one route: validate its parameters, query and body, then run its handler. */
function serve<R extends Route>(app: Hono, r: R, handler: Handler<R>): void {
  const names = pathParams(r.path);
  app.on(r.method.toUpperCase(), honoPath(r.path), async (c) => {
    const params = Object.fromEntries(names.map((name) => [name, pathParam(c, name)]));
    const q = query(c, r.query);
    const b = r.body ? await body(c, r.body) : undefined;
    const out = await handler({ params, query: q, body: b, c } as RouteRequest<R>);
    return out instanceof Response ? out : c.json(out.body as object, out.status as 200);
  });
}

export function createApp(options: AppOptions): { app: Hono; jobs: JobManager } {
  const { service } = options;
  const jobs = options.jobs ?? new JobManager();
  const app = new Hono();
  const doc = openapiDocument();

  app.onError((error, c) => fail(c, error));
  app.notFound((c) => c.json({ code: "E_NOT_FOUND", message: `no such endpoint: ${c.req.method} ${c.req.path}` } satisfies S.ApiError, 404));

  const jobAnswer = async (j: RunningJob, wait: boolean) => (wait ? { status: 200 as const, body: await j.done } : { status: 202 as const, body: j.job });
  const job = (id: string): RunningJob => {
    const j = jobs.get(id);
    if (j === undefined) throw new MachinaError("E_NOT_FOUND", `no job "${id}"`);
    return j;
  };
  const ok = { status: 200, body: { ok: true } } as const;
  const images = (): ImageService => {
    if (options.images === undefined) throw new MachinaError("E_UNSUPPORTED", "this machinad serves no image pool");
    return options.images;
  };
  const samplesOrFail = (): SampleSource => {
    if (options.samples === undefined) throw new MachinaError("E_UNSUPPORTED", "this machinad keeps no samples");
    return options.samples;
  };

  const handlers: Handlers = {
    openapi: () => ({ status: 200, body: doc }),
    version: () => ({ status: 200, body: { name: "machinad", version: VERSION, api: 1, pid: process.pid } }),
    listMachines: async ({ query: { all, maxAddresses } }) => ({
      status: 200,
      body: { machines: await service.list({ all: all === "1", ...(maxAddresses !== undefined ? { maxAddresses: Number(maxAddresses) } : {}) }) },
    }),
    machineStatus: async ({ params }) => ({ status: 200, body: await service.status(params.name) }),
    machineProperties: async ({ params }) => ({ status: 200, body: await service.show(params.name) }),
    startMachine: ({ params: { name }, body }) => {
      // A running machine (409) or a missing image (404) is an answer now, not a failed job.
      service.checkStart?.(name);
      const j = jobs.run("start", name, async (progress, signal) => {
        // watched from the moment it runs: one that ends at once (exit 133: start me again) is restarted
        return service.start(name, { signal, onProgress: (e) => progress(e), onLaunched: () => options.onStarted?.(name) });
      });
      return jobAnswer(j, body.wait);
    },
    pullImage: async ({ body }) => {
      const pool = images();
      // a bad URL is a 400 now, not a failed job
      const { wait, ...request } = body;
      const j = jobs.run("pull", pullTransfer(request).local, async (progress, signal, job) =>
        pool.pull(request, { signal, onProgress: (e) => progress(e), job: job.id }),
      );
      return jobAnswer(j, wait);
    },
    listTransfers: async () => ({ status: 200, body: { transfers: await images().transfers() } }),
    cancelTransfer: async ({ params }) => {
      // a pull or bootstrap machinad runs as a job: cancelled as that job (its record says which)
      await images().cancelTransfer(Number(params.transfer), (job) => jobs.cancel(job) !== undefined);
      return ok;
    },
    importImage: async ({ params, query, c }) => {
      const pool = images();
      checkUploadLength(c);
      const made = await pool.importArchive(params.image, query.kind ?? "tar", c.req.raw.body ?? new Blob([]).stream(), {
        force: query.force === "1",
        readOnly: query.readOnly === "1",
      });
      return { status: 200, body: made };
    },
    exportImage: async ({ params, query }) => {
      return fileAnswer(await images().exportArchive(params.image, query.kind ?? "tar", query.compression));
    },
    bootstrapImage: async ({ body }) => {
      const pool = images();
      const { wait, ...request } = body;
      pool.checkBootstrap?.(request); // an unknown distribution or a missing build tool: an answer now
      const j = jobs.run("bootstrap", request.name, async (progress, signal, job) =>
        pool.bootstrap(request, { signal, onProgress: (e) => progress(e), job: job.id }),
      );
      return jobAnswer(j, wait);
    },
    stopMachine: async ({ params: { name }, body }) => {
      // An unknown machine is a 404 now, not a failed job.
      await service.status(name);
      options.onStopped?.(name);
      const j = jobs.run("stop", name, async (progress, signal, job) => {
        job.outcome = await service.terminate(name, { timeoutMs: body.timeoutMs, signal, onProgress: (e) => progress(e) });
        return null;
      });
      return jobAnswer(j, body.wait);
    },
    poweroffMachine: async ({ params: { name } }) => {
      options.onStopped?.(name);
      await service.poweroff(name);
      return ok;
    },
    rebootMachine: async ({ params: { name } }) => {
      await service.reboot(name);
      return ok;
    },
    killMachine: async ({ params: { name }, body }) => {
      await service.kill(name, { whom: body.whom, signal: body.signal });
      return ok;
    },
    enableMachine: async ({ params: { name }, body }) => ({ status: 200, body: await service.enable(name, { now: body.now }) }),
    disableMachine: async ({ params: { name }, body }) => {
      if (body.now) options.onStopped?.(name);
      return { status: 200, body: await service.disable(name, { now: body.now }) };
    },
    bindMachine: async ({ params: { name }, body }) => {
      await service.bind(name, body);
      return ok;
    },
    machineShell: async ({ params: { name }, query, c }) => {
      if (c.req.header("upgrade")?.toLowerCase() !== "websocket")
        throw new MachinaError("E_USAGE", "the shell is a WebSocket: send Upgrade: websocket (the dashboard's terminal does)");
      if (query.login === "1" && query.user !== undefined) throw new MachinaError("E_USAGE", "login=1 asks for the user at the prompt: no user with it");
      const shell = service.shell?.bind(service);
      const server = c.env as { upgrade?: (req: Request, o: { data: ShellSocketData }) => boolean } | undefined;
      if (shell === undefined || server?.upgrade === undefined) throw new MachinaError("E_UNSUPPORTED", "this machinad serves no terminals");
      await service.status(name); // an unknown machine is a 404 now, not a closed socket
      const rows = Number(query.rows ?? 24) || 24;
      const cols = Number(query.cols ?? 80) || 80;
      const start = () => shell(name, { rows, cols, login: query.login === "1", ...(query.user !== undefined ? { user: query.user } : {}) });
      if (!server.upgrade(c.req.raw, { data: { start } })) throw new MachinaError("E_USAGE", "the WebSocket upgrade failed");
      return new Response(null, { status: 101 });
    },
    getMachineFile: async ({ params: { name }, query }) =>
      fileAnswer(await service.getFile(name, filePath(query.path), query.archive !== undefined ? { archive: query.archive } : {})),
    putMachineFile: async ({ params: { name }, query, c }) => {
      const path = filePath(query.path);
      checkUploadLength(c);
      await service.putFile(name, path, c.req.raw.body ?? new Blob([]).stream(), {
        force: query.force === "1",
        ...(query.archive !== undefined ? { archive: query.archive } : {}),
      });
      return ok;
    },
    networks: async () => ({ status: 200, body: await service.networks() }),
    machineSamples: ({ params: { name } }) => {
      const src = samplesOrFail();
      const samples = src.history(name);
      if (samples === undefined) throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is sampled (not running)`, { machine: name });
      return { status: 200, body: { intervalMs: src.intervalMs, samples } };
    },
    latestSamples: () => {
      const src = samplesOrFail();
      return { status: 200, body: { intervalMs: src.intervalMs, machines: src.latest() } };
    },
    machineLogs: ({ params: { name }, query, c }) => {
      // No log (404) is an answer now, before the stream starts.
      service.checkLogs?.(name);
      const follow = query.follow === "1";
      if (follow) (c.env as { timeout?: (req: Request, seconds: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
      const enc = new TextEncoder();
      // The client's disconnect (cancel) aborts the follower: the console poll ends, journalctl -f is killed.
      const ac = new AbortController();
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          const send = (l: S.LogLine) => {
            if (ac.signal.aborted) return;
            try {
              controller.enqueue(enc.encode(JSON.stringify(l) + "\n"));
            } catch {
              ac.abort();
            }
          };
          void service
            .logs(name, {
              follow,
              ...(query.lines !== undefined ? { lines: Number(query.lines) } : {}),
              signal: ac.signal,
              onLine: (line) => send({ line }),
            })
            .catch(() => undefined)
            .finally(() => {
              if (ac.signal.aborted) return;
              try {
                controller.close();
              } catch {
                // cancelled meanwhile
              }
            });
        },
        cancel() {
          ac.abort();
        },
      });
      c.req.raw.signal?.addEventListener("abort", () => ac.abort(), { once: true });
      return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
    },
    // the client's disconnect aborts the request: the command gets SIGTERM
    execMachine: async ({ params: { name }, body, c }) => ({ status: 200, body: await service.exec(name, body, { signal: c.req.raw.signal }) }),
    listImages: async ({ query }) => ({ status: 200, body: { images: await images().listImages({ all: query.all === "1" }) } }),
    imageStatus: async ({ params }) => ({ status: 200, body: await images().imageStatus(params.image) }),
    imageSettings: async ({ params }) => ({ status: 200, body: await images().settings(params.image) }),
    imageProperties: async ({ params }) => ({ status: 200, body: await images().showImage(params.image) }),
    cloneImage: async ({ params, body }) => ({ status: 200, body: await images().clone(params.image, body.to, { readOnly: body.readOnly }) }),
    renameImage: async ({ params, body }) => ({ status: 200, body: await images().rename(params.image, body.to) }),
    setImageReadOnly: async ({ params, body }) => ({ status: 200, body: await images().setReadOnly(params.image, body.readOnly) }),
    setImageLimit: async ({ params, body }) => ({ status: 200, body: await images().setLimit(params.image, body.limit ?? undefined) }),
    removeImage: async ({ params }) => ({ status: 200, body: await images().remove(params.image) }),
    pool: async () => ({ status: 200, body: await images().pool() }),
    setPoolLimit: async ({ body }) => ({ status: 200, body: await images().setLimit(undefined, body.limit ?? undefined) }),
    cleanPool: async ({ body }) => ({ status: 200, body: await images().clean({ all: body.all }) }),
    listJobs: () => ({ status: 200, body: { jobs: jobs.list() } }),
    getJob: async ({ params, query }) => {
      const j = job(params.id);
      return { status: 200, body: query.wait === "1" ? await j.done : j.job };
    },
    cancelJob: async ({ params }) => {
      const j = job(params.id);
      jobs.cancel(j.job.id);
      return { status: 200, body: await j.done };
    },
    jobEvents: ({ params, c }) => {
      const j = job(params.id);
      // Bun.serve's idle timeout (10 s) must not cut a quiet stream of a long job.
      (c.env as { timeout?: (req: Request, seconds: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
      const enc = new TextEncoder();
      const line = (l: S.JobStreamLine) => enc.encode(JSON.stringify(l) + "\n");
      let unsubscribe = () => {};
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const e of j.job.events) controller.enqueue(line(e));
          if (j.job.state !== "running") {
            controller.enqueue(line({ job: j.job }));
            controller.close();
            return;
          }
          const listener = (e: S.JobEvent | null) => {
            try {
              if (e === null) {
                controller.enqueue(line({ job: j.job }));
                controller.close();
              } else controller.enqueue(line(e));
            } catch {
              j.listeners.delete(listener);
            }
          };
          j.listeners.add(listener);
          unsubscribe = () => j.listeners.delete(listener);
        },
        cancel() {
          unsubscribe();
        },
      });
      return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
    },
  };

  for (const id of Object.keys(API) as RouteId[]) serve(app, API[id] as Route, handlers[id] as Handler<Route>);

  // The dashboard (web/, docs/dashboard.md): its page and its assets, read at start.
  const web = options.web;
  app.get("/", (c) => {
    const r = web?.response("index.html");
    if (r !== undefined) return r;
    return c.json({ code: "E_NOT_FOUND", message: "the dashboard is not built here: build it with scripts/build (dist/web)" } satisfies S.ApiError, 404);
  });
  app.get("/assets/:file", (c) => {
    const file = c.req.param("file");
    return (
      (file !== "index.html" ? web?.response(file) : undefined) ?? c.json({ code: "E_NOT_FOUND", message: `no such asset: ${file}` } satisfies S.ApiError, 404)
    );
  });

  // Known paths with another method: 405, JSON.
  for (const r of ROUTES) {
    app.all(honoPath(r.path), (c) => c.json({ code: "E_USAGE", message: `method ${c.req.method} not allowed on ${r.path}` } satisfies S.ApiError, 405));
  }

  return { app, jobs };
}
