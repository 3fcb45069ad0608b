/**
 * The container's device policy, as systemd-nspawn gets it from systemd when it registers the
 * machine: DevicePolicy=closed — only the API pseudo devices — plus nspawn's
 * DeviceAllow=/dev/net/tun rwm and char-pts rw. Without it a container's root (with CAP_MKNOD)
 * could create a node for a host disk or /dev/kmsg and use it. Pure.
 *
 * Where the helper makes the container's cgroup2 directory (placements "scope" and
 * "delegated") it attaches a BPF device program built from these rules (`device_policy`,
 * `device_allow`, native/devices.c); with "machined" systemd applies the same policy to the
 * scope it creates (CreateMachine's DevicePolicy/DeviceAllow properties, spec/register.ts).
 */
export interface DeviceRule {
  type: "c" | "b";
  major: number;
  /** undefined: every minor. */
  minor: number | undefined;
  access: "rwm" | "rw";
}

/** What DevicePolicy=closed always allows, then nspawn's DeviceAllow= list. */
export const DEVICE_ALLOW: readonly DeviceRule[] = [
  { type: "c", major: 1, minor: 3, access: "rwm" }, // /dev/null
  { type: "c", major: 1, minor: 5, access: "rwm" }, // /dev/zero
  { type: "c", major: 1, minor: 7, access: "rwm" }, // /dev/full
  { type: "c", major: 1, minor: 8, access: "rwm" }, // /dev/random
  { type: "c", major: 1, minor: 9, access: "rwm" }, // /dev/urandom
  { type: "c", major: 5, minor: 0, access: "rwm" }, // /dev/tty
  { type: "c", major: 5, minor: 2, access: "rwm" }, // /dev/ptmx
  { type: "c", major: 0, minor: 0, access: "rwm" }, // /run/host/inaccessible/chr
  { type: "b", major: 0, minor: 0, access: "rwm" }, // /run/host/inaccessible/blk
  { type: "c", major: 10, minor: 200, access: "rwm" }, // /dev/net/tun (nspawn's DeviceAllow)
  { type: "c", major: 136, minor: undefined, access: "rw" }, // char-pts (nspawn's DeviceAllow)
];

/** CreateMachine's scope properties for the same policy (busctl's `a(sv)` items). */
export const MACHINED_DEVICE_PROPERTIES: readonly string[][] = [
  ["DevicePolicy", "s", "closed"],
  ["DeviceAllow", "a(ss)", "2", "/dev/net/tun", "rwm", "char-pts", "rw"],
];

/** The helper's `device_allow` arguments of a rule. */
export function deviceAllowArgs(r: DeviceRule): string[] {
  return [r.type, String(r.major), r.minor === undefined ? "*" : String(r.minor), r.access];
}
