/**
 * LocalMachineService: MachineService in this process, straight on the registry
 * ($STATE_DIR/machines), the image pool and the enable directory — what machinactl uses when
 * no machinad answers, and what machinad serves. Errors are MachinaErrors.
 *
 * Start launches the container detached (src/runtime/launch.ts); on a systemd host with the
 * unit template installed, start/enable go through `machina-nspawn@NAME.service` instead
 * (src/machine/systemd.ts).
 */
import { MachinaError } from "../errors.ts";
import { requireHelper } from "../runtime/helper.ts";
import type { NetworkOverview } from "../net/overview.ts";
import { stateTemp, streamAndUnlink, writeStreamToFile } from "../host/stream-file.ts";
import { basename, dirname } from "node:path";
import { copyMachineFiles } from "../machine/copy.ts";
import { EXEC_OUTPUT_CAP, MAX_UPLOAD_BYTES } from "./limits.ts";
import { type Host, isPermissionError, type PtyChild } from "../host/host.ts";
import {
  getMachine,
  killMachine,
  listMachines,
  listSummaries,
  machineProperties,
  machineStatus,
  poweroffMachine,
  rebootMachine,
  terminateMachine,
  type Machine,
  type MachineContext,
  type MachineStatus,
  type MachineSummary,
} from "../machine/machines.ts";
import { scanRegistry } from "../machine/registry.ts";
import { bindSpec, commandSpec, encodeEnterSpec, machineConfinement, runEnter } from "../machine/enter.ts";
import { requireLogSource, showLogs } from "../machine/logs.ts";
import { disableMachine, enableMachine, listEnabled } from "../machine/enable.ts";
import { systemctl, systemdAvailable, unitInstalled, unitName } from "../machine/systemd.ts";
import type { Paths } from "../paths.ts";
import type { Launched } from "../runtime/launch.ts";
import { beginTemporary, requireImage, type Temporary } from "../image/pool.ts";
import { sweepLeftovers } from "../runtime/sweep.ts";
import { isValidMachineName } from "../settings/values.ts";
import type { BindRequest, EnableResult, ExecRequest, ExecResult, MachineProperties } from "./schemas.ts";
import type { KillOptions, LogsOptions, LongOperationOptions, MachineService, StopOptions } from "./service.ts";

/** `text` cut to at most `cap` bytes of UTF-8 (a character split at the cut is dropped). */
export function capOutput(text: string, cap: number = EXEC_OUTPUT_CAP): { text: string; truncated: boolean } {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= cap) return { text, truncated: false };
  return { text: new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, cap)).replace(/\uFFFD$/, ""), truncated: true };
}

export function checkName(name: string): void {
  if (!isValidMachineName(name))
    throw new MachinaError(
      "E_INVALID",
      `invalid machine name ${JSON.stringify(name)}`,
      { machine: name },
      "letters, digits, '-' and '.', at most 64 characters",
    );
}

export class LocalMachineService implements MachineService {
  /** Containers this process launched (their exit is observed: restart policy, reaping). */
  readonly launched = new Map<string, Launched>();
  readonly ctx: MachineContext;

  constructor(
    readonly host: Host,
    readonly paths: Paths,
    readonly env: Readonly<Record<string, string | undefined>> = host.env(),
  ) {
    this.ctx = { host, paths };
  }

  /** Names of running machines (dead entries are cleaned by the scan). */
  runningNames(): string[] {
    return listMachines(this.ctx)
      .map((m) => m.name)
      .sort();
  }

  isRunning(name: string): boolean {
    return scanRegistry(this.host, this.paths.stateDir, Date.now()).some((e) => e.name === name && e.liveness !== "dead");
  }

  /** monotonic ms of the last sweep by list() */
  private lastSweep = Number.NEGATIVE_INFINITY;

