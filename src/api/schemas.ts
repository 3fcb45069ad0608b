/**
 * Wire types of machina's API: every request and response body, as zod schemas. The daemon
 * validates with them, the client's types are inferred from them, and the OpenAPI document
 * (docs/api/openapi.json) is generated from them (src/api/openapi.ts). Pure.
 */
import { z } from "zod";
import { ERROR_CODES } from "../errors.ts";
import { ORIGIN_KINDS } from "../image/origin.ts";
import { validImageName } from "../image/pool.ts";
import { isValidMachineName, MACHINE_NAME_RULE } from "../settings/values.ts";
import { ARCHITECTURE_NAMES } from "../settings/architectures.ts";

/** Machine names follow hostname rules (systemd's machine_name_is_valid()): the rule is isValidMachineName's; length and pattern are for the document. */
export const MachineName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9-][A-Za-z0-9.-]*$/)
  .refine(isValidMachineName, "not a valid machine name")
  .meta({ id: "MachineName", description: MACHINE_NAME_RULE });

export const ErrorCode = z
  .enum([...ERROR_CODES, "E_INTERNAL"]) // E_INTERNAL: the daemon's own failure (a bug), never thrown by the core
  .meta({ id: "ErrorCode" });

export const ApiError = z
  .object({
    code: ErrorCode,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "Error", description: "Every error response: HTTP 4xx/5xx with this body" });

/** The core's types (src/machine/machines.ts), on the wire. */
export const Liveness = z.enum(["running", "opening", "closing"]).meta({ id: "Liveness" });

export const MachineSummary = z
  .object({
    machine: MachineName,
    class: z.string().meta({ description: "container" }),
    service: z.string().meta({ description: "the manager that registered it (machina-nspawn)" }),
    os: z.string().meta({ description: "ID= of the image's os-release" }),
    version: z.string().meta({ description: "VERSION_ID= of the image's os-release" }),
    architecture: z.string().meta({ description: "the image's architecture, Debian's name (arm64), \"\" when unknown" }),
    addresses: z.array(z.string()),
    state: Liveness,
    timestampUsec: z.number().meta({ description: "start time, µs since the epoch (0 when unknown)" }),
  })
  .meta({ id: "MachineSummary", description: "One row of `machinactl list`, and its start time" });

export const Machine = z
  .object({
    name: MachineName,
    class: z.string(),
    service: z.string(),
    state: Liveness,
    leader: z.number().int(),
    supervisor: z.number().int(),
    root: z.string(),
    uuid: z.string().meta({ description: 'UUID with dashes ("" when unknown)' }),
    boot: z.boolean(),
    timestampUsec: z.number().meta({ description: "start time, µs since the epoch (0 when unknown)" }),
    timestampMonotonicUsec: z.number(),
    cgroupDir: z.string().meta({ description: "cgroup2 directory on the host" }),
    controlGroup: z.string().meta({ description: "path in the cgroup hierarchy" }),
    unit: z.string(),
    cgroups: z.array(z.string()),
    os: z.string(),
    version: z.string(),
    architecture: z.string().meta({ description: "the image's architecture, Debian's name (arm64), \"\" when unknown" }),
    emulated: z.boolean().meta({ description: "its programs run under qemu-user (binfmt_misc): another architecture than the host's" }),
  })
  .meta({ id: "Machine" });

const ProcessNode = z.object({ pid: z.number().int(), ppid: z.number().int(), comm: z.string(), cmdline: z.string() }).meta({ id: "ProcessNode" });

export interface CgroupNodeT {
  path: string;
  processes: Array<z.infer<typeof ProcessNode>>;
  children: CgroupNodeT[];
}
export const CgroupNode: z.ZodType<CgroupNodeT> = z
  .object({
    path: z.string(),
    processes: z.array(ProcessNode),
    get children() {
      return z.array(CgroupNode);
    },
  })
  .meta({ id: "CgroupNode" });

export const MachineStatus = Machine.extend({
  leaderComm: z.string(),
  osPrettyName: z.string(),
  network: z.object({
    private: z.boolean(),
    interfaces: z.array(z.object({ index: z.number().int(), name: z.string() })),
    addresses: z.array(z.string()),
  }),
  resources: z.object({
    memoryBytes: z.number().optional(),
    memorySource: z.enum(["memory.current", "memory.usage_in_bytes"]).optional(),
    tasks: z.number(),
    cpuUsec: z.number().optional(),
  }),
  cgroupTree: CgroupNode.optional(),
}).meta({ id: "MachineStatus", description: "`machinactl status NAME`, as data" });

