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
import { CAPABILITIES, parseCapabilityName, type CapabilityName } from "./capabilities.ts";
import {
  parseBind, parseCpuSet, parseOverlay, parsePort, parsePrivateUsers, parseTmpfs,
} from "./compound-values.ts";
import { parseVolatile } from "./nspawn-cli.ts";
import { RLIMITS, parseRlimitValue, type Rlimit } from "./rlimits.ts";
import {
  LINK_JOURNAL_MODES, OWNERSHIP_MODES, RESOLV_CONF_MODES, TIMEZONE_MODES, type Settings, type Source,
} from "./settings.ts";
import { untrustedRefusal } from "./trust.ts";
import { SplitError, formatWarning, parseUnitFile, splitQuoted, type UnitEntry, type UnitSchema } from "./unit-file.ts";
import {
  invalid, isValidEnvName, parseAbsolutePath, parseBoolean, parseChoice, parseHostname, parseInterfaceName,
  parseOomScoreAdjust, parsePersonality, parsePivotRoot, parseSignal, parseSyscallFilter, parseUserName,
  parseUuid, parseVethExtra,
} from "./values.ts";
import type { ErrorContext } from "../errors.ts";

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

type FileSource = Extract<Source, { kind: "file" }>;

/** Working state while reading one file. List items are tagged with the key that added them. */
class Accumulator {
  readonly values: Partial<Settings> = {};
  readonly provenance = new Map<keyof Settings, Source>();
  private readonly lists = new Map<keyof Settings, Array<{ tag: string; item: unknown; src: FileSource }>>();

  set<K extends keyof Settings>(key: K, value: Settings[K], src: FileSource): void {
    this.values[key] = value;
    this.provenance.set(key, src);
  }

  unset(key: keyof Settings): void {
    delete this.values[key];
    this.provenance.delete(key);
  }

  push(key: keyof Settings, tag: string, items: readonly unknown[], src: FileSource): void {
    const list = this.lists.get(key) ?? [];
    for (const item of items) list.push({ tag, item, src });
    this.lists.set(key, list);
  }

  /** Drop the items `tag` added (an empty assignment). */
  reset(key: keyof Settings, tag: string | ((t: string) => boolean)): void {
    const match = typeof tag === "string" ? (t: string) => t === tag : tag;
    this.lists.set(key, (this.lists.get(key) ?? []).filter((e) => !match(e.tag)));
  }

  items(key: keyof Settings): Array<{ tag: string; item: unknown; src: FileSource }> {
    return this.lists.get(key) ?? [];
  }

  listKeys(): Array<keyof Settings> {
    return [...this.lists.keys()];
  }
}

interface KeySpec {
  section: "Exec" | "Files" | "Network";
  key: string;
  /** `Key=` clears instead of being an invalid value. */
  emptyResets: boolean;
  /** The command-line twin, for docs and messages. */
  flag: string;
  apply(acc: Accumulator, value: string, ctx: ErrorContext, src: FileSource): void;
}

function words(value: string, ctx: ErrorContext, allowed: string): string[] {
  try {
    return splitQuoted(value);
  } catch (e) {
    if (e instanceof SplitError) throw invalid(ctx, value, `${allowed} (${e.message})`);
    throw e;
  }
}

const bool = (
  section: KeySpec["section"], key: string, field: keyof Settings & ("ephemeral" | "noNewPrivileges" | "notifyReady" | "suppressSync" | "readOnly" | "privateNetwork" | "networkVeth"), flag: string,
): KeySpec => ({
  section, key, flag, emptyResets: true,
  apply: (acc, v, ctx, src) => acc.set(field, parseBoolean(v, ctx), src),
});

function scalar<K extends keyof Settings>(
  section: KeySpec["section"], key: string, field: K, flag: string, emptyResets: boolean,
  parse: (v: string, ctx: ErrorContext) => Settings[K],
): KeySpec {
  return { section, key, flag, emptyResets, apply: (acc, v, ctx, src) => acc.set(field, parse(v, ctx), src) };
}

function list(
  section: KeySpec["section"], key: string, field: keyof Settings, flag: string,
  parse: (v: string, ctx: ErrorContext) => unknown[],
): KeySpec {
  return { section, key, flag, emptyResets: true, apply: (acc, v, ctx, src) => acc.push(field, key, parse(v, ctx), src) };
}

