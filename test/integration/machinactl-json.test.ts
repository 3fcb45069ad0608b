/**
 * Every machinactl verb promises --json: each one that can run without a running machine is run
 * with --json (and --json=short) against a scratch pool and state directory, and its stdout must
 * be JSON — one document, or one object per line (logs) — or nothing. A verb not in one of the
 * two tables below fails the first test, so a new verb gets checked too. Root (import-tar's
 * confined extraction).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { VERBS } from "../../src/cli/machinactl/verbs.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { Scratch, baseEnv, machinactlSync, shOk } from "../helpers/machina.ts";

const files = new Scratch();
let env: Record<string, string>;
let work: string;

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  work = files.dir();
  mkdirSync(`${work}/pool`);
  mkdirSync(`${work}/state/logs`, { recursive: true });
  shOk(`cp -a '${image}' '${work}/pool/bb'`);
  writeFileSync(`${work}/state/logs/bb.log`, 'first line\nsecond "quoted" line\n');
  env = baseEnv({ MACHINA_POOL: `${work}/pool`, MACHINA_STATE_DIR: `${work}/state`, MACHINA_NO_DAEMON: "1", MACHINA_OCI_CACHE: `${work}/oci` });
});
afterAll(() => files.cleanup());

/** Verbs run here, in this order (later ones use what earlier ones made), with their arguments. */
const RUNNABLE: Array<[verb: string, args: () => string[]]> = [
  ["list", () => []],
  ["show", () => []],
  ["ps", () => []],
  ["logs", () => ["bb"]],
  ["list-images", () => []],
  ["image-status", () => ["bb"]],
  ["show-image", () => ["bb"]],
  ["clone", () => ["bb", "bb2"]],
  ["rename", () => ["bb2", "bb3"]],
  ["read-only", () => ["bb3", "false"]],
  ["export-tar", () => ["bb3", `${work}/bb3.tar`]],
  ["import-tar", () => [`${work}/bb3.tar`, "bb4"]],
  ["import-fs", () => [`${work}/pool/bb`, "bb5"]],
  ["export-oci", () => ["bb3", `${work}/bb3-oci`]],
  ["import-oci", () => [`${work}/bb3-oci`, "bb6"]],
  ["list-transfers", () => []],
  ["remove", () => ["bb3", "bb4", "bb5", "bb6"]],
  ["clean", () => []],
];

/** Verbs that need a running machine (or a network, a raw image, a transfer, the host's systemd). */
const NOT_HERE = new Set([
  "status",
  "kill",
  "poweroff",
  "reboot",
  "terminate",
  "copy-to",
  "copy-from",
  "shell",
  "login",
  "exec",
  "bind",
  "start",
  "enable",
  "disable",
  "set-limit",
  "import-raw",
  "export-raw",
  "pull-tar",
  "pull-raw",
  "pull-oci",
  "bootstrap",
  "cancel-transfer",
]);

/** stdout is one JSON document, or JSON objects one per line, or empty. */
function expectJson(stdout: string, what: string): void {
  if (stdout === "") return;
  try {
    JSON.parse(stdout);
    return;
  } catch {
    // one object per line?
  }
  for (const line of stdout.split("\n").filter((l) => l !== "")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`${what}: not JSON: ${JSON.stringify(stdout.slice(0, 300))}`);
    }
    expect(typeof parsed).toBe("object");
  }
}

describe("--json: every verb prints JSON", () => {
  test("every verb is either run here or said to need a machine", () => {
    const known = new Set([...RUNNABLE.map(([v]) => v), ...NOT_HERE]);
    expect(VERBS.map((v) => v.name).filter((n) => !known.has(n))).toEqual([]);
  });

  for (const [verb, args] of RUNNABLE)
    for (const mode of ["--json", "--json=short"]) {
      test(`${verb} ${mode}`, () => {
        // the verbs that change the pool run once (with --json), the rest with both modes
        const changes = ["clone", "rename", "read-only", "export-tar", "import-tar", "import-fs", "export-oci", "import-oci", "remove"].includes(verb);
        if (changes && mode !== "--json") return;
        const r = machinactlSync(env, mode, verb, ...args());
        expect(r.status, r.stderr).toBe(0);
        expectJson(r.stdout, `${verb} ${mode}`);
        if (verb !== "list" && verb !== "show" && verb !== "ps" && verb !== "list-transfers" && verb !== "clean") expect(r.stdout).not.toBe("");
      }, 60_000);
    }

  test("logs --json: one object per line, MESSAGE and MACHINE", () => {
    const r = machinactlSync(env, "logs", "--json", "bb");
    expect(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { MACHINE: "bb", MESSAGE: "first line" },
      { MACHINE: "bb", MESSAGE: 'second "quoted" line' },
    ]);
    expect(machinactlSync(env, "logs", "-o", "cat", "-n", "1", "bb").stdout).toBe('second "quoted" line\n');
  });
});
