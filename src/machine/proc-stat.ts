/**
 * A process as /proc/PID/stat tells it: the registry's liveness checks and machina-oci's (its init,
 * by pid and start time) share these. Light: no schema, nothing else loaded.
 */
import type { Host } from "../host/host.ts";

/** /proc/PID/stat: parent pid and state letter, or undefined when the process is gone. */
export function procStat(host: Host, pid: number): { ppid: number; state: string; startTime: string; comm: string } | undefined {
  const stat = host.readFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  const close = stat.lastIndexOf(")");
  const rest = stat.slice(close + 2).split(" ");
  return { state: rest[0] ?? "", ppid: Number(rest[1]), startTime: rest[19] ?? "", comm: stat.slice(stat.indexOf("(") + 1, close) };
}

/**
 * Is PID a running process (a zombie whose parent has not reaped it is not: a supervisor killed
 * with SIGKILL stays one while a PID 1 that is not an init leaves it) — and, when a start time
 * is given, the same process that was recorded, not a later one under a reused pid?
 */
export function processRunning(host: Host, pid: number, startTime = ""): boolean {
  if (pid <= 0) return false;
  const st = procStat(host, pid);
  if (st === undefined || st.state === "Z" || st.state === "X") return false;
  return startTime === "" || st.startTime === startTime;
}
