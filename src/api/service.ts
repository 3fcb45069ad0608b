/**
 * MachineService: what machinactl (and anything else) can do to machines. Two implementations
 * with identical results: the in-process core (src/api/local-service.ts, a thin adapter over
 * src/machine/) and the typed client of machinad's REST API (src/client/client.ts).
 * Errors are MachinaErrors (src/errors.ts) on both sides: the client rebuilds them from the
 * API's {code, message, details} bodies.
 */
import type { MachineStatus, MachineSummary } from "../machine/machines.ts";
import type { NetworkOverview } from "../net/overview.ts";
import type { PtyChild } from "../host/host.ts";
import type { BindRequest, EnableResult, ExecRequest, ExecResult, JobEvent, MachineProperties } from "./schemas.ts";

export interface LongOperationOptions {
  /** Each progress step as it happens (the helper's stages, "started", "ready", …). */
  onProgress?: (event: JobEvent) => void;
  /** Aborting cancels the operation (a start is rolled back: the half-started container is killed). */
  signal?: AbortSignal;
  /** start, in this process: called once the container runs, before its status is read (machinad's supervision watches its exit from then on). */
  onLaunched?: () => void;
  /** pull, bootstrap: machinad's job running it — the transfer is recorded for list-transfers and cancelled through that job. */
  job?: string;
}

export interface StopOptions extends LongOperationOptions {
  /** Milliseconds between the polite request (poweroff) and SIGKILL. Default 10 000. */
  timeoutMs?: number;
}

export interface KillOptions {
  /** Default "all" (machinectl's default). */
  whom?: "leader" | "all";
  /** Signal number; default 15 (SIGTERM). */
  signal?: number;
}

export interface MachineService {
  /** `all`: also machines starting up or shutting down; `maxAddresses`: addresses per row. */
  list(options?: { all?: boolean; maxAddresses?: number }): Promise<MachineSummary[]>;
  status(name: string): Promise<MachineStatus>;
  show(name: string): Promise<MachineProperties>;
  /** SIGRTMIN+4 to the leader. */
  poweroff(name: string): Promise<void>;
  /** SIGINT to the leader. */
  reboot(name: string): Promise<void>;
  /** Stop the machine: poweroff, then SIGKILL after the timeout; resolves once it is gone. */
  terminate(name: string, options?: StopOptions): Promise<"stopped" | "killed">;
  kill(name: string, options?: KillOptions): Promise<void>;
  /** Boot image NAME in the background (machina-nspawn -b -M NAME); resolves once it runs. */
  start(name: string, options?: LongOperationOptions): Promise<MachineStatus>;
  /** What a start would refuse at once (an invalid name, E_BUSY: running, E_NOT_FOUND: no image), so an API can answer before it queues a job. */
  checkStart?(name: string): void;
  /** Start at boot. With now, start it too. */
  enable(name: string, options?: { now?: boolean }): Promise<EnableResult>;
  disable(name: string, options?: { now?: boolean }): Promise<EnableResult>;
  /**
   * The machine's log lines (machinactl logs' text), each one to onLine; with follow, new lines
   * until the machine is gone or the signal aborts. Resolves with journalctl's exit status (0 for
   * the console log).
   */
  logs(name: string, options: LogsOptions): Promise<number>;
  /** What logs would refuse at once (E_NOT_FOUND: no log), so an API can answer before it streams. */
  checkLogs?(name: string): void;
  /** Run a command in the machine as machinactl exec does (the same confinement), stdin empty, output captured and capped. */
  exec(name: string, request: ExecRequest, options?: { signal?: AbortSignal }): Promise<ExecResult>;
  /** machinactl bind: mount the host's source at target (default the same path) in the running machine. */
  bind(name: string, request: BindRequest): Promise<void>;
  /**
   * machinactl shell on a pseudo-terminal of this host (machinad's WebSocket): the machine's shell
   * for `user` (default root), confined as machinactl shell's, its terminal `rows`×`cols`.
   * Only the in-process core has it (a terminal is not a request and an answer).
   */
  shell?(name: string, options: { user?: string; login?: boolean; rows: number; cols: number; term?: string }): PtyChild;
  /** copy-to of one file: `data` becomes the file at `path` in the machine (force: replace one). */
  putFile(name: string, path: string, data: ReadableStream<Uint8Array>, options?: { force?: boolean; archive?: "tar" }): Promise<void>;
  /** copy-from of one file: its bytes (archive "tar": a tar of what is at path, a directory's tree). */
  getFile(name: string, path: string, options?: { archive?: "tar" }): Promise<{ stream: ReadableStream<Uint8Array>; size: number }>;
  /** The networks machina made for its running containers (zones, bridges, addresses, forwarded ports). */
  networks(): Promise<NetworkOverview>;
}

export interface LogsOptions {
  /** The last N lines (default all). */
  lines?: number;
  follow?: boolean;
  onLine: (line: string) => void;
  signal?: AbortSignal;
}
