/**
 * LocalMachineService: MachineService in this process, straight on the registry
 * ($STATE_DIR/machines), the image pool and the enable directory — what machinactl uses when
 * no machinad answers, and what machinad serves. Errors are MachinaErrors.
 *
 * Start launches the container detached (src/runtime/launch.ts); on a systemd host with the
 * unit template installed, start/enable go through `machina-nspawn@NAME.service` instead
 * (src/machine/systemd.ts).
 */
import * as fs from "node:fs";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { machinesDir, readState, sweepStale } from "../machine/registry.ts";
import { disableMachine, enableMachine, enableDir } from "../machine/enable.ts";
import { systemctl, systemdAvailable, unitInstalled, unitName } from "../machine/systemd.ts";
import type { Paths } from "../paths.ts";
import { launchDetached, findImage, type Launched } from "../runtime/launch.ts";
import { isValidMachineName } from "../settings/values.ts";
import type { EnableResult, MachineProperties, MachineStatus, MachineSummary } from "./schemas.ts";
import type { KillOptions, LongOperationOptions, MachineService, StopOptions } from "./service.ts";

const SIGRTMIN = 34;

export interface RawState {
  leader: number;
  supervisor: number;
  name: string;
  root: string;
  uuid: string;
  started_usec: string;
  cgroup: string;
  os: string;
  version: string;
  service: string;
  class: string;
}

export function checkName(name: string): void {
  if (!isValidMachineName(name))
    throw new MachinaError("E_INVALID", `invalid machine name ${JSON.stringify(name)}`, { machine: name }, "letters, digits, '-' and '.', at most 64 characters");
}

export class LocalMachineService implements MachineService {
  /** Containers this process launched (their exit is observed: restart policy, reaping). */
  readonly launched = new Map<string, Launched>();

  constructor(
    readonly host: Host,
    readonly paths: Paths,
    readonly env: Readonly<Record<string, string | undefined>> = host.env(),
  ) {}

  /** Names of running machines: entries whose lock is held. */
  runningNames(): string[] {
    sweepStale(this.host, this.paths.stateDir, Date.now());
    const base = machinesDir(this.paths.stateDir);
    return this.host
      .readdir(base)
      .filter((n) => isValidMachineName(n) && this.isRunning(n))
      .sort();
  }

  isRunning(name: string): boolean {
    const lockPath = `${machinesDir(this.paths.stateDir)}/${name}/lock`;
    if (this.host.lstat(lockPath) !== "file") return false;
    const lock = this.host.tryLock(lockPath);
    if (lock === undefined) return true;
    lock.release();
    return false;
  }

