/** machinactl: machinectl's verbs on machina's registry and image pool. */
import { MachinaError, renderError } from "../../errors.ts";
import { HandOver } from "../../host/hand-over.ts";
import { LinuxHost } from "../../host/linux.ts";
import type { Host } from "../../host/host.ts";
import { paths, VERSION } from "../../paths.ts";
import { err as stderrWrite, out as stdoutWrite } from "../output.ts";
import { optionSyntax, renderHelpEntry } from "../../settings/option-help.ts";
import { MACHINACTL_TABLE, type MachinactlCommandLine, parseMachinactlCommandLine, type MachinactlOption } from "./options.ts";
import type { Verb } from "./verb.ts";
import { findVerb, VERBS } from "./verbs.ts";

const PROG = "machinactl";

const optionEntry = (r: MachinactlOption) => renderHelpEntry({ syntax: optionSyntax(r), text: r.help });

export function usage(): string {
  const sections = ["Machine", "Image", "Image transfer"] as const;
  const lines = [`${PROG} [OPTIONS...] COMMAND ...`, "", "Inspect and control machina's containers and images (machinectl's verbs).", ""];
  for (const section of sections) {
    const verbs = VERBS.filter((v) => v.section === section);
    if (verbs.length === 0) continue;
    lines.push(`${section} commands:`);
    for (const v of verbs) lines.push(renderHelpEntry({ syntax: v.usage, text: v.summary }));
    lines.push("");
  }
  lines.push("Options:", ...MACHINACTL_TABLE.map(optionEntry), "", `${PROG} COMMAND --help shows a command's own options.`, "");
  return lines.join("\n");
}

/** `machinactl VERB --help`: its usage, what it does, and the options it reads. */
export function verbUsage(v: Verb): string {
  const own = MACHINACTL_TABLE.filter((r) => v.options.includes(r.id));
  const global = MACHINACTL_TABLE.filter((r) => r.global === true && !v.options.includes(r.id));
  const lines = [`${PROG} [OPTIONS...] ${v.usage}`, "", `${v.summary}.`, ""];
  if (own.length > 0) lines.push("Options:", ...own.map(optionEntry), "");
  lines.push("Common options:", ...global.map(optionEntry), "");
  return lines.join("\n");
}

/** Where a run's output goes: this process's stdout/stderr, or machinad's frames to a front end (src/daemon/machinactl-door.ts). */
export interface MachinactlIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** `parsed`: argv already parsed with host.env() (machinad's door has, to decide whether it serves it). */
export async function main(
  argv: string[],
  host: Host = new LinuxHost(),
  io: MachinactlIo = { out: stdoutWrite, err: stderrWrite },
  parsed?: MachinactlCommandLine,
): Promise<number> {
  const { out, err } = io;
  try {
    const env = host.env();
    const { options, verb, args, list } = parsed ?? parseMachinactlCommandLine(argv, env);
    if (list !== undefined) {
      out(list.map((l) => `${l}\n`).join(""));
      return 0;
    }
    if (options.help) {
      const v = verb === undefined ? undefined : findVerb(verb);
      if (verb !== undefined && v === undefined) throw new MachinaError("E_USAGE", `unknown command verb "${verb}"`, {}, `see ${PROG} --help`);
      out(v === undefined ? usage() : verbUsage(v));
      return 0;
    }
    if (options.version) {
      out(`${PROG} ${VERSION}\n`);
      return 0;
    }
    const name = verb ?? "list";
    const v = findVerb(name);
    if (v === undefined) throw new MachinaError("E_USAGE", `unknown command verb "${name}"`, {}, `see ${PROG} --help`);
    if (args.length < v.minArgs) throw new MachinaError("E_USAGE", `too few arguments for "${name}": usage: ${PROG} ${v.usage}`);
    if (args.length > v.maxArgs) throw new MachinaError("E_USAGE", `too many arguments for "${name}": usage: ${PROG} ${v.usage}`);
    return await v.run({ options, host, paths: paths(env), env, out, err }, args);
  } catch (error) {
    if (error instanceof HandOver) throw error; // served by machinad: the front end carries on
    err(renderError(PROG, error) + "\n");
    return 1;
  }
}
