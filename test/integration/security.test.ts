/**
 * Security and resources inside a busybox container: seccomp (the default filter, `~` denies,
 * allow-list additions), --personality, --oom-score-adjust, --cpu-affinity, --property limits
 * (read on the host while the container runs, a fork bomb bounded by TasksMax), -S slices and
 * credentials. Side by side with systemd-nspawn where both can run. Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, haveSystemdNspawn, parseProbe, runNspawn, runSystemdNspawn, startNspawn, unitEscape, waitFor } from "../helpers/machina.ts";

const T = 30_000;
const files = new Scratch();
const scratch = new Scratch();
let image: string;
let stateDir: string;
const nspawn = haveSystemdNspawn();

/** Cgroup v1 controller hierarchies (memory, pids, cpu, blkio) and where we sit in each. */
function v1Dirs(): string[] {
  const own = new Map<string, string>();
  for (const l of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
    const m = /^[0-9]+:([^:]+):(.*)$/.exec(l);
    if (m) for (const c of m[1]!.split(",")) own.set(c, m[2]!);
  }
  const out: string[] = [];
  for (const c of ["memory", "pids", "cpu", "blkio"]) {
    const mount = `/sys/fs/cgroup/${c}`;
    if (!existsSync(`${mount}/cgroup.procs`)) continue;
    const o = own.get(c) ?? "/";
    out.push(o === "/" ? mount : `${mount}${o}`);
  }
  return out;
}

/**
 * Remove the slice directories this file created: its own sec.slice everywhere; machine.slice
 * only in the v1 controller hierarchies (only --property uses those) and only when empty — the
 * v2 and name=systemd machine.slice are shared with concurrently running tests.
 */
function removeSlices(slices: string[]): void {
  for (const base of [...v1Dirs(), "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"])
    for (const s of slices) {
      if (s === "machine.slice" && !v1Dirs().includes(base)) continue;
      const dir = `${base}/${s}`;
      if (!existsSync(dir)) continue;
      for (const e of readdirSync(dir, { withFileTypes: true }))
        if (e.isDirectory() && e.name.startsWith("machine-mt\\x2d"))
          try {
            rmdirSync(`${dir}/${e.name}`);
          } catch {
            // still busy or not ours
          }
      try {
        rmdirSync(dir);
      } catch {
        // not empty (another machine) or already gone
      }
    }
}

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
});
afterEach(async () => {
  await scratch.cleanup();
  removeSlices(["sec.slice/sec-it.slice", "sec.slice", "machine.slice"]);
});
afterAll(() => files.cleanup());

async function sh(args: string[], script: string): Promise<{ code: number; out: string; err: string }> {
  const name = scratch.name();
  const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", name, ...args, "/bin/sh", "-c", script], { stateDir }, scratch);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function shNspawn(args: string[], script: string): Promise<{ code: number; out: string; err: string }> {
  const name = scratch.name("ns");
  const r = await runSystemdNspawn(["-q", "--console=pipe", "-D", image, "-M", name, ...args, "/bin/sh", "-c", script], name, {});
  return { code: r.code, out: r.stdout, err: r.stderr };
}

