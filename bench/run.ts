#!/usr/bin/env bun
/**
 * machina vs systemd-nspawn 252, side by side in one run (see BENCHMARKS.md).
 *
 *   bun bench/run.ts [--quick] [--only true|boot|memory|api]...
 *
 * Needs root, native/build/machina-helper and systemd-nspawn. The fixture images come from
 * test/fixtures/images.ts and are never touched: every run uses copies under /var/tmp.
 * Results: bench/results/<stamp>.json (+ latest.json); the generated blocks of BENCHMARKS.md
 * (between `<!-- bench:NAME -->` markers) are rewritten for the sections that ran.
 *
 * Both tools are started the same way: `sh -c` moves itself into a fresh per-run cgroup
 * (name=systemd + unified, as test/fixtures/nspawn-boot-check.sh does — nspawn with
 * --keep-unit splits its own cgroup into supervisor/ and payload/, which must not be shared
 * between runs) and `exec`s the tool. The tools alternate, and which one goes first alternates.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ensureBusyboxImage, ensureDebianImage } from "../test/fixtures/images.ts";
import { benchVeth, benchZone, renderVeth, renderZone } from "./net.ts";
import { benchClone, benchEphemeral, renderClone, renderEphemeral } from "./pool.ts";
import { benchImport, renderImport } from "./transfers.ts";
import { BENCH_CGROUP_ROOTS, launchWrapped, median, removeCgroupTree, replaceBlock, SETTLE_MS, startMachinad } from "./common.ts";

const REPO = resolve(import.meta.dir, "..");
/** The machina under test: a snapshot of HEAD (git archive + make -C native), or with --worktree the live tree. */
let TREE = REPO;
let HELPER = join(REPO, "native/build/machina-helper");
let MACHINA = join(REPO, "bin/machina-nspawn");
const RESULTS = join(REPO, "bench/results");
const DOC = join(REPO, "BENCHMARKS.md");
const COMMON = ["--register=no", "--keep-unit", "-q", "--console=pipe"];
const SECTIONS = ["true", "boot", "memory", "api", "veth", "zone50", "import", "ephemeral", "clone"] as const;
type Section = (typeof SECTIONS)[number];
type Tool = "machina" | "nspawn";
const TOOLS: Tool[] = ["machina", "nspawn"];

// ---------------------------------------------------------------- arguments

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const worktree = argv.includes("--worktree");
const only: Section[] = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--quick" || a === "--worktree") continue;
  if (a === "--only" && SECTIONS.includes(argv[i + 1] as Section)) only.push(argv[++i] as Section);
  else {
    console.error(`usage: bun bench/run.ts [--quick] [--worktree] [--only ${SECTIONS.join("|")}]...`);
    process.exit(2);
  }
}
const selected: Section[] = only.length > 0 ? only : [...SECTIONS];
const N = {
  ephemeral: quick ? 3 : 10,
  clone: quick ? 3 : 10,
  veth: quick ? 10 : 40,
  zone: quick ? 20 : 50,
  api: quick ? 10 : 40,
  true: quick ? 10 : 40,
  breakdown: quick ? 10 : 40,
  boot: quick ? 2 : 11,
  memory: quick ? 1 : 3,
  warmup: quick ? 2 : 5,
};

// ---------------------------------------------------------------- small helpers

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * s.length); // nearest rank
  return s[Math.min(s.length, Math.max(1, rank)) - 1] ?? NaN;
}
interface Stat {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  samples: number[];
}
function stat(xs: number[]): Stat {
  return {
    n: xs.length,
    median: median(xs),
    p90: percentile(xs, 90),
    min: Math.min(...xs),
    max: Math.max(...xs),
    samples: xs.map((x) => Math.round(x * 1000) / 1000),
  };
}

