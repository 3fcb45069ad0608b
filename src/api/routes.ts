/**
 * The route table of machinad's API: method, path, request and response schemas. The daemon
 * (src/daemon/app.ts) serves exactly these, and the OpenAPI document is generated from them
 * (src/api/openapi.ts), so the two cannot drift. Pure.
 */
import { z } from "zod";
import * as S from "./schemas.ts";

export interface Route {
  id: string;
  method: "get" | "post" | "delete";
  /** OpenAPI style: /v1/machines/{name} */
  path: string;
  summary: string;
  body?: z.ZodType;
  query?: Record<string, { description: string; schema: z.ZodType }>;
  /** Status -> schema (undefined = the NDJSON stream of /events). */
  responses: Record<number, { description: string; schema?: z.ZodType; ndjson?: z.ZodType }>;
  /** Error statuses this route can answer with (all carry S.ApiError). */
  errors: number[];
}

/** Largest accepted request body, in bytes; bigger ones get 413. */
export const MAX_BODY_BYTES = 64 * 1024;

const NAME_ERRORS = [400, 404];

export const ROUTES: Route[] = [
  { id: "version", method: "get", path: "/v1/version", summary: "Daemon name, version and API level", responses: { 200: { description: "ok", schema: S.Version } }, errors: [] },
  {
    id: "listMachines", method: "get", path: "/v1/machines", summary: "Running machines (machinactl list)",
    query: { all: { description: "1: also machines starting up or shutting down", schema: z.enum(["0", "1"]).optional() }, maxAddresses: { description: "addresses per machine", schema: z.string().regex(/^[0-9]+$/).optional() } },
    responses: { 200: { description: "ok", schema: S.MachineList } }, errors: [400],
  },
  { id: "machineStatus", method: "get", path: "/v1/machines/{name}", summary: "One running machine (machinactl status)", responses: { 200: { description: "ok", schema: S.MachineStatus } }, errors: NAME_ERRORS },
  { id: "machineProperties", method: "get", path: "/v1/machines/{name}/properties", summary: "machinectl's properties (machinactl show)", responses: { 200: { description: "ok", schema: S.MachineProperties } }, errors: NAME_ERRORS },
  {
    id: "startMachine", method: "post", path: "/v1/machines/{name}/start", summary: "Boot image NAME in the background; a job (wait: true answers when it ended)", body: S.StartRequest,
    responses: { 200: { description: "the finished job (wait: true)", schema: S.Job }, 202: { description: "the job, still running", schema: S.Job } }, errors: [...NAME_ERRORS, 409, 413],
  },
  {
    id: "stopMachine", method: "post", path: "/v1/machines/{name}/stop", summary: "Terminate: poweroff, SIGKILL after timeoutMs; a job", body: S.StopRequest,
    responses: { 200: { description: "the finished job (wait: true)", schema: S.Job }, 202: { description: "the job, still running", schema: S.Job } }, errors: [...NAME_ERRORS, 413],
  },
  { id: "poweroffMachine", method: "post", path: "/v1/machines/{name}/poweroff", summary: "SIGRTMIN+4 to the leader", responses: { 200: { description: "sent", schema: S.Ok } }, errors: NAME_ERRORS },
  { id: "rebootMachine", method: "post", path: "/v1/machines/{name}/reboot", summary: "SIGINT to the leader", responses: { 200: { description: "sent", schema: S.Ok } }, errors: NAME_ERRORS },
  { id: "killMachine", method: "post", path: "/v1/machines/{name}/kill", summary: "Send a signal to the leader or every process", body: S.KillRequest, responses: { 200: { description: "sent", schema: S.Ok } }, errors: [...NAME_ERRORS, 413] },
  { id: "enableMachine", method: "post", path: "/v1/machines/{name}/enable", summary: "Start at boot (now: also start it)", body: S.EnableRequest, responses: { 200: { description: "changes", schema: S.EnableResult } }, errors: [...NAME_ERRORS, 413] },
  { id: "disableMachine", method: "post", path: "/v1/machines/{name}/disable", summary: "Do not start at boot (now: also stop it)", body: S.EnableRequest, responses: { 200: { description: "changes", schema: S.EnableResult } }, errors: [...NAME_ERRORS, 413] },
  { id: "listJobs", method: "get", path: "/v1/jobs", summary: "Running and recently finished jobs", responses: { 200: { description: "ok", schema: S.JobList } }, errors: [] },
  {
    id: "getJob", method: "get", path: "/v1/jobs/{id}", summary: "One job (wait=1: answer once it has ended)",
    query: { wait: { description: "1: wait for the job to end", schema: z.enum(["0", "1"]).optional() } },
    responses: { 200: { description: "ok", schema: S.Job } }, errors: [404],
  },
  { id: "jobEvents", method: "get", path: "/v1/jobs/{id}/events", summary: "The job's progress as NDJSON: every event so far, then new ones, then {\"job\": Job} at the end", responses: { 200: { description: "application/x-ndjson stream", ndjson: S.JobEvent } }, errors: [404] },
  { id: "cancelJob", method: "delete", path: "/v1/jobs/{id}", summary: "Cancel a running job (a start is rolled back)", responses: { 200: { description: "the job", schema: S.Job } }, errors: [404] },
];

/** HTTP status of each error code. */
export const STATUS_OF: Record<S.ErrorCode, number> = {
  E_USAGE: 400,
  E_INVALID: 400,
  E_NOT_FOUND: 404,
  E_BUSY: 409,
  E_CANCELLED: 409,
  E_TOO_LARGE: 413,
  E_UNSUPPORTED: 501,
  E_SYSTEM: 500,
  E_INTERNAL: 500,
};
