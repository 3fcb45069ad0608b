/**
 * machina-nspawn's options: the one table. Each row declares an option once — its long and
 * short names, argument syntax, help group and text, the choices it takes, how its value is
 * parsed and applied from the command line, and the .nspawn keys (section, key, trust rule)
 * that set the same thing. Everything else is derived from it: the getopt table
 * (nspawn-options.ts), the command-line parser (nspawn-cli.ts), the settings-file keys
 * (nspawn-file.ts), the trust rules (trust.ts), `--help` (cli/nspawn-help.ts), shell completion
 * and the man page (scripts/gen-docs.ts), and the option list checked against docs/options.md.
 * Pure.
 */
import { usageError, type ErrorContext } from "../errors.ts";
import { CAPABILITIES, parseCapabilityList } from "./capabilities.ts";
import { parseBind, parseCpuSet, parseCredential, parseOverlay, parsePort, parsePrivateUsers, parseTmpfs } from "./compound-values.ts";
import type { ArgKind } from "./getopt.ts";
import {
  bindSource,
  bool,
  capabilityWords,
  interfaceList,
  list,
  scalar,
  startMode,
  words,
  type KeyCore,
  type KeySpec,
  type PrivilegeRule,
} from "./nspawn-keys.ts";
import { RLIMITS, parseRlimitAssignment, parseRlimitValue } from "./rlimits.ts";
import { parseSelinuxLabel } from "./selinux-label.ts";
import {
  CONSOLE_MODES,
  LINK_JOURNAL_MODES,
  OWNERSHIP_MODES,
  RESOLV_CONF_MODES,
  SETTINGS_MODES,
  TIMEZONE_MODES,
  VOLATILE_MODES,
  type Settings,
  type VolatileMode,
} from "./settings.ts";
import {
  invalid,
  isValidEnvName,
  parseAbsolutePath,
  parseBoolean,
  parseChoice,
  parseEnvAssignment,
  parseHostname,
  parseInterfaceName,
  parseMachineName,
  parseOomScoreAdjust,
  parsePersonality,
  parsePivotRoot,
  parseProperty,
  parseSignal,
  parseSlice,
  parseSyscallFilter,
  parseUserName,
  parseUuid,
  parseVethExtra,
  signalTable,
} from "./values.ts";

/** What the command line asks for. */
export type NspawnAction =
  | { action: "help" }
  | { action: "version" }
  /** Print these lines and exit 0 (e.g. --capability=help). */
  | { action: "list"; lines: string[] }
  | { action: "run"; settings: Settings };

/** The parser's state while one option is applied. */
export interface CliState {
  readonly s: Settings;
  /** The option's argument ("" when it has none). */
  readonly v: string;
  /** The argument, undefined when an optional one was not given. */
  readonly value: string | undefined;
  /** How the user wrote the option (`-D`, `--directory`). */
  readonly spelling: string;
  readonly ctx: ErrorContext;
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  set<K extends keyof Settings>(key: K, value: Settings[K]): void;
}

export const HELP_GROUPS = [
  "",
  "Image",
  "Execution",
  "System identity",
  "Properties",
  "User namespacing",
  "Networking",
  "Security",
  "Resources",
  "Integration",
  "Mounts",
  "Input/Output",
  "Credentials",
] as const;
export type HelpGroup = (typeof HELP_GROUPS)[number];

export interface NspawnOption {
  /** Stable identifier. */
  id: string;
  long?: string;
  short?: string;
  arg: ArgKind;
  group: HelpGroup;
  /** `--help` lines: the option as written (default: the names and `=ARG`) and what it does. */
  help: Array<{ syntax?: string; text: string }>;
  /** The argument's name in the default syntax (`PATH`). */
  argName?: string;
  /** The fixed set of values it takes: completion offers them, the man page lists them. */
  choices?: readonly string[];
  /** What `OPTION=help` prints, one per line (exit 0): for the options nspawn 252 answers it for (its DUMP_STRING_TABLE lists). */
  helpList?: () => readonly string[];
  /** Completion of the argument when there are no fixed choices. */
  complete?: "directory" | "file" | "machine" | "image" | "interface" | "signal" | "capability" | "user";
  /** Apply it from the command line; absent = refused at run time (not offered by machina). */
  cli?: (c: CliState) => NspawnAction | void;
  /** The .nspawn keys that set the same thing. */
  keys?: KeySpec[];
}

// ------------------------------------------------------------------ helpers

const GRANTS_CAPS = "grants capabilities beyond nspawn's default set";
const HOST_FILES = "exposes host files or directories, or hides parts of the container's tree";
const HOST_NET = "creates or moves network interfaces on the host, or opens host ports";
const RESOURCES = "raises resource limits or priorities beyond the defaults";
const priv = (why: string, rule: PrivilegeRule = "privileged") => ({ rule, why });

/** A key of a row: the row's flag is filled in when the table is assembled. */
type RowKey = { core: KeyCore; sample: string; privileged?: KeySpec["privileged"] };
const key = (core: KeyCore, sample: string, privileged?: KeySpec["privileged"]): RowKey => ({ core, sample, ...(privileged ? { privileged } : {}) });

interface RowInput extends Omit<NspawnOption, "keys" | "help"> {
  help: string | NspawnOption["help"];
  keys?: RowKey[];
}