async function sh(cmd: string[], opts: { allowFail?: boolean; env?: Record<string, string> } = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: opts.env ?? process.env });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} failed (${code}): ${err.trim()}`);
  return { code, out, err };
}

// ---------------------------------------------------------------- cleanup registry

const cleanups: Array<() => Promise<void> | void> = [];
const live = new Set<number>(); // supervisors we started and have not reaped
async function cleanupAll(): Promise<void> {
  for (const pid of live) {
    for (const p of descendants(pid).reverse()) tryKill(p, "SIGKILL");
    tryKill(pid, "SIGKILL");
  }
  while (cleanups.length > 0) {
    const f = cleanups.pop();
    try {
      await f?.();
    } catch (e) {
      console.error(`cleanup: ${String(e)}`);
    }
  }
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    void cleanupAll().finally(() => process.exit(130));
  });
}
function tryKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

// ---------------------------------------------------------------- /proc

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
function descendants(pid: number): number[] {
  const out: number[] = [];
  for (const c of children(pid)) out.push(c, ...descendants(c));
  return out;
}
function nspid(pid: number): number[] {
  try {
    const m = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] ? m[1].trim().split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}
/** The descendant of `sup` that is PID 1 of a new PID namespace. */
function findLeader(sup: number): number | undefined {
  return descendants(sup).find((p) => {
    const ns = nspid(p);
    return ns.length === 2 && ns[1] === 1;
  });
}
/** kB of VmRSS and Pss of `pid`. */
function memoryOf(pid: number): { rssKiB: number; pssKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
  const pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? NaN);
  return { rssKiB: rss, pssKiB: pss };
}

// ---------------------------------------------------------------- launching

let seq = 0;
let workDir = "";
let stateDir = "";

interface Launched {
  proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  t0: number;
  cgroups: string[];
  name: string;
  log: string;
}

let compiled = ""; // `bun build --compile --bytecode` of the CLI, built per run (informational row)
/** The installed form's machinad (MACHINA_API_SOCKET), which serves machina-nspawn's front end. */
let machinadEnv: Record<string, string> = {};

function commandFor(tool: Tool | "compiled", name: string, root: string, extra: string[]): string[] {
  const args = [...COMMON, "-M", name, "-D", root, ...extra];
  return tool === "machina" ? [MACHINA, ...args] : tool === "compiled" ? [compiled, ...args] : ["systemd-nspawn", ...args];
}

async function launch(tool: Tool | "compiled", root: string, extra: string[], name = `mb${tool[0]}${process.pid}x${++seq}`, cmd?: string[]): Promise<Launched> {
  const cgroups = BENCH_CGROUP_ROOTS.map((h) => `${h}/machina-bench-${name}`);
  const log = join(workDir, `${name}.log`);
  const { proc, t0 } = await launchWrapped(cmd ?? commandFor(tool, name, root, extra), {
    cgroups,
    out: log,
    err: `${log}.err`,
    env: { ...process.env, ...machinadEnv, MACHINA_STATE_DIR: stateDir, MACHINA_HELPER: HELPER },
  });
  live.add(proc.pid);
  return { proc, t0, cgroups, name, log };
}

/** After the supervisor has exited: leftovers of that run (cgroups, nspawn's propagate dir). */
async function afterRun(l: Launched): Promise<void> {
  live.delete(l.proc.pid);
  for (const cg of l.cgroups) await removeCgroupTree(cg);
  await rm(`/run/systemd/nspawn/propagate/${l.name}`, { recursive: true, force: true });
}

async function failure(l: Launched, what: string): Promise<Error> {
  const out = (await readFile(l.log, "utf8").catch(() => "")) + (await readFile(`${l.log}.err`, "utf8").catch(() => ""));
  return new Error(`${what} (${l.name}):\n${out.split("\n").slice(-15).join("\n")}`);
}

// ---------------------------------------------------------------- 1. /bin/true

interface TrueResult {
  wallMs: Record<Tool | "compiled", Stat>;
  ratio: number;
  ratioCompiled: number;
  breakdownMs: {
    harness: Stat;
    bunFloor: Stat;
    cliVersion: Stat;
    cliToExec: Stat;
    helperAlone: Stat;
  };
  derivedMs: { bunRuntime: number; moduleLoad: number; specAndExec: number; helper: number };
}

/** Capture the exact spec bin/machina-nspawn hands the helper, via a fake MACHINA_HELPER. */
async function captureSpec(root: string, name: string): Promise<string> {
  const spec = join(workDir, "true.spec");
  const fake = join(workDir, "capture-helper.sh");
  // execWithSpec: argv = machina-helper run --spec-fd N, empty environment
  await writeFile(fake, `#!/bin/sh\nexec /bin/cat /proc/$$/fd/$3 >${spec}\n`);
  await chmod(fake, 0o755);
  const r = await sh([MACHINA, ...commandFor("machina", name, root, ["/bin/true"]).slice(1)], {
    env: { ...process.env, MACHINA_HELPER: fake, MACHINA_STATE_DIR: stateDir } as Record<string, string>,
  });
  if (r.code !== 0 || statSync(spec).size === 0) throw new Error(`could not capture the spec: ${r.err}`);
  return spec;
}

/** One timed run (go → exit) of `tool` or of a raw command, through the same wrapper. */
async function timedRun(tool: Tool | "compiled", busybox: string, name: string, cmd?: string[]): Promise<number> {
  const l = await launch(tool, busybox, ["/bin/true"], name, cmd);
  const code = await l.proc.exited;
  const dt = now() - l.t0;
  await afterRun(l);
  if (code !== 0) throw await failure(l, `${cmd ? cmd.join(" ") : tool} exited ${code}`);
  return dt;
}

