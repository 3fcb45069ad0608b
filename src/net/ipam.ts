/**
 * IPAM: one subnet per veth or zone out of a configurable pool, and one address per container
 * in a zone. Pure: the lease table goes in and out as a value; net/state.ts stores it
 * atomically under the network lock, so an address is never handed out twice.
 */
import { machinaEnv } from "../config.ts";
import { lazySchemas } from "../lazy-zod.ts";
import { MachinaError } from "../errors.ts";
import { formatCidr, hostAt, hostCapacity, netmask4, overlaps, parseCidr, subnetAt, subnetCount, type Cidr } from "./cidr.ts";

export interface NetConfig {
  pool4: Cidr;
  /** Prefix length of the subnet of one veth (host side .1, container .2). */
  prefix4: number;
  /** Prefix length of a zone's subnet (bridge .1, containers .2 …). */
  zonePrefix4: number;
  /** undefined = no IPv6 addresses. */
  pool6: Cidr | undefined;
  /** Turn on net.ipv6.conf.all.forwarding (off by default: it stops the host accepting router advertisements). */
  forward6: boolean;
}

export const DEFAULT_CONFIG_TEXT = `# machina networking (see docs/networking.md)
Pool4 = 10.159.0.0/16
SubnetPrefix4 = 28
ZonePrefix4 = 24
Pool6 = fd6d:6163:6869::/48
IPv6Forwarding = no
`;

/** Parse network.conf (KEY = VALUE lines, # comments); env MACHINA_NET_POOL4 / MACHINA_NET_POOL6 override. */
export function parseNetConfig(text: string | undefined, env: Readonly<Record<string, string | undefined>> = {}): NetConfig {
  const values = new Map<string, string>();
  for (const src of [DEFAULT_CONFIG_TEXT, text ?? ""])
    for (const raw of src.split("\n")) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
      const eq = line.indexOf("=");
      if (eq < 0) throw new Error(`network.conf: expected KEY = VALUE, got "${line}"`);
      values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  const envPool4 = machinaEnv(env, "MACHINA_NET_POOL4");
  const envPool6 = machinaEnv(env, "MACHINA_NET_POOL6");
  if (envPool4 !== undefined) values.set("Pool4", envPool4);
  if (envPool6 !== undefined) values.set("Pool6", envPool6);
  const cidr = (k: string, family: 4 | 6) => {
    const c = parseCidr(values.get(k)!);
    if (c === undefined || c.family !== family) throw new Error(`network.conf: ${k}= must be an IPv${family} prefix, got "${values.get(k)}"`);
    return c;
  };
  const num = (k: string, min: number, max: number) => {
    const v = values.get(k)!;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`network.conf: ${k}= must be ${min}..${max}, got "${v}"`);
    return Number(v);
  };
  const pool4 = cidr("Pool4", 4);
  const prefix4 = num("SubnetPrefix4", Math.max(pool4.prefix, 1), 30);
  const zonePrefix4 = num("ZonePrefix4", Math.max(pool4.prefix, 1), 30);
  const p6 = values.get("Pool6")!;
  const pool6 = p6 === "" || p6 === "no" ? undefined : cidr("Pool6", 6);
  if (pool6 !== undefined && pool6.prefix > 64) throw new Error("network.conf: Pool6= must be /64 or larger");
  const f6 = values.get("IPv6Forwarding")!;
  return { pool4, prefix4, zonePrefix4, pool6, forward6: /^(yes|true|1|on)$/i.test(f6) };
}

/** A subnet in the lease table: IPv4 (and IPv6) prefix in text form. */
export interface SubnetLease {
  v4: string;
  v6?: string;
}

export interface Leases {
  /** Owner ("veth:MACHINE" or "zone:ZONE") -> its subnet. */
  subnets: Record<string, SubnetLease>;
  /** Zone owner -> machine -> host number inside the zone's subnet (2, 3, …). */
  hosts: Record<string, Record<string, number>>;
}

export const emptyLeases = (): Leases => ({ subnets: {}, hosts: {} });

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const ipamSchemas = lazySchemas((z) => {
  /** The lease table as written to $STATE/net/leases.json (a missing part is empty). */
  const LeasesSchema = z.object({
    subnets: z.record(z.string(), z.object({ v4: z.string(), v6: z.string().optional() })).default({}),
    hosts: z.record(z.string(), z.record(z.string(), z.number().int())).default({}),
  });
  return { LeasesSchema };
});

