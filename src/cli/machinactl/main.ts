/** machinactl: machinectl's verbs on machina's registry and image pool. */
import { MachinaError, renderError } from "../../errors.ts";
import { LinuxHost } from "../../host/linux.ts";
import type { Host } from "../../host/host.ts";
import { paths, VERSION } from "../../paths.ts";
import { err, out } from "../output.ts";
import { parseMachinactlCommandLine } from "./options.ts";
import { findVerb, VERBS } from "./verbs.ts";

const PROG = "machinactl";

export function usage(): string {
  const sections = ["Machine", "Image", "Image transfer"] as const;
  const lines = [`${PROG} [OPTIONS...] COMMAND ...`, "", "Inspect and control machina's containers and images (machinectl's verbs).", ""];
  for (const section of sections) {
    const verbs = VERBS.filter((v) => v.section === section);
    if (verbs.length === 0) continue;
    lines.push(`${section} commands:`);
    for (const v of verbs) lines.push(v.usage.length <= 28 ? `  ${v.usage.padEnd(28)}${v.summary}` : `  ${v.usage}\n  ${"".padEnd(28)}${v.summary}`);
    lines.push("");
  }
  lines.push(
    "Options:",
    "  -h --help                   Show this help",
    "     --version                Show the version",
    "     --no-pager               Accepted (machina never pages)",
    "     --no-legend              No headers and footers",
    "     --json[=pretty|short]    JSON output",
    "  -p --property=NAME          Show only this property",
    "  -P NAME                     Same as --property=NAME --value",
    "     --value                  Print only the values of properties",
    "  -a --all                    Show all properties / all images, hidden ones too",
    "  -l --full                   Do not shorten output",
    "  -q --quiet                  Print less",
    "     --kill-whom=WHOM         leader or all",
    "  -s --signal=SIGNAL          Signal to send",
    "     --uid=USER               User for shell",
    "  -E --setenv=VAR[=VALUE]     Environment for shell",
    "     --read-only              Read-only bind mount / clone",
    "     --mkdir                  Create the bind mount's target directory",
    "  -n --lines=N                Number of log lines",
    "  -f --follow                 Follow the log",
    "  -o --output=MODE            Journal output mode",
    "     --max-addresses=N        Addresses shown per machine",
    "     --verify=MODE            no, checksum, signature (pull)",
    "     --force                  Replace an existing image (pull, import) or target (copy-to, copy-from)",
    "     --format=FORMAT          uncompressed, xz, gzip, bzip2, zstd (export)",
    "     --root-password=PW       Root's password (bootstrap; default: none)",
    "     --mirror=URL             Package mirror (bootstrap)",
    "     --now                    Start (enable) or stop (disable) right away",
    "",
  );
  return lines.join("\n");
}

export async function main(argv: string[], host: Host = new LinuxHost()): Promise<number> {
  try {
    const env = host.env();
    const { options, verb, args, list } = parseMachinactlCommandLine(argv, env);
    if (list !== undefined) {
      out(list.map((l) => `${l}\n`).join(""));
      return 0;
    }
    if (options.help) {
      out(usage());
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
    err(renderError(PROG, error) + "\n");
    return 1;
  }
}