async function benchTrue(busybox: string): Promise<TrueResult> {
  const wall: Record<Tool | "compiled", number[]> = { machina: [], nspawn: [], compiled: [] };
  const tools: Array<Tool | "compiled"> = ["machina", "nspawn", "compiled"];
  for (let i = 0; i < N.warmup + N.true; i++) {
    const order = [...tools.slice(i % 3), ...tools.slice(0, i % 3)];
    for (const tool of order) {
      const dt = await timedRun(tool, busybox, `mbtrue${tool[0]}`);
      if (i >= N.warmup) wall[tool].push(dt);
    }
  }
  // breakdown: the same wrapper, settle and clock, around the pieces
  const spec = await captureSpec(busybox, "mbtruem");
  const b = { harness: [] as number[], bunFloor: [] as number[], cliVersion: [] as number[], cliToExec: [] as number[], helperAlone: [] as number[] };
  const cliArgs = commandFor("machina", "mbtruem", busybox, ["/bin/true"]).slice(1);
  for (let i = 0; i < N.warmup + N.breakdown; i++) {
    const s = await timedRun("machina", busybox, "mbtrueh", ["/bin/true"]);
    const f = await timedRun("machina", busybox, "mbtrueb", ["bun", "-e", "0"]);
    const v = await timedRun("machina", busybox, "mbtruev", [MACHINA, "--version"]);
    const c = await timedRun("machina", busybox, "mbtruec", ["env", "MACHINA_HELPER=/bin/true", MACHINA, ...cliArgs]);
    const h = await timedRun("machina", busybox, "mbtruem", [HELPER, "run", "--spec", spec]);
    if (i >= N.warmup) {
      b.cliToExec.push(c);
      b.harness.push(s);
      b.bunFloor.push(f);
      b.cliVersion.push(v);
      b.helperAlone.push(h);
    }
  }
  const m = median(wall.machina);
  const helper = median(b.helperAlone);
  const version = median(b.cliVersion);
  const floor = median(b.bunFloor);
  const toExec = median(b.cliToExec);
  return {
    wallMs: { machina: stat(wall.machina), nspawn: stat(wall.nspawn), compiled: stat(wall.compiled) },
    ratio: m / median(wall.nspawn),
    ratioCompiled: median(wall.compiled) / median(wall.nspawn),
    breakdownMs: {
      harness: stat(b.harness),
      bunFloor: stat(b.bunFloor),
      cliVersion: stat(b.cliVersion),
      cliToExec: stat(b.cliToExec),
      helperAlone: stat(b.helperAlone),
    },
    derivedMs: { bunRuntime: floor, moduleLoad: version - floor, specAndExec: toExec - version, helper },
  };
}
// ---------------------------------------------------------------- 2. boot

interface BootSample {
  bootMs: number;
  poweroffMs: number;
  totalMs: number;
  state: string;
  exit: number;
}
interface BootResult {
  boot: Record<Tool, Stat>;
  poweroff: Record<Tool, Stat>;
  total: Record<Tool, Stat>;
  ratio: { boot: number; poweroff: number; total: number };
  samples: Record<Tool, BootSample[]>;
}

