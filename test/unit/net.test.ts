import { describe, expect, test } from "bun:test";
import { formatAddress, parseAddress, parseCidr } from "../../src/net/cidr.ts";
import {
  addressesOf,
  allocateHost,
  allocateSubnet,
  emptyLeases,
  parseNetConfig,
  parseLeases,
  releaseHost,
  releaseSubnet,
  IpamError,
} from "../../src/net/ipam.ts";
import { generateMac, HASH_KEYS, interfacePair, shortenIfname, vethHostName } from "../../src/net/names.ts";
import {
  addressing,
  containerBatch,
  dnsmasqArgv,
  vethDhcpArgv,
  vethDhcpLines,
  vethDhcpTag,
  giveBackBatch,
  helperNetOps,
  hostBatch,
  hostRemoveBatch,
  nftBase,
  nftRuleset,
  planNetwork,
} from "../../src/net/plan.ts";
import { defaultSettings } from "../../src/settings/settings.ts";
import { MachinaError } from "../../src/errors.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { setupNetwork, teardownNetwork } from "../../src/net/setup.ts";

const ID = "3d1219c7c4c5404aaa1f6d2a48adfda4";

describe("names and MACs (systemd-nspawn's algorithms)", () => {
  test("short names are kept, long ones get 11 bytes + 4 hash characters (as nspawn 252 prints them)", () => {
    expect(vethHostName("nettest1", false)).toBe("ve-nettest1");
    expect(vethHostName("averyveryverylongmachinename", false)).toBe("ve-averyvermBQ8");
    expect(shortenIfname("ve-123456789012")).toBe("ve-123456789012"); // 15 bytes: fits
    expect(shortenIfname("ve-1234567890123")).toHaveLength(15);
    expect(vethHostName("web", true)).toBe("vb-web");
  });
  test("MACs: unicast, locally administered, stable; container side as systemd-nspawn 252 gave on this machine id", () => {
    expect(generateMac(ID, "nettest1", HASH_KEYS.container)).toBe("ce:a2:e4:77:f1:7d");
    expect(generateMac(ID, "averyveryverylongmachinename", HASH_KEYS.container)).toBe("a2:7f:25:fa:d3:b5");
    const m = generateMac(ID, "x", HASH_KEYS.host);
    expect(parseInt(m.slice(0, 2), 16) & 3).toBe(2);
    expect(generateMac(ID, "x", HASH_KEYS.macvlan, 0)).not.toBe(generateMac(ID, "x", HASH_KEYS.macvlan, 1));
  });
  test("interface pairs: default prefix, explicit name", () => {
    expect(interfacePair("dummy0", "mv-")).toEqual({ host: "dummy0", inside: "mv-dummy0" });
    expect(interfacePair("dummy0:inner", "iv-")).toEqual({ host: "dummy0", inside: "inner" });
    expect(interfacePair("eth1", "")).toEqual({ host: "eth1", inside: "eth1" });
  });
});

describe("cidr", () => {
  test("parse and format IPv4/IPv6", () => {
    expect(formatAddress(6, parseAddress("fd6d:6163:6869:0:0:0:0:2")!.value)).toBe("fd6d:6163:6869::2");
    expect(formatAddress(4, parseAddress("10.1.2.3")!.value)).toBe("10.1.2.3");
    expect(parseCidr("10.1.2.3/24")).toEqual({ family: 4, base: parseAddress("10.1.2.0")!.value, prefix: 24 });
    expect(parseCidr("300.1.1.1/8")).toBeUndefined();
    expect(parseCidr("::1/129")).toBeUndefined();
  });
});

