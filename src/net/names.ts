/**
 * Interface names and MAC addresses exactly as systemd-nspawn (src/nspawn/nspawn-network.c)
 * derives them, so that the same machine gets the same ve-/vb-/mv-/iv- names and MACs under
 * machina and under systemd-nspawn on one host. Pure.
 */
import { siphash24 } from "../spec/siphash.ts";

const key = (hex: string) => Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16)));

export const HASH_KEYS = {
  host: key("1a376fc746ec450bada3d53106605db1"),
  container: key("c3c4f919b557b21ce6cf1427039ceea2"),
  vethExtraHost: key("48c7f6b7ea9d4c9eb728d4de91d5bf66"),
  vethExtraContainer: key("af501761cef94d35840d2b2054bece59"),
  macvlan: key("00136dbc66834481bb0cf9511f24a66f"),
  shortenIfname: key("e190a404a8ef4b518cccc33a9f11fca2"),
} as const;

/** IFNAMSIZ: names are at most 15 bytes. */
export const IFNAMSIZ = 16;
const URLSAFE_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * shorten_ifname(): a name of 16 bytes or more keeps its first 11 bytes and gets 4 url-safe
 * base64 characters of the low 24 bits of siphash24(name) (NAMING_NSPAWN_LONG_HASH).
 */
export function shortenIfname(name: string): string {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length < IFNAMSIZ) return name;
  const h = siphash24(bytes, HASH_KEYS.shortenIfname);
  const c = (shift: bigint) => URLSAFE_B64[Number((h >> shift) & 63n)]!;
  return new TextDecoder().decode(bytes.slice(0, IFNAMSIZ - 5)) + c(18n) + c(12n) + c(6n) + c(0n);
}

/**
 * generate_mac(): siphash24(machine-id bytes ‖ machine name [‖ le64 idx when idx > 0]) with a
 * fixed key; the first 6 bytes of the little-endian result, unicast and locally administered.
 */
export function generateMac(machineIdHex: string, machine: string, hashKey: Uint8Array, idx = 0): string {
  if (!/^[0-9a-f]{32}$/.test(machineIdHex)) throw new Error(`invalid machine id "${machineIdHex}"`);
  const name = new TextEncoder().encode(machine);
  const data = new Uint8Array(16 + name.length + (idx > 0 ? 8 : 0));
  data.set(key(machineIdHex), 0);
  data.set(name, 16);
  if (idx > 0) new DataView(data.buffer).setBigUint64(16 + name.length, BigInt(idx), true);
  const h = siphash24(data, hashKey);
  const mac: number[] = [];
  for (let i = 0; i < 6; i++) mac.push(Number((h >> BigInt(8 * i)) & 0xffn));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Host side of the main veth: ve-NAME, or vb-NAME when it joins a bridge or zone. */
export function vethHostName(machine: string, bridged: boolean): string {
  return shortenIfname(`${bridged ? "vb-" : "ve-"}${machine}`);
}

/** Zone bridge: vz-ZONE (zone names are at most 12 characters, so never shortened). */
export function zoneBridgeName(zone: string): string {
  return `vz-${zone}`;
}

/** `IF[:NAME]` of --network-interface/--network-macvlan/--network-ipvlan: (host interface, name inside). */
export function interfacePair(spec: string, prefix: string): { host: string; inside: string } {
  const i = spec.indexOf(":");
  const host = i < 0 ? spec : spec.slice(0, i);
  const given = i < 0 ? "" : spec.slice(i + 1);
  return { host, inside: shortenIfname(given !== "" ? given : `${prefix}${host}`) };
}