/** A fresh writable view of `src`: an overlay (upper dir in the work dir), so no copy is needed and `src` is never written. */
async function overlayTree(src: string, tag: string): Promise<string> {
  const base = join(workDir, `${tag}-${++seq}`);
  const [upper, work, merged] = ["upper", "work", "merged"].map((d) => join(base, d)) as [string, string, string];
  for (const d of [upper, work, merged]) await mkdir(d, { recursive: true });
  await sh(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${src},upperdir=${upper},workdir=${work}`, merged]);
  const st = statSync(merged);
  const undo = async (): Promise<void> => {
    if (existsSync(merged)) await sh(["umount", merged], { allowFail: true });
    await rm(base, { recursive: true, force: true });
    await rm(`/run/systemd/nspawn/locks/inode-${st.dev}:${st.ino}`, { force: true });
  };
  cleanups.push(undo);
  return merged;
}
async function dropTree(merged: string): Promise<void> {
  await sh(["umount", merged]);
  await rm(resolve(merged, ".."), { recursive: true, force: true });
}

async function copyTree(src: string, tag: string): Promise<string> {
  const dst = join(workDir, `${tag}-${++seq}`);
  await sh(["cp", "-a", "--reflink=auto", src, dst]);
  // nspawn leaves a lock file per image inode in /run/systemd/nspawn/locks
  const st = statSync(dst);
  cleanups.push(async () => {
    await rm(dst, { recursive: true, force: true });
    await rm(`/run/systemd/nspawn/locks/inode-${st.dev}:${st.ino}`, { force: true });
  });
  return dst;
}

/** Leader pid: machina's from state.json, nspawn's as the PID-1 descendant. */
async function waitLeader(tool: Tool, l: Launched, timeoutMs = 10000): Promise<number> {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    if (l.proc.exitCode !== null) throw await failure(l, `${tool} exited ${l.proc.exitCode} before its leader appeared`);
    if (tool === "machina") {
      try {
        const st = JSON.parse(readFileSync(join(stateDir, "machines", l.name, "state.json"), "utf8")) as { leader?: number };
        if (st.leader) return st.leader;
      } catch {
        // not yet
      }
    } else {
      const leader = findLeader(l.proc.pid);
      if (leader !== undefined) return leader;
    }
    await sleep(2);
  }
  throw await failure(l, `${tool}: no leader after ${timeoutMs} ms`);
}

/** `systemctl is-system-running --wait` inside, once the manager answers at all. */
async function waitRunning(l: Launched, leader: number, timeoutMs = 60000): Promise<string> {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    const r = await sh(["nsenter", "-t", String(leader), "-a", "systemctl", "is-system-running", "--wait"], { allowFail: true });
    const state = r.out.trim();
    if (["running", "degraded", "maintenance", "stopping"].includes(state)) return state;
    if (l.proc.exitCode !== null) throw await failure(l, `container exited ${l.proc.exitCode} while booting`);
    await sleep(10);
  }
  throw await failure(l, `not running after ${timeoutMs} ms`);
}

async function bootOnce(tool: Tool, tree: string): Promise<BootSample> {
  const l = await launch(tool, tree, ["-b"]);
  try {
    const leader = await waitLeader(tool, l);
    const state = await waitRunning(l, leader);
    const t1 = now();
    l.proc.kill("SIGTERM");
    const exit = await l.proc.exited;
    const t2 = now();
    if (exit !== 0) throw await failure(l, `${tool} exited ${exit} after SIGTERM`);
    return { bootMs: t1 - l.t0, poweroffMs: t2 - t1, totalMs: t2 - l.t0, state, exit };
  } finally {
    if (l.proc.exitCode === null) {
      for (const p of descendants(l.proc.pid).reverse()) tryKill(p, "SIGKILL");
      l.proc.kill("SIGKILL");
      await l.proc.exited;
    }
    await afterRun(l);
  }
}

async function benchBoot(debian: string): Promise<BootResult> {
  const samples: Record<Tool, BootSample[]> = { machina: [], nspawn: [] };
  for (let i = 0; i < N.boot + 1; i++) {
    const order = i % 2 === 0 ? TOOLS : [...TOOLS].reverse();
    for (const tool of order) {
      const tree = await overlayTree(debian, `debian-${tool}`);
      const s = await bootOnce(tool, tree);
      await dropTree(tree);
      console.error(`  boot ${i === 0 ? "(warm-up) " : ""}${tool}: ${s.bootMs.toFixed(0)} + ${s.poweroffMs.toFixed(0)} ms (${s.state})`);
      if (i > 0) samples[tool].push(s);
    }
  }
  const pick = (tool: Tool, k: "bootMs" | "poweroffMs" | "totalMs"): Stat => stat(samples[tool].map((s) => s[k]));
  const r = (k: "bootMs" | "poweroffMs" | "totalMs"): number => pick("machina", k).median / pick("nspawn", k).median;
  return {
    boot: { machina: pick("machina", "bootMs"), nspawn: pick("nspawn", "bootMs") },
    poweroff: { machina: pick("machina", "poweroffMs"), nspawn: pick("nspawn", "poweroffMs") },
    total: { machina: pick("machina", "totalMs"), nspawn: pick("nspawn", "totalMs") },
    ratio: { boot: r("bootMs"), poweroff: r("poweroffMs"), total: r("totalMs") },
    samples,
  };
}

// ---------------------------------------------------------------- 3. memory

interface MemSample {
  processes: Array<{ pid: number; comm: string; rssKiB: number; pssKiB: number }>;
  rssKiB: number;
  pssKiB: number;
}
interface MemResult {
  sleep: Record<Tool, { rssKiB: Stat; pssKiB: Stat; last: MemSample }>;
  debian: Record<Tool, { rssKiB: Stat; pssKiB: Stat; last: MemSample }>;
}

/** The host-side processes of a container: the supervisor and descendants outside the container's PID namespace. */
function hostSide(sup: number): MemSample {
  const pids = [sup, ...descendants(sup).filter((p) => nspid(p).length === 1)];
  const processes = pids.map((pid) => ({ pid, comm: readFileSync(`/proc/${pid}/comm`, "utf8").trim(), ...memoryOf(pid) }));
  return { processes, rssKiB: processes.reduce((a, p) => a + p.rssKiB, 0), pssKiB: processes.reduce((a, p) => a + p.pssKiB, 0) };
}

async function memoryOnce(tool: Tool, tree: string, extra: string[], boot: boolean): Promise<MemSample> {
  const l = await launch(tool, tree, extra);
  try {
    const leader = await waitLeader(tool, l);
    if (boot) await waitRunning(l, leader);
    await sleep(300); // let the supervisor settle (relay buffers, notify socket)
    if (tool === "machina") {
      const st = JSON.parse(readFileSync(join(stateDir, "machines", l.name, "state.json"), "utf8")) as { supervisor?: number };
      if (st.supervisor !== l.proc.pid) throw new Error(`state.json names supervisor ${st.supervisor}, expected ${l.proc.pid}`);
    }
    const m = hostSide(l.proc.pid);
    l.proc.kill("SIGTERM");
    const exit = await l.proc.exited;
    if (boot && exit !== 0) throw await failure(l, `${tool} exited ${exit} after SIGTERM`);
    return m;
  } finally {
    if (l.proc.exitCode === null) {
      for (const p of descendants(l.proc.pid).reverse()) tryKill(p, "SIGKILL");
      l.proc.kill("SIGKILL");
      await l.proc.exited;
    }
    await afterRun(l);
  }
}

async function benchMemory(busybox: string, debian: string): Promise<MemResult> {
  const out = { sleep: {}, debian: {} } as MemResult;
  for (const kind of ["sleep", "debian"] as const) {
    const acc: Record<Tool, MemSample[]> = { machina: [], nspawn: [] };
    for (let i = 0; i < N.memory; i++) {
      const order = i % 2 === 0 ? TOOLS : [...TOOLS].reverse();
      for (const tool of order) {
        if (kind === "sleep") acc[tool].push(await memoryOnce(tool, busybox, ["/bin/sleep", "1000"], false));
        else {
          const tree = await overlayTree(debian, `debian-mem-${tool}`);
          acc[tool].push(await memoryOnce(tool, tree, ["-b"], true));
          await dropTree(tree);
        }
      }
    }
    for (const tool of TOOLS) {
      const ss = acc[tool];
      const last = ss[ss.length - 1];
      if (!last) throw new Error("no memory sample");
      out[kind][tool] = { rssKiB: stat(ss.map((s) => s.rssKiB)), pssKiB: stat(ss.map((s) => s.pssKiB)), last };
    }
  }
  return out;
}

// ---------------------------------------------------------------- report

interface Facts {
  date: string;
  host: string;
  nproc: number;
  kernel: string;
  cpu: string;
  memTotalMiB: number;
  bun: string;
  nspawn: string;
  commit: string;
  git: string;
  command: string;
  quick: boolean;
  iterations: typeof N;
}

async function gatherFacts(): Promise<Facts> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const commit = (await sh(["git", "-C", REPO, "rev-parse", "HEAD"])).out.trim();
  const git = commit.slice(0, 7);
  const dirty = (await sh(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], { allowFail: true })).out.trim()
    ? " (+ uncommitted changes)"
    : "";
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    host: readFileSync("/proc/sys/kernel/hostname", "utf8").trim(),
    nproc: navigator.hardwareConcurrency,
    kernel: (await sh(["uname", "-r"])).out.trim(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "?",
    memTotalMiB: Math.round(Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024),
    bun: Bun.version,
    nspawn: (await sh(["systemd-nspawn", "--version"])).out.split("\n")[0] ?? "?",
    commit,
    git: worktree
      ? git + dirty
      : `${git} (HEAD, built from a git archive snapshot with scripts/build — the helper and the bundled commands, as scripts/setup installs them)`,
    command: ["bun", "bench/run.ts", ...argv].join(" "),
    quick,
    iterations: N,
  };
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "–");
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "–");
const mib = (kib: number): string => (kib / 1024).toFixed(2);
const verdict = (ok: boolean): string => (ok ? "**pass**" : "**FAIL**");

function factsLine(f: Facts): string {
  return [
    `Measured ${f.date} on \`${f.host}\`: ${f.nproc} CPUs (${f.cpu}), ${f.memTotalMiB} MiB RAM, kernel ${f.kernel}, Bun ${f.bun}, ${f.nspawn}, machina ${f.git}.`,
    `Command: \`${f.command}\`${f.quick ? " (quick mode: fewer iterations)" : ""}.`,
  ].join("  \n");
}

