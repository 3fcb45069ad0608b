/**
 * machinad's samples (src/daemon/samples.ts) and what they read (machines.ts machineSample): a
 * bounded history per running machine, the gone ones forgotten; the routes that serve them.
 */
import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/daemon/app.ts";
import { Sampler } from "../../src/daemon/samples.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { type Machine, machineSample, parseNetDev } from "../../src/machine/machines.ts";
import type { MachineService } from "../../src/api/service.ts";

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
host0:    5000      40    0    0    0     0          0         0     7000      30    0    0    0     0       0          0
  eth1:     100       1    0    0    0     0          0         0      200       2    0    0    0     0       0          0
`;

function machine(name: string, extra: Partial<Machine> = {}): Machine {
  return {
    name,
    class: "container",
    service: "machina-nspawn",
    state: "running",
    leader: 4242,
    supervisor: 4241,
    root: `/var/lib/machines/${name}`,
    uuid: "",
    boot: true,
    timestampUsec: 0,
    timestampMonotonicUsec: 0,
    cgroupDir: `/sys/fs/cgroup/machine.slice/machine-${name}.scope`,
    controlGroup: `/machine.slice/machine-${name}.scope`,
    unit: "",
    cgroups: [],
    os: "",
    version: "",
    ...extra,
  } as Machine;
}

describe("a machine's counters", () => {
  test("net/dev: received and sent bytes of every interface but lo", () => {
    expect(parseNetDev(NET_DEV)).toEqual({ rxBytes: 5100, txBytes: 7200 });
    expect(parseNetDev(undefined)).toBeUndefined();
  });

  test("cgroup2 files and the leader's net/dev (a network namespace of its own only)", () => {
    const cg = "/sys/fs/cgroup/machine.slice/machine-web.scope";
    const files = {
      [`${cg}/memory.current`]: "1048576\n",
      [`${cg}/pids.current`]: "3\n",
      [`${cg}/cpu.stat`]: "usage_usec 250000\nuser_usec 1\n",
      "/proc/4242/net/dev": NET_DEV,
      "/proc/self/ns/net": { kind: "symlink", target: "net:[1]" } as const,
    };
    const own = new FakeHost({ files: { ...files, "/proc/4242/ns/net": { kind: "symlink", target: "net:[2]" } } });
    expect(machineSample(own, machine("web"), 1000)).toEqual({ t: 1000, tasks: 3, cpuUsec: 250000, memoryBytes: 1048576, rxBytes: 5100, txBytes: 7200 });
    const shared = new FakeHost({ files: { ...files, "/proc/4242/ns/net": { kind: "symlink", target: "net:[1]" } } });
    expect(machineSample(shared, machine("web"), 1000)).toEqual({ t: 1000, tasks: 3, cpuUsec: 250000, memoryBytes: 1048576 });
  });
});

describe("the sampler", () => {
  test("keeps the last N samples of each running machine, forgets a gone one, skips one that vanished while read", () => {
    let running = ["a", "b"];
    let n = 0;
    const s = new Sampler(
      {
        machines: () => running.map((name) => machine(name)),
        sample: (m, now) => {
          if (m.name === "b" && now === 3) throw new Error("gone while read");
          return { t: now, tasks: ++n };
        },
      },
      1000,
      3,
    );
    for (const now of [1, 2, 3, 4, 5]) s.sample(now);
    expect(s.history("a")!.map((x) => x.t)).toEqual([3, 4, 5]);
    expect(s.history("b")!.map((x) => x.t)).toEqual([2, 4, 5]);
    expect(Object.keys(s.latest()).sort()).toEqual(["a", "b"]);
    expect(s.latest().a!.t).toBe(5);
    running = ["a"];
    s.sample(6);
    expect(s.history("b")).toBeUndefined();
    expect(Object.keys(s.latest())).toEqual(["a"]);
  });
});

describe("the routes", () => {
  const service = {} as MachineService; // the samples routes do not use it
  test("a machine's history, the newest of all; 404 for one not sampled; 501 without a sampler", async () => {
    const s = new Sampler({ machines: () => [machine("web")], sample: (_m, now) => ({ t: now, tasks: 1, cpuUsec: 5 }) }, 2000, 10);
    s.sample(10);
    s.sample(20);
    const { app } = createApp({ service, samples: s });
    const h = await app.fetch(new Request("http://x/v1/machines/web/samples"));
    expect([h.status, await h.json()]).toEqual([
      200,
      {
        intervalMs: 2000,
        samples: [
          { t: 10, tasks: 1, cpuUsec: 5 },
          { t: 20, tasks: 1, cpuUsec: 5 },
        ],
      },
    ]);
    const all = await app.fetch(new Request("http://x/v1/samples"));
    expect(await all.json()).toEqual({ intervalMs: 2000, machines: { web: { t: 20, tasks: 1, cpuUsec: 5 } } });
    const missing = await app.fetch(new Request("http://x/v1/machines/other/samples"));
    expect([missing.status, ((await missing.json()) as { code: string }).code]).toEqual([404, "E_NOT_FOUND"]);
    const bad = await app.fetch(new Request("http://x/v1/machines/..%2Fx/samples"));
    expect(bad.status).toBe(400);
    const none = createApp({ service }).app;
    expect((await none.fetch(new Request("http://x/v1/samples"))).status).toBe(501);
  });
});
