/**
 * Resource controls (--property=, -S/--slice=): where the machine's cgroups go and which
 * controller files get which values. Pure: host facts say which controllers exist where.
 *
 * cgroup v2 (pure v2 hosts, or the unified hierarchy of a hybrid host when it has the
 * controller): memory.max, memory.high, pids.max, cpu.max, cpu.weight, io.weight in the
 * machine's scope, with the controller enabled in every parent's cgroup.subtree_control.
 * cgroup v1 (hybrid/legacy hosts): memory.limit_in_bytes, memory.soft_limit_in_bytes, pids.max,
 * cpu.cfs_quota_us + cpu.cfs_period_us, cpu.shares, blkio.bfq.weight (or blkio.weight), in a
 * scope of the same name in that controller's hierarchy, which the container then also joins.
 * v1 scopes go below the cgroup machina-nspawn itself runs in there (usually "/"), so that a
 * container never leaves a limit its caller is under — except machina-oci's absolute
 * linux.cgroupsPath, which is taken from each hierarchy's root, as runc takes it.
 * machina-oci's linux.resources come exact (settings.ociResources: the v1 cpu.rt_*, cpuset.*
 * files too, v2 or v1 by where the controller is), and its linux.resources.devices rules also
 * go to a v1 devices hierarchy when the host has one (devices.deny a, then each allowed rule).
 *
 * Where the machine's cgroup2 directory is (cgroupPlacement), as systemd-nspawn places it:
 * - "scope": `machine.slice/machine-NAME.scope` (or --slice=), created by the helper — hosts
 *   without systemd, and systemd hosts with --register=no and no --keep-unit;
 * - "delegated": --keep-unit on a systemd host: inside the unit machina-nspawn runs in (the
 *   template has Delegate=yes): the helper moves itself to `OWN/supervisor` and the container
 *   goes to `OWN/payload`, so systemd knows every process and stops them with the unit;
 * - "machined": a systemd host without --keep-unit, registered: systemd-machined's
 *   CreateMachine creates the scope unit `machine-NAME.scope` in the slice and moves the leader
 *   in (the helper's on_leader, spec/register.ts); the helper makes no cgroup2 directory.
 */
import { invalidError } from "../errors.ts";
import type { HostFacts } from "../host/facts.ts";
import { escapeUnitName } from "../settings/machine-name.ts";
import { V1_HIERARCHY, type CgroupController, type CgroupValue, type Settings } from "../settings/settings.ts";
import { containerDeviceRules, deviceRuleV1 } from "./devices.ts";
import { SIZE_SYNTAX, U64_MAX, readSize } from "../settings/size.ts";

export const SUPPORTED_PROPERTIES = ["MemoryMax", "MemoryHigh", "TasksMax", "CPUQuota", "CPUWeight", "IOWeight"] as const;
type Property = (typeof SUPPORTED_PROPERTIES)[number];

export interface CgroupSet {
  /** Host path of a cgroup file. */
  path: string;
  value: string;
}

export interface ResourcePlan {
  /** Cgroup directories the helper creates and puts the container in. */
  cgroups: string[];
  sets: CgroupSet[];
  /** The container's cgroup2 directory (reported in state.json; made by systemd in "machined"). */
  cgroup: string;
  placement: Placement;
  /** "delegated": the cgroup the supervisor moves itself into. */
  supervisorCgroup?: string;
}

export type Placement = "scope" | "delegated" | "machined";

/** How the container is registered with systemd-machined, if at all (nspawn's --register, --keep-unit). */
export function machinedRegistration(settings: Settings, host: HostFacts): "register" | "create" | undefined {
  const sd = host.systemd;
  if (!settings.register || !sd.booted || !sd.machined || sd.busctl === undefined) return undefined;
  return settings.keepUnit ? "register" : "create";
}

export function cgroupPlacement(settings: Settings, host: HostFacts): Placement {
  if (settings.keepUnit && host.systemd.booted && host.systemd.ownCgroup !== undefined) return "delegated";
  return machinedRegistration(settings, host) === "create" ? "machined" : "scope";
}

const CPU_PERIOD_USEC = 100_000n;

/** `a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice`, as systemd nests slices. */
export function slicePath(slice: string): string {
  const base = slice.slice(0, -".slice".length);
  if (base === "-" || base === "") return "";
  const parts = base.split("-");
  const out: string[] = [];
  for (let i = 1; i <= parts.length; i++) out.push(`${parts.slice(0, i).join("-")}.slice`);
  return out.join("/");
}

/**
 * MemoryMax=/MemoryHigh=, as systemd's config_parse_memory_limit: "infinity", a percentage of
 * the host's memory (at most 100%, two decimals), or a size (settings/size.ts: a bare number is
 * bytes). 0 and 2^64-1 or more are out of range.
 */
