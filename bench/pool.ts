/**
 * Image pool benchmarks for bench/run.ts:
 *  - ephemeral: `-x /bin/true` on the Debian image on ext4 — machina (overlayfs over the image)
 *    vs systemd-nspawn 252 (copies the tree outside btrfs), wall from go to exit;
 *  - clone: `machinactl clone` of btrfs subvolumes of growing size on a btrfs loop file made
 *    (and removed) here: a snapshot, so constant time.
 */
import { spawnSync } from "bun";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";

export interface PoolBenchLaunched {
  proc: { exited: Promise<number> };
  t0: number;
}

export interface PoolBenchContext<L extends PoolBenchLaunched> {
  launch: (tool: "machina" | "nspawn", root: string, extra: string[], name: string) => Promise<L>;
  afterRun: (l: L) => Promise<void>;
  failure: (l: L, what: string) => Promise<Error>;
  now: () => number;
  stat: (xs: number[]) => { median: number; p90: number; min: number; max: number };
  tree: string;
  workDir: string;
}

type S = { median: number; p90: number; min: number; max: number };
const f1 = (x: number) => x.toFixed(1);

export interface EphemeralResult {
  n: number;
  imageMiB: number;
  fs: string;
  wallMs: { machina: S; nspawn: S };
  ratio: number;
}

