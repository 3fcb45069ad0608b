#!/usr/bin/env bun
/**
 * Many containers on one host (issue 16), machina and systemd-nspawn 252 side by side:
 *
 *   storm  N busybox containers (-x, no private network, payload: mark ready, then a long
 *          sleep) started at once in the background: time until all are up, the supervisors'
 *          memory in total and per container, `machinactl list`/`status` with N running, time
 *          to stop them all, and what is left afterwards (must be nothing).
 *   slope  the start cost against the number of running containers: `/bin/true` (-x) timed from
 *          start to exit with 0, N/4, … N of those containers running (flat is the goal: at N
 *          within 1.2× of at 0).
 *
 *   bun bench/density.ts [--quick] [--n=200]      (rewrites the bench:density block of BENCHMARKS.md)
 *
 * Root only. machina as installed (dist/bin, scripts/build runs first); systemd-nspawn with
 * --register=no --keep-unit, each in a cgroup of its own (on a host without systemd it would
 * otherwise split the caller's cgroup, shared by all). "Up" is the payload's own mark: it
 * creates /ready/NAME (a bind of one host directory) before it sleeps, the same for both tools.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import {
  cleanupOnInterrupt,
  containerInit,
  factsLine,
  markRun,
  median,
  nspawnInCgroup,
  reclaimDeadRuns,
  REPO,
  stopRun,
  versionLine,
  writeBlock,
  startMachinad,
  stopDeadRunsMachinad,
  tmpfsAt,
  saveResult,
} from "./common.ts";

const NSPAWN = join(REPO, "dist/bin/machina-nspawn");
const MACHINACTL = join(REPO, "dist/bin/machinactl");
const CG_V1 = "/sys/fs/cgroup/systemd";
const CG_V2 = "/sys/fs/cgroup/unified";

type Tool = "machina" | "nspawn";

interface Run {
  base: string;
  image: string;
  ready: string;
  state: string;
  env: Record<string, string>;
  procs: Map<string, Bun.Subprocess>;
}

/** The environment of machina's commands in a run whose state directory is `state` (machinad, if any, left out). */
const runEnv = (state: string): Record<string, string> => ({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  MACHINA_STATE_DIR: state,
  MACHINA_NO_DAEMON: "1",
});

function setup(base: string, busybox: string): Run {
  markRun(base);
  const image = join(base, "bb");
  Bun.spawnSync(["cp", "-a", busybox, image]);
  mkdirSync(join(image, "ready"), { recursive: true });
  const ready = join(base, "ready");
  const state = join(base, "state");
  mkdirSync(ready, { recursive: true });
  mkdirSync(state, { recursive: true });
  return {
    base,
    image,
    ready,
    state,
    env: runEnv(state),
    procs: new Map(),
  };
}

/** `fn` on a run of its own: its containers are SIGKILLed, its cgroups and directory removed, however it ends. */
async function withRun<T>(busybox: string, fn: (r: Run) => Promise<T>): Promise<T> {
  const r = setup(mkdtempSync("/var/tmp/machina-bench-density-"), busybox);
  const end = () => endRun(r.base, r.state, r.env, r.procs.values());
  const done = cleanupOnInterrupt(end);
  try {
    return await fn(r);
  } finally {
    done();
    await end();
  }
}

/** systemd-nspawn's cgroups of this benchmark (v1 name=systemd and v2). */
function benchCgroups(): string[] {
  return [CG_V1, CG_V2].flatMap((dir) =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((c) => c.startsWith("bench-density-"))
          .map((c) => join(dir, c))
      : [],
  );
}

/** Stop what a run started (also when interrupted: cleanupOnInterrupt), then remove its directory — unless something is still mounted below it. */
async function endRun(base: string, state: string, env: Record<string, string>, procs: Iterable<Bun.Subprocess>): Promise<void> {
  await stopRun({ machinactl: MACHINACTL, env, state, procs, cgroups: benchCgroups });
  // a killed boots run's machinad (on its socket) and its state's tmpfs
  stopDeadRunsMachinad(join(base, "run"));
  const mountpoints = () =>
    readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4]);
  if (mountpoints().includes(state)) Bun.spawnSync(["umount", "-l", state]);
  const mounted = mountpoints().filter((mp) => mp?.startsWith(`${base}/`));
  if (mounted.length > 0) console.error(`bench: still mounted, ${base} kept: ${mounted.join(", ")}`);
  else rmSync(base, { recursive: true, force: true });
}

