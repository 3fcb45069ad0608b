/** machinactl's command line: machinectl 252's options (plus --json), GNU permutation. Pure. */
import { usageError, type ErrorContext } from "../../errors.ts";
import { getopt, type ArgKind, type OptionDef } from "../../settings/getopt.ts";
import { isValidMachineName, parseBoolean, parseChoice, parseEnvAssignment, parseSignal, signalTable } from "../../settings/values.ts";
import type { Platform } from "../../oci/manifest.ts";
import { PLATFORM_SYNTAX, parsePlatform } from "../../oci/platform.ts";
import { ARCHITECTURE_NAMES } from "../../settings/architectures.ts";

export const JSON_MODES = ["off", "pretty", "short"] as const;

/** journalctl's output modes, which --output= takes (machinectl 252's `-o help` lists them so). */
export const OUTPUT_MODES = [
  "short",
  "short-full",
  "short-iso",
  "short-iso-precise",
  "short-precise",
  "short-monotonic",
  "short-delta",
  "short-unix",
  "verbose",
  "export",
  "json",
  "json-pretty",
  "json-sse",
  "json-seq",
  "cat",
  "with-unit",
] as const;
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
  /** bootstrap: the architecture (Debian's name), default the host's. */
  arch: string | undefined;
  /** bootstrap: package mirror. */
  mirror: string | undefined;
  format: "uncompressed" | "xz" | "gzip" | "bzip2" | "zstd" | undefined;
  /** import-oci, pull-oci: the platform to take from an index (default: this machine's). */
  platform: Platform | undefined;
  /** pull-oci: verify the registry's TLS certificate (false: podman's --tls-verify=no). */
  tlsVerify: boolean;
  /** pull-oci: a directory of CA certificates (*.crt), as podman's --cert-dir. */
  certDir: string | undefined;
  /** pull-oci: a containers auth.json with the registry's credentials. */
  authFile: string | undefined;
  now: boolean;
  json: JsonMode;
  follow: boolean;
}

/** One of machinactl's options, declared once: names, argument, help, how it is applied. */
export interface MachinactlOption {
  id: string;
  long?: string;
  short?: string;
  arg: ArgKind;
  argName?: string;
  help: string;
  choices?: readonly string[];
  /** Shown in the main --help and every verb's (not only the verbs that name it). */
  global?: boolean;
  /** `OPTION=help` prints these (one per line) and exits, as machinectl does for -s, -o, --verify. */
  helpList?: () => readonly string[];
  apply(
    o: MachinactlOptions,
    v: string,
    c: { value: string | undefined; spelling: string; ctx: ErrorContext; hostEnv: Readonly<Record<string, string | undefined>> },
  ): void;
}

const KILL_WHOM = ["leader", "all"] as const;
const VERIFY_MODES = ["no", "checksum", "signature"] as const;
const FORMATS = ["uncompressed", "xz", "gzip", "bzip2", "zstd"] as const;

