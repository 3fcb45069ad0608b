/**
 * Processes entered from the host (machinactl shell, exec, login — machina-helper enter) are
 * exactly as confined as the container's own: the same seccomp filter (the same system calls
 * denied, the same number of filters), bounding/inheritable/permitted/ambient sets, no_new_privs,
 * rlimits, cgroup and namespaces as a process of PID 1's tree, no fd beyond 0-2; and at no moment
 * is an entering process visible from inside the container without the filter, nor (with -U)
 * is the helper's binary reachable through /proc/PID/exe. Without and with -U. Root only.
 *
 * The probe (test/probe/confinement.c, built static here) reports its own confinement; PID 1's
 * tree writes its report at start (/tmp/pid1.json, read through /proc/LEADER/root). On the host
 * it dumps a process's seccomp programs (PTRACE_SECCOMP_GET_FILTER): byte for byte PID 1's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, baseEnv, copyTree, startNspawn, waitFor, waitForState } from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");
const T = 90_000;
const EPERM = 1;

const files = new Scratch();
const scratch = new Scratch();
let busybox: string;
let probe: string;
let stateDir: string;

beforeAll(async () => {
  busybox = await ensureBusyboxImage();
  const base = files.dir("machina-enter-conf-");
  stateDir = `${base}/state`;
  probe = `${base}/confinement`;
  const cc = Bun.spawnSync(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", probe, join(REPO, "test/probe/confinement.c")], { stderr: "pipe" });
  if (cc.exitCode !== 0) throw new Error(`building the confinement probe: ${cc.stderr.toString()}`);
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

interface Report {
  Seccomp: string;
  Seccomp_filters: string;
  NoNewPrivs: string;
  CapInh: string;
  CapPrm: string;
  CapEff: string;
  CapBnd: string;
  CapAmb: string;
  Uid: string;
  cgroup: string;
  limits: string;
  ns: Record<string, string>;
  fds: number[];
  syscalls: Record<string, number>;
}

const parseReport = (text: string): Report => {
  const line = text.split(/\r?\n/).find((l) => l.startsWith('{"Seccomp"'));
  if (line === undefined) throw new Error(`no report in: ${text}`);
  return JSON.parse(line) as Report;
};

async function mctl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([MACHINACTL, ...args], {
    stdin: input !== undefined ? Buffer.from(input) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? 128, stdout, stderr };
}

async function mctlPty(args: string[], steps: Array<Record<string, unknown>>): Promise<{ code: number; output: string; timeout: boolean }> {
  const p = Bun.spawn(["python3", PTY_RUN, JSON.stringify(steps), MACHINACTL, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
  });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(out.trim().split("\n").pop()!);
}

/** A busybox container whose PID 1 (a shell) has the probe report its confinement, then waits. */
async function start(userns: boolean): Promise<{ name: string; leader: number; pid1: Report }> {
  const name = scratch.name("ec");
  const root = `${scratch.dir("machina-enter-conf-root-")}/${name}`;
  copyTree(busybox, root);
  writeFileSync(`${root}/confinement`, readFileSync(probe));
  chmodSync(`${root}/confinement`, 0o755);
  writeFileSync(`${root}/init.sh`, "/confinement report > /tmp/pid1.json.tmp && mv /tmp/pid1.json.tmp /tmp/pid1.json\nwhile :; do sleep 1; done\n");
  const bg = startNspawn(["-q", "-D", root, "-M", name, ...(userns ? ["-U"] : []), "/bin/sh", "/init.sh"], { stateDir }, scratch);
  scratch.defer(async () => {
    await mctl(["terminate", name]);
    await Promise.race([bg.exited, Bun.sleep(5000)]);
  });
  const state = await waitForState(stateDir, name, undefined, 20_000, bg);
  const text = await waitFor(
    "PID 1's report",
    () => {
      try {
        return readFileSync(`/proc/${state.leader}/root/tmp/pid1.json`, "utf8");
      } catch {
        return undefined;
      }
    },
    20_000,
  );
  return { name, leader: state.leader, pid1: parseReport(text) };
}

const hostNs = (leader: number) =>
  Object.fromEntries(["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"].map((ns) => [ns, readlinkSync(`/proc/${leader}/ns/${ns}`)]));