/** The lease table in `text` (empty when there is none); E_INVALID naming `path` when it is not one. */
export function parseLeases(text: string | undefined, path = "leases.json"): Leases {
  if (!text) return emptyLeases();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new MachinaError("E_INVALID", `${path}: not JSON: ${(e as Error).message}`, { path });
  }
  const r = ipamSchemas().LeasesSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MachinaError("E_INVALID", `${path}: not a lease table: ${issue ? `${issue.path.join(".") || "(top)"}: ${issue.message}` : r.error.message}`, {
      path,
    });
  }
  return r.data;
}

export class IpamError extends Error {}

/** The owner's subnet, allocated when it has none: the first free one in pool order that overlaps nothing in `avoid`. */
export function allocateSubnet(
  leases: Leases,
  cfg: NetConfig,
  owner: string,
  kind: "veth" | "zone",
  avoid: Cidr[] = [],
): { leases: Leases; subnet: SubnetLease } {
  const have = leases.subnets[owner];
  if (have !== undefined) return { leases, subnet: have };
  const used4 = Object.values(leases.subnets).map((s) => parseCidr(s.v4)!);
  const used6 = Object.values(leases.subnets).flatMap((s) => (s.v6 ? [parseCidr(s.v6)!] : []));
  const pick = (pool: Cidr, prefix: number, used: Cidr[]): Cidr | undefined => {
    const n = subnetCount(pool, prefix);
    for (let i = 0n; i < n; i++) {
      const c = subnetAt(pool, prefix, i);
      if (!used.some((u) => overlaps(u, c)) && !avoid.some((a) => overlaps(a, c))) return c;
    }
    return undefined;
  };
  const v4 = pick(cfg.pool4, kind === "zone" ? cfg.zonePrefix4 : cfg.prefix4, used4);
  if (v4 === undefined) throw new IpamError(`the IPv4 pool ${formatCidr(cfg.pool4)} is exhausted`);
  const subnet: SubnetLease = { v4: formatCidr(v4) };
  if (cfg.pool6 !== undefined) {
    const v6 = pick(cfg.pool6, 64, used6);
    if (v6 === undefined) throw new IpamError(`the IPv6 pool ${formatCidr(cfg.pool6)} is exhausted`);
    subnet.v6 = formatCidr(v6);
  }
  return { leases: { ...leases, subnets: { ...leases.subnets, [owner]: subnet } }, subnet };
}

/** A host number in a zone for the machine (its old one if it has one): the lowest free from 2. */
export function allocateHost(leases: Leases, zoneOwner: string, machine: string): { leases: Leases; host: number } {
  const subnet = leases.subnets[zoneOwner];
  if (subnet === undefined) throw new IpamError(`no subnet for ${zoneOwner}`);
  const hosts = leases.hosts[zoneOwner] ?? {};
  if (hosts[machine] !== undefined) return { leases, host: hosts[machine] };
  const taken = new Set(Object.values(hosts));
  const cap = hostCapacity(parseCidr(subnet.v4)!);
  let host = 2;
  while (taken.has(host)) host++;
  if (BigInt(host) > cap) throw new IpamError(`the zone subnet ${subnet.v4} is full`);
  return { leases: { ...leases, hosts: { ...leases.hosts, [zoneOwner]: { ...hosts, [machine]: host } } }, host };
}

export function releaseHost(leases: Leases, zoneOwner: string, machine: string): Leases {
  const hosts = { ...(leases.hosts[zoneOwner] ?? {}) };
  delete hosts[machine];
  const all = { ...leases.hosts, [zoneOwner]: hosts };
  if (Object.keys(hosts).length === 0) delete all[zoneOwner];
  return { ...leases, hosts: all };
}

export function releaseSubnet(leases: Leases, owner: string): Leases {
  const subnets = { ...leases.subnets };
  delete subnets[owner];
  const hosts = { ...leases.hosts };
  delete hosts[owner];
  return { subnets, hosts };
}

/** Addresses of host number n (1 = the host side / bridge) in a subnet, with prefix lengths. */
export interface HostAddresses {
  v4: string;
  v4Prefix: number;
  v4Mask: string;
  v6?: string;
  v6Prefix?: number;
}

export function addressesOf(subnet: SubnetLease, n: number): HostAddresses {
  const c4 = parseCidr(subnet.v4)!;
  const out: HostAddresses = { v4: hostAt(c4, BigInt(n)), v4Prefix: c4.prefix, v4Mask: netmask4(c4.prefix) };
  if (subnet.v6 !== undefined) {
    const c6 = parseCidr(subnet.v6)!;
    out.v6 = hostAt(c6, BigInt(n));
    out.v6Prefix = c6.prefix;
  }
  return out;
}
