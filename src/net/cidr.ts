/** Minimal IPv4/IPv6 address and prefix arithmetic on bigints (what IPAM needs, nothing more). Pure. */

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address (host bits cleared). */
  base: bigint;
  prefix: number;
}

const BITS = { 4: 32, 6: 128 } as const;

export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const parts = text.split(".").map(Number);
    if (parts.some((p) => p > 255)) return undefined;
    return { family: 4, value: parts.reduce((v, p) => (v << 8n) | BigInt(p), 0n) };
  }
  if (!/^[0-9a-fA-F:]+$/.test(text) || !text.includes(":")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? head.length !== 8 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (all.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return { family: 6, value: all.reduce((v, g) => (v << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join(".");
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups, the first on ties.
  let best = -1,
    bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.split("/");
  if (addr === undefined || len === undefined || extra !== undefined || !/^\d{1,3}$/.test(len)) return undefined;
  const a = parseAddress(addr);
  if (a === undefined) return undefined;
  const prefix = Number(len);
  if (prefix > BITS[a.family]) return undefined;
  return { family: a.family, base: a.value & ~hostMask(a.family, prefix), prefix };
}

function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(BITS[family] - prefix)) - 1n;
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.base)}/${c.prefix}`;
}

/** Number of subnets of length `prefix` in `pool`. */
export function subnetCount(pool: Cidr, prefix: number): bigint {
  if (prefix < pool.prefix || prefix > BITS[pool.family]) return 0n;
  return 1n << BigInt(prefix - pool.prefix);
}

/** The index-th subnet of length `prefix` in `pool`. */
export function subnetAt(pool: Cidr, prefix: number, index: bigint): Cidr {
  return { family: pool.family, base: pool.base + (index << BigInt(BITS[pool.family] - prefix)), prefix };
}

/** Address number `n` inside the subnet (1 = first host). */
export function hostAt(c: Cidr, n: bigint): string {
  return formatAddress(c.family, c.base + n);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const m = ~hostMask(a.family, p);
  return (a.base & m) === (b.base & m);
}

/** Usable host addresses of an IPv4 subnet (network and broadcast excluded); IPv6: a large number. */
export function hostCapacity(c: Cidr): bigint {
  const size = 1n << BigInt(BITS[c.family] - c.prefix);
  return c.family === 4 ? (size > 2n ? size - 2n : 0n) : size - 1n;
}

/** The broadcast address of an IPv4 subnet. */
export function broadcast4(c: Cidr): string {
  return formatAddress(4, c.base | hostMask(4, c.prefix));
}

export function netmask4(prefix: number): string {
  return formatAddress(4, ((1n << 32n) - 1n) ^ hostMask(4, prefix));
}
