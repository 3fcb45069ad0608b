/**
 * TAP as the runtime-tools validation programs print it (mndrix/tap-go, TAP version 13), and the
 * verdict on one program run. Pure: no I/O.
 *
 * Only lines at column 0 are TAP. Indented lines are YAML blocks (`  ---` … `  ...`, JSON inside)
 * that embed diagnostics, among them the container's own output (runtimetest's TAP, with its own
 * `not ok` lines). tap-go prints a test's block after its line (util.SpecErrorOK) but the suite
 * also prints one before its line (util.RuntimeInsideValidate), so a test keeps both neighbours.
 */
import { z } from "zod";

export interface TapTest {
  ok: boolean;
  number: number | undefined;
  description: string;
  /** `# SKIP …`: counted, never a failure. */
  skip: boolean;
  /** `# TODO …`: a `not ok` that is expected, never a failure. */
  todo: boolean;
  line: string;
  /** The YAML block right before the test line, if any. */
  before: string[];
  /** The YAML block right after it, if any. */
  after: string[];
}

export interface TapDocument {
  /** `1..N` (at the start or, with tap-go's AutoPlan, at the end); undefined when absent. */
  plan: number | undefined;
  tests: number;
}

export interface Tap {
  /** One per `TAP version` line: two suite programs print two documents (linux_cgroups_cpus, _hugetlb). */
  documents: TapDocument[];
  tests: TapTest[];
  /** The `Bail out! reason` line's reason. */
  bailOut: string | undefined;
  /**
   * The `error` of YAML blocks that belong to no test (none right before or after them). The hook
   * programs (prestart, poststop, …) report a failure only this way: a block with the error and
   * `1..0`, never a `not ok`.
   */
  errors: string[];
}

const TEST_LINE = /^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*)$/;
const PLAN_LINE = /^1\.\.(\d+)\b/;
const DIRECTIVE = /#\s*(SKIP|TODO)\b\S*\s*(.*)$/i;
const BlockJson = z.object({ error: z.string().optional(), stdout: z.string().optional() }).loose();

