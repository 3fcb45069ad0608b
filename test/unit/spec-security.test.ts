import { describe, expect, test } from "bun:test";
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { MS } from "../../src/spec/mount-flags.ts";
import { expandSyscalls, seccompFilters } from "../../src/spec/seccomp.ts";
import { slicePath } from "../../src/spec/resources.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";
import { defaultSettings, type Settings } from "../../src/settings/settings.ts";
import { mapOciConfig } from "../../src/settings/oci-config.ts";
import { NSPAWN_DEFAULT_CAPS } from "../../src/settings/capabilities.ts";

const HYBRID = [
  "30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755",
  "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
  "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd",
  "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
  "34 30 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
  "35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
  "36 30 0:32 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio",
  "37 30 0:33 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset",
  "38 30 0:34 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices",
].join("\n");
const PURE_V2 = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw";

function host(extra: Record<string, string | FakeNode> = {}, mountinfo?: string, env: Record<string, string> = {}) {
  return new FakeHost({
    files: {
      "/usr/lib/os-release": "ID=debian\n",
      "/proc/sys/kernel/arch": "x86_64\n",
      "/proc/meminfo": "MemTotal:       1048576 kB\n",
      "/proc/self/cgroup": "4:memory:/user/x\n3:pids:/\n0::/\n",
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/os-release": "ID=busybox\n",
      ...extra,
    },
    env,
    ...(mountinfo !== undefined ? { mountinfo } : {}),
  });
}

function spec(argv: string[], h = host(), extra: Partial<Settings> = {}): RunSpec {
  const parsed = parseNspawnCommandLine(argv, h.env());
  if (parsed.action !== "run") throw new Error("not a run");
  Object.assign(parsed.settings, extra);
  const facts = gatherHostFacts(h, "/run/machina");
  const image = gatherImageFacts(h, parsed.settings.directory!, facts.timezone);
  return buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn" });
}

const records = (s: RunSpec, ...names: string[]) => specRecords(s).filter(([n]) => names.includes(n));

