/**
 * Where this process lives: its namespaces and its root directory, in the form machina-oci's
 * front end sends (native/front.c identity()). machinad's planner serves a front end only
 * when both are the same: pids, paths and cgroups then mean the same on both sides.
 */
import { readlinkSync, statSync } from "node:fs";

const NAMESPACES = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] as const;

export function processIdentity(): string {
  const links = NAMESPACES.map((ns) => {
    try {
      return readlinkSync(`/proc/self/ns/${ns}`);
    } catch {
      return "-";
    }
  });
  const root = statSync("/", { bigint: true });
  return `${links.join(" ")} root:${root.dev}:${root.ino}`;
}
