/**
 * What supervisors that were killed outright (SIGKILL, OOM, a crash) leave behind, swept in one
 * place: registry entries and their cgroups (src/machine/registry.ts), networks — veth, nft
 * rules, dnsmasq, leases, records (src/net/setup.ts) —, raw-image mounts (src/image/raw.ts) and
 * claims on machina's binfmt_misc entries, with the entries nobody claims (src/runtime/binfmt.ts),
 * and systemd-machined's records machina wrote (src/runtime/machined-records.ts).
 * Every start, `machinactl list` and machinad (at start-up and on every list) run it, so a
 * leftover never waits for the next start that happens to need the same resource.
 */
import type { Host } from "../host/host.ts";
import { sweepRawMounts } from "../image/raw.ts";
import { addSweepHook, sweepStale } from "../machine/registry.ts";
import { sweepNetworks } from "../net/setup.ts";
import { releaseBinfmt } from "./binfmt.ts";
import { sweepMachinedRecords } from "./machined-records.ts";

/** One function each (addSweepHook adds a function once: a fresh closure per call would pile up in machinad). */
const HOOKS = [
  sweepNetworks,
  (h: Host, dir: string) => void sweepRawMounts(h, dir, Date.now()),
  (h: Host, dir: string) => void releaseBinfmt(h, dir, undefined),
  sweepMachinedRecords,
];

/**
 * Returns the names of machines whose registry entries were removed. `quick` (before a start):
 * running machines are recognised by their held lock alone, so a start costs a lock test per
 * running machine, not a read of its entry (scanRegistry).
 */
export function sweepLeftovers(host: Host, stateDir: string, quick = false): string[] {
  for (const hook of HOOKS) addSweepHook(hook);
  return sweepStale(host, stateDir, Date.now(), quick);
}