describe("IPAM", () => {
  const cfg = parseNetConfig("Pool4 = 10.200.0.0/24\nSubnetPrefix4 = 28\nZonePrefix4 = 26\nPool6 = fd00:1::/48\n");
  test("one subnet per veth, never twice; released subnets are reused", () => {
    let l = emptyLeases();
    const a = allocateSubnet(l, cfg, "veth:a", "veth");
    l = a.leases;
    const b = allocateSubnet(l, cfg, "veth:b", "veth");
    l = b.leases;
    expect(a.subnet).toEqual({ v4: "10.200.0.0/28", v6: "fd00:1::/64" });
    expect(b.subnet).toEqual({ v4: "10.200.0.16/28", v6: "fd00:1:0:1::/64" });
    expect(allocateSubnet(l, cfg, "veth:a", "veth").subnet).toEqual(a.subnet); // idempotent
    l = releaseSubnet(l, "veth:a");
    expect(allocateSubnet(l, cfg, "veth:c", "veth").subnet.v4).toBe("10.200.0.0/28");
  });
  test("zones get a larger subnet that overlaps no veth subnet; hosts from .2, lowest free", () => {
    let l = allocateSubnet(emptyLeases(), cfg, "veth:a", "veth").leases;
    const z = allocateSubnet(l, cfg, "zone:z", "zone");
    l = z.leases;
    expect(z.subnet.v4).toBe("10.200.0.64/26");
    const a1 = allocateHost(l, "zone:z", "m1");
    const a2 = allocateHost(a1.leases, "zone:z", "m2");
    l = a2.leases;
    expect([a1.host, a2.host]).toEqual([2, 3]);
    l = releaseHost(l, "zone:z", "m1");
    expect(allocateHost(l, "zone:z", "m3").host).toBe(2);
    expect(addressesOf(z.subnet, 3)).toEqual({ v4: "10.200.0.67", v4Prefix: 26, v4Mask: "255.255.255.192", v6: "fd00:1:0:1::3", v6Prefix: 64 });
  });
  test("subnets in use on the host are avoided; an exhausted pool is an error", () => {
    const avoid = [parseCidr("10.200.0.0/27")!];
    expect(allocateSubnet(emptyLeases(), cfg, "veth:a", "veth", avoid).subnet.v4).toBe("10.200.0.32/28");
    let l = emptyLeases();
    for (let i = 0; i < 16; i++) l = allocateSubnet(l, cfg, `veth:${i}`, "veth").leases;
    expect(() => allocateSubnet(l, cfg, "veth:x", "veth")).toThrow(IpamError);
  });
  test("config: defaults, env override, no IPv6, errors", () => {
    const d = parseNetConfig(undefined);
    expect(d.prefix4).toBe(28);
    expect(parseNetConfig(undefined, { MACHINA_NET_POOL4: "10.7.0.0/16" }).pool4.prefix).toBe(16);
    expect(parseNetConfig("Pool6 = no\n").pool6).toBeUndefined();
    expect(() => parseNetConfig("Pool4 = fd00::/8\n")).toThrow();
  });
});

