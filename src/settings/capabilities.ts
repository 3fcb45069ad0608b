/** Linux capability names and numbers, and systemd-nspawn's default retained set. Pure. */
import { invalid } from "./values.ts";
import type { ErrorContext } from "../errors.ts";

export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

export type CapabilityName = (typeof CAPABILITIES)[number];

/** What systemd-nspawn keeps in the bounding set by default. */
export const NSPAWN_DEFAULT_CAPS: readonly CapabilityName[] = [
  "CAP_AUDIT_CONTROL",
  "CAP_AUDIT_WRITE",
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_IPC_OWNER",
  "CAP_KILL",
  "CAP_LEASE",
  "CAP_LINUX_IMMUTABLE",
  "CAP_MKNOD",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_RAW",
  "CAP_SETFCAP",
  "CAP_SETGID",
  "CAP_SETPCAP",
  "CAP_SETUID",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_CHROOT",
  "CAP_SYS_NICE",
  "CAP_SYS_PTRACE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TTY_CONFIG",
];

export function capabilityNumber(name: CapabilityName): number {
  return CAPABILITIES.indexOf(name);
}

/** Accepts `CAP_SYS_ADMIN`, `sys_admin`, `SYS_ADMIN`. */
export function parseCapabilityName(value: string, ctx: ErrorContext): CapabilityName {
  const upper = value.trim().toUpperCase();
  const name = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if ((CAPABILITIES as readonly string[]).includes(name)) return name as CapabilityName;
  throw invalid(ctx, value, "a capability name such as CAP_NET_ADMIN (see --capability=help)");
}

/** A comma-separated list (`CAP_A,CAP_B`), or `all`. */
export function parseCapabilityList(value: string, ctx: ErrorContext): CapabilityName[] | "all" {
  if (value.trim().toLowerCase() === "all") return "all";
  const items = value.split(/[,\s]+/).filter((s) => s.length > 0);
  if (items.length === 0) throw invalid(ctx, value, "a list of capability names, or 'all'");
  return items.map((item) => parseCapabilityName(item, ctx));
}

/** Bit mask as a lower-case hex string without prefix (bit n = capability n). */
export function capabilityMask(names: Iterable<CapabilityName>): string {
  let mask = 0n;
  for (const name of names) mask |= 1n << BigInt(capabilityNumber(name));
  return mask.toString(16);
}
