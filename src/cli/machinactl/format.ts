/**
 * Output in machinectl's styles: aligned columns with an upper-case header and a
 * "N things listed." footer (both dropped by --no-legend), `Key=Value` property lists
 * (`show`), and JSON (--json=pretty|short).
 */
import { isValidMachineName, MACHINE_NAME_RULE } from "../../settings/values.ts";
import type { MachinactlOptions } from "./options.ts";

export interface Column<T> {
  header: string;
  value: (row: T) => string;
}

export function table<T>(rows: T[], columns: Column<T>[], options: MachinactlOptions, noun: [string, string]): string {
  const cells = rows.map((r) => columns.map((c) => c.value(r)));
  const header = columns.map((c) => c.header);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join(" ")
      .trimEnd();
  const lines: string[] = [];
  if (options.legend && rows.length > 0) lines.push(line(header));
  for (const row of cells) lines.push(line(row));
  if (options.legend) {
    if (rows.length > 0) lines.push("");
    lines.push(`${rows.length} ${rows.length === 1 ? noun[0] : noun[1]} listed.`);
  }
  return lines.join("\n") + "\n";
}

export function json(value: unknown, options: MachinactlOptions): string {
  return (options.json === "short" ? JSON.stringify(value) : JSON.stringify(value, null, 2)) + "\n";
}

/** `show`-style output: Key=Value lines, filtered by -p, --value, -a (show empty). */
export function properties(props: Array<[string, string]>, options: MachinactlOptions): string {
  const wanted = options.properties.length > 0 ? new Set(options.properties) : undefined;
  const out: string[] = [];
  for (const [key, value] of props) {
    if (wanted && !wanted.has(key)) continue;
    if (value === "" && !options.all && !wanted) continue;
    out.push(options.value ? value : `${key}=${value}`);
  }
  return out.length > 0 ? out.join("\n") + "\n" : "";
}

export function formatBytes(n: number): string {
  const units = ["B", "K", "M", "G", "T", "P"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}B` : `${v.toFixed(v < 10 ? 1 : 0)}${units[i]}`;
}

/** machinectl's timestamp style: "Sun 2026-11-29 07:44:12 UTC". */
export function formatTimestamp(ms: number): string {
  const d = new Date(ms);
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getUTCDay()];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${day} ${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

/**
 * An image name that is not a valid machine name (a pool allows more, as machinectl's does) can
 * be cloned, imported or renamed, but not started: one warning line on stderr, the verb goes on.
 */
export function warnIfNotMachineName(err: (text: string) => void, image: string): void {
  if (!isValidMachineName(image))
    err(`machinactl: warning: image name ${JSON.stringify(image)} is not a valid machine name (${MACHINE_NAME_RULE}): it cannot be started\n`);
}