/** A YAML block's JSON (tap-go writes JSON between `---` and `...`), or undefined. */
function blockJson(block: readonly string[]): z.infer<typeof BlockJson> | undefined {
  const body = block
    .map((l) => l.trim())
    .filter((l) => l !== "---" && l !== "...")
    .join("\n");
  try {
    const parsed = BlockJson.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The failing tests of the container's own TAP (runtimetest's), when a block carries it as `stdout`. */
export function innerFailures(block: readonly string[]): TapTest[] {
  const stdout = block.length ? blockJson(block)?.stdout : undefined;
  return stdout === undefined ? [] : parseTap(stdout).tests.filter((t) => !t.ok && !t.todo);
}

type Item = { kind: "test"; test: TapTest } | { kind: "block"; lines: string[] } | { kind: "other" };

export function parseTap(text: string): Tap {
  const tap: Tap = { documents: [], tests: [], bailOut: undefined, errors: [] };
  const items: Item[] = [];
  let doc: TapDocument | undefined;
  const document = (): TapDocument => {
    if (doc === undefined) tap.documents.push((doc = { plan: undefined, tests: 0 }));
    return doc;
  };
  for (const line of text.split("\n")) {
    const test = TEST_LINE.exec(line);
    if (test) {
      let description = test[3]!.trim();
      const directive = DIRECTIVE.exec(description);
      const kind = directive?.[1]?.toUpperCase();
      if (directive) description = `${description.slice(0, directive.index).trim()} ${directive[2]!.trim()}`.trim();
      const number = test[2] === undefined ? undefined : Number(test[2]);
      const t: TapTest = { ok: test[1] === "ok", number, description, skip: kind === "SKIP", todo: kind === "TODO", line, before: [], after: [] };
      tap.tests.push(t);
      document().tests++;
      items.push({ kind: "test", test: t });
    } else if (/^\s/.test(line)) {
      if (line.trim() === "") continue;
      const last = items.at(-1);
      if (last?.kind === "block") last.lines.push(line);
      else items.push({ kind: "block", lines: [line] });
    } else {
      const plan = PLAN_LINE.exec(line);
      if (line.startsWith("TAP version")) {
        doc = undefined;
        document();
      } else if (plan) {
        document().plan = Number(plan[1]);
      } else if (line.startsWith("Bail out!")) {
        tap.bailOut = line.slice("Bail out!".length).trim();
      }
      // anything else ("# diagnostic", stray output) is not TAP
      if (line !== "") items.push({ kind: "other" });
    }
  }
  items.forEach((item, i) => {
    if (item.kind !== "block") return;
    const prev = items[i - 1];
    const next = items[i + 1];
    if (prev?.kind === "test") prev.test.after = item.lines;
    if (next?.kind === "test") next.test.before = item.lines;
    if (prev?.kind !== "test" && next?.kind !== "test") {
      const error = blockJson(item.lines)?.error;
      if (error !== undefined) tap.errors.push(error);
    }
  });
  return tap;
}

export type Status = "pass" | "fail" | "error";

/** How one program's process ended. */
export interface ProgramRun {
  stdout: string;
  stderr: string;
  /** null when killed by a signal. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  seconds: number;
}

export interface ProgramResult {
  name: string;
  status: Status;
  /** One line: why it is not a pass (empty for a pass). */
  reason: string;
  passed: number;
  failed: number;
  skipped: number;
  todo: number;
  exitCode: number | null;
  seconds: number;
  /** The first failing tests (their lines and YAML), or the end of stderr when there is none. */
  failures: string[];
}

/** Failing tests kept per program, and lines kept per YAML block. */
const KEEP_TESTS = 3;
const KEEP_LINES = 12;

function tail(text: string, n: number): string[] {
  return text.trimEnd().split("\n").slice(-n);
}

/** A failing test as kept: its line, then runtimetest's own failures when a neighbouring block has them, else its YAML. */
function failureText(t: TapTest): string {
  const inner = [...innerFailures(t.before), ...innerFailures(t.after)];
  if (inner.length === 0) return [t.line, ...t.after.slice(0, KEEP_LINES)].join("\n");
  const indent = (lines: string[]) => lines.map((l) => `    ${l}`);
  return [t.line, "  # inside the container:", ...inner.slice(0, KEEP_TESTS).flatMap((i) => indent([i.line, ...i.after.slice(0, KEEP_LINES)]))].join("\n");
}

/**
 * pass: exit 0, no `not ok` (SKIP and TODO allowed), no error block outside a test, and each TAP
 * document's plan (when it has one) matching its tests; no TAP at all with exit 0 is a pass too
 * (process_rlimits_fail and process_capabilities_fail print nothing when the runtime refuses
 * their config, as it must). error: timed out, killed by a signal, a Go panic or a bail out.
 * fail: everything else — a `not ok`, an error block, a nonzero exit (the suite's util.Fatal:
 * the runtime refused a step, often before any TAP), fewer tests than planned.
 */
export function classify(name: string, run: ProgramRun): ProgramResult {
  const tap = parseTap(run.stdout);
  const failing = tap.tests.filter((t) => !t.ok && !t.todo);
  const result: ProgramResult = {
    name,
    status: "pass",
    reason: "",
    passed: tap.tests.filter((t) => t.ok && !t.skip).length,
    failed: failing.length,
    skipped: tap.tests.filter((t) => t.skip).length,
    todo: tap.tests.filter((t) => t.todo).length,
    exitCode: run.exitCode,
    seconds: run.seconds,
    failures: [...failing.slice(0, KEEP_TESTS).map(failureText), ...tap.errors.slice(0, KEEP_TESTS)],
  };
  const stderrTail = () => (run.stderr.trim() === "" ? [] : [tail(run.stderr, KEEP_LINES).join("\n")]);
  const error = (reason: string): ProgramResult => ({ ...result, status: "error", reason, failures: [...result.failures, ...stderrTail()] });
  const fail = (reason: string): ProgramResult => ({ ...result, status: "fail", reason, failures: [...result.failures, ...stderrTail()] });

  if (run.timedOut) return error(`timed out after ${Math.round(run.seconds)} s`);
  if (run.signal !== null) return error(`killed by ${run.signal}`);
  const panic = /^panic: (.*)$/m.exec(run.stderr);
  if (panic) return error(`Go panic: ${panic[1]}`);
  if (tap.bailOut !== undefined) return error(`bail out: ${tap.bailOut}`);
  if (failing.length > 0) {
    const first = failing[0]!;
    const inner = [...innerFailures(first.before), ...innerFailures(first.after)][0];
    return fail(`${failing.length} not ok, first: ${first.description}${inner ? ` (inside: ${inner.description})` : ""}`);
  }
  if (tap.errors.length > 0) return fail(`error: ${tap.errors[0]!.split("\n")[0]}`);
  const lastErr = tail(run.stderr, 1)[0] ?? "";
  if (run.exitCode !== 0) return fail(`exit ${run.exitCode} after ${tap.tests.length} tests${lastErr ? `: ${lastErr}` : ""}`);
  const short = tap.documents.find((d) => d.plan !== undefined && d.plan !== d.tests);
  if (short) return fail(`planned ${short.plan} tests, ran ${short.tests}`);
  return result;
}
