/**
 * machina-oci exec: a process (runtime-spec `process`, from --process or the command line) in a
 * running container, through `machina-helper enter` (native/SPEC.md "Enter spec"): it joins the
 * init's namespaces and cgroup and is confined exactly as the init was (the confinement recorded
 * at create), with the capability sets, no_new_privs and rlimits the process asks for. With
 * --detach the helper leaves it to the caller's subreaper and writes its pid to --pid-file.
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { type EnterRecord, enterConfinementRecords, targetNamespaces } from "../machine/enter.ts";
import { CAPABILITIES, type CapabilityName, capabilityMask } from "../settings/capabilities.ts";
import { OciProcessSchemaOf, type OciProcess } from "../settings/oci-config.ts";
import { RLIMITS } from "../settings/rlimits.ts";
import { parseConfinement } from "../spec/confinement.ts";
import { readState, status } from "./state.ts";
import { jsonValue, validated } from "../json.ts";

/** A --process file: the runtime-spec `process` object, validated. */
export function parseProcess(text: string, file: string): OciProcess {
  const p = validated(OciProcessSchemaOf(), jsonValue(text, file, { file }), file, { file });
  if (p.args === undefined || p.args.length === 0) throw new MachinaError("E_INVALID", `${file}: args: the process needs a command`, { file });
  return p;
}

function caps(list: string[] | undefined, field: string): CapabilityName[] | undefined {
  if (list === undefined) return undefined;
  for (const c of list)
    if (!(CAPABILITIES as readonly string[]).includes(c)) throw new MachinaError("E_INVALID", `${field}: unknown capability "${c}"`, { value: c });
  return list as CapabilityName[];
}

export interface ExecOptions {
  detach: boolean;
  pidFile?: string;
  consoleSocket?: string;
  ignorePaused?: boolean;
}

/** The enter spec of `proc` in container ID. */
export function execRecords(host: Host, root: string, id: string, proc: OciProcess, o: ExecOptions): EnterRecord[] {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  if (s === "stopped") throw new MachinaError("E_NOT_FOUND", `cannot exec in container "${id}": it is stopped`, { value: id });
  if (s === "paused" && !o.ignorePaused) throw new MachinaError("E_BUSY", `cannot exec in container "${id}": it is paused`, { value: id }, "resume it first");
  const c = parseConfinement(st.confinement);
  if (c === undefined) throw new MachinaError("E_INVALID", `container "${id}": its state has no valid confinement record`, { value: id });
  const terminal = proc.terminal === true;
  if (terminal && o.detach && o.consoleSocket === undefined)
    throw new MachinaError("E_USAGE", "a detached exec with a terminal needs --console-socket", { flag: "--console-socket" });
  const bounding = caps(proc.capabilities?.bounding, "process.capabilities.bounding");
  const ambient = caps(proc.capabilities?.ambient, "process.capabilities.ambient");
  // rlimits: the process's; those it does not name, the init's (enterConfinementRecords)
  const named = new Map<number, [number, string, string]>();
  for (const r of proc.rlimits ?? []) {
    const name = r.type.replace(/^RLIMIT_/, "");
    const res = RLIMITS[name];
    if (res === undefined) throw new MachinaError("E_INVALID", `process.rlimits: unknown resource limit "${r.type}"`, { value: r.type });
    const v = (n: number) => (n < 0 ? "infinity" : String(n));
    named.set(res, [res, v(r.soft), v(r.hard)]);
  }
  const confinement = {
    ...c,
    caps_bounding: bounding !== undefined ? capabilityMask(bounding) : c.caps_bounding,
    caps_ambient: ambient !== undefined ? capabilityMask(ambient) : c.caps_ambient,
    no_new_privs: proc.noNewPrivileges ?? c.no_new_privs,
    rlimits: [...named.values()],
  };
  const user = proc.user ?? { uid: 0, gid: 0 };
  const args = proc.args!;
  return [
    ["prog", ["machina-oci"]],
    ["target", [String(st.pid), st.pidStart]],
    ["namespaces", targetNamespaces(host, st.pid)],
    ...st.cgroups.slice(0, 1).map((g): EnterRecord => ["cgroup", [g]]),
    ...enterConfinementRecords(host, st.pid, confinement),
    ...(st.selinuxContext !== undefined ? [["selinux_context", [st.selinuxContext]] as EnterRecord] : []),
    ["user", [String(user.uid), String(user.gid), ...(user.additionalGids ?? []).map(String)]],
    ["env", proc.env ?? []],
    ["chdir", [proc.cwd]],
    ["console", [terminal ? "pty" : "pipe"]],
    ...(o.detach ? [["detach", [o.pidFile ?? "-"]] as EnterRecord] : []),
    ...(o.consoleSocket !== undefined ? [["console_socket", [o.consoleSocket]] as EnterRecord] : []),
    ["exec", [args[0]!, args[0]!]],
    ["args", args.slice(1)],
  ];
}
