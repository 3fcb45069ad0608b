/**
 * The OCI runtime conformance suite (opencontainers/runtime-tools `validation/`): built once from
 * the vendored source tarball into the fixture cache, then each program run against a runtime in
 * a sandbox of its own, and everything it leaves behind removed. See docs/oci-conformance.md.
 *
 * A program runs with its working directory holding (copies of) `runtimetest` and
 * `rootfs-amd64.tar.gz` (the suite finds them there), TMPDIR in the sandbox (its bundles go
 * there) and RUNTIME a wrapper script that adds `--root SANDBOX/state` to every call, so the
 * runtime's state of this program is separate from the host's and from other programs'.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { ensureCached, FixtureError } from "../fixtures/images.ts";
import { classify, type ProgramResult } from "./tap.ts";

/** The suite's source at the last commit that builds with Debian 12's Go 1.19 (issue 13). */
export const DEFAULT_TARBALL = "/work/shared/vendor/runtime-tools-260e151.tar.gz";
/** Offline build: vendored modules only, never a download, never another Go toolchain. */
export const GO_ENV = { GOFLAGS: "-mod=vendor", GOPROXY: "off", GOTOOLCHAIN: "local" } as const;
const ROOTFS = "rootfs-amd64.tar.gz";

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function runLogged(cmd: string[], opts: { cwd: string; env?: Record<string, string>; log: string }): Promise<void> {
  const proc = Bun.spawn(cmd, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  await writeFile(opts.log, `$ ${cmd.join(" ")}\n${stdout}${stderr}\nexit ${code}\n`, { flag: "a" });
  if (code !== 0)
    throw new FixtureError(`${cmd.join(" ")} failed (exit ${code}), see ${opts.log}:\n${(stdout + stderr).trim().split("\n").slice(-15).join("\n")}`);
}

/**
 * The built suite: a directory with `runtimetest`, `rootfs-amd64.tar.gz` and
 * `validation/NAME/NAME.t`. Cached as `runtime-tools-<sha256 of the tarball, 16 hex>`.
 */
export async function ensureRuntimeTools(tarball: string): Promise<string> {
  if (!existsSync(tarball)) throw new FixtureError(`--tarball ${tarball}: no such file (the runtime-tools source tarball, see docs/oci-conformance.md)`);
  const hash = (await sha256(tarball)).slice(0, 16);
  return ensureCached(`runtime-tools-${hash}`, async (tmp) => {
    await mkdir(tmp);
    const log = join(tmp, "build.log");
    await runLogged(["tar", "-xzf", tarball, "-C", tmp, "--strip-components=1"], { cwd: tmp, log });
    const gopath = join(tmp, ".go");
    // COMMIT= : the Makefile would ask git (there is no .git here)
    await runLogged(["make", "COMMIT=", "runtimetest", "validation-executables"], {
      cwd: tmp,
      env: { ...GO_ENV, GOPATH: gopath, GOCACHE: join(gopath, "cache"), HOME: gopath },
      log,
    });
    await rm(gopath, { recursive: true, force: true });
    if (!existsSync(join(tmp, "runtimetest")) || (await programsIn(tmp)).length === 0)
      throw new FixtureError(`the runtime-tools build in ${tmp} made no programs`);
  });
}

async function programsIn(tools: string): Promise<string[]> {
  const names = await readdir(join(tools, "validation"));
  return names.filter((n) => existsSync(join(tools, "validation", n, `${n}.t`))).sort();
}

/** Every validation program's name (the directory under validation/), sorted. */
export const listPrograms = programsIn;

// ------------------------------------------------------------------ leftovers

/** What the suite names its cgroups: cgroups.AbsCgroupPath, the first part of RelCgroupPath, container ids (uuids). */
const SUITE_CGROUP = /^(?:cgrouptest|testdir|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

interface MountLine {
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

function mounts(): MountLine[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const f = line.split(" ");
      const sep = f.indexOf("-");
      return { mountPoint: unescapeMountinfo(f[4]!), fsType: f[sep + 1]!, superOptions: f[sep + 3] ?? "" };
    });
}

/**
 * The directories the suite's cgroups appear in: each cgroup hierarchy's root (absolute
 * cgroupsPath) and our own cgroup in it (a relative cgroupsPath is under the runtime's cgroup,
 * which is ours).
 */
export function cgroupParents(): string[] {
  const own = readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
      return { controllers: (controllers ?? "").split(",").filter(Boolean), path: path ?? "/" };
    });
  const parents = new Set<string>();
  for (const m of mounts()) {
    if (m.fsType !== "cgroup" && m.fsType !== "cgroup2") continue;
    const options = m.superOptions.split(",");
    const mine = own.find((o) =>
      m.fsType === "cgroup2" ? o.controllers.length === 0 : o.controllers.length > 0 && o.controllers.every((c) => options.includes(c)),
    );
    parents.add(m.mountPoint);
    if (mine && mine.path !== "/") parents.add(join(m.mountPoint, mine.path));
  }
  return [...parents];
}

function children(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name));
  } catch {
    return [];
  }
}

/** The suite-named cgroups that exist now under `parents`. */
export function suiteCgroups(parents: readonly string[]): Set<string> {
  return new Set(parents.flatMap((p) => children(p).filter((c) => SUITE_CGROUP.test(c.slice(c.lastIndexOf("/") + 1)))));
}

