/**
 * The registry of running machines: $STATE_DIR/machines/NAME/{lock,state.json}, written by
 * the helper (see native/SPEC.md). A machine runs exactly while its lock is held; an entry
 * whose lock is free belongs to a supervisor that died without cleaning up (kill -9) and is
 * removed here, with its cgroups.
 */
import type { Host } from "../host/host.ts";

/** An entry without state.json may be a supervisor that is just starting: leave it alone this long. */
const STARTING_GRACE_MS = 10_000;

export interface MachineState {
  leader: number;
  supervisor: number;
  name: string;
  root: string;
  cgroups: string[];
}

export function machinesDir(stateDir: string): string {
  return `${stateDir}/machines`;
}

export function readState(host: Host, stateDir: string, name: string): MachineState | undefined {
  const text = host.readFile(`${machinesDir(stateDir)}/${name}/state.json`);
  if (text === undefined) return undefined;
  try {
    const raw: unknown = JSON.parse(text);
    if (typeof raw !== "object" || raw === null) return undefined;
    const r = raw as Record<string, unknown>;
    if (typeof r["leader"] !== "number" || typeof r["supervisor"] !== "number" || typeof r["name"] !== "string") return undefined;
    const cgroups = Array.isArray(r["cgroups"]) ? r["cgroups"].filter((c): c is string => typeof c === "string") : [];
    return { leader: r["leader"], supervisor: r["supervisor"], name: r["name"], root: typeof r["root"] === "string" ? r["root"] : "", cgroups };
  } catch {
    return undefined;
  }
}

/**
 * Remove the entries (and cgroups) of machines whose supervisor is gone. Returns their names.
 * Only cgroups below a `machine.slice`-style scope recorded by the helper are touched.
 */
export function sweepStale(host: Host, stateDir: string, now: number): string[] {
  const removed: string[] = [];
  const base = machinesDir(stateDir);
  for (const name of host.readdir(base)) {
    const dir = `${base}/${name}`;
    const lock = host.tryLock(`${dir}/lock`);
    if (lock === undefined) continue; // running (or not a machine entry)
    try {
      const state = readState(host, stateDir, name);
      if (state === undefined && now - (host.mtimeMs(dir) ?? 0) < STARTING_GRACE_MS) continue;
      for (const cg of state?.cgroups ?? []) if (/\/machine-[^/]+\.scope$/.test(cg)) host.removeDirTree(cg);
      for (const file of ["state.json", ".state.json.tmp", "lock"]) host.unlink(`${dir}/${file}`);
      host.removeDirTree(dir);
      removed.push(name);
    } finally {
      lock.release();
    }
  }
  return removed;
}
