/**
 * The network of one container: what to create (pure, from Settings), and the exact `ip -batch`
 * and `nft -f` texts that create and remove it. net/setup.ts executes these.
 */
import type { Settings } from "../settings/settings.ts";
import { netnsPath, wantsManagedNetwork, wantsPreparedNetns } from "../spec/network.ts";
import type { PortForward } from "../settings/compound-values.ts";
import { broadcast4, parseCidr } from "./cidr.ts";
import { addressesOf, type HostAddresses, type SubnetLease } from "./ipam.ts";
import { generateMac, HASH_KEYS, interfacePair, shortenIfname, vethHostName, zoneBridgeName } from "./names.ts";

export interface VethPlan {
  host: string;
  inside: string;
  hostMac: string;
  containerMac: string;
}

export interface NetPlan {
  machine: string;
  /** nsfs bind mount the container joins. */
  netns: string;
  /** The main veth (--network-veth, -bridge, -zone): ve-/vb-NAME <-> host0. */
  veth: VethPlan | undefined;
  /** An existing bridge (--network-bridge) or a zone's bridge vz-ZONE the host side joins. */
  bridge: string | undefined;
  zone: string | undefined;
  extras: VethPlan[];
  /** Moved in (and given back on exit): host name -> name inside. */
  interfaces: Array<{ host: string; inside: string }>;
  macvlans: Array<{ parent: string; inside: string; mac: string }>;
  ipvlans: Array<{ parent: string; inside: string }>;
  ports: PortForward[];
  /**
   * How the container gets its address: "static" = host0 configured from outside before the
   * payload starts; "dhcp" = a booted container asks dnsmasq; "none" = not machina's business
   * (no main veth, or a bridge of the administrator's).
   */
  addressing: "static" | "dhcp" | "none";
  /**
   * The namespace is made by src/net/ before the start (links are moved or created into it:
   * extras, interfaces, ipvlans — and the macvlans with them) and joined by the helper (`netns`);
   * otherwise the clone creates it (owned by the container's user namespace with -U) and the
   * helper makes the macvlans in it. Either way the main veth is created by the helper after each
   * clone (helperNetOps).
   */
  prepared: boolean;
}

export { netnsPath, wantsManagedNetwork };

/** Pure: Settings + machine name + the host's machine id -> the plan. */
/**
 * `emulated`: the image runs under qemu-user, whose netlink lacks what systemd-networkd needs, so
 * a booted one cannot ask for its address (spec/build.ts masks networkd): host0 is configured from outside.
 */
export function planNetwork(s: Settings, machine: string, machineId: string, stateDir: string, emulated = false): NetPlan {
  const bridged = s.networkBridge !== undefined || s.networkZone !== undefined;
  const hasVeth = s.networkVeth || bridged;
  const veth: VethPlan | undefined = hasVeth
    ? {
        host: vethHostName(machine, bridged),
        inside: "host0",
        hostMac: generateMac(machineId, machine, HASH_KEYS.host),
        containerMac: generateMac(machineId, machine, HASH_KEYS.container),
      }
    : undefined;
  const extras = s.networkVethExtra.map((spec, idx) => {
    const [host = "", inside] = spec.split(":");
    return {
      host,
      inside: inside ?? host,
      hostMac: generateMac(machineId, machine, HASH_KEYS.vethExtraHost, idx),
      containerMac: generateMac(machineId, machine, HASH_KEYS.vethExtraContainer, idx),
    };
  });
  const managed = veth !== undefined && s.networkBridge === undefined;
  return {
    machine,
    netns: netnsPath(stateDir, machine),
    veth,
    bridge: s.networkZone !== undefined ? zoneBridgeName(s.networkZone) : s.networkBridge,
    zone: s.networkZone,
    extras,
    interfaces: s.networkInterfaces.map((i) => interfacePair(i, "")),
    macvlans: s.networkMacvlan.map((spec, idx) => {
      const p = interfacePair(spec, "mv-");
      return { parent: p.host, inside: p.inside, mac: generateMac(machineId, machine, HASH_KEYS.macvlan, idx) };
    }),
    ipvlans: s.networkIpvlan.map((spec) => {
      const p = interfacePair(spec, "iv-");
      return { parent: p.host, inside: p.inside };
    }),
    ports: s.ports,
    addressing: !managed ? "none" : s.boot && !emulated ? "dhcp" : "static",
    prepared: wantsPreparedNetns(s),
  };
}

/** Addresses handed out to one container: its subnet, the host side's and its own. */
export interface NetAddressing {
  subnet: SubnetLease;
  gateway: HostAddresses;
  container: HostAddresses;
}