/** The host pid of the process of the container (the leader's pid namespace) running `cmdline`. */
function inContainer(leader: number, cmdline: string): number | undefined {
  const ns = readlinkSync(`/proc/${leader}/ns/pid`);
  for (const d of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8") === cmdline && readlinkSync(`/proc/${d}/ns/pid`) === ns) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** What must be the same for an entered root process and a process of PID 1's tree. */
const confinement = (r: Report) => ({ ...r, fds: undefined });

function expectConfinedLike(entered: Report, m: { leader: number; pid1: Report }, root: boolean): void {
  expect(entered.Seccomp).toBe("2");
  expect(entered.Seccomp_filters).toBe(m.pid1.Seccomp_filters);
  expect(entered.syscalls).toEqual(m.pid1.syscalls);
  for (const call of ["keyctl", "bpf", "perf_event_open", "open_by_handle_at"]) expect(entered.syscalls[call]).toBe(EPERM);
  expect(entered.ns).toEqual(hostNs(m.leader));
  expect(entered.ns).toEqual(m.pid1.ns);
  if (root) expect(confinement(entered)).toEqual(confinement(m.pid1));
  else {
    for (const k of ["CapBnd", "NoNewPrivs", "cgroup", "limits"] as const) expect(entered[k]).toBe(m.pid1[k]);
    expect(entered.CapInh).toBe(m.pid1.CapBnd);
    expect(entered.CapEff).toBe("0000000000000000");
    expect(entered.CapPrm).toBe("0000000000000000");
  }
}

for (const userns of [false, true]) {
  describe(userns ? "with -U" : "without a user namespace", () => {
    test(
      "shell and exec (pipes): the container's filter, caps, no_new_privs, rlimits, cgroup, namespaces; only fds 0-2",
      async () => {
        const m = await start(userns);
        expect(m.pid1.Seccomp).toBe("2");
        for (const verb of ["shell", "exec"]) {
          const r = await mctl([verb, m.name, "/confinement", "report"]);
          expect(r).toMatchObject({ code: 0, stderr: "" });
          const entered = parseReport(r.stdout);
          expectConfinedLike(entered, m, true);
          expect(entered.fds).toEqual([0, 1, 2]);
        }
        const nobody = await mctl(["shell", `nobody@${m.name}`, "/confinement", "report"]);
        expect(nobody.code).toBe(0);
        const entered = parseReport(nobody.stdout);
        expect(entered.Uid.split("\t")[0]).toBe("65534");
        expectConfinedLike(entered, m, false);
        expect(entered.fds).toEqual([0, 1, 2]);
      },
      T,
    );

    test(
      "the very same BPF programs as PID 1 (PTRACE_SECCOMP_GET_FILTER from the host), for root and another user",
      async () => {
        const m = await start(userns);
        const programs = (pid: number): string[] => {
          const r = Bun.spawnSync([probe, "filters", String(pid)], { stdout: "pipe", stderr: "pipe" });
          expect(r.stderr.toString()).toBe("");
          return (JSON.parse(r.stdout.toString()) as { filters: string[] }).filters;
        };
        const pid1 = programs(m.leader);
        expect(pid1.length).toBeGreaterThan(0);
        for (const [who, secs] of [
          [m.name, "7.1"],
          [`nobody@${m.name}`, "7.2"],
        ] as const) {
          const p = Bun.spawn([MACHINACTL, "shell", who, "/bin/sleep", secs], {
            stdout: "ignore",
            stderr: "ignore",
            env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
          });
          scratch.track(p);
          const pid = await waitFor(`the entered sleep ${secs}`, () => inContainer(m.leader, `/bin/sleep\0${secs}\0`));
          expect(programs(pid)).toEqual(pid1);
          p.kill("SIGTERM");
          await p.exited;
        }
      },
      T,
    );

    test(
      "shell on a pty and login: the same confinement; the pty on 0-2 and nothing else",
      async () => {
        const m = await start(userns);
        const sh = await mctlPty(["shell", m.name, "/confinement", "report"], [{ expect: "}}" }]);
        expect(sh.timeout).toBe(false);
        expect(sh.code).toBe(0);
        const entered = parseReport(sh.output);
        expectConfinedLike(entered, m, true);
        expect(entered.fds).toEqual([0, 1, 2]);
        const login = await mctlPty(
          ["login", m.name],
          [{ expect: "login: " }, { send: "root\r" }, { expect: "# " }, { send: "/confinement report; exit\r" }, { expect: "}}" }],
        );
        if (login.timeout) throw new Error(JSON.stringify(login.output));
        expect(login.timeout).toBe(false);
        expectConfinedLike(parseReport(login.output), m, true);
      },
      T,
    );

    test(
      "through the relay: SIGTERM reaches the command (143), ^]^]^] hangs it up",
      async () => {
        const m = await start(userns);
        const p = Bun.spawn([MACHINACTL, "exec", m.name, "/bin/sleep", "30"], {
          stdout: "pipe",
          stderr: "pipe",
          env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
        });
        scratch.track(p);
        await waitFor("the command to run", () => {
          const r = Bun.spawnSync(["pgrep", "-f", "^/bin/sleep 30$"], { stdout: "pipe" });
          return r.stdout.toString().trim() !== "" || undefined;
        });
        p.kill("SIGTERM");
        expect(await p.exited).toBe(143);
        const sh = await mctlPty(["shell", m.name], [{ expect: "# " }, { send: "\x1d\x1d\x1d" }]);
        expect(sh.timeout).toBe(false);
        expect(sh.code).toBe(129);
      },
      T,
    );

    test(
      "from inside, no entering process is ever seen without the filter, nor the helper's binary reachable",
      async () => {
        const m = await start(userns);
        // a container process watches every process of its pid namespace while others enter
        const watcher = Bun.spawn([MACHINACTL, "exec", m.name, "/confinement", "watch", "3000"], {
          stdout: "pipe",
          stderr: "pipe",
          env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
        });
        scratch.track(watcher);
        await Bun.sleep(300);
        for (let i = 0; i < 4; i++) expect((await mctl(["shell", m.name, "/bin/sleep", "0.2"])).code).toBe(0);
        expect((await mctl(["exec", m.name, "/bin/sleep", "0.2"])).code).toBe(0);
        expect((await mctl(["shell", `nobody@${m.name}`, "/bin/sleep", "0.2"])).code).toBe(0);
        const out = await new Response(watcher.stdout).text();
        await watcher.exited;
        const seen = JSON.parse(out.trim()) as { looked: number; unconfined: number[]; helper_reachable: number[] };
        expect(seen.looked).toBeGreaterThan(0);
        expect(seen.unconfined).toEqual([]);
        // without -U the container's root keeps CAP_SYS_PTRACE in the host's user namespace, which
        // overrides the dumpable flag (docs/security.md); with -U the helper is never reachable
        if (userns) expect(seen.helper_reachable).toEqual([]);
      },
      T,
    );
  });
}