const PAYLOAD = ["/bin/sh", "-c", 'touch "/ready/$(hostname)" && exec sleep 100000'];

function launch(tool: Tool, r: Run, name: string, extra: string[] = []): void {
  const common = ["-x", "-D", r.image, "-M", name, ...extra, `--bind=${r.ready}:/ready`, ...PAYLOAD];
  const argv = tool === "machina" ? [NSPAWN, "-q", "--console=pipe", ...common] : nspawnInCgroup(`bench-density-${name}`, ["--console=pipe", ...common]);
  r.procs.set(name, Bun.spawn(argv, { env: r.env, stdin: "ignore", stdout: "ignore", stderr: "ignore" }));
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!fn()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

const readyCount = (r: Run) => readdirSync(r.ready).length;

/** RSS and PSS (KiB) of a process. */
function memory(pid: number): { rss: number; pss: number } {
  try {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const f = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(t)?.[1] ?? NaN);
    return { rss: f("Rss"), pss: f("Pss") };
  } catch {
    return { rss: NaN, pss: NaN };
  }
}

async function stopAll(tool: Tool, r: Run): Promise<number> {
  const t = performance.now();
  const names = [...r.procs.keys()];
  if (tool === "machina") {
    const p = Bun.spawn([MACHINACTL, "terminate", ...names], { env: r.env, stdout: "ignore", stderr: "ignore" });
    await p.exited;
  } else for (const p of r.procs.values()) p.kill("SIGTERM");
  await Promise.all([...r.procs.values()].map((p) => p.exited));
  const ms = performance.now() - t;
  r.procs.clear();
  return ms;
}

/** What a run left behind: registry entries, mounts below its directory, machine cgroups, nspawn's cgroups. */
function leftovers(r: Run): string[] {
  const out: string[] = [];
  const machines = join(r.state, "machines");
  if (existsSync(machines)) for (const m of readdirSync(machines)) out.push(`registry entry ${m}`);
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const mp = line.split(" ")[4];
    if (mp?.startsWith(r.base)) out.push(`mount ${mp}`);
  }
  for (const dir of [`${CG_V2}/machine.slice`, CG_V1, CG_V2])
    if (existsSync(dir)) for (const c of readdirSync(dir)) if (/^(machine-dn|bench-density-)/.test(c)) out.push(`cgroup ${dir}/${c}`);
  return out;
}

function cleanupCgroups(): void {
  for (const cg of benchCgroups()) Bun.spawnSync(["sh", "-c", 'find "$0" -depth -type d -exec rmdir {} + 2>/dev/null', cg]);
}

export interface StormResult {
  n: number;
  allUpMs: number;
  rssKib: number;
  pssKib: number;
  listMs: number;
  statusMs: number;
  stopMs: number;
  left: string[];
}

async function storm(tool: Tool, busybox: string, n: number): Promise<StormResult> {
  return withRun(busybox, async (r) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) launch(tool, r, `dn${i}`);
    await until(`${n} ${tool} containers`, () => readyCount(r) >= n, 600_000);
    const allUpMs = performance.now() - t;
    await Bun.sleep(500);
    let rss = 0;
    let pss = 0;
    for (const p of r.procs.values()) {
      const m = memory(p.pid);
      rss += m.rss;
      pss += m.pss;
    }
    let listMs = NaN;
    let statusMs = NaN;
    if (tool === "machina") {
      const lists: number[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 10; i++) {
        let t0 = performance.now();
        const l = Bun.spawnSync([MACHINACTL, "list"], { env: r.env });
        lists.push(performance.now() - t0);
        if (!l.stdout.toString().includes(`${n} machines listed.`)) throw new Error(`list: ${l.stdout.toString().slice(-200)}`);
        t0 = performance.now();
        Bun.spawnSync([MACHINACTL, "status", `dn${i}`], { env: r.env, stdout: "ignore" });
        statuses.push(performance.now() - t0);
      }
      listMs = median(lists);
      statusMs = median(statuses);
    }
    const stopMs = await stopAll(tool, r);
    await Bun.sleep(200);
    if (tool === "machina") Bun.spawnSync([MACHINACTL, "list"], { env: r.env, stdout: "ignore" });
    cleanupCgroups();
    return { n, allUpMs, rssKib: rss / n, pssKib: pss / n, listMs, statusMs, stopMs, left: leftovers(r) };
  });
}

export interface NetStormResult {
  n: number;
  mode: "veth" | "zone";
  /** ms from the first launch until every payload runs (its network set up before it) */
  allUpMs: number;
  /** machina: until every container's address answers a ping from the host */
  allPingMs: number;
  stopMs: number;
  left: string[];
}

