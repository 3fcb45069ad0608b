/**
 * scripts/deps.txt is complete and true: every program that src/, test/, scripts/, bench/ and
 * .ci/ run is on it (or comes from an Essential Debian package), each listed program is shipped
 * by its package (where installed), base packages are in every Debian, install-deps reads the
 * list, and a missing program's error names its package.
 *
 * The programs are found by a curated scan, not a parser: argv array literals in spawn-like
 * calls (`Bun.spawn([...])`, `host.run([...])`, `run(ctx, [...])`, `argv = [...]`, arrays whose
 * second element is an option), shell strings (`sh(...)`, `shOk(...)`, `["sh", "-c", "..."]`)
 * and the command lines of shell scripts. A word counts when it is listed or found on PATH, so
 * a program the code starts using fails here on the developer's machine, where it is installed.
 */
import { describe, expect, test } from "bun:test";
import { type Dirent, readdirSync, readFileSync, realpathSync } from "node:fs";
import { join, relative } from "node:path";
import { dependencies, missingProgramMessage, parseDeps } from "../../src/host/deps.ts";
import { LinuxHost } from "../../src/host/linux.ts";

const REPO = join(import.meta.dir, "../..");
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PARTS = ["base", "build", "core", "transfers", "btrfs", "networking", "bootstrap", "foreign", "systemd", "test", "bench"];
/** machina's own commands (built from this repository). */
const OWN = new Set(["machina-nspawn", "machinactl", "machinad", "machina-helper", "machina-net"]);
/** Files whose argv-shaped arrays are not commands. */
const NOT_COMMANDS = new Set(["src/spec/wire.ts", "src/spec/syscall-groups.ts"]);
/** Shell keywords and builtins: never programs in a shell context. */
const SHELL_WORDS = new Set([
  "if",
  "then",
  "else",
  "elif",
  "fi",
  "for",
  "while",
  "until",
  "do",
  "done",
  "case",
  "esac",
  "in",
  "function",
  "select",
  "cd",
  "echo",
  "printf",
  "test",
  "true",
  "false",
  "kill",
  "set",
  "shift",
  "exit",
  "trap",
  "wait",
  "read",
  "exec",
  "export",
  "local",
  "return",
  "source",
  "type",
  "command",
  "eval",
  "break",
  "continue",
  "ulimit",
  "umask",
  "pwd",
  "declare",
  "readonly",
  "unset",
]);

// ------------------------------------------------------------------ the scan

function walk(dir: string, out: string[] = []): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.name === "node_modules" || e.name === "build" || e.name === "corpus") continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const WORD = /^[a-z][a-z0-9._+-]*$/;
const STR = String.raw`"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|` + "`((?:[^`\\\\]|\\\\.)*)`";
const SPREADS = String.raw`(?:\.\.\.[^,\]]+,\s*)*`;
const FIRST = String.raw`["'\x60]([^"'\x60\s$]+)["'\x60]`;
const ARGV_PATTERNS = [
  // a call that runs an argv: spawn([...]), host.run([...]), run(ctx, [...]), nsenter(pid, [...])
  new RegExp(String.raw`(?:spawnSync|spawn|runAsync|run|collect|execFileSync|execFile|nsenter|spawning)\(\s*(?:[\w.{}]+\s*,\s*)*\[\s*${SPREADS}${FIRST}`, "g"),
  // an argv kept in a variable or property
  new RegExp(String.raw`\b(?:argv|cmd|command|build|wrapper|producer|comp|tools|args)\s*[:=]\s*\[\s*${SPREADS}${FIRST}`, "g"),
  // an argv chosen or returned: cond ? ["nsenter", ...] : ..., return ["busctl", ...]
  new RegExp(String.raw`(?:\?|return)\s*\[\s*${SPREADS}${FIRST},`, "g"),
  // an array whose second element is an option
  new RegExp(String.raw`\[\s*${SPREADS}${FIRST},\s*["'\x60]-`, "g"),
];
const SHELL_PATTERNS = [
  new RegExp(String.raw`(?:\bsh|shOk|execSync)\(\s*(?:${STR})`, "g"),
  new RegExp(String.raw`\[\s*"(?:/bin/)?(?:ba)?sh",\s*"-c",\s*(?:${STR})`, "g"),
];

type Found = Map<string, Set<string>>;

