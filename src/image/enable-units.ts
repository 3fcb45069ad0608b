/**
 * `systemctl --root=TREE enable UNIT…` for a tree that is not running (bootstrap): the [Install]
 * section of each unit found in the tree's unit directories gives its symlinks in
 * /etc/systemd/system — WantedBy= (T.wants/UNIT), RequiredBy= (T.requires/UNIT), Alias= — and
 * Also= names more units to enable. Units the tree does not have, masked ones (/etc → /dev/null)
 * and templates are skipped; existing symlinks are kept. Paths are resolved inside the tree.
 */
import type { Host } from "../host/host.ts";
import { readFileInRoot, resolveInRoot } from "../host/resolve-in-root.ts";
import { parseUnitFile } from "../settings/unit-file.ts";

/** systemd's system unit search path, highest priority first (/lib for trees without merged /usr). */
const UNIT_DIRS = ["/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

const UNIT_NAME = /^[A-Za-z0-9:_.-]+\.(service|socket|target|path|timer|mount|automount|swap)$/;

/** Where UNIT is in the tree (its path inside it), undefined when not there or masked. */
export function findUnit(host: Host, root: string, unit: string): string | undefined {
  for (const dir of UNIT_DIRS) {
    const hostDir = resolveInRoot(host, root, dir);
    if (hostDir === undefined) continue;
    const kind = host.lstat(`${hostDir}/${unit}`);
    if (kind === undefined) continue;
    if (kind === "symlink" && host.readlink(`${hostDir}/${unit}`) === "/dev/null") return undefined; // masked
    const inside = `${dir}/${unit}`;
    const hostPath = resolveInRoot(host, root, inside);
    if (hostPath !== undefined && host.lstat(hostPath) === "file") return inside;
  }
  return undefined;
}

/** A directory below the tree's /etc/systemd/system, created (as plain directories) when missing. */
function systemDir(host: Host, root: string, sub: string): string | undefined {
  const existing = resolveInRoot(host, root, `/etc/systemd/system${sub}`);
  if (existing !== undefined) return host.lstat(existing) === "dir" ? existing : undefined;
  const etc = resolveInRoot(host, root, "/etc");
  if (etc === undefined || host.lstat(etc) !== "dir") return undefined;
  const base = resolveInRoot(host, root, "/etc/systemd/system") ?? `${etc}/systemd/system`;
  host.mkdirp(`${base}${sub}`, 0o755);
  return `${base}${sub}`;
}

/**
 * Enable `units` (and their Also=) in the tree; returns the symlinks made, as paths inside the
 * tree → their targets. Units the tree does not have are skipped.
 */
export function enableUnits(host: Host, root: string, units: readonly string[]): Array<{ path: string; target: string }> {
  const made: Array<{ path: string; target: string }> = [];
  const queue = [...units];
  const done = new Set<string>();
  const link = (sub: string, name: string, target: string) => {
    const dir = systemDir(host, root, sub);
    if (dir === undefined || host.lstat(`${dir}/${name}`) !== undefined) return;
    host.symlink(target, `${dir}/${name}`);
    made.push({ path: `/etc/systemd/system${sub}/${name}`, target });
  };
  while (queue.length > 0) {
    const unit = queue.shift()!;
    if (done.has(unit) || !UNIT_NAME.test(unit) || unit.includes("@")) continue;
    done.add(unit);
    const path = findUnit(host, root, unit);
    if (path === undefined) continue;
    const text = readFileInRoot(host, root, path);
    if (text === undefined) continue;
    for (const e of parseUnitFile(text, path).entries) {
      if (e.section !== "Install") continue;
      for (const v of e.value.split(/\s+/).filter((x) => UNIT_NAME.test(x))) {
        if (e.key === "WantedBy") link(`/${v}.wants`, unit, path);
        else if (e.key === "RequiredBy") link(`/${v}.requires`, unit, path);
        else if (e.key === "Alias" && v !== unit) link("", v, path);
        else if (e.key === "Also") queue.push(v);
      }
    }
  }
  return made;
}