/** Network leftovers of a run: links, namespaces, network records of machina's state. */
function netLeftovers(r: Run): string[] {
  const out: string[] = [];
  const links = Bun.spawnSync(["ip", "-o", "link"]).stdout.toString();
  for (const m of links.matchAll(/^\d+: ((?:ve|vb|vz)-dn[^:@]*)/gm)) out.push(`link ${m[1]}`);
  if (existsSync(join(r.state, "netns"))) for (const n of readdirSync(join(r.state, "netns"))) out.push(`netns ${n}`);
  const net = join(r.state, "net");
  if (existsSync(net)) for (const f of readdirSync(net)) if (f.endsWith(".json") && f !== "leases.json") out.push(`network record ${f}`);
  return out;
}

async function netStorm(tool: Tool, busybox: string, n: number, mode: "veth" | "zone"): Promise<NetStormResult> {
  const extra = mode === "veth" ? ["--network-veth"] : ["--network-zone=dz"];
  return withRun(busybox, async (r) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) launch(tool, r, `dn${i}`, extra);
    await until(`${n} ${tool} containers (${mode})`, () => readyCount(r) >= n, 600_000);
    const allUpMs = performance.now() - t;
    let allPingMs = NaN;
    if (tool === "machina") {
      const rows = JSON.parse(Bun.spawnSync([MACHINACTL, "list", "--json=short"], { env: r.env }).stdout.toString()) as Array<{
        machine: string;
        addresses: string[];
      }>;
      const v4 = rows.map((m) => m.addresses.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a)));
      if (rows.length !== n || v4.some((a) => a === undefined))
        throw new Error(`${mode}: ${rows.length} machines, ${v4.filter((a) => a === undefined).length} without an IPv4 address`);
      // busybox's ping (busybox-static is installed for the tests; iputils-ping may not be)
      const pings = v4.map((a) => Bun.spawn(["busybox", "ping", "-q", "-c", "1", "-W", "5", a!], { stdout: "ignore", stderr: "ignore" }));
      const codes = await Promise.all(pings.map((p) => p.exited));
      if (codes.some((c) => c !== 0)) throw new Error(`${mode}: ${codes.filter((c) => c !== 0).length} containers did not answer`);
      allPingMs = performance.now() - t;
    }
    const stopMs = await stopAll(tool, r);
    await Bun.sleep(300);
    if (tool === "machina") Bun.spawnSync([MACHINACTL, "list"], { env: r.env, stdout: "ignore" });
    cleanupCgroups();
    return { n, mode, allUpMs, allPingMs, stopMs, left: [...leftovers(r), ...netLeftovers(r)] };
  });
}

export interface SlopeResult {
  n: number;
  /** running containers when probed */
  ks: number[];
  /** ms of `/bin/true` (-x) with k running, median of PROBES, per k */
  probes: number[];
}

const PROBES = 10;

/** One timed start to exit of `/bin/true` (-x) while the others run. */
function probe(tool: Tool, r: Run, name: string, extra: string[] = []): number {
  const common = ["-x", "-D", r.image, "-M", name, ...extra, "/bin/true"];
  const argv = tool === "machina" ? [NSPAWN, "-q", ...common] : nspawnInCgroup(`bench-density-${name}`, common);
  const t = performance.now();
  const p = Bun.spawnSync(argv, { env: r.env, stdout: "ignore", stderr: "pipe" });
  const ms = performance.now() - t;
  if (p.exitCode !== 0) throw new Error(`${tool} probe: ${p.stderr.toString()}`);
  return ms;
}

/** The start cost against the number of running containers: probes at k = 0, n/4, …, n running. */
async function slope(tool: Tool, busybox: string, n: number, extra: string[] = []): Promise<SlopeResult> {
  const ks = [0, n / 4, n / 2, (3 * n) / 4, n].map(Math.round);
  const probes: number[] = [];
  return withRun(busybox, async (r) => {
    let running = 0;
    for (const k of ks) {
      for (; running < k; running++) launch(tool, r, `dn${running}`, extra);
      await until(`${k} ${tool} containers`, () => readyCount(r) >= k, 600_000);
      // the cost of a start against the number *running*: not while the last batch still finishes
      // its own start-up in the background (registration hooks, console relays) — a fixed 300 ms
      // was not always enough after 50 starts on 2 CPUs
      await settled();
      const xs: number[] = [];
      for (let i = 0; i < PROBES; i++) xs.push(probe(tool, r, `dp${k}x${i}`, extra));
      probes.push(median(xs));
    }
    await stopAll(tool, r);
    if (tool === "machina") Bun.spawnSync([MACHINACTL, "list"], { env: r.env, stdout: "ignore" });
    return { n, ks, probes };
  });
}

