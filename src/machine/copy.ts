/**
 * machinactl copy-to / copy-from: the plan (an enter spec with a `copy` record, native/SPEC.md)
 * for `machina-helper enter`, which opens the host side first, then resolves the container side
 * inside the leader's root (openat2 RESOLVE_IN_ROOT) and copies with fds, never following a
 * symlink. Decided here: the two paths, --force, and how owners are mapped when the container
 * has a user namespace (from the leader's uid_map/gid_map).
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { type EnterRecord, runEnter, targetNamespaces } from "./enter.ts";
import type { Machine } from "./machines.ts";

export type CopyDirection = "to" | "from";

export interface CopyRequest {
  direction: CopyDirection;
  /** The two paths as given: copy-to SRC(host) [DST(container)], copy-from SRC(container) [DST(host)]. */
  paths: [string] | [string, string];
  force: boolean;
  /** For a relative host path. */
  cwd: string;
}

export interface CopyPlan {
  hostPath: string;
  containerPath: string;
}

/** "a/./b//c/../d" -> "/a/b/d" (lexically; symlinks are the helper's business). */
export function normalizeAbsolute(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return `/${out.join("/")}`;
}

/**
 * The host and container paths of a copy. A relative container path is relative to the
 * container's root, a relative host path to `cwd`; with one path given it is both and must be
 * absolute (as machinectl). Neither may be "/".
 */
export function copyPaths(req: CopyRequest): CopyPlan {
  const [first, second] = req.paths;
  for (const p of req.paths) if (p === "") throw new MachinaError("E_INVALID", "empty path");
  if (second === undefined && !first.startsWith("/"))
    throw new MachinaError("E_INVALID", `path "${first}" is not absolute (give both paths to use a relative one)`, { path: first });
  const hostRaw = req.direction === "to" ? first : (second ?? first);
  const contRaw = req.direction === "to" ? (second ?? first) : first;
  const hostPath = normalizeAbsolute(hostRaw.startsWith("/") ? hostRaw : `${req.cwd}/${hostRaw}`);
  const containerPath = normalizeAbsolute(contRaw);
  if (hostPath === "/") throw new MachinaError("E_INVALID", `cannot copy ${req.direction === "to" ? "from" : "onto"} the host's root "/"`, { path: hostRaw });
  if (containerPath === "/")
    throw new MachinaError("E_INVALID", `cannot copy ${req.direction === "to" ? "onto" : "from"} the container's root "/"`, { path: contRaw });
  return { hostPath, containerPath };
}

export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

/** Lines of /proc/PID/uid_map; undefined for the identity (no user namespace). */
export function parseIdMap(text: string): IdRange[] | undefined {
  const ranges: IdRange[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 3) continue;
    const [inside, outside, count] = f.map(Number) as [number, number, number];
    if (![inside, outside, count].every((n) => Number.isInteger(n) && n >= 0)) continue;
    ranges.push({ inside, outside, count });
  }
  if (ranges.length === 0) return undefined;
  if (ranges.length === 1 && ranges[0]!.inside === 0 && ranges[0]!.outside === 0 && ranges[0]!.count === 4294967295) return undefined;
  return ranges;
}

const NOBODY = 65534;

function lookup(ranges: IdRange[], id: number, from: "inside" | "outside"): number | undefined {
  const to = from === "inside" ? "outside" : "inside";
  for (const r of ranges) if (id >= r[from] && id - r[from] < r.count) return r[to] + (id - r[from]);
  return undefined;
}

/**
 * The helper's `copy_uids`/`copy_gids` arguments: FALLBACK then FROM TO COUNT triples.
 * copy-to: an owner on the host is taken as the id inside the container and shifted to the
 * container's range (uid 0 -> the container's root, BASE); ids the container has no mapping
 * for become its nobody (65534 inside), else its root. copy-from: the reverse, so a round
 * trip keeps owners; an owner outside the container's range becomes 65534 (the overflow id,
 * as the container itself sees it).
 */
export function idMapArgs(ranges: IdRange[], direction: CopyDirection): string[] {
  if (direction === "to") {
    const fallback = lookup(ranges, NOBODY, "inside") ?? lookup(ranges, 0, "inside") ?? ranges[0]!.outside;
    return [String(fallback), ...ranges.slice(0, 16).flatMap((r) => [String(r.inside), String(r.outside), String(r.count)])];
  }
  return [String(NOBODY), ...ranges.slice(0, 16).flatMap((r) => [String(r.outside), String(r.inside), String(r.count)])];
}

/** The enter spec of a copy into (to) or out of (from) the running machine. */
export function copySpec(host: Host, m: Machine, req: CopyRequest): EnterRecord[] {
  const { hostPath, containerPath } = copyPaths(req);
  const start = host.processStartTime(m.leader);
  if (start === undefined) throw new MachinaError("E_NOT_FOUND", `the leader of "${m.name}" is gone`, { machine: m.name });
  const ns = targetNamespaces(host, m.leader).includes("mnt") ? ["mnt"] : [];
  const records: EnterRecord[] = [
    ["prog", ["machinactl"]],
    ["target", [String(m.leader), start]],
    ["namespaces", ns],
    ["copy", [req.direction, hostPath, containerPath, req.force ? "1" : "0"]],
  ];
  const uids = parseIdMap(host.readFile(`/proc/${m.leader}/uid_map`) ?? "");
  const gids = parseIdMap(host.readFile(`/proc/${m.leader}/gid_map`) ?? "");
  if (uids) records.push(["copy_uids", idMapArgs(uids, req.direction)]);
  if (gids) records.push(["copy_gids", idMapArgs(gids, req.direction)]);
  return records;
}

/** Run the copy through the helper; throws with the helper's message on failure. */
export async function copyMachineFiles(host: Host, helper: string, m: Machine, req: CopyRequest): Promise<CopyPlan> {
  const plan = copyPaths(req);
  const r = await runEnter(host, helper, copySpec(host, m, req));
  if (r.status !== 0) {
    const msg = r.stderr.trim().replace(/^machinactl: /, "") || `copy ${req.direction === "to" ? "to" : "from"} "${m.name}" failed`;
    const errno = /\((E[A-Z0-9]+)\)$/.exec(msg)?.[1];
    throw new MachinaError(errno === "ENOENT" ? "E_NOT_FOUND" : "E_SYSTEM", msg, {
      machine: m.name,
      path: req.direction === "to" ? plan.containerPath : plan.hostPath,
      ...(errno !== undefined ? { errno } : {}),
    });
  }
  return plan;
}