describe("seccomp", () => {
  test("default: audit filter, then the allow list (ENOSYS default, EPERM for known calls)", () => {
    const r = records(spec(["-D", "/srv/box", "x"]), "seccomp_filter", "seccomp_rule");
    expect(r).toEqual([
      ["seccomp_filter", ["allow"]],
      ["seccomp_rule", ["97", "socket", "a0==16", "a2==9"]],
      ["seccomp_filter", ["38"]],
    ]);
    const allow = records(spec(["-D", "/srv/box", "x"]), "seccomp_allow")[0]![1];
    const deny = records(spec(["-D", "/srv/box", "x"]), "seccomp_deny")[0]![1];
    expect(deny[0]).toBe("1");
    for (const n of ["read", "write", "execve", "mount", "setresuid", "ioctl", "personality", "reboot", "ptrace", "chown"]) expect(allow).toContain(n);
    for (const n of ["kexec_load", "swapon", "bpf", "add_key", "settimeofday", "init_module", "iopl", "acct", "syslog", "perf_event_open"]) {
      expect(allow).not.toContain(n);
      expect(deny).toContain(n);
    }
    expect(allow).toEqual([...allow].sort());
  });

  test("capability-dependent entries follow the retained set", () => {
    const allow = (argv: string[]) => records(spec(["-D", "/srv/box", ...argv, "x"]), "seccomp_allow")[0]![1];
    expect(allow(["--capability=CAP_SYS_TIME"])).toContain("settimeofday");
    expect(allow(["--capability=CAP_SYS_MODULE"])).toContain("init_module");
    expect(allow(["--drop-capability=CAP_SYS_BOOT"])).not.toContain("reboot");
    expect(allow(["--drop-capability=CAP_SYS_PTRACE"])).not.toContain("ptrace");
  });

  test("allow-list entries are added; ~ entries win and get EPERM", () => {
    const s = spec(["-D", "/srv/box", "--system-call-filter=swapon kexec_load", "--system-call-filter=~@clock uname", "--capability=CAP_SYS_TIME", "x"]);
    const allow = records(s, "seccomp_allow")[0]![1];
    const deny = records(s, "seccomp_deny")[0]![1];
    expect(allow).toContain("swapon");
    expect(allow).toContain("kexec_load");
    for (const n of ["settimeofday", "clock_settime", "adjtimex", "uname"]) {
      expect(allow).not.toContain(n);
      expect(deny).toContain(n);
    }
  });

  test("unknown groups are refused with the list of groups", () => {
    expect(() => spec(["-D", "/srv/box", "--system-call-filter=@nope", "x"])).toThrow(
      /unknown system call group "@nope" in --system-call-filter; known groups: @default @aio .* @known/,
    );
  });

  test("--suppress-sync=yes adds the sync filter before the allow list", () => {
    const r = specRecords(spec(["-D", "/srv/box", "--suppress-sync=yes", "x"])).filter(([n]) => n.startsWith("seccomp_"));
    const sync = r.slice(
      2,
      r.findIndex(([n, a]) => n === "seccomp_filter" && a[0] === "38"),
    );
    expect(sync).toEqual([
      ["seccomp_filter", ["allow"]],
      ["seccomp_deny", ["0", "msync", "sync"]],
      ["seccomp_deny", ["38", "openat2"]],
      ["seccomp_rule", ["0", "fdatasync", "a0<=2147483647"]],
      ["seccomp_rule", ["0", "fsync", "a0<=2147483647"]],
      ["seccomp_rule", ["0", "sync_file_range", "a0<=2147483647"]],
      ["seccomp_rule", ["0", "sync_file_range2", "a0<=2147483647"]],
      ["seccomp_rule", ["0", "syncfs", "a0<=2147483647"]],
      ["seccomp_rule", ["22", "open", "a1&1052672==1052672"]],
      ["seccomp_rule", ["22", "openat", "a2&1052672==1052672"]],
      ["seccomp_rule", ["22", "open", "a1&4096==4096"]],
      ["seccomp_rule", ["22", "openat", "a2&4096==4096"]],
    ]);
  });

  test("groups expand recursively", () => {
    expect(expandSyscalls(["@clock"], "x")).toEqual(["adjtimex", "clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64", "settimeofday"]);
    const f = seccompFilters(defaultSettings(), NSPAWN_DEFAULT_CAPS, "x");
    expect(f.length).toBe(2);
  });
});

describe("personality, OOM score, CPU affinity", () => {
  test("records", () => {
    const s = spec(["-D", "/srv/box", "--personality=x86", "--oom-score-adjust=-200", "--cpu-affinity=0-2,5", "x"]);
    expect(records(s, "personality", "oom_score_adjust", "cpu_affinity")).toEqual([
      ["personality", ["8"]],
      ["oom_score_adjust", ["-200"]],
      ["cpu_affinity", ["0", "1", "2", "5"]],
    ]);
    expect(records(spec(["-D", "/srv/box", "--personality=x86-64", "x"]), "personality")).toEqual([["personality", ["0"]]]);
    expect(records(spec(["-D", "/srv/box", "x"]), "personality", "oom_score_adjust", "cpu_affinity")).toEqual([]);
  });
  test("unsupported personalities are refused", () => {
    expect(() => spec(["-D", "/srv/box", "--personality=arm64", "x"])).toThrow(
      'personality "arm64" is not supported on this host (architecture x86_64; possible: x86-64, x86)',
    );
  });
});

