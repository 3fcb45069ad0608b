/**
 * machina-oci update: new linux.resources for a container's cgroup (cgroup v2), as runc's
 * `update --resources FILE|-` and its flags. Values are converted as runc and crun convert them
 * (cpu.shares → cpu.weight, quota/period → cpu.max, memory.swap is memory+swap → memory.swap.max);
 * the controllers are enabled from the root down to the container's parent first. What cgroup v2
 * cannot express is refused naming the field.
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { lazySchemas } from "../lazy-zod.ts";
import type { z } from "zod";
import { cgroup2Mount } from "../machine/machines.ts";
import { readState, status, writeState } from "./state.ts";

const updateSchemas = lazySchemas((z) => {
  const n = z.number().int();
  return {
    Resources: z
      .object({
        memory: z
          .object({
            limit: n.optional(),
            reservation: n.optional(),
            swap: n.optional(),
            kernel: n.optional(),
            kernelTCP: n.optional(),
            swappiness: n.optional(),
          })
          .passthrough()
          .optional(),
        cpu: z
          .object({
            shares: n.optional(),
            quota: n.optional(),
            period: n.optional(),
            cpus: z.string().optional(),
            mems: z.string().optional(),
            realtimeRuntime: n.optional(),
            realtimePeriod: n.optional(),
          })
          .passthrough()
          .optional(),
        pids: z.object({ limit: n }).optional(),
        blockIO: z.unknown().optional(),
        hugepageLimits: z.array(z.unknown()).optional(),
        unified: z.record(z.string(), z.string()).optional(),
      })
      .passthrough(),
  };
});
export type Resources = z.infer<ReturnType<typeof updateSchemas>["Resources"]>;

export function parseResources(text: string, where: string): Resources {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new MachinaError("E_INVALID", `${where}: not JSON (${(e as Error).message})`, { value: where });
  }
  const r = updateSchemas().Resources.safeParse(json);
  if (!r.success) throw new MachinaError("E_INVALID", `${where}: ${r.error.issues[0]!.path.join(".")}: ${r.error.issues[0]!.message}`, { value: where });
  return r.data;
}

/** The cgroup v2 files (relative to the container's cgroup) and values for `r`. Pure. */
export function resourceWrites(r: Resources): Array<{ controller: string; file: string; value: string }> {
  const out: Array<{ controller: string; file: string; value: string }> = [];
  const m = r.memory;
  if (m !== undefined) {
    if (m.limit !== undefined && m.limit !== 0) out.push({ controller: "memory", file: "memory.max", value: m.limit < 0 ? "max" : String(m.limit) });
    if (m.reservation !== undefined && m.reservation !== 0)
      out.push({ controller: "memory", file: "memory.low", value: m.reservation < 0 ? "max" : String(m.reservation) });
    if (m.swap !== undefined && m.swap !== 0) {
      // runtime-spec: memory+swap; cgroup v2: swap alone
      if (m.swap < 0) out.push({ controller: "memory", file: "memory.swap.max", value: "max" });
      else {
        if (m.limit === undefined || m.limit <= 0 || m.swap < m.limit)
          throw new MachinaError("E_INVALID", "memory.swap (memory+swap) needs memory.limit, and may not be below it", { value: "memory.swap" });
        out.push({ controller: "memory", file: "memory.swap.max", value: String(m.swap - m.limit) });
      }
    }
    for (const k of ["kernel", "kernelTCP", "swappiness"] as const)
      if (m[k] !== undefined && m[k] !== 0) throw new MachinaError("E_UNSUPPORTED", `memory.${k} has no cgroup v2 equivalent`, { value: `memory.${k}` });
  }
  const c = r.cpu;
  if (c !== undefined) {
    if (c.shares !== undefined && c.shares !== 0) {
      if (c.shares < 2 || c.shares > 262144)
        throw new MachinaError("E_INVALID", `cpu.shares ${c.shares} is out of range (2 to 262144)`, { value: "cpu.shares" });
      out.push({ controller: "cpu", file: "cpu.weight", value: String(1 + Math.floor(((c.shares - 2) * 9999) / 262142)) });
    }
    if ((c.quota !== undefined && c.quota !== 0) || (c.period !== undefined && c.period !== 0)) {
      const period = c.period !== undefined && c.period > 0 ? c.period : 100000;
      out.push({ controller: "cpu", file: "cpu.max", value: `${c.quota === undefined || c.quota <= 0 ? "max" : c.quota} ${period}` });
    }
    if (c.cpus !== undefined && c.cpus !== "") out.push({ controller: "cpuset", file: "cpuset.cpus", value: c.cpus });
    if (c.mems !== undefined && c.mems !== "") out.push({ controller: "cpuset", file: "cpuset.mems", value: c.mems });
    if ((c.realtimeRuntime ?? 0) !== 0 || (c.realtimePeriod ?? 0) !== 0)
      throw new MachinaError("E_UNSUPPORTED", "cpu.realtimeRuntime/realtimePeriod have no cgroup v2 equivalent", { value: "cpu.realtimeRuntime" });
  }
  if (r.pids !== undefined && r.pids.limit !== 0) out.push({ controller: "pids", file: "pids.max", value: r.pids.limit < 0 ? "max" : String(r.pids.limit) });
  if (r.blockIO !== undefined) throw new MachinaError("E_UNSUPPORTED", "blockIO updates are not supported by machina-oci", { value: "blockIO" });
  if (r.hugepageLimits !== undefined && r.hugepageLimits.length > 0)
    throw new MachinaError("E_UNSUPPORTED", "hugepageLimits are not supported by machina-oci", { value: "hugepageLimits" });
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (!/^[a-z]+\.[a-z0-9_.]+$/.test(file) || file.startsWith("cgroup."))
      throw new MachinaError("E_INVALID", `unified: "${file}" is not a controller's file`, { value: file });
    out.push({ controller: file.slice(0, file.indexOf(".")), file, value });
  }
  return out;
}