function capabilityWords(value: string, ctx: ErrorContext, allowAll: boolean): Array<CapabilityName | "all"> {
  // nspawn splits on white space only (extract_first_word without flags).
  return value.split(/[ \t\n\r]+/).filter((w) => w.length > 0).map((w) => {
    if (w === "all") {
      if (!allowAll) throw invalid(ctx, value, "a space-separated list of capability names ('all' is not supported here)");
      return "all";
    }
    return parseCapabilityName(w, ctx);
  });
}

/** `IF[:NAME]` for Interface=, MACVLAN=, IPVLAN=. */
function interfaceSpec(w: string, value: string, ctx: ErrorContext): string {
  const parts = w.split(":");
  if (parts.length > 2) throw invalid(ctx, value, "a space-separated list of IF[:NAME] interface names");
  parseInterfaceName(parts[0]!, ctx);
  if (parts[1] !== undefined) parseInterfaceName(parts[1], ctx);
  return w;
}

const interfaceList = (key: string, field: keyof Settings, flag: string) =>
  list("Network", key, field, flag, (v, ctx) => words(v, ctx, "a space-separated list of interface names").map((w) => interfaceSpec(w, v, ctx)));

function startMode(which: "boot" | "asPid2", other: "boot" | "asPid2", key: string, otherKey: string, flag: string): KeySpec {
  return {
    section: "Exec", key, flag, emptyResets: false,
    apply: (acc, v, ctx, src) => {
      const on = parseBoolean(v, ctx);
      if (on && acc.values[other] === true)
        throw invalid(ctx, v, `no for ${key}= when ${otherKey}=yes is set (they may not be combined)`);
      acc.set(which, on, src);
    },
  };
}

function bindSource(v: string, readOnly: boolean, ctx: ErrorContext) {
  // In a file, relative sources have nothing to be relative to: nspawn requires absolute ones.
  const first = v.split(":")[0] ?? "";
  if (first !== "" && !first.startsWith("/") && !first.startsWith("+"))
    throw invalid(ctx, v, "SOURCE[:DESTINATION[:OPTIONS]] with absolute paths (SOURCE may start with '+' or be empty)");
  return parseBind(v, readOnly, ctx, "/");
}

