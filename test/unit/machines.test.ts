import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { consoleLogFiles, consoleTail } from "../../src/machine/logs.ts";
import type { Paths } from "../../src/paths.ts";
import {
  getMachine,
  killMachine,
  listMachines,
  machineProcesses,
  machineProperties,
  machineStatus,
  parseFibTrieLocal,
  parseIfInet6,
  parseIgmpInterfaces,
  poweroffMachine,
  rebootMachine,
  terminateMachine,
} from "../../src/machine/machines.ts";
import { liveness, readState, scanRegistry } from "../../src/machine/registry.ts";
import { formatTimespan, renderCgroupTree } from "../../src/cli/machinactl/machine-verbs.ts";

const CG = "/sys/fs/cgroup/unified/machine.slice/machine-web.scope";
const stat = (pid: number, comm: string, ppid: number, start: string, state = "S") =>
  `${pid} (${comm}) ${state} ${ppid} ${pid} ${pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 0 0\n`;

function fixture() {
  const state = {
    leader: 200,
    supervisor: 100,
    name: "web",
    class: "container",
    service: "machina-nspawn",
    root: "/srv/web",
    uuid: "0123abcd-0000-1111-2222-333344445555",
    boot: true,
    started_usec: "1700000000000000",
    supervisor_starttime: "5000",
    cgroup: CG,
    cgroups: [CG],
    os: "debian",
    version: "12",
  };
  const host = new FakeHost({
    files: {
      "/run/m/machines/web/lock": "",
      "/run/m/machines/web/state.json": JSON.stringify(state),
      [`${CG}/cgroup.events`]: "populated 1\nfrozen 0\n",
      [`${CG}/cgroup.procs`]: "200\n",
      [`${CG}/cpu.stat`]: "usage_usec 1234567\nuser_usec 1\n",
      [`${CG}/init.scope/cgroup.procs`]: "",
      [`${CG}/system.slice/cgroup.procs`]: "230\n210\n",
      "/proc/100/stat": stat(100, "machina-sup", 1, "5000"),
      "/proc/200/stat": stat(200, "systemd", 100, "5001"),
      "/proc/210/stat": stat(210, "agetty", 200, "5010"),
      "/proc/230/stat": stat(230, "sshd", 200, "5011"),
      "/proc/300/stat": stat(300, "bash", 1, "4000"),
      "/proc/200/cmdline": "/sbin/init\0",
      "/proc/210/cmdline": "/sbin/agetty\0-o\0-p\0console\0",
      "/proc/230/cmdline": "sshd: /usr/sbin/sshd -D\0",
      "/proc/300/cmdline": "bash\0",
      "/proc/200/cgroup": "0::/machine.slice/machine-web.scope\n",
      "/proc/210/cgroup": "9:name=systemd:/\n0::/machine.slice/machine-web.scope/system.slice\n",
      "/proc/230/cgroup": "0::/machine.slice/machine-web.scope/system.slice\n",
      "/proc/300/cgroup": "0::/user.slice\n",
      "/proc/200/task/200": { kind: "dir" },
      "/proc/210/task/210": { kind: "dir" },
      "/proc/230/task/230": { kind: "dir" },
      "/proc/230/task/231": { kind: "dir" },
      "/proc/self/ns/net": { kind: "symlink", target: "net:[1]" },
      "/proc/200/ns/net": { kind: "symlink", target: "net:[2]" },
      "/proc/200/net/fib_trie": "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.0.2\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n",
      "/proc/200/net/if_inet6": "fd000000000000000000000000000002 02 40 00 80     host0\nfe8000000000000000fc00fffe000001 02 40 20 80     host0\n",
      "/proc/200/net/igmp": "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n1\tlo        :     1      V3\n2\thost0     :     1      V3\n",
      "/proc/200/root/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    },
  });
  host.heldLocks.add("/run/m/machines/web/lock");
  const ctx = { host, paths: { helper: "/h", stateDir: "/run/m", pool: [] } };
  return { host, ctx };
}

describe("registry liveness", () => {
  test("running only when the supervisor (pid + start time), its child leader and a populated cgroup agree", () => {
    const { host } = fixture();
    const s = readState(host, "/run/m", "web")!;
    expect(liveness(host, s)).toBe("running");
    // a reused supervisor pid (other start time) means the supervisor died
    host.add("/proc/100/stat", stat(100, "bash", 1, "9999"));
    expect(liveness(host, s)).toBe("dead");
    host.add("/proc/100/stat", stat(100, "machina-sup", 1, "5000"));
    // leader gone or not the supervisor's child: between reboots / shutting down
    host.add("/proc/200/stat", stat(200, "systemd", 42, "5001"));
    expect(liveness(host, s)).toBe("closing");
    host.add("/proc/200/stat", stat(200, "systemd", 100, "5001"));
    host.add(`${CG}/cgroup.events`, "populated 0\n");
    expect(liveness(host, s)).toBe("closing");
    expect(listMachines(fixtureWith(host))).toEqual([]);
    expect(listMachines(fixtureWith(host), { all: true }).map((m) => m.state)).toEqual(["closing"]);
  });

  test("an entry whose lock is held by a dead supervisor's pid successor is cleaned when its cgroup is empty", () => {
    const { host } = fixture();
    host.add("/proc/100/stat", stat(100, "bash", 1, "9999"));
    host.add(`${CG}/cgroup.events`, "populated 0\n");
    expect(scanRegistry(host, "/run/m", Date.now())).toEqual([]);
    expect(host.lstat("/run/m/machines/web")).toBeUndefined();
  });
});

const fixtureWith = (host: FakeHost) => ({ host, paths: { helper: "/h", stateDir: "/run/m", pool: [] } });

describe("machines", () => {
  test("list and show", () => {
    const { ctx } = fixture();
    const [m] = listMachines(ctx);
    expect(m).toMatchObject({
      name: "web",
      leader: 200,
      supervisor: 100,
      unit: "machine-web.scope",
      controlGroup: "/machine.slice/machine-web.scope",
      timestampMonotonicUsec: 50_000_000,
    });
    expect(Object.fromEntries(machineProperties(ctx, "web"))).toMatchObject({
      Name: "web",
      Id: "0123abcd000011112222333344445555",
      Leader: "200",
      Class: "container",
      Service: "machina-nspawn",
      Unit: "machine-web.scope",
      RootDirectory: "/srv/web",
      NetworkInterfaces: "2",
      State: "running",
      Timestamp: "Tue 2023-11-14 22:13:20 UTC",
      TimestampMonotonic: "50000000",
    });
    expect(() => getMachine(ctx, "nope")).toThrow('no machine "nope" is running');
  });

  test("status: OS from the container, addresses from its netns, cgroup tree and resources", () => {
    const { ctx } = fixture();
    const s = machineStatus(ctx, "web");
    expect(s.osPrettyName).toBe("Debian GNU/Linux 12 (bookworm)");
    expect(s.network).toEqual({ private: true, interfaces: [{ index: 2, name: "host0" }], addresses: ["10.0.0.2", "fd00::2"] });
    expect(s.resources).toEqual({ memoryBytes: undefined, memorySource: undefined, tasks: 4, cpuUsec: 1234567 });
    expect(renderCgroupTree(s.cgroupTree!, "", true)).toEqual([
      "├─200 /sbin/init",
      "├─init.scope",
      "└─system.slice",
      "  ├─210 /sbin/agetty -o -p console",
      "  └─230 sshd: /usr/sbin/sshd -D",
    ]);
  });

  test("ps: processes matched to machines by cgroup", () => {
    const { ctx } = fixture();
    expect(machineProcesses(ctx).map((p) => [p.pid, p.machine])).toEqual([
      [200, "web"],
      [210, "web"],
      [230, "web"],
    ]);
    expect(machineProcesses(ctx, { all: true }).map((p) => [p.pid, p.machine])).toContainEqual([300, ""]);
  });

  test("signals: poweroff SIGRTMIN+4 and reboot SIGINT to the leader; kill all by default with SIGTERM", async () => {
    const { ctx, host } = fixture();
    await poweroffMachine(ctx, "web");
    await rebootMachine(ctx, "web");
    expect(host.kills).toEqual([
      [200, 38],
      [200, 2],
    ]);
    host.kills.length = 0;
    await killMachine(ctx, "web", {});
    expect(host.kills).toEqual([
      [200, 15],
      [210, 15],
      [230, 15],
    ]);
    host.kills.length = 0;
    await killMachine(ctx, "web", { whom: "leader", signal: 9 });
    expect(host.kills).toEqual([[200, 9]]);
  });

  test("terminate: SIGTERM to the supervisor; after the timeout SIGKILL to the container, whose supervisor then cleans up", async () => {
    const { ctx, host } = fixture();
    const r = terminateMachine(ctx, "web", { timeoutMs: 100 });
    // the stop signal changes nothing: the container's processes are killed, the supervisor exits (its undo)
    host.onKill = (pid, sig) => {
      if (pid === 200 && sig === 9) host.heldLocks.delete("/run/m/machines/web/lock");
    };
    expect(await r).toBe("killed");
    expect(host.kills).toEqual([
      [100, 15],
      [200, 9],
      [210, 9],
      [230, 9],
    ]);
  });

  test("terminate: a supervisor still there 5 s after its container was killed is killed too", async () => {
    const { ctx, host } = fixture();
    const r = terminateMachine(ctx, "web", { timeoutMs: 100 });
    host.onKill = (pid, sig) => {
      if (pid === 100 && sig === 9) host.heldLocks.delete("/run/m/machines/web/lock");
    };
    expect(await r).toBe("killed");
    expect(host.kills.slice(1)).toEqual([
      [200, 9],
      [210, 9],
      [230, 9],
      [100, 9],
    ]);
  });
});

describe("formatting", () => {
  test("timespans", () => {
    expect(formatTimespan(3_000_000)).toBe("3s");
    expect(formatTimespan(303_000_000)).toBe("5min 3s");
    expect(formatTimespan(3_723_000_000)).toBe("1h 2min 3s");
  });
  test("IPv4/IPv6 parsing", () => {
    expect(
      parseFibTrieLocal(
        "Main:\n     |-- 9.9.9.9\n        /32 host LOCAL\nLocal:\n     |-- 10.1.2.3\n        /32 host LOCAL\n     |-- 10.1.2.255\n        /32 link BROADCAST\n",
      ),
    ).toEqual(["10.1.2.3"]);
    expect(parseIfInet6("20010db8000000000000000000000001 03 40 00 80 eth0\n").map((a) => a.address)).toEqual(["2001:db8::1"]);
    expect(parseIgmpInterfaces("1\tlo :\n3\teth0 :\n")).toEqual([{ index: 3, name: "eth0" }]);
  });
  test("console log tail continues across the rotated file", () => {
    const host = new FakeHost({ files: { "/l/a.log.1": "one\ntw", "/l/a.log": "o\nthree\n" } });
    expect(consoleTail(host, ["/l/a.log.1", "/l/a.log"], 2)).toEqual(["two", "three"]);
    expect(consoleTail(host, ["/l/a.log.1", "/l/a.log"], 10)).toEqual(["one", "two", "three"]);
  });
  test("console log files: every rotated file, oldest first; the tail reads only what it needs", () => {
    const host = new FakeHost({
      files: {
        "/run/m/logs/a.log.2": "one\n",
        "/run/m/logs/a.log.10": "zero\n",
        "/run/m/logs/a.log.1": "two\n",
        "/run/m/logs/a.log": "three\n",
        "/run/m/logs/a.log.x": "no\n",
        "/run/m/logs/ab.log.1": "no\n",
      },
    });
    const files = consoleLogFiles(host, { helper: "/h", stateDir: "/run/m", pool: [] } as unknown as Paths, "a");
    expect(files).toEqual(["/run/m/logs/a.log.10", "/run/m/logs/a.log.2", "/run/m/logs/a.log.1", "/run/m/logs/a.log"]);
    expect(consoleTail(host, files, 2)).toEqual(["two", "three"]);
    expect(consoleTail(host, files, 100)).toEqual(["zero", "one", "two", "three"]);
  });
});