describe("credentials", () => {
  test("ops, environment", () => {
    const s = spec(["-D", "/srv/box", "--set-credential=pw:se\\ncret", "--load-credential=key:/etc/key", "x"]);
    const i = s.ops.findIndex((o) => o.op === "mkdir" && o.path === "/run/host/credentials");
    expect(s.ops[i + 1]).toEqual({ op: "rebind", target: "/run/host", flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, optional: false });
    expect(s.ops[i]).toEqual({ op: "mkdir", path: "/run/host/credentials", mode: 0o500 });
    expect(s.ops.slice(i + 2, i + 6)).toEqual([
      {
        op: "mount",
        source: "none",
        target: "/run/host/credentials",
        fstype: "ramfs",
        flags: MS.NOSUID | MS.NODEV | MS.NOEXEC,
        data: "mode=0500",
        create: "none",
      },
      { op: "write", path: "/run/host/credentials/pw", mode: 0o400, content: "se\ncret" },
      { op: "copy", source: "/etc/key", path: "/run/host/credentials/key", mode: 0o400 },
      { op: "rebind", target: "/run/host/credentials", flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, optional: false },
    ]);
    expect(s.env).toContain("CREDENTIALS_DIRECTORY=/run/host/credentials");
    const none = spec(["-D", "/srv/box", "x"]);
    expect(none.ops.some((o) => "path" in o && o.path.startsWith("/run/host/credentials"))).toBe(false);
    expect(none.env.some((e) => e.startsWith("CREDENTIALS_DIRECTORY="))).toBe(false);
  });
  test("relative load paths come from the caller's $CREDENTIALS_DIRECTORY", () => {
    const s = spec(["-D", "/srv/box", "--load-credential=k:k.txt", "x"], host({}, undefined, { CREDENTIALS_DIRECTORY: "/run/creds/u" }));
    expect(s.ops).toContainEqual({ op: "copy", source: "/run/creds/u/k.txt", path: "/run/host/credentials/k", mode: 0o400 });
    expect(() => spec(["-D", "/srv/box", "--load-credential=k:k.txt", "x"])).toThrow("needs $CREDENTIALS_DIRECTORY");
  });
});

