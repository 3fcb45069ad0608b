/** The networks of the running containers as data (src/net/overview.ts, GET /v1/networks). */
import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/daemon/app.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { LocalMachineService } from "../../src/api/local-service.ts";
import { networkOverview } from "../../src/net/overview.ts";

const addr = (n: number) => ({ v4: `10.0.0.${n}`, v4Prefix: 28, v4Mask: "255.255.255.240", v6: `fd00::${n}`, v6Prefix: 64 });
function record(machine: string, plan: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: 1,
    machine,
    pid: 100,
    startTime: "1",
    plan: { machine, netns: `/run/machina/netns/${machine}`, addressing: "static", ...plan },
    phase: "up",
    ...extra,
  });
}
const veth = (host: string) => ({ host, inside: "host0", hostMac: "aa:00:00:00:00:01", containerMac: "aa:00:00:00:00:02" });

describe("networkOverview", () => {
  test("zones with their machines, bridges, each machine's kind, addresses and ports; records being set up left out", () => {
    const host = new FakeHost({
      files: {
        "/s/net/a.json": record(
          "a",
          { veth: veth("vz-lab"), bridge: "vz-lab", zone: "lab", ports: [{ protocol: "tcp", hostPort: 8080, containerPort: 80 }] },
          { addr: { subnet: { v4: "10.0.0.0/28", v6: "fd00::/64" }, gateway: addr(1), container: addr(2) } },
        ),
        "/s/net/b.json": record("b", { veth: veth("vz-lab"), bridge: "vz-lab", zone: "lab" }),
        "/s/net/c.json": record("c", { veth: veth("vb-c"), bridge: "br0", addressing: "dhcp" }),
        "/s/net/d.json": record("d", { veth: veth("ve-d") }),
        "/s/net/e.json": record("e", { macvlans: [{ parent: "eth0", inside: "mv-eth0", mac: "aa:bb:cc:dd:ee:ff" }] }),
        "/s/net/f.json": record("f", {}, { phase: "setup" }),
        "/s/net/leases.json": "{}",
        "/s/net/junk.json": "{",
      },
    });
    const o = networkOverview(host, "/s");
    expect(o.machines.map((m) => [m.machine, m.kind, m.hostInterface])).toEqual([
      ["a", "zone", "vz-lab"],
      ["b", "zone", "vz-lab"],
      ["c", "bridge", "vb-c"],
      ["d", "veth", "ve-d"],
      ["e", "other", undefined],
    ]);
    expect(o.machines[0]).toMatchObject({
      addresses: ["10.0.0.2/28", "fd00::2/64"],
      gateway: ["10.0.0.1", "fd00::1"],
      subnet: ["10.0.0.0/28", "fd00::/64"],
      ports: [{ protocol: "tcp", hostPort: 8080, containerPort: 80 }],
    });
    expect(o.machines[4]!.macvlans).toEqual([{ parent: "eth0", inside: "mv-eth0" }]);
    expect(o.zones).toEqual([{ name: "lab", hostInterface: "vz-lab", subnet: ["10.0.0.0/28", "fd00::/64"], machines: ["a", "b"] }]);
    expect(o.bridges).toEqual([{ name: "br0", machines: ["c"] }]);
    expect(networkOverview(new FakeHost(), "/s")).toEqual({ machines: [], zones: [], bridges: [] });
  });

  test("served by machinad as GET /v1/networks", async () => {
    const host = new FakeHost({ files: { "/s/net/d.json": record("d", { veth: veth("ve-d") }) } });
    const service = new LocalMachineService(host, { helper: "/h", stateDir: "/s", pool: ["/p"] });
    const { app } = createApp({ service });
    const r = await app.fetch(new Request("http://x/v1/networks"));
    expect(r.status).toBe(200);
    expect(((await r.json()) as { machines: { machine: string }[] }).machines.map((m) => m.machine)).toEqual(["d"]);
  });
});
