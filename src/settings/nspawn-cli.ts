/**
 * `machina-nspawn` command line -> Settings. Pure: the caller passes argv and the environment.
 */
import { usageError, type ErrorContext } from "../errors.ts";
import { getopt } from "./getopt.ts";
import { NSPAWN_OPTIONS } from "./nspawn-options.ts";
import { CAPABILITIES, parseCapabilityList } from "./capabilities.ts";
import { RLIMITS, parseRlimitAssignment } from "./rlimits.ts";
import {
  CONSOLE_MODES, LINK_JOURNAL_MODES, OWNERSHIP_MODES, RESOLV_CONF_MODES, SETTINGS_MODES, TIMEZONE_MODES,
  VOLATILE_MODES, defaultSettings, type Settings, type VolatileMode,
} from "./settings.ts";
import {
  parseBind, parseCpuSet, parseCredential, parseOverlay, parsePort, parsePrivateUsers, parseTmpfs,
} from "./compound-values.ts";
import {
  parseAbsolutePath, parseBoolean, parseChoice, parseEnvAssignment, parseHostname, parseInterfaceName,
  parseMachineName, parseOomScoreAdjust, parsePersonality, parsePivotRoot, parseProperty, parseSignal,
  parseSlice, parseSyscallFilter, parseUserName, parseUuid, parseVethExtra, signalTable,
} from "./values.ts";

/**
 * The options systemd-nspawn 252 answers `=help` for: the choices, one per line, exit 0 (its
 * DUMP_STRING_TABLE lists; --console= sorted, --kill-signal= every number 0…64 by its name).
 */
const CAP_NAMES = () => CAPABILITIES.map((c) => c.toLowerCase());
export const HELP_LISTS: Readonly<Record<string, () => readonly string[]>> = {
  capability: CAP_NAMES,
  "drop-capability": CAP_NAMES,
  "ambient-capability": CAP_NAMES,
  console: () => [...CONSOLE_MODES].sort(),
  "kill-signal": signalTable,
  "private-users-ownership": () => OWNERSHIP_MODES,
  "resolv-conf": () => RESOLV_CONF_MODES,
  rlimit: () => Object.keys(RLIMITS).sort((a, b) => RLIMITS[a]! - RLIMITS[b]!),
  timezone: () => TIMEZONE_MODES,
  volatile: () => VOLATILE_MODES,
};

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

export type NspawnAction =
  | { action: "help" }
  | { action: "version" }
  /** Print these lines and exit 0 (e.g. --capability=help). */
  | { action: "list"; lines: string[] }
  | { action: "run"; settings: Settings };

