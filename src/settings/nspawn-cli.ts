/**
 * `machina-nspawn` command line -> Settings. Pure: the caller passes argv and the environment.
 */
import { usageError, type ErrorContext } from "../errors.ts";
import { getopt } from "./getopt.ts";
import { NSPAWN_OPTIONS } from "./nspawn-options.ts";
import { parseCapabilityList } from "./capabilities.ts";
import { parseRlimitAssignment } from "./rlimits.ts";
import {
  CONSOLE_MODES, LINK_JOURNAL_MODES, RESOLV_CONF_MODES, SETTINGS_MODES, TIMEZONE_MODES,
  defaultSettings, type Settings,
} from "./settings.ts";
import {
  parseAbsolutePath, parseBoolean, parseChoice, parseEnvAssignment, parseHostname,
  parseMachineName, parseSignal, parseUuid,
} from "./values.ts";

export type NspawnAction = { action: "help" } | { action: "version" } | { action: "run"; settings: Settings };

export function parseNspawnCommandLine(
  argv: readonly string[],
  hostEnv: Readonly<Record<string, string | undefined>>,
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
      default:
        // Known to systemd-nspawn; not carried out by this build yet.
        s.unsupported.push(spelling);
    }
  }

  if (s.boot && s.asPid2) throw usageError("--boot and --as-pid2 may not be combined", { flag: "--boot" });
  if (s.boot && s.user !== undefined) throw usageError("--boot and --user may not be combined", { flag: "--user" });
  s.command = operands;
  if (operands.length > 0) s.provenance.set("command", { kind: "cli", flag: "COMMAND" });
  return { action: "run", settings: s };
}