describe("seccomp", () => {
  test(
    "the default filter: EPERM for swapon(2), the probe sees seccomp mode 2, normal commands work",
    async () => {
      const name = scratch.name();
      const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", name, "/usr/bin/probe"], { stateDir }, scratch);
      expect(r.code).toBe(0);
      expect(parseProbe(r.stdout).seccomp).toBe(2);
      const s = await sh([], "swapon /dev/null; ls / >/dev/null && echo ls-ok");
      expect(s.err).toContain("Operation not permitted");
      expect(s.out).toContain("ls-ok");
    },
    T,
  );

  test(
    "an allow-listed extra call gets through (swapon of /dev/null fails with EINVAL instead)",
    async () => {
      const s = await sh(["--system-call-filter=swapon"], "swapon /dev/null");
      expect(s.err).not.toContain("Operation not permitted");
      expect(s.err).toContain("Invalid argument");
    },
    T,
  );

  // @clock is allowed only with CAP_SYS_TIME; adjtimex without options is a read-only query
  // (never `date -s`: with the capability it would set the host's clock).
  test(
    "~@clock: adjtimex fails with EPERM even with CAP_SYS_TIME",
    async () => {
      const ok = await sh(["--capability=CAP_SYS_TIME"], "adjtimex >/dev/null && echo ok");
      expect(ok.out).toBe("ok\n");
      const denied = await sh(["--capability=CAP_SYS_TIME", "--system-call-filter=~@clock"], "adjtimex");
      expect(denied.err).toContain("Operation not permitted");
      const byDefault = await sh([], "adjtimex");
      expect(byDefault.err).toContain("Operation not permitted");
    },
    T,
  );

  test(
    "unknown groups are refused before anything runs",
    async () => {
      const s = await sh(["--system-call-filter=@nope"], "true");
      expect(s.code).toBe(1);
      expect(s.err).toContain('unknown system call group "@nope"');
    },
    T,
  );

  test.if(nspawn)(
    "side by side with systemd-nspawn: the same answers",
    async () => {
      const script = "swapon /dev/null 2>&1; adjtimex 2>&1 | head -1; sync; echo sync=$?";
      for (const args of [
        [],
        ["--capability=CAP_SYS_TIME"],
        ["--capability=CAP_SYS_TIME", "--system-call-filter=~@clock"],
        ["--system-call-filter=swapon"],
        ["--suppress-sync=yes"],
      ]) {
        const a = await sh(args, script);
        const b = await shNspawn(args, script);
        expect({ args, out: a.out }).toEqual({ args, out: b.out });
      }
    },
    60_000,
  );
});

describe("personality, OOM score, CPU affinity", () => {
  const script = "uname -m; cat /proc/self/oom_score_adj; grep Cpus_allowed_list /proc/self/status";
  const args = ["--personality=x86", "--oom-score-adjust=500", "--cpu-affinity=0"];

  test(
    "applied to the container",
    async () => {
      const s = await sh(args, script);
      expect(s.out).toBe("i686\n500\nCpus_allowed_list:\t0\n");
      const name = scratch.name();
      const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", name, "--oom-score-adjust=300", "/usr/bin/probe"], { stateDir }, scratch);
      expect(parseProbe(r.stdout).oomScoreAdj).toBe(300);
    },
    T,
  );

  test.if(nspawn)(
    "side by side with systemd-nspawn",
    async () => {
      expect((await sh(args, script)).out).toBe((await shNspawn(args, script)).out);
    },
    T,
  );

  test(
    "an unsupported personality is refused clearly",
    async () => {
      const s = await sh(["--personality=arm64"], "true");
      expect(s.code).toBe(1);
      expect(s.err).toContain('personality "arm64" is not supported on this host');
    },
    T,
  );
});

describe("resource properties and slices", () => {
  test(
    "MemoryMax and TasksMax are in the cgroup files while it runs; -S nests the slice",
    async () => {
      const name = scratch.name();
      const bg = startNspawn(
        ["-q", "--console=pipe", "-D", image, "-M", name, "-S", "sec-it", "--property=MemoryMax=64M", "--property=TasksMax=20", "/bin/sh", "-c", "sleep 30"],
        { stateDir },
        scratch,
      );
      const scope = `sec.slice/sec-it.slice/machine-${unitEscape(name)}.scope`;
      const dirs = v1Dirs();
      const pids = dirs.find((d) => d.startsWith("/sys/fs/cgroup/pids"));
      const mem = dirs.find((d) => d.startsWith("/sys/fs/cgroup/memory"));
      const v2 = readFileSync("/sys/fs/cgroup/unified/cgroup.controllers", "utf8").split(/\s+/);
      if (v2.includes("pids")) {
        const f = `/sys/fs/cgroup/unified/${scope}/pids.max`;
        // The scope exists (with "max") a moment before the supervisor writes the limit.
        expect(await waitFor("pids.max = 20", () => (existsSync(f) && readFileSync(f, "utf8") === "20\n" ? "20\n" : undefined))).toBe("20\n");
      } else {
        const f = `${pids}/${scope}/pids.max`;
        // The scope exists (with "max") a moment before the supervisor writes the limit.
        expect(await waitFor("pids.max = 20", () => (existsSync(f) && readFileSync(f, "utf8") === "20\n" ? "20\n" : undefined))).toBe("20\n");
        expect(readFileSync(`${mem}/${scope}/memory.limit_in_bytes`, "utf8")).toBe(`${64 * 1024 * 1024}\n`);
      }
      expect(existsSync(`/sys/fs/cgroup/unified/${scope}`)).toBe(true);
      bg.proc.kill("SIGTERM");
      await bg.exited;
      expect(existsSync(`/sys/fs/cgroup/unified/${scope}`)).toBe(false);
      if (!v2.includes("pids")) expect(existsSync(`${pids}/${scope}`)).toBe(false);
    },
    T,
  );

  test(
    "a fork bomb is bounded by TasksMax",
    async () => {
      const s = await sh(["--property=TasksMax=10"], "for i in $(seq 1 30); do sleep 2 & done; wait");
      expect(s.err).toContain("can't fork");
    },
    T,
  );

  test(
    "unknown properties are refused with the list of supported ones",
    async () => {
      const s = await sh(["--property=DeviceAllow=/dev/null"], "true");
      expect(s.code).toBe(1);
      expect(s.err).toContain('unsupported property "DeviceAllow"; supported: MemoryMax, MemoryHigh, TasksMax, CPUQuota, CPUWeight, IOWeight');
    },
    T,
  );
});

