#!/usr/bin/env bun
/**
 * What emulation costs (issue 15): the Debian bookworm images of the tests, amd64 (native) and
 * arm64 (under qemu-user through binfmt_misc), side by side in one run, with machina and with
 * systemd-nspawn 252 (the peer, given the same binfmt entry):
 *
 *   - a command: `/bin/true` with --read-only, to exit
 *   - a CPU-bound command: sha256sum of 64 MiB of zeros inside the container
 *   - boot: -b on a fresh copy to `running` (systemctl is-system-running --wait inside), then power off
 *
 *   bun bench/arch.ts [--quick]        (rewrites the bench:arch block of BENCHMARKS.md)
 *
 * Root only, x86-64 only. Both tools use one binfmt_misc entry (machina-bench-qemu-aarch64, flags
 * POF, as machina registers its own), registered for the run and removed at the end; machina
 * as installed (dist/bin/machina-nspawn, scripts/build runs first).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureArm64Image, ensureDebianImage } from "../test/fixtures/images.ts";
import { BENCH_CGROUP_ROOTS, containerInit, factsLine, median, nspawnInCgroup, REPO, removeCgroupTree, versionLine, writeBlock } from "./common.ts";

/** The installed form (scripts/build's compiled commands), as the other benchmarks measure. */
const NSPAWN = join(REPO, "dist/bin/machina-nspawn");
const MACHINACTL = join(REPO, "bin/machinactl");

interface Row {
  what: string;
  machina: { native: number; emulated: number };
  nspawn: { native: number; emulated: number };
}

