/**
 * What the benchmarks share: the median, the facts line every result starts with, and the
 * generated blocks of BENCHMARKS.md (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`).
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "..");

/** The median (NaN of nothing). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** `text` with block NAME replaced by `body`, or (when it has none) appended under `heading`. Pure. */
export function replaceBlock(text: string, name: string, body: string, heading: string): string {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${begin}\n${body}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) return text.slice(0, i) + block + text.slice(j + end.length);
  return `${text}\n## ${heading}\n\n${block}\n`;
}

/** Rewrite block NAME of the benchmarks document `doc` (created when missing). */
export async function writeBlock(doc: string, name: string, body: string, heading: string): Promise<void> {
  const text = existsSync(doc) ? await readFile(doc, "utf8") : "# Benchmarks\n";
  await writeFile(doc, replaceBlock(text, name, body, heading));
}

/**
 * "Measured DATE on `HOST`: N CPUs, kernel K, Bun B, TOOLS…, machina COMMIT (work tree). Command:
 * `COMMAND`." — `tools`: the peers' version lines.
 */
export async function factsLine(command: string, tools: readonly string[] = []): Promise<string> {
  const commit = (await new Response(Bun.spawn(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout).text()).trim();
  const kernel = (await readFile("/proc/sys/kernel/osrelease", "utf8")).trim();
  const host = (await readFile("/etc/hostname", "utf8").catch(() => "?")).trim();
  const parts = [`${navigator.hardwareConcurrency} CPUs`, `kernel ${kernel}`, `Bun ${Bun.version}`, ...tools, `machina ${commit} (work tree)`];
  return `Measured ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} on \`${host}\`: ${parts.join(", ")}. Command: \`${command}\`.`;
}

/** The first line a program prints for `argv` (a version). */
export function versionLine(argv: string[]): string {
  return (Bun.spawnSync(argv).stdout.toString().split("\n")[0] ?? "").trim();
}