function renderTrue(r: TrueResult, f: Facts): string {
  const w = r.wallMs;
  const b = r.breakdownMs;
  const d = r.derivedMs;
  const row = (label: string, s: Stat): string => `| ${label} | ${f1(s.median)} | ${f1(s.p90)} | ${f1(s.min)} | ${f1(s.max)} |`;
  return [
    factsLine(f),
    `N = ${w.machina.n} runs per tool (after ${f.iterations.warmup} warm-up runs each), rotating order. Wall time in ms from \`go\` to exit: each run's \`sh\` wrapper first moves itself into a fresh cgroup, waits ${SETTLE_MS} ms, then execs the tool when told (wrapper + exec floor: ${f1(b.harness.median)} ms, included in every number).`,
    "",
    "| `/bin/true` in busybox | median | p90 | min | max |",
    "|---|---:|---:|---:|---:|",
    row(
      worktree
        ? "machina-nspawn (`bin/machina-nspawn` of the work tree: the bundle `dist/` while fresh, else the TypeScript)"
        : "machina-nspawn as installed (`dist/bin/machina-nspawn`, linked by `scripts/setup`: the native front end, served by machinad running on a socket of this run's)",
      w.machina,
    ),
    row("systemd-nspawn", w.nspawn),
    `| **ratio machina/nspawn** | **${f2(r.ratio)}** | ${f2(w.machina.p90 / w.nspawn.p90)} | | |`,
    row("*for comparison:* the Bun program alone (`src/cli/nspawn.ts` as `bun build --compile --bytecode`, built by this run)", w.compiled),
    `| *ratio compiled/nspawn* | *${f2(r.ratioCompiled)}* | ${f2(w.compiled.p90 / w.nspawn.p90)} | | |`,
    "",
    `Target ≤ 0.50 (bin/machina-nspawn): ${verdict(r.ratio <= 0.5)}.`,
    "",
    `Where machina's time goes (N = ${b.helperAlone.n} each, same wrapper and clock; ms):`,
    "",
    "| stage | how measured | median | p90 |",
    "|---|---|---:|---:|",
    `| wrapper + exec floor | \`/bin/true\` as the tool | ${f1(b.harness.median)} | ${f1(b.harness.p90)} |`,
    `| Bun runtime start | \`bun -e 0\` | ${f1(b.bunFloor.median)} | ${f1(b.bunFloor.p90)} |`,
    `| Bun + loading the CLI's modules | \`bin/machina-nspawn --version\` | ${f1(b.cliVersion.median)} | ${f1(b.cliVersion.p90)} |`,
    `| Bun + CLI until it execs the helper (args, host/image facts, spec, memfd) | \`MACHINA_HELPER=/bin/true bin/machina-nspawn … /bin/true\` | ${f1(b.cliToExec.median)} | ${f1(b.cliToExec.p90)} |`,
    `| helper alone (cgroups, clone, mounts, pivot, exec, wait, cleanup) | \`machina-helper run --spec FILE\`, FILE = the exact spec the CLI produced (captured with a fake \`MACHINA_HELPER\`) | ${f1(b.helperAlone.median)} | ${f1(b.helperAlone.p90)} |`,
    "",
    `Split (medians of the separate measurements): Bun runtime ${f1(d.bunRuntime)} + module loading ${f1(d.moduleLoad)} + facts/spec/memfd ${f1(d.specAndExec)} + helper ${f1(d.helper)} = ${f1(d.bunRuntime + d.moduleLoad + d.specAndExec + d.helper)} ms, against ${f1(w.machina.median)} ms measured end to end (the helper's cgroup moves vary run to run, see below).`,
  ].join("\n");
}
function renderBoot(r: BootResult, f: Facts): string {
  const row = (what: string, k: "boot" | "poweroff" | "total"): string[] => [
    `| ${what} | ${f1(r[k].machina.median)} | ${f1(r[k].machina.p90)} | ${f1(r[k].nspawn.median)} | ${f1(r[k].nspawn.p90)} | ${f2(r.ratio[k])} |`,
  ];
  const states = TOOLS.map((t) => `${t}: ${[...new Set(r.samples[t].map((s) => s.state))].join("/")}`).join(", ");
  return [
    factsLine(f),
    `N = ${r.total.machina.n} boots per tool (after one warm-up boot each), alternating; every boot uses a fresh overlay (lower = the cached Debian fixture, upper = a new empty directory; mounted before the clock starts). Times in ms.`,
    "Boot = spawn → `nsenter -t LEADER -a systemctl is-system-running --wait` answers; poweroff = SIGTERM to the supervisor → its exit (status 0). Console `pipe`.",
    "",
    "| Debian `-b` | machina median | machina p90 | nspawn median | nspawn p90 | ratio (medians) |",
    "|---|---:|---:|---:|---:|---:|",
    ...row("boot to `running`", "boot"),
    ...row("poweroff", "poweroff"),
    ...row("**total**", "total"),
    "",
    `States reached: ${states}. Target total ratio ≤ 0.90: ${verdict(r.ratio.total <= 0.9)}.`,
  ].join("\n");
}

