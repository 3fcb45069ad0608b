/**
 * The registry of running transfers: `$MACHINA_STATE_DIR/transfers/ID.json`, one record a
 * transfer, written by the process doing it (its pid and the pid's start time, to tell a reused
 * pid; its progress). list-transfers reads the records (and removes those of dead processes);
 * cancel-transfer sends SIGTERM to the process, which undoes its work and removes its record. A
 * pull or bootstrap machinad runs as a job (its API, the dashboard) is recorded too, with
 * machinad's pid and the job's id: it is cancelled through machinad, never by a signal (that would
 * stop machinad).
 * Records are read through a schema; the file system goes through the Host.
 */
import type { z } from "zod";
import type { Host } from "../host/host.ts";
import { MachinaError } from "../errors.ts";
import { parseJson } from "../json.ts";
import { lazySchemas } from "../lazy-zod.ts";

export const TRANSFER_TYPES = [
  "import-tar",
  "import-raw",
  "import-fs",
  "import-oci",
  "export-tar",
  "export-raw",
  "export-oci",
  "pull-tar",
  "pull-raw",
  "pull-oci",
  "bootstrap",
] as const;
export type TransferType = (typeof TRANSFER_TYPES)[number];

/** The record's schema, built on first use (src/lazy-zod.ts): every machinactl command loads this module. */
const transferRecordSchema = lazySchemas((z) =>
  z.object({
    id: z.number().int().positive(),
    type: z.enum(TRANSFER_TYPES),
    remote: z.string(),
    local: z.string(),
    pid: z.number().int().positive(),
    /** /proc/PID/stat start time, to tell a reused pid. */
    pidStart: z.string(),
    /** 0..1, or null when unknown. */
    progress: z.number().min(0).max(1).nullable(),
    startedAt: z.string(),
    /** machinad's job running this transfer in machinad's own process (cancelled through machinad, not by a signal). */
    job: z.string().optional(),
  }),
);

/** One running transfer. */
export type TransferRecord = z.infer<ReturnType<typeof transferRecordSchema>>;

const SIGTERM = 15;

export function transfersDir(stateDir: string): string {
  return `${stateDir}/transfers`;
}

const recordPath = (stateDir: string, id: number) => `${transfersDir(stateDir)}/${id}.json`;

const startOf = (host: Host, pid: number) => host.processStartTime(pid) ?? "";

/** Register this process's transfer under the lowest free id (renameat2 RENAME_NOREPLACE makes the claim atomic). */
export function registerTransfer(host: Host, stateDir: string, t: Pick<TransferRecord, "type" | "remote" | "local" | "job">): TransferRecord {
  const dir = transfersDir(stateDir);
  host.mkdirp(dir, 0o755);
  const pid = host.pid();
  for (let id = 1; ; id++) {
    const path = recordPath(stateDir, id);
    if (host.lstat(path) !== undefined) continue;
    const rec: TransferRecord = { id, ...t, pid, pidStart: startOf(host, pid), progress: null, startedAt: new Date().toISOString() };
    const tmp = `${dir}/.${id}.${pid}.tmp`;
    host.writeFile(tmp, JSON.stringify(rec) + "\n", 0o644);
    try {
      host.rename(tmp, path, true);
      return rec;
    } catch (e) {
      host.unlink(tmp);
      if (!(e instanceof Error && "code" in e && e.code === "EEXIST")) throw e;
    }
  }
}

/** Record the progress (0..1, or null when unknown) of this process's transfer; best effort. */
export function updateTransfer(host: Host, stateDir: string, rec: TransferRecord, progress: number | null): void {
  rec.progress = progress;
  const path = recordPath(stateDir, rec.id);
  const tmp = `${path}.${rec.pid}.tmp`;
  try {
    host.writeFile(tmp, JSON.stringify(rec) + "\n", 0o644);
    host.rename(tmp, path, false);
  } catch {
    // the state dir went away: progress is best effort
  }
}

export function unregisterTransfer(host: Host, stateDir: string, id: number): void {
  host.unlink(recordPath(stateDir, id));
}

/** A record as list-transfers --json and the API show it (GET /v1/transfers). */
export function transferJson(r: TransferRecord): {
  id: number;
  type: TransferType;
  remote: string;
  local: string;
  progress: number | null;
  pid: number;
  started: string;
  job?: string;
} {
  return {
    id: r.id,
    type: r.type,
    remote: r.remote,
    local: r.local,
    progress: r.progress,
    pid: r.pid,
    started: r.startedAt,
    ...(r.job !== undefined ? { job: r.job } : {}),
  };
}

/** The transfers whose process is alive (records of dead processes are removed). */
export function listTransfers(host: Host, stateDir: string): TransferRecord[] {
  const dir = transfersDir(stateDir);
  const out: TransferRecord[] = [];
  for (const n of host.readdir(dir)) {
    if (!/^\d+\.json$/.test(n)) continue;
    const rec = parseJson(transferRecordSchema(), host.readFile(`${dir}/${n}`));
    if (rec === undefined) continue; // a half-written or foreign file
    if (startOf(host, rec.pid) !== rec.pidStart || rec.pidStart === "") {
      host.unlink(`${dir}/${n}`);
      continue;
    }
    out.push(rec);
  }
  return out.sort((a, b) => a.id - b.id);
}

/** A transfer of machinad's (job `job`) when machinad does not answer: nothing else may cancel it. */
export function machinadOnly(id: number, job: string): MachinaError {
  return new MachinaError(
    "E_UNSUPPORTED",
    `transfer ${id} runs in machinad (job ${job}), which does not answer: it is cancelled through machinad only`,
    { value: String(id) },
    `machinactl cancel-transfer ${id} once machinad answers (or DELETE /v1/jobs/${job} on its API)`,
  );
}

/**
 * Cancel transfer `id`: SIGTERM to the process running it — or, for one of machinad's jobs,
 * `cancelJob(job)` (machinad's own, or its API from another process; without it: one line, as
 * nothing else may cancel it) — then wait (up to timeoutMs) until it has undone its work.
 * false: no such transfer.
 */
export async function cancelTransfer(
  host: Host,
  stateDir: string,
  id: number,
  cancelJob?: (job: string) => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<boolean> {
  const rec = listTransfers(host, stateDir).find((r) => r.id === id);
  if (rec === undefined) return false;
  if (rec.job !== undefined) {
    if (cancelJob === undefined) throw machinadOnly(id, rec.job);
    if (!(await cancelJob(rec.job))) return false;
  } else
    try {
      if (!host.kill(rec.pid, SIGTERM)) return false;
    } catch {
      return false;
    }
  const deadline = host.monotonicMs() + timeoutMs;
  while (host.monotonicMs() < deadline) {
    if (startOf(host, rec.pid) !== rec.pidStart) break;
    if (host.lstat(recordPath(stateDir, id)) === undefined) break;
    await host.sleep(50);
  }
  return true;
}