describe("plan, ip batches and the nft ruleset", () => {
  const s = defaultSettings();
  s.networkVeth = true;
  s.privateNetwork = true;
  s.ports = [{ protocol: "tcp", hostPort: 8080, containerPort: 80 }];
  s.networkInterfaces = ["dummy0:inner"];
  s.networkMacvlan = ["dummy1"];
  const plan = planNetwork(s, "web", ID, "/run/machina");
  const addr = addressing({ v4: "10.159.0.16/28", v6: "fd6d:6163:6869:1::/64" }, 2);
  test("plan", () => {
    expect(plan.netns).toBe("/run/machina/netns/web");
    expect(plan.veth?.host).toBe("ve-web");
    expect(plan.addressing).toBe("static");
    expect(plan.macvlans[0]!.inside).toBe("mv-dummy1");
  });
  test("macvlans alone: no prepared namespace — the helper makes them in the container's (net_macvlan), nothing in the host batch", () => {
    const m = defaultSettings();
    m.privateNetwork = true;
    m.networkMacvlan = ["dummy1", "dummy2:inner2"];
    const mp = planNetwork(m, "mv", ID, "/run/machina");
    expect(mp.prepared).toBe(false);
    expect(hostBatch(mp, undefined, false)).toEqual([]);
    expect(helperNetOps(mp, undefined, false)).toEqual([
      ["net_up", "container", "lo"],
      ["net_macvlan", "dummy1", "mv-dummy1", mp.macvlans[0]!.mac],
      ["net_macvlan", "dummy2", "inner2", mp.macvlans[1]!.mac],
    ]);
  });
  test("host and container batches; the helper's net_* records", () => {
    const v = plan.veth!;
    expect(plan.prepared).toBe(true); // an interface and a macvlan are moved in before the start
    expect(hostBatch(plan, addr, false)).toEqual([
      "link set dev dummy0 netns /run/machina/netns/web name inner",
      `link add link dummy1 name mv-dummy1 address ${plan.macvlans[0]!.mac} netns /run/machina/netns/web type macvlan mode bridge`,
    ]);
    expect(containerBatch()).toEqual(["link set lo up"]);
    expect(helperNetOps(plan, addr, true)).toEqual([
      ["net_up", "container", "lo"],
      ["net_veth", "ve-web", v.hostMac, "host0", v.containerMac],
      ["net_addr", "host", "ve-web", "10.159.0.17/28"],
      ["net_addr", "host", "ve-web", "fd6d:6163:6869:1::1/64"],
      ["net_sysctl", "net/ipv4/conf/ve-web/route_localnet", "1"],
      ["net_up", "host", "ve-web"],
      ["net_addr", "container", "host0", "10.159.0.18/28"],
      ["net_addr", "container", "host0", "fd6d:6163:6869:1::2/64"],
      ["net_up", "container", "host0"],
      ["net_route", "container", "host0", "10.159.0.17"],
      ["net_route", "container", "host0", "fd6d:6163:6869:1::1"],
    ]);
    expect(giveBackBatch(plan, "/proc/1/ns/net")).toEqual(["link set dev inner netns /proc/1/ns/net name dummy0"]);
    expect(hostRemoveBatch(plan)).toEqual(["link delete ve-web"]);
  });
  test("-n alone: no prepared namespace; a zone's member joins the bridge, a booted one is not addressed from outside", () => {
    const n = defaultSettings();
    n.networkVeth = true;
    n.privateNetwork = true;
    const p = planNetwork(n, "web", ID, "/run/machina");
    expect(p.prepared).toBe(false);
    expect(hostBatch(p, addr, false)).toEqual([]);
    const z = defaultSettings();
    z.networkZone = "lab";
    z.privateNetwork = true;
    z.boot = true;
    const pz = planNetwork(z, "web", ID, "/run/machina");
    expect(hostBatch(pz, addr, true)).toEqual([
      "link add vz-lab type bridge",
      "address add 10.159.0.17/28 dev vz-lab",
      "address add fd6d:6163:6869:1::1/64 dev vz-lab nodad",
      "link set vz-lab up",
    ]);
    expect(helperNetOps(pz, addr, false).map((r) => r.slice(0, 3).join(" "))).toEqual([
      "net_up container lo",
      `net_veth vb-web ${pz.veth!.hostMac}`,
      "net_master host vb-web",
      "net_up host vb-web",
    ]);
  });
  test("nft: DNAT in prerouting and output for both families, the pool masqueraded; empty = table removed", () => {
    const pools = { pool4: "10.159.0.0/16", pool6: "fd6d:6163:6869::/48" };
    const text = nftRuleset([{ machine: "web", container: addr.container, ports: s.ports }], pools);
    expect(text).toContain('fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to 10.159.0.18:80 comment "web"');
    expect(text).toContain("dnat ip6 to [fd6d:6163:6869:1::2]:80");
    expect(text).toContain("type nat hook output priority -100");
    expect(text).toContain('ip saddr 10.159.0.0/16 oifname != "ve-*" oifname != "vz-*" masquerade');
    expect(text).toContain('ip6 saddr fd6d:6163:6869::/48 oifname != "ve-*" oifname != "vz-*" masquerade');
    expect(text).toContain("ip saddr 127.0.0.0/8 ct status dnat masquerade");
    expect(text).toContain("flush chain inet machina prerouting");
    expect(text).not.toContain("delete table");
    expect(nftRuleset([], pools)).toBe("table inet machina {}\ndelete table inet machina\n");
    // the base: the same for every container, never touches the DNAT chains (the helper applies it outside the lock)
    const base = nftBase({ pool4: "10.159.0.0/16" });
    expect(base).toContain("flush chain inet machina postrouting");
    expect(base).not.toContain("flush chain inet machina prerouting");
    expect(base).not.toContain("ip6 saddr fd6d");
    expect(text.startsWith(nftBase(pools))).toBe(true);
  });
  test("dnsmasq: DHCP only, bound to its interface, static leases", () => {
    const argv = dnsmasqArgv({ iface: "ve-web", subnet: addr.subnet, gateway: addr.gateway, pidFile: "/p", leaseFile: "/l", hostsFile: "/h" });
    expect(argv).toContain("--conf-file=/dev/null");
    expect(argv).toContain("--port=0");
    expect(argv).toContain("--bind-dynamic");
    expect(argv).toContain("--enable-ra");
    expect(argv).toContain("--dhcp-range=fd6d:6163:6869:1::,static,64,1h");
    expect(argv).toContain("--dhcp-range=10.159.0.16,static,255.255.255.240,1h");
  });
  test("the veth dnsmasq: one for all booted containers' veths, a static range as wide as the pool, each link's lines tagged with its name", () => {
    const o = { pool4: "10.159.0.0/16", pool4Mask: "255.255.0.0", ipv6: true, pidFile: "/p", leaseFile: "/l", hostsFile: "/h", optsFile: "/o" };
    const argv = vethDhcpArgv(o);
    expect(argv).toContain("--interface=ve-*");
    expect(argv).toContain("--bind-dynamic");
    expect(argv).toContain("--dhcp-hostsfile=/h");
    expect(argv).toContain("--dhcp-optsfile=/o");
    expect(argv).toContain("--dhcp-range=10.159.0.0,static,255.255.0.0,1h");
    expect(argv).toContain("--dhcp-range=::,static,constructor:ve-*,64,1h");
    const v4only = vethDhcpArgv({ ...o, ipv6: false });
    expect(v4only.some((a) => a.includes("::") || a === "--enable-ra")).toBe(false);
    const lines = vethDhcpLines("ve-web", "02:00:00:00:00:01", addr);
    expect(lines.hosts).toEqual(["tag:ve-web,02:00:00:00:00:01,10.159.0.18,[fd6d:6163:6869:1::2]"]);
    // the link's own netmask, router and broadcast (the range's would be the pool's)
    expect(lines.opts).toEqual([
      "tag:ve-web,option:netmask,255.255.255.240",
      "tag:ve-web,option:router,10.159.0.17",
      "tag:ve-web,option:broadcast,10.159.0.31",
    ]);
    expect([...lines.hosts, ...lines.opts].every((l) => l.startsWith(vethDhcpTag("ve-web")))).toBe(true);
    expect(vethDhcpTag("ve-web").startsWith(vethDhcpTag("ve-we"))).toBe(false); // one link's lines are never another's
  });
  test("booted containers use DHCP; a bridge of the administrator's is not addressed", () => {
    const b = defaultSettings();
    b.boot = true;
    b.networkVeth = true;
    expect(planNetwork(b, "m", ID, "/s").addressing).toBe("dhcp");
    const br = defaultSettings();
    br.networkBridge = "br0";
    const p = planNetwork(br, "m", ID, "/s");
    expect([p.addressing, p.veth?.host, p.bridge]).toEqual(["none", "vb-m", "br0"]);
  });
});

