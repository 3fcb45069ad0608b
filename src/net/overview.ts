/**
 * The networks machina made for its running containers, as data (machinad's GET /v1/networks,
 * the dashboard): from the records of $STATE/net/ (setup.ts), grouped by zone and bridge, with
 * each container's interfaces, addresses and forwarded ports. Reads only.
 */
import type { Host } from "../host/host.ts";
import { networkRecords } from "./setup.ts";

export interface MachineNetwork {
  machine: string;
  /** how it is attached: a veth of its own, a zone's bridge, an existing bridge; or none of those (only moved, macvlan, ipvlan interfaces) */
  kind: "veth" | "zone" | "bridge" | "other";
  /** the host side of its main veth (ve-NAME, vb-NAME), if it has one */
  hostInterface?: string;
  zone?: string;
  bridge?: string;
  addressing: "static" | "dhcp" | "none";
  /** its addresses and gateway with prefix, when machina assigned them */
  addresses: string[];
  gateway: string[];
  subnet: string[];
  ports: Array<{ protocol: "tcp" | "udp"; hostPort: number; containerPort: number }>;
  /** host interfaces moved in, and macvlan/ipvlan interfaces on host parents */
  moved: Array<{ host: string; inside: string }>;
  macvlans: Array<{ parent: string; inside: string }>;
  ipvlans: Array<{ parent: string; inside: string }>;
}

export interface NetworkOverview {
  machines: MachineNetwork[];
  zones: Array<{ name: string; hostInterface: string; subnet: string[]; machines: string[] }>;
  bridges: Array<{ name: string; machines: string[] }>;
}

export function networkOverview(host: Host, stateDir: string): NetworkOverview {
  const machines: MachineNetwork[] = [];
  for (const r of networkRecords(host, stateDir)) {
    if (r.phase !== "up") continue;
    const p = r.plan;
    const withPrefix = (a: { v4: string; v4Prefix: number; v6?: string; v6Prefix?: number }) => [
      `${a.v4}/${a.v4Prefix}`,
      ...(a.v6 !== undefined ? [`${a.v6}/${a.v6Prefix}`] : []),
    ];
    machines.push({
      machine: r.machine,
      kind: p.zone !== undefined ? "zone" : p.bridge !== undefined ? "bridge" : p.veth !== undefined ? "veth" : "other",
      ...(p.veth !== undefined ? { hostInterface: p.veth.host } : {}),
      ...(p.zone !== undefined ? { zone: p.zone } : {}),
      ...(p.bridge !== undefined && p.zone === undefined ? { bridge: p.bridge } : {}),
      addressing: p.addressing,
      addresses: r.addr !== undefined ? withPrefix(r.addr.container) : [],
      gateway: r.addr !== undefined ? [r.addr.gateway.v4, ...(r.addr.gateway.v6 !== undefined ? [r.addr.gateway.v6] : [])] : [],
      subnet: r.addr !== undefined ? [r.addr.subnet.v4, ...(r.addr.subnet.v6 !== undefined ? [r.addr.subnet.v6] : [])] : [],
      ports: p.ports,
      moved: p.interfaces,
      macvlans: p.macvlans.map(({ parent, inside }) => ({ parent, inside })),
      ipvlans: p.ipvlans,
    });
  }
  machines.sort((a, b) => a.machine.localeCompare(b.machine));
  const zones = new Map<string, NetworkOverview["zones"][number]>();
  const bridges = new Map<string, string[]>();
  for (const m of machines) {
    if (m.zone !== undefined) {
      const z = zones.get(m.zone) ?? { name: m.zone, hostInterface: `vz-${m.zone}`, subnet: m.subnet, machines: [] };
      z.machines.push(m.machine);
      zones.set(m.zone, z);
    }
    if (m.bridge !== undefined) bridges.set(m.bridge, [...(bridges.get(m.bridge) ?? []), m.machine]);
  }
  return {
    machines,
    zones: [...zones.values()].sort((a, b) => a.name.localeCompare(b.name)),
    bridges: [...bridges].map(([name, ms]) => ({ name, machines: ms })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}
