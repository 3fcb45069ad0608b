/**
 * machinad's HTTP API (hono): the route table of src/api/routes.ts over a MachineService.
 * Every answer is JSON; every error is {code, message, details} with a 4xx/5xx status. A bad
 * request (malformed JSON, unknown fields, a bad name, an oversized body) is refused before
 * the service is called, so it changes nothing.
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import { MachinaError } from "../errors.ts";
import { openapiDocument } from "../api/openapi.ts";
import { MAX_BODY_BYTES, ROUTES, STATUS_OF } from "../api/routes.ts";
import * as S from "../api/schemas.ts";
import type { MachineService } from "../api/service.ts";
import { VERSION } from "../paths.ts";
import { isValidMachineName } from "../settings/values.ts";
import { JobManager, toApiError, type RunningJob } from "./jobs.ts";

export interface AppOptions {
  service: MachineService;
  jobs?: JobManager;
  /** Called after a machine was started or stopped through the API (restart policy bookkeeping). */
  onStarted?: (name: string) => void;
  onStopped?: (name: string) => void;
}

function fail(c: Context, error: unknown): Response {
  const body = toApiError(error);
  return c.json(body, STATUS_OF[body.code] as 400);
}

function machineName(c: Context): string {
  const name = c.req.param("name") ?? "";
  if (!isValidMachineName(name))
    throw new MachinaError("E_INVALID", `invalid machine name ${JSON.stringify(name)}`, { machine: name }, "letters, digits, '-' and '.', at most 64 characters");
  return name;
}

/** Read and validate a JSON body: empty = {}; over MAX_BODY_BYTES = 413; bad JSON = 400. */
async function body<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const length = Number(c.req.header("content-length") ?? "0");
  if (length > MAX_BODY_BYTES) throw new MachinaError("E_TOO_LARGE", `request body of ${length} bytes is larger than ${MAX_BODY_BYTES}`);
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.length > MAX_BODY_BYTES) throw new MachinaError("E_TOO_LARGE", `request body is larger than ${MAX_BODY_BYTES} bytes`);
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
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new MachinaError("E_INVALID", `invalid request body: ${issue ? `${issue.path.join(".") || "(body)"}: ${issue.message}` : parsed.error.message}`);
  }
  return parsed.data;
}