/** Every key of systemd 252's systemd.nspawn(5). */
export const NSPAWN_KEYS: readonly KeySpec[] = [
  // [Exec]
  startMode("boot", "asPid2", "Boot", "ProcessTwo", "--boot"),
  bool("Exec", "Ephemeral", "ephemeral", "--ephemeral"),
  startMode("asPid2", "boot", "ProcessTwo", "Boot", "--as-pid2"),
  list("Exec", "Parameters", "command", "COMMAND [ARGS…]", (v, ctx) => words(v, ctx, "a command line with '…' or \"…\" quoting")),
  list("Exec", "Environment", "environment", "--setenv=", (v, ctx) =>
    words(v, ctx, "NAME=VALUE assignments").map((w) => {
      const eq = w.indexOf("=");
      if (eq <= 0 || !isValidEnvName(w.slice(0, eq)) || /[\x00-\x08\x0a-\x1f\x7f]/.test(w))
        throw invalid(ctx, v, "NAME=VALUE assignments, separated by spaces (quote values with spaces), NAME a valid variable name");
      return w;
    })),
  scalar("Exec", "User", "user", "--user=", true, (v, ctx) => {
    if (/[\s:\0]/.test(v)) throw invalid(ctx, v, "a user name or UID");
    return v;
  }),
  scalar("Exec", "WorkingDirectory", "chdir", "--chdir=", true, parseAbsolutePath),
  scalar("Exec", "PivotRoot", "pivotRoot", "--pivot-root=", false, parsePivotRoot),
  list("Exec", "Capability", "capabilities", "--capability=", (v, ctx) => capabilityWords(v, ctx, true)),
  list("Exec", "DropCapability", "dropCapabilities", "--drop-capability=", (v, ctx) => capabilityWords(v, ctx, true)),
  list("Exec", "AmbientCapability", "ambientCapabilities", "--ambient-capability=", (v, ctx) => capabilityWords(v, ctx, false)),
  bool("Exec", "NoNewPrivileges", "noNewPrivileges", "--no-new-privileges="),
  scalar("Exec", "KillSignal", "killSignal", "--kill-signal=", true, parseSignal),
  scalar("Exec", "Personality", "personality", "--personality=", true, parsePersonality),
  scalar("Exec", "MachineID", "uuid", "--uuid=", false, parseUuid),
  scalar("Exec", "PrivateUsers", "privateUsers", "--private-users=", false, parsePrivateUsers),
  bool("Exec", "NotifyReady", "notifyReady", "--notify-ready="),
  {
    section: "Exec", key: "SystemCallFilter", flag: "--system-call-filter=", emptyResets: true,
    apply: (acc, v, ctx, src) => {
      const f = parseSyscallFilter(v, ctx);
      acc.push("systemCallFilter", f.deny ? "deny" : "allow", f.names, src);
    },
  },
  ...Object.keys(RLIMITS).map((name): KeySpec => ({
    section: "Exec", key: `Limit${name}`, flag: `--rlimit=${name}=`, emptyResets: false,
    apply: (acc, v, ctx, src) => {
      acc.reset("rlimits", name);
      acc.push("rlimits", name, [parseRlimitValue(name, v, ctx)], src);
    },
  })),
  scalar("Exec", "OOMScoreAdjust", "oomScoreAdjust", "--oom-score-adjust=", false, parseOomScoreAdjust),
  scalar("Exec", "CPUAffinity", "cpuAffinity", "--cpu-affinity=", true, parseCpuSet),
  scalar("Exec", "Hostname", "hostname", "--hostname=", true, parseHostname),
  scalar("Exec", "ResolvConf", "resolvConf", "--resolv-conf=", false, (v, ctx) => parseChoice(v, RESOLV_CONF_MODES, ctx)),
  scalar("Exec", "Timezone", "timezone", "--timezone=", false, (v, ctx) => parseChoice(v, TIMEZONE_MODES, ctx)),
  scalar("Exec", "LinkJournal", "linkJournal", "--link-journal=", false, (v, ctx) => parseChoice(v, LINK_JOURNAL_MODES, ctx)),
  bool("Exec", "SuppressSync", "suppressSync", "--suppress-sync="),
  // [Files]
  bool("Files", "ReadOnly", "readOnly", "--read-only"),
  scalar("Files", "Volatile", "volatile", "--volatile=", false, (v, ctx) => parseVolatile(v, ctx)),
  list("Files", "Bind", "binds", "--bind=", (v, ctx) => [bindSource(v, false, ctx)]),
  list("Files", "BindReadOnly", "binds", "--bind-ro=", (v, ctx) => [bindSource(v, true, ctx)]),
  list("Files", "BindUser", "bindUsers", "--bind-user=", (v, ctx) => [parseUserName(v, ctx)]),
  list("Files", "TemporaryFileSystem", "tmpfs", "--tmpfs=", (v, ctx) => [parseTmpfs(v, ctx)]),
  list("Files", "Inaccessible", "inaccessible", "--inaccessible=", (v, ctx) => [parseAbsolutePath(v, ctx)]),
  list("Files", "Overlay", "overlays", "--overlay=", (v, ctx) => [parseOverlay(v, false, ctx)]),
  list("Files", "OverlayReadOnly", "overlays", "--overlay-ro=", (v, ctx) => [parseOverlay(v, true, ctx)]),
  scalar("Files", "PrivateUsersOwnership", "privateUsersOwnership", "--private-users-ownership=", false, (v, ctx) => parseChoice(v, OWNERSHIP_MODES, ctx)),
  scalar("Files", "PrivateUsersChown", "privateUsersOwnership", "--private-users-chown", false, (v, ctx) => (parseBoolean(v, ctx) ? "chown" : "off")),
  // [Network]
  bool("Network", "Private", "privateNetwork", "--private-network"),
  bool("Network", "VirtualEthernet", "networkVeth", "--network-veth"),
  list("Network", "VirtualEthernetExtra", "networkVethExtra", "--network-veth-extra=", (v, ctx) => [parseVethExtra(v, ctx)]),
  interfaceList("Interface", "networkInterfaces", "--network-interface="),
  interfaceList("MACVLAN", "networkMacvlan", "--network-macvlan="),
  interfaceList("IPVLAN", "networkIpvlan", "--network-ipvlan="),
  scalar("Network", "Bridge", "networkBridge", "--network-bridge=", true, parseInterfaceName),
  scalar("Network", "Zone", "networkZone", "--network-zone=", true, (v, ctx) => {
    if (!/^[A-Za-z0-9_-]{1,12}$/.test(v)) throw invalid(ctx, v, "a zone name of 1-12 letters, digits, '-' or '_'");
    return v;
  }),
  list("Network", "Port", "ports", "--port=", (v, ctx) => [parsePort(v, ctx)]),
];

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
  return spec === undefined ? undefined : FIELD_OF.get(spec);
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
  "command", "environment", "capabilities", "dropCapabilities", "ambientCapabilities", "systemCallFilter", "rlimits",
  "binds", "bindUsers", "tmpfs", "inaccessible", "overlays", "networkVethExtra", "networkInterfaces", "networkMacvlan",
  "networkIpvlan", "ports",
]);

