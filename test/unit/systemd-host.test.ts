/**
 * On a systemd host: where the container's cgroup goes (spec/resources.ts) and how it is
 * registered with systemd-machined (spec/register.ts, the helper's on_leader). Pure, fake host.
 */
import { describe, expect, test } from "bun:test";
import type { FakeHost } from "../../src/host/fake.ts";
import { parseOwnCgroup2 } from "../../src/host/facts.ts";
import { chainOnExit, machinedRegisterCommand } from "../../src/spec/register.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";
import { fakeSpec, systemdFakeHost, V2 } from "../helpers/systemd-fake.ts";

const UNIT_CG = "/system.slice/machina-nspawn@web.service";
const host = systemdFakeHost;
const spec = fakeSpec;

const state = (s: RunSpec) => JSON.parse(`{${s.stateJson}}`) as { cgroup: string; cgroups: string[] };
const recordNames = (s: RunSpec) => specRecords(s).map((r) => r[0]);

describe("cgroup placement", () => {
  test("without systemd: machine.slice/machine-NAME.scope made by the helper, --keep-unit or not, no registration", () => {
    for (const extra of [[], ["--keep-unit"]]) {
      const s = spec(["-D", "/srv/web", "-M", "web", ...extra, "/bin/true"], host({ machined: true, own: "/" }));
      expect(s.cgroups).toEqual([`${V2}/machine.slice/machine-web.scope`]);
      expect(s.supervisorCgroup).toBeUndefined();
      expect(s.onLeader).toBeUndefined();
      expect(state(s).cgroup).toBe(`${V2}/machine.slice/machine-web.scope`);
    }
  });

  test("--keep-unit under systemd: the unit's own cgroup, split into supervisor/ and payload/; RegisterMachine", () => {
    const s = spec(["-D", "/srv/web", "-M", "web", "--keep-unit", "-b"], host({ systemd: true, machined: true, own: UNIT_CG }));
    expect(s.supervisorCgroup).toBe(`${V2}${UNIT_CG}/supervisor`);
    expect(s.cgroups).toEqual([`${V2}${UNIT_CG}/payload`]);
    expect(state(s)).toMatchObject({ cgroup: `${V2}${UNIT_CG}/payload`, cgroups: [`${V2}${UNIT_CG}/payload`] });
    expect(s.onReboot).toBe("exit133");
    const call = s.onLeader!.slice(4); // /bin/sh -c RETRY machina-register BUSCTL…
    expect(s.onLeader!.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(call).toEqual([
      "/usr/bin/busctl",
      "call",
      "--quiet",
      "org.freedesktop.machine1",
      "/org/freedesktop/machine1",
      "org.freedesktop.machine1.Manager",
      "RegisterMachine",
      "sayssus",
      "web",
      "16",
      ...Array.from({ length: 16 }, () => expect.stringMatching(/^[0-9]+$/)),
      "machina-nspawn",
      "container",
      "{leader}",
      "/srv/web",
    ]);
    // unregistered when the supervisor exits (the unit stays active across a restart)
    expect(s.onExit).toEqual([
      "/usr/bin/busctl",
      "call",
      "--quiet",
      "org.freedesktop.machine1",
      "/org/freedesktop/machine1",
      "org.freedesktop.machine1.Manager",
      "UnregisterMachine",
      "s",
      "web",
    ]);
    // the supervisor moves first, the hook comes after the cgroups
    const names = recordNames(s);
    expect(names.indexOf("supervisor_cgroup")).toBeLessThan(names.indexOf("cgroup"));
    expect(names).toContain("on_leader");
  });

  test("--keep-unit with a limit: the controller is enabled in the unit's cgroup only (not above the delegation)", () => {
    const h = host({ systemd: true, machined: true, own: UNIT_CG });
    const s = spec(["-D", "/srv/web", "-M", "web", "--keep-unit", "--property=TasksMax=50", "/bin/true"], h);
    expect(s.cgroupSets).toEqual([
      { path: `${V2}${UNIT_CG}/cgroup.subtree_control`, value: "+pids" },
      { path: `${V2}${UNIT_CG}/payload/pids.max`, value: "50" },
    ]);
  });

  test("--keep-unit --register=no under systemd: delegated, not registered", () => {
    const s = spec(["-D", "/srv/web", "-M", "web", "--keep-unit", "--register=no", "/bin/true"], host({ systemd: true, machined: true, own: UNIT_CG }));
    expect(s.cgroups).toEqual([`${V2}${UNIT_CG}/payload`]);
    expect(s.onLeader).toBeUndefined();
    expect(s.onExit).toBeUndefined();
  });

  test("systemd host without --keep-unit: machined's CreateMachine makes the scope; the helper makes no cgroup2 directory", () => {
    const s = spec(["-D", "/srv/web", "-M", "web", "/bin/true"], host({ systemd: true, machined: true, own: "/user.slice/session-1.scope" }));
    expect(s.cgroups).toEqual([]);
    expect(s.supervisorCgroup).toBeUndefined();
    expect(state(s)).toMatchObject({ cgroup: `${V2}/machine.slice/machine-web.scope`, cgroups: [`${V2}/machine.slice/machine-web.scope`] });
    expect(s.onLeader!.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(s.onLeader).toContain("CreateMachine");
    // the scope properties: DevicePolicy=closed and nspawn's DeviceAllow= (as systemd-nspawn registers)
    expect(s.onLeader!.slice(-13)).toEqual([
      "{leader}",
      "/srv/web",
      "2",
      "DevicePolicy",
      "s",
      "closed",
      "DeviceAllow",
      "a(ss)",
      "2",
      "/dev/net/tun",
      "rwm",
      "char-pts",
      "rw",
    ]);
    expect(s.devicePolicy).toBeUndefined(); // systemd applies it to the scope it makes
  });

  test("--slice= goes to CreateMachine as the Slice= property, and names the expected scope path", () => {
    const s = spec(["-D", "/srv/web", "-M", "web", "--slice=box.slice", "/bin/true"], host({ systemd: true, machined: true }));
    expect(s.onLeader!.slice(-14, -10)).toEqual(["3", "Slice", "s", "box.slice"]);
    expect(state(s).cgroup).toBe(`${V2}/box.slice/machine-web.scope`);
  });

  test("systemd host without machined (or --register=no): the helper's own scope, no registration", () => {
    for (const [h, extra] of [
      [host({ systemd: true, machined: false }), []],
      [host({ systemd: true, machined: true }), ["--register=no"]],
    ] as const) {
      const s = spec(["-D", "/srv/web", "-M", "web", ...extra, "/bin/true"], h);
      expect(s.cgroups).toEqual([`${V2}/machine.slice/machine-web.scope`]);
      expect(s.onLeader).toBeUndefined();
    }
  });

  test("MACHINA_SYSTEMD=0 forces the non-systemd path", () => {
    const s = spec(
      ["-D", "/srv/web", "-M", "web", "--keep-unit", "/bin/true"],
      host({ systemd: true, machined: true, own: UNIT_CG, env: { MACHINA_SYSTEMD: "0" } }),
    );
    expect(s.supervisorCgroup).toBeUndefined();
    expect(s.onLeader).toBeUndefined();
  });
});

test("parseOwnCgroup2", () => {
  expect(parseOwnCgroup2("9:name=systemd:/a\n0::/system.slice/x.service\n")).toBe("/system.slice/x.service");
  expect(parseOwnCgroup2("4:memory:/\n")).toBeUndefined();
});

test("CreateMachine is retried while machined still knows the last machine of that name (after a reboot)", async () => {
  const cmd = machinedRegisterCommand({ how: "create", name: "web", uuid: "", root: "/srv/web", busctl: "/bin/false" });
  expect(cmd.slice(0, 3)).toEqual(["/bin/sh", "-c", expect.stringContaining("until")]);
  // the script itself: a command that fails twice, then succeeds
  const dir = (await import("node:fs")).mkdtempSync("/tmp/machina-reg-");
  const script = cmd[2]!;
  const p = Bun.spawnSync(["/bin/sh", "-c", script, "x", "/bin/sh", "-c", `n=$(cat ${dir}/n 2>/dev/null || echo 0); echo $((n+1)) > ${dir}/n; [ $n -ge 2 ]`]);
  expect(p.exitCode).toBe(0);
  expect((await Bun.file(`${dir}/n`).text()).trim()).toBe("3");
  (await import("node:fs")).rmSync(dir, { recursive: true });
});

test("chainOnExit: the network's undo, then the unregistration", () => {
  expect(chainOnExit(undefined, ["/usr/bin/busctl", "x"])).toEqual(["/usr/bin/busctl", "x"]);
  expect(chainOnExit(["/usr/bin/bun", "teardown", "web"], ["/usr/bin/busctl", "x", "web"])).toEqual([
    "/bin/sh",
    "-c",
    '"$@"; /usr/bin/busctl x web',
    "machina-on-exit",
    "/usr/bin/bun",
    "teardown",
    "web",
  ]);
  expect(() => chainOnExit(["/a"], ["/b", "x;y"])).toThrow();
});

/** spec() with the at-exit teardown prepare.ts hands buildSpec. */
const specNet = (argv: string[], h: FakeHost) => fakeSpec(argv, h, { netTeardown: ["/usr/libexec/machina-net", "teardown"] });

describe("the network's teardown at exit: in the background, except in a systemd unit", () => {
  test("no systemd: on_exit_detach and the exit mark; without a managed network neither", () => {
    const s = specNet(["-D", "/srv/web", "-M", "web", "--network-veth", "/bin/true"], host());
    expect(s.onExitDetach).toBe(true);
    expect(s.exitMark).toBe("/run/machina/net/web.exited");
    expect(recordNames(s)).toContain("on_exit_detach");
    const plain = specNet(["-D", "/srv/web", "-M", "web", "/bin/true"], host());
    expect([plain.onExitDetach, plain.exitMark]).toEqual([undefined, undefined]);
  });
  test("--keep-unit under systemd (machina-nspawn@.service): waited for, since systemd kills what the unit leaves", () => {
    const unit = specNet(["-D", "/srv/web", "-M", "web", "--keep-unit", "--network-veth", "-b"], host({ systemd: true, machined: true, own: UNIT_CG }));
    expect([unit.onExitDetach, unit.exitMark]).toEqual([undefined, undefined]);
    const scope = specNet(["-D", "/srv/web", "-M", "web", "--network-veth", "/bin/true"], host({ systemd: true, machined: true }));
    expect(scope.onExitDetach).toBe(true);
  });
});