function sh(cmd: string): string {
  const r = spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

export async function benchEphemeral<L extends PoolBenchLaunched>(
  ctx: PoolBenchContext<L>,
  debian: string,
  n: number,
  warmup: number,
): Promise<EphemeralResult> {
  const samples: Record<"machina" | "nspawn", number[]> = { machina: [], nspawn: [] };
  for (let i = 0; i < warmup + n; i++) {
    const order: Array<"machina" | "nspawn"> = i % 2 === 0 ? ["machina", "nspawn"] : ["nspawn", "machina"];
    for (const tool of order) {
      const l = await ctx.launch(tool, debian, ["-x", "/bin/true"], `mbx${tool[0]}${process.pid}x${i}`);
      const code = await l.proc.exited;
      const dt = ctx.now() - l.t0;
      await ctx.afterRun(l);
      if (code !== 0) throw await ctx.failure(l, `${tool} -x exited ${code}`);
      if (i >= warmup) samples[tool].push(dt);
    }
  }
  const wallMs = { machina: ctx.stat(samples.machina), nspawn: ctx.stat(samples.nspawn) };
  return {
    n,
    wallMs,
    ratio: wallMs.nspawn.median / wallMs.machina.median,
    imageMiB: Math.round(Number(sh(`du -sxk '${debian}' | cut -f1`).trim()) / 1024),
    fs: sh(`stat -f -c %T '${debian}'`).trim(),
  };
}

export function renderEphemeral(r: EphemeralResult, facts: string): string {
  return [
    facts,
    `N = ${r.n} runs each of \`-x /bin/true\` on the Debian image (${r.imageMiB} MiB, on ${r.fs}), the tools alternating; wall time from \`go\` to exit. systemd-nspawn copies the whole tree to a temporary directory first (outside btrfs) and removes it afterwards; machina mounts an overlay with a tmpfs upper over the image (docs/mounts.md).`,
    "",
    "| `-x /bin/true` (ms) | median | p90 | min | max |",
    "|---|---:|---:|---:|---:|",
    `| machina | ${f1(r.wallMs.machina.median)} | ${f1(r.wallMs.machina.p90)} | ${f1(r.wallMs.machina.min)} | ${f1(r.wallMs.machina.max)} |`,
    `| systemd-nspawn | ${f1(r.wallMs.nspawn.median)} | ${f1(r.wallMs.nspawn.p90)} | ${f1(r.wallMs.nspawn.min)} | ${f1(r.wallMs.nspawn.max)} |`,
    "",
    `nspawn / machina: **${r.ratio.toFixed(1)}×**. Target ≥ 20×: ${r.ratio >= 20 ? "met" : "**not met**"}.`,
  ].join("\n");
}

export interface CloneResult {
  n: number;
  rows: Array<{ sizeMiB: number; files: number; cloneMs: S; copyMs: number }>;
  spread: number;
}

/** clone of subvolumes of 16, 256 and 1024 MiB on a fresh btrfs loop file. */
export async function benchClone<L extends PoolBenchLaunched>(ctx: PoolBenchContext<L>, n: number): Promise<CloneResult> {
  const base = join(ctx.workDir, "btrfs");
  const mnt = join(base, "mnt");
  await mkdir(mnt, { recursive: true });
  sh(`truncate -s 4G '${base}/fs.img' && mkfs.btrfs -q '${base}/fs.img' && mount -o loop '${base}/fs.img' '${mnt}'`);
  const pool = join(mnt, "pool");
  const env = { ...(process.env as Record<string, string>), MACHINA_POOL: pool, MACHINA_STATE_DIR: join(base, "state") };
  const machinactl = join(ctx.tree, "bin/machinactl");
  try {
    await mkdir(pool);
    const rows: CloneResult["rows"] = [];
    for (const sizeMiB of [16, 256, 1024]) {
      const img = join(pool, `img${sizeMiB}`);
      const files = sizeMiB * 4; // 256 KiB files
      sh(
        `btrfs subvolume create '${img}' >/dev/null && mkdir -p '${img}/usr/data' && cd '${img}/usr/data' && head -c ${sizeMiB}M /dev/urandom | split -b 256K - f && sync`,
      );
      const times: number[] = [];
      for (let i = 0; i < n + 1; i++) {
        sh(`sync && btrfs filesystem sync '${mnt}'`); // the same quiet file system before every clone
        const t0 = ctx.now();
        const r = spawnSync([machinactl, "clone", `img${sizeMiB}`, "copy"], { env, stdout: "ignore", stderr: "pipe" });
        const dt = ctx.now() - t0;
        if (r.exitCode !== 0) throw new Error(`clone: ${r.stderr.toString()}`);
        if (i > 0) times.push(dt);
        spawnSync([machinactl, "remove", "copy"], { env });
      }
      // For scale: a full (non-reflink) copy of the same tree, once.
      const t0 = ctx.now();
      sh(`cp -a --reflink=never '${img}' '${pool}/fullcopy' && sync`);
      const copyMs = ctx.now() - t0;
      sh(`rm -rf '${pool}/fullcopy'`);
      rows.push({ sizeMiB, files, cloneMs: ctx.stat(times), copyMs });
    }
    const medians = rows.map((r) => r.cloneMs.median);
    return { n, rows, spread: Math.max(...medians) / Math.min(...medians) };
  } finally {
    spawnSync(["umount", "-l", mnt]);
    await rm(base, { recursive: true, force: true });
  }
}

export function renderClone(r: CloneResult, facts: string): string {
  return [
    facts,
    `N = ${r.n} clones per size (after one warm-up) with \`machinactl clone\` (the whole command: Bun start, locks, \`btrfs subvolume snapshot\`, rename into place) of btrfs subvolumes filled with 256 KiB files of random data, on a btrfs file system on a loop file made for the run; each clone is removed again, and the file system synced (\`sync\`, \`btrfs filesystem sync\`) before the next. The \`cp -a --reflink=never\` column is one full copy of the same tree, for scale.`,
    "",
    "| image | files | clone median (ms) | p90 | min | max | full copy (ms) |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...r.rows.map(
      (row) =>
        `| ${row.sizeMiB} MiB | ${row.files} | ${f1(row.cloneMs.median)} | ${f1(row.cloneMs.p90)} | ${f1(row.cloneMs.min)} | ${f1(row.cloneMs.max)} | ${f1(row.copyMs)} |`,
    ),
    "",
    `Largest / smallest clone median: ${r.spread.toFixed(2)} (constant time: ${r.spread < 1.5 ? "met" : "**not met**"}).`,
  ].join("\n");
}
