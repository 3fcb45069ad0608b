#!/usr/bin/env bun
/**
 * The whole run as a user sees it (issue 18): from launch until the tool has exited and cleaned
 * up, machina-nspawn (as installed: dist/bin, scripts/build runs first) and systemd-nspawn 252
 * alternating on the same busybox tree, for every mode; beside it the split into "to the
 * payload" and "after the payload" (teardown). machina-nspawn runs twice per round: served by
 * machinad (its front end hands the planning to a machinad the bench starts on a socket of its
 * own) and alone (MACHINA_NO_DAEMON=1: the front end runs the full Bun program).
 *
 *   bun bench/whole.ts [--quick] [--only MODE]...     (rewrites the bench:whole block of BENCHMARKS.md)
 *
 * Each run goes through the same wrapper as bench/run.ts (bench/common.ts launchWrapped): `sh`
 * moves itself into fresh cgroups (systemd-nspawn --keep-unit splits its own), waits, then execs
 * the tool when told; the clock starts there and stops when the tool has exited. The payload is
 * /stamp, a static program in the tree that prints CLOCK_MONOTONIC (the bench's clock too), so
 * "to the payload" is stamp − start and the teardown is exit − stamp. Root only; everything a
 * mode needs (a bridge, dummy links) is made by the run and removed at its end, also when it is
 * interrupted.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import {
  BENCH_CGROUP_ROOTS,
  type BenchDaemon,
  cleanupOnInterrupt,
  factsLine,
  launchWrapped,
  median,
  REPO,
  removeCgroupTree,
  startMachinad,
  versionLine,
  writeBlock,
  saveResult,
} from "./common.ts";

const MACHINA = join(REPO, "dist/bin/machina-nspawn");
const MACHINACTL = join(REPO, "dist/bin/machinactl");
const COMMON = ["--register=no", "--keep-unit", "-q", "--console=pipe"];
const BRIDGE = "mbench-br0";
const DUMMY_MACVLAN = "mbench-d0";
const DUMMY_MOVED = "mbench-i0";

type Tool = "machina" | "machina-alone" | "nspawn";
const isMachina = (t: Tool) => t !== "nspawn";

interface Mode {
  id: string;
  /** shown in the table */
  label: string;
  args: string[];
  /** tools that can run it on this host (systemd-nspawn -i needs udev, absent here) */
  tools: Tool[];
  note?: string;
  /**
   * systemd-nspawn refuses a link udev has not initialized ("Network interface … is not
   * initialized yet"); this host has no udev, so around each of its runs the bench writes the
   * entry udev would have written (/run/udev/data/nIFINDEX: its presence is what sd-device checks).
   */
  udevLink?: string;
}

const UDEV_DATA = "/run/udev/data";

/** The udev database entry of `link`, made for one systemd-nspawn run; returns its undo. */
function fakeUdevEntry(link: string): () => void {
  const madeRoot = !existsSync("/run/udev");
  mkdirSync(UDEV_DATA, { recursive: true });
  const entry = join(UDEV_DATA, `n${readFileSync(`/sys/class/net/${link}/ifindex`, "utf8").trim()}`);
  writeFileSync(entry, "I:1\n");
  return () => {
    rmSync(entry, { force: true });
    if (madeRoot) rmSync("/run/udev", { recursive: true, force: true });
  };
}

