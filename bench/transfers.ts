import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { factsLine, median, REPO, writeBlock, saveResult } from "./common.ts";

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

if (import.meta.main) {
  const { ensureDebianImage } = await import("../test/fixtures/images.ts");
  const quick = process.argv.includes("--quick");
  const debian = await ensureDebianImage();
  const work = await mkdtemp("/var/tmp/machina-bench-import-");
  try {
    const r = await benchImport({ machinactl: join(REPO, "bin/machinactl"), debian, workDir: work, n: quick ? 3 : 7 });
    const facts = await factsLine(`bun bench/transfers.ts${quick ? " --quick" : ""}`);
    const body = renderImport(r, facts);
    console.log(body);
    await writeBlock(join(REPO, "BENCHMARKS.md"), "import", body, "import-tar throughput (target: ≥ 0.9× GNU tar -x)");
    saveResult("import", r);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