/** The Settings field of a key: learnt once by applying a known-good sample to a scratch accumulator. */
function keyField(spec: KeySpec): keyof Settings {
  const known = FIELD_OF.get(spec);
  if (known !== undefined) return known;
  throw new Error(`internal: no field recorded for ${spec.key}=`);
}

/** Known-good sample values, used to learn each key's field (and by the tests). */
export const SAMPLE_VALUES: Readonly<Record<string, string>> = {
  Boot: "yes", Ephemeral: "yes", ProcessTwo: "yes", Parameters: "/bin/sh -c 'echo hi'", Environment: "FOO=bar",
  User: "nobody", WorkingDirectory: "/srv", PivotRoot: "/sysroot", Capability: "CAP_NET_ADMIN",
  DropCapability: "CAP_MKNOD", AmbientCapability: "CAP_CHOWN", NoNewPrivileges: "yes", KillSignal: "SIGINT",
  Personality: "x86", MachineID: "0123456789abcdef0123456789abcdef", PrivateUsers: "pick", NotifyReady: "yes",
  SystemCallFilter: "@mount", OOMScoreAdjust: "-500", CPUAffinity: "0-1", Hostname: "box", ResolvConf: "off",
  Timezone: "off", LinkJournal: "no", SuppressSync: "yes", ReadOnly: "yes", Volatile: "state",
  Bind: "/srv/a:/a", BindReadOnly: "/srv/b:/b", BindUser: "alice", TemporaryFileSystem: "/tmp/x:mode=0700",
  Inaccessible: "/secret", Overlay: "/lower:/upper:/data", OverlayReadOnly: "/lower:/data",
  PrivateUsersOwnership: "chown", PrivateUsersChown: "yes", Private: "yes", VirtualEthernet: "yes",
  VirtualEthernetExtra: "vx0:host1", Interface: "eth1", MACVLAN: "eth2", IPVLAN: "eth3", Bridge: "br0", Zone: "web",
  Port: "tcp:8080:80",
  ...Object.fromEntries(Object.keys(RLIMITS).map((r) => [`Limit${r}`, r === "NICE" ? "10:20" : "1024:4096"])),
};

for (const spec of NSPAWN_KEYS) {
  const scratch = new Accumulator();
  const src: FileSource = { kind: "file", file: "-", line: 0, trusted: true };
  spec.apply(scratch, SAMPLE_VALUES[spec.key]!, { flag: spec.key }, src);
  const fields = [...Object.keys(scratch.values), ...scratch.listKeys()] as Array<keyof Settings>;
  FIELD_OF.set(spec, fields[0]!);
}

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
  const implying = (["networkVeth", "networkVethExtra", "networkBridge", "networkZone", "networkInterfaces", "networkMacvlan", "networkIpvlan"] as const)
    .find((k) => (k === "networkVeth" ? v.networkVeth === true : v[k] !== undefined));
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
        acc.set("systemCallFilter", {
          allow: items.filter((i) => i.tag === "allow").map((i) => i.item as string),
          deny: items.filter((i) => i.tag === "deny").map((i) => i.item as string),
        }, last);
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
        acc.set("rlimits", items.map((i) => i.item as Rlimit), last);
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
