/**
 * Start at boot: which machines are enabled. On a host without systemd, an enabled machine is
 * a symlink `machina-nspawn@NAME.service` in the enable directory (default
 * /etc/machina/machines.target.wants, env MACHINA_ENABLE_DIR), pointing at the unit template
 * (the same layout systemd uses, so a later move to a systemd host keeps the list); machinad
 * starts these when it starts. On a systemd host with machina's unit template installed,
 * `systemctl enable machina-nspawn@NAME.service` does it (src/machine/systemd.ts).
 */
import type { Host } from "../host/host.ts";
import { isValidMachineName } from "../settings/values.ts";
import { systemctl, systemdAvailable, unitInstalled, unitName, unitDir, TEMPLATE_NAME } from "./systemd.ts";

export interface EnableChange {
  type: "symlink" | "unlink";
  path: string;
  source: string;
}

export function enableDir(env: Readonly<Record<string, string | undefined>>): string {
  return env["MACHINA_ENABLE_DIR"] ?? "/etc/machina/machines.target.wants";
}

export async function enableMachine(host: Host, env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ changes: EnableChange[] }> {
  if (systemdAvailable(host, env) && unitInstalled(host, env)) {
    await systemctl(host, ["enable", unitName(name)]);
    return { changes: [{ type: "symlink", path: `/etc/systemd/system/machines.target.wants/${unitName(name)}`, source: `${unitDir(env)}/${TEMPLATE_NAME}` }] };
  }
  const dir = enableDir(env);
  const path = `${dir}/${unitName(name)}`;
  const source = `${unitDir(env)}/${TEMPLATE_NAME}`;
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
  const path = `${enableDir(env)}/${unitName(name)}`;
  if (host.lstat(path) === undefined) return { changes: [] };
  host.unlink(path);
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
