/**
 * Networking sections of bench/run.ts (it passes its launcher in, so every number is taken the
 * same way as the others): start-to-payload with --network-veth, machina vs systemd-nspawn; and
 * 50 containers in one zone, the setup time of each as the zone fills up.
 */
import { spawnSync } from "bun";
import { join } from "node:path";

export interface NetBenchLaunched {
  proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  t0: number;
}

export interface NetBenchContext<L extends NetBenchLaunched> {
  launch(tool: "machina" | "nspawn", root: string, extra: string[], name: string): Promise<L>;
  afterRun(l: L): Promise<void>;
  failure(l: L, what: string): Promise<Error>;
  now(): number;
  stat(xs: number[]): { n: number; median: number; p90: number; min: number; max: number };
}

const FIFO = "/bench-net.fifo";

function ensureFifo(root: string): string {
  const p = join(root, FIFO);
  spawnSync(["sh", "-c", `[ -p "$0" ] || mkfifo "$0"`, p]);
  return p;
}

/** One run: go -> the payload has written to the FIFO (network up, payload running) -> exit. */
async function runOnce<L extends NetBenchLaunched>(
  ctx: NetBenchContext<L>,
  tool: "machina" | "nspawn",
  root: string,
  extra: string[],
  name: string,
  hold: string,
): Promise<{ payload: number; l: L }> {
  const reader = Bun.spawn(["cat", join(root, FIFO)], { stdout: "pipe" });
  const l = await ctx.launch(tool, root, [...extra, "/bin/sh", "-c", `echo up > ${FIFO}; ${hold}`], name);
  const got = await new Response(reader.stdout).text();
  const payload = ctx.now() - l.t0;
  if (got.trim() !== "up") throw await ctx.failure(l, `${tool}: payload did not start`);
  return { payload, l };
}

export interface VethResult {
  payloadMs: { machina: ReturnType<NetBenchContext<NetBenchLaunched>["stat"]>; nspawn: ReturnType<NetBenchContext<NetBenchLaunched>["stat"]> };
  wallMs: { machina: ReturnType<NetBenchContext<NetBenchLaunched>["stat"]>; nspawn: ReturnType<NetBenchContext<NetBenchLaunched>["stat"]> };
  ratio: number;
  wallRatio: number;
}

export async function benchVeth<L extends NetBenchLaunched>(ctx: NetBenchContext<L>, root: string, n: number, warmup: number): Promise<VethResult> {
  ensureFifo(root);
  const payload = { machina: [] as number[], nspawn: [] as number[] };
  const wall = { machina: [] as number[], nspawn: [] as number[] };
  for (let i = 0; i < warmup + n; i++) {
    for (const tool of i % 2 === 0 ? (["machina", "nspawn"] as const) : (["nspawn", "machina"] as const)) {
      const { payload: p, l } = await runOnce(ctx, tool, root, ["-n"], `mbveth${tool[0]}`, "true");
      const code = await l.proc.exited;
      const w = ctx.now() - l.t0;
      await ctx.afterRun(l);
      if (code !== 0) throw await ctx.failure(l, `${tool} -n exited ${code}`);
      if (i >= warmup) {
        payload[tool].push(p);
        wall[tool].push(w);
      }
    }
  }
  const pm = ctx.stat(payload.machina),
    pn = ctx.stat(payload.nspawn),
    wm = ctx.stat(wall.machina),
    wn = ctx.stat(wall.nspawn);
  return { payloadMs: { machina: pm, nspawn: pn }, wallMs: { machina: wm, nspawn: wn }, ratio: pm.median / pn.median, wallRatio: wm.median / wn.median };
}

export interface ZoneResult {
  /** Go -> payload running, for container 1..N in order, ms. */
  setupMs: number[];
  firstTen: number;
  lastTen: number;
  slope: number;
  stopAllMs: number;
}