function render(
  n: number,
  s: Record<Tool, StormResult>,
  sl: Record<Tool, SlopeResult>,
  net: Record<"veth" | "zone", Record<Tool, NetStormResult>>,
  netSlope: SlopeResult,
  facts: string,
): string {
  const ms = (x: number) => (Number.isNaN(x) ? "–" : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
  const mib = (k: number) => `${(k / 1024).toFixed(2)} MiB`;
  return [
    facts,
    "",
    `busybox containers with \`-x\` and no private network, payload \`touch /ready/NAME; exec sleep\` (a bind of one host directory: "up" is that mark, the same for both). machina as installed (dist/bin); systemd-nspawn 252 with --register=no --keep-unit, each in a cgroup of its own.`,
    "",
    `**Storm: ${n} started at once**`,
    "",
    "| | machina | systemd-nspawn |",
    "|---|---:|---:|",
    `| all ${n} up | ${ms(s.machina.allUpMs)} | ${ms(s.nspawn.allUpMs)} |`,
    `| per container, RSS of its supervisor | ${mib(s.machina.rssKib)} | ${mib(s.nspawn.rssKib)} |`,
    `| per container, PSS of its supervisor | ${mib(s.machina.pssKib)} | ${mib(s.nspawn.pssKib)} |`,
    `| \`machinactl list\` with ${n} running (median of 10) | ${ms(s.machina.listMs)} | – |`,
    `| \`machinactl status NAME\` with ${n} running | ${ms(s.machina.statusMs)} | – |`,
    `| stop all (\`machinactl terminate\` all names; nspawn: SIGTERM each) | ${ms(s.machina.stopMs)} | ${ms(s.nspawn.stopMs)} |`,
    `| left behind (registry, mounts, cgroups) | ${s.machina.left.length === 0 ? "nothing" : s.machina.left.slice(0, 5).join(", ")} | ${s.nspawn.left.length === 0 ? "nothing" : s.nspawn.left.slice(0, 5).join(", ")} |`,
    "",
    `**Slope: the start cost against the number running** (\`/bin/true\` with \`-x\`, start to exit, median of ${PROBES}, with k of the sleeping containers above running, probed once the host is idle again after starting them)`,
    "",
    `| k running | ${sl.machina.ks.join(" | ")} | at ${n} ÷ at 0 |`,
    `|---|${sl.machina.ks.map(() => "---:").join("|")}|---:|`,
    ...(["machina", "nspawn"] as const).map(
      (tool) =>
        `| ${tool === "machina" ? "machina" : "systemd-nspawn"} | ${sl[tool].probes.map(ms).join(" | ")} | ${((sl[tool].probes.at(-1) ?? NaN) / (sl[tool].probes[0] ?? NaN)).toFixed(2)}× |`,
    ),
    "",
    `**Networks: ${net.veth.machina.n} started at once with \`--network-veth\`, and ${net.zone.machina.n} in one \`--network-zone\`** (machina addresses each container before its payload starts; systemd-nspawn leaves that to the guest, so it has no "answers" time here)`,
    "",
    "| | machina veth | machina zone | systemd-nspawn veth | systemd-nspawn zone |",
    "|---|---:|---:|---:|---:|",
    `| all up | ${ms(net.veth.machina.allUpMs)} | ${ms(net.zone.machina.allUpMs)} | ${ms(net.veth.nspawn.allUpMs)} | ${ms(net.zone.nspawn.allUpMs)} |`,
    `| every address answers a ping from the host | ${ms(net.veth.machina.allPingMs)} | ${ms(net.zone.machina.allPingMs)} | – | – |`,
    `| stop all | ${ms(net.veth.machina.stopMs)} | ${ms(net.zone.machina.stopMs)} | ${ms(net.veth.nspawn.stopMs)} | ${ms(net.zone.nspawn.stopMs)} |`,
    `| left behind (also links, namespaces, network records) | ${[net.veth.machina, net.zone.machina, net.veth.nspawn, net.zone.nspawn].map((x) => (x.left.length === 0 ? "nothing" : x.left.slice(0, 3).join(", "))).join(" | ")} |`,
    "",
    `Start cost with \`--network-veth\` against the number of veth containers running (\`/bin/true\`, start to exit, median of ${PROBES}):`,
    "",
    `| k running | ${netSlope.ks.join(" | ")} | at ${netSlope.n} ÷ at 0 |`,
    `|---|${netSlope.ks.map(() => "---:").join("|")}|---:|`,
    `| machina | ${netSlope.probes.map(ms).join(" | ")} | ${((netSlope.probes.at(-1) ?? NaN) / (netSlope.probes[0] ?? NaN)).toFixed(2)}× |`,
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const nArg = process.argv.find((a) => a.startsWith("--n="));
  const n = nArg !== undefined ? Number(nArg.slice(4)) : quick ? 40 : 200;
  Bun.spawnSync([join(REPO, "scripts/build")], { stdout: "ignore" });
  // what an earlier run killed with SIGKILL left (its machines still run in its own state directory)
  for (const prefix of ["machina-bench-density-", "machina-bench-boots-"])
    await reclaimDeadRuns("/var/tmp", prefix, (dir) => endRun(dir, join(dir, "state"), runEnv(join(dir, "state")), []));
  const busybox = await ensureBusyboxImage();
  // --only=boots: scenario 3 alone (--boots=N, default 30), its own block of BENCHMARKS.md
  if (process.argv.includes("--only=boots")) {
    const bArg = process.argv.find((a) => a.startsWith("--boots="));
    const nb = bArg !== undefined ? Number(bArg.slice(8)) : 30;
    const b = await boots(nb, !process.argv.includes("--no-nspawn"));
    saveResult("density-boots", b);
    const body = renderBoots(
      b,
      await factsLine(`bun bench/density.ts --only=boots${bArg !== undefined ? ` ${bArg}` : ""}`, [versionLine(["systemd-nspawn", "--version"])]),
    );
    console.log(body);
    await writeBlock(join(REPO, "BENCHMARKS.md"), "density-boots", body, "Many Debian boots at once (issue 16; target: within 1.3× of the CPU-bound limit)");
    process.exit(0);
  }
  // --only=net: the network scenarios alone (printed, BENCHMARKS.md untouched)
  const onlyNet = process.argv.includes("--only=net");
  const s = onlyNet ? undefined : { machina: await storm("machina", busybox, n), nspawn: await storm("nspawn", busybox, n) };
  const sl = onlyNet ? undefined : { machina: await slope("machina", busybox, n), nspawn: await slope("nspawn", busybox, n) };
  const nn = Math.round(n / 2);
  const net = {
    veth: { machina: await netStorm("machina", busybox, nn, "veth"), nspawn: await netStorm("nspawn", busybox, nn, "veth") },
    zone: { machina: await netStorm("machina", busybox, nn, "zone"), nspawn: await netStorm("nspawn", busybox, nn, "zone") },
  };
  const netSlope = await slope("machina", busybox, nn, ["--network-veth"]);
  if (s === undefined || sl === undefined) {
    console.log(JSON.stringify({ net, netSlope }, null, 1));
    process.exit(0);
  }
  saveResult("density", { n, storm: s, slope: sl, net, netSlope });
  const body = render(
    n,
    s,
    sl,
    net,
    netSlope,
    await factsLine(`bun bench/density.ts${quick ? " --quick" : ""}${nArg !== undefined ? ` ${nArg}` : ""}`, [versionLine(["systemd-nspawn", "--version"])]),
  );
  console.log(body);
  await writeBlock(
    join(REPO, "BENCHMARKS.md"),
    "density",
    body,
    "Many containers: start storms and density (issue 16; targets: the last start ≤ 1.2× the first, ≤ 2 MiB per supervisor, list < 100 ms)",
  );
}

// ---------------------------------------------------------------- boots (scenario 3)

export interface BootsResult {
  n: number;
  /** CPU time (cgroup cpu.stat usage_usec) one boot needs to reach running, alone (the median of three), ms */
  cpuOneMs: number;
  /** the physical limit: n × cpuOne ÷ CPUs */
  limitMs: number;
  /** served by machinad (the front end's planning in machinad, as installed hosts run it) */
  machina: { allRunningMs: number; states: Record<string, number>; pssMib: number; cpuMs: number; allCpuMs: number; runs: number[] };
  /** without machinad: each front end runs the full Bun machina-nspawn */
  alone: { allRunningMs: number; states: Record<string, number>; pssMib: number; cpuMs: number; allCpuMs: number };
  nspawn: { allRunningMs: number; states: Record<string, number> } | undefined;
  /** fs.inotify.max_user_instances before the run, and during it */
  inotify: { before: number; used: number };
}

/** `systemctl is-system-running` inside the container whose init is `pid` (through nsenter, the same for both tools). */
function systemState(pid: string): string {
  return Bun.spawnSync(["nsenter", "-t", pid, "-m", "-u", "-i", "-n", "-p", "systemctl", "is-system-running"], { stdout: "pipe", stderr: "ignore" })
    .stdout.toString()
    .trim();
}

/**
 * The boots' READY=1, without touching the guests: bench/ready-receiver.py binds one
 * datagram socket per name in `dir` (each container's manager gets its own as $NOTIFY_SOCKET
 * and, with --notify-ready=yes, forwards its guest systemd's READY=1 — sent when startup has
 * finished, the moment `systemctl is-system-running` leaves "starting"). `wait` resolves with
 * ms since `t0` once all are ready; `died` ends it at once.
 */
async function readyWatcher(
  dir: string,
  names: string[],
): Promise<{ wait(t0: number, died: () => boolean, timeoutMs: number): Promise<number>; close(): void }> {
  const rx = Bun.spawn(["python3", join(REPO, "bench/ready-receiver.py"), dir, ...names], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = rx.stdout.getReader();
  const ready = new Set<string>();
  let buf = "";
  let last = 0;
  let listening = false;
  const pump = (async () => {
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === "listening") listening = true;
        else {
          ready.add(line);
          last = performance.now();
        }
        nl = buf.indexOf("\n");
      }
    }
  })();
  while (!listening) {
    if (rx.exitCode !== null) throw new Error("bench/ready-receiver.py exited before listening");
    await Bun.sleep(5);
  }
  return {
    async wait(t0, died, timeoutMs) {
      const end = performance.now() + timeoutMs;
      while (ready.size < names.length) {
        if (performance.now() > end) throw new Error(`boots: ${ready.size} of ${names.length} ready after ${timeoutMs} ms`);
        if (died()) throw new Error(`boots: a container exited before all ${names.length} were ready`);
        await Promise.race([pump, Bun.sleep(20)]);
      }
      return last - t0;
    },
    close() {
      rx.kill();
    },
  };
}