export function addressing(subnet: SubnetLease, hostNumber: number): NetAddressing {
  return { subnet, gateway: addressesOf(subnet, 1), container: addressesOf(subnet, hostNumber) };
}

const q = (s: string) => (/^[A-Za-z0-9_.:/@+-]+$/.test(s) ? s : JSON.stringify(s));

/**
 * `ip -batch -` in the host's namespace before the start: the zone bridge when it is new; with a
 * prepared namespace, the extra veths, moved interfaces, macvlans, ipvlans (the main veth, and
 * the macvlans without a prepared namespace, are the helper's: helperNetOps).
 */
export function hostBatch(plan: NetPlan, addr: NetAddressing | undefined, createZoneBridge: boolean): string[] {
  const ns = q(plan.netns);
  const out: string[] = [];
  if (createZoneBridge && plan.bridge !== undefined && addr !== undefined) {
    out.push(`link add ${q(plan.bridge)} type bridge`);
    out.push(...hostAddressLines(plan.bridge, addr));
    out.push(`link set ${q(plan.bridge)} up`);
  }
  for (const x of plan.extras) out.push(`link add ${q(x.host)} address ${x.hostMac} type veth peer name ${q(x.inside)} address ${x.containerMac} netns ${ns}`);
  for (const i of plan.interfaces) out.push(`link set dev ${q(i.host)} netns ${ns}${i.inside !== i.host ? ` name ${q(i.inside)}` : ""}`);
  // macvlans: here only into a namespace prepared anyway; otherwise the helper makes them (helperNetOps)
  if (plan.prepared)
    for (const m of plan.macvlans) out.push(`link add link ${q(m.parent)} name ${q(m.inside)} address ${m.mac} netns ${ns} type macvlan mode bridge`);
  for (const m of plan.ipvlans) out.push(`link add link ${q(m.parent)} name ${q(m.inside)} netns ${ns} type ipvlan mode l2`);
  return out;
}

function hostAddressLines(dev: string, addr: NetAddressing): string[] {
  const g = addr.gateway;
  const out = [`address add ${g.v4}/${g.v4Prefix} dev ${q(dev)}`];
  if (g.v6 !== undefined) out.push(`address add ${g.v6}/${g.v6Prefix} dev ${q(dev)} nodad`);
  return out;
}

/** `ip -batch -` run by `unshare --net=PATH` for a prepared namespace (created by that command): loopback up. */
export function containerBatch(): string[] {
  return ["link set lo up"];
}

/**
 * The helper's `net_*` records (native/SPEC.md "Networking"), carried out by the supervisor over
 * netlink after each clone: the main veth (host side here, host0 straight into the container's
 * namespace), the host side addressed or joined to its bridge and up, loopback up and — when
 * machina configures it (static) — host0 addressed and routed. `routeLocalnet`: forwarded ports
 * must answer on 127.0.0.1 and the veth carries the subnet.
 */
export function helperNetOps(plan: NetPlan, addr: NetAddressing | undefined, routeLocalnet: boolean): string[][] {
  const v = plan.veth;
  const out: string[][] = [["net_up", "container", "lo"]];
  // without a prepared namespace, the macvlans are made straight in the container's (hostBatch otherwise)
  if (!plan.prepared) for (const m of plan.macvlans) out.push(["net_macvlan", m.parent, m.inside, m.mac]);
  if (v === undefined) return out;
  out.push(["net_veth", v.host, v.hostMac, v.inside, v.containerMac]);
  if (plan.bridge !== undefined) out.push(["net_master", "host", v.host, plan.bridge]);
  else if (addr !== undefined) {
    out.push(["net_addr", "host", v.host, `${addr.gateway.v4}/${addr.gateway.v4Prefix}`]);
    if (addr.gateway.v6 !== undefined) out.push(["net_addr", "host", v.host, `${addr.gateway.v6}/${addr.gateway.v6Prefix}`]);
    if (routeLocalnet) out.push(["net_sysctl", `net/ipv4/conf/${v.host}/route_localnet`, "1"]);
  }
  out.push(["net_up", "host", v.host]);
  if (plan.addressing === "static" && addr !== undefined) {
    const c = addr.container;
    out.push(["net_addr", "container", v.inside, `${c.v4}/${c.v4Prefix}`]);
    if (c.v6 !== undefined) out.push(["net_addr", "container", v.inside, `${c.v6}/${c.v6Prefix}`]);
    out.push(["net_up", "container", v.inside]);
    out.push(["net_route", "container", v.inside, addr.gateway.v4]);
    if (addr.gateway.v6 !== undefined) out.push(["net_route", "container", v.inside, addr.gateway.v6]);
  }
  return out;
}

