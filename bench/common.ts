/**
 * What the benchmarks share: the median, the facts line every result starts with, and the
 * generated blocks of BENCHMARKS.md (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { LinuxHost } from "../src/host/linux.ts";
import { procStat, processRunning } from "../src/machine/proc-stat.ts";

export const REPO = resolve(import.meta.dir, "..");

/** The median (NaN of nothing). */
/** A bench's last result, as JSON: bench/results/NAME-latest.json (the directory is not in git). */
export function saveResult(name: string, data: unknown): void {
  mkdirSync(join(REPO, "bench/results"), { recursive: true });
  writeFileSync(join(REPO, `bench/results/${name}-latest.json`), `${JSON.stringify(data, null, 1)}\n`);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** `text` with block NAME replaced by `body`, or (when it has none) appended under `heading`. Pure. */
export function replaceBlock(text: string, name: string, body: string, heading: string): string {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${begin}\n${body}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) return text.slice(0, i) + block + text.slice(j + end.length);
  return `${text}\n## ${heading}\n\n${block}\n`;
}

/** Rewrite block NAME of the benchmarks document `doc` (created when missing). */
export async function writeBlock(doc: string, name: string, body: string, heading: string): Promise<void> {
  const text = existsSync(doc) ? await readFile(doc, "utf8") : "# Benchmarks\n";
  await writeFile(doc, replaceBlock(text, name, body, heading));
}

/**
 * "Measured DATE on `HOST`: N CPUs, kernel K, Bun B, TOOLS…, machina COMMIT (work tree). Command:
 * `COMMAND`." — `tools`: the peers' version lines.
 */
export async function factsLine(command: string, tools: readonly string[] = []): Promise<string> {
  const commit = (await new Response(Bun.spawn(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout).text()).trim();
  const kernel = (await readFile("/proc/sys/kernel/osrelease", "utf8")).trim();
  const host = (await readFile("/etc/hostname", "utf8").catch(() => "?")).trim();
  const parts = [`${navigator.hardwareConcurrency} CPUs`, `kernel ${kernel}`, `Bun ${Bun.version}`, ...tools, `machina ${commit} (work tree)`];
  return `Measured ${new Date().toISOString().replace(/\.\d+Z$/, "Z")} on \`${host}\`: ${parts.join(", ")}. Command: \`${command}\`.`;
}

/** The first line a program prints for `argv` (a version). */
export function versionLine(argv: string[]): string {
  return (Bun.spawnSync(argv).stdout.toString().split("\n")[0] ?? "").trim();
}

// ---------------------------------------------------------------- shared by the benchmarks

/**
 * systemd-nspawn on a host without systemd: --register=no --keep-unit -q, started in a cgroup of
 * its own (CGROUP in the v1 name=systemd and the v2 hierarchy; otherwise it would split the
 * caller's cgroup, shared by every nspawn started from it).
 */
export function nspawnInCgroup(cgroup: string, args: string[]): string[] {
  const script =
    'mkdir -p /sys/fs/cgroup/systemd/$0 /sys/fs/cgroup/unified/$0 && echo $$ > /sys/fs/cgroup/systemd/$0/cgroup.procs && echo $$ > /sys/fs/cgroup/unified/$0/cgroup.procs && exec systemd-nspawn --register=no --keep-unit -q "$@"';
  return ["sh", "-c", script, cgroup, ...args];
}

/** PID 1 of the running container whose host name is `name` (a process that is 1 in its own PID namespace), for either tool. */
export function containerInit(name: string): string | undefined {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, "utf8");
    } catch {
      continue;
    }
    if (!/^NSpid:\s+\d+\s+1$/m.test(status)) continue;
    const host = Bun.spawnSync(["nsenter", "-t", pid, "-u", "hostname"], { stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
    if (host === name) return pid;
  }
  return undefined;
}

/** Resident memory of a process, KiB (VmRSS). */
export function rssKib(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN);
}

/**
 * Copies of the busybox image at POOL/NAME for machinactl start / machinad: an init that sleeps
 * and exits on SIGRTMIN+3 (the stop signal of a booted container).
 */
export function bootableBusyboxCopies(busybox: string, pool: string, names: string[]): void {
  for (const name of names) {
    Bun.spawnSync(["cp", "-a", "--reflink=auto", busybox, join(pool, name)]);
    writeFileSync(join(pool, name, "sbin/bench-init"), "#!/bin/sh\ntrap 'exit 0' 37\nwhile :; do sleep 1000 & wait $!; done\n");
    chmodSync(join(pool, name, "sbin/bench-init"), 0o755);
    rmSync(join(pool, name, "sbin/init"), { force: true });
    symlinkSync("bench-init", join(pool, name, "sbin/init"));
  }
}

/** Wait until machinad answers on its socket (≈5 s at most). */
export async function waitForDaemon(client: { ping(timeoutMs?: number): Promise<boolean> }): Promise<void> {
  for (let i = 0; !(await client.ping(200)); i++) {
    if (i > 100) throw new Error("machinad did not start");
    await Bun.sleep(50);
  }
}