export const MachineProperties = z
  .array(z.tuple([z.string(), z.string()]))
  .meta({ id: "MachineProperties", description: "`machinactl show NAME`: machinectl's property names and values, in machinectl's order" });

export const MachineList = z.object({ machines: z.array(MachineSummary) }).meta({ id: "MachineList" });

export const KillRequest = z
  .object({
    whom: z.enum(["leader", "all"]).default("all"),
    signal: z.number().int().min(1).max(64).default(15),
  })
  .strict()
  .meta({ id: "KillRequest" });

import { EXEC_OUTPUT_CAP } from "./limits.ts";
export { EXEC_OUTPUT_CAP };

const noNul = (what: string) => z.string().refine((v) => !v.includes("\0"), `${what} must not contain NUL`);

export const ExecRequest = z
  .object({
    argv: z
      .array(noNul("an argument"))
      .min(1)
      .max(4096)
      .refine((a) => a[0] !== "", "argv[0] must not be empty")
      .meta({ description: "the command: argv[0] is looked up in the container's PATH" }),
    env: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a variable name: letters, digits and '_', not starting with a digit"), noNul("a value"))
      .optional()
      .meta({ description: "variables over the defaults (PATH, HOME, USER, LOGNAME, SHELL, container)" }),
    cwd: noNul("cwd")
      .refine((v) => v.startsWith("/"), "cwd must be an absolute path")
      .optional()
      .meta({ description: "inside the container; default the user's home, else /" }),
    user: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, "a user name or uid")
      .max(256)
      .optional()
      .meta({ description: "name or uid in the container's /etc/passwd; default root" }),
  })
  .strict()
  .meta({ id: "ExecRequest", description: "machinactl exec: the command runs confined exactly as the container's payload, stdin empty, no terminal" });

const AbsPath = noNul("a path")
  .pipe(z.string().min(1).max(4096))
  .refine((v) => v.startsWith("/"), "must be an absolute path");

export const BindRequest = z
  .object({
    source: AbsPath.meta({ description: "the host path" }),
    target: AbsPath.optional().meta({ description: "the path in the container (default: the same as source)" }),
    readOnly: z.boolean().default(false),
    mkdir: z.boolean().default(false).meta({ description: "create the target (and its parents) in the container first" }),
  })
  .strict()
  .meta({ id: "BindRequest", description: "machinactl bind: a host path mounted into the running container" });

export const ExecResult = z
  .object({
    exitStatus: z.number().int().meta({ description: "the command's exit status (128+N: killed by signal N)" }),
    stdout: z.string(),
    stderr: z.string(),
    stdoutTruncated: z.boolean().meta({ description: `stdout was longer than ${EXEC_OUTPUT_CAP} bytes and was cut` }),
    stderrTruncated: z.boolean(),
  })
  .meta({ id: "ExecResult" });

export const Sample = z
  .object({
    t: z.number().meta({ description: "ms since the epoch" }),
    cpuUsec: z.number().optional().meta({ description: "CPU time of the machine's cgroup so far, µs" }),
    memoryBytes: z.number().optional(),
    tasks: z.number().int(),
    rxBytes: z.number().optional().meta({ description: "bytes received on its interfaces (lo left out) so far" }),
    txBytes: z.number().optional(),
  })
  .meta({ id: "Sample", description: "A machine's counters at one moment (machinad samples them every intervalMs)" });

export const SampleHistory = z
  .object({ intervalMs: z.number().int(), samples: z.array(Sample) })
  .meta({ id: "SampleHistory", description: "A machine's samples of the last minutes, oldest first" });

export const LatestSamples = z
  .object({ intervalMs: z.number().int(), machines: z.record(z.string(), Sample) })
  .meta({ id: "LatestSamples", description: "The newest sample of every running machine" });

const Port = z.object({ protocol: z.enum(["tcp", "udp"]), hostPort: z.number().int(), containerPort: z.number().int() });

export const MachineNetwork = z
  .object({
    machine: z.string(),
    kind: z.enum(["veth", "zone", "bridge", "other"]),
    hostInterface: z.string().optional(),
    zone: z.string().optional(),
    bridge: z.string().optional(),
    addressing: z.enum(["static", "dhcp", "none"]),
    addresses: z.array(z.string()).meta({ description: "the container's addresses with their prefix length, when machina assigned them" }),
    gateway: z.array(z.string()),
    subnet: z.array(z.string()),
    ports: z.array(Port).meta({ description: "forwarded ports (-p)" }),
    moved: z.array(z.object({ host: z.string(), inside: z.string() })),
    macvlans: z.array(z.object({ parent: z.string(), inside: z.string() })),
    ipvlans: z.array(z.object({ parent: z.string(), inside: z.string() })),
  })
  .meta({ id: "MachineNetwork" });

