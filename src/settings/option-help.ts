/**
 * `--help` text from an option table: one entry per option (or per help line of it), the
 * names in a 28-column gutter, the text wrapped at 80 columns — the layout of systemd's tools.
 * Pure; used for machina-nspawn's help (nspawn-table.ts) and the man page generator.
 */
export interface HelpEntry {
  /** `-D --directory=PATH`, `   --version`. */
  syntax: string;
  text: string;
}

const GUTTER = 28;
const WIDTH = 80;

/** Words of `text` in lines of at most `width` characters. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

export function renderHelpEntry(e: HelpEntry): string {
  const head = `  ${e.syntax}`;
  const body = wrap(e.text, WIDTH - GUTTER);
  const pad = " ".repeat(GUTTER);
  if (head.length + 1 > GUTTER) return [head, ...body.map((l) => pad + l)].join("\n");
  return [head.padEnd(GUTTER) + (body[0] ?? ""), ...body.slice(1).map((l) => pad + l)].join("\n");
}

/** `-D --directory=PATH`: the short name (or three spaces) and the long one with its argument. */
export function optionSyntax(o: { long?: string; short?: string; arg: "none" | "required" | "optional"; argName?: string }): string {
  const arg = o.arg === "none" || o.argName === undefined ? "" : o.arg === "optional" ? `[=${o.argName}]` : `=${o.argName}`;
  const short = o.short !== undefined ? `-${o.short}` : "  ";
  if (o.long === undefined) return o.arg === "none" || o.argName === undefined ? short : `${short} ${o.argName}`;
  return `${short} --${o.long}${arg}`;
}
