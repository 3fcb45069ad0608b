/**
 * The OCI conformance harness (scripts/oci-conformance): the TAP parser and the verdict on one
 * validation program (test/conformance/tap.ts), on outputs shaped like the suite's, and the
 * command line (test/conformance/cli.ts).
 */
import { describe, expect, test } from "bun:test";
import { formatLine, parseArgs, UsageError } from "../conformance/cli.ts";
import type { ProgramReport } from "../conformance/runtime-tools.ts";
import { classify, type ProgramRun, parseTap } from "../conformance/tap.ts";

const run = (stdout: string, more: Partial<ProgramRun> = {}): ProgramRun => ({
  stdout,
  stderr: "",
  exitCode: 0,
  signal: null,
  timedOut: false,
  seconds: 0.5,
  ...more,
});

/** runtimetest's output as RuntimeInsideValidate passes it through: a plan first, SKIPs, YAML after each test. */
const RUNTIMETEST = `TAP version 13
ok 1 - has expected hostname
  ---
  {
    "actual": "mrsdalloway",
    "expected": "mrsdalloway"
  }
  ...
ok 2 # SKIP linux.sysctl not set
not ok 3 - has expected soft RLIMIT_NOFILE
  ---
  {
    "actual": 4000,
    "expected": 3000
  }
  ...
1..3
`;

describe("parseTap", () => {
  test("tests, SKIP, the YAML block after a test, the plan at the end", () => {
    const tap = parseTap(RUNTIMETEST);
    expect(tap.documents).toEqual([{ plan: 3, tests: 3 }]);
    expect(tap.tests.map((t) => [t.ok, t.number, t.description, t.skip])).toEqual([
      [true, 1, "has expected hostname", false],
      [true, 2, "linux.sysctl not set", true],
      [false, 3, "has expected soft RLIMIT_NOFILE", false],
    ]);
    expect(tap.tests[2]!.after).toContain('    "actual": 4000,');
    expect(tap.errors).toEqual([]);
  });

  test("indented `not ok` (the container's output inside a block) is not a test", () => {
    const text = `TAP version 13
  ---
  {
    "stdout": "TAP version 13\\nnot ok 1 - inner"
  }
  ...
not ok 1 - outer
1..1
    not ok 7 - deeper
`;
    const tap = parseTap(text);
    expect(tap.tests.map((t) => t.description)).toEqual(["outer"]);
    expect(tap.tests[0]!.before.join("\n")).toContain("inner");
  });

  test("TODO, a plan-first document, two documents, Bail out", () => {
    const tap = parseTap("TAP version 13\n1..2\nok 1 - a\nnot ok 2 # TODO later\nTAP version 13\n1..0\nBail out! no runtime\n");
    expect(tap.documents).toEqual([
      { plan: 2, tests: 2 },
      { plan: 0, tests: 0 },
    ]);
    expect(tap.tests[1]).toMatchObject({ ok: false, todo: true, description: "later" });
    expect(tap.bailOut).toBe("no runtime");
  });

  test("an error block that belongs to no test (how the hook programs fail)", () => {
    const text = `TAP version 13
  ---
  {
    "error": "Pre-start hooks MUST be called after the \`start\` operation is called\\nRefer to: https://example"
  }
  ...
1..0
`;
    expect(parseTap(text).errors).toEqual(["Pre-start hooks MUST be called after the `start` operation is called\nRefer to: https://example"]);
    // a block without an "error" key, or that is not JSON, is no failure
    expect(parseTap('TAP version 13\n  ---\n  {"stdout": "x"}\n  ...\n1..0\n').errors).toEqual([]);
    expect(parseTap("TAP version 13\n  ---\n  not json\n  ...\n1..0\n").errors).toEqual([]);
  });
});

