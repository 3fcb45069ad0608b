/**
 * Lifecycle of a (non-boot) container: exit codes, death by signal, --kill-signal, --as-pid2
 * reaping, the registry entry (state.json) and that nothing is left behind — after a normal
 * exit, a crash, a failed start and SIGKILL of the supervisor. Root only; busybox image.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import {
  NOTHING,
  SUBREAPER,
  Scratch,
  alive,
  leftovers,
  machineCgroup,
  newLeftovers,
  pidNamespace,
  processesIn,
  readState,
  runNspawn,
  startNspawn,
  statePath,
  waitFor,
  waitForState,
} from "../helpers/machina.ts";

const T = 30_000;
const files = new Scratch();
const scratch = new Scratch();
let image: string;
let stateDir: string;

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

const base = (name: string) => ["-q", "--console=pipe", "-D", image, "-M", name];

/** Run, and check that nothing of this container is left behind afterwards. */
async function runClean(args: string[]) {
  const before = leftovers(stateDir);
  const r = await runNspawn(args, { stateDir }, scratch);
  expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
  return r;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe("exit status", () => {
  test(
    "0 and 7 propagate",
    async () => {
      const n = scratch.name();
      expect((await runClean([...base(n), "/usr/bin/probe", "exit", "0"])).code).toBe(0);
      expect((await runClean([...base(n), "/usr/bin/probe", "exit", "7"])).code).toBe(7);
    },
    T,
  );

  test(
    "without -q: nspawn's one-line exit messages",
    async () => {
      const n = scratch.name();
      const ok = await runClean(["--console=pipe", "-D", image, "-M", n, "/usr/bin/probe", "exit", "0"]);
      expect(ok.lines).toEqual([`Spawning container ${n} on ${image}.`, `Container ${n} exited successfully.`]);
      const bad = await runClean(["--console=pipe", "-D", image, "-M", n, "/usr/bin/probe", "exit", "7"]);
      expect(bad.lines.at(-1)).toBe(`Container ${n} failed with error code 7.`);
    },
    T,
  );

  test(
    "a payload killed from outside gives 128+N (PID 1: SIGKILL)",
    async () => {
      const n = scratch.name();
      const before = leftovers(stateDir);
      const bg = startNspawn([...base(n), "/usr/bin/probe", "sleep", "30"], { stateDir }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      process.kill(s.leader, "SIGKILL");
      expect(await bg.exited).toBe(137);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "--as-pid2: the payload (PID 2) killed by SIGTERM from outside gives 143",
    async () => {
      const n = scratch.name();
      const bg = startNspawn([...base(n), "--as-pid2", "/usr/bin/probe", "sleep", "30"], { stateDir }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      const payload = await waitFor("the payload as child of the stub", () => childrenOf(s.leader)[0]);
      process.kill(payload, "SIGTERM");
      expect(await bg.exited).toBe(143);
    },
    T,
  );

  test(
    "--as-pid2: `probe kill` (death by the payload's own signal) gives 128+N",
    async () => {
      const n = scratch.name();
      expect((await runClean([...base(n), "--as-pid2", "/usr/bin/probe", "kill", "TERM"])).code).toBe(143);
      expect((await runClean([...base(n), "--as-pid2", "/usr/bin/probe", "kill", "9"])).code).toBe(137);
    },
    T,
  );

  test(
    "as PID 1 a default-action signal sent to itself is ignored (as under nspawn)",
    async () => {
      const r = await runClean([...base(scratch.name()), "/usr/bin/probe", "kill", "TERM"]);
      expect(r.code).toBe(125);
      expect(JSON.parse(r.stdout)).toEqual({ raised: 15, survived: true, pid: 1 });
    },
    T,
  );

  test(
    "a missing command gives 127 and one clear line",
    async () => {
      const r = await runClean([...base(scratch.name()), "/no/such/command"]);
      expect(r.code).toBe(127);
      expect(r.lines).toHaveLength(1);
      expect(r.lines[0]).toMatch(/^machina-nspawn: .*"\/no\/such\/command".*No such file or directory/);
    },
    T,
  );

  test(
    "a command found in no PATH directory gives 127",
    async () => {
      const r = await runClean([...base(scratch.name()), "no-such-command"]);
      expect(r.code).toBe(127);
      expect(r.lines).toHaveLength(1);
      expect(r.lines[0]).toContain("no-such-command");
    },
    T,
  );

  test(
    "a command that is not executable gives 126",
    async () => {
      const r = await runClean([...base(scratch.name()), "/etc/passwd"]);
      expect(r.code).toBe(126);
      expect(r.lines).toHaveLength(1);
    },
    T,
  );
});

describe("signals and reaping", () => {
  test(
    "SIGTERM to the supervisor kills a non-boot container with SIGKILL by default (137)",
    async () => {
      const n = scratch.name();
      const bg = startNspawn([...base(n), "/bin/sh", "-c", "trap 'echo got-TERM; exit 3' TERM; while :; do sleep 0.05; done"], { stateDir }, scratch);
      await waitForState(stateDir, n, undefined, 10_000, bg);
      await Bun.sleep(100); // the trap is installed
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(137);
      expect(await bg.stdout).toBe("");
    },
    T,
  );

  test(
    "--kill-signal is what the container's PID 1 gets on SIGTERM",
    async () => {
      const n = scratch.name();
      const bg = startNspawn(
        [...base(n), "--kill-signal=SIGUSR1", "/bin/sh", "-c", "trap 'echo got-USR1; exit 3' USR1; while :; do sleep 0.05; done"],
        { stateDir },
        scratch,
      );
      await waitForState(stateDir, n, undefined, 10_000, bg);
      await Bun.sleep(100);
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(3);
      expect(await bg.stdout).toBe("got-USR1\n");
    },
    T,
  );

  test(
    "a second SIGTERM terminates at once (SIGKILL)",
    async () => {
      const n = scratch.name();
      const bg = startNspawn(
        [...base(n), "--kill-signal=SIGTERM", "/bin/sh", "-c", "trap 'echo ignored' TERM; while :; do sleep 0.05; done"],
        { stateDir },
        scratch,
      );
      await waitForState(stateDir, n, undefined, 10_000, bg);
      await Bun.sleep(100);
      bg.proc.kill("SIGTERM");
      await Bun.sleep(250);
      expect(bg.proc.exitCode).toBeNull(); // the first one was only passed on, and ignored
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(137);
      expect(await bg.stdout).toContain("ignored");
    },
    T,
  );

  test(
    "--as-pid2 reaps orphans; PID 1 itself does not (as nspawn)",
    async () => {
      const n = scratch.name();
      const pid2 = JSON.parse((await runClean([...base(n), "--as-pid2", "/usr/bin/probe", "orphans", "3"])).stdout);
      expect(pid2.pid).toBe(2);
      expect(pid2.orphans).toHaveLength(3);
      expect(pid2.zombies).toBe(0);
      const pid1 = JSON.parse((await runClean([...base(n), "/usr/bin/probe", "orphans", "3"])).stdout);
      expect(pid1.pid).toBe(1);
      expect(pid1.zombies).toBe(3);
    },
    T,
  );

  test(
    "--as-pid2: SIGTERM to the supervisor with --kill-signal=SIGTERM shuts down cleanly (exit 0)",
    async () => {
      const n = scratch.name();
      const bg = startNspawn([...base(n), "--as-pid2", "--kill-signal=SIGTERM", "/usr/bin/probe", "sleep", "30"], { stateDir }, scratch);
      await waitForState(stateDir, n, undefined, 10_000, bg);
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(0);
    },
    T,
  );
});

describe("registry", () => {
  test(
    "state.json while running (leader, supervisor, name, root, uuid, cgroup), removed at exit",
    async () => {
      const n = scratch.name();
      const before = leftovers(stateDir);
      const bg = startNspawn([...base(n), "--uuid=0123456789abcdef0123456789abcdef", "/usr/bin/probe", "sleep", "30"], { stateDir }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      expect(s.supervisor).toBe(bg.proc.pid); // the helper replaced machina-nspawn: the caller's pid
      expect(alive(s.leader)).toBe(true);
      expect(readFileSync(`/proc/${s.leader}/status`, "utf8")).toMatch(/^NSpid:\s+\d+\s+1$/m);
      expect(s.name).toBe(n);
      expect(s.root).toBe(image);
      expect(s.uuid).toBe("01234567-89ab-cdef-0123-456789abcdef");
      expect(s.boot).toBe(false);
      expect(s.cgroup).toBe(machineCgroup(n));
      expect(s.cgroup).toContain("\\x2d"); // systemd's unit-name escaping of "-"
      expect(readFileSync(`${s.cgroup}/cgroup.procs`, "utf8").split("\n")).toContain(String(s.leader));
      const ns = pidNamespace(s.leader)!;
      expect(ns).not.toBe(pidNamespace(process.pid));
      expect(processesIn(ns)).toEqual([s.leader]);
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(137);
      expect(processesIn(ns)).toEqual([]);
      expect(existsSync(statePath(stateDir, n))).toBe(false);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "a second container with the same name fails with 'already running', exit 1; the first is unharmed",
    async () => {
      const n = scratch.name();
      const bg = startNspawn([...base(n), "/usr/bin/probe", "sleep", "30"], { stateDir }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      const second = await runNspawn([...base(n), "/usr/bin/probe", "exit", "0"], { stateDir }, scratch);
      expect(second.code).toBe(1);
      expect(second.lines).toHaveLength(1);
      expect(second.lines[0]).toMatch(new RegExp(`^machina-nspawn: .*${n}.*already running`));
      expect(readState(stateDir, n)).toEqual(s);
      expect(alive(s.leader)).toBe(true);
      bg.proc.kill("SIGTERM");
      expect(await bg.exited).toBe(137);
    },
    T,
  );

  test(
    "SIGKILL of the supervisor kills the container (PDEATHSIG); the name can be used again",
    async () => {
      const n = scratch.name();
      // under a subreaper, so the orphaned container does not stay a zombie of the host's PID 1
      const bg = startNspawn([...base(n), "/usr/bin/probe", "sleep", "30"], { stateDir, wrapper: [SUBREAPER] }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      const ns = pidNamespace(s.leader)!;
      process.kill(s.supervisor, "SIGKILL");
      await waitFor("the container to die", () => !alive(s.leader), 5000);
      expect(processesIn(ns)).toEqual([]);
      await bg.exited;
      const again = await runNspawn([...base(n), "/usr/bin/probe", "exit", "0"], { stateDir }, scratch);
      expect(again.stderr).toBe("");
      expect(again.code).toBe(0);
    },
    T,
  );

  test(
    "after SIGKILL of the supervisor, the stale entry and its cgroups are swept at the next start",
    async () => {
      const n = scratch.name();
      const before = leftovers(stateDir);
      const bg = startNspawn([...base(n), "/usr/bin/probe", "sleep", "30"], { stateDir, wrapper: [SUBREAPER] }, scratch);
      const s = await waitForState(stateDir, n, undefined, 10_000, bg);
      process.kill(s.supervisor, "SIGKILL");
      await bg.exited;
      await waitFor("the container to die", () => !alive(s.leader), 5000);
      // nobody is left to clean up at once (the supervisor got no chance) ...
      expect(existsSync(statePath(stateDir, n))).toBe(true);
      // ... but any later start in the same state dir removes what a dead supervisor left
      const other = await runNspawn([...base(scratch.name()), "/usr/bin/probe", "exit", "0"], { stateDir }, scratch);
      expect(other.code).toBe(0);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "state is removed after the payload crashes",
    async () => {
      const n = scratch.name();
      const r = await runClean([...base(n), "--as-pid2", "/usr/bin/probe", "kill", "SEGV"]);
      expect(r.code).toBe(139);
      expect(existsSync(`${stateDir}/machines/${n}`)).toBe(false);
    },
    T,
  );
});