export function createApp(options: AppOptions): { app: Hono; jobs: JobManager } {
  const { service } = options;
  const jobs = options.jobs ?? new JobManager();
  const app = new Hono();
  const doc = openapiDocument();

  app.onError((error, c) => fail(c, error));
  app.notFound((c) => c.json({ code: "E_NOT_FOUND", message: `no such endpoint: ${c.req.method} ${c.req.path}` } satisfies S.ApiError, 404));

  app.get("/openapi.json", (c) => c.json(doc));
  app.get("/v1/version", (c) => c.json({ name: "machinad", version: VERSION, api: 1, pid: process.pid } satisfies S.Version));

  app.get("/v1/machines", async (c) => {
    const all = c.req.query("all");
    const max = c.req.query("maxAddresses");
    if ((all !== undefined && all !== "0" && all !== "1") || (max !== undefined && !/^[0-9]{1,6}$/.test(max)))
      throw new MachinaError("E_INVALID", "invalid query: all=0|1, maxAddresses=N");
    return c.json({ machines: await service.list({ all: all === "1", ...(max !== undefined ? { maxAddresses: Number(max) } : {}) }) });
  });
  app.get("/v1/machines/:name", async (c) => c.json(await service.status(machineName(c))));
  app.get("/v1/machines/:name/properties", async (c) => c.json(await service.show(machineName(c))));

  const jobAnswer = async (c: Context, j: RunningJob, wait: boolean) => {
    if (!wait) return c.json(j.job, 202);
    return c.json(await j.done, 200);
  };

  app.post("/v1/machines/:name/start", async (c) => {
    const name = machineName(c);
    const req = await body(c, S.StartRequest);
    // A running machine (409) or a missing image (404) is an answer now, not a failed job.
    service.checkStart?.(name);
    const j = jobs.run("start", name, async (progress, signal) => {
      const status = await service.start(name, { signal, onProgress: (e) => progress(e) });
      options.onStarted?.(name);
      return status;
    });
    return jobAnswer(c, j, req.wait);
  });

  app.post("/v1/machines/:name/stop", async (c) => {
    const name = machineName(c);
    const req = await body(c, S.StopRequest);
    // An unknown machine is a 404 now, not a failed job.
    await service.status(name);
    options.onStopped?.(name);
    const j = jobs.run("stop", name, async (progress, signal, job) => {
      job.outcome = await service.terminate(name, { timeoutMs: req.timeoutMs, signal, onProgress: (e) => progress(e) });
      return null;
    });
    return jobAnswer(c, j, req.wait);
  });

  app.post("/v1/machines/:name/poweroff", async (c) => {
    const name = machineName(c);
    await body(c, z.object({}).strict());
    options.onStopped?.(name);
    await service.poweroff(name);
    return c.json({ ok: true } as const);
  });
  app.post("/v1/machines/:name/reboot", async (c) => {
    const name = machineName(c);
    await body(c, z.object({}).strict());
    await service.reboot(name);
    return c.json({ ok: true } as const);
  });
  app.post("/v1/machines/:name/kill", async (c) => {
    const name = machineName(c);
    const req = await body(c, S.KillRequest);
    await service.kill(name, { whom: req.whom, signal: req.signal });
    return c.json({ ok: true } as const);
  });
  app.post("/v1/machines/:name/enable", async (c) => {
    const name = machineName(c);
    const req = await body(c, S.EnableRequest);
    return c.json(await service.enable(name, { now: req.now }));
  });
  app.post("/v1/machines/:name/disable", async (c) => {
    const name = machineName(c);
    const req = await body(c, S.EnableRequest);
    if (req.now) options.onStopped?.(name);
    return c.json(await service.disable(name, { now: req.now }));
  });

  const job = (c: Context): RunningJob => {
    const j = jobs.get(c.req.param("id") ?? "");
    if (j === undefined) throw new MachinaError("E_NOT_FOUND", `no job "${c.req.param("id")}"`);
    return j;
  };
  app.get("/v1/jobs", (c) => c.json({ jobs: jobs.list() }));
  app.get("/v1/jobs/:id", async (c) => {
    const j = job(c);
    return c.json(c.req.query("wait") === "1" ? await j.done : j.job);
  });
  app.delete("/v1/jobs/:id", async (c) => {
    const j = job(c);
    jobs.cancel(j.job.id);
    return c.json(await j.done);
  });
  app.get("/v1/jobs/:id/events", (c) => {
    const j = job(c);
    // Bun.serve's idle timeout (10 s) must not cut a quiet stream of a long job.
    (c.env as { timeout?: (req: Request, seconds: number) => void } | undefined)?.timeout?.(c.req.raw, 0);
    const enc = new TextEncoder();
    let unsubscribe = () => {};
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const e of j.job.events) controller.enqueue(enc.encode(JSON.stringify(e) + "\n"));
        if (j.job.state !== "running") {
          controller.enqueue(enc.encode(JSON.stringify({ job: j.job }) + "\n"));
          controller.close();
          return;
        }
        const listener = (e: S.JobEvent | null) => {
          try {
            if (e === null) {
              controller.enqueue(enc.encode(JSON.stringify({ job: j.job }) + "\n"));
              controller.close();
            } else controller.enqueue(enc.encode(JSON.stringify(e) + "\n"));
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
  });

  // Known paths with another method: 405, JSON.
  for (const r of ROUTES) {
    const path = r.path.replace(/\{([a-z]+)\}/g, ":$1");
    app.all(path, (c) => c.json({ code: "E_USAGE", message: `method ${c.req.method} not allowed on ${r.path}` } satisfies S.ApiError, 405));
  }

  return { app, jobs };
}
