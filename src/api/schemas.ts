/**
 * Wire types of machina's API: every request and response body, as zod schemas. The daemon
 * validates with them, the client's types are inferred from them, and the OpenAPI document
 * (docs/api/openapi.json) is generated from them (src/api/openapi.ts). Pure.
 */
import { z } from "zod";

/** Machine names follow hostname rules (systemd's machine_name_is_valid()). */
export const MachineName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9-][A-Za-z0-9.-]*$/)
  .refine((s) => !s.startsWith("-") && !s.endsWith(".") && !s.includes(".."), "not a valid machine name")
  .meta({ id: "MachineName", description: "letters, digits, '-' and '.', at most 64 characters, no leading '-' or '.'" });

export const ErrorCode = z
  .enum(["E_USAGE", "E_INVALID", "E_NOT_FOUND", "E_BUSY", "E_UNSUPPORTED", "E_SYSTEM", "E_TOO_LARGE", "E_CANCELLED", "E_INTERNAL"])
  .meta({ id: "ErrorCode" });

export const ApiError = z
  .object({
    code: ErrorCode,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "Error", description: "Every error response: HTTP 4xx/5xx with this body" });

export const MachineSummary = z
  .object({
    name: MachineName,
    class: z.string().meta({ description: "container" }),
    service: z.string().meta({ description: "the manager that registered it (machina-nspawn)" }),
    os: z.string().meta({ description: "ID= of the image's os-release" }),
    version: z.string().meta({ description: "VERSION_ID= of the image's os-release" }),
    addresses: z.array(z.string()),
  })
  .meta({ id: "MachineSummary", description: "One row of `machinactl list`" });

export const MachineStatus = MachineSummary.extend({
  id: z.string().meta({ description: "the machine's UUID (128-bit hex, no dashes)" }),
  leader: z.number().int(),
  supervisor: z.number().int(),
  root: z.string(),
  since: z.number().meta({ description: "start time, microseconds since the epoch" }),
  unit: z.string(),
  cgroup: z.string(),
  state: z.enum(["running", "degraded", "closing"]),
  memory: z.number().nullable().meta({ description: "bytes (memory.current), null when unknown" }),
  tasks: z.number().nullable(),
  cpuUsec: z.number().nullable(),
}).meta({ id: "MachineStatus", description: "`machinactl status NAME`, as data" });

export const MachineProperties = z
  .record(z.string(), z.string())
  .meta({ id: "MachineProperties", description: "`machinactl show NAME`: machinectl's property names and values, in order" });

export const MachineList = z.object({ machines: z.array(MachineSummary) }).meta({ id: "MachineList" });

export const KillRequest = z
  .object({
    whom: z.enum(["leader", "all"]).default("all"),
    signal: z.number().int().min(1).max(64).default(15),
  })
  .strict()
  .meta({ id: "KillRequest" });

export const StartRequest = z
  .object({
    /** Wait for the job to end and answer with it (200) instead of 202 + the job at once. */
    wait: z.boolean().default(false),
  })
  .strict()
  .meta({ id: "StartRequest" });

export const StopRequest = z
  .object({
    wait: z.boolean().default(false),
    /** Milliseconds between the polite request and SIGKILL. */
    timeoutMs: z.number().int().min(0).max(600_000).default(10_000),
  })
  .strict()
  .meta({ id: "StopRequest" });

export const EnableRequest = z.object({ now: z.boolean().default(false) }).strict().meta({ id: "EnableRequest" });

export const EnableResult = z
  .object({
    changes: z.array(z.object({ type: z.enum(["symlink", "unlink"]), path: z.string(), source: z.string() })),
  })
  .meta({ id: "EnableResult", description: "What enable/disable changed (machinectl prints these lines)" });

export const JobEvent = z
  .object({
    time: z.number().meta({ description: "milliseconds since the epoch" }),
    stage: z.string().optional(),
    event: z.string().optional(),
    message: z.string().optional(),
    leader: z.number().int().optional(),
    supervisor: z.number().int().optional(),
    status: z.number().int().optional(),
  })
  .meta({ id: "JobEvent", description: "One progress step of a job (the helper's status lines, and the daemon's own)" });

export const JobState = z.enum(["running", "done", "failed", "cancelled"]).meta({ id: "JobState" });

export const Job = z
  .object({
    id: z.string(),
    kind: z.enum(["start", "stop"]),
    machine: MachineName,
    state: JobState,
    created: z.number(),
    events: z.array(JobEvent),
    result: MachineStatus.nullable().optional(),
    error: ApiError.optional(),
  })
  .meta({ id: "Job", description: "A long operation: poll GET /v1/jobs/{id}, stream /v1/jobs/{id}/events, cancel with DELETE" });

export const JobList = z.object({ jobs: z.array(Job) }).meta({ id: "JobList" });

export const Ok = z.object({ ok: z.literal(true) }).meta({ id: "Ok" });

export const Version = z
  .object({ name: z.literal("machinad"), version: z.string(), api: z.literal(1), pid: z.number().int() })
  .meta({ id: "Version" });

export type MachineSummary = z.infer<typeof MachineSummary>;
export type MachineStatus = z.infer<typeof MachineStatus>;
export type MachineProperties = z.infer<typeof MachineProperties>;
export type KillRequest = z.infer<typeof KillRequest>;
export type EnableResult = z.infer<typeof EnableResult>;
export type JobEvent = z.infer<typeof JobEvent>;
export type Job = z.infer<typeof Job>;
export type ApiError = z.infer<typeof ApiError>;
export type ErrorCode = z.infer<typeof ErrorCode>;
export type Version = z.infer<typeof Version>;