/**
 * The row from its literal, completed in place (the literal is the row's own): every command
 * builds the table as it starts, and copying each row's fields cost that ~0.5 ms.
 */
function row(r: RowInput): NspawnOption {
  const o = r as unknown as { help: NspawnOption["help"]; keys?: KeySpec[] };
  if (typeof r.help === "string") o.help = [{ text: r.help }];
  if (r.keys !== undefined) {
    const flag = r.long !== undefined ? `--${r.long}${r.arg === "none" ? "" : "="}` : r.short !== undefined ? `-${r.short}` : "COMMAND [ARGS…]";
    o.keys = r.keys.map((k): KeySpec => ({ ...k.core, flag, sample: k.sample, ...(k.privileged ? { privileged: k.privileged } : {}) }));
  }
  return r as unknown as NspawnOption;
}

/** A flag that sets a boolean field. */
const flagOn = (field: "quiet" | "readOnly" | "asPid2" | "boot" | "keepUnit" | "privateNetwork" | "ephemeral" | "networkVeth") => (c: CliState) =>
  c.set(field, true);

/** One of the choices (`=help` lists them: helpListOf). */
function choice<K extends keyof Settings>(field: K, choices: readonly string[]) {
  return (c: CliState): void => c.set(field, parseChoice(c.v, choices, c.ctx) as Settings[K]);
}

/** What `OPTION=help` lists for a row (only the options systemd-nspawn 252 answers `help` for). */
export function helpListOf(r: NspawnOption): readonly string[] | undefined {
  return r.helpList?.();
}

/**
 * A path the command line gave, made absolute against the caller's working directory (as nspawn's
 * parse_path_argument: "." segments and repeated slashes dropped, ".." kept).
 */
export function absolutize(path: string, cwd: string): string {
  const abs = path.startsWith("/") ? path : `${cwd}/${path}`;
  const out = abs
    .replace(/\/+/g, "/")
    .replace(/\/\.(?=\/|$)/g, "")
    .replace(/\/+/g, "/");
  return out.length > 1 ? out.replace(/\/$/, "") || "/" : out === "" ? "/" : out;
}

/** `IF[:NAME]`: a host interface, optionally renamed in the container. */
function parseInterfaceArg(value: string, ctx: ErrorContext): string {
  const [host = "", inner, extra] = value.split(":");
  if (extra !== undefined) throw usageError(`invalid value ${JSON.stringify(value)} for ${ctx.flag}: expected IF[:NAME]`, ctx);
  parseInterfaceName(host, ctx);
  if (inner !== undefined) parseInterfaceName(inner, ctx);
  return value;
}

/** yes/no/state/overlay, booleans meaning yes/no; no value = yes. */
export function parseVolatile(value: string | undefined, ctx: ErrorContext): VolatileMode {
  if (value === undefined) return "yes";
  if ((VOLATILE_MODES as readonly string[]).includes(value)) return value as VolatileMode;
  try {
    return parseBoolean(value, ctx) ? "yes" : "no";
  } catch {
    return parseChoice(value, VOLATILE_MODES, ctx);
  }
}

function parseZone(v: string, ctx: ErrorContext): string {
  if (!/^[A-Za-z0-9_-]{1,12}$/.test(v)) throw invalid(ctx, v, "a zone name of 1-12 letters, digits, '-' or '_'");
  return v;
}

function parseUserArg(v: string, ctx: ErrorContext): string {
  if (/[\s:\0]/.test(v)) throw invalid(ctx, v, "a user name or UID");
  return v;
}

const capabilityNames = () => CAPABILITIES.map((c) => c.toLowerCase());

// ------------------------------------------------------------------ the table