export async function benchZone<L extends NetBenchLaunched>(ctx: NetBenchContext<L>, root: string, count: number): Promise<ZoneResult> {
  ensureFifo(root);
  const zone = `mb${process.pid % 100000}`;
  const running: L[] = [];
  const setupMs: number[] = [];
  let stopAllMs = 0;
  try {
    for (let i = 0; i < count; i++) {
      const { payload, l } = await runOnce(ctx, "machina", root, [`--network-zone=${zone}`], `mbz${i}`, "exec sleep 1000");
      running.push(l);
      setupMs.push(payload);
    }
  } finally {
    const t0 = ctx.now();
    for (const l of running) l.proc.kill("SIGTERM");
    for (const l of running) {
      await l.proc.exited;
      await ctx.afterRun(l);
    }
    stopAllMs = ctx.now() - t0;
  }
  const med = (xs: number[]) => ctx.stat(xs).median;
  // least-squares slope of setup time over the container's index (ms per container)
  const mx = (count - 1) / 2,
    my = setupMs.reduce((a, b) => a + b, 0) / count;
  let sxy = 0,
    sxx = 0;
  setupMs.forEach((y, x) => {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  });
  return { setupMs, firstTen: med(setupMs.slice(0, 10)), lastTen: med(setupMs.slice(-10)), slope: sxx > 0 ? sxy / sxx : 0, stopAllMs };
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "–");
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "–");

export function renderVeth(r: VethResult, factsLine: string): string {
  const row = (label: string, s: VethResult["payloadMs"]["machina"]) => `| ${label} | ${f1(s.median)} | ${f1(s.p90)} | ${f1(s.min)} | ${f1(s.max)} |`;
  return [
    factsLine,
    `N = ${r.payloadMs.machina.n} runs per tool, alternating, same wrapper and clock as \`true\`. Payload: \`/bin/sh -c 'echo up > FIFO'\` in busybox with \`-n\`; "to payload" = \`go\` until the host reads the FIFO (veth created, machina: host0 addressed and routed, payload running); "wall" = until the tool has exited (both remove the veth; machina also runs its undo: \`machina-net teardown\`).`,
    "",
    "| `-n`, ms | median | p90 | min | max |",
    "|---|---:|---:|---:|---:|",
    row("machina: go → payload", r.payloadMs.machina),
    row("systemd-nspawn: go → payload", r.payloadMs.nspawn),
    `| **ratio to payload** | **${f2(r.ratio)}** | | | |`,
    row("machina: go → exit", r.wallMs.machina),
    row("systemd-nspawn: go → exit", r.wallMs.nspawn),
    `| ratio wall | ${f2(r.wallRatio)} | | | |`,
    "",
    `Target ≤ 0.70 (to payload): ${r.ratio <= 0.7 ? "**pass**" : "**FAIL**"}. systemd-nspawn gives the container no address; machina's number includes addressing, routes, the nft table and the lease.`,
  ].join("\n");
}

export function renderZone(r: ZoneResult, factsLine: string): string {
  const n = r.setupMs.length;
  const buckets: string[] = [];
  for (let i = 0; i < n; i += 5) {
    const xs = r.setupMs.slice(i, i + 5);
    buckets.push(`| ${i + 1}–${i + xs.length} | ${xs.map(f1).join(", ")} |`);
  }
  return [
    factsLine,
    `${n} busybox containers started one after another in one zone (\`--network-zone=\`), each left running (\`sleep\`); setup time = \`go\` → payload running (same FIFO method as the veth section), ms:`,
    "",
    "| containers | setup time of each |",
    "|---|---|",
    ...buckets,
    "",
    `Median of the first 10: ${f1(r.firstTen)} ms, of the last 10: ${f1(r.lastTen)} ms (ratio ${f2(r.lastTen / r.firstTen)}); least-squares slope ${f2(r.slope)} ms per container already in the zone. Stopping all ${n} (SIGTERM, until every supervisor has exited and undone its network): ${f1(r.stopAllMs)} ms.`,
  ].join("\n");
}
