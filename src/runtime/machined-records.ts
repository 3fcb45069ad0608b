/**
 * systemd-machined's records that killed supervisors left (spec/machined-records.ts writes them
 * on hosts where no machined runs): a record of machina's (SERVICE=machina-nspawn) whose leader
 * is gone is removed with its `unit:` link. A quick sweep (before a start) looks only at the
 * machines whose registry entries it has just removed; a full one (list, machinad) at every
 * record, so that one whose registry went away too (a deleted state directory) goes as well,
 * and at every `unit:` link left without its record.
 * Never while machined may run: the records are then its own.
 */
import { systemdFacts } from "../host/facts.ts";
import type { Host } from "../host/host.ts";
import { lockHeld } from "../host/locks.ts";
import { machineLockPath } from "../machine/registry.ts";
import { MACHINED_SERVICE } from "../spec/register.ts";
import { MACHINED_RECORDS_DIR, machinedMayRun, parseMachinedRecord } from "../spec/machined-records.ts";

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Whether process `pid` lives and belongs to unit `unit` (its cgroup2 path has that component). */
function leaderAlive(host: Host, pid: string, unit: string): boolean {
  if (!/^[1-9][0-9]*$/.test(pid)) return false;
  const cg = host.readFile(`/proc/${pid}/cgroup`);
  const line = cg?.split("\n").find((l) => l.startsWith("0::"));
  return line?.slice(3).split("/").includes(unit) === true;
}

export function sweepMachinedRecords(host: Host, stateDir: string, sweep: { removed: readonly string[]; quick: boolean }): void {
  if (sweep.quick && sweep.removed.length === 0) return;
  if (machinedMayRun(systemdFacts(host))) return;
  const names = sweep.quick ? sweep.removed : host.readdir(MACHINED_RECORDS_DIR).filter((n) => !n.startsWith("unit:"));
  for (const name of names) {
    if (!NAME.test(name)) continue;
    const path = `${MACHINED_RECORDS_DIR}/${name}`;
    if (host.lstat(path) !== "file") continue;
    const r = parseMachinedRecord(host.readFile(path) ?? "");
    if (r["SERVICE"] !== MACHINED_SERVICE || r["NAME"] !== name) continue; // not machina's
    const unit = r["SCOPE"] ?? "";
    if (leaderAlive(host, r["LEADER"] ?? "", unit)) continue;
    // between a reboot's two leaders the record names the old one: the registry lock says it runs
    if (lockHeld(host, machineLockPath(stateDir, name))) continue;
    host.unlink(path);
    const link = `${MACHINED_RECORDS_DIR}/unit:${unit}`;
    if (unit !== "" && !unit.includes("/") && host.lstat(link) === "symlink" && host.readlink(link) === name) host.unlink(link);
  }
  // A full sweep: a `unit:` link whose record is gone (the supervisor makes the link after the
  // record and removes it after the record, so it never lives alone for longer than that).
  if (!sweep.quick)
    for (const entry of host.readdir(MACHINED_RECORDS_DIR)) {
      if (!entry.startsWith("unit:")) continue;
      const link = `${MACHINED_RECORDS_DIR}/${entry}`;
      if (host.lstat(link) !== "symlink") continue;
      const target = host.readlink(link);
      if (NAME.test(target) && host.lstat(`${MACHINED_RECORDS_DIR}/${target}`) === undefined) host.unlink(link);
    }
}
