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
import type { Settings } from "../settings/settings.ts";

export interface DeviceRule {
  /** "a": any type (then major and minor are wildcards too, as in cgroup v1's devices.allow). */
  type: "c" | "b" | "a";
  /** undefined: every major. */
  major: number | undefined;
  /** undefined: every minor. */
  minor: number | undefined;
  /** One or more of r, w, m, each once. */
  access: string;
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
  return [r.type, r.major === undefined ? "*" : String(r.major), r.minor === undefined ? "*" : String(r.minor), r.access];
}

/** A rule as cgroup v1's devices.allow and devices.list write it ("c 1:3 rwm", "a *:* rwm"). */
export function deviceRuleV1(r: DeviceRule): string {
  const [type, major, minor, access] = deviceAllowArgs(r);
  return `${type} ${major}:${minor} ${access}`;
}

/** linux.devices are allowed to the container as runc allows them (rwm): the config asked for those nodes. */
export function ociNodeRules(nodes: Settings["ociDevices"]): DeviceRule[] {
  return (nodes ?? [])
    .filter((d) => (d.mode & 0o170000) !== 0o010000)
    .map((d) => ({ type: (d.mode & 0o170000) === 0o060000 ? "b" : "c", major: d.major, minor: d.minor, access: "rwm" }));
}

/**
 * Everything the container may use, in the order cgroup v1's devices.allow gets it: the
 * config's linux.resources.devices rules (machina-oci), machina's standard nodes, then the
 * nodes of linux.devices.
 */
export function containerDeviceRules(settings: Pick<Settings, "ociDeviceRules" | "ociDevices">): DeviceRule[] {
  return [...(settings.ociDeviceRules ?? []), ...DEVICE_ALLOW, ...ociNodeRules(settings.ociDevices)];
}
