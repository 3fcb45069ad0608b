/**
 * Merge a settings file into the command-line Settings, as systemd-nspawn's merge_settings()
 * does. Pure; provenance is kept for every value.
 *
 * nspawn thinks in *groups* ("masks"): a command-line option masks its whole group, and a
 * group taken from the file is taken whole. So `--bind=…` on the command line discards every
 * Bind=, BindReadOnly=, TemporaryFileSystem=, Inaccessible=, Overlay= of the file (the command
 * line's list replaces the file's entirely), and a command line `COMMAND`, `--boot` or
 * `--as-pid2` discards the file's Boot=, ProcessTwo= and Parameters=.
 *
 * - mode "yes" / "trusted": a group comes from the file when the file sets it and the command
 *   line does not touch it; otherwise the command line (or the default) stays.
 * - mode "override": a group the file sets comes from the file, whatever the command line said.
 * - mode "no": nothing is loaded (the caller does not call this; it returns `cli` unchanged).
 * Resource limits are masked one by one (LimitNOFILE= against --rlimit=NOFILE=…).
 */
import { usageError } from "../errors.ts";
import type { FileSettings } from "./nspawn-file.ts";
import { defaultSettings, type Settings, type SettingsMode } from "./settings.ts";

/** nspawn's setting masks, as groups of Settings fields. Fields not listed are their own group. */
export const SETTING_GROUPS: ReadonlyArray<readonly (keyof Settings)[]> = [
  ["boot", "asPid2", "command"],
  ["capabilities", "dropCapabilities"],
  ["binds", "tmpfs", "overlays", "inaccessible"],
  [
    "privateNetwork",
    "networkVeth",
    "networkVethExtra",
    "networkBridge",
    "networkZone",
    "networkInterfaces",
    "networkMacvlan",
    "networkIpvlan",
    "networkNamespacePath",
  ],
  ["privateUsers", "privateUsersOwnership"],
  ["user", "userIds"],
];

const GROUP_OF = new Map<keyof Settings, readonly (keyof Settings)[]>();
for (const g of SETTING_GROUPS) for (const k of g) GROUP_OF.set(k, g);

export function mergeSettings(cli: Settings, file: FileSettings, mode: SettingsMode): Settings {
  const out: Settings = { ...cli, provenance: new Map(cli.provenance), unsupported: [...cli.unsupported] };
  if (mode === "no") return out;
  const defaults = defaultSettings();
  const done = new Set<keyof Settings>();
  const fileKeys = Object.keys(file.values) as Array<keyof Settings>;

  for (const key of fileKeys) {
    if (done.has(key)) continue;
    if (key === "rlimits") {
      mergeRlimits(out, cli, file, mode);
      done.add(key);
      continue;
    }
    const group = GROUP_OF.get(key) ?? [key];
    for (const k of group) done.add(k);
    const cliMasks = group.some((k) => cli.provenance.get(k)?.kind === "cli");
    if (cliMasks && mode !== "override") continue;
    // Take the whole group from the file: fields it does not set go back to their defaults.
    for (const k of group) {
      if (k in file.values) {
        (out as unknown as Record<string, unknown>)[k] = file.values[k];
        out.provenance.set(k, file.provenance.get(k)!);
      } else {
        (out as unknown as Record<string, unknown>)[k] = defaults[k];
        out.provenance.delete(k);
      }
    }
  }

  // Networking options imply a private network (as after the command line).
  if (
    out.networkVeth ||
    out.networkVethExtra.length > 0 ||
    out.networkBridge !== undefined ||
    out.networkZone !== undefined ||
    out.networkInterfaces.length > 0 ||
    out.networkMacvlan.length > 0 ||
    out.networkIpvlan.length > 0
  )
    out.privateNetwork = true;
  checkCombinations(out);
  return out;
}

function mergeRlimits(out: Settings, cli: Settings, file: FileSettings, mode: SettingsMode): void {
  const fileLimits = file.values.rlimits ?? [];
  const cliGave = cli.provenance.get("rlimits")?.kind === "cli";
  const cliResources = new Set(cliGave ? cli.rlimits.map((l) => l.resource) : []);
  const taken = fileLimits.filter((l) => mode === "override" || !cliResources.has(l.resource));
  if (taken.length === 0) return;
  const takenResources = new Set(taken.map((l) => l.resource));
  out.rlimits = [...cli.rlimits.filter((l) => !takenResources.has(l.resource)), ...taken];
  if (!cliGave || out.rlimits.every((l) => takenResources.has(l.resource))) out.provenance.set("rlimits", file.provenance.get("rlimits")!);
}

/** Combinations nspawn refuses, whichever side each half came from. */
function checkCombinations(s: Settings): void {
  const where = (k: keyof Settings) => {
    const src = s.provenance.get(k);
    return src?.kind === "cli" ? src.flag : src?.kind === "file" ? `${src.file}:${src.line}` : String(k);
  };
  if (s.boot && s.asPid2) throw usageError(`--boot (${where("boot")}) and --as-pid2 (${where("asPid2")}) may not be combined`, { flag: where("boot") });
  if (s.ephemeral && s.template !== undefined)
    throw usageError(`--ephemeral (${where("ephemeral")}) and --template= may not be combined`, { flag: where("ephemeral") });
  if (s.networkBridge !== undefined && s.networkZone !== undefined)
    throw usageError(`--network-bridge= (${where("networkBridge")}) and --network-zone= (${where("networkZone")}) may not be combined`, {
      flag: where("networkZone"),
    });
}