/** The state each guest reports once all said READY=1 (one `systemctl is-system-running` each, after the clock stopped). */
function statesOf(inits: Iterable<string | undefined>): Record<string, number> {
  const states: Record<string, number> = {};
  for (const pid of inits) {
    const st = pid === undefined ? "no init found" : systemState(pid);
    states[st] = (states[st] ?? 0) + 1;
  }
  return states;
}

export async function boots(n: number, withNspawn: boolean): Promise<BootsResult> {
  const { ensureDebianImage } = await import("../test/fixtures/images.ts");
  const debian = await ensureDebianImage();
  const base = mkdtempSync("/var/tmp/machina-bench-boots-");
  chmodSync(base, 0o755); // as /run: dnsmasq's "nobody" reads the veth dnsmasq's files below it (else one dnsmasq per container)
  markRun(base);
  const state = join(base, "state");
  const notify = join(base, "notify");
  tmpfsAt(state); // unmounted by endRun
  mkdirSync(notify);
  const daemon = await startMachinad(join(base, "run"), state);
  const env: Record<string, string> = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", MACHINA_STATE_DIR: state, ...daemon.env };
  const procs: Bun.Subprocess[] = [];
  // A booted systemd takes ~5 inotify instances, counted against root's fs.inotify.max_user_instances
  // (128 by default: ~24 booted containers; the rest die with "Failed to create control group
  // inotify object: Too many open files"). Raised for the run, restored after; reported.
  const inotifyPath = "/proc/sys/fs/inotify/max_user_instances";
  const inotifyBefore = Number(readFileSync(inotifyPath, "utf8").trim());
  const inotifyNeed = 128 + 8 * n;
  if (inotifyBefore < inotifyNeed) writeFileSync(inotifyPath, String(inotifyNeed));
  const start = (tool: Tool, name: string, alone = false) => {
    const args = ["-x", "-b", "-D", debian, "-M", name, "--network-veth", "--console=pipe", "--notify-ready=yes"];
    const argv = tool === "machina" ? [NSPAWN, "-q", ...args] : nspawnInCgroup(`bench-density-${name}`, args);
    const extra = alone ? { MACHINA_NO_DAEMON: "1" } : {};
    procs.push(Bun.spawn(argv, { env: { ...env, ...extra, NOTIFY_SOCKET: join(notify, name) }, stdin: "ignore", stdout: "ignore", stderr: "ignore" }));
  };
  const died = () => procs.some((p) => p.exitCode !== null);
  const waitExits = async () => {
    await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(120_000)]);
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    procs.length = 0;
  };
  const watchers: { close(): void }[] = [];
  const end = async () => {
    for (const w of watchers) w.close();
    await daemon.stop();
    await endRun(base, state, env, procs);
    if (inotifyBefore < inotifyNeed) writeFileSync(inotifyPath, String(inotifyBefore));
  };
  const done = cleanupOnInterrupt(end);
  const watch = async (names: string[]) => {
    const w = await readyWatcher(notify, names);
    watchers.push(w);
    return w;
  };
  try {
    // one boot alone: the CPU its guest needs to reach running (the machine's cgroup); the
    // median of three, one at a time
    const alone: number[] = [];
    for (const name of ["bo-one-a", "bo-one-b", "bo-one-c"]) {
      const w1 = await watch([name]);
      const t1 = performance.now();
      start("machina", name);
      await w1.wait(t1, died, 120_000);
      alone.push(guestsOf([name], state).cpuMs);
      await waitExits();
    }
    const cpuOneMs = median(alone);
    const storm = async (prefix: string, alone: boolean) => {
      const names = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
      const w = await watch(names);
      const busy0 = busyMs();
      const t = performance.now();
      for (const name of names) start("machina", name, alone);
      const ms = await w.wait(t, died, 900_000);
      const allCpuMs = busyMs() - busy0;
      const m = { allRunningMs: ms, allCpuMs, ...guestsOf(names, state) };
      await waitExits();
      return m;
    };
    // served: the median of three storms (one storm's time varies by ±10% here); alone: one
    const served = [await storm("bo", false), await storm("bp", false), await storm("bq", false)];
    const m = [...served].sort((a, b) => a.allRunningMs - b.allRunningMs)[1]!;
    const mAlone = await storm("ba", true);
    const names = Array.from({ length: n }, (_, i) => `bo${i}`);
    let ns: BootsResult["nspawn"];
    if (withNspawn) {
      const nsNames = names.map((x) => `bs${x.slice(2)}`);
      const w2 = await watch(nsNames);
      const t2 = performance.now();
      for (const name of nsNames) start("nspawn", name);
      const ms2 = await w2.wait(t2, () => false, 900_000);
      const inits = nsNames.map(containerInit);
      ns = { allRunningMs: ms2, states: statesOf(inits) };
      for (const pid of inits)
        if (pid !== undefined)
          Bun.spawnSync(["nsenter", "-t", pid, "-m", "-u", "-i", "-n", "-p", "systemctl", "poweroff", "--no-block"], { stdout: "ignore", stderr: "ignore" });
      await waitExits();
    }
    return {
      n,
      cpuOneMs,
      limitMs: (n * cpuOneMs) / navigator.hardwareConcurrency,
      machina: { ...m, runs: served.map((x) => x.allRunningMs) },
      alone: mAlone,
      nspawn: ns,
      inotify: { before: inotifyBefore, used: Math.max(inotifyBefore, inotifyNeed) },
    };
  } finally {
    done();
    await end();
  }
}

