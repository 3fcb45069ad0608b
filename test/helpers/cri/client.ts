/**
 * A minimal CRI (Kubernetes Container Runtime Interface, runtime.v1) client for the tests: the
 * calls the kubelet makes to run a pod, over a containerd's CRI socket. The messages come from
 * ./api.proto (a trimmed copy of k8s.io/cri-api's, field numbers unchanged), loaded at run time
 * by @grpc/proto-loader; answers are checked with zod, so a field this client relies on that the
 * server does not send fails here and not later as `undefined`.
 *
 * Field names are proto-loader's camelCase (`podSandboxId`), enums travel as their names
 * ("CONTAINER_RUNNING"), int64 as decimal strings.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { z } from "zod";

export const CRI_PROTO = join(import.meta.dir, "api.proto");

// ------------------------------------------------------------------ requests (what we send)

export type NamespaceMode = "POD" | "CONTAINER" | "NODE" | "TARGET";
export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  targetId?: string;
}
export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}
export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  logDirectory?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  linux?: {
    cgroupParent?: string;
    securityContext?: { namespaceOptions?: NamespaceOption; privileged?: boolean; readonlyRootfs?: boolean };
    sysctls?: Record<string, string>;
  };
}
export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: { image: string };
  command?: string[];
  args?: string[];
  workingDir?: string;
  envs?: Array<{ key: string; value: string }>;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  logPath?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  linux?: { resources?: LinuxContainerResources; securityContext?: { namespaceOptions?: NamespaceOption; privileged?: boolean; readonlyRootfs?: boolean } };
}
/** int64 fields as decimal strings. */
export interface LinuxContainerResources {
  cpuPeriod?: string;
  cpuQuota?: string;
  cpuShares?: string;
  memoryLimitInBytes?: string;
  oomScoreAdj?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
}

// ------------------------------------------------------------------ answers (checked)

const VersionResponse = z.object({ version: z.string(), runtimeName: z.string(), runtimeVersion: z.string(), runtimeApiVersion: z.string() });
const RunPodSandboxResponse = z.object({ podSandboxId: z.string().min(1) });
const CreateContainerResponse = z.object({ containerId: z.string().min(1) });
const Empty = z.object({});
const ContainerState = z.enum(["CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED", "CONTAINER_UNKNOWN"]);
const PodSandboxState = z.enum(["SANDBOX_READY", "SANDBOX_NOTREADY"]);
const ContainerStatus = z.object({
  id: z.string(),
  metadata: z.object({ name: z.string(), attempt: z.number() }).nullable(),
  state: ContainerState,
  createdAt: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  exitCode: z.number(),
  imageRef: z.string(),
  reason: z.string(),
  message: z.string(),
  logPath: z.string(),
});
const ContainerStatusResponse = z.object({ status: ContainerStatus, info: z.record(z.string(), z.string()) });
const ExecSyncResponse = z.object({ stdout: z.instanceof(Uint8Array), stderr: z.instanceof(Uint8Array), exitCode: z.number() });
const PodSandboxStatusResponse = z.object({
  status: z.object({
    id: z.string(),
    state: PodSandboxState,
    network: z.object({ ip: z.string() }).nullable(),
    runtimeHandler: z.string(),
  }),
  info: z.record(z.string(), z.string()),
});
const ListPodSandboxResponse = z.object({ items: z.array(z.object({ id: z.string(), state: PodSandboxState, runtimeHandler: z.string() })) });
const ImageStatusResponse = z.object({ image: z.object({ id: z.string(), repoTags: z.array(z.string()) }).nullable() });
const StatusResponse = z.object({
  status: z.object({ conditions: z.array(z.object({ type: z.string(), status: z.boolean(), reason: z.string(), message: z.string() })) }),
});

export type ContainerStatusT = z.infer<typeof ContainerStatus>;
export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

// ------------------------------------------------------------------ the client

type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

/** A gRPC error with the RPC's name in front, keeping the status code. */
export class CriError extends Error {
  override readonly name = "CriError";
  constructor(
    readonly rpc: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`CRI ${rpc}: ${grpc.status[code] ?? code}: ${details}`);
  }
}