const MODES: Mode[] = [
  { id: "true", label: "`/bin/true`-like payload (`/stamp`)", args: [], tools: ["machina", "nspawn"] },
  { id: "private-network", label: "`--private-network`", args: ["--private-network"], tools: ["machina", "nspawn"] },
  { id: "x", label: "`-x`", args: ["-x"], tools: ["machina", "nspawn"] },
  { id: "U", label: "`-U`", args: ["-U"], tools: ["machina", "nspawn"] },
  { id: "veth", label: "`--network-veth`", args: ["--network-veth"], tools: ["machina", "nspawn"] },
  { id: "veth-port", label: "`--network-veth -p 18099:80`", args: ["--network-veth", "-p", "18099:80"], tools: ["machina", "nspawn"] },
  { id: "zone", label: "`--network-zone=mbz` (only member)", args: ["--network-zone=mbz"], tools: ["machina", "nspawn"] },
  { id: "zone-port", label: "`--network-zone=mbz -p 18099:80`", args: ["--network-zone=mbz", "-p", "18099:80"], tools: ["machina", "nspawn"] },
  { id: "bridge", label: `\`--network-bridge=${BRIDGE}\``, args: [`--network-bridge=${BRIDGE}`], tools: ["machina", "nspawn"] },
  {
    id: "macvlan",
    label: `\`--network-macvlan=${DUMMY_MACVLAN}\``,
    args: [`--network-macvlan=${DUMMY_MACVLAN}`],
    tools: ["machina", "nspawn"],
    udevLink: DUMMY_MACVLAN,
  },
  {
    id: "interface",
    label: `\`--network-interface=${DUMMY_MOVED}\``,
    args: [`--network-interface=${DUMMY_MOVED}`],
    tools: ["machina", "nspawn"],
    udevLink: DUMMY_MOVED,
  },
  { id: "volatile", label: "`--volatile=overlay`", args: ["--volatile=overlay"], tools: ["machina", "nspawn"] },
  {
    id: "template",
    label: "`--template=TREE` (a new directory each run)",
    args: [],
    tools: ["machina", "nspawn"],
    note: "the copy on this VM's root file system, ext4 without a journal: there the kernel's inode allocator skips every inode freed in the last minutes (`recently_deleted`, checked only without a journal) one by one, ~0.1–0.5 ms per inode created for either tool",
  },
  {
    id: "template-ext4",
    label: "`--template=TREE`, the directory on a fresh ext4 (mkfs.ext4's defaults, loop device)",
    args: [],
    tools: ["machina", "nspawn"],
  },
  {
    id: "raw",
    label: "`-i IMAGE.raw` (ext4)",
    args: [],
    tools: ["machina"],
    note: "systemd-nspawn -i needs udev (`/run/udev`), which this host lacks",
  },
];

interface Sample {
  wall: number;
  toPayload: number;
  after: number;
  /** machina: ms per stage (STAGES_SERVED or STAGES_ALONE), from its status lines (MACHINA_STATUS_FD) */
  stages?: Record<string, number>;
}

/**
 * machina's run split at the moments its status lines report (native/SPEC.md "Status fd"): each
 * stage from the first moment to the second (go: the bench's; payload: /stamp; exit: the bench's).
 */
type Stages = ReadonlyArray<readonly [label: string, from: string, to: string]>;
const AFTER_PLAN: Stages = [
  ["helper's exec", "planned", "spec"],
  ["helper's setup (clone, cgroups, network, mounts, pivot)", "spec", "exec"],
  ["payload's exec", "exec", "payload"],
  ["payload + teardown + exit", "payload", "exit"],
];
/** machina-nspawn alone: the front end, then the Bun program's own start */
const STAGES_ALONE: Stages = [
  ["front end + exec + Bun's start", "go", "modules"],
  ["modules", "modules", "main"],
  ["facts + plan", "main", "planned"],
  ...AFTER_PLAN,
];
/** served: the front end's request reaches machinad's planner ("main"), which plans */
const STAGES_SERVED: Stages = [["front end + request to machinad", "go", "main"], ["facts + plan (machinad)", "main", "planned"], ...AFTER_PLAN];
/** The stages' durations from the status lines (µs since the epoch) and the bench's own moments (ms since the epoch). */
function stagesOf(stages: Stages, statusText: string, moments: { go: number; payload: number; exit: number }): Record<string, number> | undefined {
  const at: Record<string, number> = { ...moments };
  for (const line of statusText.split("\n")) {
    if (line === "") continue;
    const l = JSON.parse(line) as { stage?: string; event?: string; t?: number };
    const name = l.stage ?? l.event;
    if (name !== undefined && typeof l.t === "number" && at[name] === undefined) at[name] = l.t / 1000;
  }
  const out: Record<string, number> = {};
  for (const [label, from, to] of stages) {
    if (at[from] === undefined || at[to] === undefined) return undefined;
    out[label] = at[to]! - at[from]!;
  }
  return out;
}

interface ModeResult {
  id: string;
  label: string;
  note: string | undefined;
  n: number;
  machina: Sample;
  alone: Sample;
  nspawn: Sample | undefined;
}

