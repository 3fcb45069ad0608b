/**
 * Resolve a path inside a container root the way the container would: symlinks (absolute or
 * relative, with any number of `..`) are followed but can never leave the root. Used for
 * reading files of an image from the host; writes happen in the helper via openat2.
 */
import type { Host } from "./host.ts";

const MAX_SYMLINKS = 40;

/**
 * Walk `path` inside `root` as the container would: the components resolved so far (every
 * symlink followed, never above the root) and, where a component is missing, that component and
 * the rest of the path unresolved. undefined when the symlink budget runs out.
 */
function walk(host: Host, root: string, path: string): { resolved: string[]; missing?: { part: string; rest: string[] } } | undefined {
  const pending = path.split("/").filter((p) => p.length > 0);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const hostPath = join(root, [...resolved, part]);
    const kind = host.lstat(hostPath);
    if (kind === undefined) return { resolved, missing: { part, rest: pending } };
    if (kind === "symlink") {
      if (++links > MAX_SYMLINKS) return undefined;
      const target = host.readlink(hostPath);
      if (target.startsWith("/")) resolved.length = 0;
      pending.unshift(...target.split("/").filter((p) => p.length > 0));
      continue;
    }
    resolved.push(part);
  }
  return { resolved };
}

/**
 * Returns the host path of `path` inside `root` with every symlink resolved, or undefined
 * when a component is missing (or the symlink budget runs out). The result is always `root`
 * or below it.
 */
export function resolveInRoot(host: Host, root: string, path: string): string | undefined {
  const w = walk(host, root, path);
  return w === undefined || w.missing !== undefined ? undefined : join(root, w.resolved);
}

/** Where a path of the image leads (systemd's chase() with CHASE_NONEXISTENT). */
export interface Chased {
  /** The container path with every symlink resolved inside the root (missing components kept). */
  path: string;
  /** What is there; undefined when missing. */
  kind: ReturnType<Host["lstat"]>;
  /** Whether the directory that would hold it exists (so it can be created without parents). */
  parentIsDir: boolean;
}

/**
 * Follow `path` inside `root` as the container would, never leaving the root, also when the
 * end (or part of the way) does not exist: then the rest of the path is appended unresolved,
 * as systemd's chase(CHASE_NONEXISTENT). undefined when the symlink budget runs out.
 */
export function chaseInRoot(host: Host, root: string, path: string): Chased | undefined {
  const w = walk(host, root, path);
  if (w === undefined) return undefined;
  const { resolved, missing } = w;
  if (missing !== undefined) {
    const rest = missing.rest.filter((p) => p !== ".");
    return {
      path: `/${[...resolved, missing.part, ...rest].join("/")}`,
      kind: undefined,
      parentIsDir: rest.length === 0 && host.lstat(join(root, resolved)) === "dir",
    };
  }
  return { path: `/${resolved.join("/")}`, kind: host.lstat(join(root, resolved)), parentIsDir: true };
}

function join(root: string, parts: string[]): string {
  const base = root.endsWith("/") && root.length > 1 ? root.slice(0, -1) : root;
  return parts.length === 0 ? base : `${base === "/" ? "" : base}/${parts.join("/")}`;
}

/** Read a file of the image, resolving inside the root. */
export function readFileInRoot(host: Host, root: string, path: string): string | undefined {
  const p = resolveInRoot(host, root, path);
  if (p === undefined || host.lstat(p) !== "file") return undefined;
  return host.readFile(p);
}

/** Kind of a path of the image, after resolving inside the root (undefined when missing). */
export function kindInRoot(host: Host, root: string, path: string): ReturnType<Host["lstat"]> {
  const p = resolveInRoot(host, root, path);
  return p === undefined ? undefined : host.lstat(p);
}