export class CriClient {
  private readonly runtime: grpc.Client;
  private readonly image: grpc.Client;

  /** `socket`: the path of containerd's gRPC socket (the CRI services are served on it). */
  constructor(
    socket: string,
    private readonly timeoutMs = 60_000,
  ) {
    const def = protoLoader.loadSync(CRI_PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def);
    const ns = (pkg.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
    const Runtime = ns.RuntimeService as grpc.ServiceClientConstructor;
    const Image = ns.ImageService as grpc.ServiceClientConstructor;
    this.runtime = new Runtime(`unix://${socket}`, grpc.credentials.createInsecure());
    this.image = new Image(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }

  private call<T extends z.ZodType>(client: grpc.Client, rpc: string, req: object, schema: T): Promise<z.infer<T>> {
    const method = (client as unknown as Record<string, Unary>)[rpc];
    if (typeof method !== "function") throw new Error(`CRI client: no RPC ${rpc} in ${CRI_PROTO}`);
    return new Promise((resolve, reject) => {
      method.call(client, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) return reject(new CriError(rpc, err.code, err.details));
        const parsed = schema.safeParse(res);
        if (!parsed.success) return reject(new Error(`CRI ${rpc}: unexpected answer ${JSON.stringify(res)}: ${parsed.error.message}`));
        resolve(parsed.data);
      });
    });
  }

  version(): Promise<z.infer<typeof VersionResponse>> {
    return this.call(this.runtime, "Version", { version: "v1" }, VersionResponse);
  }

  status(): Promise<z.infer<typeof StatusResponse>> {
    return this.call(this.runtime, "Status", {}, StatusResponse);
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler: string): Promise<string> {
    return (await this.call(this.runtime, "RunPodSandbox", { config, runtimeHandler }, RunPodSandboxResponse)).podSandboxId;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.runtime, "StopPodSandbox", { podSandboxId }, Empty);
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.call(this.runtime, "RemovePodSandbox", { podSandboxId }, Empty);
  }

  podSandboxStatus(podSandboxId: string): Promise<z.infer<typeof PodSandboxStatusResponse>> {
    return this.call(this.runtime, "PodSandboxStatus", { podSandboxId, verbose: true }, PodSandboxStatusResponse);
  }

  async listPodSandbox(): Promise<z.infer<typeof ListPodSandboxResponse>["items"]> {
    return (await this.call(this.runtime, "ListPodSandbox", {}, ListPodSandboxResponse)).items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    return (await this.call(this.runtime, "CreateContainer", { podSandboxId, config, sandboxConfig }, CreateContainerResponse)).containerId;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.call(this.runtime, "StartContainer", { containerId }, Empty);
  }

  async stopContainer(containerId: string, timeoutSeconds: number): Promise<void> {
    await this.call(this.runtime, "StopContainer", { containerId, timeout: String(timeoutSeconds) }, Empty);
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.call(this.runtime, "RemoveContainer", { containerId }, Empty);
  }

  containerStatus(containerId: string, verbose = false): Promise<z.infer<typeof ContainerStatusResponse>> {
    return this.call(this.runtime, "ContainerStatus", { containerId, verbose }, ContainerStatusResponse);
  }

  async updateContainerResources(containerId: string, linux: LinuxContainerResources): Promise<void> {
    await this.call(this.runtime, "UpdateContainerResources", { containerId, linux }, Empty);
  }

  /** ExecSync: `cmd` in the container, its output collected; `timeoutSeconds` 0 waits forever. */
  async execSync(containerId: string, cmd: string[], timeoutSeconds = 30): Promise<ExecResult> {
    const r = await this.call(this.runtime, "ExecSync", { containerId, cmd, timeout: String(timeoutSeconds) }, ExecSyncResponse);
    const text = (b: Uint8Array): string => new TextDecoder().decode(b);
    return { stdout: text(r.stdout), stderr: text(r.stderr), exitCode: r.exitCode };
  }

  async imageStatus(image: string): Promise<z.infer<typeof ImageStatusResponse>["image"]> {
    return (await this.call(this.image, "ImageStatus", { image: { image } }, ImageStatusResponse)).image;
  }
}