describe("classify", () => {
  test("pass: exit 0, every test ok or skipped", () => {
    const r = classify("process", run("TAP version 13\nok 1 - a\nok 2 # SKIP b\n1..2\n"));
    expect(r).toMatchObject({ name: "process", status: "pass", reason: "", passed: 1, skipped: 1, failed: 0, failures: [] });
  });

  test("fail: a not ok keeps the failing test with its diagnostic", () => {
    const r = classify("process_rlimits", run(RUNTIMETEST));
    expect(r.status).toBe("fail");
    expect(r.reason).toBe("1 not ok, first: has expected soft RLIMIT_NOFILE");
    expect(r.failed).toBe(1);
    expect(r.failures[0]).toStartWith("not ok 3 - has expected soft RLIMIT_NOFILE\n  ---");
    expect(r.failures[0]).toContain('"expected": 3000');
  });

  test("fail: runtimetest's own failures, carried as `stdout` in the block before the outer test, are what is kept", () => {
    const inner =
      'TAP version 13\nok 1 - has expected hostname\nnot ok 2 - shared root propagation exposes \\"/target\\"\n  ---\n  {"level": "MUST"}\n  ...\n1..2\n';
    const block = ["  ---", "  {", `    "stderr": "",`, `    "stdout": ${JSON.stringify(inner)}`, "  }", "  ..."].join("\n");
    const r = classify("linux_rootfs_propagation", run(`TAP version 13\n${block}\nnot ok 1 - check root propagation: shared\n1..1\n`));
    expect(r.reason).toBe('1 not ok, first: check root propagation: shared (inside: shared root propagation exposes \\"/target\\")');
    expect(r.failures[0]).toBe(
      [
        "not ok 1 - check root propagation: shared",
        "  # inside the container:",
        '    not ok 2 - shared root propagation exposes \\"/target\\"',
        "      ---",
        '      {"level": "MUST"}',
        "      ...",
      ].join("\n"),
    );
  });

  test("fail: the runtime refused a step (util.Fatal: exit 1, maybe no TAP at all); stderr kept", () => {
    const stderr = 'failed to create the container\ntime="…" level=error msg="runc create failed: apparmor failed to apply profile"\nexit status 1\n';
    const r = classify("linux_process_apparmor_profile", run("", { exitCode: 1, stderr }));
    expect(r.status).toBe("fail");
    expect(r.reason).toBe("exit 1 after 0 tests: exit status 1");
    expect(r.failures).toEqual([stderr.trimEnd()]);
    expect(classify("linux_cgroups_blkio", run("TAP version 13\n1..0\n", { exitCode: 1, stderr: "x\n" })).status).toBe("fail");
  });

  test("pass: no TAP and exit 0 (the _fail programs when the runtime refuses the bad config)", () => {
    expect(classify("process_rlimits_fail", run("", { stderr: "runc create failed: wrong rlimit value: RLIMIT_TEST\n" })).status).toBe("pass");
  });

  test("fail: an error block outside a test; fewer tests than planned", () => {
    const hooks = classify(
      "hooks",
      run('TAP version 13\n  ---\n  {\n    "error": "Hooks MUST be called in the listed order\\nRefer to: x"\n  }\n  ...\n1..0\n'),
    );
    expect(hooks).toMatchObject({ status: "fail", reason: "error: Hooks MUST be called in the listed order" });
    expect(classify("x", run("TAP version 13\n1..3\nok 1 - a\n")).reason).toBe("planned 3 tests, ran 1");
    // each document's plan counts for itself (linux_cgroups_cpus prints 112 tests, then an empty second document)
    expect(classify("linux_cgroups_cpus", run("TAP version 13\nok 1 - a\n1..1\nTAP version 13\n1..0\n")).status).toBe("pass");
  });

  test("a TODO not ok is no failure", () => {
    expect(classify("x", run("TAP version 13\nnot ok 1 # TODO later\n1..1\n")).status).toBe("pass");
  });

  test("error: timeout, signal, Go panic, bail out", () => {
    expect(classify("x", run("TAP version 13\n", { timedOut: true, exitCode: null, seconds: 120.2 }))).toMatchObject({
      status: "error",
      reason: "timed out after 120 s",
    });
    expect(classify("x", run("", { exitCode: null, signal: "SIGSEGV" })).reason).toBe("killed by SIGSEGV");
    const panic = classify("x", run("TAP version 13\nok 1 - a\n", { exitCode: 2, stderr: "panic: runtime error: index out of range\n\ngoroutine 1:\n" }));
    expect(panic).toMatchObject({ status: "error", reason: "Go panic: runtime error: index out of range" });
    expect(classify("x", run("Bail out! broken\n")).reason).toBe("bail out: broken");
  });
});

describe("command line", () => {
  test("defaults, repeatable --only, --opt=value", () => {
    const o = parseArgs([], {});
    expect(o.runtime).toEndWith("/bin/machina-oci");
    expect(o.timeoutSeconds).toBe(120);
    expect(o.tarball).toBe("/work/shared/vendor/runtime-tools-260e151.tar.gz");
    const p = parseArgs(["--runtime", "/usr/sbin/runc", "--only", "create", "--only=kill", "--json", "/tmp/r.json", "--timeout=30"], {
      MACHINA_RUNTIME_TOOLS_TARBALL: "/x.tar.gz",
    });
    expect(p).toMatchObject({ runtime: "/usr/sbin/runc", only: ["create", "kill"], json: "/tmp/r.json", timeoutSeconds: 30, tarball: "/x.tar.gz" });
  });

  test("bad input: one line naming the flag", () => {
    expect(() => parseArgs(["--timeout", "0"])).toThrow(new UsageError("--timeout 0: expected a whole number of seconds (at least 1)"));
    expect(() => parseArgs(["--only"])).toThrow(new UsageError("--only needs a value"));
    expect(() => parseArgs(["--bogus"])).toThrow(new UsageError('unknown argument "--bogus"; see --help'));
  });

  test("one line per program", () => {
    const r: ProgramReport = {
      name: "delete",
      status: "fail",
      reason: "2 not ok, first: x",
      passed: 2,
      failed: 2,
      skipped: 0,
      todo: 0,
      exitCode: 0,
      seconds: 13.46,
      failures: [],
      leftovers: ["container a"],
    };
    expect(formatLine(r, 8)).toBe("fail  delete    13.5 s  2 not ok, first: x  [removed: 1 left behind]");
    expect(formatLine({ ...r, status: "pass", reason: "", failed: 0, skipped: 3, leftovers: [] }, 6)).toBe("pass  delete  13.5 s  (2 ok, 3 skipped)");
  });
});