/** Until the host is nearly idle: under 10% of its CPUs busy over 250 ms (at most 10 s). */
async function settled(): Promise<void> {
  const end = performance.now() + 10_000;
  for (;;) {
    const b0 = busyMs();
    await Bun.sleep(250);
    if ((busyMs() - b0) / (250 * navigator.hardwareConcurrency) < 0.1 || performance.now() > end) return;
  }
}

/** CPU time the whole host has spent not idle since boot (/proc/stat), ms. */
function busyMs(): number {
  const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - idle) * 1000) / 100; // USER_HZ
}

/** machina's guests once all said READY=1 (leaders from the registry): their CPU so far, memory (PSS of every process of their cgroups) and states; then powered off. */
function guestsOf(names: string[], state: string): { states: Record<string, number>; pssMib: number; cpuMs: number } {
  const entry = (n: string) => JSON.parse(readFileSync(join(state, `machines/${n}/state.json`), "utf8")) as { leader: number; cgroup: string };
  let pss = 0;
  let cpuMs = 0;
  for (const n of names) {
    const cg = entry(n).cgroup;
    cpuMs += Number(/^usage_usec (\d+)$/m.exec(readFileSync(`${cg}/cpu.stat`, "utf8"))?.[1] ?? NaN) / 1000;
    const pids = Bun.spawnSync(["sh", "-c", `cat $(find "$0" -name cgroup.procs)`, cg]).stdout.toString().split("\n").filter(Boolean);
    for (const p of pids) pss += memory(Number(p)).pss;
  }
  const states = statesOf(names.map((n) => String(entry(n).leader)));
  for (const n of names)
    Bun.spawnSync([MACHINACTL, "poweroff", n], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", MACHINA_STATE_DIR: state },
      stdout: "ignore",
      stderr: "ignore",
    });
  return { states, pssMib: pss / 1024, cpuMs };
}