function parseBytes(name: string, value: string, memTotal: bigint | undefined): bigint | "max" {
  const v = value.trim();
  if (v === "infinity") return "max";
  const pct = /^([0-9]+)(?:\.([0-9]{1,2}))?%$/.exec(v);
  let bytes: bigint | undefined;
  if (pct) {
    const permyriad = BigInt(pct[1]!) * 100n + BigInt((pct[2] ?? "").padEnd(2, "0"));
    if (permyriad > 10000n) throw invalidError(`${name}=${value}: a percentage is at most 100%`, { flag: "--property", value });
    if (memTotal === undefined) throw invalidError(`${name}=${value}: the host's memory size is unknown`, { flag: "--property", value });
    bytes = (memTotal * permyriad) / 10000n;
  } else {
    const r = readSize(v);
    if (r === "invalid") throw invalidError(`${name}=${value}: expected ${SIZE_SYNTAX}, a percentage, or "infinity"`, { flag: "--property", value });
    bytes = r === "range" ? U64_MAX : r;
  }
  if (bytes <= 0n || bytes >= U64_MAX)
    throw invalidError(`${name}=${value}: out of range (1 byte to 2^64-2 bytes, or "infinity")`, { flag: "--property", value });
  return bytes;
}

function parseWeight(name: string, value: string): number {
  const v = value.trim();
  if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > 10000)
    throw invalidError(`${name}=${value}: expected a weight from 1 to 10000`, { flag: "--property", value });
  return Number(v);
}

/** CPU time per second in µs from "N%" (may exceed 100%, may have decimals). */
function parseQuota(value: string): bigint {
  const m = /^([0-9]+)(?:\.([0-9]{1,2}))?%$/.exec(value.trim());
  if (!m || (m[1] === "0" && !/[1-9]/.test(m[2] ?? "")))
    throw invalidError(`CPUQuota=${value}: expected a percentage greater than 0, e.g. 20% or 150%`, { flag: "--property", value });
  const permyriad = BigInt(m[1]!) * 100n + BigInt((m[2] ?? "").padEnd(2, "0"));
  return (permyriad * 1_000_000n) / 10000n;
}

/** --property= values, then machina-oci's exact linux.resources (settings.ociResources). */
function wanted(settings: Settings, host: HostFacts): CgroupValue[] {
  const out: CgroupValue[] = [];
  const last = new Map<Property, string>();
  for (const p of settings.properties) {
    if (!(SUPPORTED_PROPERTIES as readonly string[]).includes(p.name))
      throw invalidError(`unsupported property "${p.name}"; supported: ${SUPPORTED_PROPERTIES.join(", ")}`, {
        flag: "--property",
        value: `${p.name}=${p.value}`,
      });
    last.set(p.name as Property, p.value);
  }
  for (const [name, value] of last) {
    switch (name) {
      case "MemoryMax": {
        const b = parseBytes(name, value, host.memTotal);
        out.push({ controller: "memory", field: name, v2: ["memory.max", String(b)], v1: [["memory.limit_in_bytes", b === "max" ? "-1" : String(b)]] });
        break;
      }
      case "MemoryHigh": {
        const b = parseBytes(name, value, host.memTotal);
        out.push({ controller: "memory", field: name, v2: ["memory.high", String(b)], v1: [["memory.soft_limit_in_bytes", b === "max" ? "-1" : String(b)]] });
        break;
      }
      case "TasksMax": {
        const v = value.trim();
        if (v !== "infinity" && !/^[0-9]+$/.test(v))
          throw invalidError(`TasksMax=${value}: expected a number of tasks or "infinity"`, { flag: "--property", value });
        if (v !== "infinity" && (BigInt(v) <= 0n || BigInt(v) >= U64_MAX))
          throw invalidError(`TasksMax=${value}: out of range (1 to 2^64-2, or "infinity")`, { flag: "--property", value });
        const n = v === "infinity" ? "max" : v;
        out.push({ controller: "pids", field: name, v2: ["pids.max", n], v1: [["pids.max", n]] });
        break;
      }
      case "CPUQuota": {
        const perSec = parseQuota(value);
        let quota = (perSec * CPU_PERIOD_USEC) / 1_000_000n;
        if (quota < 1000n) quota = 1000n;
        out.push({
          controller: "cpu",
          field: name,
          v2: ["cpu.max", `${quota} ${CPU_PERIOD_USEC}`],
          v1: [
            ["cpu.cfs_period_us", String(CPU_PERIOD_USEC)],
            ["cpu.cfs_quota_us", String(quota)],
          ],
        });
        break;
      }
      case "CPUWeight": {
        const w = parseWeight(name, value);
        const shares = Math.min(262144, Math.max(2, Math.floor((w * 1024) / 100)));
        out.push({ controller: "cpu", field: name, v2: ["cpu.weight", String(w)], v1: [["cpu.shares", String(shares)]] });
        break;
      }
      case "IOWeight": {
        const w = parseWeight(name, value);
        const blkio = Math.min(1000, Math.max(10, Math.floor((w * 500) / 100)));
        const file = host.cgroup.v1BlkioBfq ? "blkio.bfq.weight" : "blkio.weight";
        out.push({ controller: "io", field: name, v2: ["io.weight", `default ${w}`], v1: [[file, String(host.cgroup.v1BlkioBfq ? w : blkio)]] });
        break;
      }
    }
  }
  return [...out, ...(settings.ociResources ?? [])];
}