/** A host's machine id, for setupNetwork on the fake host. */
const machineId = { "/etc/machine-id": `${ID}\n` };
/** Settings of a `--network-veth` container. */
const settings = () => {
  const s = defaultSettings();
  s.networkVeth = true;
  s.privateNetwork = true;
  return s;
};

describe("setupNetwork undoes a failed setup (src/reverter.ts)", () => {
  test("a step failing halfway leaves no record and no lease, and the undo's own failure is reported", () => {
    const host = new FakeHost({
      files: machineId,
      onRun: (argv) => (argv[0] === "nft" ? { status: 1, stdout: "", stderr: "nft: no nf_tables" } : undefined),
    });
    const plan = planNetwork(settings(), "web", ID, "/run/machina");
    let error: unknown;
    try {
      setupNetwork(host, "/run/machina", plan);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MachinaError);
    const message = (error as Error).message;
    // The failed step, then what the teardown could not undo (the table, with nft still failing).
    expect(message).toStartWith("nft -f failed: nft: no nf_tables (undoing it failed too: ");
    expect(message).toContain('undo "tear down the network of "web"" failed: cleaning up the network of "web": nft -f failed');
    expect(host.readFile("/run/machina/net/web.json")).toBeUndefined();
    expect(parseLeases(host.readFile("/run/machina/net/leases.json")).subnets).toEqual({});
    expect(host.readFile("/run/machina/net/leases.json")).toBeUndefined(); // an empty table is no file
    expect(host.heldLocks.size).toBe(0);
  });
  test("with a clean undo the step's own error is thrown unchanged", () => {
    const host = new FakeHost({
      files: machineId,
      onRun: (argv) => (argv[0] === "dnsmasq" ? { status: 2, stdout: "", stderr: "dnsmasq: bad option" } : undefined),
    });
    const s = settings();
    s.boot = true; // DHCP: machina starts a dnsmasq for the veth
    const plan = planNetwork(s, "web", ID, "/run/machina");
    expect(plan.addressing).toBe("dhcp");
    expect(() => setupNetwork(host, "/run/machina", plan)).toThrow(/^dnsmasq failed: dnsmasq: bad option$/);
    expect(host.readFile("/run/machina/net/web.json")).toBeUndefined();
    expect(host.lstat("/run/machina/net/veth-dhcp.hosts")).toBeUndefined(); // its lines went with it
    expect(parseLeases(host.readFile("/run/machina/net/leases.json")).subnets).toEqual({});
  });
});