function note(found: Found, word: string, file: string): void {
  const w = word.replace(/^\/(?:usr\/)?(?:local\/)?s?bin\//, "").replace(/[)"'`;]+$/, "");
  if (!WORD.test(w)) return;
  if (!found.has(w)) found.set(w, new Set());
  found.get(w)!.add(file);
}

/** The command word of each simple command in a shell text. */
function shellCommands(text: string): string[] {
  const out: string[] = [];
  for (const segment of text.split(/;|&&|\|\||\||\$\(|`|\n/)) {
    const words = segment
      .trim()
      .replace(/^[!({]\s*/, "")
      .split(/\s+/);
    let i = 0;
    const skip = new Set(["if", "elif", "while", "until", "then", "do", "else", "!", "exec", "env", "sudo", "time", "command"]);
    while (i < words.length && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!) || skip.has(words[i]!) || words[i] === "-v")) i++;
    if (words[i] === "timeout") i += 2;
    const w = words[i];
    if (w !== undefined && !SHELL_WORDS.has(w)) out.push(w);
  }
  return out;
}

export function scanPrograms(root: string): Found {
  const found: Found = new Map();
  const files = ["src", "test", "scripts", "bench", ".ci"].flatMap((d) => walk(join(root, d)));
  for (const file of files) {
    const rel = relative(root, file);
    if (NOT_COMMANDS.has(rel)) continue;
    const text = readFileSync(file, "utf8");
    if (file.endsWith(".ts")) {
      for (const re of ARGV_PATTERNS) for (const m of text.matchAll(re)) note(found, m[1]!, rel);
      for (const re of SHELL_PATTERNS) for (const m of text.matchAll(re)) for (const w of shellCommands(m[1] ?? m[2] ?? m[3] ?? "")) note(found, w, rel);
    } else if (/^#!.*\b(?:ba)?sh\b/.test(text) || file.endsWith(".sh")) {
      const lines = text.split("\n").filter((l) => !l.trim().startsWith("#"));
      for (const w of shellCommands(lines.join("\n"))) note(found, w, rel);
    }
  }
  return found;
}

// ------------------------------------------------------------------ dpkg (batched: one dpkg -S, one dpkg-query)

const which = (program: string) => Bun.which(program, { PATH }) ?? undefined;
const haveDpkg = which("dpkg-query") !== undefined && which("dpkg") !== undefined;

interface PackageInfo {
  essential: boolean;
  priority: string;
  installed: boolean;
  /** Direct Depends and Pre-Depends (names only). */
  depends: string[];
}

/** Variants of a program's path under which dpkg may know it (symlinks, merged /usr). */
function pathVariants(path: string): string[] {
  const real = realpathSync(path);
  return [...new Set([real, path, real.replace(/^\/usr\//, "/"), path.replace(/^\/usr\//, "/")])];
}

/** path -> shipping package, for all the paths at once ("diversion by" lines skipped). */
function owners(paths: string[]): Map<string, string> {
  const map = new Map<string, string>();
  if (!haveDpkg || paths.length === 0) return map;
  const r = Bun.spawnSync(["dpkg", "-S", ...paths], { stdout: "pipe", stderr: "ignore" });
  for (const line of r.stdout.toString().split("\n")) {
    if (line.startsWith("diversion")) continue;
    const i = line.indexOf(": ");
    if (i > 0) map.set(line.slice(i + 2).trim(), line.slice(0, i).split(",")[0]!.trim());
  }
  return map;
}

function ownerOf(path: string, known: Map<string, string>): string | undefined {
  for (const p of pathVariants(path)) if (known.has(p)) return known.get(p);
  return undefined;
}

function packages(names: string[]): Map<string, PackageInfo> {
  const map = new Map<string, PackageInfo>();
  if (!haveDpkg || names.length === 0) return map;
  const r = Bun.spawnSync(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Priority}\t${db:Status-Status}\t${Pre-Depends}, ${Depends}\n", ...names], {
    stdout: "pipe",
    stderr: "ignore",
  });
  for (const line of r.stdout.toString().split("\n")) {
    const [name, ess, prio, status, deps] = line.split("\t");
    if (!name) continue;
    map.set(name, {
      essential: ess === "yes",
      priority: prio ?? "",
      installed: status === "installed",
      depends: (deps ?? "")
        .split(/[,|]/)
        .map((d) => d.trim().split(/[\s:(]/)[0]!)
        .filter(Boolean),
    });
  }
  return map;
}

// ------------------------------------------------------------------ tests

describe("scripts/deps.txt", () => {
  test("parses: known parts, one line per program", () => {
    expect(dependencies().length).toBeGreaterThan(20);
    for (const d of dependencies()) expect(PARTS).toContain(d.part);
    const programs = dependencies()
      .map((d) => d.program)
      .filter((p) => p !== "-");
    expect(programs.filter((p, i) => programs.indexOf(p) !== i)).toEqual([]);
    expect(() => parseDeps("gcc gcc\n")).toThrow('scripts/deps.txt:1: expected "PROGRAM PACKAGE PART [why]"');
    expect(parseDeps("# c\n\nx  pkg  ?bootstrap  some why\n")).toEqual([
      { program: "x", package: "pkg", part: "bootstrap", alternative: true, why: "some why" },
    ]);
  });

  test("every program the code, tests, scripts and benchmarks run is listed (or Essential)", () => {
    const found = scanPrograms(REPO);
    // the scan sees the usual suspects (a broken scan would pass vacuously)
    for (const p of ["cp", "btrfs", "ip", "nft", "gpgv", "xz", "debootstrap", "systemd-nspawn", "python3"]) expect([p, found.has(p)]).toEqual([p, true]);
    const listed = new Set(dependencies().map((d) => d.program));
    const unlisted = [...found].sort().flatMap(([program, files]) => {
      if (listed.has(program) || OWN.has(program)) return [];
      const path = which(program);
      return path === undefined ? [] : [{ program, files, path }]; // else not a program here (a word the scan caught)
    });
    const known = owners(unlisted.flatMap((u) => pathVariants(u.path)));
    const infos = packages([...new Set(known.values())]);
    const problems: string[] = [];
    for (const { program, files, path } of unlisted) {
      const pkg = ownerOf(path, known);
      if (pkg !== undefined && infos.get(pkg)?.essential) continue;
      problems.push(`${program} (${pkg ? `Debian package ${pkg}` : path}) is run by ${[...files].slice(0, 3).join(", ")} but is not in scripts/deps.txt`);
    }
    expect(problems).toEqual([]);
  });

  test.skipIf(!haveDpkg)("each installed program is shipped by its listed package (or one it depends on)", () => {
    const debs = dependencies().filter((d) => d.program !== "-" && !d.package.startsWith("npm:"));
    const infos = packages([...new Set(debs.map((d) => d.package))]);
    const present = debs.flatMap((d) => {
      const path = which(d.program);
      return path !== undefined && infos.get(d.package)?.installed ? [{ d, path }] : [];
    });
    expect(present.length).toBeGreaterThan(10); // what this machine can check
    const known = owners(present.flatMap((p) => pathVariants(p.path)));
    // what installing a package brings: itself and its dependencies (transitional packages
    // such as pkg-config -> pkgconf -> pkgconf-bin, python3 -> python3.11 -> python3.11-minimal)
    const brings = new Map<string, Set<string>>([...infos.keys()].map((k) => [k, new Set([k])]));
    for (let level = 0; level < 3; level++) {
      const more = packages([...new Set([...brings.values()].flatMap((set) => [...set]))]);
      for (const set of brings.values()) for (const p of [...set]) for (const dep of more.get(p)?.depends ?? []) set.add(dep);
    }
    const problems: string[] = [];
    for (const { d, path } of present) {
      const pkg = ownerOf(path, known);
      if (pkg === undefined) continue; // not from a package here (e.g. installed by hand)
      if (!brings.get(d.package)?.has(pkg)) problems.push(`${d.program}: ${path} is shipped by ${pkg}, which ${d.package} does not bring`);
    }
    expect(problems).toEqual([]);
  });

  test.skipIf(!haveDpkg)("base packages are in every Debian (Essential or Priority required)", () => {
    const base = [
      ...new Set(
        dependencies()
          .filter((d) => d.part === "base")
          .map((d) => d.package),
      ),
    ];
    const infos = packages(base);
    const problems: string[] = [];
    for (const pkg of base) {
      const info = infos.get(pkg);
      if (info === undefined) continue; // not known to dpkg here
      if (!info.essential && info.priority !== "required") problems.push(`${pkg}: Priority ${info.priority}, not Essential`);
    }
    expect(problems).toEqual([]);
  });

  test("scripts/install-deps installs from the list, names no package itself", () => {
    const script = readFileSync(join(REPO, "scripts/install-deps"), "utf8");
    expect(script).toContain("deps.txt");
    const code = script
      .split("\n")
      .filter((l) => !l.trim().startsWith("#"))
      .join("\n");
    // no package of the list written into the script (base ones are programs it runs: grep, dpkg)
    for (const d of dependencies())
      if (d.part !== "base" && !d.package.startsWith("npm") && !PARTS.includes(d.package))
        expect([d.package, new RegExp(`\\b${d.package}\\b`).test(code)]).toEqual([d.package, false]);
    const r = Bun.spawnSync(["bash", join(REPO, "scripts/install-deps"), "nonsense"], { stdout: "pipe", stderr: "pipe" });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toStartWith('install-deps: unknown part "nonsense"; parts: base build core transfers');
  });
});

describe("a missing program names its package", () => {
  test("one line: part, program, package, the apt-get command", () => {
    expect(missingProgramMessage("debootstrap")).toBe('bootstrap needs "debootstrap" (Debian package debootstrap): apt-get install debootstrap');
    expect(missingProgramMessage("/usr/sbin/nft")).toBe('networking needs "nft" (Debian package nftables): apt-get install nftables');
    expect(missingProgramMessage("xz")).toBe('transfers needs "xz" (Debian package xz-utils): apt-get install xz-utils');
    expect(missingProgramMessage("bun")).toBe('building machina needs "bun" (npm package bun@1.4.5): npm install -g bun@1.4.5');
    expect(missingProgramMessage("no-such-program")).toBeUndefined();
  });

  test("LinuxHost.run and runAsync turn a missing listed program into that line", async () => {
    const absent = dependencies().find((d) => d.program !== "-" && !d.package.startsWith("npm:") && which(d.program) === undefined);
    if (absent !== undefined) {
      const host = new LinuxHost();
      expect(() => host.run([absent.program, "--version"])).toThrow(missingProgramMessage(absent.program)!);
      await expect(host.runAsync([absent.program, "--version"])).rejects.toThrow(missingProgramMessage(absent.program)!);
    }
    // an unlisted program keeps Bun's own error
    expect(() => new LinuxHost().run(["machina-no-such-program"])).toThrow(/machina-no-such-program/);
  });
});
