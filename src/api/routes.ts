/**
 * machinad's API, one definition per endpoint: method, path, query, request body and response
 * schemas. Everything else follows from this table, so a path or a schema is written once:
 * - the daemon (src/daemon/app.ts) registers one handler per entry (a missing one is a type
 *   error) and validates path parameters, query and body against the entry before the handler
 *   runs; a known path with another method is a 405;
 * - the OpenAPI document (src/api/openapi.ts) is generated from it;
 * - the typed client (src/client/client.ts) calls an entry (`call(API.kill, {params, body})`):
 *   its arguments and result are typed from the entry's schemas, its URL built from the path.
 * Pure.
 */
import { z } from "zod";
import { type ErrorContext, MachinaError } from "../errors.ts";
import * as S from "./schemas.ts";

export type Method = "get" | "post" | "put" | "delete";

export interface ResponseDef {
  description: string;
  /** The JSON body. */
  schema?: z.ZodType;
  /** Instead of schema: an application/x-ndjson stream of these. */
  ndjson?: z.ZodType;
  /** Instead of schema: the bytes of a file (application/octet-stream). */
  binary?: true;
}

export interface QueryDef {
  description: string;
  /** The string value (or undefined when absent). */
  schema: z.ZodType<string | undefined>;
}

export interface Route {
  method: Method;
  /** OpenAPI style: /v1/machines/{name}; each {param} is defined in PATH_PARAMS. */
  path: string;
  summary: string;
  query?: Record<string, QueryDef>;
  /** A strict object schema: unknown fields are refused. An empty body is {}. */
  body?: z.ZodType;
  /** Instead of body: the request's bytes are a file (application/octet-stream), at most this many. */
  rawBody?: { description: string; maxBytes: number };
  /** Success status -> body. */
  responses: Record<number, ResponseDef>;
  /** Error statuses the handler itself can answer with (400/413 of a bad request follow from params, query and body). All carry S.ApiError. */
  errors: number[];
}

/** Identity that keeps the literal types of an entry (path, schemas), for the typed handlers and client. */
function route<const R extends Route>(r: R): R {
  return r;
}

/** Path parameters: one meaning per name, wherever it appears in a path. */
export const PATH_PARAMS = {
  name: { schema: S.MachineName, what: "machine name", context: "machine", errors: [400] },
  image: { schema: S.ImageName, what: "image name", context: "value", errors: [400] },
  /** Any id: an unknown one is the handler's 404. */
  id: { schema: z.string(), what: "job id", context: "value", errors: [] },
  transfer: {
    schema: z
      .string()
      .regex(/^[0-9]{1,9}$/, "a number")
      .meta({ description: "a number" }),
    what: "transfer id",
    context: "value",
    errors: [400],
  },
} as const satisfies Record<string, { schema: z.ZodType<string>; what: string; context: keyof ErrorContext; errors: readonly number[] }>;

/** Check a path parameter's value (the daemon before a handler runs, the client before it sends): E_INVALID naming it and the rule. */
export function checkPathParam(name: keyof typeof PATH_PARAMS, value: string): string {
  const { schema, what, context } = PATH_PARAMS[name];
  if (!schema.safeParse(value).success) {
    const rule = z.globalRegistry.get(schema)?.description;
    throw new MachinaError("E_INVALID", `invalid ${what} ${JSON.stringify(value)}`, { [context]: value }, rule);
  }
  return value;
}

/** The parameter names in a path, in order. */
export function pathParams(path: string): Array<keyof typeof PATH_PARAMS> {
  return [...path.matchAll(/\{([a-z]+)\}/gi)].map((m) => m[1] as keyof typeof PATH_PARAMS);
}

/** Largest accepted request body, in bytes; bigger ones get 413. */
export const MAX_BODY_BYTES = 64 * 1024;
import { MAX_UPLOAD_BYTES } from "./limits.ts";
export { MAX_UPLOAD_BYTES };

const ContainerPath = z
  .string()
  .min(1)
  .max(4096)
  .refine((v) => v.startsWith("/") && !v.includes("\0"), "an absolute path in the machine");

const Flag = z.enum(["0", "1"]).optional();
const Job = { 200: { description: "the finished job (wait: true)", schema: S.Job }, 202: { description: "the job, still running", schema: S.Job } };
const Sent = { 200: { description: "sent", schema: S.Ok } };