function killAll(cgroup: string): number {
  let n = 0;
  try {
    for (const pid of readFileSync(join(cgroup, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
        n++;
      } catch {}
    }
  } catch {}
  return n;
}

/** rmdir a cgroup and its children, depth first, killing what is left in them. */
async function removeCgroup(path: string): Promise<void> {
  for (const c of children(path)) await removeCgroup(c);
  for (let attempt = 0; ; attempt++) {
    killAll(path);
    try {
      await rmdir(path); // cgroupfs: rmdir only (the control files cannot be unlinked)
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      if (attempt >= 20) throw e;
      await Bun.sleep(100);
    }
  }
}

async function quiet(cmd: string[]): Promise<{ code: number; stdout: string }> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  return { code, stdout };
}

/** Running (not gone, not a zombie: this host's PID 1 reaps no orphans). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

const StateJson = z.object({ pid: z.number().int().optional(), status: z.string().optional() });

// ------------------------------------------------------------------ one program

export interface RunOptions {
  /** The runtime command (absolute path): runc, crun, machina-oci or a wrapper. */
  runtime: string;
  timeoutSeconds: number;
  /** Where to keep each program's raw output (NAME.out, NAME.err), if anywhere. */
  logDir?: string | undefined;
  /** Aborting stops the program (its whole process group); the clean-up still runs. */
  signal?: AbortSignal | undefined;
}

/** A ProgramResult plus what had to be removed after the program (containers, processes, mounts, cgroups). */
export interface ProgramReport extends ProgramResult {
  leftovers: string[];
}

const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Run one validation program in a fresh sandbox, then remove everything it left behind. */
export async function runProgram(tools: string, name: string, opts: RunOptions): Promise<ProgramReport> {
  const sandbox = await mkdtemp(join(tmpdir(), `oci-conformance-${name}-`));
  const work = join(sandbox, "work");
  const tmp = join(sandbox, "tmp");
  const state = join(sandbox, "state");
  const wrapper = join(sandbox, "runtime");
  const parents = cgroupParents();
  const cgroupsBefore = suiteCgroups(parents);
  const leftovers: string[] = [];
  try {
    await chmod(sandbox, 0o755); // searchable, as /tmp is: a user namespace's root must reach the bundles
    await Promise.all([mkdir(work), mkdir(tmp), mkdir(state)]);
    // copies: the suite copies runtimetest into each bundle with fileutils.CopyFile, which copies a symlink as a symlink
    await copyFile(join(tools, "runtimetest"), join(work, "runtimetest"));
    await chmod(join(work, "runtimetest"), 0o755);
    await copyFile(join(tools, ROOTFS), join(work, ROOTFS));
    await writeFile(wrapper, `#!/bin/sh\nexec ${shellQuote(opts.runtime)} --root ${shellQuote(state)} "$@"\n`);
    await chmod(wrapper, 0o755);

    const started = performance.now();
    const proc = Bun.spawn([join(tools, "validation", name, `${name}.t`)], {
      cwd: work,
      env: { ...process.env, RUNTIME: wrapper, TMPDIR: tmp },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      detached: true, // its own process group: a timeout kills the runtime commands it started too
    });
    let timedOut = false;
    const stop = () => {
      try {
        process.kill(-proc.pid, "SIGKILL");
      } catch {}
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutSeconds * 1000);
    opts.signal?.addEventListener("abort", stop);
    const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", stop);
    if (opts.logDir !== undefined) {
      await writeFile(join(opts.logDir, `${name}.out`), stdout);
      await writeFile(join(opts.logDir, `${name}.err`), stderr);
    }
    const result = classify(name, {
      stdout,
      stderr,
      exitCode: proc.signalCode === null ? exitCode : null,
      signal: timedOut || proc.signalCode === null ? null : String(proc.signalCode),
      timedOut,
      seconds: (performance.now() - started) / 1000,
    });
    return { ...result, leftovers };
  } finally {
    await cleanUp({ sandbox, state, wrapper, parents, cgroupsBefore, leftovers });
  }
}

async function cleanUp(s: {
  sandbox: string;
  state: string;
  wrapper: string;
  parents: string[];
  cgroupsBefore: Set<string>;
  leftovers: string[];
}): Promise<void> {
  // containers still known to the runtime (each is a directory of its --root for runc and crun)
  for (const dir of children(s.state)) {
    const id = dir.slice(s.state.length + 1);
    const st = await quiet([s.wrapper, "state", id]);
    let pid: number | undefined;
    try {
      const parsed = StateJson.parse(JSON.parse(st.stdout));
      if (parsed.status !== "stopped") pid = parsed.pid;
    } catch {}
    await quiet([s.wrapper, "delete", "--force", id]);
    s.leftovers.push(`container ${id}${pid ? ` (pid ${pid})` : ""}`);
    if (pid && pid > 1) {
      for (let i = 0; i < 20 && alive(pid); i++) await Bun.sleep(50);
      if (alive(pid)) {
        try {
          process.kill(pid, "SIGKILL");
          s.leftovers.push(`process ${pid} survived delete --force`);
        } catch {}
      }
    }
  }
  // mounts under the sandbox (rootfsPropagation shared/slave makes the bundle's mounts appear here)
  const inSandbox = mounts()
    .map((m) => m.mountPoint)
    .filter((p) => p === s.sandbox || p.startsWith(`${s.sandbox}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of new Set(inSandbox)) {
    await quiet(["umount", "--lazy", p]);
    s.leftovers.push(`mount ${p.slice(s.sandbox.length + 1)}`);
  }
  // cgroups the suite created and neither it nor the runtime removed
  for (const cg of suiteCgroups(s.parents)) {
    if (s.cgroupsBefore.has(cg)) continue;
    try {
      await removeCgroup(cg);
      s.leftovers.push(`cgroup ${cg}`);
    } catch (e) {
      s.leftovers.push(`cgroup ${cg} NOT removed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  await rm(s.sandbox, { recursive: true, force: true });
}