export const NetworkOverview = z
  .object({
    machines: z.array(MachineNetwork),
    zones: z.array(z.object({ name: z.string(), hostInterface: z.string(), subnet: z.array(z.string()), machines: z.array(z.string()) })),
    bridges: z.array(z.object({ name: z.string(), machines: z.array(z.string()) })),
  })
  .meta({
    id: "NetworkOverview",
    description: "The networks machina made for its running containers: zones, bridges, each container's interfaces, addresses and forwarded ports",
  });

export const LogLine = z.object({ line: z.string() }).meta({ id: "LogLine", description: "One line of the machine's log (as machinactl logs prints it)" });

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

/** The body of a POST that takes no arguments: nothing, or {}. */
export const Empty = z.object({}).strict().meta({ id: "Empty" });

export const EnableRequest = z
  .object({ now: z.boolean().default(false) })
  .strict()
  .meta({ id: "EnableRequest" });

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
    done: z.number().optional().meta({ description: "a transfer: bytes done so far" }),
    total: z.number().optional().meta({ description: "a transfer: bytes in all, when known" }),
  })
  .meta({ id: "JobEvent", description: "One progress step of a job (the helper's status lines, and the daemon's own)" });

export const JobState = z.enum(["running", "done", "failed", "cancelled"]).meta({ id: "JobState" });

export const PullResult = z.object({ image: z.string(), from: z.string() }).meta({ id: "PullResult", description: "pull: the image made, and where from" });

export const Job = z
  .object({
    id: z.string(),
    kind: z.enum(["start", "stop", "pull", "bootstrap"]),
    machine: z.string().min(1).max(255).meta({ description: "the machine started or stopped; pull and bootstrap: the image made (an image name)" }),
    state: JobState,
    created: z.number(),
    events: z.array(JobEvent),
    result: z
      .union([MachineStatus, PullResult])
      .nullable()
      .optional()
      .meta({ description: "start: the machine's status; stop: null; pull and bootstrap: the image made" }),
    outcome: z.enum(["stopped", "killed"]).optional().meta({ description: "stop: whether the machine had to be killed" }),
    error: ApiError.optional(),
  })
  .meta({ id: "Job", description: "A long operation: poll GET /v1/jobs/{id}, stream /v1/jobs/{id}/events, cancel with DELETE" });

export const JobList = z.object({ jobs: z.array(Job) }).meta({ id: "JobList" });

export const JobStreamLine = z
  .union([z.object({ job: Job }), JobEvent])
  .meta({ id: "JobStreamLine", description: "One line of GET /v1/jobs/{id}/events: a progress event, or the finished job (the last line)" });

export const Ok = z.object({ ok: z.literal(true) }).meta({ id: "Ok" });

export const Version = z.object({ name: z.literal("machinad"), version: z.string(), api: z.literal(1), pid: z.number().int() }).meta({ id: "Version" });

// Images (machinactl's image verbs; the same JSON as their --json output).

/** Image names follow machined's image_name_is_valid (src/image/pool.ts imageNameProblem): the check is validImageName's. */
export const ImageName = z.string().min(1).max(251).refine(validImageName, "not a valid image name").meta({
  id: "ImageName",
  description: "a file name in the pool: not empty, not '.' or '..', no '/', no control characters, not starting with '.#', not ending in '.raw', not '.host'",
});

export const ImageType = z.enum(["directory", "subvolume", "raw"]).meta({ id: "ImageType" });

const usecOrNull = z.number().nullable().meta({ description: "µs since the epoch, null when unknown" });
const bytesOrNull = z.number().nullable().meta({ description: "bytes, null when unknown" });

export const ImageSummary = z
  .object({ name: z.string(), type: ImageType, ro: z.boolean(), usage: bytesOrNull, created: usecOrNull, modified: usecOrNull })
  .meta({ id: "ImageSummary", description: "One row of `machinactl list-images`" });

export const ImageList = z.object({ images: z.array(ImageSummary) }).meta({ id: "ImageList" });

export const ImageInfo = z
  .object({
    name: z.string(),
    type: ImageType,
    path: z.string(),
    readOnly: z.boolean(),
    hidden: z.boolean(),
    creationTimestamp: usecOrNull,
    modificationTimestamp: usecOrNull,
    usage: bytesOrNull,
    limit: bytesOrNull,
    settingsFile: z.string().nullable(),
  })
  .meta({ id: "ImageInfo", description: "`machinactl show-image NAME`, as data (machined's Image properties)" });

