/**
 * Finding and loading a machine's .nspawn file, as systemd-nspawn does. All file access goes
 * through the Host.
 *
 * Search order for NAME.nspawn (NAME = the machine name, from -M or derived from the
 * directory or image name):
 *   1. each trusted settings directory: /etc/systemd/nspawn/, then /run/systemd/nspawn/
 *      (overridable with MACHINA_SETTINGS_DIRS="DIR:DIR…", so tests never read the host's);
 *   2. otherwise next to the image: the directory that holds the -D root directory or the
 *      --image file (for pool images that is /var/lib/machines/). Untrusted.
 * The first file found is the only one read (no drop-ins, no merging of several files).
 * `--settings=trusted` trusts the file wherever it was found; `--settings=no` reads nothing.
 */
import { machinaEnv } from "../config.ts";
import type { Host } from "../host/host.ts";
import { machineNameFromDirectory } from "./machine-name.ts";
import { parseNspawnFile, type FileSettings } from "./nspawn-file.ts";
import { mergeSettings } from "./merge.ts";
import type { Settings } from "./settings.ts";

export const DEFAULT_SETTINGS_DIRS = ["/etc/systemd/nspawn", "/run/systemd/nspawn"] as const;

export function trustedSettingsDirs(env: Readonly<Record<string, string | undefined>>): string[] {
  return machinaEnv(env, "MACHINA_SETTINGS_DIRS") ?? [...DEFAULT_SETTINGS_DIRS];
}

export interface SettingsFileCandidate {
  path: string;
  trusted: boolean;
}

function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  const i = trimmed.lastIndexOf("/");
  return i <= 0 ? "/" : trimmed.slice(0, i);
}

/** Where to look, in order. */
export function settingsFileCandidates(
  machine: string,
  root: { directory?: string | undefined; image?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): SettingsFileCandidate[] {
  const name = `${machine}.nspawn`;
  const out: SettingsFileCandidate[] = trustedSettingsDirs(env).map((d) => ({ path: `${d.replace(/\/+$/, "")}/${name}`, trusted: true }));
  const beside = root.image ?? root.directory;
  if (beside !== undefined) {
    const dir = parentOf(beside);
    out.push({ path: `${dir === "/" ? "" : dir}/${name}`, trusted: false });
  }
  return out;
}

export interface FoundSettingsFile {
  path: string;
  trusted: boolean;
  text: string;
}

/** The first candidate that exists (a regular file, or a symlink to one). */
export function findSettingsFile(
  host: Host,
  machine: string,
  root: { directory?: string | undefined; image?: string | undefined },
  mode: Settings["settingsMode"],
): FoundSettingsFile | undefined {
  if (mode === "no") return undefined;
  for (const c of settingsFileCandidates(machine, root, host.env())) {
    const text = host.readFile(c.path);
    if (text === undefined) continue;
    return { path: c.path, trusted: c.trusted || mode === "trusted", text };
  }
  return undefined;
}

export interface LoadedSettings {
  settings: Settings;
  /** The file used, if any. */
  file: FileSettings | undefined;
  /** Warnings to show (FILE:LINE: …), in order. */
  warnings: string[];
}

/** The machine name used for the lookup: -M, else derived from the directory or image. */
export function lookupMachineName(settings: Settings): string | undefined {
  if (settings.machine !== undefined) return settings.machine;
  const from = settings.image ?? settings.directory;
  if (from === undefined) return undefined;
  return machineNameFromDirectory(from.replace(/\.raw$/, ""));
}

/** Find, parse and merge the settings file for the machine (after the command line). */
export function loadSettingsFile(host: Host, cli: Settings): LoadedSettings {
  const mode = cli.settingsMode;
  const machine = lookupMachineName(cli);
  if (mode === "no" || machine === undefined) return { settings: cli, file: undefined, warnings: [] };
  const found = findSettingsFile(host, machine, { directory: cli.directory, image: cli.image }, mode);
  if (found === undefined) return { settings: cli, file: undefined, warnings: [] };
  const file = parseNspawnFile(found.text, found.path, found.trusted);
  return { settings: mergeSettings(cli, file, mode), file, warnings: file.warnings };
}