function renderMemory(r: MemResult, f: Facts): string {
  const rows: string[] = [];
  for (const kind of ["sleep", "debian"] as const) {
    for (const tool of TOOLS) {
      const x = r[kind][tool];
      const procs = x.last.processes.map((p) => `\`${p.comm}\` ${mib(p.rssKiB)}`).join(" + ");
      const label = kind === "sleep" ? "busybox `sleep 1000`" : "Debian booted (`running`)";
      rows.push(`| ${label} | ${tool === "machina" ? "machina" : "systemd-nspawn"} | ${mib(x.rssKiB.median)} | ${mib(x.pssKiB.median)} | ${procs} |`);
    }
  }
  const worst = Math.max(r.sleep.machina.rssKiB.median, r.debian.machina.rssKiB.median);
  return [
    factsLine(f),
    `N = ${r.sleep.machina.rssKiB.n} per tool and payload, alternating; medians. Host-side processes = the supervisor (machina: \`supervisor\` of state.json, the pid \`bin/machina-nspawn\` was started as; nspawn: the \`systemd-nspawn\` process) plus any descendant outside the container's PID namespace. Sampled 300 ms after the container is up (Debian: after \`running\`).`,
    "",
    "| payload | tool | VmRSS MiB | Pss MiB | processes (VmRSS MiB, last sample) |",
    "|---|---|---:|---:|---|",
    ...rows,
    "",
    `Ratios (RSS, medians): sleep ${f2(r.sleep.machina.rssKiB.median / r.sleep.nspawn.rssKiB.median)}, Debian ${f2(r.debian.machina.rssKiB.median / r.debian.nspawn.rssKiB.median)}. Target machina ≤ 2 MiB RSS: ${verdict(worst <= 2048)}.`,
  ].join("\n");
}

// ---------------------------------------------------------------- 4. start through machinad's API

interface ApiResult {
  startMs: Stat;
  stopMs: Stat;
}

