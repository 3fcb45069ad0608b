import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ProbeReport } from "../helpers/machina.ts";

const BUILD = join(import.meta.dir, "../probe/build.sh");

let work: string;
let probe: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "machina-probe-"));
  probe = join(work, "probe");
  const r = Bun.spawnSync([BUILD, probe], { stderr: "pipe", stdout: "pipe" });
  if (r.exitCode !== 0) throw new Error(`probe build failed: ${r.stderr.toString()}`);
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function runProbe(args: string[], env?: Record<string, string>): { code: number; signal: string | null; out: string } {
  const r = Bun.spawnSync([probe, ...args], { env: env ?? { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, signal: r.signalCode === undefined || r.signalCode === null ? null : String(r.signalCode), out: r.stdout.toString() };
}

describe("probe", () => {
  test("is a static executable", () => {
    const r = Bun.spawnSync(["file", probe]);
    if (r.exitCode === 0) expect(r.stdout.toString()).toMatch(/statically linked/);
  });

  test("reports the host as one parseable JSON object", () => {
    const weird = 'quote" back\\ nl\n tab\t ctl\x01 é';
    const { code, out } = runProbe([], { PATH: "/usr/bin:/bin", WEIRD: weird, EMPTY: "" });
    expect(code).toBe(0);
    expect(out.trim().split("\n")).toHaveLength(1);
    const r = JSON.parse(out) as ProbeReport;

    expect(r.pid).toBeGreaterThan(0);
    expect(r.ppid).toBe(process.pid);
    expect(r.uid).toBe(process.getuid?.() ?? r.uid);
    expect(r.cwd).toBe(process.cwd());
    expect(r.argv).toEqual([probe]);
    expect(r.env).toEqual({ PATH: "/usr/bin:/bin", WEIRD: weird, EMPTY: "" });
    expect(typeof r.hostname).toBe("string");

    const root = r.mountinfo.find((m) => m.mountPoint === "/");
    expect(root).toBeDefined();
    const proc = r.mountinfo.find((m) => m.mountPoint === "/proc");
    expect(proc?.fsType).toBe("proc");
    for (const m of r.mountinfo) {
      expect(typeof m.mountId).toBe("number");
      expect(typeof m.options).toBe("string");
      expect(typeof m.superOptions).toBe("string");
    }

    const devNull = r.dev?.find((d) => d.name === "null");
    expect(devNull).toMatchObject({ type: "char", major: 1, minor: 3 });
    expect(r.dev?.find((d) => d.name === "fd")).toMatchObject({ type: "symlink", target: "/proc/self/fd" });
    expect(Array.isArray(r.devPts)).toBe(true);

    for (const k of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] as const) {
      expect(r.caps[k]).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(r.noNewPrivs === 0 || r.noNewPrivs === 1).toBe(true);
    expect(typeof r.seccomp).toBe("number");

    expect(Object.keys(r.fds)).toEqual(expect.arrayContaining(["0", "1", "2"]));
    expect(r.cgroup.length).toBeGreaterThan(0);
    expect(r.rlimits.NOFILE?.soft).toBeDefined();
    expect(Object.keys(r.rlimits)).toHaveLength(16);
    expect(typeof r.oomScoreAdj).toBe("number");
    expect(r.tty.stdout).toBe(false);
    expect(r.machineId === null || typeof r.machineId === "string").toBe(true);
  });

  test("exit N", () => {
    expect(runProbe(["exit", "42"]).code).toBe(42);
    expect(runProbe(["exit", "0"]).code).toBe(0);
  });

  test("kill SIG raises the signal", () => {
    expect(runProbe(["kill", "TERM"]).signal).toBe("SIGTERM");
    expect(runProbe(["kill", "SIGUSR1"]).signal).toBe("SIGUSR1");
    expect(runProbe(["kill", "9"]).signal).toBe("SIGKILL");
  });

  test("sleep SECS", () => {
    const t = performance.now();
    expect(runProbe(["sleep", "0.2"]).code).toBe(0);
    expect(performance.now() - t).toBeGreaterThanOrEqual(190);
  });

  test("touch PATH", () => {
    const p = join(work, "touched");
    const ok = JSON.parse(runProbe(["touch", p]).out) as { ok: boolean; errno: number };
    expect(ok).toMatchObject({ ok: true, errno: 0 });
    expect(existsSync(p)).toBe(true);
    const bad = JSON.parse(runProbe(["touch", join(work, "no/such/file")]).out) as { ok: boolean; errno: number };
    expect(bad).toMatchObject({ ok: false, errno: 2 });
  });

  test("orphans N lists the reparented children", () => {
    const { code, out } = runProbe(["orphans", "3"]);
    expect(code).toBe(0);
    const r = JSON.parse(out) as { orphans: number[]; zombies: number; zombiesAll: number };
    expect(r.orphans).toHaveLength(3);
    // whether they stay zombies depends on who reaps orphans on this host
    expect(r.zombies).toBeGreaterThanOrEqual(0);
    expect(r.zombies).toBeLessThanOrEqual(3);
  });

  test("bad usage exits 2", () => {
    expect(runProbe(["frobnicate"]).code).toBe(2);
  });
});