export const API = {
  openapi: route({
    method: "get",
    path: "/openapi.json",
    summary: "This document",
    responses: { 200: { description: "OpenAPI 3.1", schema: z.looseObject({}) } },
    errors: [],
  }),
  version: route({
    method: "get",
    path: "/v1/version",
    summary: "Daemon name, version and API level",
    responses: { 200: { description: "ok", schema: S.Version } },
    errors: [],
  }),
  listMachines: route({
    method: "get",
    path: "/v1/machines",
    summary: "Running machines (machinactl list)",
    query: {
      all: { description: "1: also machines starting up or shutting down", schema: Flag },
      maxAddresses: {
        description: "addresses per machine",
        schema: z
          .string()
          .regex(/^[0-9]{1,6}$/)
          .optional(),
      },
    },
    responses: { 200: { description: "ok", schema: S.MachineList } },
    errors: [],
  }),
  machineStatus: route({
    method: "get",
    path: "/v1/machines/{name}",
    summary: "One running machine (machinactl status)",
    responses: { 200: { description: "ok", schema: S.MachineStatus } },
    errors: [404],
  }),
  machineProperties: route({
    method: "get",
    path: "/v1/machines/{name}/properties",
    summary: "machinectl's properties (machinactl show)",
    responses: { 200: { description: "ok", schema: S.MachineProperties } },
    errors: [404],
  }),
  machineLogs: route({
    method: "get",
    path: "/v1/machines/{name}/logs",
    summary: "The machine's log (machinactl logs): NDJSON, one {line} per line; follow=1: then new lines until the machine is gone or the client disconnects",
    query: {
      lines: {
        description: "the last N lines (default: all)",
        schema: z
          .string()
          .regex(/^[0-9]{1,7}$/)
          .optional(),
      },
      follow: { description: "1: keep sending new lines", schema: Flag },
    },
    responses: { 200: { description: "application/x-ndjson stream", ndjson: S.LogLine } },
    errors: [404],
  }),
  bindMachine: route({
    method: "post",
    path: "/v1/machines/{name}/bind",
    summary: "machinactl bind: mount a host path into the running machine (readOnly, mkdir)",
    body: S.BindRequest,
    responses: Sent,
    errors: [404, 501],
  }),
  machineShell: route({
    method: "get",
    path: "/v1/machines/{name}/shell",
    summary:
      'A shell in the machine on a terminal, over a WebSocket (Upgrade: websocket): binary frames carry the terminal\'s output and the keyboard\'s input; a text frame {"type":"resize","rows":R,"cols":C} sets its size; the last frame is {"type":"exit","status":N}',
    query: {
      rows: {
        description: "the terminal's rows (default 24)",
        schema: z
          .string()
          .regex(/^[0-9]{1,3}$/)
          .optional(),
      },
      cols: {
        description: "the terminal's columns (default 80)",
        schema: z
          .string()
          .regex(/^[0-9]{1,3}$/)
          .optional(),
      },
      user: {
        description: "a user of the machine (default root)",
        schema: z
          .string()
          .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/)
          .optional(),
      },
      login: { description: "1: a login prompt (login(1), as machinactl login) instead of a shell", schema: z.enum(["0", "1"]).optional() },
    },
    responses: { 101: { description: "switching to the WebSocket protocol", schema: S.Ok } },
    errors: [404, 501],
  }),
  getMachineFile: route({
    method: "get",
    path: "/v1/machines/{name}/files",
    summary:
      "machinactl copy-from of one file: its bytes (application/octet-stream, its size in the X-File-Size header); copied out by the helper inside the machine, as copy-from does",
    query: {
      path: { description: "the file's absolute path in the machine", schema: ContainerPath.optional() },
      archive: { description: "tar: a tar archive of what is at path (a directory's tree)", schema: z.enum(["tar"]).optional() },
    },
    responses: { 200: { description: "the file", binary: true } },
    errors: [404, 501],
  }),
  putMachineFile: route({
    method: "put",
    path: "/v1/machines/{name}/files",
    summary: `machinactl copy-to of one file: the request's bytes (application/octet-stream, at most ${MAX_UPLOAD_BYTES} bytes) become the file at path; copied in by the helper, as copy-to does`,
    query: {
      path: { description: "the file's absolute path in the machine", schema: ContainerPath.optional() },
      force: { description: "1: replace an existing file", schema: z.enum(["0", "1"]).optional() },
      archive: {
        description: "tar: the body is a tar archive, extracted (checked and confined as an import) into a new directory at path",
        schema: z.enum(["tar"]).optional(),
      },
    },
    rawBody: { description: "the file's bytes", maxBytes: MAX_UPLOAD_BYTES },
    responses: Sent,
    errors: [404, 409, 413, 501],
  }),
  machineSamples: route({
    method: "get",
    path: "/v1/machines/{name}/samples",
    summary: "The machine's CPU, memory, tasks and network counters of the last minutes, as machinad sampled them (the dashboard's graphs)",
    responses: { 200: { description: "ok", schema: S.SampleHistory } },
    errors: [404, 501],
  }),
  latestSamples: route({
    method: "get",
    path: "/v1/samples",
    summary: "The newest sample of every running machine (the dashboard's live columns)",
    responses: { 200: { description: "ok", schema: S.LatestSamples } },
    errors: [501],
  }),
  execMachine: route({
    method: "post",
    path: "/v1/machines/{name}/exec",
    summary: `Run a command in the machine as machinactl exec does (same confinement), stdin empty; its exit status and output (each cut at ${S.EXEC_OUTPUT_CAP} bytes)`,
    body: S.ExecRequest,
    responses: { 200: { description: "the command ended", schema: S.ExecResult } },
    errors: [404, 501],
  }),
  startMachine: route({
    method: "post",
    path: "/v1/machines/{name}/start",
    summary: "Boot image NAME in the background; a job (wait: true answers when it ended)",
    body: S.StartRequest,
    responses: Job,
    errors: [404, 409],
  }),
  stopMachine: route({
    method: "post",
    path: "/v1/machines/{name}/stop",
    summary: "Terminate: poweroff, SIGKILL after timeoutMs; a job",
    body: S.StopRequest,
    responses: Job,
    errors: [404],
  }),
  poweroffMachine: route({
    method: "post",
    path: "/v1/machines/{name}/poweroff",
    summary: "SIGRTMIN+4 to the leader",
    body: S.Empty,
    responses: Sent,
    errors: [404],
  }),
  rebootMachine: route({
    method: "post",
    path: "/v1/machines/{name}/reboot",
    summary: "SIGINT to the leader",
    body: S.Empty,
    responses: Sent,
    errors: [404],
  }),
  killMachine: route({
    method: "post",
    path: "/v1/machines/{name}/kill",
    summary: "Send a signal to the leader or every process",
    body: S.KillRequest,
    responses: Sent,
    errors: [404],
  }),
  enableMachine: route({
    method: "post",
    path: "/v1/machines/{name}/enable",
    summary: "Start at boot (now: also start it)",
    body: S.EnableRequest,
    responses: { 200: { description: "changes", schema: S.EnableResult } },
    errors: [404],
  }),
  disableMachine: route({
    method: "post",
    path: "/v1/machines/{name}/disable",
    summary: "Do not start at boot (now: also stop it)",
    body: S.EnableRequest,
    responses: { 200: { description: "changes", schema: S.EnableResult } },
    errors: [404],
  }),
  networks: route({
    method: "get",
    path: "/v1/networks",
    summary: "Zones and bridges in use, each container's interfaces, addresses and forwarded ports",
    responses: { 200: { description: "ok", schema: S.NetworkOverview } },
    errors: [],
  }),
  pullImage: route({
    method: "post",
    path: "/v1/images/pull",
    summary: "machinactl pull-tar / pull-raw as a job: progress events carry bytes done and total; cancel with DELETE /v1/jobs/{id} (nothing is left)",
    body: S.PullRequest,
    responses: Job,
    errors: [501],
  }),
  bootstrapImage: route({
    method: "post",
    path: "/v1/images/bootstrap",
    summary:
      "machinactl bootstrap as a job: a new image built with debootstrap/mmdebstrap or dnf; its lines are the job's events; cancel with DELETE /v1/jobs/{id} (nothing is left)",
    body: S.BootstrapRequest,
    responses: Job,
    errors: [501],
  }),
  importImage: route({
    method: "put",
    path: "/v1/images/{image}/archive",
    summary: `machinactl import-tar/import-raw/import-oci of an upload: the request's bytes (a tar or raw image, compressed or not, or an OCI archive / docker save tar; at most ${MAX_UPLOAD_BYTES} bytes) become image IMAGE, with the imports' checks and confinement; nothing is left when it fails`,
    query: {
      kind: { description: "tar (default), raw or oci", schema: z.enum(["tar", "raw", "oci"]).optional() },
      force: { description: "1: replace an existing image", schema: z.enum(["0", "1"]).optional() },
      readOnly: { description: "1: mark it read-only", schema: z.enum(["0", "1"]).optional() },
    },
    rawBody: { description: "the archive", maxBytes: MAX_UPLOAD_BYTES },
    responses: { 200: { description: "the image made", schema: S.PullResult } },
    errors: [409, 413, 501],
  }),
  exportImage: route({
    method: "get",
    path: "/v1/images/{image}/archive",
    summary: "machinactl export-tar/export-raw/export-oci as a download (application/octet-stream, its size in X-File-Size)",
    query: {
      kind: { description: "tar (default), raw or oci (an OCI archive)", schema: z.enum(["tar", "raw", "oci"]).optional() },
      compression: {
        description: "tar and raw: uncompressed (default), gzip, xz, zstd or bzip2",
        schema: z.enum(["uncompressed", "gzip", "xz", "zstd", "bzip2"]).optional(),
      },
    },
    responses: { 200: { description: "the archive", binary: true } },
    errors: [404, 501],
  }),
  listTransfers: route({
    method: "get",
    path: "/v1/transfers",
    summary:
      "The transfers in progress (machinactl list-transfers): those machinactl runs in processes of its own, and machinad's pulls and bootstraps (jobs, with their job id)",
    responses: { 200: { description: "ok", schema: S.TransferList } },
    errors: [501],
  }),
  cancelTransfer: route({
    method: "delete",
    path: "/v1/transfers/{transfer}",
    summary:
      "machinactl cancel-transfer: SIGTERM to the machinactl running it, or the cancel of machinad's job running it; either undoes its work; answers once it is gone",
    responses: Sent,
    errors: [404, 501],
  }),
  listImages: route({
    method: "get",
    path: "/v1/images",
    summary: "Images in the pool (machinactl list-images)",
    query: { all: { description: "1: hidden images too", schema: Flag } },
    responses: { 200: { description: "ok", schema: S.ImageList } },
    errors: [],
  }),
  imageStatus: route({
    method: "get",
    path: "/v1/images/{image}",
    summary: "One image (machinactl image-status)",
    responses: { 200: { description: "ok", schema: S.ImageStatus } },
    errors: [404],
  }),
  imageSettings: route({
    method: "get",
    path: "/v1/images/{image}/settings",
    summary: "The image's .nspawn settings file and its text (untrusted when it lies next to the image: docs/trust.md)",
    responses: { 200: { description: "ok", schema: S.ImageSettings } },
    errors: [404],
  }),
  imageProperties: route({
    method: "get",
    path: "/v1/images/{image}/properties",
    summary: "machined's image properties (machinactl show-image NAME)",
    responses: { 200: { description: "ok", schema: S.ImageInfo } },
    errors: [404],
  }),
  cloneImage: route({
    method: "post",
    path: "/v1/images/{image}/clone",
    summary: "Clone an image to a new name (machinactl clone)",
    body: S.CloneRequest,
    responses: { 200: { description: "the clone", schema: S.CloneResult } },
    errors: [404, 409],
  }),
  renameImage: route({
    method: "post",
    path: "/v1/images/{image}/rename",
    summary: "Rename an image (machinactl rename); 409 while a running machine uses it",
    body: S.RenameRequest,
    responses: { 200: { description: "renamed", schema: S.RenameResult } },
    errors: [404, 409],
  }),
  setImageReadOnly: route({
    method: "post",
    path: "/v1/images/{image}/read-only",
    summary: "Mark an image read-only or writable (machinactl read-only); 409 while a running machine uses it",
    body: S.ReadOnlyRequest,
    responses: { 200: { description: "changed", schema: S.ReadOnlyResult } },
    errors: [404, 409],
  }),
  setImageLimit: route({
    method: "post",
    path: "/v1/images/{image}/limit",
    summary: "Set or clear an image's size limit (machinactl set-limit NAME; btrfs quotas)",
    body: S.LimitRequest,
    responses: { 200: { description: "set", schema: S.LimitResult } },
    errors: [404, 409, 501],
  }),
  removeImage: route({
    method: "delete",
    path: "/v1/images/{image}",
    summary: "Remove an image and its .nspawn file (machinactl remove); 409 while a running machine uses it",
    responses: { 200: { description: "removed", schema: S.RemoveResult } },
    errors: [404, 409],
  }),
  pool: route({
    method: "get",
    path: "/v1/pool",
    summary: "The pool's path, usage and limit (machinactl show-image without NAME)",
    responses: { 200: { description: "ok", schema: S.PoolInfo } },
    errors: [],
  }),
  setPoolLimit: route({
    method: "post",
    path: "/v1/pool/limit",
    summary: "Set or clear the pool's size limit (machinactl set-limit BYTES; btrfs quotas)",
    body: S.LimitRequest,
    responses: { 200: { description: "set", schema: S.LimitResult } },
    errors: [409, 501],
  }),
  cleanPool: route({
    method: "post",
    path: "/v1/pool/clean",
    summary: "Remove hidden (all: every) image not in use, stale temporaries and the OCI layer cache (machinactl clean)",
    body: S.CleanRequest,
    responses: { 200: { description: "what was removed and skipped", schema: S.CleanResult } },
    errors: [],
  }),
  listJobs: route({
    method: "get",
    path: "/v1/jobs",
    summary: "Running and recently finished jobs",
    responses: { 200: { description: "ok", schema: S.JobList } },
    errors: [],
  }),
  getJob: route({
    method: "get",
    path: "/v1/jobs/{id}",
    summary: "One job (wait=1: answer once it has ended)",
    query: { wait: { description: "1: wait for the job to end", schema: Flag } },
    responses: { 200: { description: "ok", schema: S.Job } },
    errors: [404],
  }),
  jobEvents: route({
    method: "get",
    path: "/v1/jobs/{id}/events",
    summary: 'The job\'s progress as NDJSON: every event so far, then new ones, then {"job": Job} at the end',
    responses: { 200: { description: "application/x-ndjson stream", ndjson: S.JobStreamLine } },
    errors: [404],
  }),
  cancelJob: route({
    method: "delete",
    path: "/v1/jobs/{id}",
    summary: "Cancel a running job (a start is rolled back)",
    responses: { 200: { description: "the job", schema: S.Job } },
    errors: [404],
  }),
};

