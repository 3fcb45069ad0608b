/**
 * Containers of machina-oci (its state directory, $MACHINA_OCI_ROOT or /run/machina-oci) as
 * machines of `machinactl list/status/kill/terminate`, class "oci": podman's, containerd's and
 * Kubernetes' containers run by machina show up beside machina's own. They have no supervisor;
 * their lifecycle belongs to the runtime's caller (conmon, the shim), so terminate kills their
 * processes and leaves the state for the caller's `delete`.
 */
import { type Host, isPermissionError } from "../host/host.ts";
import { defaultRoot, listIds, readState, status, type StoredState } from "../oci-runtime/state.ts";
import { type Confinement, parseConfinement } from "../spec/confinement.ts";
import { controlGroupOf, type Machine } from "./machines.ts";

export const OCI_CLASS = "oci";

function toMachine(st: StoredState, cgMount: string | undefined): Machine {
  const cgroupDir = st.cgroups[0] ?? "";
  const controlGroup = controlGroupOf(cgroupDir, cgMount);
  const created = Date.parse(st.created);
  return {
    name: st.machine,
    class: OCI_CLASS,
    service: "machina-oci",
    state: "running",
    leader: st.pid,
    supervisor: 0,
    root: st.rootfs,
    uuid: "",
    boot: false,
    timestampUsec: Number.isNaN(created) ? 0 : created * 1000,
    timestampMonotonicUsec: 0,
    cgroupDir,
    controlGroup,
    unit: controlGroup.split("/").pop() ?? "",
    cgroups: st.cgroups,
    os: "",
    version: "",
    architecture: "",
    emulated: false,
    ...(st.selinuxContext !== undefined ? { selinuxContext: st.selinuxContext } : {}),
  };
}

/** The running (and with `all`, created or paused) containers of machina-oci's default state directory. */
export function ociMachines(host: Host, cgMount: string | undefined, all: boolean): Machine[] {
  const root = defaultRoot(host.env());
  const out: Machine[] = [];
  let ids: string[];
  try {
    ids = listIds(host, root);
  } catch (e) {
    if (isPermissionError(e)) return out; // another user than root: machina-oci's state is root's (0700)
    throw e;
  }
  for (const id of ids) {
    let st: StoredState;
    try {
      st = readState(host, root, id);
    } catch {
      continue; // being created or deleted right now, or not ours
    }
    const s = status(host, root, st);
    if (s === "stopped" || (s !== "running" && !all)) continue;
    out.push(toMachine(st, cgMount));
  }
  return out;
}

/**
 * The confinement machina-oci recorded when it created the container whose init is `m`'s leader
 * (its state.json, as `machina-oci exec` reads it): what `machinactl shell/exec/login` confine an
 * entered process with. Undefined when no state of machina-oci names it (or has none valid).
 */
export function ociConfinement(host: Host, m: Pick<Machine, "name" | "leader">): Confinement | undefined {
  const root = defaultRoot(host.env());
  for (const id of listIds(host, root)) {
    let st: StoredState;
    try {
      st = readState(host, root, id);
    } catch {
      continue;
    }
    if (st.machine === m.name && st.pid === m.leader) return parseConfinement(st.confinement);
  }
  return undefined;
}