describe("resources", () => {
  test("slices nest as systemd's", () => {
    expect(slicePath("machine.slice")).toBe("machine.slice");
    expect(slicePath("a-b-c.slice")).toBe("a.slice/a-b.slice/a-b-c.slice");
    expect(slicePath("-.slice")).toBe("");
  });
  test("-S: the slice is the cgroup parent", () => {
    const s = spec(["-D", "/srv/box", "-S", "web-prod", "x"]);
    expect(s.cgroups).toEqual(["/sys/fs/cgroup/unified/web.slice/web-prod.slice/machine-box.scope"]);
    expect(s.cgroupSets).toEqual([]);
  });
  test("hybrid host: v1 controllers, the v1 scopes joined (memory below our own cgroup)", () => {
    const s = spec(
      [
        "-D",
        "/srv/box",
        "--property=MemoryMax=64M",
        "--property=MemoryHigh=infinity",
        "--property=TasksMax=20",
        "--property=CPUQuota=50%",
        "--property=CPUWeight=200",
        "--property=IOWeight=300",
        "x",
      ],
      host({}, HYBRID),
    );
    const scope = "machine.slice/machine-box.scope";
    expect(s.cgroups).toEqual([
      `/sys/fs/cgroup/unified/${scope}`,
      `/sys/fs/cgroup/memory/user/x/${scope}`,
      `/sys/fs/cgroup/pids/${scope}`,
      `/sys/fs/cgroup/cpu,cpuacct/${scope}`,
      `/sys/fs/cgroup/blkio/${scope}`,
    ]);
    expect(records(s, "cgroup_set")).toEqual([
      ["cgroup_set", [`/sys/fs/cgroup/memory/user/x/${scope}/memory.limit_in_bytes`, "67108864"]],
      ["cgroup_set", [`/sys/fs/cgroup/memory/user/x/${scope}/memory.soft_limit_in_bytes`, "-1"]],
      ["cgroup_set", [`/sys/fs/cgroup/pids/${scope}/pids.max`, "20"]],
      ["cgroup_set", [`/sys/fs/cgroup/cpu,cpuacct/${scope}/cpu.cfs_period_us`, "100000"]],
      ["cgroup_set", [`/sys/fs/cgroup/cpu,cpuacct/${scope}/cpu.cfs_quota_us`, "50000"]],
      ["cgroup_set", [`/sys/fs/cgroup/cpu,cpuacct/${scope}/cpu.shares`, "2048"]],
      ["cgroup_set", [`/sys/fs/cgroup/blkio/${scope}/blkio.weight`, "1000"]],
    ]);
  });
  test("machina-oci's exact resources on a hybrid host: v1 files at the cgroupsPath (absolute: from the root), devices denied then allowed in order", () => {
    const config = (cgroupsPath: string) =>
      mapOciConfig(
        JSON.stringify({
          ociVersion: "1.0.2",
          root: { path: "rootfs" },
          process: { args: ["x"], cwd: "/" },
          linux: {
            namespaces: [{ type: "pid" }, { type: "mount" }, { type: "ipc" }, { type: "uts" }],
            cgroupsPath,
            resources: {
              devices: [
                { allow: false, access: "rwm" },
                { allow: true, type: "c", major: 10, minor: 229, access: "rwm" },
                { allow: true, type: "b", major: 8, minor: 20, access: "rw" },
              ],
              cpu: { shares: 1024, quota: 50000, period: 500000, cpus: "0", mems: "0", realtimePeriod: 1000000, realtimeRuntime: 950000 },
              memory: { limit: 67108864 },
            },
          },
        }),
        "/srv/bundle",
        "runtime",
      ).values;
    const pick = (v: Partial<Settings>) => ({
      ociResources: v.ociResources,
      ociDeviceRules: v.ociDeviceRules,
      cgroupPathAbsolute: v.cgroupPathAbsolute ?? false,
    });
    const abs = config("/cgrouptest");
    const s = spec(["-D", "/srv/box", "x"], host({}, HYBRID), { ...pick(abs), cgroupPath: "cgrouptest" });
    expect(s.cgroups).toEqual([
      "/sys/fs/cgroup/unified/cgrouptest",
      "/sys/fs/cgroup/memory/cgrouptest", // absolute: not below our own /user/x
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest",
      "/sys/fs/cgroup/cpuset/cgrouptest",
      "/sys/fs/cgroup/devices/cgrouptest",
    ]);
    const sets = records(s, "cgroup_set").map(([, [path, value]]) => `${path} ${value}`);
    expect(sets.slice(0, 12)).toEqual([
      "/sys/fs/cgroup/memory/cgrouptest/memory.limit_in_bytes 67108864",
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest/cpu.shares 1024",
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest/cpu.cfs_period_us 500000",
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest/cpu.cfs_quota_us 50000",
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest/cpu.rt_period_us 1000000",
      "/sys/fs/cgroup/cpu,cpuacct/cgrouptest/cpu.rt_runtime_us 950000",
      "/sys/fs/cgroup/cpuset/cgrouptest/cpuset.cpus 0",
      "/sys/fs/cgroup/cpuset/cgrouptest/cpuset.mems 0",
      "/sys/fs/cgroup/devices/cgrouptest/devices.deny a",
      "/sys/fs/cgroup/devices/cgrouptest/devices.allow c 10:229 rwm",
      "/sys/fs/cgroup/devices/cgrouptest/devices.allow b 8:20 rw",
      "/sys/fs/cgroup/devices/cgrouptest/devices.allow c 1:3 rwm",
    ]);
    expect(sets.at(-1)).toBe("/sys/fs/cgroup/devices/cgrouptest/devices.allow c 136:* rw");
    // the BPF program on cgroup2 allows the same rules
    const allow = records(s, "device_allow").map(([, a]) => a.join(" "));
    expect(allow.slice(0, 3)).toEqual(["c 10 229 rwm", "b 8 20 rw", "c 1 3 rwm"]);
    // relative: below our own cgroup in each hierarchy (memory: /user/x)
    const rel = spec(["-D", "/srv/box", "x"], host({}, HYBRID), { ...pick(config("a/b")), cgroupPath: "a/b" });
    expect(rel.cgroups).toContain("/sys/fs/cgroup/memory/user/x/a/b");
  });
  test("machina-oci: what cgroup v2 cannot express is refused where the controller is in cgroup v2", () => {
    const h = host({ "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n" }, PURE_V2);
    const rt = {
      controller: "cpu" as const,
      field: "linux.resources.cpu.realtimeRuntime",
      v2: undefined,
      v1: [["cpu.rt_runtime_us", "1"] as [string, string]],
    };
    expect(() => spec(["-D", "/srv/box", "x"], h, { ociResources: [rt], cgroupPath: "c" })).toThrow(
      "linux.resources.cpu.realtimeRuntime: cgroup v2 has no equivalent",
    );
    const ok = spec(["-D", "/srv/box", "x"], h, {
      ociResources: [{ controller: "cpu", field: "linux.resources.cpu.quota", v2: ["cpu.max", "50000 500000"], v1: [] }],
      cgroupPath: "c",
    });
    expect(ok.cgroupSets.at(-1)).toEqual({ path: "/sys/fs/cgroup/c/cpu.max", value: "50000 500000" });
  });
  test("a bare number is bytes (MemoryMax=104857600 is 100 MiB, not 100 GiB); sizes sum as systemd's parse_size", () => {
    const limit = (v: string) => records(spec(["-D", "/srv/box", `--property=MemoryMax=${v}`, "x"], host({}, HYBRID)), "cgroup_set")[0]![1][1];
    expect(limit("104857600")).toBe("104857600");
    expect(limit("1")).toBe("1");
    expect(limit("1G512M")).toBe(String(1610612736));
    expect(limit("1.5K")).toBe("1536");
    expect(limit("2B")).toBe("2");
  });
  test("pure cgroup v2: controller files, controllers enabled in the parents", () => {
    const h = host({ "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n" }, PURE_V2);
    const s = spec(
      ["-D", "/srv/box", "-S", "a-b", "--property=MemoryMax=50%", "--property=TasksMax=infinity", "--property=CPUQuota=150%", "--property=IOWeight=300", "x"],
      h,
    );
    const scope = "/sys/fs/cgroup/a.slice/a-b.slice/machine-box.scope";
    expect(s.cgroups).toEqual([scope]);
    const sc = (ctl: string) =>
      ["/sys/fs/cgroup", "/sys/fs/cgroup/a.slice", "/sys/fs/cgroup/a.slice/a-b.slice"].map((d) => ({ path: `${d}/cgroup.subtree_control`, value: `+${ctl}` }));
    expect(s.cgroupSets).toEqual([
      ...sc("memory"),
      { path: `${scope}/memory.max`, value: "536870912" },
      ...sc("pids"),
      { path: `${scope}/pids.max`, value: "max" },
      ...sc("cpu"),
      { path: `${scope}/cpu.max`, value: "150000 100000" },
      ...sc("io"),
      { path: `${scope}/io.weight`, value: "default 300" },
    ]);
  });
  test.each([
    ["--property=Foo=1", 'unsupported property "Foo"; supported: MemoryMax, MemoryHigh, TasksMax, CPUQuota, CPUWeight, IOWeight'],
    ["--property=MemoryMax=lots", "MemoryMax=lots: expected bytes"],
    ["--property=CPUWeight=0", "expected a weight from 1 to 10000"],
    ["--property=CPUQuota=0%", "expected a percentage greater than 0"],
    ["--property=TasksMax=-1", 'expected a number of tasks or "infinity"'],
    ["--property=TasksMax=0", "out of range"],
    ["--property=MemoryMax=0", "out of range"],
    ["--property=MemoryMax=16E", "out of range"],
    ["--property=MemoryMax=18446744073709551615", "out of range"],
    ["--property=MemoryHigh=101%", "at most 100%"],
    ["--property=MemoryMax=1k", "MemoryMax=1k: expected bytes"],
    ["--property=MemoryMax=1KB", "MemoryMax=1KB: expected bytes"],
  ])("refuses %p", (flag, message) => {
    expect(() => spec(["-D", "/srv/box", flag, "x"], host({}, HYBRID))).toThrow(message);
  });
});

test("--capability=help lists the capability names as systemd-nspawn does", () => {
  const r = parseNspawnCommandLine(["--capability=help"], {});
  expect(r.action).toBe("list");
  if (r.action === "list") {
    expect(r.lines[0]).toBe("cap_chown");
    expect(r.lines.length).toBe(41);
  }
  expect(parseNspawnCommandLine(["--drop-capability=help"], {}).action).toBe("list");
});
