#!/usr/bin/env bun
/**
 * Entering a running machine and listing machines, as a user types them (issue 18's goals:
 * `machinactl shell/exec NAME /bin/true` within ~10 ms of `nsenter -t LEADER -a /bin/true`,
 * `machinactl list` with a few machines in ~10 ms). Needs root and `scripts/build` (the compiled
 * commands in dist/bin, as scripts/setup installs them).
 *
 *   bun bench/enter.ts [--quick]
 *
 * Three busybox machines (a sleeping init) are started with `machinactl start` in a state
 * directory and pool of this run's own; each command runs N times, the commands alternating,
 * served by a machinad of the run's own (machinactl's native front end, as installed) and alone
 * (MACHINA_NO_DAEMON=1: the front end runs the full Bun machinactl, as on a host without
 * machinad); medians of wall time from spawn to exit. Everything is stopped and removed at the
 * end, also when the run is interrupted.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import { bootableBusyboxCopies, cleanupOnInterrupt, factsLine, median, REPO, startMachinad, stopRun, writeBlock } from "./common.ts";

const MACHINACTL = join(REPO, "dist/bin/machinactl");

interface Row {
  label: string;
  argv: string[];
  /** served by machinad */
  ms: number[];
  /** without machinad (the full machinactl; nsenter: the same command again) */
  aloneMs: number[];
}

function timed(argv: string[], env: Record<string, string>): number {
  const t0 = performance.now();
  const r = Bun.spawnSync(argv, { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return ms;
}

export async function benchEnter(quick: boolean): Promise<Row[]> {
  if (!existsSync(MACHINACTL)) throw new Error(`${MACHINACTL} is missing: run scripts/build first`);
  const busybox = await ensureBusyboxImage();
  const base = mkdtempSync("/var/tmp/machina-bench-enter-");
  const state = join(base, "state");
  const pool = join(base, "pool");
  mkdirSync(pool);
  // without machinad: machinactl's own core, as on a host without the daemon
  const env = { ...(process.env as Record<string, string>), MACHINA_STATE_DIR: state, MACHINA_POOL: pool, MACHINA_NO_DAEMON: "1" };
  const daemon = await startMachinad(join(base, "run"), state);
  const { MACHINA_NO_DAEMON: _alone, ...withoutFlag } = env;
  const served = { ...withoutFlag, ...daemon.env };
  const cleanup = async () => {
    await stopRun({ machinactl: MACHINACTL, env, state, procs: [] });
    await daemon.stop();
    rmSync(base, { recursive: true, force: true });
  };
  const done = cleanupOnInterrupt(cleanup);
  const names = [0, 1, 2].map((i) => `be${process.pid.toString(36)}x${i}`);
  try {
    bootableBusyboxCopies(busybox, pool, names);
    for (const name of names) timed([MACHINACTL, "start", name], env);
    const first = names[0]!;
    const leader = JSON.parse(readFileSync(join(state, "machines", first, "state.json"), "utf8")).leader as number;
    const row = (label: string, argv: string[]): Row => ({ label, argv, ms: [], aloneMs: [] });
    const rows: Row[] = [
      row("`nsenter -t LEADER -a /bin/true` (the floor)", ["nsenter", "-t", String(leader), "-a", "/bin/true"]),
      row("`machinactl shell NAME /bin/true`", [MACHINACTL, "shell", first, "/bin/true"]),
      row("`machinactl exec NAME /bin/true`", [MACHINACTL, "exec", first, "/bin/true"]),
      row("`machinactl list` (3 running)", [MACHINACTL, "list"]),
      row("`machinactl status NAME`", [MACHINACTL, "status", first]),
      row("`machinactl --version`", [MACHINACTL, "--version"]),
    ];
    const n = quick ? 10 : 40;
    // warm-up
    for (const r of rows)
      for (let i = 0; i < 3; i++) {
        timed(r.argv, served);
        timed(r.argv, env);
      }
    for (let i = 0; i < n; i++)
      for (const r of rows) {
        r.ms.push(timed(r.argv, served));
        r.aloneMs.push(timed(r.argv, env));
      }
    return rows;
  } finally {
    done();
    await cleanup();
  }
}

export function renderEnter(rows: Row[], facts: string): string {
  const m = (label: string) => median(rows.find((r) => r.label.startsWith(label))!.ms);
  const floor = m("`nsenter");
  const floorAlone = median(rows.find((r) => r.label.startsWith("`nsenter"))!.aloneMs);
  const over = (x: number, f: number) => `+${(x - f).toFixed(1)}`;
  const lines = [
    facts,
    "",
    `Three busybox machines started with \`machinactl start\`; each command run as installed (\`dist/bin/machinactl\`, the native front end) *served* by a machinad of the run's own, and *alone* (\`MACHINA_NO_DAEMON=1\`: the front end runs the full Bun machinactl, as on a host without machinad; machinactl's own core); N = ${rows[0]!.ms.length} runs per command and mode (after 3 warm-up runs), alternating; medians of wall time from spawn to exit, in ms.`,
    "",
    "| command | served | over `nsenter` | alone | over `nsenter` |",
    "|---|---:|---:|---:|---:|",
    ...rows.map((r) => {
      // the floor itself, and --version (no machine entered): no "over nsenter"
      const noOver = r.label.startsWith("`nsenter") || r.label.includes("--version");
      const s = median(r.ms);
      const a = median(r.aloneMs);
      return `| ${r.label} | ${s.toFixed(1)} | ${noOver ? "–" : over(s, floor)} | ${a.toFixed(1)} | ${noOver ? "–" : over(a, floorAlone)} |`;
    }),
    "",
    `Goals: shell/exec within ~10 ms of nsenter: shell **${over(m("`machinactl shell"), floor)}**, exec **${over(m("`machinactl exec"), floor)}** ms served; list with a few machines in ~10 ms: **${m("`machinactl list").toFixed(1)}** ms served.`,
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const rows = await benchEnter(quick);
  const body = renderEnter(
    rows,
    await factsLine(`bun bench/enter.ts${quick ? " --quick" : ""}`, [
      `util-linux ${
        (Bun.spawnSync(["nsenter", "--version"])
          .stdout.toString()
          .match(/[\d.]+/) ?? ["?"])[0]
      }`,
    ]),
  );
  console.log(body);
  await writeBlock(
    join(REPO, "BENCHMARKS.md"),
    "enter",
    body,
    "Entering a machine and listing machines (issue 18; goals: `machinactl shell/exec` within ~10 ms of `nsenter`, `list` in ~10 ms)",
  );
}
