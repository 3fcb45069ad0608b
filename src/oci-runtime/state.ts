/**
 * machina-oci's state directory, runc-like: ROOT/ID/ (0700) with `state.json` (what create
 * learnt: the init's pid and its start time, the bundle, the cgroup) and, between create and
 * start, `exec.fifo` (the init waits on it, native/SPEC.md "OCI runtime"). The status the
 * runtime-spec defines is derived from the system at every call, never stored: `created` while
 * the init is alive and the fifo exists, `paused` while its cgroup is frozen, `running`, and
 * `stopped` once the init is gone (or a zombie, or another process reused its pid).
 */
import type { z } from "zod";
import { machinaEnv } from "../config.ts";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { processRunning } from "../machine/proc-stat.ts";
import { lazySchemas } from "../lazy-zod.ts";
import { parseJson } from "../json.ts";

export const DEFAULT_ROOT = "/run/machina-oci";

/** The state directory when --root is not given: $MACHINA_OCI_ROOT, else DEFAULT_ROOT (machinactl lists it). */
export function defaultRoot(env: Readonly<Record<string, string | undefined>>): string {
  return machinaEnv(env, "MACHINA_OCI_ROOT") ?? DEFAULT_ROOT;
}

/** The runtime-spec version machina-oci reports (it reads 1.0.x to 1.2.x). */
export const OCI_VERSION = "1.2.0";

export type Status = "created" | "running" | "paused" | "stopped";

/** runc's rule for container ids ([\w+-.]), at most 1024 bytes, not "." or "..". */
const ID = /^[A-Za-z0-9_+.-]{1,1024}$/;

export function checkId(id: string): string {
  if (!ID.test(id) || id === "." || id === "..")
    throw new MachinaError("E_INVALID", `invalid container id "${id}": letters, digits, "_", "+", "-" and "." only (at most 1024)`, { value: id });
  return id;
}

const stateSchemas = lazySchemas((z) => ({
  StoredState: z.object({
    ociVersion: z.string(),
    id: z.string(),
    pid: z.number().int().positive(),
    /** the init's start time (/proc/PID/stat field 22): a reused pid is not ours */
    pidStart: z.string(),
    bundle: z.string(),
    rootfs: z.string(),
    created: z.string(),
    annotations: z.record(z.string(), z.string()),
    /** cgroup2 directories made for the container, removed by delete */
    cgroups: z.array(z.string()),
    /** the machine name the helper was given (messages, `machinactl list`) */
    machine: z.string(),
    /** what the init was confined with (src/spec/confinement.ts): exec confines its processes the same */
    confinement: z.unknown(),
    selinuxContext: z.string().optional(),
    /** startContainer hooks run by the init once started: start waits for their outcome (native/SPEC.md `oci_hook_state`) */
    startHooks: z.boolean().optional(),
    /** hooks delete and start run (the others run inside create) */
    hooks: z.object({
      poststart: z.array(
        z.object({ path: z.string(), args: z.array(z.string()).optional(), env: z.array(z.string()).optional(), timeout: z.number().optional() }),
      ),
      poststop: z.array(
        z.object({ path: z.string(), args: z.array(z.string()).optional(), env: z.array(z.string()).optional(), timeout: z.number().optional() }),
      ),
    }),
  }),
}));
export type StoredState = z.infer<ReturnType<typeof stateSchemas>["StoredState"]>;
export type Hook = StoredState["hooks"]["poststart"][number];

export const containerDir = (root: string, id: string) => `${root}/${checkId(id)}`;
export const fifoPath = (root: string, id: string) => `${containerDir(root, id)}/exec.fifo`;

export function readState(host: Host, root: string, id: string): StoredState {
  const path = `${containerDir(root, id)}/state.json`;
  const text = host.readFile(path);
  if (text === undefined) throw new MachinaError("E_NOT_FOUND", `container "${id}" does not exist`, { value: id });
  const st = parseJson(stateSchemas().StoredState, text);
  if (st === undefined) throw new MachinaError("E_INVALID", `${path}: not a state file of machina-oci`, { file: path });
  return st;
}

/** Written atomically (a temporary renamed over it). */
export function writeState(host: Host, root: string, st: StoredState): void {
  const dir = containerDir(root, st.id);
  const tmp = `${dir}/.state.json.${host.pid()}`;
  host.writeFile(tmp, `${JSON.stringify(st)}\n`, 0o600);
  host.rename(tmp, `${dir}/state.json`, false);
}

export function listIds(host: Host, root: string): string[] {
  if (host.lstat(root) !== "dir") return [];
  return host
    .readdir(root)
    .filter((n) => ID.test(n) && n !== "." && n !== ".." && host.lstat(`${root}/${n}/state.json`) === "file")
    .sort();
}

/** The init is alive: the same start time, and not a zombie. */
export function initAlive(host: Host, st: Pick<StoredState, "pid" | "pidStart">): boolean {
  return processRunning(host, st.pid, st.pidStart);
}

/** cgroup v2: frozen (cgroup.events "frozen 1"). */
export function frozen(host: Host, cgroup: string | undefined): boolean {
  if (cgroup === undefined) return false;
  return /^frozen 1$/m.test(host.readFile(`${cgroup}/cgroup.events`) ?? "");
}

export function status(host: Host, root: string, st: StoredState): Status {
  if (!initAlive(host, st)) return "stopped";
  if (host.lstat(fifoPath(root, st.id)) !== undefined) return "created";
  if (frozen(host, st.cgroups[0])) return "paused";
  return "running";
}

/** The runtime-spec state (what `state` prints). */
export function ociState(host: Host, root: string, st: StoredState): Record<string, unknown> {
  const s = status(host, root, st);
  return {
    ociVersion: st.ociVersion,
    id: st.id,
    pid: s === "stopped" ? 0 : st.pid,
    status: s,
    bundle: st.bundle,
    rootfs: st.rootfs,
    created: st.created,
    owner: "",
    ...(Object.keys(st.annotations).length > 0 ? { annotations: st.annotations } : {}),
  };
}