/** Inside the container's namespace at exit: moved interfaces go back to `hostNetns` under their old names. */
export function giveBackBatch(plan: NetPlan, hostNetns: string): string[] {
  return [...plan.interfaces].reverse().map((i) => `link set dev ${q(i.inside)} netns ${q(hostNetns)}${i.inside !== i.host ? ` name ${q(i.host)}` : ""}`);
}

/** In the host's namespace at exit (with -force: each may already be gone). */
export function hostRemoveBatch(plan: NetPlan): string[] {
  const out: string[] = [];
  if (plan.veth) out.push(`link delete ${q(plan.veth.host)}`);
  for (const x of plan.extras) out.push(`link delete ${q(x.host)}`);
  return out;
}

/** What the nft ruleset needs to know about one running container. */
export interface NftMember {
  machine: string;
  container: HostAddresses;
  ports: PortForward[];
}

export const NFT_TABLE = "machina";

/** The address pools whose outbound traffic is masqueraded (network.conf Pool4=, Pool6=). */
export interface NftPools {
  pool4: string;
  pool6?: string;
}

/**
 * The part of `table inet machina` that does not depend on which containers run: the base chains
 * (declared — a no-op when they exist — never deleted and recreated: (un)registering netfilter
 * hooks waits for an RCU grace period, ~10 ms each) and the postrouting chain, flushed and
 * refilled with the same rules every time: traffic from the pool leaving through anything but
 * machina's own links is masqueraded; so is a connection from the host's loopback to a forwarded
 * port (route_localnet lets it out through the container's link; give it the host side's
 * address). Idempotent and the same for every container, so the helper may apply it in the
 * background outside the network lock (`prestart`) while the container is being set up.
 */
export function nftBase(pools: NftPools): string {
  const t = `inet ${NFT_TABLE}`;
  const notOurs = 'oifname != "ve-*" oifname != "vz-*"';
  const post = [
    `ip saddr ${pools.pool4} ${notOurs} masquerade`,
    ...(pools.pool6 !== undefined ? [`ip6 saddr ${pools.pool6} ${notOurs} masquerade`] : []),
    "ip saddr 127.0.0.0/8 ct status dnat masquerade",
    "ip6 saddr ::1 ct status dnat masquerade",
  ];
  return (
    [
      `table ${t} {`,
      "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; }",
      "  chain output { type nat hook output priority -100; policy accept; }",
      "  chain postrouting { type nat hook postrouting priority srcnat; policy accept; }",
      "}",
      `flush chain ${t} postrouting`,
      ...post.map((r) => `add rule ${t} postrouting ${r}`),
    ].join("\n") + "\n"
  );
}

/**
 * `table inet machina` rewritten from every running container in one `nft -f -` transaction (under
 * the network lock): the base (nftBase) and the DNAT rules of every forwarded port. No container =
 * the table is deleted.
 */
export function nftRuleset(members: NftMember[], pools: NftPools): string {
  if (members.length === 0) return `table inet ${NFT_TABLE} {}\ndelete table inet ${NFT_TABLE}\n`;
  const dnat: string[] = [];
  for (const m of members)
    for (const p of m.ports) {
      dnat.push(
        `fib daddr type local meta nfproto ipv4 ${p.protocol} dport ${p.hostPort} dnat ip to ${m.container.v4}:${p.containerPort} comment ${JSON.stringify(m.machine)}`,
      );
      if (m.container.v6 !== undefined)
        dnat.push(
          `fib daddr type local meta nfproto ipv6 ${p.protocol} dport ${p.hostPort} dnat ip6 to [${m.container.v6}]:${p.containerPort} comment ${JSON.stringify(m.machine)}`,
        );
    }
  const t = `inet ${NFT_TABLE}`;
  return (
    nftBase(pools) +
    [
      `flush chain ${t} prerouting`,
      `flush chain ${t} output`,
      ...dnat.map((r) => `add rule ${t} prerouting ${r}`),
      ...dnat.map((r) => `add rule ${t} output ${r}`),
    ].join("\n") +
    "\n"
  );
}

/**
 * dnsmasq for one zone's bridge or one veth: DHCP (v4, v6) and router advertisements only (no
 * DNS), bound to that interface alone, static leases. A zone's members (MAC,IP) change while it
 * runs, so they are in `hostsFile`, re-read on SIGHUP — by dnsmasq's unprivileged user ("nobody"),
 * so the state directory must be searchable by it (the veth dnsmasq's files too: vethDhcpArgv).
 * A veth's own dnsmasq (a state directory nobody cannot search) has its host on the command line.
 */
