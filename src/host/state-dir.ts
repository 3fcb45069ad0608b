/**
 * Directories below the state directory that only root may enter (console logs, machinad's
 * temporaries, raw-image mounts). `mkdirp(dir, 0o700)` alone would make a missing state directory
 * 0700 as well — and dnsmasq, which re-reads its hosts files in STATE/net as "nobody", could then
 * not reach them (docs/networking.md) — so the state directory is made first, 0755, as every
 * command makes it.
 */
import type { Host } from "./host.ts";

export function mkdirPrivate(host: Host, stateDir: string, dir: string): void {
  host.mkdirp(stateDir, 0o755);
  host.mkdirp(dir, 0o700);
}
