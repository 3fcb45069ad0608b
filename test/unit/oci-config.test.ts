import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeHost } from "../../src/host/fake.ts";
import { loadOciBundle } from "../../src/runtime/prepare.ts";
import { CAPABILITIES } from "../../src/settings/capabilities.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { mapOciConfig } from "../../src/settings/oci-config.ts";
import { parseResources, resourceWrites } from "../../src/oci-runtime/update.ts";
import { ociHookRecords } from "../../src/oci-runtime/create.ts";
import type { Settings } from "../../src/settings/settings.ts";

const FIX = join(import.meta.dir, "../fixtures/oci");
const RUNC = readFileSync(join(FIX, "runc-spec.json"), "utf8"); // `runc spec` (runc 1.1.5)
const ROOTLESS = readFileSync(join(FIX, "runc-spec-rootless.json"), "utf8"); // `runc spec --rootless`
const B = "/srv/bundle";
const F = `${B}/config.json`;

type Json = Record<string, unknown>;
function edit(f: (c: Json) => void, base = RUNC): string {
  const c = JSON.parse(base) as Json;
  f(c);
  return JSON.stringify(c);
}
const proc = (c: Json) => c.process as Json;
const linux = (c: Json) => c.linux as Json;
const refusal = (text: string) => {
  try {
    mapOciConfig(text, B);
  } catch (e) {
    return (e as Error).message;
  }
  return "accepted";
};

describe("machina-oci: linux.resources exactly as runc writes them", () => {
  const runtime = (f: (c: Json) => void) => mapOciConfig(edit(f), B, "runtime").values;
  test("one (controller, v2, v1) entry per value, runc's conversions, v1 order", () => {
    const v = runtime((c) => {
      linux(c).cgroupsPath = "/cgrouptest";
      linux(c).resources = {
        memory: { limit: 536870912, reservation: -1 },
        pids: { limit: 0 },
        cpu: { shares: 1024, quota: 50000, period: 500000, realtimePeriod: 1000000, realtimeRuntime: 950000, cpus: "0-1", mems: "0" },
      };
    });
    expect(v.cgroupPathAbsolute).toBe(true);
    expect(v.properties).toBeUndefined();
    expect(v.cpuAffinity).toBeUndefined();
    expect(v.ociResources).toEqual([
      { controller: "memory", field: "linux.resources.memory.limit", v2: ["memory.max", "536870912"], v1: [["memory.limit_in_bytes", "536870912"]] },
      { controller: "memory", field: "linux.resources.memory.reservation", v2: ["memory.low", "max"], v1: [["memory.soft_limit_in_bytes", "-1"]] },
      { controller: "cpu", field: "linux.resources.cpu.shares", v2: ["cpu.weight", "39"], v1: [["cpu.shares", "1024"]] },
      {
        controller: "cpu",
        field: "linux.resources.cpu.quota",
        v2: ["cpu.max", "50000 500000"],
        v1: [
          ["cpu.cfs_period_us", "500000"],
          ["cpu.cfs_quota_us", "50000"],
        ],
      },
      {
        controller: "cpu",
        field: "linux.resources.cpu.realtimeRuntime",
        v2: undefined,
        v1: [
          ["cpu.rt_period_us", "1000000"],
          ["cpu.rt_runtime_us", "950000"],
        ],
      },
      { controller: "cpuset", field: "linux.resources.cpu.cpus", v2: ["cpuset.cpus", "0-1"], v1: [["cpuset.cpus", "0-1"]] },
      { controller: "cpuset", field: "linux.resources.cpu.mems", v2: ["cpuset.mems", "0"], v1: [["cpuset.mems", "0"]] },
      { controller: "pids", field: "linux.resources.pids.limit", v2: ["pids.max", "max"], v1: [["pids.max", "max"]] },
    ]);
    expect(runtime((c) => (linux(c).cgroupsPath = "a/b")).cgroupPathAbsolute).toBeUndefined();
    // empty cpu: nothing to write
    expect(runtime((c) => (linux(c).resources = { cpu: {} })).ociResources).toBeUndefined();
  });
  test("devices: the allow rules after the last deny-all, in order; none: machina's policy alone", () => {
    const rules = (devices: unknown[]) => runtime((c) => (linux(c).resources = { devices })).ociDeviceRules;
    expect(rules([{ allow: false, access: "rwm" }])).toBeUndefined();
    expect(
      rules([
        { allow: true, type: "c", major: 1, minor: 3, access: "r" },
        { allow: false, access: "rwm" },
        { allow: true, type: "c", major: 10, minor: 229, access: "rwm" },
        { allow: true, type: "b", major: 8, access: "rw" },
        { allow: true, access: "m" },
      ]),
    ).toEqual([
      { type: "c", major: 10, minor: 229, access: "rwm" },
      { type: "b", major: 8, minor: undefined, access: "rw" },
      { type: "a", major: undefined, minor: undefined, access: "m" },
    ]);
    const refused = (devices: unknown[]) => {
      try {
        runtime((c) => (linux(c).resources = { devices }));
      } catch (e) {
        return (e as Error).message;
      }
      return "accepted";
    };
    expect(
      refused([
        { allow: true, type: "c", major: 1, minor: 3 },
        { allow: false, type: "c", major: 1, minor: 3, access: "w" },
      ]),
    ).toBe(
      `${F}: linux.resources.devices[1]: a deny rule after allow rules cannot be honoured (machina allows the listed rules and its standard device nodes; deny-all entries are accepted)`,
    );
    expect(refused([{ allow: true, type: "x" }])).toBe(`${F}: linux.resources.devices[0].type: "x" is not a device type (a, c or b)`);
    expect(refused([{ allow: true, access: "rr" }])).toBe(`${F}: linux.resources.devices[0].access: "rr" is not an access (one or more of r, w, m)`);
    expect(refused([{ allow: false, type: "c", major: 1, minor: 3, access: "w" }])).toBe("accepted");
  });
});

