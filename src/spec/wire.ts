/** Encodes a RunSpec in the wire format of native/SPEC.md (version 1). Pure. */
import { deviceAllowArgs } from "./devices.ts";
import { seccompRecords } from "./seccomp.ts";
import { rootSetupRecords } from "./root-modes.ts";
import type { RunSpec, SetupOp } from "./types.ts";

export const SPEC_VERSION = 1;

const octal = (mode: number) => "0" + mode.toString(8);
const limit = (v: bigint | "infinity") => (v === "infinity" ? "infinity" : v.toString());
const flag = (b: boolean) => (b ? "1" : "0");

function opRecord(op: SetupOp): [string, string[]] {
  switch (op.op) {
    case "mount":
      return ["mount", [op.source, op.target, op.fstype, String(op.flags), op.data, op.create]];
    case "rebind":
      return ["rebind", [op.target, String(op.flags), flag(op.optional)]];
    case "mkdir":
      return ["mkdir", [op.path, octal(op.mode)]];
    case "mknod":
      return ["mknod", [op.path, octal(op.mode), String(op.major), String(op.minor)]];
    case "symlink":
      return ["symlink", [op.target, op.path]];
    case "write":
      return ["write", [op.path, octal(op.mode), op.content]];
    case "copy":
      return ["copy", [op.source, op.path, octal(op.mode)]];
    case "remove":
      return ["remove", [op.path]];
    case "mask":
      return ["mask", [op.path]];
    case "cgroupns":
      return ["cgroupns", []];
    case "notify":
      return ["notify", [op.path]];
    case "fsmount":
      return ["fsmount", [op.fstype, op.target, String(op.flags), op.data]];
    case "idmapBind":
      return ["idmap_bind", [op.source, op.target, String(op.flags), op.create, String(op.from), String(op.to), String(op.count)]];
    case "overlay":
      return ["overlay", [op.target, String(op.flags), op.upper, op.work, ...op.lower]];
  }
}