export const ImageOrigin = z
  .object({
    how: z.enum(ORIGIN_KINDS),
    source: z.string(),
    time: z.number(),
    reference: z.string().optional(),
    digest: z.string().optional(),
    platform: z.string().optional(),
  })
  .meta({ id: "ImageOrigin", description: "Where an imported or pulled image came from" });

export const ImageStatus = ImageInfo.extend({
  os: z.string().nullable().meta({ description: "PRETTY_NAME of the image's os-release (null: raw image or none)" }),
  architecture: z
    .string()
    .nullable()
    .meta({ description: "Debian's name (arm64): a directory's programs' ELF headers, a raw image's pulled platform; null: unknown" }),
  origin: z
    .union([ImageOrigin, z.literal("unknown")])
    .nullable()
    .meta({ description: 'null: made locally; "unknown": an unreadable record' }),
}).meta({ id: "ImageStatus", description: "`machinactl image-status NAME`, as data" });

export const Transfer = z
  .object({
    id: z.number().int(),
    type: z.string().meta({ description: "import-tar, pull-oci, bootstrap, …" }),
    remote: z.string(),
    local: z.string(),
    pid: z.number().int().meta({ description: "the machinactl process running it, or machinad's for one of its jobs" }),
    progress: z.number().nullable().meta({ description: "0…1, null when unknown" }),
    started: z.string(),
    job: z.string().optional().meta({ description: "machinad's job running it (a pull or bootstrap through the API): cancelled as that job" }),
  })
  .meta({ id: "Transfer", description: "A transfer in progress (machinactl list-transfers): one machinactl runs in its own process, or a job of machinad's" });
export const TransferList = z.object({ transfers: z.array(Transfer) }).meta({ id: "TransferList" });

export const SETTINGS_TEXT_CAP = 64 * 1024;
export const ImageSettings = z
  .object({
    file: z.string().nullable().meta({ description: "the image's .nspawn file (null: none)" }),
    text: z
      .string()
      .nullable()
      .meta({ description: `its text (at most ${SETTINGS_TEXT_CAP} bytes)` }),
  })
  .meta({ id: "ImageSettings", description: "The settings file next to the image (machinactl's NAME.nspawn), as text" });

export const PoolInfo = z
  .object({
    poolPath: z.string(),
    poolUsage: bytesOrNull,
    poolLimit: bytesOrNull,
    pools: z.array(z.string()).meta({ description: "every pool root, the writable one first" }),
  })
  .meta({ id: "PoolInfo", description: "`machinactl show-image` without NAME: the pool (btrfs quota group)" });

export const CloneRequest = z
  .object({ to: ImageName, readOnly: z.boolean().default(false) })
  .strict()
  .meta({ id: "CloneRequest" });

export const CloneResult = z
  .object({
    name: z.string(),
    from: z.string(),
    type: ImageType,
    method: z.enum(["snapshot", "subvolume+copy", "copy"]),
    readOnly: z.boolean(),
    path: z.string(),
  })
  .meta({ id: "CloneResult" });

export const RenameRequest = z.object({ to: ImageName }).strict().meta({ id: "RenameRequest" });

export const RenameResult = z.object({ name: z.string(), from: z.string(), path: z.string() }).meta({ id: "RenameResult" });

export const ReadOnlyRequest = z
  .object({ readOnly: z.boolean().default(true) })
  .strict()
  .meta({ id: "ReadOnlyRequest" });

export const ReadOnlyResult = z.object({ name: z.string(), readOnly: z.boolean() }).meta({ id: "ReadOnlyResult" });

export const RemoveResult = z.object({ removed: z.array(z.string()) }).meta({ id: "RemoveResult" });

export const LimitRequest = z
  .object({
    limit: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().meta({ description: "bytes; null: no limit" }),
  })
  .strict()
  .meta({ id: "LimitRequest" });

export const LimitResult = z
  .object({ name: z.string().nullable().meta({ description: "null: the pool" }), limit: z.number().nullable() })
  .meta({ id: "LimitResult" });

export const CleanRequest = z
  .object({ all: z.boolean().default(false).meta({ description: "every image, not only hidden ones" }) })
  .strict()
  .meta({ id: "CleanRequest" });

export const CleanResult = z
  .object({
    removed: z.array(z.object({ name: z.string(), freed: bytesOrNull })),
    skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
    temporaries: z.array(z.string()).meta({ description: "stale .# temporaries removed" }),
    ociCache: z.object({ removed: z.number().int(), freed: z.number() }).meta({ description: "pull-oci's layer cache" }),
  })
  .meta({ id: "CleanResult", description: "What `machinactl clean` removed and skipped" });