  async list(options: { all?: boolean; maxAddresses?: number } = {}): Promise<MachineSummary[]> {
    // networks and raw mounts of killed supervisors, too; in a long-running process (machinad, a
    // dashboard asking every 2 s) at most every 5 s: dead entries are left out of the list anyway
    const now = this.host.monotonicMs();
    if (now - this.lastSweep >= 5000) {
      this.lastSweep = now;
      try {
        sweepLeftovers(this.host, this.paths.stateDir);
      } catch (e) {
        // another user than root cannot clean up (the sweep's locks are root's): it lists what is
        // there, each entry's liveness from its supervisor's pid and start time (scanEntry)
        if (!isPermissionError(e)) throw e;
      }
    }
    return listSummaries(this.ctx, options);
  }

  async status(name: string): Promise<MachineStatus> {
    checkName(name);
    return machineStatus(this.ctx, name);
  }

  async show(name: string): Promise<MachineProperties> {
    checkName(name);
    return machineProperties(this.ctx, name);
  }

  async poweroff(name: string): Promise<void> {
    checkName(name);
    await poweroffMachine(this.ctx, name);
  }

  async reboot(name: string): Promise<void> {
    checkName(name);
    await rebootMachine(this.ctx, name);
  }

  async kill(name: string, options: KillOptions = {}): Promise<void> {
    checkName(name);
    await killMachine(this.ctx, name, options);
  }

  async terminate(name: string, options: StopOptions = {}): Promise<"stopped" | "killed"> {
    checkName(name);
    options.onProgress?.({ time: Date.now(), event: "stopping" });
    const outcome = await terminateMachine(this.ctx, name, options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {});
    options.onProgress?.({ time: Date.now(), event: outcome });
    return outcome;
  }

  checkStart(name: string): void {
    checkName(name);
    if (this.isRunning(name)) throw new MachinaError("E_BUSY", `machine "${name}" is already running`, { machine: name });
    requireImage(this.host, this.paths.pool, name);
  }

  async start(name: string, options: LongOperationOptions = {}): Promise<MachineStatus> {
    this.checkStart(name);
    if (systemdAvailable(this.host, this.env) && unitInstalled(this.host, this.env)) {
      options.onProgress?.({ time: Date.now(), event: "systemctl", message: `systemctl start ${unitName(name)}` });
      await systemctl(this.host, ["start", unitName(name)]);
      return this.status(name);
    }
    const { launchDetached } = await import("../runtime/launch.ts");
    const launched = await launchDetached(this.host, this.paths, {
      name,
      ...(options.signal ? { signal: options.signal } : {}),
      onStatus: (line) =>
        options.onProgress?.({
          time: Date.now(),
          ...(line.stage ? { stage: line.stage } : {}),
          ...(line.event ? { event: line.event } : {}),
          ...(line.leader ? { leader: line.leader } : {}),
          ...(line.supervisor ? { supervisor: line.supervisor } : {}),
          ...(line.error?.message ? { message: line.error.message } : {}),
        }),
    });
    this.launched.set(name, launched);
    void launched.exited.then(() => {
      if (this.launched.get(name) === launched) this.launched.delete(name);
    });
    options.onLaunched?.();
    // state.json is written by the supervisor once the leader exists, before "started".
    try {
      return await this.status(name);
    } catch (e) {
      // a container that ends at once (its payload exits, or asks for a restart with 133) has no
      // entry by the time the launch returns
      if (!(e instanceof MachinaError && e.code === "E_NOT_FOUND")) throw e;
      return this.endedAtOnce(name, launched);
    }
  }

