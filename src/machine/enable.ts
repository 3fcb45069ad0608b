/**
 * Start at boot: which machines are enabled. On a host without systemd, an enabled machine is
 * a symlink `machina-nspawn@NAME.service` in the enable directory (default
 * /etc/machina/machines.target.wants, env MACHINA_ENABLE_DIR), pointing at the unit template
 * (the same layout systemd uses, so a later move to a systemd host keeps the list): the installed
 * one, else machina's own copy next to the enable directory (/etc/machina/machina-nspawn@.service,
 * written when missing), so the link never dangles; machinad starts these when it starts.
 * On a systemd host with machina's unit template installed, `systemctl enable
 * machina-nspawn@NAME.service` does it (src/machine/systemd.ts). Only an image in the pool can
 * be enabled; disable removes the enable directory once it is empty.
 */
import { machinaEnv } from "../config.ts";
import { dirname } from "node:path";
import type { Host } from "../host/host.ts";
import { writeAtomic } from "../host/write-atomic.ts";
import { findImage } from "../image/pool.ts";
import { MachinaError } from "../errors.ts";
import { isValidMachineName } from "../settings/values.ts";
import { systemctl, systemdAvailable, unitBinDir, unitInstalled, unitName, unitDir, unitTemplate, TEMPLATE_NAME } from "./systemd.ts";

export interface EnableChange {
  type: "symlink" | "unlink";
  path: string;
  source: string;
}

export function enableDir(env: Readonly<Record<string, string | undefined>>): string {
  return machinaEnv(env, "MACHINA_ENABLE_DIR") ?? "/etc/machina/machines.target.wants";
}

/** E_NOT_FOUND (one line, nothing changed) unless every name has an image in the pool. */
export function requireImages(host: Host, pool: readonly string[], names: readonly string[]): void {
  for (const name of names)
    if (findImage(host, pool, name) === undefined)
      throw new MachinaError("E_NOT_FOUND", `no image "${name}" in ${pool.join(", ")}: only an image of the pool can be enabled`, { machine: name });
}

export async function enableMachine(
  host: Host,
  env: Readonly<Record<string, string | undefined>>,
  pool: readonly string[],
  name: string,
): Promise<{ changes: EnableChange[] }> {
  requireImages(host, pool, [name]);
  if (systemdAvailable(host, env) && unitInstalled(host, env)) {
    await systemctl(host, ["enable", unitName(name)]);
    return { changes: [{ type: "symlink", path: `/etc/systemd/system/machines.target.wants/${unitName(name)}`, source: `${unitDir(env)}/${TEMPLATE_NAME}` }] };
  }
  const dir = enableDir(env);
  const path = `${dir}/${unitName(name)}`;
  // The installed template, else machina's own copy next to the enable directory (written once).
  let source = `${unitDir(env)}/${TEMPLATE_NAME}`;
  if (!unitInstalled(host, env)) {
    source = `${dirname(dir)}/${TEMPLATE_NAME}`;
    if (host.lstat(source) === undefined) {
      host.mkdirp(dirname(dir), 0o755);
      writeAtomic(host, source, unitTemplate(unitBinDir(host)));
    }
  }
  host.mkdirp(dir, 0o755);
  if (host.lstat(path) === "symlink") {
    if (host.readlink(path) === source) return { changes: [] };
    host.unlink(path); // another target: replaced
  }
  host.symlink(source, path);
  return { changes: [{ type: "symlink", path, source }] };
}

export async function disableMachine(host: Host, env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ changes: EnableChange[] }> {
  if (systemdAvailable(host, env) && unitInstalled(host, env)) {
    await systemctl(host, ["disable", unitName(name)]);
    return { changes: [{ type: "unlink", path: `/etc/systemd/system/machines.target.wants/${unitName(name)}`, source: "" }] };
  }
  const dir = enableDir(env);
  const path = `${dir}/${unitName(name)}`;
  if (host.lstat(path) === undefined) return { changes: [] };
  host.unlink(path);
  if (host.readdir(dir).length === 0) host.removeDirTree(dir); // enable made it: gone with the last link
  return { changes: [{ type: "unlink", path, source: "" }] };
}

/** Names linked in the enable directory (machinad starts these). */
export function listEnabled(host: Host, env: Readonly<Record<string, string | undefined>>): string[] {
  const names: string[] = [];
  for (const e of host.readdir(enableDir(env))) {
    const m = /^machina-nspawn@(.+)\.service$/.exec(e);
    if (m && isValidMachineName(m[1]!)) names.push(m[1]!);
  }
  return names.sort();
}