describe("machina-oci update: the same table, a 0 leaves a value as it is", () => {
  test("values and refusals", () => {
    const w = resourceWrites(parseResources(JSON.stringify({ cpu: { shares: 0, quota: 20000 }, pids: { limit: 0 }, memory: { limit: -1 } }), "-"));
    expect(w).toEqual([
      { controller: "memory", field: "memory.limit", v2: ["memory.max", "max"], v1: [["memory.limit_in_bytes", "-1"]] },
      { controller: "cpu", field: "cpu.quota", v2: ["cpu.max", "20000 100000"], v1: [["cpu.cfs_quota_us", "20000"]] },
    ]);
    expect(resourceWrites(parseResources('{"unified": {"memory.high": "1000000"}}', "-"))).toEqual([
      { controller: "memory", field: "unified.memory.high", v2: ["memory.high", "1000000"], v1: [] },
    ]);
    expect(() => resourceWrites(parseResources('{"memory": {"kernel": 1}}', "-"))).toThrow("memory.kernel: is not supported by machina");
    expect(resourceWrites(parseResources('{"memory": {"kernel": 0, "swappiness": 0, "disableOOMKiller": false}, "pids": {"limit": 0}}', "-"))).toEqual([]);
    expect(() => resourceWrites(parseResources('{"memory": {"swap": 1}}', "-"))).toThrow("memory.swap: memory+swap needs memory.limit");
  });
});