  /**
   * A machine that ended before its start could look at it: with exit status 133 it asked to be
   * started again, which machinad's supervision does (daemon/supervise.ts) — its next instance is
   * the answer; otherwise the start fails, naming the status.
   */
  private async endedAtOnce(name: string, launched: Launched): Promise<MachineStatus> {
    const status = await Promise.race([launched.exited, Bun.sleep(1000).then(() => undefined)]);
    if (status === 133)
      for (let i = 0; i < 100; i++) {
        await Bun.sleep(50);
        try {
          const again = machineStatus(this.ctx, name);
          if (again.supervisor !== launched.supervisor) return again;
        } catch {
          // not yet
        }
      }
    throw new MachinaError(
      "E_NOT_FOUND",
      `machine "${name}" started and ended at once${status !== undefined ? ` (exit status ${status})` : ""}`,
      { machine: name },
      `see machinactl logs ${name}`,
    );
  }

  async enable(name: string, options: { now?: boolean } = {}): Promise<EnableResult> {
    checkName(name);
    const result = await enableMachine(this.host, this.env, this.paths.pool, name);
    if (options.now && !this.isRunning(name)) await this.start(name);
    return result;
  }

  async disable(name: string, options: { now?: boolean } = {}): Promise<EnableResult> {
    checkName(name);
    const result = await disableMachine(this.host, this.env, name);
    if (options.now && this.isRunning(name)) await this.terminate(name);
    return result;
  }

  /** The running machine NAME, or undefined (its console log may still exist): as machinactl logs. */
  private logMachine(name: string): Machine | undefined {
    try {
      return getMachine(this.ctx, name, { all: true });
    } catch (e) {
      if (e instanceof MachinaError && e.code === "E_NOT_FOUND") return undefined;
      throw e;
    }
  }

  checkLogs(name: string): void {
    checkName(name);
    requireLogSource(this.ctx, name, this.logMachine(name));
  }

  async logs(name: string, options: LogsOptions): Promise<number> {
    checkName(name);
    let pending = "";
    const status = await showLogs(this.ctx, name, this.logMachine(name), {
      ...(options.lines !== undefined ? { lines: options.lines } : {}),
      follow: options.follow ?? false,
      capture: true,
      ...(options.signal ? { signal: options.signal } : {}),
      write: (text) => {
        const parts = (pending + text).split("\n");
        pending = parts.pop() ?? "";
        for (const l of parts) options.onLine(l);
      },
    });
    if (pending !== "") options.onLine(pending);
    return status;
  }

  async bind(name: string, request: BindRequest): Promise<void> {
    checkName(name);
    const m = getMachine(this.ctx, name);
    requireHelper(this.host, this.paths.helper);
    const spec = bindSpec(this.host, m, request.source, request.target ?? request.source, {
      readOnly: request.readOnly ?? false,
      mkdir: request.mkdir ?? false,
    });
    const r = await runEnter(this.host, this.paths.helper, spec);
    if (r.status !== 0) {
      const line = r.stderr.trim().split("\n").pop() ?? "";
      throw new MachinaError("E_SYSTEM", line.replace(/^machina-helper: /, "") || `bind into "${name}" failed (status ${r.status})`, {
        machine: name,
        path: request.source,
      });
    }
  }

  shell(name: string, options: { user?: string; login?: boolean; rows: number; cols: number; term?: string }): PtyChild {
    checkName(name);
    const m = getMachine(this.ctx, name);
    requireHelper(this.host, this.paths.helper);
    const spec = commandSpec(
      this.host,
      m,
      {
        console: "pty",
        term: options.term ?? "xterm-256color",
        ...(options.login === true ? { login: true } : options.user !== undefined ? { user: options.user } : {}),
      },
      machineConfinement(this.host, this.paths.stateDir, m),
    );
    // an empty environment, as every entry of the helper: nothing of machinad's is in its memory
    return this.host.spawnOnPty([this.paths.helper, "enter", "--spec-fd"], { spec: encodeEnterSpec(spec), env: {}, rows: options.rows, cols: options.cols });
  }