/** cgroup v1 files for a v2 write, on hosts where the controller is a v1 hierarchy (hybrid). */
function v1Write(w: { controller: string; file: string; value: string }): Array<[string, string]> {
  const v = (x: string) => (x === "max" ? "-1" : x);
  switch (w.file) {
    case "memory.max":
      return [["memory.limit_in_bytes", v(w.value)]];
    case "memory.low":
      return [["memory.soft_limit_in_bytes", v(w.value)]];
    case "memory.swap.max":
      return []; // memory+swap needs swap accounting; left to memory.limit_in_bytes
    case "cpu.weight":
      return [["cpu.shares", String(Math.max(2, Math.round(2 + ((Number(w.value) - 1) * 262142) / 9999)))]];
    case "cpu.max": {
      const [quota, period] = w.value.split(" ");
      return [
        ["cpu.cfs_period_us", period!],
        ["cpu.cfs_quota_us", quota === "max" ? "-1" : quota!],
      ];
    }
    case "pids.max":
      return [["pids.max", w.value]];
    default:
      if (w.controller === "cpuset") return [[w.file, w.value]];
      throw new MachinaError("E_UNSUPPORTED", `${w.file}: the ${w.controller} controller is a cgroup v1 hierarchy here and has no such file`, {
        value: w.file,
      });
  }
}

/**
 * Apply the writes to container ID's cgroup: in cgroup v2 where the controller is there (enabled
 * in each ancestor first), else (a hybrid host) in the controller's v1 hierarchy at the same
 * path, which the container's processes are moved into (it is recorded for delete).
 */
export function updateContainer(host: Host, root: string, id: string, r: Resources): void {
  const st = readState(host, root, id);
  if (status(host, root, st) === "stopped") throw new MachinaError("E_NOT_FOUND", `container "${id}" is not running`, { value: id });
  const cg = st.cgroups[0];
  if (cg === undefined) throw new MachinaError("E_UNSUPPORTED", `container "${id}" has no cgroup`, { value: id });
  const writes = resourceWrites(r);
  const mount = cgroup2Mount(host);
  if (mount === undefined || !cg.startsWith(`${mount}/`)) throw new MachinaError("E_UNSUPPORTED", `${cg} is not below a cgroup2 mount`, { path: cg });
  const rel = cg.slice(mount.length);
  const v2 = new Set((host.readFile(`${mount}/cgroup.controllers`) ?? "").split(/\s+/));
  const enabled = new Set<string>();
  let changed = false;
  for (const w of writes) {
    if (v2.has(w.controller)) {
      if (!enabled.has(w.controller)) {
        enabled.add(w.controller);
        const parts = rel.split("/").filter((p) => p !== "");
        for (let i = 0; i < parts.length; i++) {
          const dir = [mount, ...parts.slice(0, i)].join("/");
          const have = (host.readFile(`${dir}/cgroup.subtree_control`) ?? "").split(/\s+/);
          if (!have.includes(w.controller)) host.writeFile(`${dir}/cgroup.subtree_control`, `+${w.controller}`);
        }
      }
      host.writeFile(`${cg}/${w.file}`, w.value);
      continue;
    }
    const hierarchy = `/sys/fs/cgroup/${w.controller}`;
    if (host.lstat(`${hierarchy}/cgroup.procs`) !== "file")
      throw new MachinaError("E_UNSUPPORTED", `the ${w.controller} controller is neither in cgroup v2 nor a v1 hierarchy on this host`, {
        value: w.controller,
      });
    const dir = `${hierarchy}${rel}`;
    if (!st.cgroups.includes(dir)) {
      host.mkdirp(dir, 0o755);
      if (w.controller === "cpuset")
        for (const f of ["cpuset.cpus", "cpuset.mems"]) host.writeFile(`${dir}/${f}`, host.readFile(`${hierarchy}/${f}`)?.trim() ?? "");
      for (const pid of (host.readFile(`${cg}/cgroup.procs`) ?? "").split("\n").filter((l) => l !== "")) host.writeFile(`${dir}/cgroup.procs`, pid);
      st.cgroups.push(dir);
      changed = true;
    }
    for (const [file, value] of v1Write(w)) host.writeFile(`${dir}/${file}`, value);
  }
  if (changed) writeState(host, root, st);
}
