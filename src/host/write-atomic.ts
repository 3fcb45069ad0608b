/** A file replaced whole or not at all: its content in a temporary beside it (this process's), renamed over it. */
import type { Host } from "./host.ts";

export function writeAtomic(host: Host, path: string, content: string, mode = 0o644): void {
  const tmp = `${path}.${host.pid()}.tmp`;
  host.writeFile(tmp, content, mode);
  host.rename(tmp, path, false);
}