describe("the veth dnsmasq (one for every booted container's veth)", () => {
  test("started by the first, told to re-read its files (SIGHUP) by the next, stopped with the last; each exit removes its lines", () => {
    const started: string[][] = [];
    const host: FakeHost = new FakeHost({
      files: machineId,
      onRun: (argv) => {
        if (argv[0] !== "dnsmasq") return undefined;
        started.push(argv);
        host.writeFile(argv.find((a) => a.startsWith("--pid-file="))!.slice("--pid-file=".length), "777\n");
        host.writeFile("/proc/777/cmdline", `${argv.join("\0")}\0`);
        return undefined;
      },
    });
    const s = settings();
    s.boot = true;
    const hosts = () => (host.readFile("/run/machina/net/veth-dhcp.hosts") ?? "").split("\n").filter(Boolean);
    setupNetwork(host, "/run/machina", planNetwork(s, "web", ID, "/run/machina"));
    setupNetwork(host, "/run/machina", planNetwork(s, "db", ID, "/run/machina"));
    expect(started).toHaveLength(1);
    expect(host.kills).toEqual([[777, 1]]);
    expect(hosts().map((l) => l.split(",")[0])).toEqual(["tag:ve-web", "tag:ve-db"]);
    expect((host.readFile("/run/machina/net/veth-dhcp.opts") ?? "").split("\n").filter(Boolean)).toHaveLength(6);
    teardownNetwork(host, "/run/machina", "web");
    expect(hosts().map((l) => l.split(",")[0])).toEqual(["tag:ve-db"]);
    expect(host.kills).toEqual([
      [777, 1],
      [777, 1],
    ]);
    teardownNetwork(host, "/run/machina", "db");
    expect(host.kills.at(-1)).toEqual([777, 15]);
    for (const f of ["hosts", "opts", "pid", "leases"]) expect(host.lstat(`/run/machina/net/veth-dhcp.${f}`)).toBeUndefined();
  });
  test("a state directory made 0700 (an older machinad, a first command's 0700 subdirectory): searchable again, the shared dnsmasq serves", () => {
    const started: string[][] = [];
    const host = new FakeHost({ files: machineId, onRun: (argv) => void (argv[0] === "dnsmasq" && started.push(argv)) });
    host.mkdirp("/run", 0o755);
    host.mkdirp("/run/machina", 0o700);
    host.chmod("/run/machina", 0o700);
    const s = settings();
    s.boot = true;
    setupNetwork(host, "/run/machina", planNetwork(s, "web", ID, "/run/machina"));
    expect(host.stat("/run/machina", true)?.mode).toBe(0o711); // search, not listing
    expect(started).toHaveLength(1);
    expect(started[0]).toContain("--interface=ve-*");
    expect(host.readFile("/run/machina/net/veth-dhcp.hosts")).toStartWith("tag:ve-web,");
  });
  test("a booted zone member there: one line (the zone's dnsmasq could not read its leases), nothing left", () => {
    const host = new FakeHost({ files: machineId });
    host.mkdirp("/root", 0o700);
    host.chmod("/root", 0o700);
    const s = settings();
    s.boot = true;
    s.networkZone = "lab";
    expect(() => setupNetwork(host, "/root/state", planNetwork(s, "web", ID, "/root/state"))).toThrow(
      '--network-zone=lab: the zone\'s dnsmasq reads its leases in /root/state/net as "nobody", who cannot reach it',
    );
    expect(host.readdir("/root/state/net").filter((n) => n.endsWith(".json") || n.endsWith(".hosts"))).toEqual([]);
  });
  test("a state directory below one dnsmasq's user cannot search (not machina's): a dnsmasq per container, its host on the command line", () => {
    const started: string[][] = [];
    const host = new FakeHost({ files: machineId, onRun: (argv) => void (argv[0] === "dnsmasq" && started.push(argv)) });
    host.mkdirp("/root", 0o700);
    host.chmod("/root", 0o700);
    const s = settings();
    s.boot = true;
    setupNetwork(host, "/root/state", planNetwork(s, "web", ID, "/root/state"));
    expect(host.stat("/root", true)?.mode).toBe(0o700); // left alone
    expect(started).toHaveLength(1);
    expect(started[0]).toContain("--interface=ve-web");
    expect(started[0]!.some((a) => a.startsWith("--dhcp-host="))).toBe(true);
    expect(host.lstat("/root/state/net/veth-dhcp.hosts")).toBeUndefined();
  });
});