describe("credentials", () => {
  const script =
    'stat -c "%a %n" /run/host/credentials /run/host/credentials/*; cat /run/host/credentials/pw; echo; cat /run/host/credentials/file; echo; echo "dir=$CREDENTIALS_DIRECTORY"; grep -c " /run/host/credentials ro," /proc/self/mountinfo; echo x > /run/host/credentials/new 2>/dev/null || echo ro';

  function credArgs(): string[] {
    const f = `${files.dir()}/cred`;
    writeFileSync(f, "from a file");
    return ["--set-credential=pw:se\\ncret", `--load-credential=file:${f}`];
  }

  test(
    "readable files 0400 in a 0500 read-only directory; $CREDENTIALS_DIRECTORY",
    async () => {
      const s = await sh(credArgs(), script);
      expect(s.code).toBe(0);
      expect(s.out).toBe(
        "500 /run/host/credentials\n400 /run/host/credentials/file\n400 /run/host/credentials/pw\n" +
          "se\ncret\nfrom a file\ndir=/run/host/credentials\n1\nro\n",
      );
    },
    T,
  );

  test.if(nspawn)(
    "side by side with systemd-nspawn",
    async () => {
      const args = credArgs();
      expect((await sh(args, script)).out).toBe((await shNspawn(args, script)).out);
    },
    T,
  );
});

describe("the working directory cannot configure machina", () => {
  test(
    "a .env and a bunfig.toml (with a preload) where root runs machina-nspawn and machinactl — installed or from the sources — are not read",
    () => {
      const dir = files.dir("machina-cwd-");
      const marker = `${dir}/PRELOADED`;
      // a .env would make machina-nspawn print its plan and run /bin/false as the helper; the preload would run code
      writeFileSync(`${dir}/.env`, "MACHINA_PRINT_SPEC=1\nMACHINA_HELPER=/bin/false\n");
      writeFileSync(`${dir}/bunfig.toml`, 'preload = ["./preload.ts"]\n');
      writeFileSync(`${dir}/preload.ts`, `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
      const env: Record<string, string | undefined> = { ...process.env, MACHINA_STATE_DIR: stateDir, MACHINA_PRINT_SPEC: undefined, MACHINA_HELPER: undefined };
      // installed: the native front end (no machinad here: it runs the full program) and the full program itself
      for (const nspawn of [`${REPO}/dist/bin/machina-nspawn`, `${REPO}/dist/libexec/machina-nspawn`, `${REPO}/bin/machina-nspawn`]) {
        const r = Bun.spawnSync([nspawn, "-q", "--register=no", "--console=pipe", "-D", image, "-M", scratch.name("cw"), "/bin/sh", "-c", "echo RAN"], {
          cwd: dir,
          env,
          stderr: "pipe",
        });
        expect({ nspawn, out: r.stdout.toString(), err: r.stderr.toString(), code: r.exitCode }).toEqual({ nspawn, out: "RAN\n", err: "", code: 0 });
      }
      for (const ctl of [`${REPO}/dist/bin/machinactl`, `${REPO}/dist/libexec/machinactl`, `${REPO}/bin/machinactl`]) {
        const r = Bun.spawnSync([ctl, "list", "--no-legend"], { cwd: dir, env, stderr: "pipe" });
        expect({ ctl, code: r.exitCode, err: r.stderr.toString() }).toEqual({ ctl, code: 0, err: "" });
      }
      expect(existsSync(marker)).toBe(false);
    },
    T,
  );
});