function run(argv: string[], env: Record<string, string>): number {
  const t = performance.now();
  const r = Bun.spawnSync(argv, { env, stdout: "pipe", stderr: "pipe" });
  const ms = performance.now() - t;
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}\n${r.stderr.toString()}`);
  return ms;
}

/** Boot with -b -x in the background, wait for `running` from inside, power off; ms to running and to gone. */
async function boot(tool: "machina" | "nspawn", image: string, name: string, env: Record<string, string>): Promise<number> {
  const args = ["-D", image, "-M", name, "-b", "--console=pipe"];
  const t = performance.now();
  const proc = Bun.spawn(tool === "machina" ? [NSPAWN, "-q", ...args] : nspawnInCgroup(`machina-bench-arch-${process.pid}`, args), {
    env,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  // the leader's systemd answers from inside once it is up; poll through nsenter (same for both tools)
  let running = NaN;
  for (let i = 0; i < 1200; i++) {
    const leader = containerInit(name);
    if (leader) {
      const r = Bun.spawnSync(["nsenter", "-t", leader, "-a", "systemctl", "is-system-running", "--wait"], { stdout: "pipe", stderr: "ignore" });
      const state = r.stdout.toString().trim();
      if (state === "running" || state === "degraded") {
        running = performance.now() - t;
        Bun.spawnSync(["nsenter", "-t", leader, "-a", "systemctl", "poweroff", "--no-block"]);
        break;
      }
    }
    await Bun.sleep(50);
  }
  await Promise.race([proc.exited, Bun.sleep(60_000)]);
  if (proc.exitCode === null) proc.kill("SIGKILL");
  return running;
}

export async function benchArch(quick: boolean): Promise<{ rows: Row[]; n: number; bootN: number }> {
  Bun.spawnSync([join(REPO, "scripts/build")], { stdout: "ignore" });
  const n = quick ? 3 : 10;
  const bootN = quick ? 2 : 5;
  const native = await ensureDebianImage();
  const arm64 = await ensureArm64Image();
  const state = mkdtempSync("/var/tmp/machina-bench-arch-");
  const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", MACHINA_STATE_DIR: state };
  // the peer gets the same entry machina registers, for the whole run
  const entry = "/proc/sys/fs/binfmt_misc/machina-bench-qemu-aarch64";
  const ours = !existsSync(entry);
  if (ours) {
    const { binfmtEscape, binfmtMagic, architectureNamed } = await import("../src/settings/architectures.ts");
    const { magic, mask } = binfmtMagic(architectureNamed("arm64")!);
    writeFileSync(
      "/proc/sys/fs/binfmt_misc/register",
      `:machina-bench-qemu-aarch64:M::${binfmtEscape(magic)}:${binfmtEscape(mask)}:/usr/bin/qemu-aarch64-static:POF`,
    );
  }
  const rows: Row[] = [];
  try {
    const measure = async (what: string, cmd: string[], count: number) => {
      const m = { native: [] as number[], emulated: [] as number[] };
      const s = { native: [] as number[], emulated: [] as number[] };
      for (let i = 0; i < count; i++) {
        for (const [key, image] of [
          ["native", native],
          ["emulated", arm64],
        ] as const) {
          m[key].push(run([NSPAWN, "-q", "--read-only", "-D", image, "-M", `ba${i}`, ...cmd], env));
          s[key].push(run(nspawnInCgroup(`machina-bench-arch-${process.pid}`, ["--read-only", "-D", image, "-M", `bn${i}`, ...cmd]), env));
        }
      }
      rows.push({
        what,
        machina: { native: median(m.native), emulated: median(m.emulated) },
        nspawn: { native: median(s.native), emulated: median(s.emulated) },
      });
    };
    await measure("`/bin/true` (--read-only)", ["/bin/true"], n);
    await measure(
      "sha256sum of 64 MiB of zeros (--read-only)",
      ["/bin/sh", "-c", "head -c 67108864 /dev/zero | sha256sum >/dev/null"],
      Math.max(2, Math.floor(n / 2)),
    );
    const b = { machina: { native: [] as number[], emulated: [] as number[] }, nspawn: { native: [] as number[], emulated: [] as number[] } };
    for (let i = 0; i < bootN; i++)
      for (const [key, image] of [
        ["native", native],
        ["emulated", arm64],
      ] as const) {
        for (const tool of ["machina", "nspawn"] as const) {
          // a fresh copy each boot (made before the clock starts): booting writes the tree
          const copy = join(state, `boot-${key}-${tool}-${i}`);
          Bun.spawnSync(["cp", "-a", "--reflink=auto", image, copy]);
          b[tool][key].push(await boot(tool, copy, `b${tool[0]}${i}`, env));
          rmSync(copy, { recursive: true, force: true });
        }
      }
    rows.push({
      what: "boot (-b, a copy of the image) to `running`",
      machina: { native: median(b.machina.native), emulated: median(b.machina.emulated) },
      nspawn: { native: median(b.nspawn.native), emulated: median(b.nspawn.emulated) },
    });
  } finally {
    if (ours && existsSync(entry)) writeFileSync(entry, "-1");
    Bun.spawnSync([MACHINACTL, "list"], { env, stdout: "ignore" });
    rmSync(state, { recursive: true, force: true });
    // systemd-nspawn's cgroups (nspawnInCgroup): the v1 name=systemd and the v2 one
    for (const cg of BENCH_CGROUP_ROOTS.map((h) => `${h}/machina-bench-arch-${process.pid}`)) await removeCgroupTree(cg);
  }
  return { rows, n, bootN };
}

function render(r: { rows: Row[]; n: number; bootN: number }, facts: string): string {
  const f = (x: number) => (Number.isNaN(x) ? "–" : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
  const x = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) ? "–" : `${(a / b).toFixed(2)}×`);
  const lines = [
    facts,
    "",
    `machina-nspawn as installed (dist/bin). The tests' Debian bookworm images (minbase + systemd): amd64 runs natively, arm64 under qemu-user (Debian's qemu-user-static, one binfmt_misc entry with flags POF for both tools). Medians; commands N = ${r.n} (sha256sum N = ${Math.max(2, Math.floor(r.n / 2))}), boots N = ${r.bootN}, alternating. systemd-nspawn 252 (--register=no --keep-unit, its own cgroup) is given the same binfmt entry. Boot: from the command to \`systemctl is-system-running --wait\` answering inside (through nsenter, the same for both). Under emulation machina's boot ends \`running\`; systemd-nspawn's ends \`degraded\` (systemd-sysusers, systemd-tmpfiles-setup and -setup-dev fail: qemu-user cannot set up their credentials, see docs/architectures.md).`,
    "",
    "| what | machina native | machina arm64 | emulation costs | systemd-nspawn native | systemd-nspawn arm64 | machina ÷ nspawn, arm64 |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...r.rows.map(
      (row) =>
        `| ${row.what} | ${f(row.machina.native)} | ${f(row.machina.emulated)} | ${x(row.machina.emulated, row.machina.native)} | ${f(row.nspawn.native)} | ${f(row.nspawn.emulated)} | ${x(row.machina.emulated, row.nspawn.emulated)} |`,
    ),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  const r = await benchArch(quick);
  const body = render(
    r,
    await factsLine(`bun bench/arch.ts${quick ? " --quick" : ""}`, [
      versionLine(["qemu-aarch64-static", "--version"]),
      versionLine(["systemd-nspawn", "--version"]),
    ]),
  );
  console.log(body);
  await writeBlock(join(REPO, "BENCHMARKS.md"), "arch", body, "Another architecture under emulation: arm64 on x86-64 (no target: the cost, documented)");
}
