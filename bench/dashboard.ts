#!/usr/bin/env bun
/**
 * machinad's API and dashboard with many machines (issue 14): `GET /v1/machines` and
 * `GET /v1/samples` with 200 running machines (over the Unix socket, as the typed client asks),
 * machinad's memory then, and the dashboard's first page load in headless chromium with 50 and
 * with 200 running machines (from the request of `/` to a table with every machine), with the
 * bytes it fetched. Absolute figures: there is no peer (machinectl has no API or dashboard here).
 *
 *   bun bench/dashboard.ts [--quick]      (rewrites the bench:dashboard block of BENCHMARKS.md)
 *
 * Root only. The installed form (dist/bin/machinad, dist/web; scripts/build runs first) on a
 * socket, state directory and pool of its own; busybox copies with a sleeping init, started and
 * terminated through the API; everything is removed at the end.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { API } from "../src/api/routes.ts";
import { MachinaClient } from "../src/client/client.ts";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import { bootableBusyboxCopies, factsLine, median, REPO, rssKib, versionLine, waitForDaemon, writeBlock, saveResult } from "./common.ts";

export interface DashboardResult {
  n: number;
  /** ms, each request */
  list200: number[];
  samples200: number[];
  /** ms from navigation to the full table */
  page50: number[];
  page200: number[];
  /** bytes of the page, script and style sheet, as served and gzip-compressed */
  pageBytes: number;
  pageGzipBytes: number;
  rss200Kib: number;
  rss0Kib: number;
  startMs: number;
}

