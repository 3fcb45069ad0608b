import { NSPAWN_COMPAT_VERSION, VERSION } from "../paths.ts";
import { HELP_GROUPS, NSPAWN_TABLE } from "../settings/nspawn-table.ts";
import { optionSyntax, renderHelpEntry } from "../settings/option-help.ts";

export const NSPAWN_VERSION_TEXT = `machina-nspawn ${VERSION} (systemd-nspawn ${NSPAWN_COMPAT_VERSION} compatible)\n`;

/** `--help`, generated from the option table (when asked for: ~1 ms that a start does not need). */
export function nspawnHelp(): string {
  const parts = ["machina-nspawn [OPTIONS...] [COMMAND [ARGUMENTS...]]\n\nRun a command in, or boot, a light-weight container.\n"];
  for (const group of HELP_GROUPS) {
    const rows = NSPAWN_TABLE.filter((r) => r.group === group && (r.long !== undefined || r.short !== undefined));
    if (rows.length === 0) continue;
    const entries = rows.flatMap((r) =>
      r.help.map((h) => ({
        syntax: h.syntax === undefined ? optionSyntax(r) : /^-[^-]/.test(h.syntax) ? h.syntax : `   ${h.syntax}`,
        text: r.cli === undefined ? `${h.text} (not supported by machina)` : h.text,
      })),
    );
    parts.push((group === "" ? "" : `${group}:\n`) + entries.map(renderHelpEntry).join("\n") + "\n");
  }
  parts.push(
    "Options that machina does not carry out are refused with a clear message, never\nignored. Documentation: `man machina-nspawn`, README.md and docs/ in the machina sources.\n",
  );
  return parts.join("\n");
}
