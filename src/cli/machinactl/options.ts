/** machinactl's command line: machinectl 252's options (plus --json), GNU permutation. Pure. */
import { usageError, type ErrorContext } from "../../errors.ts";
import { getopt, option as o, type OptionDef } from "../../settings/getopt.ts";
import { parseBoolean, parseChoice, parseEnvAssignment, parseSignal } from "../../settings/values.ts";

export const JSON_MODES = ["off", "pretty", "short"] as const;
export type JsonMode = (typeof JSON_MODES)[number];

export interface MachinactlOptions {
  help: boolean;
  version: boolean;
  noPager: boolean;
  legend: boolean;
  askPassword: boolean;
  host: string | undefined;
  machine: string | undefined;
  properties: string[];
  quiet: boolean;
  all: boolean;
  value: boolean;
  full: boolean;
  killWhom: "leader" | "all" | undefined;
  signal: number | undefined;
  uid: string | undefined;
  setenv: string[];
  readOnly: boolean;
  mkdir: boolean;
  lines: number | undefined;
  maxAddresses: number | undefined;
  output: OutputMode | undefined;
  verify: "no" | "checksum" | "signature" | undefined;
  force: boolean;
  /** bootstrap: root's password (default: none, passwordless console login). */
  rootPassword: string | undefined;
  /** bootstrap: package mirror. */
  mirror: string | undefined;
  format: "uncompressed" | "xz" | "gzip" | "bzip2" | "zstd" | undefined;
  now: boolean;
  json: JsonMode;
  follow: boolean;
}

export const MACHINACTL_OPTIONS: readonly OptionDef[] = [
  o("help", "help", "h", "none"),
  o("version", "version", undefined, "none"),
  o("no-pager", "no-pager", undefined, "none"),
  o("no-legend", "no-legend", undefined, "none"),
  o("no-ask-password", "no-ask-password", undefined, "none"),
  o("host", "host", "H", "required"),
  o("machine", "machine", "M", "required"),
  o("property", "property", "p", "required"),
  o("P", undefined, "P", "required"),
  o("quiet", "quiet", "q", "none"),
  o("all", "all", "a", "none"),
  o("value", "value", undefined, "none"),
  o("full", "full", "l", "none"),
  o("kill-whom", "kill-whom", undefined, "required"),
  o("signal", "signal", "s", "required"),
  o("uid", "uid", undefined, "required"),
  o("setenv", "setenv", "E", "required"),
  o("read-only", "read-only", undefined, "none"),
  o("mkdir", "mkdir", undefined, "none"),
  o("lines", "lines", "n", "required"),
  o("max-addresses", "max-addresses", undefined, "required"),
  o("output", "output", "o", "required"),
  o("verify", "verify", undefined, "required"),
  o("force", "force", undefined, "none"),
  o("root-password", "root-password", undefined, "required"),
  o("mirror", "mirror", undefined, "required"),
  o("format", "format", undefined, "required"),
  o("now", "now", undefined, "none"),
  o("json", "json", undefined, "optional"),
  o("follow", "follow", "f", "none"),
];

export function defaultMachinactlOptions(): MachinactlOptions {
  return {
    help: false, version: false, noPager: false, legend: true, askPassword: true, host: undefined, machine: undefined,
    properties: [], quiet: false, all: false, value: false, full: false, killWhom: undefined, signal: undefined,
    uid: undefined, setenv: [], readOnly: false, mkdir: false, lines: undefined, maxAddresses: undefined,
    output: undefined, verify: undefined, force: false, rootPassword: undefined, mirror: undefined, format: undefined, now: false, json: "off", follow: false,
  };
}

/** machinectl parses these as an unsigned int (safe_atou): 0 … 2^32-1. */
const UINT_MAX = 4294967295;