/** machinad on a temporary socket/state/pool; POST /v1/machines/NAME/start {wait:true}, request to running. */
async function benchApi(busybox: string): Promise<ApiResult> {
  const { MachinaClient } = await import("../src/client/client.ts");
  const base = join(workDir, "api");
  const pool = join(base, "pool");
  const image = join(base, "image");
  await mkdir(pool, { recursive: true });
  await sh(["cp", "-a", busybox, image]);
  // an init that stops on SIGRTMIN+3 (the stop signal)
  await writeFile(join(image, "sbin/init"), "#!/bin/sh\ntrap 'exit 0' 37 38 TERM\nwhile :; do sleep 1000 & wait $!; done\n", { mode: 0o755 });
  const socket = join(base, "run/api.sock");
  const env = {
    ...(process.env as Record<string, string>),
    MACHINA_STATE_DIR: join(base, "state"),
    MACHINA_POOL: pool,
    MACHINA_API_SOCKET: socket,
    MACHINA_ENABLE_DIR: join(base, "wants"),
    MACHINA_SYSTEMD: "0",
    MACHINA_HELPER: HELPER,
  };
  const daemon = Bun.spawn([join(TREE, "bin/machinad"), "--no-autostart"], { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  cleanups.push(async () => {
    daemon.kill("SIGTERM");
    await daemon.exited;
  });
  const client = new MachinaClient(socket);
  for (let i = 0; i < 200 && !(await client.ping()); i++) await sleep(25);
  const start: number[] = [];
  const stop: number[] = [];
  for (let i = 0; i < N.warmup + N.api; i++) {
    const name = `mba${process.pid}x${i}`;
    await symlink(image, join(pool, name));
    const t0 = now();
    await client.start(name);
    const t1 = now();
    await sleep(30); // let init set its traps
    const t2 = now();
    await client.terminate(name);
    const t3 = now();
    if (i >= N.warmup) {
      start.push(t1 - t0);
      stop.push(t3 - t2);
    }
  }
  return { startMs: stat(start), stopMs: stat(stop) };
}

function renderApi(r: ApiResult, f: Facts): string {
  return [
    factsLine(f),
    `N = ${N.api} starts (after ${N.warmup} warm-up starts) of the busybox image (an \`sh\` init) through machinad's API: one \`POST /v1/machines/NAME/start\` with \`{"wait":true}\` over the Unix socket (the typed client), timed from the request to the answer, which comes when the helper reports the payload running; then a stop (\`POST …/stop\`, SIGTERM to the supervisor → SIGRTMIN+3 to init, until the registry entry is gone), timed separately.`,
    "",
    "| through the API (ms) | median | p90 | min | max |",
    "|---|---:|---:|---:|---:|",
    `| start: request to running | ${f1(r.startMs.median)} | ${f1(r.startMs.p90)} | ${f1(r.startMs.min)} | ${f1(r.startMs.max)} |`,
    `| stop: request to gone | ${f1(r.stopMs.median)} | ${f1(r.stopMs.p90)} | ${f1(r.stopMs.min)} | ${f1(r.stopMs.max)} |`,
    "",
    `Target: start median < 20 ms: ${verdict(r.startMs.median < 20)}.`,
  ].join("\n");
}

async function updateDoc(blocks: Partial<Record<Section, string>>): Promise<void> {
  let doc = existsSync(DOC) ? await readFile(DOC, "utf8") : "# Benchmarks\n";
  for (const [name, body] of Object.entries(blocks)) doc = replaceBlock(doc, name, body, name);
  await writeFile(DOC, doc);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root");
  const facts = await gatherFacts();
  await mkdir("/var/tmp", { recursive: true });
  workDir = await mkdtemp("/var/tmp/machina-bench-");
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));
  stateDir = join(workDir, "state");
  if (!worktree) {
    TREE = join(workDir, "machina");
    await mkdir(TREE);
    await sh(["sh", "-c", `git -C "$0" archive "$2" | tar -x -C "$1"`, REPO, TREE, facts.commit]);
    await sh(["ln", "-s", join(REPO, "node_modules"), join(TREE, "node_modules")]);
    await sh([join(TREE, "scripts/build")]); // as scripts/setup installs it: the helper and the bundled commands (bin/ runs dist/ while it is fresh)
    HELPER = join(TREE, "native/build/machina-helper");
    MACHINA = join(TREE, "dist/bin/machina-nspawn"); // the installed form: scripts/setup links it
    // served by machinad, as on a host that runs it: the front end's planning in machinad
    const daemon = await startMachinad(join(workDir, "run"), stateDir, join(TREE, "dist/bin/machinad"));
    machinadEnv = daemon.env;
    cleanups.push(() => daemon.stop());
  }
  const busyboxCache = await ensureBusyboxImage();
  const debianCache = selected.some((s) => s === "boot" || s === "memory" || s === "import" || s === "ephemeral") ? await ensureDebianImage() : "";
  const busybox = await copyTree(busyboxCache, "busybox"); // neither tool may write into the shared cache

  const results: Record<string, unknown> = { facts };
  const blocks: Partial<Record<Section, string>> = {};
  const t0 = now();
  if (selected.includes("true")) {
    console.error("1. /bin/true …");
    // the same CLI as one executable with precompiled bytecode, for the comparison row
    const entry = join(workDir, "entry.ts");
    await writeFile(entry, `import { main } from ${JSON.stringify(join(TREE, "src/cli/nspawn.ts"))};\nprocess.exit(main(process.argv.slice(2)));\n`);
    compiled = join(workDir, "machina-nspawn-compiled");
    await sh(["bun", "build", entry, "--compile", "--bytecode", "--outfile", compiled]);
    const r = await benchTrue(busybox);
    results["true"] = r;
    blocks.true = renderTrue(r, facts);
    console.error(`   machina ${f1(r.wallMs.machina.median)} ms, nspawn ${f1(r.wallMs.nspawn.median)} ms, ratio ${f2(r.ratio)}`);
  }
  if (selected.includes("boot")) {
    console.error("2. boot Debian …");
    const r = await benchBoot(debianCache);
    results["boot"] = r;
    blocks.boot = renderBoot(r, facts);
    console.error(`   total: machina ${f1(r.total.machina.median)} ms, nspawn ${f1(r.total.nspawn.median)} ms, ratio ${f2(r.ratio.total)}`);
  }
  if (selected.includes("memory")) {
    console.error("3. memory …");
    const r = await benchMemory(busybox, debianCache);
    results["memory"] = r;
    blocks.memory = renderMemory(r, facts);
    console.error(
      `   sleep: machina ${mib(r.sleep.machina.rssKiB.median)} MiB, nspawn ${mib(r.sleep.nspawn.rssKiB.median)} MiB; debian: machina ${mib(r.debian.machina.rssKiB.median)} MiB, nspawn ${mib(r.debian.nspawn.rssKiB.median)} MiB`,
    );
  }
  if (selected.includes("api")) {
    console.error("4. start through machinad's API …");
    const r = await benchApi(busybox);
    results["api"] = r;
    blocks.api = renderApi(r, facts);
    console.error(`   start ${f1(r.startMs.median)} ms, stop ${f1(r.stopMs.median)} ms (medians)`);
  }
  const netCtx = { launch: (tool: Tool, root: string, extra: string[], name: string) => launch(tool, root, extra, name), afterRun, failure, now, stat };
  if (selected.includes("veth")) {
    console.error("4. --network-veth start to payload …");
    const r = await benchVeth(netCtx, busybox, N.veth, N.warmup);
    results["veth"] = r;
    blocks.veth = renderVeth(r, factsLine(facts));
    console.error(`   to payload: machina ${f1(r.payloadMs.machina.median)} ms, nspawn ${f1(r.payloadMs.nspawn.median)} ms, ratio ${f2(r.ratio)}`);
  }
  if (selected.includes("zone50")) {
    console.error(`5. ${N.zone} containers in one zone …`);
    const r = await benchZone(netCtx, busybox, N.zone);
    results["zone50"] = r;
    blocks.zone50 = renderZone(r, factsLine(facts));
    console.error(`   first 10 ${f1(r.firstTen)} ms, last 10 ${f1(r.lastTen)} ms, slope ${f2(r.slope)} ms/container`);
  }
  if (selected.includes("import")) {
    console.error("6. import-tar of the Debian image vs tar -x …");
    const r = await benchImport({ machinactl: join(TREE, "bin/machinactl"), debian: debianCache, workDir, n: quick ? 3 : 7 });
    results["import"] = r;
    blocks.import = renderImport(r, factsLine(facts));
    console.error(`   ratios (machina/tar throughput): ${r.formats.map((f) => `${f.format} ${f2(f.ratio)}`).join(", ")}`);
  }
  const poolCtx = { ...netCtx, tree: TREE, workDir };
  if (selected.includes("ephemeral")) {
    console.error("6. -x on the Debian image (ext4) …");
    const debian = await copyTree(debianCache, "debian-x");
    const r = await benchEphemeral(poolCtx, debian, N.ephemeral, 1);
    results["ephemeral"] = r;
    blocks.ephemeral = renderEphemeral(r, factsLine(facts));
    console.error(`   machina ${f1(r.wallMs.machina.median)} ms, nspawn ${f1(r.wallMs.nspawn.median)} ms, ratio ${f2(r.ratio)}`);
  }
  if (selected.includes("clone")) {
    console.error("7. clone on btrfs …");
    const r = await benchClone(poolCtx, N.clone);
    results["clone"] = r;
    blocks.clone = renderClone(r, factsLine(facts));
    console.error(`   ${r.rows.map((row) => `${row.sizeMiB} MiB: ${f1(row.cloneMs.median)} ms`).join(", ")}`);
  }
  results["durationS"] = (now() - t0) / 1000;
  await mkdir(RESULTS, { recursive: true });
  const json = JSON.stringify(results, null, 2);
  const stamp = facts.date.replace(/[:]/g, "");
  await writeFile(join(RESULTS, `${stamp}.json`), json);
  await writeFile(join(RESULTS, "latest.json"), json);
  await updateDoc(blocks);
  console.error(`done in ${((now() - t0) / 1000).toFixed(0)} s; results in bench/results/${stamp}.json, BENCHMARKS.md updated`);
}

try {
  await main();
} catch (e) {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  await cleanupAll();
}
