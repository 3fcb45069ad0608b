/**
 * The programs machina runs and the Debian packages they come from: scripts/deps.txt (the one
 * list, which scripts/install-deps reads too), bundled into the commands. When a program is
 * missing at run time, the error names its package: `bootstrap needs "debootstrap" (Debian
 * package debootstrap): apt-get install debootstrap`.
 */
import { basename } from "node:path";
import { MachinaError } from "../errors.ts";
import depsText from "../../scripts/deps.txt" with { type: "text" };

export interface Dependency {
  /** Command name, or "-" for a package without one (headers). */
  program: string;
  /** Debian package, or `npm:NAME@VERSION`. */
  package: string;
  /** base, build, core, transfers, btrfs, networking, bootstrap, systemd, test, bench. */
  part: string;
  /** Used when present, never installed (a leading "?" on the part). */
  alternative: boolean;
  why: string;
}

/** Parse deps.txt: `PROGRAM PACKAGE PART [why]` lines, `#` comments. Throws on a malformed line. */
export function parseDeps(text: string): Dependency[] {
  const out: Dependency[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(\S+)\s+(\S+)\s+(\??)([a-z]+)(?:\s+(.*))?$/.exec(line);
    if (m === null) throw new Error(`scripts/deps.txt:${i + 1}: expected "PROGRAM PACKAGE PART [why]", got ${JSON.stringify(line)}`);
    out.push({ program: m[1]!, package: m[2]!, part: m[4]!, alternative: m[3] === "?", why: m[5] ?? "" });
  });
  return out;
}

let parsed: readonly Dependency[] | undefined;

/** scripts/deps.txt, parsed on first use (not at every command's start). */
export function dependencies(): readonly Dependency[] {
  parsed ??= parseDeps(depsText);
  return parsed;
}

/** What a part is called in a message. */
const PART_LABEL: Record<string, string> = {
  base: "machina",
  build: "building machina",
  core: "machina",
  btrfs: "a btrfs pool",
  foreign: "a container of another architecture",
  systemd: "systemd integration",
  test: "the tests",
  bench: "the benchmarks",
};

export function dependencyOf(program: string): Dependency | undefined {
  const name = basename(program);
  return dependencies().find((d) => d.program === name);
}

/** The one line for a missing program, or undefined when it is not on the list. */
export function missingProgramMessage(program: string): string | undefined {
  const d = dependencyOf(program);
  if (d === undefined) return undefined;
  const what = PART_LABEL[d.part] ?? d.part;
  if (d.package.startsWith("npm:")) return `${what} needs "${d.program}" (npm package ${d.package.slice(4)}): npm install -g ${d.package.slice(4)}`;
  return `${what} needs "${d.program}" (Debian package ${d.package}): apt-get install ${d.package}`;
}

/** E_UNSUPPORTED naming the package of a program that is not installed. */
export function missingProgramError(program: string): MachinaError {
  const message = missingProgramMessage(program) ?? `"${basename(program)}" is not installed`;
  return new MachinaError("E_UNSUPPORTED", message, { path: program });
}

/** Whether a spawn failed because the program does not exist (Bun: ENOENT "Executable not found"). */
export function isMissingProgram(e: unknown): boolean {
  return e instanceof Error && "code" in e && e.code === "ENOENT";
}

/** Run `spawn`; a missing program becomes missingProgramError (for every spawn in host/). */
export function spawning<T>(argv: readonly string[], spawn: () => T): T {
  try {
    return spawn();
  } catch (e) {
    if (isMissingProgram(e) && argv[0] !== undefined && dependencyOf(argv[0]) !== undefined) throw missingProgramError(argv[0]);
    throw e;
  }
}