export function parseNspawnCommandLine(
  argv: readonly string[],
  hostEnv: Readonly<Record<string, string | undefined>>,
  cwd = "/",
): NspawnAction {
  const { options, operands } = getopt(argv, NSPAWN_OPTIONS);
  const s = defaultSettings();
  const set = <K extends keyof Settings>(key: K, value: Settings[K], flag: string) => {
    s[key] = value;
    s.provenance.set(key, { kind: "cli", flag });
  };

  for (const { id, value, spelling } of options) {
    const ctx: ErrorContext = { flag: spelling };
    const v = value ?? "";
    const helpList = value === "help" && Object.hasOwn(HELP_LISTS, id) ? HELP_LISTS[id] : undefined;
    if (helpList !== undefined) return { action: "list", lines: [...helpList()] };
    switch (id) {
      case "help":
        return { action: "help" };
      case "version":
        return { action: "version" };
      case "quiet":
        set("quiet", true, spelling);
        break;
      case "no-pager":
        break;
      case "settings": {
        const lower = v.toLowerCase();
        const mode = (SETTINGS_MODES as readonly string[]).includes(lower)
          ? (lower as Settings["settingsMode"])
          : parseBoolean(v, { ...ctx }) ? "yes" : "no";
        set("settingsMode", mode, spelling);
        break;
      }
      case "directory":
        if (v === "") throw usageError(`${spelling} needs a directory`, ctx);
        set("directory", v, spelling);
        break;
      case "read-only":
        set("readOnly", true, spelling);
        break;
      case "as-pid2":
        set("asPid2", true, spelling);
        break;
      case "boot":
        set("boot", true, spelling);
        break;
      case "chdir":
        set("chdir", parseAbsolutePath(v, ctx), spelling);
        break;
      case "setenv": {
        const entry = parseEnvAssignment(v, hostEnv, ctx);
        if (entry !== undefined) set("environment", [...s.environment, entry], spelling);
        break;
      }
      case "user":
        if (v === "" || /[\s:\0]/.test(v)) throw usageError(`invalid user name ${JSON.stringify(v)} for ${spelling}`, ctx);
        set("user", v, spelling);
        break;
      case "kill-signal":
        set("killSignal", parseSignal(v, ctx), spelling);
        break;
      case "notify-ready":
        set("notifyReady", parseBoolean(v, ctx), spelling);
        break;
      case "machine":
        set("machine", parseMachineName(v, ctx), spelling);
        break;
      case "hostname":
        set("hostname", parseHostname(v, ctx), spelling);
        break;
      case "uuid":
        set("uuid", parseUuid(v, ctx), spelling);
        break;
      case "register":
        set("register", parseBoolean(v, ctx), spelling);
        break;
      case "keep-unit":
        set("keepUnit", true, spelling);
        break;
      case "private-network":
        set("privateNetwork", true, spelling);
        break;
      case "capability": {
        const caps = parseCapabilityList(v, ctx);
        if (caps === "all") throw usageError(`${spelling}=all is not allowed: name the capabilities to add`, ctx);
        set("capabilities", [...s.capabilities, ...caps], spelling);
        break;
      }
      case "drop-capability": {
        const caps = parseCapabilityList(v, ctx);
        const prev = s.dropCapabilities;
        set("dropCapabilities", caps === "all" || prev === "all" ? "all" : [...prev, ...caps], spelling);
        break;
      }
      case "ambient-capability": {
        const caps = parseCapabilityList(v, ctx);
        if (caps === "all") throw usageError(`${spelling}=all is not allowed: name the capabilities`, ctx);
        set("ambientCapabilities", [...s.ambientCapabilities, ...caps], spelling);
        break;
      }
      case "no-new-privileges":
        set("noNewPrivileges", parseBoolean(v, ctx), spelling);
        break;
      case "rlimit": {
        const limit = parseRlimitAssignment(v, ctx);
        set("rlimits", [...s.rlimits.filter((l) => l.resource !== limit.resource), limit], spelling);
        break;
      }
      case "resolv-conf":
        set("resolvConf", parseChoice(v, RESOLV_CONF_MODES, ctx), spelling);
        break;
      case "timezone":
        set("timezone", parseChoice(v, TIMEZONE_MODES, ctx), spelling);
        break;
      case "link-journal":
        set("linkJournal", parseChoice(v, LINK_JOURNAL_MODES, ctx), spelling);
        break;
      case "j":
        set("linkJournal", "try-guest", spelling);
        break;
      case "console":
        set("console", parseChoice(v, CONSOLE_MODES, ctx), spelling);
        break;
      case "pipe":
        set("console", "pipe", spelling);
        break;
      // Image and root
      case "template":
        if (v === "") throw usageError(`${spelling} needs a path`, ctx);
        set("template", parseAbsolutePath(absolutize(v, cwd), ctx), spelling);
        break;
      case "ephemeral":
        set("ephemeral", true, spelling);
        break;
      case "image":
        if (v === "") throw usageError(`${spelling} needs a path`, ctx);
        set("image", parseAbsolutePath(absolutize(v, cwd), ctx), spelling);
        break;
      case "volatile":
        set("volatile", parseVolatile(value, ctx), spelling);
        break;
      case "pivot-root":
        set("pivotRoot", parsePivotRoot(v, ctx), spelling);
        break;
      // Execution
      case "personality":
        set("personality", parsePersonality(v, ctx), spelling);
        break;
      case "suppress-sync":
        set("suppressSync", parseBoolean(v, ctx), spelling);
        break;
      case "set-credential":
      case "load-credential": {
        const cred = parseCredential(v, id === "load-credential", ctx);
        set("credentials", [...s.credentials.filter((c) => c.id !== cred.id), cred], spelling);
        break;
      }
      // Mounts
      case "bind":
      case "bind-ro":
        set("binds", [...s.binds, parseBind(v, id === "bind-ro", ctx, cwd)], spelling);
        break;
      case "tmpfs":
        set("tmpfs", [...s.tmpfs, parseTmpfs(v, ctx)], spelling);
        break;
      case "overlay":
      case "overlay-ro":
        set("overlays", [...s.overlays, parseOverlay(v, id === "overlay-ro", ctx)], spelling);
        break;
      case "inaccessible":
        set("inaccessible", [...s.inaccessible, parseAbsolutePath(v, ctx)], spelling);
        break;
      case "bind-user":
        set("bindUsers", [...s.bindUsers, parseUserName(v, ctx)], spelling);
        break;
      // Isolation and resources
      case "system-call-filter": {
        const f = parseSyscallFilter(v, ctx);
        const cur = s.systemCallFilter;
        set("systemCallFilter", f.deny ? { allow: cur.allow, deny: [...cur.deny, ...f.names] } : { allow: [...cur.allow, ...f.names], deny: cur.deny }, spelling);
        break;
      }
      case "private-users":
        set("privateUsers", value === undefined ? { mode: "yes" } : parsePrivateUsers(v, ctx), spelling);
        break;
      case "private-users-ownership":
        set("privateUsersOwnership", parseChoice(v, OWNERSHIP_MODES, ctx), spelling);
        break;
      case "private-users-chown":
        set("privateUsersOwnership", "chown", spelling);
        break;
      case "U":
        set("privateUsers", { mode: "pick" }, spelling);
        set("privateUsersOwnership", "auto", spelling);
        break;
      case "oom-score-adjust":
        set("oomScoreAdjust", parseOomScoreAdjust(v, ctx), spelling);
        break;
      case "cpu-affinity":
        set("cpuAffinity", parseCpuSet(v, ctx), spelling);
        break;
      case "property":
        set("properties", [...s.properties, parseProperty(v, ctx)], spelling);
        break;
      case "slice":
        set("slice", parseSlice(v, ctx), spelling);
        break;
      // Networking
      case "network-veth":
        set("networkVeth", true, spelling);
        break;
      case "network-veth-extra":
        set("networkVethExtra", [...s.networkVethExtra, parseVethExtra(v, ctx)], spelling);
        break;
      case "network-bridge":
        set("networkBridge", parseInterfaceName(v, ctx), spelling);
        break;
      case "network-zone":
        if (!/^[A-Za-z0-9_-]{1,12}$/.test(v)) throw usageError(`invalid zone name ${JSON.stringify(v)} for ${spelling}: expected 1-12 letters, digits, '-' or '_'`, ctx);
        set("networkZone", v, spelling);
        break;
      case "network-interface":
        set("networkInterfaces", [...s.networkInterfaces, parseInterfaceSpec(v, ctx)], spelling);
        break;
      case "network-macvlan":
        set("networkMacvlan", [...s.networkMacvlan, parseInterfaceSpec(v, ctx)], spelling);
        break;
      case "network-ipvlan":
        set("networkIpvlan", [...s.networkIpvlan, parseInterfaceSpec(v, ctx)], spelling);
        break;
      case "network-namespace-path":
        set("networkNamespacePath", parseAbsolutePath(v, ctx), spelling);
        break;
      case "port":
        set("ports", [...s.ports, parsePort(v, ctx)], spelling);
        break;
      default:
        // Known to systemd-nspawn, but not offered by machina (SELinux labels, OCI bundles,
        // dm-verity): refused at run time with a clear message.
        s.unsupported.push(spelling);
    }
  }

  if (s.networkBridge !== undefined && s.networkZone !== undefined)
    throw usageError("--network-bridge= and --network-zone= may not be combined", { flag: "--network-zone" });
  if (s.networkNamespacePath !== undefined && (s.networkVeth || s.networkVethExtra.length > 0 || s.networkBridge !== undefined || s.networkZone !== undefined || s.networkInterfaces.length > 0 || s.networkMacvlan.length > 0 || s.networkIpvlan.length > 0))
    throw usageError("--network-namespace-path= may not be combined with other network options", { flag: "--network-namespace-path" });
  if (s.ephemeral && s.template !== undefined)
    throw usageError("--ephemeral and --template= may not be combined", { flag: "--ephemeral" });
  if (s.directory !== undefined && s.image !== undefined)
    throw usageError("--directory= and --image= may not be combined", { flag: "--image" });
  if (s.boot && s.asPid2) throw usageError("--boot and --as-pid2 may not be combined", { flag: "--boot" });
  // Networking options imply a private network, as in nspawn.
  if (s.networkVeth || s.networkVethExtra.length > 0 || s.networkBridge !== undefined || s.networkZone !== undefined || s.networkInterfaces.length > 0 || s.networkMacvlan.length > 0 || s.networkIpvlan.length > 0)
    s.privateNetwork = true;
  s.command = operands;
  if (operands.length > 0) s.provenance.set("command", { kind: "cli", flag: "COMMAND" });
  return { action: "run", settings: s };
}

function absolutize(path: string, cwd: string): string {
  return path.startsWith("/") ? path : `${cwd.replace(/\/$/, "")}/${path}`;
}

/** `IF[:NAME]`: a host interface, optionally renamed in the container. */
function parseInterfaceSpec(value: string, ctx: ErrorContext): string {
  const [host = "", inner, extra] = value.split(":");
  if (extra !== undefined) throw usageError(`invalid value ${JSON.stringify(value)} for ${ctx.flag}: expected IF[:NAME]`, ctx);
  parseInterfaceName(host, ctx);
  if (inner !== undefined) parseInterfaceName(inner, ctx);
  return value;
}