/** machinectl 252's options (plus --json and machina's own), in --help order. */
export const MACHINACTL_TABLE: readonly MachinactlOption[] = [
  { id: "help", long: "help", short: "h", arg: "none", help: "Show this help", global: true, apply: (o) => void (o.help = true) },
  { id: "version", long: "version", arg: "none", help: "Show the version", global: true, apply: (o) => void (o.version = true) },
  { id: "no-pager", long: "no-pager", arg: "none", help: "Accepted (machina never pages)", global: true, apply: (o) => void (o.noPager = true) },
  { id: "no-legend", long: "no-legend", arg: "none", help: "No headers and footers", apply: (o) => void (o.legend = false) },
  {
    id: "no-ask-password",
    long: "no-ask-password",
    arg: "none",
    help: "Accepted (machina never asks)",
    global: true,
    apply: (o) => void (o.askPassword = false),
  },
  {
    id: "host",
    long: "host",
    short: "H",
    arg: "required",
    argName: "HOST",
    help: "Not supported: machina manages the local host only",
    global: true,
    apply: (_o, _v, c) => {
      throw usageError("--host= is not supported: machina manages the local host only", c.ctx);
    },
  },
  {
    id: "machine",
    long: "machine",
    short: "M",
    arg: "required",
    argName: "NAME",
    help: "[USER@].host only: machinactl manages this host's machines",
    global: true,
    apply: (o, v, c) => {
      // machinectl's [USER@]MACHINE: machina manages this host only, so only .host (the default) is taken
      const at = v.lastIndexOf("@");
      const m = at === -1 ? v : v.slice(at + 1);
      if (v === "" || (m !== ".host" && m !== "" && !isValidMachineName(m)))
        throw usageError(`invalid value ${JSON.stringify(v)} for ${c.spelling}: expected [USER@]MACHINE with a valid machine name, or .host`, c.ctx);
      if (m !== ".host" && m !== "")
        throw usageError(
          `${c.spelling} ${JSON.stringify(v)} is not supported: machinactl manages the machines of this host (.host); name the machine as the verb's argument instead`,
          c.ctx,
        );
      o.machine = v;
    },
  },
  {
    id: "json",
    long: "json",
    arg: "optional",
    argName: "pretty|short",
    choices: JSON_MODES,
    help: "JSON output",
    global: true,
    apply: (o, v, c) => void (o.json = c.value === undefined ? "pretty" : parseChoice(v, JSON_MODES, c.ctx)),
  },
  {
    id: "property",
    long: "property",
    short: "p",
    arg: "required",
    argName: "NAME",
    help: "Show only this property",
    apply: (o, v) => void o.properties.push(...v.split(",").filter((p) => p.length > 0)),
  },
  {
    id: "P",
    short: "P",
    arg: "required",
    argName: "NAME",
    help: "Same as --property=NAME --value",
    apply: (o, v) => {
      o.properties.push(v);
      o.value = true;
    },
  },
  { id: "value", long: "value", arg: "none", help: "Print only the values of properties", apply: (o) => void (o.value = true) },
  { id: "all", long: "all", short: "a", arg: "none", help: "Show all properties / all images, hidden ones too", apply: (o) => void (o.all = true) },
  { id: "full", long: "full", short: "l", arg: "none", help: "Do not shorten output", apply: (o) => void (o.full = true) },
  { id: "quiet", long: "quiet", short: "q", arg: "none", help: "Print less", global: true, apply: (o) => void (o.quiet = true) },
  {
    id: "kill-whom",
    long: "kill-whom",
    arg: "required",
    argName: "WHOM",
    choices: KILL_WHOM,
    help: "leader or all",
    apply: (o, v, c) => void (o.killWhom = parseChoice(v, KILL_WHOM, c.ctx)),
  },
  {
    id: "signal",
    long: "signal",
    short: "s",
    arg: "required",
    argName: "SIGNAL",
    help: "Signal to send",
    helpList: signalTable,
    apply: (o, v, c) => void (o.signal = parseSignal(v, c.ctx)),
  },
  {
    id: "uid",
    long: "uid",
    arg: "required",
    argName: "USER",
    help: "User for shell",
    apply: (o, v, c) => {
      if (v === "" || /[\s:/]/.test(v)) throw usageError(`invalid user ${JSON.stringify(v)} for ${c.spelling}`, c.ctx);
      o.uid = v;
    },
  },
  {
    id: "setenv",
    long: "setenv",
    short: "E",
    arg: "required",
    argName: "VAR[=VALUE]",
    help: "Environment for shell",
    apply: (o, v, c) => {
      const entry = parseEnvAssignment(v, c.hostEnv, c.ctx);
      if (entry !== undefined) o.setenv.push(entry);
    },
  },
  { id: "read-only", long: "read-only", arg: "none", help: "Read-only bind mount / clone", apply: (o) => void (o.readOnly = true) },
  { id: "mkdir", long: "mkdir", arg: "none", help: "Create the bind mount's target directory", apply: (o) => void (o.mkdir = true) },
  {
    id: "lines",
    long: "lines",
    short: "n",
    arg: "required",
    argName: "N",
    help: "Number of log lines",
    apply: (o, v, c) => void (o.lines = nonNegativeInt(v, c.ctx)),
  },
  { id: "follow", long: "follow", short: "f", arg: "none", help: "Follow the log", apply: (o) => void (o.follow = true) },
  {
    id: "output",
    long: "output",
    short: "o",
    arg: "required",
    argName: "MODE",
    choices: OUTPUT_MODES,
    helpList: () => OUTPUT_MODES,
    help: "Journal output mode",
    apply: (o, v, c) => void (o.output = parseChoice(v, OUTPUT_MODES, c.ctx)),
  },
  {
    id: "max-addresses",
    long: "max-addresses",
    arg: "required",
    argName: "N",
    help: "Addresses shown per machine",
    apply: (o, v, c) => void (o.maxAddresses = nonNegativeInt(v, c.ctx)),
  },
  {
    id: "verify",
    long: "verify",
    arg: "required",
    argName: "MODE",
    choices: VERIFY_MODES,
    helpList: () => VERIFY_MODES,
    help: "no, checksum, signature (pull)",
    apply: (o, v, c) => void (o.verify = parseChoice(v, VERIFY_MODES, c.ctx)),
  },
  {
    id: "force",
    long: "force",
    arg: "none",
    help: "Replace an existing image (pull, import) or target (copy-to, copy-from)",
    apply: (o) => void (o.force = true),
  },
  {
    id: "format",
    long: "format",
    arg: "required",
    argName: "FORMAT",
    choices: FORMATS,
    help: "uncompressed, xz, gzip, bzip2, zstd (export)",
    apply: (o, v, c) => void (o.format = parseChoice(v, FORMATS, c.ctx)),
  },
  {
    id: "root-password",
    long: "root-password",
    arg: "required",
    argName: "PW",
    help: "Root's password (bootstrap; default: none)",
    apply: (o, v) => void (o.rootPassword = v),
  },
  {
    id: "arch",
    long: "arch",
    arg: "required",
    argName: "ARCH",
    choices: ARCHITECTURE_NAMES,
    help: `The image's architecture (bootstrap; default: the host's): ${ARCHITECTURE_NAMES.join(", ")}`,
    apply: (o, v, c) => void (o.arch = parseChoice(v, ARCHITECTURE_NAMES, c.ctx)),
  },
  {
    id: "mirror",
    long: "mirror",
    arg: "required",
    argName: "URL",
    help: "Package mirror (bootstrap)",
    apply: (o, v, c) => {
      if (!/^(https?|file):\/\/\S+$/.test(v))
        throw usageError(`invalid mirror ${JSON.stringify(v)} for ${c.spelling}: expected an http(s):// or file:// URL`, c.ctx);
      o.mirror = v;
    },
  },
  {
    id: "platform",
    long: "platform",
    arg: "required",
    argName: "OS/ARCH[/VARIANT]",
    help: "The image to take from a multi-platform index (OCI; default: this machine's)",
    apply: (o, v, c) => {
      try {
        o.platform = parsePlatform(v);
      } catch {
        throw usageError(`invalid platform ${JSON.stringify(v)} for ${c.spelling}: a platform is ${PLATFORM_SYNTAX}`, c.ctx);
      }
    },
  },
  {
    id: "tls-verify",
    long: "tls-verify",
    arg: "required",
    argName: "BOOL",
    choices: ["yes", "no"],
    help: "pull-oci: verify the registry's TLS certificate (no: also plain HTTP, as podman's --tls-verify=false)",
    apply: (o, v, c) => void (o.tlsVerify = parseBoolean(v, c.ctx)),
  },
  {
    id: "cert-dir",
    long: "cert-dir",
    arg: "required",
    argName: "DIR",
    help: "pull-oci: CA certificates (*.crt) for the registry",
    apply: (o, v) => void (o.certDir = v),
  },
  {
    id: "authfile",
    long: "authfile",
    arg: "required",
    argName: "FILE",
    help: "pull-oci: a containers auth.json with the registry's credentials",
    apply: (o, v) => void (o.authFile = v),
  },
  { id: "now", long: "now", arg: "none", help: "Start (enable) or stop (disable) right away", apply: (o) => void (o.now = true) },
];

