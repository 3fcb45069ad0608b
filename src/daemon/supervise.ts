/**
 * What machinad does besides answering requests: start enabled machines when it starts,
 * adopt the machines already running (from the registry), and restart machines per policy when
 * they exit — always on exit status 133 (systemd's RestartForceExitStatus=133: "reboot me"),
 * and on failure or always when configured. A machine stopped through the API (stop, poweroff,
 * disable --now) is not restarted. Restarts are rate-limited (5 in 10 s, like systemd's
 * StartLimitBurst/StartLimitIntervalSec defaults).
 *
 * A reboot inside a container never needs the daemon: the supervisor sets the container up
 * again itself (native/SPEC.md, on_reboot restart).
 */
import type { LocalMachineService } from "../api/local-service.ts";

export type RestartPolicy = "no" | "on-failure" | "always";

export interface Logger {
  (event: string, fields?: Record<string, unknown>): void;
}

const BURST = 5;
const INTERVAL_MS = 10_000;
const POLL_MS = 250;

export class Supervisor {
  /** Machines the daemon watches: started by it, or enabled and adopted. */
  private watched = new Set<string>();
  private stoppedByRequest = new Set<string>();
  private restarts = new Map<string, number[]>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private starting = new Set<string>();

  constructor(
    readonly service: LocalMachineService,
    readonly policy: RestartPolicy,
    readonly log: Logger,
  ) {}

  /** Adopt running machines, then start the enabled ones that do not run. */
  async boot(autostart: boolean): Promise<void> {
    const running = new Set(this.service.runningNames());
    const enabled = this.service.enabledNames();
    for (const name of running) {
      this.log("adopted", { machine: name });
      if (enabled.includes(name)) this.watched.add(name);
    }
    if (autostart) {
      await Promise.all(enabled.filter((n) => !running.has(n)).map((name) => this.startAndWatch(name, "autostart")));
    }
    this.timer = setInterval(() => void this.poll(), POLL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The API started it: watch it (restart per policy). */
  started(name: string): void {
    this.stoppedByRequest.delete(name);
    this.watched.add(name);
    this.watchExit(name);
  }

  /** The API is stopping it: do not restart. */
  stopped(name: string): void {
    this.stoppedByRequest.add(name);
    this.watched.delete(name);
  }

  private async startAndWatch(name: string, why: string): Promise<void> {
    if (this.starting.has(name)) return;
    this.starting.add(name);
    try {
      const s = await this.service.start(name, { onLaunched: () => this.started(name) });
      this.log("started", { machine: name, why, leader: s.leader, supervisor: s.supervisor });
    } catch (e) {
      this.log("start-failed", { machine: name, why, error: (e as Error).message });
    } finally {
      this.starting.delete(name);
    }
  }

  /** For machines this process launched, the exit status is known. */
  private watchExit(name: string): void {
    const launched = this.service.launched.get(name);
    if (!launched) return;
    void launched.exited.then((status) => this.exited(name, status));
  }

  private exitedHandled = new Set<string>();

  private exited(name: string, status: number | undefined): void {
    if (this.exitedHandled.has(name)) return;
    this.exitedHandled.add(name);
    queueMicrotask(() => this.exitedHandled.delete(name));
    if (!this.watched.has(name) || this.stoppedByRequest.has(name)) return;
    this.log("exited", { machine: name, status: status ?? null });
    const restart = status === 133 || this.policy === "always" || (this.policy === "on-failure" && status !== 0 && status !== undefined);
    if (!restart) {
      this.watched.delete(name);
      return;
    }
    const now = Date.now();
    const recent = (this.restarts.get(name) ?? []).filter((t) => now - t < INTERVAL_MS);
    if (recent.length >= BURST) {
      this.log("restart-limit", { machine: name, restarts: recent.length });
      this.watched.delete(name);
      return;
    }
    recent.push(now);
    this.restarts.set(name, recent);
    void this.startAndWatch(name, status === 133 ? "exit-133" : `restart-${this.policy}`);
  }

  /** Adopted machines (not our children): notice their exit by polling the registry. */
  private async poll(): Promise<void> {
    for (const name of [...this.watched]) {
      if (this.starting.has(name) || this.service.launched.has(name)) continue;
      if (!this.service.isRunning(name)) this.exited(name, undefined);
    }
  }
}
