#!/usr/bin/env bun
/**
 * machinad under load (issue 16, scenario 4): C clients (default 50) each start, list, ask the
 * status of and stop a machine of their own in a loop for a minute, through the typed client
 * over the Unix socket, as machinactl and the dashboard do. Latency percentiles per call and the
 * errors (none expected); machinad's memory before and after; nothing left at the end. There is
 * no peer: machinectl talks to systemd-machined, which does not run here.
 *
 *   bun bench/daemon-load.ts [--quick] [--clients=50] [--seconds=60]   (rewrites bench:daemon-load)
 *
 * Root only. machinad as installed (dist/bin, scripts/build runs first), on a socket, state
 * directory and pool of its own; busybox copies with a sleeping init.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { MachinaClient } from "../src/client/client.ts";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import { bootableBusyboxCopies, factsLine, REPO, rssKib, waitForDaemon, writeBlock, saveResult } from "./common.ts";

type Op = "start" | "list" | "status" | "terminate";
const OPS: Op[] = ["start", "list", "status", "terminate"];

const arg = (name: string, dflt: number) => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a === undefined ? dflt : Number(a.slice(name.length + 3));
};

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length * p) / 100))] ?? NaN;
}

const rssMib = (pid: number) => rssKib(pid) / 1024;

export interface LoadResult {
  clients: number;
  seconds: number;
  lat: Record<Op, number[]>;
  errors: string[];
  rssBefore: number;
  rssAfter: number;
  /** machinad's RSS every 10 s of the run, MiB */
  rssTimeline: number[];
  left: string[];
  /** terminations that ended in SIGKILL after the timeout (the init had not taken the stop signal) */
  killed: number;
}

export async function benchDaemonLoad(clients: number, seconds: number): Promise<LoadResult> {
  Bun.spawnSync([join(REPO, "scripts/build")], { stdout: "ignore" });
  const busybox = await ensureBusyboxImage();
  const base = mkdtempSync("/var/tmp/machina-bench-load-");
  const pool = join(base, "pool");
  const state = join(base, "state");
  const socket = join(base, "run/api.sock");
  Bun.spawnSync(["mkdir", "-p", pool, state, join(base, "run")]);
  chmodSync(join(base, "run"), 0o700);
  const names = Array.from({ length: clients }, (_, i) => `ld${i}`);
  bootableBusyboxCopies(busybox, pool, names);
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", MACHINA_STATE_DIR: state, MACHINA_POOL: pool, MACHINA_API_SOCKET: socket, MACHINA_SYSTEMD: "0" };
  const daemon = Bun.spawn([join(REPO, "dist/bin/machinad"), "--no-autostart"], { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const client = new MachinaClient(socket);
  const lat: Record<Op, number[]> = { start: [], list: [], status: [], terminate: [] };
  const errors: string[] = [];
  let killed = 0;
  try {
    await waitForDaemon(client);
    const rssBefore = rssMib(daemon.pid);
    const end = performance.now() + seconds * 1000;
    const rssTimeline: number[] = [];
    const sampler = setInterval(() => rssTimeline.push(rssMib(daemon.pid)), 10_000);
    const timed = async (op: Op, fn: () => Promise<unknown>) => {
      const t = performance.now();
      try {
        await fn();
        lat[op].push(performance.now() - t);
      } catch (e) {
        errors.push(`${op}: ${(e as Error).message}`);
      }
    };
    await Promise.all(
      names.map(async (name) => {
        const c = new MachinaClient(socket);
        while (performance.now() < end) {
          await timed("start", () => c.start(name));
          await timed("list", () => c.list());
          await timed("status", () => c.status(name));
          await timed("terminate", async () => {
            if ((await c.terminate(name)) === "killed") killed++;
          });
        }
      }),
    );
    clearInterval(sampler);
    const rssAfter = rssMib(daemon.pid);
    const machines = join(state, "machines");
    await Bun.sleep(500);
    await client.list().catch(() => undefined); // its sweep
    const left = existsSync(machines) ? readdirSync(machines) : [];
    return { clients, seconds, lat, errors, rssBefore, rssAfter, rssTimeline, left, killed };
  } finally {
    for (const name of names) await client.terminate(name).catch(() => undefined);
    daemon.kill("SIGTERM");
    await Promise.race([daemon.exited, Bun.sleep(5000)]);
    rmSync(base, { recursive: true, force: true });
  }
}

function render(r: LoadResult, facts: string): string {
  const ms = (x: number) => (Number.isNaN(x) ? "–" : `${x.toFixed(1)} ms`);
  const kinds = [...new Set(r.errors.map((e) => e.replace(/"[^"]*"/g, '"…"')))];
  return [
    facts,
    "",
    `${r.clients} clients (the typed client over the Unix socket, as machinactl and the dashboard), each looping start → list → status → terminate on a busybox machine of its own (a sleeping init) for ${r.seconds} s, all at once; machinad as installed (dist/bin).`,
    "",
    "| call | calls | p50 | p90 | p99 | max |",
    "|---|---:|---:|---:|---:|---:|",
    ...OPS.map(
      (op) =>
        `| ${op} | ${r.lat[op].length} | ${ms(pct(r.lat[op], 50))} | ${ms(pct(r.lat[op], 90))} | ${ms(pct(r.lat[op], 99))} | ${ms(Math.max(...r.lat[op]))} |`,
    ),
    "",
    `Errors: ${r.errors.length === 0 ? "none" : `${r.errors.length} (${kinds.slice(0, 3).join("; ")})`}. machinad's resident memory: ${r.rssBefore.toFixed(1)} MiB before, ${r.rssAfter.toFixed(1)} MiB after (every 10 s: ${r.rssTimeline.map((x) => x.toFixed(0)).join(", ")} MiB). Left behind: ${r.left.length === 0 ? "nothing" : r.left.join(", ")}. Stops that needed SIGKILL after the timeout: ${r.killed} of ${r.lat.terminate.length}.`,
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const clients = arg("clients", quick ? 10 : 50);
  const seconds = arg("seconds", quick ? 10 : 60);
  const r = await benchDaemonLoad(clients, seconds);
  saveResult("daemon-load", r);
  const secArg = process.argv.find((x) => x.startsWith("--seconds="));
  const body = render(r, await factsLine(`bun bench/daemon-load.ts${quick ? " --quick" : ""}${secArg !== undefined ? ` ${secArg}` : ""}`));
  console.log(body);
  await writeBlock(
    join(REPO, "BENCHMARKS.md"),
    "daemon-load",
    body,
    "machinad under load: 50 clients starting, listing and stopping for a minute (issue 16; no errors expected)",
  );
}