export type Api = typeof API;
export type RouteId = keyof Api;

/** Every route with its id (the OpenAPI operationId: its key in API), in the table's order. */
export const ROUTES: Array<Route & { id: RouteId }> = (Object.keys(API) as RouteId[]).map((id) => ({ id, ...API[id] }));

/** Every error status a route can answer with: its own, a bad request's (400, 413) and 500. */
export function errorStatuses(r: Route): number[] {
  const params = pathParams(r.path).flatMap((p) => PATH_PARAMS[p].errors);
  return [...new Set([...r.errors, ...params, ...(r.query || r.body ? [400] : []), ...(r.body ? [413] : []), 500])].sort();
}

/** HTTP status of each error code. */
export const STATUS_OF: Record<S.ErrorCode, number> = {
  E_USAGE: 400,
  E_INVALID: 400,
  E_NOT_FOUND: 404,
  E_BUSY: 409,
  E_CANCELLED: 409,
  E_TOO_LARGE: 413,
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_UNSUPPORTED: 501,
  E_SYSTEM: 500,
  E_INTERNAL: 500,
};

// The types that handlers and the client derive from an entry.

type ParamNames<P extends string> = P extends `${string}{${infer N}}${infer Rest}` ? N | ParamNames<Rest> : never;
/** The path parameters of a route, as strings. */
export type Params<R extends Route> = { [K in ParamNames<R["path"]>]: string };
/** The query of a route (raw strings, as on the wire). */
export type Query<R extends Route> =
  R["query"] extends Record<string, QueryDef> ? { [K in keyof R["query"]]?: z.output<R["query"][K]["schema"]> } : Record<string, never>;
/** The request body as the handler gets it (defaults applied). */
export type Body<R extends Route> = R["body"] extends z.ZodType ? z.output<R["body"]> : undefined;
/** The request body as a client may send it (defaults optional). */
export type BodyIn<R extends Route> = R["body"] extends z.ZodType ? z.input<R["body"]> : undefined;
/** A success answer: its status and (for JSON) its body. */
export type Reply<R extends Route> = {
  [St in keyof R["responses"] & number]: R["responses"][St] extends { schema: z.ZodType } ? { status: St; body: z.input<R["responses"][St]["schema"]> } : never;
}[keyof R["responses"] & number];
/** The parsed body of a success answer (JSON routes). */
export type Result<R extends Route> = {
  [St in keyof R["responses"] & number]: R["responses"][St] extends { schema: z.ZodType } ? z.output<R["responses"][St]["schema"]> : never;
}[keyof R["responses"] & number];

/** The URL path of a route with its parameters filled in (encoded). */
export function pathOf<R extends Route>(r: R, params: Params<R>): string {
  return r.path.replace(/\{([a-z]+)\}/gi, (_, name: string) => encodeURIComponent((params as Record<string, string>)[name] ?? ""));
}