function renderBoots(b: BootsResult, facts: string): string {
  const s = (x: number) => `${(x / 1000).toFixed(2)} s`;
  const cpu = (m: BootsResult["alone"]) =>
    `${s(m.cpuMs)} / ${s(m.allCpuMs)} (${((m.allCpuMs - m.cpuMs) / b.n).toFixed(0)} ms per container outside the guests)`;
  const states = (r: Record<string, number>) =>
    Object.entries(r)
      .map(([k, v]) => `${v} ${k}`)
      .join(", ");
  return [
    facts,
    "",
    `${b.n} booted Debian bookworm containers (the tests' image: minbase + systemd) started at once with \`-x -b --network-veth --notify-ready=yes\`, until every guest's systemd has sent READY=1 (startup finished; each tool started with \`--notify-ready=yes\` and a notify socket of its own, to which it forwards that — no polling inside the guests, whose CPU the boots need), then each guest's \`systemctl is-system-running\` once (the states in brackets). The CPU-bound limit: the CPU time one boot's guest needs alone to reach running (its cgroup's usage_usec; the median of three boots, one at a time), × ${b.n} ÷ ${navigator.hardwareConcurrency} CPUs.`,
    "",
    "*machina*: the installed `machina-nspawn` (its native front end) with machinad running, which plans each start; *alone*: the same without machinad (`MACHINA_NO_DAEMON=1`: each front end runs the full Bun machina-nspawn). Served, three storms (the median's row shown), then one alone and one with systemd-nspawn, one after the other; the state directory is a tmpfs, as /run/machina is on a usual host (this VM's /run is its root file system, ext4 without a journal, where each file created costs kernel CPU).",
    "",
    "| | machina | alone | systemd-nspawn |",
    "|---|---:|---:|---:|",
    `| CPU of one boot alone (guest) | ${s(b.cpuOneMs)} | – | – |`,
    `| the limit for ${b.n} on ${navigator.hardwareConcurrency} CPUs | ${s(b.limitMs)} | ${s(b.limitMs)} | ${s(b.limitMs)} |`,
    `| all ${b.n} running | ${s(b.machina.allRunningMs)} (${states(b.machina.states)}) | ${s(b.alone.allRunningMs)} (${states(b.alone.states)}) | ${b.nspawn === undefined ? "–" : `${s(b.nspawn.allRunningMs)} (${states(b.nspawn.states)})`} |`,
    `| ÷ the limit | **${(b.machina.allRunningMs / b.limitMs).toFixed(2)}×** (three storms: ${b.machina.runs.map((x) => (x / b.limitMs).toFixed(2)).join(", ")}) | ${(b.alone.allRunningMs / b.limitMs).toFixed(2)}× | ${b.nspawn === undefined ? "–" : `${(b.nspawn.allRunningMs / b.limitMs).toFixed(2)}×`} |`,
    `| CPU spent until then: the guests (their cgroups) / the whole host | ${cpu(b.machina)} | ${cpu(b.alone)} | – |`,
    `| guests' memory when all run (PSS of their processes) | ${b.machina.pssMib.toFixed(0)} MiB (${(b.machina.pssMib / b.n).toFixed(1)} MiB each) | ${b.alone.pssMib.toFixed(0)} MiB | – |`,
    "",
    "systemd-nspawn's `-x` copies the image (~20,000 files) for each container on this VM's ext4, which has no journal: there the kernel's inode allocator checks every inode freed in the last minutes, one by one, at each file created (`recently_deleted`), so its time depends on what ran just before (6× to 25× the limit across runs here); machina's `-x` is an overlay and creates almost nothing.",
    "",
    `fs.inotify.max_user_instances was ${b.inotify.before}; the run raised it to ${b.inotify.used} and put it back. A booted systemd takes ~5 inotify instances, all counted against root (user namespaces too: their owner is charged), so with the default 128 only ~24 booted containers start — the rest, with either tool, stop at once with \`Failed to create control group inotify object: Too many open files\` (docs/machines.md, "Many machines").`,
  ].join("\n");
}