/** The spec as a list of records (name, args), in wire order. */
export function specRecords(spec: RunSpec): Array<[string, string[]]> {
  const r: Array<[string, string[]]> = [];
  const add = (name: string, ...args: string[]) => r.push([name, args]);
  add("prog", spec.prog);
  add("machine", spec.machine);
  add("root", spec.root);
  add("read_only", flag(spec.readOnly));
  add("namespaces", ...spec.namespaces);
  if (spec.hostname !== undefined) add("hostname", spec.hostname);
  if (spec.statusFd !== undefined) add("status_fd", String(spec.statusFd));
  if (spec.registry !== undefined) add("registry", spec.registry);
  if (spec.stateJson !== undefined) add("state_json", spec.stateJson);
  for (const l of spec.imageLocks ?? []) add("image_lock", l.path, l.mode, l.image);
  if (spec.supervisorCgroup !== undefined) add("supervisor_cgroup", spec.supervisorCgroup);
  for (const cg of spec.cgroups) add("cgroup", cg);
  if (spec.onLeader !== undefined && spec.onLeader.length > 0) add("on_leader", ...spec.onLeader);
  if (spec.rootSetup) r.push(...rootSetupRecords(spec.rootSetup));
  if (spec.netns !== undefined) add("netns", spec.netns);
  if (spec.ipcns !== undefined) add("ipcns", spec.ipcns);
  if (spec.mntns !== undefined) add("mntns", spec.mntns);
  if (spec.pidns !== undefined) add("pidns", spec.pidns);
  if (spec.utsns !== undefined) add("utsns", spec.utsns);
  for (const [name, ...args] of spec.netOps ?? []) add(name!, ...args);
  if (spec.prestart !== undefined && spec.prestart.length > 0) add("prestart", ...spec.prestart);
  if (spec.prestartUnlessTable !== undefined) add("prestart_unless_table", ...spec.prestartUnlessTable);
  if (spec.onExit !== undefined && spec.onExit.length > 0) add("on_exit", ...spec.onExit);
  if (spec.onExitDetach === true) add("on_exit_detach", "1");
  if (spec.exitMark !== undefined) add("exit_mark", spec.exitMark);
  for (const m of spec.hostUmounts ?? []) add("host_umount", m);
  if (spec.devicePolicy !== undefined) {
    add("device_policy", spec.devicePolicy.cgroup);
    for (const r of spec.devicePolicy.allow) add("device_allow", ...deviceAllowArgs(r));
  }
  for (const m of spec.hostRemoves ?? []) add("host_remove", m);
  for (const h of spec.hostRecords ?? []) add("host_record", h.path, h.body);
  for (const l of spec.hostRecordLinks ?? []) add("host_record_link", l.target, l.path);
  for (const c of spec.cgroupSets) add("cgroup_set", c.path, c.value);
  add("kill_signal", String(spec.killSignal));
  add("boot", flag(spec.boot));
  add("on_reboot", spec.onReboot);
  add("notify_ready", flag(spec.notifyReady));
  if (spec.notifyForward !== undefined) add("notify_forward", spec.notifyForward);
  add("console", spec.console);
  add("quiet", flag(spec.quiet));
  add("console_opost", flag(spec.consoleOpost));
  if (spec.umask !== undefined) add("umask", spec.umask.toString(8));
  if (spec.rootPropagation !== undefined) add("root_propagation", String(spec.rootPropagation));
  if (spec.oci !== undefined) {
    add("oci_detach", flag(spec.oci.detach));
    add("exec_fifo", spec.oci.execFifo);
    if (spec.oci.consoleSocket !== undefined) add("console_socket", spec.oci.consoleSocket);
    for (const h of spec.oci.hooks ?? []) add("oci_hook", h.stage, h.path, String(h.timeout), String(h.argv.length), ...h.argv, ...h.env);
    for (const [stage, body] of Object.entries(spec.oci.hookState ?? {})) add("oci_hook_state", stage, body);
  }
  if (spec.consoleLog !== undefined) add("console_log", spec.consoleLog.path, String(spec.consoleLog.maxBytes), String(spec.consoleLog.keep));
  if (spec.userns) {
    const u = spec.userns;
    for (const l of u.uidMap) add("uid_map", String(l.inside), String(l.outside), String(l.count));
    for (const l of u.gidMap) add("gid_map", String(l.inside), String(l.outside), String(l.count));
    add("cgroup_owner", String(u.cgroupOwner.uid), String(u.cgroupOwner.gid));
    if (u.lock !== undefined) add("userns_lock", u.lock);
    if (u.chownRoot) add("chown_root", String(u.chownRoot.base), String(u.chownRoot.count));
    if (u.idmapRoot) add("idmap_root", String(u.idmapRoot.base), String(u.idmapRoot.count));
  }
  for (const op of spec.ops) r.push(opRecord(op));
  add("env", ...spec.env);
  if (spec.chdir !== undefined) add("chdir", spec.chdir);
  add("caps_bounding", spec.capsBounding);
  add("caps_ambient", spec.capsAmbient);
  for (const l of spec.rlimits) add("rlimit", String(l.resource), limit(l.soft), limit(l.hard), l.mode);
  add("no_new_privs", flag(spec.noNewPrivs));
  if (spec.user) add("user", String(spec.user.uid), String(spec.user.gid), ...spec.user.groups.map(String));
  add("as_pid2", flag(spec.asPid2));
  if (spec.personality !== undefined) add("personality", String(spec.personality));
  if (spec.oomScoreAdjust !== undefined) add("oom_score_adjust", String(spec.oomScoreAdjust));
  if (spec.cpuAffinity !== undefined) add("cpu_affinity", ...spec.cpuAffinity.map(String));
  r.push(...seccompRecords(spec.seccomp));
  if (spec.seccompCache !== undefined && spec.seccomp.length > 0) add("seccomp_cache", spec.seccompCache);
  if (spec.selinuxContext !== undefined) add("selinux_context", spec.selinuxContext);
  for (const c of spec.exec) add("exec", c.path, c.argv0);
  add("args", ...spec.args);
  return r;
}

export function encodeSpec(spec: RunSpec): Uint8Array {
  const parts: string[] = ["MACHINA-SPEC", String(SPEC_VERSION)];
  for (const [name, args] of specRecords(spec)) {
    for (const a of args) if (a.includes("\0")) throw new Error(`spec record ${name}: argument contains NUL`);
    parts.push(name, String(args.length), ...args);
  }
  parts.push("end", "0");
  return new TextEncoder().encode(parts.join("\0") + "\0");
}