export const NSPAWN_TABLE: readonly NspawnOption[] = [
  row({ id: "help", long: "help", short: "h", arg: "none", group: "", help: "Show this help and exit", cli: () => ({ action: "help" }) }),
  row({ id: "version", long: "version", arg: "none", group: "", help: "Show the version and exit", cli: () => ({ action: "version" }) }),
  row({ id: "quiet", long: "quiet", short: "q", arg: "none", group: "", help: "Print no status messages", cli: flagOn("quiet") }),
  row({ id: "no-pager", long: "no-pager", arg: "none", group: "", help: "Accepted for compatibility (machina never pages)", cli: () => undefined }),
  row({
    id: "settings",
    long: "settings",
    arg: "required",
    group: "",
    argName: "MODE",
    choices: SETTINGS_MODES,
    help: "Use .nspawn settings files: yes, no, override, trusted",
    cli: (c) => {
      const lower = c.v.toLowerCase();
      c.set(
        "settingsMode",
        (SETTINGS_MODES as readonly string[]).includes(lower) ? (lower as Settings["settingsMode"]) : parseBoolean(c.v, c.ctx) ? "yes" : "no",
      );
    },
  }),

  // Image
  row({
    id: "directory",
    long: "directory",
    short: "D",
    arg: "required",
    group: "Image",
    argName: "PATH",
    complete: "directory",
    help: "Directory to use as the container's root (default: the image named by -M in /var/lib/machines, else the current directory)",
    cli: (c) => {
      if (c.v === "") throw usageError(`${c.spelling} needs a directory`, c.ctx);
      // the caller's directory: planning may run in another process (machinad's planner)
      c.set("directory", absolutize(c.v, c.cwd));
    },
  }),
  row({
    id: "template",
    long: "template",
    arg: "required",
    group: "Image",
    argName: "PATH",
    complete: "directory",
    help: "Populate a missing or empty root directory from PATH",
    cli: (c) => {
      if (c.v === "") throw usageError(`${c.spelling} needs a path`, c.ctx);
      c.set("template", parseAbsolutePath(absolutize(c.v, c.cwd), c.ctx));
    },
  }),
  row({
    id: "ephemeral",
    long: "ephemeral",
    short: "x",
    arg: "none",
    group: "Image",
    help: "Run on a throw-away copy of the root, removed on exit",
    cli: flagOn("ephemeral"),
    keys: [key(bool("Exec", "Ephemeral", "ephemeral"), "yes", priv("CVE-2026-40226: makes nspawn snapshot the image on the host"))],
  }),
  row({
    id: "image",
    long: "image",
    short: "i",
    arg: "required",
    group: "Image",
    argName: "PATH",
    complete: "file",
    help: "Disk image (.raw) to use as the root",
    cli: (c) => {
      if (c.v === "") throw usageError(`${c.spelling} needs a path`, c.ctx);
      c.set("image", parseAbsolutePath(absolutize(c.v, c.cwd), c.ctx));
    },
  }),
  row({
    id: "oci-bundle",
    long: "oci-bundle",
    arg: "required",
    group: "Image",
    argName: "PATH",
    complete: "directory",
    help: "Run an OCI runtime bundle (config.json + root); command-line options override its settings",
    cli: (c) => {
      if (c.v === "") throw usageError(`${c.spelling} needs a directory`, c.ctx);
      c.set("ociBundle", parseAbsolutePath(absolutize(c.v, c.cwd), c.ctx));
    },
  }),
  row({
    id: "read-only",
    long: "read-only",
    arg: "none",
    group: "Image",
    help: "Mount the root read-only",
    cli: flagOn("readOnly"),
    keys: [key(bool("Files", "ReadOnly", "readOnly"), "yes")],
  }),
  row({
    id: "volatile",
    long: "volatile",
    arg: "optional",
    group: "Image",
    argName: "MODE",
    choices: VOLATILE_MODES,
    helpList: () => VOLATILE_MODES,
    help: "Run with a volatile root: yes, state, overlay, no",
    cli: (c) => c.set("volatile", parseVolatile(c.value, c.ctx)),
    keys: [
      key(
        scalar("Files", "Volatile", "volatile", false, (v, ctx) => parseVolatile(v, ctx)),
        "state",
      ),
    ],
  }),
  row({ id: "root-hash", long: "root-hash", arg: "required", group: "Image", argName: "HASH", help: "dm-verity root hash" }),
  row({ id: "root-hash-sig", long: "root-hash-sig", arg: "required", group: "Image", argName: "SIG", help: "dm-verity signature" }),
  row({ id: "verity-data", long: "verity-data", arg: "required", group: "Image", argName: "PATH", help: "dm-verity data" }),
  row({
    id: "pivot-root",
    long: "pivot-root",
    arg: "required",
    group: "Image",
    help: [{ syntax: "--pivot-root=PATH[:PATH]", text: "Make PATH inside the image the root; optionally keep the old root at the second PATH" }],
    cli: (c) => c.set("pivotRoot", parsePivotRoot(c.v, c.ctx)),
    keys: [
      key(
        scalar("Exec", "PivotRoot", "pivotRoot", false, parsePivotRoot),
        "/sysroot",
        priv("CVE-2026-40226: changes which directory becomes the container's root"),
      ),
    ],
  }),

  // Execution
  row({
    id: "as-pid2",
    long: "as-pid2",
    short: "a",
    arg: "none",
    group: "Execution",
    help: "Run a minimal init as PID 1 and COMMAND as PID 2",
    cli: flagOn("asPid2"),
    keys: [key(startMode("asPid2", "boot", "ProcessTwo", "Boot"), "yes")],
  }),
  row({
    id: "boot",
    long: "boot",
    short: "b",
    arg: "none",
    group: "Execution",
    help: "Boot the image's init instead of running a command",
    cli: flagOn("boot"),
    keys: [key(startMode("boot", "asPid2", "Boot", "ProcessTwo"), "yes")],
  }),
  row({
    id: "parameters",
    arg: "none",
    group: "Execution",
    help: [],
    keys: [
      key(
        list("Exec", "Parameters", "command", (v, ctx) => words(v, ctx, "a command line with '…' or \"…\" quoting")),
        "/bin/sh -c 'echo hi'",
      ),
    ],
  }),
  row({
    id: "chdir",
    long: "chdir",
    arg: "required",
    group: "Execution",
    argName: "PATH",
    help: "Working directory inside the container",
    cli: (c) => c.set("chdir", parseAbsolutePath(c.v, c.ctx)),
    keys: [key(scalar("Exec", "WorkingDirectory", "chdir", true, parseAbsolutePath), "/srv")],
  }),
  row({
    id: "setenv",
    long: "setenv",
    short: "E",
    arg: "required",
    group: "Execution",
    help: [{ syntax: "-E --setenv=NAME[=VALUE]", text: "Set a variable for PID 1 (NAME alone passes the caller's value)" }],
    cli: (c) => {
      const entry = parseEnvAssignment(c.v, c.hostEnv, c.ctx);
      if (entry !== undefined) c.set("environment", [...c.s.environment, entry]);
    },
    keys: [
      key(
        list("Exec", "Environment", "environment", (v, ctx) =>
          words(v, ctx, "NAME=VALUE assignments").map((w) => {
            const eq = w.indexOf("=");
            if (eq <= 0 || !isValidEnvName(w.slice(0, eq)) || /[\x00-\x08\x0a-\x1f\x7f]/.test(w))
              throw invalid(ctx, v, "NAME=VALUE assignments, separated by spaces (quote values with spaces), NAME a valid variable name");
            return w;
          }),
        ),
        "FOO=bar",
      ),
    ],
  }),
  row({
    id: "user",
    long: "user",
    short: "u",
    arg: "required",
    group: "Execution",
    argName: "USER",
    complete: "user",
    help: "Run COMMAND as USER (a name or UID of the container)",
    cli: (c) => {
      if (c.v === "" || /[\s:\0]/.test(c.v)) throw usageError(`invalid user name ${JSON.stringify(c.v)} for ${c.spelling}`, c.ctx);
      c.set("user", c.v);
    },
    keys: [key(scalar("Exec", "User", "user", true, parseUserArg), "nobody")],
  }),
  row({
    id: "kill-signal",
    long: "kill-signal",
    arg: "required",
    group: "Execution",
    argName: "SIGNAL",
    complete: "signal",
    helpList: signalTable,
    help: "Signal that asks PID 1 to stop (default: SIGRTMIN+3 with --boot, SIGKILL otherwise)",
    cli: (c) => c.set("killSignal", parseSignal(c.v, c.ctx)),
    keys: [key(scalar("Exec", "KillSignal", "killSignal", true, parseSignal), "SIGINT")],
  }),
  row({
    id: "notify-ready",
    long: "notify-ready",
    arg: "required",
    group: "Execution",
    argName: "BOOL",
    choices: ["yes", "no"],
    help: "Consider the container ready only when PID 1 sends READY=1",
    cli: (c) => c.set("notifyReady", parseBoolean(c.v, c.ctx)),
    keys: [key(bool("Exec", "NotifyReady", "notifyReady"), "yes")],
  }),
  row({
    id: "suppress-sync",
    long: "suppress-sync",
    arg: "required",
    group: "Execution",
    argName: "BOOL",
    choices: ["yes", "no"],
    help: "Turn sync(), fsync() and friends into no-ops",
    cli: (c) => c.set("suppressSync", parseBoolean(c.v, c.ctx)),
    keys: [key(bool("Exec", "SuppressSync", "suppressSync"), "yes")],
  }),

  // System identity
  row({
    id: "machine",
    long: "machine",
    short: "M",
    arg: "required",
    group: "System identity",
    argName: "NAME",
    complete: "image",
    help: "Machine name (default: the directory's name); also the hostname unless --hostname is given",
    cli: (c) => c.set("machine", parseMachineName(c.v, c.ctx)),
  }),
  row({
    id: "hostname",
    long: "hostname",
    arg: "required",
    group: "System identity",
    argName: "NAME",
    help: "Hostname inside the container",
    cli: (c) => c.set("hostname", parseHostname(c.v, c.ctx)),
    keys: [key(scalar("Exec", "Hostname", "hostname", true, parseHostname), "box")],
  }),
  row({
    id: "uuid",
    long: "uuid",
    arg: "required",
    group: "System identity",
    argName: "UUID",
    help: "The container's UUID ($container_uuid)",
    cli: (c) => c.set("uuid", parseUuid(c.v, c.ctx)),
    keys: [
      key(
        scalar("Exec", "MachineID", "uuid", false, parseUuid),
        "0123456789abcdef0123456789abcdef",
        priv("could impersonate another machine's identity (journal, registration)"),
      ),
    ],
  }),

  // Properties
  row({
    id: "slice",
    long: "slice",
    short: "S",
    arg: "required",
    group: "Properties",
    argName: "SLICE",
    help: "Put the container's cgroup under SLICE",
    cli: (c) => c.set("slice", parseSlice(c.v, c.ctx)),
  }),
  row({
    id: "property",
    long: "property",
    arg: "required",
    group: "Properties",
    argName: "NAME=VALUE",
    help: "Resource control: MemoryMax, MemoryHigh, TasksMax, CPUQuota, CPUWeight, IOWeight",
    cli: (c) => c.set("properties", [...c.s.properties, parseProperty(c.v, c.ctx)]),
  }),
  row({
    id: "register",
    long: "register",
    arg: "required",
    group: "Properties",
    argName: "BOOL",
    choices: ["yes", "no"],
    help: "Register with the host's machine manager",
    cli: (c) => c.set("register", parseBoolean(c.v, c.ctx)),
  }),
  row({
    id: "keep-unit",
    long: "keep-unit",
    arg: "none",
    group: "Properties",
    help: "Run as part of the caller's service: on reboot of the container exit with 133 instead of restarting",
    cli: flagOn("keepUnit"),
  }),

  // User namespacing
  row({
    id: "private-users",
    long: "private-users",
    arg: "optional",
    group: "User namespacing",
    choices: ["no", "yes", "pick", "identity"],
    help: [
      { syntax: "--private-users=no", text: "No user namespace (default)" },
      {
        syntax: "--private-users=yes|pick|identity",
        text: "Use a user namespace; take the ID range from the root's owner (yes), pick a free one (pick), or map IDs to themselves (identity)",
      },
      { syntax: "--private-users=UIDBASE[:NUIDS]", text: "Use the given host ID range (65536 IDs by default)" },
    ],
    cli: (c) => c.set("privateUsers", c.value === undefined ? { mode: "yes" } : parsePrivateUsers(c.v, c.ctx)),
    keys: [key(scalar("Exec", "PrivateUsers", "privateUsers", false, parsePrivateUsers), "pick", priv("chooses which host UIDs the container's users map to"))],
  }),
  row({
    id: "private-users-ownership",
    long: "private-users-ownership",
    arg: "required",
    group: "User namespacing",
    argName: "MODE",
    choices: OWNERSHIP_MODES,
    helpList: () => OWNERSHIP_MODES,
    help: "Make the tree's ownership fit the range: off, chown, map (ID-mapped mount), auto",
    cli: choice("privateUsersOwnership", OWNERSHIP_MODES),
    keys: [
      key(
        scalar("Files", "PrivateUsersOwnership", "privateUsersOwnership", false, (v, ctx) => parseChoice(v, OWNERSHIP_MODES, ctx)),
        "chown",
        priv("makes nspawn chown the image's files on the host"),
      ),
    ],
  }),
  row({
    id: "private-users-chown",
    long: "private-users-chown",
    arg: "none",
    group: "User namespacing",
    help: "Same as --private-users-ownership=chown",
    cli: (c) => c.set("privateUsersOwnership", "chown"),
    keys: [
      key(
        scalar("Files", "PrivateUsersChown", "privateUsersOwnership", false, (v, ctx) => (parseBoolean(v, ctx) ? "chown" : "off")),
        "yes",
        priv("makes nspawn chown the image's files on the host"),
      ),
    ],
  }),
  row({
    id: "U",
    short: "U",
    arg: "none",
    group: "User namespacing",
    help: "Same as --private-users=pick --private-users-ownership=auto",
    cli: (c) => {
      c.set("privateUsers", { mode: "pick" });
      c.set("privateUsersOwnership", "auto");
    },
  }),

  // Networking
  row({
    id: "private-network",
    long: "private-network",
    arg: "none",
    group: "Networking",
    help: "Give the container only a loopback device",
    cli: flagOn("privateNetwork"),
    keys: [key(bool("Network", "Private", "privateNetwork"), "yes", priv(HOST_NET))],
  }),
  row({
    id: "network-interface",
    long: "network-interface",
    arg: "required",
    group: "Networking",
    argName: "INTERFACE[:NAME]",
    complete: "interface",
    help: "Move a host interface into the container",
    cli: (c) => c.set("networkInterfaces", [...c.s.networkInterfaces, parseInterfaceArg(c.v, c.ctx)]),
    keys: [key(interfaceList("Interface", "networkInterfaces"), "eth1", priv(HOST_NET))],
  }),
  row({
    id: "network-macvlan",
    long: "network-macvlan",
    arg: "required",
    group: "Networking",
    argName: "INTERFACE[:NAME]",
    complete: "interface",
    help: "Give the container a MACVLAN interface on INTERFACE",
    cli: (c) => c.set("networkMacvlan", [...c.s.networkMacvlan, parseInterfaceArg(c.v, c.ctx)]),
    keys: [key(interfaceList("MACVLAN", "networkMacvlan"), "eth2", priv(HOST_NET))],
  }),
  row({
    id: "network-ipvlan",
    long: "network-ipvlan",
    arg: "required",
    group: "Networking",
    argName: "INTERFACE[:NAME]",
    complete: "interface",
    help: "Give the container an IPVLAN interface on INTERFACE",
    cli: (c) => c.set("networkIpvlan", [...c.s.networkIpvlan, parseInterfaceArg(c.v, c.ctx)]),
    keys: [key(interfaceList("IPVLAN", "networkIpvlan"), "eth3", priv(HOST_NET))],
  }),
  row({
    id: "network-veth",
    long: "network-veth",
    short: "n",
    arg: "none",
    group: "Networking",
    help: "Connect host and container with a veth pair",
    cli: flagOn("networkVeth"),
    keys: [key(bool("Network", "VirtualEthernet", "networkVeth"), "yes", priv(HOST_NET))],
  }),
  row({
    id: "network-veth-extra",
    long: "network-veth-extra",
    arg: "required",
    group: "Networking",
    argName: "HOSTIF[:CONTAINERIF]",
    help: "Add another veth pair",
    cli: (c) => c.set("networkVethExtra", [...c.s.networkVethExtra, parseVethExtra(c.v, c.ctx)]),
    keys: [
      key(
        list("Network", "VirtualEthernetExtra", "networkVethExtra", (v, ctx) => [parseVethExtra(v, ctx)]),
        "vx0:host1",
        priv(HOST_NET),
      ),
    ],
  }),
  row({
    id: "network-bridge",
    long: "network-bridge",
    arg: "required",
    group: "Networking",
    argName: "INTERFACE",
    complete: "interface",
    help: "Attach the container's veth to an existing bridge",
    cli: (c) => c.set("networkBridge", parseInterfaceName(c.v, c.ctx)),
    keys: [key(scalar("Network", "Bridge", "networkBridge", true, parseInterfaceName), "br0", priv(HOST_NET))],
  }),
  row({
    id: "network-zone",
    long: "network-zone",
    arg: "required",
    group: "Networking",
    argName: "NAME",
    help: "Attach the container's veth to the bridge of a zone, created when the first container joins it",
    cli: (c) => {
      if (!/^[A-Za-z0-9_-]{1,12}$/.test(c.v))
        throw usageError(`invalid zone name ${JSON.stringify(c.v)} for ${c.spelling}: expected 1-12 letters, digits, '-' or '_'`, c.ctx);
      c.set("networkZone", c.v);
    },
    keys: [key(scalar("Network", "Zone", "networkZone", true, parseZone), "web", priv(HOST_NET))],
  }),
  row({
    id: "network-namespace-path",
    long: "network-namespace-path",
    arg: "required",
    group: "Networking",
    argName: "PATH",
    complete: "file",
    help: "Join the network namespace at PATH",
    cli: (c) => c.set("networkNamespacePath", parseAbsolutePath(c.v, c.ctx)),
  }),
  row({
    id: "port",
    long: "port",
    short: "p",
    arg: "required",
    group: "Networking",
    argName: "[PROTOCOL:]HOSTPORT[:CONTAINERPORT]",
    help: "Forward a host port to the container",
    cli: (c) => c.set("ports", [...c.s.ports, parsePort(c.v, c.ctx)]),
    keys: [
      key(
        list("Network", "Port", "ports", (v, ctx) => [parsePort(v, ctx)]),
        "tcp:8080:80",
        priv(HOST_NET),
      ),
    ],
  }),

  // Security
  row({
    id: "capability",
    long: "capability",
    arg: "required",
    group: "Security",
    argName: "CAP",
    complete: "capability",
    helpList: capabilityNames,
    help: "Keep CAP in addition to the default set",
    cli: (c) => {
      const caps = parseCapabilityList(c.v, c.ctx);
      if (caps === "all") throw usageError(`${c.spelling}=all is not allowed: name the capabilities to add`, c.ctx);
      c.set("capabilities", [...c.s.capabilities, ...caps]);
    },
    keys: [
      key(
        list("Exec", "Capability", "capabilities", (v, ctx) => capabilityWords(v, ctx, true)),
        "CAP_NET_ADMIN",
        priv(GRANTS_CAPS),
      ),
    ],
  }),
  row({
    id: "drop-capability",
    long: "drop-capability",
    arg: "required",
    group: "Security",
    argName: "CAP",
    complete: "capability",
    helpList: capabilityNames,
    help: "Drop CAP from the default set ('all' drops every one)",
    cli: (c) => {
      const caps = parseCapabilityList(c.v, c.ctx);
      const prev = c.s.dropCapabilities;
      c.set("dropCapabilities", caps === "all" || prev === "all" ? "all" : [...prev, ...caps]);
    },
    keys: [
      key(
        list("Exec", "DropCapability", "dropCapabilities", (v, ctx) => capabilityWords(v, ctx, true)),
        "CAP_MKNOD",
      ),
    ],
  }),
  row({
    id: "ambient-capability",
    long: "ambient-capability",
    arg: "required",
    group: "Security",
    argName: "CAP",
    complete: "capability",
    helpList: capabilityNames,
    help: "Raise CAP as an ambient capability for COMMAND",
    cli: (c) => {
      const caps = parseCapabilityList(c.v, c.ctx);
      if (caps === "all") throw usageError(`${c.spelling}=all is not allowed: name the capabilities`, c.ctx);
      c.set("ambientCapabilities", [...c.s.ambientCapabilities, ...caps]);
    },
    keys: [
      key(
        list("Exec", "AmbientCapability", "ambientCapabilities", (v, ctx) => capabilityWords(v, ctx, false)),
        "CAP_CHOWN",
        priv(GRANTS_CAPS),
      ),
    ],
  }),
  row({
    id: "no-new-privileges",
    long: "no-new-privileges",
    arg: "required",
    group: "Security",
    argName: "BOOL",
    choices: ["yes", "no"],
    help: "Set PR_SET_NO_NEW_PRIVS for the payload",
    cli: (c) => c.set("noNewPrivileges", parseBoolean(c.v, c.ctx)),
    keys: [key(bool("Exec", "NoNewPrivileges", "noNewPrivileges"), "yes")],
  }),
  row({
    id: "system-call-filter",
    long: "system-call-filter",
    arg: "required",
    group: "Security",
    help: [{ syntax: "--system-call-filter=LIST|~LIST", text: "Allow, or with '~' deny, system calls and @groups" }],
    cli: (c) => {
      const f = parseSyscallFilter(c.v, c.ctx);
      const cur = c.s.systemCallFilter;
      c.set("systemCallFilter", f.deny ? { allow: cur.allow, deny: [...cur.deny, ...f.names] } : { allow: [...cur.allow, ...f.names], deny: cur.deny });
    },
    keys: [
      key(
        {
          section: "Exec",
          key: "SystemCallFilter",
          emptyResets: true,
          apply: (acc, v, ctx, src) => {
            const f = parseSyscallFilter(v, ctx);
            acc.push("systemCallFilter", f.deny ? "deny" : "allow", f.names, src);
          },
        },
        "@mount",
        priv("an allow-list permits system calls nspawn blocks by default", "allow-list-only"),
      ),
    ],
  }),
  row({
    id: "selinux-context",
    long: "selinux-context",
    short: "Z",
    arg: "required",
    group: "Security",
    argName: "LABEL",
    help: "Run the payload (and what machinactl shell enters) with this SELinux label (needs SELinux enabled)",
    cli: (c) => c.set("selinuxContext", parseSelinuxLabel(c.v, c.ctx)),
  }),
  row({
    id: "selinux-apifs-context",
    long: "selinux-apifs-context",
    short: "L",
    arg: "required",
    group: "Security",
    argName: "LABEL",
    help: "SELinux context of the API file systems (tmpfs, devpts) (needs SELinux enabled)",
    cli: (c) => c.set("selinuxApifsContext", parseSelinuxLabel(c.v, c.ctx)),
  }),

  // Resources
  row({
    id: "rlimit",
    long: "rlimit",
    arg: "required",
    group: "Resources",
    argName: "NAME=SOFT[:HARD]",
    helpList: () => Object.keys(RLIMITS).sort((a, b) => RLIMITS[a]! - RLIMITS[b]!),
    help: "Resource limit for the payload (e.g. NOFILE=1024:4096)",
    cli: (c) => {
      const limit = parseRlimitAssignment(c.v, c.ctx);
      c.set("rlimits", [...c.s.rlimits.filter((l) => l.resource !== limit.resource), limit]);
    },
    keys: Object.keys(RLIMITS).map((name) =>
      key(
        {
          section: "Exec",
          key: `Limit${name}`,
          emptyResets: false,
          apply: (acc, v, ctx, src) => {
            acc.reset("rlimits", name);
            acc.push("rlimits", name, [parseRlimitValue(name, v, ctx)], src);
          },
        },
        name === "NICE" ? "10:20" : "1024:4096",
        priv(RESOURCES),
      ),
    ),
  }),
  row({
    id: "oom-score-adjust",
    long: "oom-score-adjust",
    arg: "required",
    group: "Resources",
    argName: "VALUE",
    help: "OOM score adjustment for the payload (-1000..1000)",
    cli: (c) => c.set("oomScoreAdjust", parseOomScoreAdjust(c.v, c.ctx)),
    keys: [key(scalar("Exec", "OOMScoreAdjust", "oomScoreAdjust", false, parseOomScoreAdjust), "-500", priv(RESOURCES))],
  }),
  row({
    id: "cpu-affinity",
    long: "cpu-affinity",
    arg: "required",
    group: "Resources",
    argName: "CPUS",
    help: "CPUs the container may run on (e.g. 0-1,3)",
    cli: (c) => c.set("cpuAffinity", parseCpuSet(c.v, c.ctx)),
    keys: [key(scalar("Exec", "CPUAffinity", "cpuAffinity", true, parseCpuSet), "0-1", priv(RESOURCES))],
  }),
  row({
    id: "personality",
    long: "personality",
    arg: "required",
    group: "Resources",
    argName: "ARCH",
    help: "Report ARCH as the architecture (e.g. x86)",
    cli: (c) => c.set("personality", parsePersonality(c.v, c.ctx)),
    keys: [key(scalar("Exec", "Personality", "personality", true, parsePersonality), "x86")],
  }),

  // Integration
  row({
    id: "resolv-conf",
    long: "resolv-conf",
    arg: "required",
    group: "Integration",
    argName: "MODE",
    choices: RESOLV_CONF_MODES,
    helpList: () => RESOLV_CONF_MODES,
    help: `/etc/resolv.conf: ${RESOLV_CONF_MODES.join(", ")} (default)`,
    cli: choice("resolvConf", RESOLV_CONF_MODES),
    keys: [
      key(
        scalar("Exec", "ResolvConf", "resolvConf", false, (v, ctx) => parseChoice(v, RESOLV_CONF_MODES, ctx)),
        "off",
      ),
    ],
  }),
  row({
    id: "timezone",
    long: "timezone",
    arg: "required",
    group: "Integration",
    argName: "MODE",
    choices: TIMEZONE_MODES,
    helpList: () => TIMEZONE_MODES,
    help: `/etc/localtime: ${TIMEZONE_MODES.join(", ")}`,
    cli: choice("timezone", TIMEZONE_MODES),
    keys: [
      key(
        scalar("Exec", "Timezone", "timezone", false, (v, ctx) => parseChoice(v, TIMEZONE_MODES, ctx)),
        "off",
      ),
    ],
  }),
  row({
    id: "link-journal",
    long: "link-journal",
    arg: "required",
    group: "Integration",
    argName: "MODE",
    choices: LINK_JOURNAL_MODES,
    help: `Make the container's journal visible on the host: ${LINK_JOURNAL_MODES.join(", ")}`,
    cli: choice("linkJournal", LINK_JOURNAL_MODES),
    keys: [
      key(
        scalar("Exec", "LinkJournal", "linkJournal", false, (v, ctx) => parseChoice(v, LINK_JOURNAL_MODES, ctx)),
        "no",
        priv("makes the container's journal appear in, or bind-mounts, the host's /var/log/journal"),
      ),
    ],
  }),
  row({ id: "j", short: "j", arg: "none", group: "Integration", help: "Same as --link-journal=try-guest", cli: (c) => c.set("linkJournal", "try-guest") }),

  // Mounts
  row({
    id: "bind",
    long: "bind",
    arg: "required",
    group: "Mounts",
    help: [
      {
        syntax: "--bind=PATH[:PATH[:OPTIONS]]",
        text: "Bind-mount a host path into the container ('+PATH' is inside the image, an empty PATH a temporary directory; OPTIONS: rbind, norbind, idmap, noidmap, rootidmap)",
      },
    ],
    cli: (c) => c.set("binds", [...c.s.binds, parseBind(c.v, false, c.ctx, c.cwd)]),
    keys: [
      key(
        list("Files", "Bind", "binds", (v, ctx) => [bindSource(v, false, ctx)]),
        "/srv/a:/a",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "bind-ro",
    long: "bind-ro",
    arg: "required",
    group: "Mounts",
    help: [{ syntax: "--bind-ro=PATH[:PATH[:OPTIONS]]", text: "The same, read-only" }],
    cli: (c) => c.set("binds", [...c.s.binds, parseBind(c.v, true, c.ctx, c.cwd)]),
    keys: [
      key(
        list("Files", "BindReadOnly", "binds", (v, ctx) => [bindSource(v, true, ctx)]),
        "/srv/b:/b",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "inaccessible",
    long: "inaccessible",
    arg: "required",
    group: "Mounts",
    argName: "PATH",
    help: "Hide PATH behind an inaccessible node",
    cli: (c) => c.set("inaccessible", [...c.s.inaccessible, parseAbsolutePath(c.v, c.ctx)]),
    keys: [
      key(
        list("Files", "Inaccessible", "inaccessible", (v, ctx) => [parseAbsolutePath(v, ctx)]),
        "/secret",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "tmpfs",
    long: "tmpfs",
    arg: "required",
    group: "Mounts",
    argName: "PATH[:OPTIONS]",
    help: "Mount a tmpfs at PATH",
    cli: (c) => c.set("tmpfs", [...c.s.tmpfs, parseTmpfs(c.v, c.ctx)]),
    keys: [
      key(
        list("Files", "TemporaryFileSystem", "tmpfs", (v, ctx) => [parseTmpfs(v, ctx)]),
        "/tmp/x:mode=0700",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "overlay",
    long: "overlay",
    arg: "required",
    group: "Mounts",
    help: [{ syntax: "--overlay=PATH[:PATH...]:PATH", text: "Overlay mount: lower layers, the writable upper layer, then the destination" }],
    cli: (c) => c.set("overlays", [...c.s.overlays, parseOverlay(c.v, false, c.ctx)]),
    keys: [
      key(
        list("Files", "Overlay", "overlays", (v, ctx) => [parseOverlay(v, false, ctx)]),
        "/lower:/upper:/data",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "overlay-ro",
    long: "overlay-ro",
    arg: "required",
    group: "Mounts",
    help: [{ syntax: "--overlay-ro=PATH[:PATH...]:PATH", text: "Read-only overlay mount: layers, then the destination" }],
    cli: (c) => c.set("overlays", [...c.s.overlays, parseOverlay(c.v, true, c.ctx)]),
    keys: [
      key(
        list("Files", "OverlayReadOnly", "overlays", (v, ctx) => [parseOverlay(v, true, ctx)]),
        "/lower:/data",
        priv(HOST_FILES),
      ),
    ],
  }),
  row({
    id: "bind-user",
    long: "bind-user",
    arg: "required",
    group: "Mounts",
    argName: "NAME",
    complete: "user",
    help: "Make a host user and its home available inside",
    cli: (c) => c.set("bindUsers", [...c.s.bindUsers, parseUserName(c.v, c.ctx)]),
    keys: [
      key(
        list("Files", "BindUser", "bindUsers", (v, ctx) => [parseUserName(v, ctx)]),
        "alice",
        priv("copies host users (and their home directories) into the container"),
      ),
    ],
  }),

  // Input/Output
  row({
    id: "console",
    long: "console",
    arg: "required",
    group: "Input/Output",
    argName: "MODE",
    choices: CONSOLE_MODES,
    helpList: () => [...CONSOLE_MODES].sort(),
    help: "interactive (a terminal), read-only (output only), passive (nothing), pipe (stdio passed through) or autopipe (interactive on a terminal, pipe otherwise)",
    cli: choice("console", CONSOLE_MODES),
  }),
  row({ id: "pipe", long: "pipe", short: "P", arg: "none", group: "Input/Output", help: "Same as --console=pipe", cli: (c) => c.set("console", "pipe") }),

  // Credentials
  row({
    id: "set-credential",
    long: "set-credential",
    arg: "required",
    group: "Credentials",
    argName: "ID:VALUE",
    help: "Give the container credential ID with VALUE",
    cli: (c) => {
      const cred = parseCredential(c.v, false, c.ctx);
      c.set("credentials", [...c.s.credentials.filter((x) => x.id !== cred.id), cred]);
    },
  }),
  row({
    id: "load-credential",
    long: "load-credential",
    arg: "required",
    group: "Credentials",
    argName: "ID:PATH",
    help: "Give the container credential ID read from PATH",
    cli: (c) => {
      const cred = parseCredential(c.v, true, c.ctx);
      c.set("credentials", [...c.s.credentials.filter((x) => x.id !== cred.id), cred]);
    },
  }),
];

/** Every .nspawn key, in table order. */
export const NSPAWN_FILE_KEYS: readonly KeySpec[] = NSPAWN_TABLE.flatMap((r) => r.keys ?? []);

/** Rows by id. */
export const NSPAWN_ROWS: ReadonlyMap<string, NspawnOption> = new Map(NSPAWN_TABLE.map((r) => [r.id, r]));
