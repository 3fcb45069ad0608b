/**
 * scripts/oci-conformance: run the runtime-tools validation programs against an OCI runtime.
 * See docs/oci-conformance.md and `scripts/oci-conformance --help`.
 */
import { existsSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { release } from "node:os";
import { join, resolve } from "node:path";
import { FixtureError } from "../fixtures/images.ts";
import { DEFAULT_TARBALL, ensureRuntimeTools, listPrograms, type ProgramReport, runProgram } from "./runtime-tools.ts";

const REPO = resolve(import.meta.dir, "../..");
const DEFAULT_RUNTIME = join(REPO, "bin/machina-oci");
const DEFAULT_TIMEOUT = 120;

export const USAGE = `Usage: scripts/oci-conformance [OPTION]...
Run the OCI runtime conformance suite (runtime-tools validation/*.t, TAP) against a runc-compatible
runtime, one program at a time, each in a fresh sandbox with its own --root; remove what each leaves.
Run as root. Builds the suite once (Go, offline) into $MACHINA_FIXTURE_CACHE (/var/cache/machina-test).

  --runtime PATH    the runtime command (default: bin/machina-oci of this checkout)
  --only NAME       run only this program (repeatable), e.g. --only create --only kill
  --json FILE       write every program's result (status, counts, first failures) as JSON
  --logs DIR        keep each program's raw output there (NAME.out: TAP, NAME.err)
  --timeout SECS    per program (default ${DEFAULT_TIMEOUT})
  --tarball PATH    the runtime-tools source (default $MACHINA_RUNTIME_TOOLS_TARBALL or
                    ${DEFAULT_TARBALL})
  --list            print the program names and exit
  -h, --help        this text

One line per program (pass / fail / error and why), then "N passed, N failed".
Exit 0 when every program passed, 1 otherwise, 2 on bad usage.`;

export interface Options {
  runtime: string;
  only: string[];
  json: string | undefined;
  logs: string | undefined;
  timeoutSeconds: number;
  tarball: string;
  list: boolean;
  help: boolean;
}

export class UsageError extends Error {}

/** Parse the command line; throws UsageError with one line naming the flag and what is allowed. */
export function parseArgs(argv: readonly string[], env: Record<string, string | undefined> = process.env): Options {
  const o: Options = {
    runtime: DEFAULT_RUNTIME,
    only: [],
    json: undefined,
    logs: undefined,
    timeoutSeconds: DEFAULT_TIMEOUT,
    tarball: env.MACHINA_RUNTIME_TOOLS_TARBALL || DEFAULT_TARBALL,
    list: false,
    help: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (arg.startsWith("--") && eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--runtime":
        o.runtime = value();
        break;
      case "--only":
        o.only.push(value());
        break;
      case "--json":
        o.json = value();
        break;
      case "--logs":
        o.logs = value();
        break;
      case "--timeout": {
        const v = value();
        if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`--timeout ${v}: expected a whole number of seconds (at least 1)`);
        o.timeoutSeconds = Number(v);
        break;
      }
      case "--tarball":
        o.tarball = value();
        break;
      case "--list":
        o.list = true;
        break;
      case "-h":
      case "--help":
        o.help = true;
        break;
      default:
        throw new UsageError(`unknown argument "${arg}"; see --help`);
    }
  }
  return o;
}

/** The runtime as an absolute path: a path as given, a bare name looked up on PATH. */
function resolveRuntime(runtime: string): string {
  const path = runtime.includes("/") ? resolve(runtime) : Bun.which(runtime);
  if (path === null || path === undefined || !existsSync(path) || !statSync(path).isFile()) throw new UsageError(`--runtime ${runtime}: no such command`);
  return path;
}

async function firstLine(cmd: string[]): Promise<string> {
  try {
    const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    const [out] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    return out.split("\n")[0]!.trim();
  } catch {
    return "";
  }
}

export function formatLine(r: ProgramReport, width: number): string {
  const counts = `${r.passed} ok${r.failed ? `, ${r.failed} not ok` : ""}${r.skipped ? `, ${r.skipped} skipped` : ""}`;
  const why = r.status === "pass" ? `(${counts})` : r.reason;
  const left = r.leftovers.length ? `  [removed: ${r.leftovers.length} left behind]` : "";
  return `${r.status.padEnd(5)} ${r.name.padEnd(width)} ${r.seconds.toFixed(1).padStart(5)} s  ${why}${left}`;
}

export async function main(argv: readonly string[]): Promise<number> {
  let o: Options;
  let runtime: string;
  try {
    o = parseArgs(argv);
    if (o.help) {
      console.log(USAGE);
      return 0;
    }
    runtime = o.list ? o.runtime : resolveRuntime(o.runtime);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`oci-conformance: ${e.message}`);
    return 2;
  }
  if (!o.list && process.getuid?.() !== 0) {
    console.error("oci-conformance: run as root (the runtimes create namespaces, mounts and cgroups)");
    return 2;
  }
  if (o.logs !== undefined) await mkdir(o.logs, { recursive: true });
  let tools: string;
  try {
    tools = await ensureRuntimeTools(o.tarball);
  } catch (e) {
    if (!(e instanceof FixtureError)) throw e;
    console.error(`oci-conformance: ${e.message}`);
    return 1;
  }
  const all = await listPrograms(tools);
  if (o.list) {
    console.log(all.join("\n"));
    return 0;
  }
  const unknown = o.only.filter((n) => !all.includes(n));
  if (unknown.length) {
    console.error(`oci-conformance: --only ${unknown[0]}: no such program; see --list`);
    return 2;
  }
  const names = o.only.length ? all.filter((n) => o.only.includes(n)) : all;
  const width = Math.max(...names.map((n) => n.length));
  const version = await firstLine([runtime, "--version"]);
  console.log(`# ${names.length} programs from ${tools} against ${runtime}${version ? ` (${version})` : ""}`);

  const results: ProgramReport[] = [];
  const started = new Date();
  // Ctrl-C / SIGTERM: stop the running program, let its clean-up run, then stop
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    for (const name of names) {
      if (interrupt.signal.aborted) break;
      const r = await runProgram(tools, name, { runtime, timeoutSeconds: o.timeoutSeconds, logDir: o.logs, signal: interrupt.signal });
      results.push(r);
      console.log(formatLine(r, width));
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (interrupt.signal.aborted) {
    console.error(`oci-conformance: interrupted after ${results.length} of ${names.length} programs (everything they left removed)`);
    return 130;
  }
  const passed = results.filter((r) => r.status === "pass").length;
  const errors = results.filter((r) => r.status === "error").length;
  const failed = results.length - passed;
  if (o.json !== undefined) {
    const report = {
      date: started.toISOString(),
      kernel: release(),
      runtime,
      runtimeVersion: version,
      tools,
      tarball: o.tarball,
      timeoutSeconds: o.timeoutSeconds,
      summary: { passed, failed, errors },
      programs: results,
    };
    await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
  }
  console.log(`${passed} passed, ${failed} failed${errors ? ` (${errors} of them errors: crash or timeout)` : ""}`);
  return failed === 0 ? 0 : 1;
}