const sh = (cmd: string): void => {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stdout: "ignore", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString().trim()}`);
};
const shQuiet = (cmd: string): void => void Bun.spawnSync(["sh", "-c", cmd], { stdout: "ignore", stderr: "ignore" });
/** CLOCK_MONOTONIC (the stamp's clock) minus performance.now() (the clock of launchWrapped's start): another origin. Calibrated with the stamp itself. */
let clockOffset = 0;
function calibrate(stamp: string): void {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 20; i++) {
    const a = performance.now();
    const out = Bun.spawnSync([stamp], { stdout: "pipe" }).stdout.toString();
    const b = performance.now();
    if (b - a < best) {
      best = b - a;
      clockOffset = Number(out.trim()) / 1e6 - (a + b) / 2;
    }
  }
}

let seq = 0;

/** One run of `tool` in `mode`: go → exit, with the payload's stamp. */
async function once(tool: Tool, mode: Mode, work: string, tree: string, raw: string): Promise<Sample> {
  const name = `mw${tool[0]}${process.pid.toString(36)}x${++seq}`;
  let dirArgs = ["-D", tree];
  let made: string | undefined;
  if (mode.id === "template" || mode.id === "template-ext4") {
    made = join(mode.id === "template" ? work : join(work, "ext4"), `t-${name}`);
    dirArgs = [`--template=${tree}`, "-D", made];
  } else if (mode.id === "raw") dirArgs = ["-i", raw];
  const toolArgs = [...COMMON, "-M", name, ...dirArgs, ...mode.args, "/stamp"];
  const argv = isMachina(tool) ? [MACHINA, ...toolArgs] : ["systemd-nspawn", ...toolArgs];
  const cgroups = BENCH_CGROUP_ROOTS.map((h) => `${h}/machina-bench-${name}`);
  const out = join(work, `${name}.out`);
  const status = isMachina(tool) ? `${out}.status` : undefined;
  let proc: Bun.Subprocess | undefined;
  const undoUdev = tool === "nspawn" && mode.udevLink !== undefined ? fakeUdevEntry(mode.udevLink) : undefined;
  try {
    const env = {
      ...process.env,
      MACHINA_STATE_DIR: join(work, "state"),
      MACHINA_API_SOCKET: join(work, "run/api.sock"),
      ...(status !== undefined ? { MACHINA_STATUS_FD: "3" } : {}),
      ...(tool === "machina-alone" ? { MACHINA_NO_DAEMON: "1" } : {}),
    };
    const w = await launchWrapped(argv, { cgroups, out, err: `${out}.err`, env, ...(status !== undefined ? { status } : {}) });
    proc = w.proc;
    const t0 = w.t0;
    const code = await proc.exited;
    const t1 = performance.now();
    const stamp = Number(readFileSync(out, "utf8").trim().split("\n").at(-1)) / 1e6 - clockOffset;
    if (code !== 0 || !Number.isFinite(stamp))
      throw new Error(`${tool} ${mode.id}: exit ${code}: ${readFileSync(`${out}.err`, "utf8").trim().split("\n").slice(-3).join(" | ")}`);
    const epoch = performance.timeOrigin;
    const moments = { go: epoch + t0, payload: epoch + stamp, exit: epoch + t1 };
    const stages = status === undefined ? undefined : stagesOf(tool === "machina" ? STAGES_SERVED : STAGES_ALONE, readFileSync(status, "utf8"), moments);
    return { wall: t1 - t0, toPayload: stamp - t0, after: t1 - stamp, ...(stages !== undefined ? { stages } : {}) };
  } finally {
    if (proc !== undefined && proc.exitCode === null) proc.kill("SIGKILL");
    undoUdev?.();
    for (const cg of cgroups) await removeCgroupTree(cg);
    rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
    if (made !== undefined) rmSync(made, { recursive: true, force: true });
    rmSync(out, { force: true });
    if (status !== undefined) rmSync(status, { force: true });
    rmSync(`${out}.err`, { force: true });
  }
}

function medianSample(xs: Sample[], list: Stages = []): Sample {
  const withStages = xs.filter((x) => x.stages !== undefined);
  const stages = withStages.length === 0 ? undefined : Object.fromEntries(list.map(([label]) => [label, median(withStages.map((x) => x.stages![label]!))]));
  return {
    wall: median(xs.map((x) => x.wall)),
    toPayload: median(xs.map((x) => x.toPayload)),
    after: median(xs.map((x) => x.after)),
    ...(stages !== undefined ? { stages } : {}),
  };
}

async function benchMode(mode: Mode, n: number, warmup: number, work: string, tree: string, raw: string): Promise<ModeResult> {
  const samples: Record<Tool, Sample[]> = { machina: [], "machina-alone": [], nspawn: [] };
  const tools: Tool[] = mode.tools.flatMap((t): Tool[] => (t === "machina" ? ["machina", "machina-alone"] : [t]));
  for (let i = 0; i < warmup + n; i++) {
    const order = i % 2 === 0 ? tools : [...tools].reverse();
    for (const tool of order) {
      const s = await once(tool, mode, work, tree, raw);
      if (i >= warmup) samples[tool].push(s);
    }
  }
  return {
    id: mode.id,
    label: mode.label,
    note: mode.note,
    n,
    machina: medianSample(samples.machina, STAGES_SERVED),
    alone: medianSample(samples["machina-alone"], STAGES_ALONE),
    nspawn: mode.tools.includes("nspawn") ? medianSample(samples.nspawn) : undefined,
  };
}

function render(rs: ModeResult[], facts: string): string {
  const f = (x: number) => x.toFixed(1);
  const rows = rs.map((r) => {
    const goal = r.id === "true" ? 0.3 : 0.5;
    const ns = r.nspawn;
    const ratio = (m: Sample) => (ns === undefined ? "–" : `**${(m.wall / ns.wall).toFixed(2)}**`);
    const pass = (m: Sample) => (ns === undefined ? "–" : m.wall / ns.wall <= goal ? "pass" : "**not met**");
    const split = (m: Sample) => `${f(m.toPayload)} + ${f(m.after)}`;
    return `| ${r.label} | ${f(r.machina.wall)} | ${split(r.machina)} | ${f(r.alone.wall)} | ${ns === undefined ? `– (${r.note ?? ""})` : f(ns.wall)} | ${ns === undefined ? "–" : split(ns)} | ${ratio(r.machina)} | ${ratio(r.alone)} | ≤ ${goal}: ${pass(r.machina)}; alone ${pass(r.alone)} |`;
  });
  const stageTable = (title: string, list: Stages, pick: (r: ModeResult) => Sample) => [
    title,
    "",
    `| mode | ${list.map(([label]) => label).join(" | ")} |`,
    `|---|${list.map(() => "---:").join("|")}|`,
    ...rs.map((r) => `| ${r.label} | ${list.map(([label]) => (pick(r).stages?.[label] === undefined ? "–" : f(pick(r).stages![label]!))).join(" | ")} |`),
  ];
  return [
    facts,
    "",
    `Whole process, ms from \`go\` to the tool's exit (medians of ${rs[0]?.n ?? 0} runs per tool, alternating, after warm-up runs), all with \`${COMMON.join(" ")}\` on the same busybox tree; the payload \`/stamp\` prints CLOCK_MONOTONIC, which splits each run into *to the payload* + *after it* (the payload's own time, < 1 ms, is in the second). *machina*: the installed \`machina-nspawn\` (its native front end) with machinad running, which plans the run (src/daemon/nspawn-door.ts); *alone*: the same without machinad (\`MACHINA_NO_DAEMON=1\`: the front end runs the full Bun program).`,
    "",
    "| mode | machina | machina: to payload + after | alone | systemd-nspawn | nspawn: to payload + after | ratio | ratio alone | goal |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ...rows,
    ...rs.filter((r) => r.nspawn !== undefined && r.note !== undefined).map((r) => `\n${r.label}: ${r.note}.`),
    "",
    ...stageTable(
      "Where machina's time goes, per stage (medians, ms), served by machinad: split at the moments machinad's planner and the helper report on `MACHINA_STATUS_FD` (native/SPEC.md \"Status fd\"; µs since the epoch), the payload's stamp and the bench's own start and end.",
      STAGES_SERVED,
      (r) => r.machina,
    ),
    "",
    ...stageTable("The same, alone (the full machina-nspawn reports its Bun start and module loading too):", STAGES_ALONE, (r) => r.alone),
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const only = process.argv.flatMap((a, i, all) => (a === "--only" && all[i + 1] !== undefined ? [all[i + 1]!] : []));
  const modes = only.length > 0 ? MODES.filter((m) => only.includes(m.id)) : MODES;
  if (modes.length === 0) {
    console.error(`usage: bun bench/whole.ts [--quick] [--only ${MODES.map((m) => m.id).join("|")}]...`);
    process.exit(2);
  }
  Bun.spawnSync([join(REPO, "scripts/build")], { stdout: "ignore" });
  const busybox = await ensureBusyboxImage();
  const work = mkdtempSync("/var/tmp/machina-bench-whole-");
  mkdirSync(join(work, "state"));
  const tree = join(work, "bb");
  const raw = join(work, "bb.raw");
  let machinad: BenchDaemon | undefined;
  // systemd-nspawn -p makes its NAT tables (io.systemd.nat, ip and ip6) and leaves them: removed
  // at the end unless the host had them before
  const natTables = ["ip", "ip6"].filter(
    (f) => Bun.spawnSync(["nft", "list", "table", f, "io.systemd.nat"], { stdout: "ignore", stderr: "ignore" }).exitCode !== 0,
  );
  const cleanup = async () => {
    await machinad?.stop();
    for (const f of natTables) shQuiet(`nft delete table ${f} io.systemd.nat`);
    // machina's networks and records of this run's state directory go with `machinactl list`'s sweep
    Bun.spawnSync([MACHINACTL, "list"], {
      env: { ...process.env, MACHINA_STATE_DIR: join(work, "state"), MACHINA_NO_DAEMON: "1" },
      stdout: "ignore",
      stderr: "ignore",
    });
    for (const l of [BRIDGE, DUMMY_MACVLAN, DUMMY_MOVED, "vz-mbz"]) shQuiet(`ip link delete ${l}`);
    shQuiet(`umount -d '${join(work, "ext4")}'`);
    rmSync(work, { recursive: true, force: true });
  };
  const done = cleanupOnInterrupt(cleanup);
  try {
    sh(`cp -a '${busybox}' '${tree}'`);
    machinad = await startMachinad(join(work, "run"), join(work, "state"));
    // the payload: a static program printing CLOCK_MONOTONIC in nanoseconds
    writeFileSync(
      join(work, "stamp.c"),
      '#include <stdio.h>\n#include <time.h>\nint main(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);printf("%lld\\n",(long long)t.tv_sec*1000000000LL+t.tv_nsec);return 0;}\n',
    );
    sh(`gcc -O2 -static -o '${tree}/stamp' '${join(work, "stamp.c")}'`);
    calibrate(join(tree, "stamp"));
    sh(`mkfs.ext4 -q -F -d '${tree}' '${raw}' 64M`);
    if (modes.some((m) => m.id === "template-ext4")) {
      // a file system as a host's pool usually has: ext4 with its journal (mkfs.ext4's defaults)
      mkdirSync(join(work, "ext4"));
      sh(`truncate -s 1G '${work}/ext4.img' && mkfs.ext4 -q -F '${work}/ext4.img' && mount -o loop '${work}/ext4.img' '${work}/ext4'`);
    }
    sh(`ip link add ${BRIDGE} type bridge && ip link set ${BRIDGE} up`);
    // this kernel has no dummy links: veth pairs stand in (one end is the macvlan parent, the other moved in)
    sh(`ip link add ${DUMMY_MACVLAN} type veth peer name ${DUMMY_MACVLAN}p && ip link set ${DUMMY_MACVLAN} up`);
    sh(`ip link add ${DUMMY_MOVED} type veth peer name ${DUMMY_MOVED}p`);
    const n = quick ? 5 : 15;
    const results: ModeResult[] = [];
    for (const m of modes) {
      const r = await benchMode(m, n, quick ? 1 : 3, work, tree, raw);
      console.error(
        `${m.id}: machina ${r.machina.wall.toFixed(1)} ms (${r.machina.toPayload.toFixed(1)} + ${r.machina.after.toFixed(1)}), alone ${r.alone.wall.toFixed(1)} ms, nspawn ${r.nspawn?.wall.toFixed(1) ?? "–"} ms`,
      );
      results.push(r);
    }
    saveResult("whole", results);
    const cmd = `bun bench/whole.ts${quick ? " --quick" : ""}${only.map((o) => ` --only ${o}`).join("")}`;
    const body = render(results, await factsLine(cmd, [versionLine(["systemd-nspawn", "--version"])]));
    console.log(body);
    if (only.length === 0)
      await writeBlock(
        join(REPO, "BENCHMARKS.md"),
        "whole",
        body,
        "The whole run, from launch to exit (issue 18; goals: every mode ≤ 0.5× systemd-nspawn, `/bin/true` ≤ 0.3×)",
      );
  } finally {
    done();
    await cleanup();
  }
}
