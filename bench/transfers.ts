/**
 * Benchmark section "import": `machinactl import-tar` of the Debian fixture image, tarred
 * (uncompressed and xz), against GNU `tar -x` of the same file into a plain directory.
 * Target: machina's throughput ≥ 0.9× tar's.
 *
 *   bun bench/transfers.ts [--quick]     (standalone; rewrites the bench:import block)
 *   bun bench/run.ts --only import       (as a section of the main benchmark)
 *
 * machina's number is the whole command (Bun start, pool lock, the in-process scan of every
 * byte, extraction by GNU tar inside a private mount namespace, rename into place); tar's is
 * tar alone. Both run on the same warm page cache, alternating, first one alternating too.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";

export interface ImportBenchResult {
  n: number;
  tarBytes: number;
  formats: Array<{
    format: string;
    fileBytes: number;
    machinaS: number[];
    tarS: number[];
    /** tar with a multi-threaded xz (what machina uses), xz only. */
    tarMtS?: number[];
    ratio: number;
  }>;
}

const TAR_FLAGS = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--same-permissions", "--same-owner"];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Remove a tree and let writeback settle, so one run's cleanup does not slow the next. */
async function clear(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
  Bun.spawnSync(["sync"]);
}

async function run(cmd: string[], env?: Record<string, string>): Promise<number> {
  const t = performance.now();
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: env ?? (process.env as Record<string, string>) });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err.trim()}`);
  return (performance.now() - t) / 1000;
}

export async function benchImport(o: { machinactl: string; debian: string; workDir: string; n: number }): Promise<ImportBenchResult> {
  const dir = await mkdtemp(join(o.workDir, "import-"));
  try {
    const tarFile = join(dir, "debian.tar");
    await run(["tar", "-c", "-f", tarFile, "-C", o.debian, ...TAR_FLAGS.slice(0, 4), "."]);
    await run(["xz", "-k", "-T0", "-3", tarFile]);
    const tarBytes = (await stat(tarFile)).size;
    const pool = join(dir, "pool");
    const state = join(dir, "state");
    await mkdir(pool);
    const env = { ...(process.env as Record<string, string>), MACHINA_POOL: pool, MACHINA_STATE_DIR: state };
    const formats: ImportBenchResult["formats"] = [];
    for (const [format, file] of [
      ["uncompressed", tarFile],
      ["xz", `${tarFile}.xz`],
    ] as const) {
      const machinaS: number[] = [];
      const tarS: number[] = [];
      const tarMtS: number[] = [];
      for (let i = 0; i < o.n + 1; i++) {
        const target = join(dir, "tar-x");
        const steps: Array<() => Promise<void>> = [
          async () => {
            const s = await run([o.machinactl, "-q", "import-tar", file, `img${i}`], env);
            if (i > 0) machinaS.push(s);
            await clear(join(pool, `img${i}`));
          },
          async () => {
            await mkdir(target);
            const s = await run(["tar", "-x", ...(format === "xz" ? ["-J"] : []), "-f", file, "-C", target, ...TAR_FLAGS]);
            if (i > 0) tarS.push(s);
            await clear(target);
          },
        ];
        if (format === "xz")
          steps.push(async () => {
            await mkdir(target);
            const s = await run(["tar", "-x", "-I", "xz -T0", "-f", file, "-C", target, ...TAR_FLAGS]);
            if (i > 0) tarMtS.push(s);
            await clear(target);
          });
        if (i % 2) steps.reverse();
        for (const s of steps) await s(); // i = 0 is the warm-up round
      }
      const best = format === "xz" ? Math.min(median(tarS), median(tarMtS)) : median(tarS);
      formats.push({ format, fileBytes: (await stat(file)).size, machinaS, tarS, ...(format === "xz" ? { tarMtS } : {}), ratio: best / median(machinaS) });
    }
    return { n: o.n, tarBytes, formats };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderImport(r: ImportBenchResult, factsLine: string): string {
  const mibs = (bytes: number, s: number) => (bytes / 1024 / 1024 / s).toFixed(0);
  const f2 = (x: number) => x.toFixed(2);
  const rows: string[] = [];
  for (const f of r.formats) {
    rows.push(
      `| ${f.format} (${(f.fileBytes / 1024 / 1024).toFixed(0)} MiB file) | \`machinactl import-tar\` | ${f2(median(f.machinaS))} | ${mibs(r.tarBytes, median(f.machinaS))} |`,
    );
    rows.push(`| | \`tar -x${f.format === "xz" ? "J" : ""}\` | ${f2(median(f.tarS))} | ${mibs(r.tarBytes, median(f.tarS))} |`);
    if (f.tarMtS) rows.push(`| | \`tar -x -I "xz -T0"\` (multi-threaded xz, as machina) | ${f2(median(f.tarMtS))} | ${mibs(r.tarBytes, median(f.tarMtS))} |`);
    rows.push(`| | **ratio machina/tar throughput** (vs the faster tar) | | **${f2(f.ratio)}** |`);
  }
  const ok = r.formats.every((f) => f.ratio >= 0.9);
  return [
    factsLine,
    "",
    `Debian fixture image tarred: ${(r.tarBytes / 1024 / 1024).toFixed(0)} MiB uncompressed. N = ${r.n} runs each (after 1 warm-up), alternating. Seconds are medians of wall time; MiB/s = uncompressed MiB / s.`,
    "",
    "| archive | command | s | MiB/s |",
    "|---|---|---:|---:|",
    ...rows,
    "",
    `Target ≥ 0.90 for both: **${ok ? "PASS" : "FAIL"}**.`,
  ].join("\n");
}

/** Rewrite the `<!-- bench:import -->` block of BENCHMARKS.md. */
export async function writeImportBlock(doc: string, body: string): Promise<void> {
  let text = existsSync(doc) ? await readFile(doc, "utf8") : "# Benchmarks\n";
  const begin = "<!-- bench:import -->";
  const end = "<!-- /bench:import -->";
  const block = `${begin}\n${body}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text += `\n## import-tar throughput (target: ≥ 0.9× GNU tar -x)\n\n${block}\n`;
  await writeFile(doc, text);
}

if (import.meta.main) {
  const REPO = resolve(import.meta.dir, "..");
  const { ensureDebianImage } = await import("../test/fixtures/images.ts");
  const quick = process.argv.includes("--quick");
  const debian = await ensureDebianImage();
  const work = await mkdtemp("/var/tmp/machina-bench-import-");
  try {
    const r = await benchImport({ machinactl: join(REPO, "bin/machinactl"), debian, workDir: work, n: quick ? 3 : 7 });
    const commit = (await new Response(Bun.spawn(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout).text()).trim();
    const kernel = (await readFile("/proc/sys/kernel/osrelease", "utf8")).trim();
    const factsLine = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} on \`${(await readFile("/etc/hostname", "utf8").catch(() => "?")).trim()}\`: ${navigator.hardwareConcurrency} CPUs, kernel ${kernel}, Bun ${Bun.version}, machina ${commit} (work tree). Command: \`bun bench/transfers.ts${quick ? " --quick" : ""}\`.`;
    const body = renderImport(r, factsLine);
    console.log(body);
    await writeImportBlock(join(REPO, "BENCHMARKS.md"), body);
    await mkdir(join(REPO, "bench/results"), { recursive: true });
    await writeFile(join(REPO, "bench/results/import-latest.json"), JSON.stringify(r, null, 2));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