describe("config.json from runc spec", () => {
  test.skipIf(Bun.which("runc") === null)("the fixtures are what this host's runc spec writes", () => {
    for (const [args, fixture] of [
      [[], RUNC],
      [["--rootless"], ROOTLESS],
    ] as const) {
      const dir = mkdtempSync(join(tmpdir(), "oci-spec-"));
      try {
        const r = Bun.spawnSync(["runc", "spec", ...args], { cwd: dir });
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toEqual(JSON.parse(fixture));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test("the default config maps onto Settings", () => {
    const m = mapOciConfig(RUNC, B);
    const v = m.values;
    expect(m.root).toBe(`${B}/rootfs`);
    expect(v.directory).toBe(`${B}/rootfs`);
    expect(v.readOnly).toBe(true);
    expect(v.command).toEqual(["sh"]);
    expect(v.environment).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]);
    expect(v.chdir).toBe("/");
    expect(v.hostname).toBe("runc");
    expect(v.user).toBe("0");
    expect(v.userIds).toEqual({ uid: 0, gid: 0, additionalGids: [] });
    expect(v.capabilities).toEqual(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    expect(v.dropCapabilities).toEqual(CAPABILITIES.filter((c) => !["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"].includes(c)));
    expect(v.ambientCapabilities).toEqual(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    expect(v.rlimits).toEqual([{ resource: 7, name: "NOFILE", soft: 1024n, hard: 1024n }]);
    expect(v.noNewPrivileges).toBe(true);
    expect(v.privateNetwork).toBe(true);
    expect(v.console).toBeUndefined(); // terminal: true = machina's default console
    // as nspawn's oci_load(): PID 1, no resolv.conf/timezone/journal set-up
    expect([v.boot, v.asPid2, v.resolvConf, v.timezone, v.linkJournal]).toEqual([false, false, "off", "off", "no"]);
    // the API mounts are machina's own; maskedPaths nspawn keeps to itself are skipped
    expect(v.binds).toBeUndefined();
    expect(v.tmpfs).toBeUndefined();
    expect(v.inaccessible).toEqual(["/proc/latency_stats", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware"]);
    expect(m.provenance.get("command")).toEqual({ kind: "file", file: F, line: 0, trusted: true });
  });

  test("the rootless default: user namespace with its mapping (and a warning for a short range)", () => {
    const m = mapOciConfig(ROOTLESS, B);
    expect(m.values.privateUsers).toEqual({ mode: "range", base: 0, count: 1 });
    expect(m.values.privateNetwork).toBeUndefined(); // no network namespace: the host's
    expect(m.warnings).toEqual(["config.json: linux.uidMappings: fewer than 65536 IDs mapped; most images need 65536"]);
  });
});

describe("mapping", () => {
  test("process fields", () => {
    const v = mapOciConfig(
      edit((c) => {
        Object.assign(proc(c), {
          terminal: false,
          args: ["/bin/echo", "hi"],
          env: ["A=1"],
          cwd: "/tmp/",
          oomScoreAdj: 100,
          user: { uid: 1000, gid: 100, additionalGids: [10, 20] },
          selinuxLabel: "system_u:system_r:container_t:s0",
          capabilities: {
            bounding: ["CAP_KILL", "CAP_CHOWN"],
            effective: ["CAP_KILL"],
            permitted: ["CAP_KILL"],
            ambient: ["CAP_KILL"],
            inheritable: ["CAP_KILL"],
          },
          rlimits: [{ type: "RLIMIT_NPROC", soft: -1, hard: -1 }],
        });
      }),
      B,
    ).values;
    expect(v.console).toBe("pipe");
    expect(v.command).toEqual(["/bin/echo", "hi"]);
    expect(v.chdir).toBe("/tmp");
    expect(v.user).toBe("1000");
    expect(v.userIds).toEqual({ uid: 1000, gid: 100, additionalGids: [10, 20] });
    expect(v.oomScoreAdjust).toBe(100);
    expect(v.selinuxContext).toBe("system_u:system_r:container_t:s0");
    expect(v.rlimits).toEqual([{ resource: 6, name: "NPROC", soft: "infinity", hard: "infinity" }]);
    expect(v.ambientCapabilities).toEqual(["CAP_KILL"]);
  });

  test("mounts: binds (bundle-relative source, ro, rbind), tmpfs, API mounts", () => {
    const v = mapOciConfig(
      edit((c) => {
        (c.mounts as unknown[]).push(
          { destination: "/data", type: "bind", source: "data", options: ["rbind", "ro", "rprivate"] },
          { destination: "/opt/x", type: "none", source: "/srv/x", options: ["bind"] },
          { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m", "mode=1777"] },
          { destination: "/run", type: "tmpfs", source: "tmpfs" },
        );
      }),
      B,
    ).values;
    expect(v.binds).toEqual([
      { source: `${B}/data`, sourceInImage: false, destination: "/data", readOnly: true, recursive: true, idmap: "noidmap" },
      { source: "/srv/x", sourceInImage: false, destination: "/opt/x", readOnly: false, recursive: false, idmap: "noidmap" },
    ]);
    expect(v.tmpfs).toEqual([{ destination: "/scratch", options: "size=1m,mode=1777" }]);
  });

  test("readonlyPaths outside the API file systems: read-only binds of the path onto itself", () => {
    const v = mapOciConfig(
      edit((c) => {
        linux(c).readonlyPaths = ["/proc/sys", "/usr"];
      }),
      B,
    ).values;
    expect(v.binds).toEqual([{ source: "/usr", sourceInImage: true, destination: "/usr", readOnly: true, recursive: true, idmap: "noidmap" }]);
  });

  test("namespaces joined by path, mappings, resources, seccomp, mountLabel, cgroupsPath", () => {
    const v = mapOciConfig(
      edit((c) => {
        const l = linux(c);
        l.namespaces = [
          { type: "pid" },
          { type: "network", path: "/run/netns/x" },
          { type: "ipc" },
          { type: "uts" },
          { type: "mount" },
          { type: "user" },
          { type: "cgroup" },
        ];
        l.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        l.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
        l.resources = {
          devices: [{ allow: false, access: "rwm" }],
          memory: { limit: 536870912 },
          pids: { limit: 64 },
          cpu: { shares: 1024, quota: 50000, period: 100000, cpus: "0-1" },
        };
        l.seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          architectures: ["SCMP_ARCH_X86_64"],
          syscalls: [
            { names: ["kexec_load", "reboot"], action: "SCMP_ACT_ERRNO" },
            { names: ["read"], action: "SCMP_ACT_ALLOW" },
          ],
        };
        l.mountLabel = "system_u:object_r:container_file_t:s0";
        l.cgroupsPath = "oci.slice";
      }),
      B,
    ).values;
    expect(v.networkNamespacePath).toBe("/run/netns/x");
    expect(v.privateNetwork).toBeUndefined();
    expect(v.privateUsers).toEqual({ mode: "range", base: 100000, count: 65536 });
    expect(v.properties).toEqual([
      { name: "MemoryMax", value: "536870912" },
      { name: "CPUWeight", value: "39" },
      { name: "CPUQuota", value: "50.00%" },
      { name: "TasksMax", value: "64" },
    ]);
    expect(v.cpuAffinity).toEqual([0, 1]);
    expect(v.systemCallFilter).toBeUndefined();
    expect(v.seccompProfile).toEqual([
      { defaultAction: "allow", architectures: ["native", "x86_64"], allow: [], deny: [{ errno: 1, names: ["kexec_load", "reboot"] }], rules: [] },
    ]);
    expect(v.selinuxApifsContext).toBe("system_u:object_r:container_file_t:s0");
    expect(v.slice).toBe("oci.slice");
  });

  test("unknown fields are ignored, as the spec requires; annotations too", () => {
    const m = mapOciConfig(
      edit((c) => {
        c.futureThing = { x: 1 };
        proc(c).newField = true;
        c.annotations = { "org.example": "x" };
      }),
      B,
    );
    expect(m.values.command).toEqual(["sh"]);
  });
});

describe("refusals: one line naming the config.json field", () => {
  const cases: Array<[string, (c: Json) => void, string]> = [
    [
      "version",
      (c) => {
        c.ociVersion = "2.0.0";
      },
      `${F}: ociVersion: version "2.0.0" is not supported (machina reads runtime-spec 1.0.x to 1.2.x)`,
    ],
    [
      "type",
      (c) => {
        proc(c).terminal = "yes";
      },
      `${F}: process.terminal: Invalid input: expected boolean, received string`,
    ],
    [
      "root",
      (c) => {
        delete c.root;
      },
      `${F}: root.path: is required (the bundle's root file system, e.g. "rootfs")`,
    ],
    [
      "apparmor",
      (c) => {
        proc(c).apparmorProfile = "docker-default";
      },
      `${F}: process.apparmorProfile: AppArmor is not supported by machina (this host has no AppArmor); remove the field`,
    ],
    [
      "empty args",
      (c) => {
        proc(c).args = [];
      },
      `${F}: process.args: the argument list is empty`,
    ],
    [
      "env",
      (c) => {
        proc(c).env = ["NOEQUALS"];
      },
      `${F}: process.env[0]: "NOEQUALS" is not a NAME=VALUE assignment`,
    ],
    [
      "cwd",
      (c) => {
        proc(c).cwd = "rel";
      },
      `${F}: process.cwd: "rel" is not an absolute path`,
    ],
    [
      "dotdot",
      (c) => {
        (c.mounts as unknown[]).push({ destination: "/a/../etc", type: "tmpfs" });
      },
      `${F}: mounts[7].destination: "/a/../etc" may not contain ".." components`,
    ],
    [
      "masked relative",
      (c) => {
        linux(c).maskedPaths = ["proc/kcore"];
      },
      `${F}: linux.maskedPaths[0]: "proc/kcore" is not an absolute path`,
    ],
    [
      "cap name",
      (c) => {
        proc(c).capabilities = { bounding: ["CAP_NOPE"] };
      },
      `${F}: process.capabilities.bounding[0]: unknown capability "CAP_NOPE" (expected a name such as CAP_NET_ADMIN)`,
    ],
    [
      "effective",
      (c) => {
        (proc(c).capabilities as Json).effective = ["CAP_KILL"];
      },
      `${F}: process.capabilities.effective: must equal the bounding set (the payload runs as root): machina cannot give the payload a different effective set`,
    ],
    [
      "rlimit",
      (c) => {
        proc(c).rlimits = [{ type: "NOFILE", soft: 1, hard: 1 }];
      },
      `${F}: process.rlimits[0].type: unknown resource limit "NOFILE" (expected RLIMIT_NOFILE, RLIMIT_NPROC, …)`,
    ],
    [
      "rlimit twice",
      (c) => {
        proc(c).rlimits = [
          { type: "RLIMIT_NOFILE", soft: 1, hard: 1 },
          { type: "RLIMIT_NOFILE", soft: 2, hard: 2 },
        ];
      },
      `${F}: process.rlimits[1].type: RLIMIT_NOFILE is given twice`,
    ],
    [
      "oom",
      (c) => {
        proc(c).oomScoreAdj = 2000;
      },
      `${F}: process.oomScoreAdj: 2000 is out of range (-1000 to 1000)`,
    ],
    [
      "api mount",
      (c) => {
        (c.mounts as Json[])[0]!.type = "tmpfs";
      },
      `${F}: mounts[0]: machina mounts its own proc on /proc; a tmpfs mount there cannot be honoured`,
    ],
    [
      "other type",
      (c) => {
        (c.mounts as unknown[]).push({ destination: "/mnt/p", type: "proc", source: "proc" });
      },
      `${F}: mounts[7]: a proc mount on /mnt/p cannot be honoured (config.json may add bind and tmpfs mounts; machina mounts proc, sysfs, cgroup, mqueue and devpts only at their usual places)`,
    ],
    [
      "bind option",
      (c) => {
        (c.mounts as unknown[]).push({ destination: "/d", type: "bind", source: "/s", options: ["rbind", "nosuid"] });
      },
      `${F}: mounts[7].options: bind option "nosuid" cannot be honoured (supported: bind, rbind, ro, rw, private, rprivate)`,
    ],
    [
      "bind no source",
      (c) => {
        (c.mounts as unknown[]).push({ destination: "/d", type: "bind" });
      },
      `${F}: mounts[7].source: a bind mount needs a source`,
    ],
    [
      "no mount ns",
      (c) => {
        linux(c).namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }];
      },
      `${F}: linux.namespaces: containers without a mount namespace are not supported`,
    ],
    [
      "host pid",
      (c) => {
        linux(c).namespaces = [{ type: "mount" }, { type: "ipc" }, { type: "uts" }];
      },
      `${F}: linux.namespaces: machina always gives a container its own pid namespace: sharing the host's cannot be honoured (add {"type": "pid"})`,
    ],
    [
      "join ipc",
      (c) => {
        linux(c).namespaces = [{ type: "mount" }, { type: "pid" }, { type: "uts" }, { type: "ipc", path: "/proc/1/ns/ipc" }];
      },
      `${F}: linux.namespaces[3].path: joining an existing ipc namespace is not supported (only the network namespace can be joined by path)`,
    ],
    [
      "time ns",
      (c) => {
        (linux(c).namespaces as unknown[]).push({ type: "time" });
      },
      `${F}: linux.namespaces: time namespaces are not supported by machina`,
    ],
    [
      "two mappings",
      (c) => {
        const l = linux(c);
        (l.namespaces as unknown[]).push({ type: "user" });
        l.uidMappings = [
          { containerID: 0, hostID: 1, size: 1 },
          { containerID: 1, hostID: 5, size: 1 },
        ];
        l.gidMappings = l.uidMappings;
      },
      `${F}: linux.uidMappings: more than one mapping is not supported`,
    ],
    [
      "uneven mappings",
      (c) => {
        const l = linux(c);
        (l.namespaces as unknown[]).push({ type: "user" });
        l.uidMappings = [{ containerID: 0, hostID: 1, size: 65536 }];
        l.gidMappings = [{ containerID: 0, hostID: 2, size: 65536 }];
      },
      `${F}: linux.gidMappings: uidMappings and gidMappings must be the same range`,
    ],
    [
      "maps without userns",
      (c) => {
        linux(c).uidMappings = [{ containerID: 0, hostID: 1, size: 1 }];
      },
      `${F}: linux.uidMappings: mappings are given but linux.namespaces has no user namespace`,
    ],
    [
      "ro proc path",
      (c) => {
        linux(c).readonlyPaths = ["/proc/foo"];
      },
      `${F}: linux.readonlyPaths[0]: "/proc/foo" is inside an API file system machina mounts: it cannot be made read-only`,
    ],
    [
      "sysctl",
      (c) => {
        linux(c).sysctl = { "net.ipv4.ip_forward": "1" };
      },
      `${F}: linux.sysctl: setting sysctls (net.ipv4.ip_forward) is not supported by machina-nspawn (machina-oci sets them)`,
    ],
    [
      "seccomp trace",
      (c) => {
        linux(c).seccomp = { defaultAction: "SCMP_ACT_TRACE" };
      },
      `${F}: linux.seccomp.defaultAction: SCMP_ACT_TRACE cannot be honoured (machina attaches no tracer: the kernel would answer ENOSYS, a tracer would decide)`,
    ],
    [
      "seccomp two conditions on one argument",
      (c) => {
        linux(c).seccomp = {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [
            {
              names: ["personality"],
              action: "SCMP_ACT_ERRNO",
              args: [
                { index: 0, value: 8, op: "SCMP_CMP_NE" },
                { index: 0, value: 0, op: "SCMP_CMP_NE" },
              ],
            },
          ],
        };
      },
      `${F}: linux.seccomp.syscalls[0].args[1]: a second condition on argument 0 cannot be honoured (libseccomp cannot AND two conditions on one argument; split the entry or use SCMP_CMP_MASKED_EQ)`,
    ],
    [
      "seccomp flags",
      (c) => {
        linux(c).seccomp = { defaultAction: "SCMP_ACT_ALLOW", flags: ["SECCOMP_FILTER_FLAG_LOG"] };
      },
      `${F}: linux.seccomp.flags: SECCOMP_FILTER_FLAG_LOG cannot be honoured (machina loads its seccomp filters without flags)`,
    ],
    [
      "hooks",
      (c) => {
        c.hooks = { prestart: [{ path: "/bin/true" }] };
      },
      `${F}: hooks.prestart: hooks are not supported by machina-nspawn (machina-oci runs them)`,
    ],
    [
      "devices rule",
      (c) => {
        (linux(c).resources as Json).devices = [{ allow: true, type: "c", major: 1, minor: 3, access: "rwm" }];
      },
      `${F}: linux.resources.devices[0]: device access rules cannot be honoured (machina allows its standard device nodes only; a deny-all entry is accepted)`,
    ],
    [
      "swap",
      (c) => {
        (linux(c).resources as Json).memory = { limit: 1, swap: 2 };
      },
      `${F}: linux.resources.memory.swap: is not supported by machina (supported: memory.limit)`,
    ],
    [
      "blockIO",
      (c) => {
        (linux(c).resources as Json).blockIO = { weight: 10 };
      },
      `${F}: linux.resources.blockIO: is not supported by machina`,
    ],
    [
      "cgroupsPath",
      (c) => {
        linux(c).cgroupsPath = "/user.slice/x";
      },
      `${F}: linux.cgroupsPath: "/user.slice/x" cannot be honoured (only a slice name such as machine.slice)`,
    ],
    [
      "devices",
      (c) => {
        linux(c).devices = [{ path: "/dev/fuse", type: "c", major: 10, minor: 229 }];
      },
      `${F}: linux.devices: creating device nodes from config.json is not supported by machina-nspawn (machina-oci creates them)`,
    ],
    [
      "domainname",
      (c) => {
        c.domainname = "example";
      },
      `${F}: domainname: setting an NIS domain name is not supported by machina`,
    ],
    [
      "windows",
      (c) => {
        c.windows = {};
      },
      `${F}: windows: a windows configuration cannot be run by machina (Linux containers only)`,
    ],
  ];
  for (const [name, f, message] of cases) test(name, () => expect(refusal(edit(f))).toBe(message));

  test("not JSON, not an OCI config", () => {
    expect(refusal("{")).toStartWith(`${F}: not JSON (`);
    expect(refusal("{}")).toBe(`${F}: not an OCI runtime configuration (no "ociVersion")`);
  });
});

describe("--oci-bundle on the command line", () => {
  const run = (...argv: string[]): Settings => {
    const r = parseNspawnCommandLine(argv, {}, "/home/u");
    if (r.action !== "run") throw new Error("not run");
    return r.settings;
  };

  test("the option takes the bundle directory (relative to the working directory)", () => {
    expect(run("--oci-bundle=b").ociBundle).toBe("/home/u/b");
    expect(run("--oci-bundle=b").unsupported).toEqual([]);
  });

  test("command-line options override the bundle's, the rest comes from config.json", () => {
    const host = new FakeHost({ files: { [`${B}/config.json`]: RUNC } });
    const { settings: s } = loadOciBundle(host, run(`--oci-bundle=${B}`, "--hostname=cli", "-u", "daemon", "/bin/true"));
    expect(s.hostname).toBe("cli");
    expect(s.command).toEqual(["/bin/true"]);
    expect(s.user).toBe("daemon");
    expect(s.userIds).toBeUndefined();
    expect(s.directory).toBe(`${B}/rootfs`);
    expect(s.environment).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]);
    const d = loadOciBundle(host, run(`--oci-bundle=${B}`, "-D", "/other")).settings;
    expect(d.directory).toBe("/other");
  });

  test("a bundle without config.json", () => {
    const host = new FakeHost();
    expect(() => loadOciBundle(host, run(`--oci-bundle=${B}`))).toThrow(`--oci-bundle: no config.json in "${B}"`);
  });
});

describe("machina-oci (runtime mode): user namespace maps and root propagation", () => {
  const runtime = (f: (c: Json) => void) => mapOciConfig(edit(f), B, "runtime");
  const refusedIn = (f: (c: Json) => void) => {
    try {
      runtime(f);
    } catch (e) {
      return (e as Error).message;
    }
    return "accepted";
  };
  const withUser = (uid: unknown[], gid: unknown[]) => (c: Json) => {
    const l = linux(c);
    (l.namespaces as unknown[]).push({ type: "user" });
    l.uidMappings = uid;
    l.gidMappings = gid;
  };

  test("uid and gid maps are carried exactly: different ranges, several lines (runtime-tools linux_uid_mappings)", () => {
    const v = runtime(
      withUser(
        [
          { containerID: 0, hostID: 1000, size: 2000 },
          { containerID: 5000, hostID: 200000, size: 10 },
        ],
        [{ containerID: 0, hostID: 1000, size: 3000 }],
      ),
    ).values;
    expect(v.privateUsers).toEqual({
      mode: "maps",
      uid: [
        { inside: 0, outside: 1000, count: 2000 },
        { inside: 5000, outside: 200000, count: 10 },
      ],
      gid: [{ inside: 0, outside: 1000, count: 3000 }],
    });
    expect(v.privateUsersOwnership).toBeUndefined(); // no ownership fix-up
  });

  test("340 lines are accepted, 341 refused (the kernel's limit)", () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => ({ containerID: i, hostID: 100000 + i, size: 1 }));
    expect(refusedIn(withUser(lines(340), lines(1)))).toBe("accepted");
    expect(refusedIn(withUser(lines(341), lines(1)))).toBe(`${F}: linux.uidMappings: has 341 mappings; the kernel allows at most 340`);
  });

  test.each([
    [
      "overlapping container IDs",
      [
        { containerID: 0, hostID: 1000, size: 10 },
        { containerID: 5, hostID: 5000, size: 10 },
      ],
      "linux.uidMappings[1]: its container IDs overlap those of linux.uidMappings[0]",
    ],
    [
      "overlapping host IDs",
      [
        { containerID: 0, hostID: 1000, size: 10 },
        { containerID: 100, hostID: 1009, size: 1 },
      ],
      "linux.uidMappings[1]: its host IDs overlap those of linux.uidMappings[0]",
    ],
    ["size 0", [{ containerID: 0, hostID: 1000, size: 0 }], "linux.uidMappings[0].size: a mapping of size 0 maps nothing"],
    ["beyond the valid IDs", [{ containerID: 0, hostID: 0xfffffff0, size: 100 }], "linux.uidMappings[0]: the range goes beyond the valid IDs"],
    ["no root", [{ containerID: 1, hostID: 1000, size: 10 }], "linux.uidMappings: must map container ID 0 (machina sets the container up as its root)"],
  ])("refused: %s", (_, uid, message) => {
    expect(refusedIn(withUser(uid, [{ containerID: 0, hostID: 1000, size: 10 }]))).toBe(`${F}: ${message}`);
  });

  test("machina-nspawn --oci-bundle keeps one range for both (its -U)", () => {
    const f = withUser([{ containerID: 0, hostID: 1000, size: 2000 }], [{ containerID: 0, hostID: 1000, size: 3000 }]);
    expect(refusal(edit(f))).toBe(`${F}: linux.gidMappings: uidMappings and gidMappings must be the same range`);
  });

  test("linux.rootfsPropagation: carried for machina-oci, ignored by machina-nspawn, a bad value refused by both", () => {
    for (const p of ["shared", "slave", "private", "unbindable", "rshared"])
      expect(runtime((c) => void (linux(c).rootfsPropagation = p)).values.ociRootPropagation).toBe(p as never);
    expect(
      mapOciConfig(
        edit((c) => void (linux(c).rootfsPropagation = "shared")),
        B,
      ).values.ociRootPropagation,
    ).toBeUndefined();
    const bad = `${F}: linux.rootfsPropagation: "bogus" is not a propagation type (shared, slave, private, unbindable, or rshared, rslave, rprivate, runbindable)`;
    expect(refusedIn((c) => void (linux(c).rootfsPropagation = "bogus"))).toBe(bad);
    expect(refusal(edit((c) => void (linux(c).rootfsPropagation = "bogus")))).toBe(bad);
  });
});