/**
 * The container's directory in a cgroup v1 hierarchy: below the cgroup machina runs in there,
 * or — machina-oci with an absolute linux.cgroupsPath — from the hierarchy's root, as runc.
 */
function v1Dir(settings: Settings, host: HostFacts, hierarchy: string, v1Rel: string): string | undefined {
  const mount = host.cgroup.v1Controllers[hierarchy];
  if (mount === undefined) return undefined;
  const own = settings.cgroupPathAbsolute ? "/" : (host.cgroup.v1Own[hierarchy] ?? "/");
  return `${mount}${own === "/" ? "" : own}/${v1Rel}`;
}

export function resourcePlan(settings: Settings, name: string, host: HostFacts): ResourcePlan {
  const placement = cgroupPlacement(settings, host);
  const v2 = host.cgroup.v2!;
  // rel: the machine's cgroup below the v2 mount; base: the part whose subtree_control we may write.
  let rel: string;
  let base = "";
  let v1Rel: string;
  let supervisorCgroup: string | undefined;
  if (placement === "delegated") {
    const own = host.systemd.ownCgroup === "/" ? "" : host.systemd.ownCgroup!.replace(/^\//, "");
    base = own;
    rel = own === "" ? "payload" : `${own}/payload`;
    supervisorCgroup = own === "" ? `${v2}/supervisor` : `${v2}/${own}/supervisor`;
    v1Rel = "payload";
  } else if (settings.cgroupPath !== undefined) {
    rel = settings.cgroupPath.replace(/^\/+/, "");
    v1Rel = rel;
  } else {
    const slice = slicePath(settings.slice ?? "machine.slice");
    rel = `${slice === "" ? "" : `${slice}/`}machine-${escapeUnitName(name)}.scope`;
    v1Rel = rel;
  }
  const cgroup = `${v2}/${rel}`;
  const cgroups = placement === "machined" ? [] : [cgroup];
  // The v1 name=systemd hierarchy is not joined: systemd (host or guest) tracks processes in
  // cgroup2 whenever there is one, and each extra migration costs a grace period (~3-10 ms).
  const sets: CgroupSet[] = [];
  const want = wanted(settings, host);
  const v2Controllers = new Set(host.cgroup.v2Controllers);
  const enabled = new Set<CgroupController>();
  for (const w of want) {
    if (v2Controllers.has(w.controller)) {
      if (w.v2 === undefined)
        throw invalidError(`${w.field}: cgroup v2 has no equivalent (the ${w.controller} controller is in cgroup v2 on this host)`, { value: w.field });
      if (!enabled.has(w.controller)) {
        enabled.add(w.controller);
        // Enable the controller from the root (or the delegated unit) down to the scope's parent.
        const parts = rel.split("/").slice(0, -1);
        const first = base === "" ? 0 : base.split("/").length;
        for (let i = first; i <= parts.length; i++) {
          const dir = [v2, ...parts.slice(0, i)].join("/");
          sets.push({ path: `${dir}/cgroup.subtree_control`, value: `+${w.controller}` });
        }
      }
      sets.push({ path: `${v2}/${rel}/${w.v2[0]}`, value: w.v2[1] });
      continue;
    }
    const dir = v1Dir(settings, host, V1_HIERARCHY[w.controller], v1Rel);
    if (dir === undefined)
      throw invalidError(`${w.field}: cannot be applied: this host has no ${w.controller} controller (neither in cgroup v2 nor as a v1 hierarchy)`, {
        value: w.field,
      });
    if (!cgroups.includes(dir)) cgroups.push(dir);
    for (const [file, value] of w.v1) sets.push({ path: `${dir}/${file}`, value });
  }
  // machina-oci's linux.resources.devices on a host with a v1 devices hierarchy: the container is
  // also placed there, as runc places it — everything denied, then the allowed rules in order
  // (the config's first), so devices.list lists them as given. The BPF program on cgroup2 holds
  // the same rules (spec/build.ts).
  const devicesDir = settings.ociDeviceRules !== undefined ? v1Dir(settings, host, "devices", v1Rel) : undefined;
  if (devicesDir !== undefined) {
    cgroups.push(devicesDir);
    sets.push({ path: `${devicesDir}/devices.deny`, value: "a" });
    for (const r of containerDeviceRules(settings)) sets.push({ path: `${devicesDir}/devices.allow`, value: deviceRuleV1(r) });
  }
  return { cgroups, sets, cgroup, placement, ...(supervisorCgroup !== undefined ? { supervisorCgroup } : {}) };
}