  raw(name: string): RawState {
    checkName(name);
    const text = this.isRunning(name) ? this.host.readFile(`${machinesDir(this.paths.stateDir)}/${name}/state.json`) : undefined;
    if (text === undefined || readState(this.host, this.paths.stateDir, name) === undefined)
      throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is running`, { machine: name });
    const r = JSON.parse(text) as Record<string, unknown>;
    const s = (k: string) => (typeof r[k] === "string" ? (r[k] as string) : "");
    return {
      leader: Number(r["leader"]),
      supervisor: Number(r["supervisor"]),
      name,
      root: s("root"),
      uuid: s("uuid"),
      started_usec: s("started_usec"),
      cgroup: s("cgroup"),
      os: s("os"),
      version: s("version"),
      service: s("service") || "machina-nspawn",
      class: s("class") || "container",
    };
  }

  async list(): Promise<MachineSummary[]> {
    const out: MachineSummary[] = [];
    for (const name of this.runningNames()) {
      try {
        out.push(summary(this.raw(name)));
      } catch {
        // stopped meanwhile
      }
    }
    return out;
  }

  async status(name: string): Promise<MachineStatus> {
    const r = this.raw(name);
    const num = (file: string): number | null => {
      const t = this.host.readFile(`${r.cgroup}/${file}`);
      return t === undefined || !/^[0-9]+\s*$/.test(t) ? null : Number(t.trim());
    };
    const cpu = this.host.readFile(`${r.cgroup}/cpu.stat`);
    const cpuMatch = cpu ? /^usage_usec ([0-9]+)$/m.exec(cpu) : null;
    return {
      ...summary(r),
      id: r.uuid,
      leader: r.leader,
      supervisor: r.supervisor,
      root: r.root,
      since: Number(r.started_usec || 0),
      unit: unitOf(r.cgroup, name),
      cgroup: r.cgroup,
      state: "running",
      memory: num("memory.current"),
      tasks: num("pids.current"),
      cpuUsec: cpuMatch ? Number(cpuMatch[1]) : null,
    };
  }

  async show(name: string): Promise<MachineProperties> {
    const r = this.raw(name);
    const usec = r.started_usec || "0";
    return {
      Name: name,
      Id: r.uuid,
      Timestamp: new Date(Number(BigInt(usec) / 1000n)).toUTCString(),
      TimestampMonotonic: "0",
      Service: r.service,
      Unit: unitOf(r.cgroup, name),
      Leader: String(r.leader),
      Class: r.class,
      RootDirectory: r.root,
      State: "running",
    };
  }

  async poweroff(name: string): Promise<void> {
    this.signal(this.raw(name).leader, SIGRTMIN + 4, name);
  }

  async reboot(name: string): Promise<void> {
    this.signal(this.raw(name).leader, 2, name);
  }

  async kill(name: string, options: KillOptions = {}): Promise<void> {
    const r = this.raw(name);
    const signal = options.signal ?? 15;
    if ((options.whom ?? "all") === "leader") return this.signal(r.leader, signal, name);
    // "all": every process of the container's cgroup (its supervisor is outside it).
    const pids = cgroupPids(this.host, r.cgroup);
    if (pids.length === 0) pids.push(r.leader);
    for (const pid of pids) this.signal(pid, signal, name, true);
  }

  async terminate(name: string, options: StopOptions = {}): Promise<void> {
    const r = this.raw(name);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const progress = (event: string) => options.onProgress?.({ time: Date.now(), event });
    // SIGTERM to the supervisor: it sends the kill signal (SIGRTMIN+3 for an init) to PID 1.
    this.signal(r.supervisor, 15, name, true);
    progress("stopping");
    if (await this.waitGone(name, r.supervisor, timeoutMs, options.signal)) return progress("stopped");
    // A second SIGTERM makes the supervisor SIGKILL the container; then the supervisor itself.
    this.signal(r.supervisor, 15, name, true);
    progress("killing");
    if (await this.waitGone(name, r.supervisor, 2000, options.signal)) return progress("stopped");
    this.signal(r.supervisor, 9, name, true);
    if (!(await this.waitGone(name, r.supervisor, 2000, options.signal)))
      throw new MachinaError("E_SYSTEM", `machine "${name}" did not stop`, { machine: name });
    progress("stopped");
  }

  private async waitGone(name: string, supervisor: number, ms: number, signal?: AbortSignal): Promise<boolean> {
    const end = Date.now() + ms;
    for (;;) {
      if (!this.isRunning(name) || !pidAlive(supervisor)) {
        // the supervisor removes its entry as it exits: wait for that (briefly) too
        for (let i = 0; i < 100 && this.host.lstat(`${machinesDir(this.paths.stateDir)}/${name}/lock`) !== undefined && pidAlive(supervisor); i++) await Bun.sleep(5);
        return true;
      }
      if (signal?.aborted) throw new MachinaError("E_CANCELLED", `stop of "${name}" cancelled`, { machine: name });
      if (Date.now() > end) return false;
      await Bun.sleep(5);
    }
  }

  async start(name: string, options: LongOperationOptions = {}): Promise<MachineStatus> {
    checkName(name);
    if (this.isRunning(name)) throw new MachinaError("E_BUSY", `machine "${name}" is already running`, { machine: name });
    if (systemdAvailable(this.env) && unitInstalled(this.env)) {
      findImage(this.host, this.paths.pool, name);
      options.onProgress?.({ time: Date.now(), event: "systemctl", message: `systemctl start ${unitName(name)}` });
      await systemctl(["start", unitName(name)]);
      return this.status(name);
    }
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
    // state.json is written by the supervisor once the leader exists, before "started".
    return this.status(name);
  }

  async enable(name: string, options: { now?: boolean } = {}): Promise<EnableResult> {
    checkName(name);
    findImage(this.host, this.paths.pool, name);
    const result = await enableMachine(this.env, name);
    if (options.now && !this.isRunning(name)) await this.start(name);
    return result;
  }

  async disable(name: string, options: { now?: boolean } = {}): Promise<EnableResult> {
    checkName(name);
    const result = await disableMachine(this.env, name);
    if (options.now && this.isRunning(name)) await this.terminate(name);
    return result;
  }

  /** Names linked in the enable directory. */
  enabledNames(): string[] {
    return listEnabled(this.env);
  }

  private signal(pid: number, signal: number, name: string, ignoreGone = false): void {
    try {
      process.kill(pid, signal);
    } catch (e) {
      if (ignoreGone && (e as NodeJS.ErrnoException).code === "ESRCH") return;
      throw new MachinaError("E_SYSTEM", `failed to send signal ${signal} to process ${pid} of "${name}": ${(e as Error).message}`, { machine: name, syscall: "kill" });
    }
  }
}

export function listEnabled(env: Readonly<Record<string, string | undefined>>): string[] {
  const names: string[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(enableDir(env));
  } catch {
    return [];
  }
  for (const e of entries) {
    const m = /^machina-nspawn@(.+)\.service$/.exec(e);
    if (m && isValidMachineName(m[1]!)) names.push(m[1]!);
  }
  return names.sort();
}

function summary(r: RawState): MachineSummary {
  return { name: r.name, class: r.class, service: r.service, os: r.os, version: r.version, addresses: [] };
}

function unitOf(cgroup: string, name: string): string {
  const m = /\/([^/]+\.(?:scope|service))$/.exec(cgroup);
  return m ? m[1]! : `machine-${name}.scope`;
}

function cgroupPids(host: Host, dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    for (const l of (host.readFile(`${d}/cgroup.procs`) ?? "").split("\n")) if (/^[0-9]+$/.test(l)) pids.push(Number(l));
    for (const e of host.readdir(d)) if (host.lstat(`${d}/${e}`) === "dir") walk(`${d}/${e}`);
  };
  if (dir) walk(dir);
  return pids;
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
