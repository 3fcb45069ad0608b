/**
 * .nspawn settings files (systemd.nspawn(5), systemd 252) -> the Settings they set, each
 * value with its provenance {kind: "file", file, line, trusted}. Pure: text in, FileSettings
 * out. Values are parsed by the same parsers as the command line; a bad value is an error
 * ("FILE:LINE: invalid value "X" for Key=: expected …"). Syntax problems and unknown keys are
 * warnings, as in systemd. Keys an untrusted file may not set are dropped with a warning
 * (trust.ts) before their value is looked at.
 *
 * Semantics, per the man page and nspawn's parsers:
 * - list keys (Parameters=, Environment=, Capability=, Bind=, Port=, …) accumulate over
 *   repeated assignments; an empty assignment (`Key=`) clears what earlier lines of this key
 *   added;
 * - scalar keys: the last assignment wins; `Key=` returns to "not set by this file" where
 *   systemd allows an empty value (booleans, names, paths), and is an invalid value where it
 *   does not (enums, numbers, MachineID=, PivotRoot=, Boot=, …);
 * - Parameters= is the command line (or init's arguments with Boot=yes); Boot= and
 *   ProcessTwo= may not both be yes.
 */
import { MachinaError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { CAPABILITIES, type CapabilityName } from "./capabilities.ts";
import { Accumulator, type FileSource, type KeySpec } from "./nspawn-keys.ts";
import { NSPAWN_FILE_KEYS } from "./nspawn-table.ts";
import type { Rlimit } from "./rlimits.ts";
import type { Settings, Source } from "./settings.ts";
import { untrustedRefusal } from "./trust.ts";
import { formatWarning, parseUnitFile, type UnitEntry, type UnitSchema } from "./unit-file.ts";

/** What one settings file asks for. */
export interface FileSettings {
  file: string;
  trusted: boolean;
  /** Only the settings this file sets (after the trust rules). */
  values: Partial<Settings>;
  provenance: Map<keyof Settings, Source>;
  /** One line each, already prefixed with FILE:LINE. */
  warnings: string[];
}

/** Every key of systemd 252's systemd.nspawn(5), from the option table. */
export const NSPAWN_KEYS: readonly KeySpec[] = NSPAWN_FILE_KEYS;

const SPEC_BY_KEY = new Map(NSPAWN_KEYS.map((k) => [`${k.section}.${k.key}`, k]));

export const NSPAWN_SCHEMA: UnitSchema = (() => {
  const m = new Map<string, Set<string>>();
  for (const k of NSPAWN_KEYS) {
    const set = m.get(k.section) ?? new Set<string>();
    set.add(k.key);
    m.set(k.section, set);
  }
  return m;
})();

/** Which Settings field a key sets (for docs and tests). */
export function fieldOfKey(section: string, key: string): keyof Settings | undefined {
  const spec = SPEC_BY_KEY.get(`${section}.${key}`);
  return spec === undefined ? undefined : keyField(spec);
}
const FIELD_OF = new Map<KeySpec, keyof Settings>();

function applyEntry(acc: Accumulator, entry: UnitEntry, trusted: boolean): void {
  const spec = SPEC_BY_KEY.get(`${entry.section}.${entry.key}`);
  if (spec === undefined) return; // the schema already warned
  const src: FileSource = { kind: "file", file: entry.file, line: entry.line, trusted };
  const ctx: ErrorContext = { file: entry.file, line: entry.line, flag: `${entry.key}=` };
  if (entry.value === "" && spec.emptyResets) {
    resetKey(acc, spec);
    return;
  }
  spec.apply(acc, entry.value, ctx, src);
}

/** `Key=`: forget what this key set earlier in the file. */
function resetKey(acc: Accumulator, spec: KeySpec): void {
  const field = keyField(spec);
  if (field === "systemCallFilter") acc.reset(field, () => true);
  else if (LIST_FIELDS.has(field)) acc.reset(field, spec.key);
  else acc.unset(field);
}

const LIST_FIELDS = new Set<keyof Settings>([
  "command",
  "environment",
  "capabilities",
  "dropCapabilities",
  "ambientCapabilities",
  "systemCallFilter",
  "rlimits",
  "binds",
  "bindUsers",
  "tmpfs",
  "inaccessible",
  "overlays",
  "networkVethExtra",
  "networkInterfaces",
  "networkMacvlan",
  "networkIpvlan",
  "ports",
]);

/**
 * The Settings field of a key: learnt by applying a known-good sample to a scratch accumulator,
 * on first use (only `Key=` resets and the docs ask; parsing every sample at start-up cost every
 * machina-nspawn ~1 ms).
 */
function keyField(spec: KeySpec): keyof Settings {
  const known = FIELD_OF.get(spec);
  if (known !== undefined) return known;
  const scratch = new Accumulator();
  const src: FileSource = { kind: "file", file: "-", line: 0, trusted: true };
  spec.apply(scratch, SAMPLE_VALUES[spec.key]!, { flag: spec.key }, src);
  const field = ([...Object.keys(scratch.values), ...scratch.listKeys()] as Array<keyof Settings>)[0];
  if (field === undefined) throw new Error(`internal: no field recorded for ${spec.key}=`);
  FIELD_OF.set(spec, field);
  return field;
}

/** Known-good sample values, used to learn each key's field (and by the tests). */
export const SAMPLE_VALUES: Readonly<Record<string, string>> = Object.fromEntries(NSPAWN_KEYS.map((k) => [k.key, k.sample]));

/** The command-line twin of a key (for docs). */
export function flagOfKey(section: string, key: string): string | undefined {
  return SPEC_BY_KEY.get(`${section}.${key}`)?.flag;
}

/** Parse one .nspawn file. Throws a MachinaError (E_INVALID) on the first bad value. */
export function parseNspawnFile(text: string, file: string, trusted: boolean): FileSettings {
  const parsed = parseUnitFile(text, file, NSPAWN_SCHEMA);
  const ordered = parsed.warnings.map((w) => ({ line: w.line, text: formatWarning(w) }));
  const acc = new Accumulator();
  for (const entry of parsed.entries) {
    const refusal = untrustedRefusal(entry, trusted);
    if (refusal !== undefined) {
      ordered.push({ line: entry.line, text: refusal });
      continue;
    }
    applyEntry(acc, entry, trusted);
  }
  // In file order (sort is stable).
  const warnings = ordered.sort((a, b) => a.line - b.line).map((w) => w.text);
  assembleLists(acc);
  // Networking keys imply a private network, as on the command line.
  const v = acc.values;
  const implying = (["networkVeth", "networkVethExtra", "networkBridge", "networkZone", "networkInterfaces", "networkMacvlan", "networkIpvlan"] as const).find(
    (k) => (k === "networkVeth" ? v.networkVeth === true : v[k] !== undefined),
  );
  if (implying !== undefined && v.privateNetwork === undefined) acc.set("privateNetwork", true, acc.provenance.get(implying) as FileSource);
  // PrivateUsers=pick implies ownership fixing ("auto") unless the file says otherwise, as
  // nspawn's settings loader does (and as -U does on the command line).
  if (v.privateUsers?.mode === "pick" && v.privateUsersOwnership === undefined)
    acc.set("privateUsersOwnership", "auto", acc.provenance.get("privateUsers") as FileSource);
  if (v.networkBridge !== undefined && v.networkZone !== undefined) {
    const src = acc.provenance.get("networkZone") as FileSource;
    throw new MachinaError("E_INVALID", `${src.file}:${src.line}: Bridge= and Zone= may not be combined`, { file: src.file, line: src.line, flag: "Zone=" });
  }
  return { file, trusted, values: acc.values, provenance: acc.provenance, warnings };
}

function assembleLists(acc: Accumulator): void {
  for (const field of acc.listKeys()) {
    const items = acc.items(field);
    if (items.length === 0) continue;
    const last = items[items.length - 1]!.src;
    switch (field) {
      case "systemCallFilter":
        acc.set(
          "systemCallFilter",
          {
            allow: items.filter((i) => i.tag === "allow").map((i) => i.item as string),
            deny: items.filter((i) => i.tag === "deny").map((i) => i.item as string),
          },
          last,
        );
        break;
      case "capabilities": {
        const caps = items.map((i) => i.item as CapabilityName | "all");
        acc.set("capabilities", caps.includes("all") ? [...CAPABILITIES] : dedupe(caps as CapabilityName[]), last);
        break;
      }
      case "dropCapabilities": {
        const caps = items.map((i) => i.item as CapabilityName | "all");
        acc.set("dropCapabilities", caps.includes("all") ? "all" : dedupe(caps as CapabilityName[]), last);
        break;
      }
      case "ambientCapabilities":
        acc.set("ambientCapabilities", dedupe(items.map((i) => i.item as CapabilityName)), last);
        break;
      case "rlimits":
        acc.set(
          "rlimits",
          items.map((i) => i.item as Rlimit),
          last,
        );
        break;
      default:
        (acc.values as Record<string, unknown>)[field] = items.map((i) => i.item);
        acc.provenance.set(field, last);
    }
  }
}

function dedupe<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