export function dnsmasqArgv(opts: {
  iface: string;
  subnet: SubnetLease;
  gateway: HostAddresses;
  pidFile: string;
  leaseFile: string;
  hostsFile?: string;
  hosts?: string[];
}): string[] {
  const g = opts.gateway;
  const network = opts.subnet.v4.split("/")[0]!;
  return [
    "dnsmasq",
    "--conf-file=/dev/null",
    "--port=0",
    `--interface=${opts.iface}`,
    "--bind-dynamic", // a veth's host side appears only after the clone (the helper makes it)
    "--except-interface=lo",
    `--pid-file=${opts.pidFile}`,
    `--dhcp-leasefile=${opts.leaseFile}`,
    ...(opts.hostsFile !== undefined ? [`--dhcp-hostsfile=${opts.hostsFile}`] : []),
    ...(opts.hosts ?? []).map((h) => `--dhcp-host=${h}`),
    `--dhcp-range=${network},static,${g.v4Mask},1h`,
    `--dhcp-option=option:router,${g.v4}`,
    // IPv6: router advertisements (the host side is the router; "managed": ask DHCPv6) and the
    // same static lease by MAC over DHCPv6 — the guest's ULA is the address machina gave it.
    ...(opts.subnet.v6 !== undefined && g.v6Prefix !== undefined
      ? ["--enable-ra", `--dhcp-range=${opts.subnet.v6.split("/")[0]},static,${g.v6Prefix},1h`]
      : []),
    "--dhcp-authoritative",
    "--dhcp-rapid-commit",
    "--log-facility=/dev/null",
  ];
}

/** A booted container's own veth (its host side, named as nspawn names it): what the veth dnsmasq serves. */
export const VETH_HOST_GLOB = "ve-*";

/**
 * The one dnsmasq serving every booted container's own veth on a host (one per state directory),
 * instead of one per container: each dnsmasq wakes on every address and route the host gains or
 * loses and enumerates all interfaces, so n of them made each start cost O(n) in the others (~1 ms
 * each per start here). DHCPv4 from a static range as wide as the pool — each link's netmask,
 * router and broadcast come with its options, its host only on its own link (dnsmasq tags a request
 * with its interface's name) — and router advertisements + DHCPv6 from each link's own prefix
 * (`constructor`). Hosts and options are files re-read on SIGHUP: a start adds its lines, an exit
 * removes them (vethDhcpLines).
 */
export function vethDhcpArgv(o: {
  pool4: string;
  pool4Mask: string;
  ipv6: boolean;
  pidFile: string;
  leaseFile: string;
  hostsFile: string;
  optsFile: string;
}): string[] {
  return [
    "dnsmasq",
    "--conf-file=/dev/null",
    "--port=0",
    `--interface=${VETH_HOST_GLOB}`,
    "--bind-dynamic", // veths come and go while it runs
    "--except-interface=lo",
    `--pid-file=${o.pidFile}`,
    `--dhcp-leasefile=${o.leaseFile}`,
    `--dhcp-hostsfile=${o.hostsFile}`,
    `--dhcp-optsfile=${o.optsFile}`,
    `--dhcp-range=${o.pool4.split("/")[0]},static,${o.pool4Mask},1h`,
    ...(o.ipv6 ? ["--enable-ra", `--dhcp-range=::,static,constructor:${VETH_HOST_GLOB},64,1h`] : []),
    "--dhcp-authoritative",
    "--dhcp-rapid-commit",
    "--log-facility=/dev/null",
  ];
}

/** A container's lines in the veth dnsmasq's hosts and options files: all start with its link's tag (`tag:IFNAME,`). */
export function vethDhcpLines(hostIf: string, mac: string, addr: NetAddressing): { hosts: string[]; opts: string[] } {
  const t = vethDhcpTag(hostIf);
  const g = addr.gateway;
  return {
    hosts: [`${t}${dhcpHost(mac, addr)}`],
    opts: [`${t}option:netmask,${g.v4Mask}`, `${t}option:router,${g.v4}`, `${t}option:broadcast,${broadcast4(parseCidr(addr.subnet.v4)!)}`],
  };
}

/** The prefix of a link's lines in the veth dnsmasq's files. */
export function vethDhcpTag(hostIf: string): string {
  return `tag:${hostIf},`;
}

/** dnsmasq's static lease: MAC, IPv4 address and (DHCPv6, matched by MAC on the link) IPv6 address. */
export function dhcpHost(mac: string, addr: NetAddressing): string {
  return `${mac},${addr.container.v4}${addr.container.v6 !== undefined ? `,[${addr.container.v6}]` : ""}`;
}

/** The short name of an interface given by the user, as nspawn would shorten it. */
export { shortenIfname };