describe("machina-oci (runtime mode): mount options as runc takes them", () => {
  const mounts = (list: unknown[]) =>
    mapOciConfig(
      edit((c) => void (c.mounts = [...(c.mounts as unknown[]), ...list])),
      B,
      "runtime",
    );
  const base = (JSON.parse(RUNC) as { mounts: unknown[] }).mounts.length;

  test("propagation options become the mount's propagation; tmpfs data on a bind is ignored with a warning; config order is kept", () => {
    const m = mounts([
      { destination: "/tmp/t", type: "tmpfs", source: "tmpfs", options: ["nosuid", "mode=755", "size=1k", "shared"] },
      { destination: "/mnt/a", source: "/etc", options: ["nosuid", "strictatime", "mode=755", "bind", "unbindable"] },
      { destination: "/mnt/b", source: "/etc", options: ["rbind", "rslave"] },
      { destination: "/mnt/c", source: "/etc", options: ["bind"] },
    ]);
    expect(m.values.tmpfs).toEqual([{ destination: "/tmp/t", options: "nosuid,mode=755,size=1k", propagation: "shared", order: base }]);
    expect(m.values.binds).toEqual([
      {
        source: "/etc",
        sourceInImage: false,
        destination: "/mnt/a",
        readOnly: false,
        recursive: false,
        idmap: "noidmap",
        propagation: "unbindable",
        order: base + 1,
        restrict: ["nosuid"],
      },
      {
        source: "/etc",
        sourceInImage: false,
        destination: "/mnt/b",
        readOnly: false,
        recursive: true,
        idmap: "noidmap",
        propagation: "rslave",
        order: base + 2,
      },
      { source: "/etc", sourceInImage: false, destination: "/mnt/c", readOnly: false, recursive: false, idmap: "noidmap", order: base + 3 },
    ]);
    expect(m.warnings).toContain(`config.json: mounts[${base + 1}].options: "mode=755" is file system data, which a bind mount does not take (ignored)`);
  });

  test("tmpcopyup: the tmpfs starts with a copy of the image's directory (machina-nspawn --oci-bundle: starts empty, with a warning)", () => {
    const tmpcopyup = { destination: "/etc", type: "tmpfs", source: "tmpfs", options: ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"] };
    const m = mounts([tmpcopyup]);
    expect(m.values.tmpfs).toEqual([{ destination: "/etc", options: "rw,nosuid,nodev", propagation: "rprivate", order: base, copyUp: true }]);
    expect(m.warnings.filter((w) => w.includes("tmpcopyup"))).toEqual([]);
    const only = mounts([{ ...tmpcopyup, options: ["tmpcopyup"] }]);
    expect(only.values.tmpfs).toEqual([{ destination: "/etc", options: "mode=0755", order: base, copyUp: true }]);
    const nspawn = mapOciConfig(
      edit((c) => void (c.mounts = [...(c.mounts as unknown[]), tmpcopyup])),
      B,
    );
    expect(nspawn.values.tmpfs?.[0]?.copyUp).toBeUndefined();
    expect(nspawn.warnings).toContain(`config.json: mounts[${base}].options: "tmpcopyup" is not supported; /etc starts empty`);
  });

  test("machina-nspawn --oci-bundle still refuses them (its mounts never propagate)", () => {
    const text = edit((c) => void (c.mounts = [...(c.mounts as unknown[]), { destination: "/mnt/a", source: "/etc", options: ["bind", "shared"] }]));
    expect(refusal(text)).toContain(`bind option "shared" cannot be honoured`);
  });
});

describe("machina-oci (runtime mode): namespaces joined by path", () => {
  const paths = (f: (ns: Json[]) => void, base = RUNC) =>
    edit((c) => {
      const ns = (linux(c).namespaces as Json[]).map((n) => ({ ...n }));
      f(ns);
      linux(c).namespaces = ns;
    }, base);
  const set = (ns: Json[], type: string, path: string) => {
    const n = ns.find((x) => x.type === type);
    if (n === undefined) ns.push({ type, path });
    else n.path = path;
  };

  test("mount and PID namespaces by path (runtime-tools linux_ns_path); a hostname with a UTS path is set in the joined one", () => {
    const text = paths((ns) => {
      set(ns, "mount", "/proc/42/ns/mnt");
      set(ns, "pid", "/proc/42/ns/pid_for_children");
      set(ns, "uts", "/proc/42/ns/uts");
    });
    const v = mapOciConfig(text, B, "runtime").values;
    expect([v.mountNamespacePath, v.pidNamespacePath, v.utsNamespacePath, v.hostname]).toEqual([
      "/proc/42/ns/mnt",
      "/proc/42/ns/pid_for_children",
      "/proc/42/ns/uts",
      "runc",
    ]);
  });

  test("no pid, IPC or UTS namespace listed: the runtime's own, joined as by path (podman --pid=host --ipc=host --uts=host)", () => {
    const text = edit((c) => {
      linux(c).namespaces = [{ type: "mount" }, { type: "network" }];
      delete c.hostname;
    });
    const v = mapOciConfig(text, B, "runtime").values;
    expect([v.pidNamespacePath, v.ipcNamespacePath, v.utsNamespacePath]).toEqual(["/proc/self/ns/pid", "/proc/self/ns/ipc", "/proc/self/ns/uts"]);
    // machina-nspawn --oci-bundle: refused (the "host pid" case of the refusals above)
  });

  test("not with a new user namespace; machina-nspawn --oci-bundle joins only a network namespace", () => {
    const text = edit((c) => {
      const l = linux(c);
      l.namespaces = [...(l.namespaces as Json[]).map((n) => (n.type === "mount" ? { ...n, path: "/proc/42/ns/mnt" } : n)), { type: "user" }];
      l.uidMappings = [{ containerID: 0, hostID: 1000, size: 10 }];
      l.gidMappings = [{ containerID: 0, hostID: 1000, size: 10 }];
    });
    expect(() => mapOciConfig(text, B, "runtime")).toThrow(
      `${F}: linux.namespaces: joining a mount or PID namespace by path cannot be combined with a new user namespace`,
    );
    expect(refusal(paths((ns) => set(ns, "pid", "/proc/42/ns/pid")))).toBe(
      `${F}: linux.namespaces[0].path: joining an existing pid namespace is not supported (only the network namespace can be joined by path)`,
    );
  });
});

describe("machina-oci (runtime mode): hooks", () => {
  const hooks = (h: Json) =>
    mapOciConfig(
      edit((c) => (c.hooks = h)),
      B,
      "runtime",
    ).hooks;
  test("each hook goes to its stage (prestart with createRuntime), in order; unknown names are ignored", () => {
    const got = hooks({
      prestart: [{ path: "/p" }],
      createRuntime: [{ path: "/r", args: ["r", "1"] }],
      createContainer: [{ path: "/c", env: ["A=1"], timeout: 3 }],
      startContainer: [{ path: "/s" }, { path: "/s2" }],
      poststart: [{ path: "/ps" }],
      poststop: [{ path: "/pt" }],
      other: [{ path: "/o" }],
    });
    expect(got).toEqual({
      createRuntime: [{ path: "/p" }, { path: "/r", args: ["r", "1"] }],
      createContainer: [{ path: "/c", env: ["A=1"], timeout: 3 }],
      startContainer: [{ path: "/s" }, { path: "/s2" }],
      poststart: [{ path: "/ps" }],
      poststop: [{ path: "/pt" }],
    });
  });
  test("a relative path or a timeout of 0 is refused; --oci-bundle refuses every hook", () => {
    expect(() => hooks({ startContainer: [{ path: "bin/x" }] })).toThrow(`${F}: hooks.startContainer[0].path: "bin/x" is not an absolute path`);
    expect(() => hooks({ createContainer: [{ path: "/x", timeout: 0 }] })).toThrow(
      `${F}: hooks.createContainer[0].timeout: 0 is not a positive number of seconds`,
    );
    expect(refusal(edit((c) => (c.hooks = { createContainer: [{ path: "/x" }] })))).toBe(
      `${F}: hooks.createContainer: hooks are not supported by machina-nspawn (machina-oci runs them)`,
    );
  });
  test("createContainer and startContainer become the helper's oci_hook records with each stage's state", () => {
    const r = ociHookRecords(
      { createContainer: [{ path: "/c", args: ["c0", "x"], env: ["A=1"], timeout: 5 }], startContainer: [{ path: "/bin/s" }] },
      { id: "ctr", bundle: B, annotations: { k: "v" } },
    );
    expect(r.hooks).toEqual([
      { stage: "create_container", path: "/c", timeout: 5, argv: ["c0", "x"], env: ["A=1"] },
      { stage: "start_container", path: "/bin/s", timeout: 0, argv: ["/bin/s"], env: [] },
    ]);
    expect(JSON.parse(`{"pid":1,${r.hookState!.create_container}}`)).toEqual({
      pid: 1,
      ociVersion: "1.2.0",
      id: "ctr",
      status: "creating",
      bundle: B,
      annotations: { k: "v" },
    });
    expect(JSON.parse(`{${r.hookState!.start_container}}`)).toMatchObject({ status: "created", id: "ctr" });
    expect(ociHookRecords({ createContainer: [], startContainer: [] }, { id: "x", bundle: B, annotations: {} })).toEqual({});
  });
});