function nonNegativeInt(v: string, ctx: ErrorContext): number {
  if (!/^[0-9]+$/.test(v) || Number(v) > UINT_MAX)
    throw usageError(`invalid value ${JSON.stringify(v)} for ${ctx.flag}: expected a whole number from 0 to ${UINT_MAX}`, ctx);
  return Number(v);
}

/** journalctl's output modes (-o), as machinectl 252 accepts them. */
export const OUTPUT_MODES = [
  "short", "short-full", "short-iso", "short-iso-precise", "short-precise", "short-monotonic", "short-unix", "short-delta",
  "verbose", "export", "json", "json-pretty", "json-sse", "json-seq", "cat", "with-unit",
] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

/** Verbs whose arguments after the machine name are a command line, never options. */
const COMMAND_VERBS = new Set(["shell", "exec"]);

export function parseMachinactlCommandLine(
  argv: readonly string[],
  hostEnv: Readonly<Record<string, string | undefined>>,
): { options: MachinactlOptions; verb: string | undefined; args: string[] } {
  const { options: parsed, operands } = getopt(argv, MACHINACTL_OPTIONS, {
    permute: true,
    stopWhen: (ops) => COMMAND_VERBS.has(ops[0] ?? "") && ops.length >= 2,
  });
  const opts = defaultMachinactlOptions();
  for (const { id, value, spelling } of parsed) {
    const ctx: ErrorContext = { flag: spelling };
    const v = value ?? "";
    switch (id) {
      case "help": opts.help = true; break;
      case "version": opts.version = true; break;
      case "no-pager": opts.noPager = true; break;
      case "no-legend": opts.legend = false; break;
      case "no-ask-password": opts.askPassword = false; break;
      case "host": throw usageError("--host= is not supported: machina manages the local host only", ctx);
      case "machine": opts.machine = v; break;
      case "property": opts.properties.push(...v.split(",").filter((p) => p.length > 0)); break;
      case "P": opts.properties.push(v); opts.value = true; break;
      case "quiet": opts.quiet = true; break;
      case "all": opts.all = true; break;
      case "value": opts.value = true; break;
      case "full": opts.full = true; break;
      case "kill-whom": opts.killWhom = parseChoice(v, ["leader", "all"] as const, ctx); break;
      case "signal": opts.signal = parseSignal(v, ctx); break;
      case "uid":
        if (v === "" || /[\s:/]/.test(v)) throw usageError(`invalid user ${JSON.stringify(v)} for ${spelling}`, ctx);
        opts.uid = v;
        break;
      case "setenv": {
        const entry = parseEnvAssignment(v, hostEnv, ctx);
        if (entry !== undefined) opts.setenv.push(entry);
        break;
      }
      case "read-only": opts.readOnly = true; break;
      case "mkdir": opts.mkdir = true; break;
      case "lines": opts.lines = nonNegativeInt(v, ctx); break;
      case "max-addresses": opts.maxAddresses = nonNegativeInt(v, ctx); break;
      case "output": opts.output = parseChoice(v, OUTPUT_MODES, ctx); break;
      case "verify": opts.verify = parseChoice(v, ["no", "checksum", "signature"] as const, ctx); break;
      case "force": opts.force = true; break;
      case "root-password": opts.rootPassword = v; break;
      case "mirror":
        if (!/^(https?|file):\/\/\S+$/.test(v)) throw usageError(`invalid mirror ${JSON.stringify(v)} for ${spelling}: expected an http(s):// or file:// URL`, ctx);
        opts.mirror = v;
        break;
      case "format": opts.format = parseChoice(v, ["uncompressed", "xz", "gzip", "bzip2", "zstd"] as const, ctx); break;
      case "now": opts.now = true; break;
      case "json": opts.json = value === undefined ? "pretty" : parseChoice(v, JSON_MODES, ctx); break;
      case "follow": opts.follow = true; break;
      default: throw usageError(`option ${spelling} is not handled`, ctx);
    }
  }
  void parseBoolean;
  const [verb, ...args] = operands;
  return { options: opts, verb, args };
}