const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))] ?? NaN;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export async function benchDashboard(quick: boolean): Promise<DashboardResult> {
  const n = quick ? 10 : 30;
  Bun.spawnSync([join(REPO, "scripts/build")], { stdout: "ignore" });
  const busybox = await ensureBusyboxImage();
  const base = mkdtempSync("/var/tmp/machina-bench-dashboard-");
  const pool = join(base, "pool");
  const socket = join(base, "run/api.sock");
  Bun.spawnSync(["mkdir", "-p", pool, join(base, "run"), join(base, "state")]);
  chmodSync(join(base, "run"), 0o700);
  const names = Array.from({ length: 200 }, (_, i) => `db${i}`);
  bootableBusyboxCopies(busybox, pool, names);
  const port = (() => {
    const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const p = s.port!;
    s.stop(true);
    return p;
  })();
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    MACHINA_STATE_DIR: join(base, "state"),
    MACHINA_POOL: pool,
    MACHINA_API_SOCKET: socket,
    MACHINA_SYSTEMD: "0",
  };
  const daemon = Bun.spawn([join(REPO, "dist/bin/machinad"), "--no-autostart", `--listen=127.0.0.1:${port}`], {
    env,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  const client = new MachinaClient(socket);
  const { default: puppeteer } = await import("puppeteer-core");
  const browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  try {
    await waitForDaemon(client);
    const rss0Kib = rssKib(daemon.pid);
    const token = readFileSync(join(base, "state/web.token"), "utf8").trim();
    const origin = `http://127.0.0.1:${port}`;
    const context = await browser.createBrowserContext();
    const login = await context.newPage();
    await login.goto(`${origin}/login?token=${token}`);
    await login.close();

    /** the first load of a page (a new tab, nothing cached): to every machine in the table */
    const pageLoad = async (count: number): Promise<{ ms: number; bytes: number }> => {
      const page = await context.newPage();
      await page.setCacheEnabled(false);
      let bytes = 0;
      page.on("response", (r) => {
        if (!r.url().includes("/v1/"))
          void r.buffer().then(
            (b) => void (bytes += b.length),
            () => undefined,
          );
      });
      const t = performance.now();
      await page.goto(`${origin}/`);
      await page.waitForFunction((c) => document.querySelectorAll("#machines tbody tr").length === c, { timeout: 60_000 }, count);
      const ms = performance.now() - t;
      await page.close();
      return { ms, bytes };
    };

    const t0 = performance.now();
    for (let i = 0; i < 50; i += 10) await Promise.all(names.slice(i, i + 10).map((m) => client.start(m)));
    const startMs = (performance.now() - t0) / 50;
    const page50: number[] = [];
    let pageBytes = 0;
    for (let i = 0; i < Math.max(5, n / 3); i++) {
      const r = await pageLoad(50);
      page50.push(r.ms);
      pageBytes = r.bytes;
    }
    for (let i = 50; i < 200; i += 10) await Promise.all(names.slice(i, i + 10).map((m) => client.start(m)));
    const list200: number[] = [];
    const samples200: number[] = [];
    await Bun.sleep(2500); // a round of samples with every machine
    for (let i = 0; i < n + 3; i++) {
      const l = await timed(async () => {
        if ((await client.list()).length !== 200) throw new Error("not 200 machines");
      });
      const s = await timed(() => client.call(API.latestSamples, {}));
      if (i >= 3) {
        list200.push(l);
        samples200.push(s);
      }
    }
    const page200: number[] = [];
    for (let i = 0; i < Math.max(5, n / 3); i++) page200.push((await pageLoad(200)).ms);
    const rss200Kib = rssKib(daemon.pid);
    const gz = ["index.html", "app.js", "app.css"].reduce((a, f) => a + gzipSync(readFileSync(join(REPO, "dist/web", f))).length, 0);
    return { n, list200, samples200, page50, page200, pageBytes, pageGzipBytes: gz, rss200Kib, rss0Kib, startMs };
  } finally {
    await browser.close();
    for (let i = 0; i < names.length; i += 20)
      await Promise.all(names.slice(i, i + 20).map((m) => client.terminate(m, { timeoutMs: 5000 }).catch(() => undefined)));
    daemon.kill("SIGTERM");
    await daemon.exited;
    rmSync(base, { recursive: true, force: true });
  }
}

export function renderDashboard(r: DashboardResult, facts: string): string {
  const f = (x: number) => x.toFixed(1);
  return [
    facts,
    "",
    `machinad as installed (\`dist/bin/machinad\`, the dashboard from \`dist/web\`) with busybox machines (a sleeping \`sh\` init each) started through its API (${f(r.startMs)} ms per start, 10 at a time). Requests over the Unix socket with the typed client, N = ${r.n} each (after 3 warm-up requests); page loads in headless chromium (a new tab, cache disabled, logged in), N = ${r.page50.length}.`,
    "",
    "| what | median, ms | p90, ms |",
    "|---|---:|---:|",
    `| \`GET /v1/machines\`, 200 running machines | ${f(median(r.list200))} | ${f(p90(r.list200))} |`,
    `| \`GET /v1/samples\`, 200 running machines | ${f(median(r.samples200))} | ${f(p90(r.samples200))} |`,
    `| dashboard's first load to a full table, 50 running machines | ${f(median(r.page50))} | ${f(p90(r.page50))} |`,
    `| dashboard's first load to a full table, 200 running machines | ${f(median(r.page200))} | ${f(p90(r.page200))} |`,
    "",
    `The page, script and style sheet: ${(r.pageBytes / 1024).toFixed(1)} KiB as fetched, ${(r.pageGzipBytes / 1024).toFixed(1)} KiB gzip-compressed (budget 48 KiB, docs/dashboard.md). machinad's resident memory: ${(r.rss0Kib / 1024).toFixed(1)} MiB idle, ${(r.rss200Kib / 1024).toFixed(1)} MiB with 200 machines sampled every 2 s and the dashboard served. Target (issue 14): \`list\` with 200 machines well under 100 ms: **${median(r.list200) < 100 ? "pass" : "FAIL"}**.`,
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const r = await benchDashboard(quick);
  const body = renderDashboard(r, await factsLine(`bun bench/dashboard.ts${quick ? " --quick" : ""}`, [versionLine(["chromium", "--version"])]));
  console.log(body);
  await writeBlock(join(REPO, "BENCHMARKS.md"), "dashboard", body, "machinad's API and dashboard with many machines (target: list of 200 well under 100 ms)");
  saveResult("dashboard", r);
}