export type MachineSummary = z.infer<typeof MachineSummary>;
export type Machine = z.infer<typeof Machine>;
export type MachineStatus = z.infer<typeof MachineStatus>;
export type MachineProperties = z.infer<typeof MachineProperties>;
export type KillRequest = z.infer<typeof KillRequest>;
export type ExecRequest = z.infer<typeof ExecRequest>;
export type ExecResult = z.infer<typeof ExecResult>;
export type BindRequest = z.input<typeof BindRequest>;
export type LogLine = z.infer<typeof LogLine>;
export type NetworkOverview = z.infer<typeof NetworkOverview>;
export type EnableResult = z.infer<typeof EnableResult>;
export type JobEvent = z.infer<typeof JobEvent>;
export type Job = z.infer<typeof Job>;
export type JobStreamLine = z.infer<typeof JobStreamLine>;
export type ApiError = z.infer<typeof ApiError>;
export type ErrorCode = z.infer<typeof ErrorCode>;
export type Version = z.infer<typeof Version>;
export type ImageSummary = z.infer<typeof ImageSummary>;
export type ImageInfo = z.infer<typeof ImageInfo>;
export type ImageStatus = z.infer<typeof ImageStatus>;
export type PoolInfo = z.infer<typeof PoolInfo>;
export type ImageSettings = z.infer<typeof ImageSettings>;
export type Transfer = z.infer<typeof Transfer>;
export type CloneResult = z.infer<typeof CloneResult>;
export type RenameResult = z.infer<typeof RenameResult>;
export type ReadOnlyResult = z.infer<typeof ReadOnlyResult>;
export type RemoveResult = z.infer<typeof RemoveResult>;
export type LimitResult = z.infer<typeof LimitResult>;
export type CleanResult = z.infer<typeof CleanResult>;
const pullCommon = {
  name: ImageName.optional().meta({ description: "the image's name (default: from the URL or reference, as machinactl does)" }),
  force: z.boolean().default(false),
  readOnly: z.boolean().default(false),
  wait: z.boolean().default(false),
};

export const PullRequest = z
  .union([
    z
      .object({
        kind: z.enum(["tar", "raw"]).meta({ description: "pull-tar or pull-raw" }),
        url: z.string().url().max(4096),
        verify: z.enum(["no", "checksum", "signature"]).default("signature"),
        ...pullCommon,
      })
      .strict(),
    z
      .object({
        kind: z.literal("oci").meta({ description: "pull-oci" }),
        ref: z.string().min(1).max(4096).meta({ description: "[REGISTRY[:PORT]/]REPOSITORY[:TAG|@DIGEST]" }),
        platform: z.string().max(64).optional().meta({ description: "OS/ARCH[/VARIANT] (default: this machine's)" }),
        tlsVerify: z.boolean().default(true).meta({ description: "false: plain HTTP and unverified TLS allowed (a local registry), as --tls-verify=no" }),
        ...pullCommon,
      })
      .strict(),
  ])
  .meta({ id: "PullRequest", description: "machinactl pull-tar/pull-raw/pull-oci as a job (progress events with bytes done and total)" });

export const BootstrapRequest = z
  .object({
    name: ImageName,
    distro: z.enum(["debian", "ubuntu", "fedora"]),
    release: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/)
      .optional()
      .meta({ description: "default: the distribution's current one" }),
    mirror: z.string().url().max(4096).optional().meta({ description: "the package mirror (Debian, Ubuntu)" }),
    arch: z
      .enum(ARCHITECTURE_NAMES as [string, ...string[]])
      .optional()
      .meta({ description: "the image's architecture, Debian's name (default: the host's); another than the host's runs under qemu-user" }),
    rootPassword: z.string().max(256).optional().meta({ description: "root's password (default: passwordless root on the console)" }),
    force: z.boolean().default(false),
    wait: z.boolean().default(false),
  })
  .strict()
  .meta({ id: "BootstrapRequest", description: "machinactl bootstrap as a job: the build tool's lines are its events" });
export type BootstrapRequest = z.input<typeof BootstrapRequest>;
export type BootstrapSpec = Omit<BootstrapRequest, "wait">;

export type PullRequest = z.input<typeof PullRequest>;
/** A pull without the request's `wait` (what ImageService.pull takes), each kind kept apart. */
export type PullSpec = PullRequest extends infer T ? (T extends unknown ? Omit<T, "wait"> : never) : never;
export type PullResult = z.infer<typeof PullResult>;