  async putFile(name: string, path: string, data: ReadableStream<Uint8Array>, options: { force?: boolean; archive?: "tar" } = {}): Promise<void> {
    checkName(name);
    const m = getMachine(this.ctx, name);
    const temp = stateTemp(this.host, this.paths.stateDir, "file");
    let tree: Temporary | undefined;
    try {
      await writeStreamToFile(data, temp, MAX_UPLOAD_BYTES);
      let source = temp;
      if (options.archive === "tar") {
        // a tree: extracted as an import's (checked, confined) into a directory of its own first
        const { fillDirFromTar, transferContext } = await import("../image/transfer.ts");
        tree = beginTemporary(this.host, this.paths.stateDir, `${this.paths.stateDir}/tmp`, "upload");
        await fillDirFromTar(transferContext(this.host, this.paths, this.env), tree, temp, "the upload");
        source = tree.path;
      }
      await copyMachineFiles(this.host, this.paths.helper, m, { direction: "to", paths: [source, path], force: options.force ?? false, cwd: "/" });
    } finally {
      this.host.removeTree(temp);
      tree?.discard();
    }
  }

  async getFile(name: string, path: string, options: { archive?: "tar" } = {}): Promise<{ stream: ReadableStream<Uint8Array>; size: number }> {
    checkName(name);
    const m = getMachine(this.ctx, name);
    const temp = stateTemp(this.host, this.paths.stateDir, "file");
    const tar = `${temp}.tar`;
    try {
      await copyMachineFiles(this.host, this.paths.helper, m, { direction: "from", paths: [path, temp], force: false, cwd: "/" });
      const kind = this.host.lstat(temp);
      if (options.archive === "tar") {
        // what came out of the machine is only read here: tar follows no symbolic link (no -h)
        const args = kind === "dir" ? ["-C", temp, "."] : ["-C", dirname(temp), basename(temp)];
        const r = this.host.run(["tar", "--numeric-owner", "--xattrs", "-cf", tar, ...args]);
        if (r.status !== 0) throw new MachinaError("E_SYSTEM", `tar of "${path}" failed: ${r.stderr.trim().split("\n").pop() ?? ""}`, { machine: name, path });
        return streamAndUnlink(tar);
      }
      if (kind !== "file")
        throw new MachinaError("E_UNSUPPORTED", `"${path}" in machine "${name}" is not a regular file: ask for archive=tar`, {
          machine: name,
          path,
        });
      return streamAndUnlink(temp);
    } finally {
      this.host.removeTree(temp);
      if (this.host.lstat(tar) !== undefined) this.host.removeTree(tar);
    }
  }

  async networks(): Promise<NetworkOverview> {
    return (await import("../net/overview.ts")).networkOverview(this.host, this.paths.stateDir);
  }

  async exec(name: string, request: ExecRequest, options: { signal?: AbortSignal } = {}): Promise<ExecResult> {
    checkName(name);
    const m = getMachine(this.ctx, name);
    requireHelper(this.host, this.paths.helper);
    const spec = commandSpec(
      this.host,
      m,
      {
        command: request.argv,
        console: "pipe",
        setenv: Object.entries(request.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(request.user !== undefined ? { user: request.user } : {}),
        ...(request.cwd !== undefined ? { cwd: request.cwd } : {}),
      },
      machineConfinement(this.host, this.paths.stateDir, m),
    );
    // stdin /dev/null; at most the cap of each output is kept while it is read; an abort (the
    // API's client went away) sends SIGTERM, which the helper passes on to the command
    const r = await runEnter(this.host, this.paths.helper, spec, {
      maxCaptureBytes: EXEC_OUTPUT_CAP,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    const stdout = capOutput(r.stdout);
    const stderr = capOutput(r.stderr);
    return {
      exitStatus: r.status,
      stdout: stdout.text,
      stderr: stderr.text,
      stdoutTruncated: stdout.truncated || (r.truncated?.stdout ?? false),
      stderrTruncated: stderr.truncated || (r.truncated?.stderr ?? false),
    };
  }

  /** Names linked in the enable directory. */
  enabledNames(): string[] {
    return listEnabled(this.host, this.env);
  }
}
