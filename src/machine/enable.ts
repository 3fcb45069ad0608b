/**
 * Start at boot: which machines are enabled. On a host without systemd, an enabled machine is
 * a symlink `machina-nspawn@NAME.service` in the enable directory (default
 * /etc/machina/machines.target.wants, env MACHINA_ENABLE_DIR), pointing at the unit template
 * (the same layout systemd uses, so a later move to a systemd host keeps the list); machinad
 * starts these when it starts. On a systemd host with machina's unit template installed,
 * `systemctl enable machina-nspawn@NAME.service` does it (src/machine/systemd.ts).
 */
import * as fs from "node:fs";
import { systemctl, systemdAvailable, unitInstalled, unitName, unitDir, TEMPLATE_NAME } from "./systemd.ts";

export interface EnableChange {
  type: "symlink" | "unlink";
  path: string;
  source: string;
}

export function enableDir(env: Readonly<Record<string, string | undefined>>): string {
  return env["MACHINA_ENABLE_DIR"] ?? "/etc/machina/machines.target.wants";
}

export async function enableMachine(env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ changes: EnableChange[] }> {
  if (systemdAvailable(env) && unitInstalled(env)) {
    await systemctl(["enable", unitName(name)]);
    return { changes: [{ type: "symlink", path: `/etc/systemd/system/machines.target.wants/${unitName(name)}`, source: `${unitDir(env)}/${TEMPLATE_NAME}` }] };
  }
  const dir = enableDir(env);
  const path = `${dir}/${unitName(name)}`;
  const source = `${unitDir(env)}/${TEMPLATE_NAME}`;
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  try {
    if (fs.readlinkSync(path) === source) return { changes: [] };
    fs.unlinkSync(path);
  } catch {
    // not there yet
  }
  fs.symlinkSync(source, path);
  return { changes: [{ type: "symlink", path, source }] };
}

export async function disableMachine(env: Readonly<Record<string, string | undefined>>, name: string): Promise<{ changes: EnableChange[] }> {
  if (systemdAvailable(env) && unitInstalled(env)) {
    await systemctl(["disable", unitName(name)]);
    return { changes: [{ type: "unlink", path: `/etc/systemd/system/machines.target.wants/${unitName(name)}`, source: "" }] };
  }
  const path = `${enableDir(env)}/${unitName(name)}`;
  try {
    fs.lstatSync(path);
  } catch {
    return { changes: [] };
  }
  fs.unlinkSync(path);
  return { changes: [{ type: "unlink", path, source: "" }] };
}