export const MACHINACTL_OPTIONS: readonly OptionDef[] = MACHINACTL_TABLE.map((r) => ({
  id: r.id,
  ...(r.long !== undefined ? { long: r.long } : {}),
  ...(r.short !== undefined ? { short: r.short } : {}),
  arg: r.arg,
}));
const ROWS = new Map(MACHINACTL_TABLE.map((r) => [r.id, r]));

export function defaultMachinactlOptions(): MachinactlOptions {
  return {
    help: false,
    version: false,
    noPager: false,
    legend: true,
    askPassword: true,
    host: undefined,
    machine: undefined,
    properties: [],
    quiet: false,
    all: false,
    value: false,
    full: false,
    killWhom: undefined,
    signal: undefined,
    uid: undefined,
    setenv: [],
    readOnly: false,
    mkdir: false,
    lines: undefined,
    maxAddresses: undefined,
    output: undefined,
    verify: undefined,
    force: false,
    rootPassword: undefined,
    arch: undefined,
    mirror: undefined,
    format: undefined,
    platform: undefined,
    tlsVerify: true,
    certDir: undefined,
    authFile: undefined,
    now: false,
    json: "off",
    follow: false,
  };
}

/** machinectl parses these as an unsigned int (safe_atou): 0 … 2^32-1. */
const UINT_MAX = 4294967295;

function nonNegativeInt(v: string, ctx: ErrorContext): number {
  if (!/^[0-9]+$/.test(v) || Number(v) > UINT_MAX)
    throw usageError(`invalid value ${JSON.stringify(v)} for ${ctx.flag}: expected a whole number from 0 to ${UINT_MAX}`, ctx);
  return Number(v);
}

export type OutputMode = (typeof OUTPUT_MODES)[number];

/** Verbs whose arguments after the machine name are a command line, never options. */
const COMMAND_VERBS = new Set(["shell", "exec"]);

/** A parsed machinactl command line: its options, the verb and its arguments, or a list to print (`--output=help`, …). */
export interface MachinactlCommandLine {
  options: MachinactlOptions;
  verb: string | undefined;
  args: string[];
  list?: string[];
}

export function parseMachinactlCommandLine(argv: readonly string[], hostEnv: Readonly<Record<string, string | undefined>>): MachinactlCommandLine {
  const { options: parsed, operands } = getopt(argv, MACHINACTL_OPTIONS, {
    permute: true,
    stopWhen: (ops) => COMMAND_VERBS.has(ops[0] ?? "") && ops.length >= 2,
  });
  const opts = defaultMachinactlOptions();
  for (const { id, value, spelling } of parsed) {
    const row = ROWS.get(id);
    if (row === undefined) throw usageError(`option ${spelling} is not handled`, { flag: spelling });
    // as machinectl 252: `help` lists the choices of -s, -o and --verify (and nothing else runs)
    if (value === "help" && row.helpList !== undefined) return { options: opts, verb: undefined, args: [], list: [...row.helpList()] };
    row.apply(opts, value ?? "", { value, spelling, ctx: { flag: spelling }, hostEnv });
  }
  const [verb, ...args] = operands;
  return { options: opts, verb, args };
}
