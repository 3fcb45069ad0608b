#!/usr/bin/env bun
/**
 * machinactl list with 1 and with 50 running containers, and machinactl status: absolute
 * medians (machinectl is not comparable on a host without systemd). Needs root and the helper;
 * run scripts/build first so that bin/machinactl uses the bundle.
 *
 *   bun bench/machines.ts [--quick]
 *
 * Containers are busybox copies under /var/tmp with a sleeping init, started with
 * `machinactl start` in a private state directory and terminated at the end.
 */
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ensureBusyboxImage } from "../test/fixtures/images.ts";
import { median } from "./common.ts";

const REPO = resolve(import.meta.dir, "..");
const MACHINACTL = join(REPO, "bin/machinactl");

export interface MachinesResult {
  list1: number;
  list50: number;
  status: number;
  start: number;
  n: number;
}

async function timed(argv: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "inherit", env });
  await p.exited;
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${p.exitCode})`);
  return ms;
}

export async function benchMachines(quick: boolean): Promise<MachinesResult> {
  const busybox = await ensureBusyboxImage();
  const base = mkdtempSync("/var/tmp/machina-bench-machines-");
  const pool = `${base}/pool`;
  const env = { ...(process.env as Record<string, string>), MACHINA_STATE_DIR: `${base}/state`, MACHINA_POOL: pool };
  const names: string[] = [];
  const n = quick ? 10 : 30;
  try {
    Bun.spawnSync(["mkdir", "-p", pool]);
    for (let i = 0; i < 50; i++) {
      const name = `bm${process.pid.toString(36)}x${i}`;
      Bun.spawnSync(["cp", "-a", "--reflink=auto", busybox, `${pool}/${name}`]);
      writeFileSync(`${pool}/${name}/sbin/bench-init`, "#!/bin/sh\ntrap 'exit 0' 37\nwhile :; do sleep 1000 & wait $!; done\n");
      chmodSync(`${pool}/${name}/sbin/bench-init`, 0o755);
      rmSync(`${pool}/${name}/sbin/init`, { force: true });
      symlinkSync("bench-init", `${pool}/${name}/sbin/init`);
      names.push(name);
    }
    const startMs = await timed([MACHINACTL, "start", names[0]!], env);
    const list1: number[] = [];
    const status: number[] = [];
    for (let i = 0; i < n; i++) {
      list1.push(await timed([MACHINACTL, "list"], env));
      status.push(await timed([MACHINACTL, "status", names[0]!], env));
    }
    for (let i = 1; i < 50; i += 10) await Promise.all(names.slice(i, i + 10).map((m) => timed([MACHINACTL, "start", m], env)));
    const list50: number[] = [];
    for (let i = 0; i < n; i++) list50.push(await timed([MACHINACTL, "list"], env));
    return { list1: median(list1), list50: median(list50), status: median(status), start: startMs, n };
  } finally {
    for (let i = 0; i < names.length; i += 10)
      await Promise.all(names.slice(i, i + 10).map((m) => Bun.spawn([MACHINACTL, "terminate", m], { env, stdout: "ignore", stderr: "ignore" }).exited));
    rmSync(base, { recursive: true, force: true });
  }
}

export function renderMachines(r: MachinesResult): string {
  const f = (x: number) => `${x.toFixed(1)} ms`;
  return [
    "| machinactl (bundle) | median |",
    "|---|---|",
    `| \`list\`, 1 running container | ${f(r.list1)} |`,
    `| \`list\`, 50 running containers | ${f(r.list50)} (×${(r.list50 / r.list1).toFixed(2)}) |`,
    `| \`status NAME\` (1 running) | ${f(r.status)} |`,
    "",
    `${r.n} runs each; \`list\` reads each entry's lock, state.json, /proc/PID/stat of supervisor and leader, cgroup.events and /proc/PID/net.`,
  ].join("\n");
}

if (import.meta.main) {
  const r = await benchMachines(process.argv.includes("--quick"));
  console.log(JSON.stringify(r));
  console.log(renderMachines(r));
}