// ------------------------------------------------------------- ending a run, also when interrupted

const interruptCleanups = new Set<() => Promise<void>>();
let interruptInstalled = false;

/**
 * Run `cleanup` if the benchmark is interrupted (SIGINT, SIGTERM, SIGHUP) before the returned
 * function is called: the runs in progress stop their containers and remove what they made,
 * newest first, then the benchmark exits with 128 + the signal's number.
 */
export function cleanupOnInterrupt(cleanup: () => Promise<void>): () => void {
  if (!interruptInstalled) {
    interruptInstalled = true;
    for (const [sig, num] of [
      ["SIGINT", 2],
      ["SIGTERM", 15],
      ["SIGHUP", 1],
    ] as const)
      process.on(sig, async () => {
        console.error(`bench: ${sig}: stopping this run's containers and removing what it made`);
        for (const fn of [...interruptCleanups].reverse()) {
          interruptCleanups.delete(fn);
          try {
            await fn();
          } catch (e) {
            console.error(`bench: cleanup: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
        process.exit(128 + num);
      });
  }
  interruptCleanups.add(cleanup);
  return () => interruptCleanups.delete(cleanup);
}

const RUN_OWNER = "bench.owner";

/** Mark `dir` as this process's run: a later run tells the leftovers of one that was SIGKILLed (reclaimDeadRuns). */
export function markRun(dir: string): void {
  writeOwner(join(dir, RUN_OWNER), process.pid);
}

/** "PID STARTTIME" of a process, for a later run to know whether it still runs (ownerRunning). */
function writeOwner(path: string, pid: number): void {
  writeFileSync(path, `${pid} ${procStat(new LinuxHost(), pid)?.startTime ?? ""}\n`);
}

/** The process an owner file names: its pid while it still runs, undefined when it is gone (or there is no file). */
function ownerRunning(path: string): number | undefined {
  let owner: string;
  try {
    owner = readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
  const [pid, start] = owner.split(" ");
  return processRunning(new LinuxHost(), Number(pid), start) ? Number(pid) : undefined;
}

/**
 * The run directories `${parent}/${prefix}*` whose benchmark process is gone without cleaning up
 * (SIGKILL cannot be caught: cleanupOnInterrupt never ran): `reclaim` stops what each left
 * (machines, cgroups) and removes it. Directories of live runs, or without an owner mark, are
 * left alone. Returns the directories reclaimed.
 */
export async function reclaimDeadRuns(parent: string, prefix: string, reclaim: (dir: string) => Promise<void>): Promise<string[]> {
  const done: string[] = [];
  for (const name of existsSync(parent) ? readdirSync(parent) : []) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(parent, name);
    if (!existsSync(join(dir, RUN_OWNER)) || ownerRunning(join(dir, RUN_OWNER)) !== undefined) continue; // no mark, or still running
    console.error(`bench: a killed run left ${dir}: stopping what it started and removing it`);
    await reclaim(dir);
    done.push(dir);
  }
  return done;
}

/**
 * Stop everything a run started: `machinactl terminate` for the machines registered in
 * `state` (env names it), SIGTERM to the run's own processes (the tools' supervisors), SIGKILL
 * to what is still there after 20 s, then `machinactl list` — its sweep removes what killed
 * supervisors left (networks, mounts, registry entries). `cgroups` (v1/v2 directories of
 * systemd-nspawn's containers) are killed (cgroup.kill) and removed.
 */
export async function stopRun(o: {
  machinactl: string;
  env: Record<string, string>;
  state: string;
  procs: Iterable<Bun.Subprocess>;
  cgroups?: () => string[];
}): Promise<void> {
  const procs = [...o.procs];
  const machines = join(o.state, "machines");
  const names = existsSync(machines) ? readdirSync(machines).filter((n) => !n.startsWith(".")) : [];
  const env = { ...o.env, MACHINA_NO_DAEMON: "1" };
  if (names.length > 0) {
    const t = Bun.spawn([o.machinactl, "terminate", ...names], { env, stdout: "ignore", stderr: "ignore" });
    await Promise.race([t.exited, Bun.sleep(30_000)]);
  }
  for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(20_000)]);
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(5_000)]);
  for (const cg of o.cgroups?.() ?? []) {
    if (existsSync(join(cg, "cgroup.kill"))) {
      try {
        writeFileSync(join(cg, "cgroup.kill"), "1");
      } catch {
        // gone meanwhile
      }
    }
  }
  for (const cg of o.cgroups?.() ?? []) Bun.spawnSync(["sh", "-c", 'find "$0" -depth -type d -exec rmdir {} + 2>/dev/null', cg]);
  if (existsSync(o.state)) Bun.spawnSync([o.machinactl, "list"], { env, stdout: "ignore", stderr: "ignore" });
}

// ------------------------------------------------------------- one timed run from a fresh cgroup

/**
 * Hierarchies systemd-nspawn puts its supervisor/payload split in (as
 * test/fixtures/nspawn-boot-check.sh): name=systemd and cgroup2 on a hybrid host, cgroup2 alone
 * on a unified one. Every timed run starts from fresh cgroups of its own in each.
 */
export const BENCH_CGROUP_ROOTS = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"].filter(
  (h) => existsSync(`${h}/cgroup.procs`) && !existsSync(`${h}/unified`),
);

/**
 * The wrapper moves itself into the fresh cgroups, says `ready`, waits for `go` and execs the tool
 * with its output in files. The clock starts at `go`: moving a process between cgroups costs an
 * RCU grace period here (~8-16 ms, see BENCHMARKS.md), which must not be charged to either tool.
 */
const WRAP =
  'for cg in $BENCH_CGROUPS; do mkdir "$cg" && echo $$ >"$cg/cgroup.procs" || exit 99; done; echo ready; read go; ' +
  'if [ -n "$BENCH_STATUS" ]; then exec 3>"$BENCH_STATUS"; fi; exec "$@" >"$BENCH_OUT" 2>"$BENCH_ERR" </dev/null';
/** Pause between the wrapper's cgroup move and `go`, so the kernel's rcu_sync is idle again (a cold start). */
export const SETTLE_MS = 100;

/**
 * Start `argv` through the wrapper in `cgroups` (made by it; remove them with removeCgroupTree
 * after the exit), its stdout and stderr into `out` and `err` (and its fd 3 into `status`, when given); resolves when it has been told to
 * go, with that moment (performance.now()).
 */
export async function launchWrapped(
  argv: string[],
  o: { cgroups: string[]; out: string; err: string; env: Record<string, string | undefined>; status?: string },
): Promise<{ proc: Bun.Subprocess<"pipe", "pipe", "pipe">; t0: number }> {
  const proc = Bun.spawn(["sh", "-c", WRAP, "sh", ...argv], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...o.env, BENCH_CGROUPS: o.cgroups.join(" "), BENCH_OUT: o.out, BENCH_ERR: o.err, BENCH_STATUS: o.status ?? "" },
  });
  const reader = proc.stdout.getReader();
  const first = await reader.read();
  reader.releaseLock();
  if (!first.value || !new TextDecoder().decode(first.value).startsWith("ready")) {
    await proc.exited;
    throw new Error(`cgroup wrapper failed: ${await new Response(proc.stderr).text()}`);
  }
  await Bun.sleep(SETTLE_MS);
  const t0 = performance.now();
  proc.stdin.write("go\n");
  await proc.stdin.flush();
  return { proc, t0 };
}

/** Remove a run's cgroup directory and the empty ones below it, retrying for ~2 s while the kernel still has them populated. */
export async function removeCgroupTree(dir: string): Promise<void> {
  for (let i = 0; i < 100 && existsSync(dir); i++) {
    if (i > 0) await Bun.sleep(20);
    Bun.spawnSync(["find", dir, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"], { stdout: "ignore", stderr: "ignore" });
  }
}

// ------------------------------------------------------------- runtime state on a tmpfs

/**
 * machina's state directory (machines, networks, leases, locks) where a usual host has it: on a
 * tmpfs (/run/machina; this VM has no systemd, and its /run is the root file system, ext4 without
 * a journal, where every file created costs ~0.1–5 ms of kernel CPU). Mounts a tmpfs on `dir`
 * (made if missing); the run's end unmounts it (density.ts endRun, also for a killed run).
 */
export function tmpfsAt(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "mode=0755,size=256m", "tmpfs", dir], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr.toString().trim()}`);
}

// ------------------------------------------------------------- machinad for a run

export interface BenchDaemon {
  /** what machina's commands need in their environment to be served by it */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * machinad (dist/bin) on a socket directory and state directory of the run's own, as installed
 * hosts run it: it serves machina-nspawn's front end (the planning in machinad). Ready when its
 * front-end socket exists.
 */
const MACHINAD_OWNER = "machinad.owner";

/** The machinad a killed run started on `runDir` (startMachinad), if it still runs: SIGTERM. */
export function stopDeadRunsMachinad(runDir: string): void {
  const pid = ownerRunning(join(runDir, MACHINAD_OWNER));
  if (pid !== undefined) process.kill(pid, "SIGTERM");
}

export async function startMachinad(runDir: string, state: string, machinad = join(REPO, "dist/bin/machinad")): Promise<BenchDaemon> {
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  const env = { MACHINA_API_SOCKET: join(runDir, "api.sock") };
  const proc = Bun.spawn([machinad, "--no-autostart"], {
    env: { ...process.env, ...env, MACHINA_STATE_DIR: state, MACHINA_SYSTEMD: "0" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
  });
  // who it is, for a later run to stop it should this one be killed (stopDeadRunsMachinad)
  writeOwner(join(runDir, MACHINAD_OWNER), proc.pid);
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  };
  for (let i = 0; !existsSync(join(runDir, "nspawn.sock")); i++) {
    if (i > 400 || proc.exitCode !== null) {
      await stop();
      throw new Error("machinad did not start");
    }
    await Bun.sleep(25);
  }
  return { env, stop };
}
