/**
 * What supervisors that were killed outright (SIGKILL, OOM, a crash) leave behind, swept in one
 * place: registry entries and their cgroups (src/machine/registry.ts), networks — veth, nft
 * rules, dnsmasq, leases, records (src/net/setup.ts) — and raw-image mounts (src/image/raw.ts).
 * Every start, `machinactl list` and machinad (at start-up and on every list) run it, so a
 * leftover never waits for the next start that happens to need the same resource.
 */
import type { Host } from "../host/host.ts";
import { sweepRawMounts } from "../image/raw.ts";
import { addSweepHook, sweepStale } from "../machine/registry.ts";
import { sweepNetworks } from "../net/setup.ts";

/** Returns the names of machines whose registry entries were removed. */
export function sweepLeftovers(host: Host, stateDir: string): string[] {
  addSweepHook(sweepNetworks);
  addSweepHook((h, dir) => void sweepRawMounts(h, dir, Date.now()));
  return sweepStale(host, stateDir, Date.now());
}