describe("a start right after an exit: the ended machine's network is taken over (the supervisor's teardown runs in the background)", () => {
  const rec = (h: FakeHost) => JSON.parse(h.readFile("/run/machina/net/web.json")!) as { token?: string };
  test("a record with the exit mark is torn down and replaced; without the mark it is still in use (E_BUSY)", () => {
    const host = new FakeHost({ files: machineId });
    const plan = planNetwork(settings(), "web", ID, "/run/machina");
    setupNetwork(host, "/run/machina", plan, "old");
    expect(() => setupNetwork(host, "/run/machina", plan, "new")).toThrow('the network of machine "web" is still set up');
    host.writeFile("/run/machina/net/web.exited", ""); // the old supervisor has ended
    setupNetwork(host, "/run/machina", plan, "new");
    expect(rec(host).token).toBe("new");
    expect(host.lstat("/run/machina/net/web.exited")).toBeUndefined();
    expect(Object.keys(parseLeases(host.readFile("/run/machina/net/leases.json")).subnets)).toEqual(["veth:web"]);
  });
  test("the old teardown (its token) leaves the new network alone; the new one's removes it and the mark", () => {
    const host = new FakeHost({ files: machineId });
    const plan = planNetwork(settings(), "web", ID, "/run/machina");
    setupNetwork(host, "/run/machina", plan, "new");
    teardownNetwork(host, "/run/machina", "web", "old");
    expect(rec(host).token).toBe("new");
    host.writeFile("/run/machina/net/web.exited", "");
    teardownNetwork(host, "/run/machina", "web", "new");
    expect(host.readFile("/run/machina/net/web.json")).toBeUndefined();
    expect(host.lstat("/run/machina/net/web.exited")).toBeUndefined();
    expect(parseLeases(host.readFile("/run/machina/net/leases.json")).subnets).toEqual({});
    expect(host.heldLocks.size).toBe(0);
  });
});

describe("the table's base in the helper's prestart", () => {
  test("applied (nft -f) when it was (re)written; when unchanged, only when the table is missing (no transaction on the start's path)", () => {
    const host = new FakeHost({ files: { ...machineId, "/usr/sbin/nft": "" } });
    const s = settings();
    const first = setupNetwork(host, "/run/machina", planNetwork(s, "a", ID, "/run/machina"), "t1");
    expect(first.nftPrestart).toEqual(["/usr/sbin/nft", "-f", "/run/machina/net/base.nft"]);
    const second = setupNetwork(host, "/run/machina", planNetwork(s, "b", ID, "/run/machina"), "t2");
    expect(first.nftPrestartUnlessTable).toBeUndefined();
    // unchanged: the helper skips it when the table is there (a netlink read, native/SPEC.md prestart_unless_table)
    expect(second.nftPrestart).toEqual(["/usr/sbin/nft", "-f", "/run/machina/net/base.nft"]);
    expect(second.nftPrestartUnlessTable).toEqual(["inet", "machina"]);
  });
});
