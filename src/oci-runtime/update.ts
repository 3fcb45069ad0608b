/**
 * machina-oci update: new linux.resources for a container's cgroups, as runc's
 * `update --resources FILE|-` and its flags. Values are converted as at create, by the same table
 * (settings/oci-config.ts ociCgroupValues: cpu.shares → cpu.weight, quota/period → cpu.max,
 * memory.swap is memory+swap → memory.swap.max; the v1 files where the controller is a v1
 * hierarchy); in cgroup v2 the controllers are enabled from the root down to the container's
 * parent first. What cannot be expressed is refused naming the field.
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { parseCgroupLayout } from "../host/facts.ts";
import { cgroup2Mount } from "../machine/machines.ts";
import { ociCgroupValues, OciResourcesSchemaOf, type OciResources } from "../settings/oci-config.ts";
import { V1_HIERARCHY, type CgroupController, type CgroupValue } from "../settings/settings.ts";
import { readState, status, writeState } from "./state.ts";
import { jsonValue, validated } from "../json.ts";

export type Resources = OciResources;

export function parseResources(text: string, where: string): Resources {
  return validated(OciResourcesSchemaOf(), jsonValue(text, where, { value: where }), where, { value: where });
}

/**
 * The values for `r` (Pure): the same table machina-oci creates a container with
 * (settings/oci-config.ts ociCgroupValues), where a 0 (and an absent field) leaves a value
 * as it is; then linux.resources.unified's files (cgroup v2 only).
 */
export function resourceWrites(r: Resources): CgroupValue[] {
  const fail = (field: string, what: string): never => {
    throw new MachinaError("E_INVALID", `${field}: ${what}`, { value: field });
  };
  // for update a 0 leaves the value as it is (pids.limit 0 would be "max" at create, swappiness 0 a value)
  const unchanged = {
    ...(r.pids !== undefined && r.pids.limit === 0 ? { pids: undefined } : {}),
    ...(r.memory?.swappiness === 0 ? { memory: { ...r.memory, swappiness: undefined } } : {}),
  };
  const out = ociCgroupValues({ ...r, ...unchanged }, fail, "");
  if (r.blockIO !== undefined) throw new MachinaError("E_UNSUPPORTED", "blockIO updates are not supported by machina-oci", { value: "blockIO" });
  if (r.hugepageLimits !== undefined && r.hugepageLimits.length > 0)
    throw new MachinaError("E_UNSUPPORTED", "hugepageLimits are not supported by machina-oci", { value: "hugepageLimits" });
  for (const [file, value] of Object.entries(r.unified ?? {})) {
    if (!/^[a-z]+\.[a-z0-9_.]+$/.test(file) || file.startsWith("cgroup."))
      throw new MachinaError("E_INVALID", `unified: "${file}" is not a controller's file`, { value: file });
    const controller = file.slice(0, file.indexOf("."));
    if (!(CONTROLLERS as readonly string[]).includes(controller))
      throw new MachinaError("E_UNSUPPORTED", `unified: "${file}": the ${controller} controller is not one machina-oci sets (${CONTROLLERS.join(", ")})`, {
        value: file,
      });
    out.push({ controller: controller as CgroupController, field: `unified.${file}`, v2: [file, value], v1: [] });
  }
  return out;
}

const CONTROLLERS = Object.keys(V1_HIERARCHY) as CgroupController[];

/**
 * Apply the values to container ID's cgroup: in cgroup v2 where the controller is there
 * (enabled in each ancestor first), else (a hybrid host) in the controller's v1 hierarchy — the
 * container's directory there when it was created with one, else at the same path as its
 * cgroup2 directory, which the container's processes are then moved into (recorded for delete;
 * a new cpuset gets its parent's cpus and mems first).
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
  const v1Mounts = parseCgroupLayout(host.mountinfo()).v1Controllers;
  const enabled = new Set<string>();
  let changed = false;
  for (const w of writes) {
    if (v2.has(w.controller)) {
      if (w.v2 === undefined) throw new MachinaError("E_UNSUPPORTED", `${w.field} has no cgroup v2 equivalent`, { value: w.field });
      if (!enabled.has(w.controller)) {
        enabled.add(w.controller);
        const parts = rel.split("/").filter((p) => p !== "");
        for (let i = 0; i < parts.length; i++) {
          const dir = [mount, ...parts.slice(0, i)].join("/");
          const have = (host.readFile(`${dir}/cgroup.subtree_control`) ?? "").split(/\s+/);
          if (!have.includes(w.controller)) host.writeFile(`${dir}/cgroup.subtree_control`, `+${w.controller}`);
        }
      }
      host.writeFile(`${cg}/${w.v2[0]}`, w.v2[1]);
      continue;
    }
    const hierarchy = v1Mounts[V1_HIERARCHY[w.controller]];
    if (hierarchy === undefined)
      throw new MachinaError("E_UNSUPPORTED", `${w.field}: the ${w.controller} controller is neither in cgroup v2 nor a v1 hierarchy on this host`, {
        value: w.field,
      });
    if (w.v1.length === 0)
      throw new MachinaError("E_UNSUPPORTED", `${w.field}: the ${w.controller} controller is a cgroup v1 hierarchy here and has no such file`, {
        value: w.field,
      });
    let dir = st.cgroups.find((c) => c.startsWith(`${hierarchy}/`));
    if (dir === undefined) {
      dir = `${hierarchy}${rel}`;
      host.mkdirp(dir, 0o755);
      if (w.controller === "cpuset")
        for (const f of ["cpuset.cpus", "cpuset.mems"]) host.writeFile(`${dir}/${f}`, host.readFile(`${hierarchy}/${f}`)?.trim() ?? "");
      for (const pid of (host.readFile(`${cg}/cgroup.procs`) ?? "").split("\n").filter((l) => l !== "")) host.writeFile(`${dir}/cgroup.procs`, pid);
      st.cgroups.push(dir);
      changed = true;
    }
    for (const [file, value] of w.v1) host.writeFile(`${dir}/${file}`, value);
  }
  if (changed) writeState(host, root, st);
}
