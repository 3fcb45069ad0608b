/**
 * Entering a running machine: the plan (an "enter spec", native/SPEC.md) for
 * `machina-helper enter`, which joins the container's namespaces and cgroup and runs a
 * command there (shell, login, exec) or binds a host path into it (bind). Everything the
 * helper needs is decided here from the registry, /proc/LEADER and the container's own
 * /etc/passwd; the helper executes it. A command is confined exactly as the container's payload:
 * the records come from the confinement recorded when it started (src/spec/confinement.ts),
 * never from what its processes show now.
 */
import { MachinaError } from "../errors.ts";
import type { CommandResult, Host } from "../host/host.ts";
import { kindInRoot, readFileInRoot } from "../host/resolve-in-root.ts";
import type { Machine } from "./machines.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";
import { type Confinement, confinementRecords } from "../spec/confinement.ts";
import { OCI_CLASS, ociConfinement } from "./oci-machines.ts";
import { readState } from "./registry.ts";

export const ENTER_MAGIC = "MACHINA-ENTER";
export const ENTER_VERSION = "1";

export type EnterRecord = [string, string[]];

export function encodeEnterSpec(records: EnterRecord[]): Uint8Array {
  const parts: string[] = [ENTER_MAGIC, ENTER_VERSION];
  for (const [name, args] of [...records, ["end", []] as EnterRecord]) parts.push(name, String(args.length), ...args);
  return new TextEncoder().encode(parts.map((p) => `${p}\0`).join(""));
}

const NAMESPACES = ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"] as const;

/** Namespaces of the leader that differ from ours (the ones to enter). */
export function targetNamespaces(host: Host, leader: number): string[] {
  const out: string[] = [];
  for (const ns of NAMESPACES) {
    try {
      if (host.readlink(`/proc/self/ns/${ns}`) !== host.readlink(`/proc/${leader}/ns/${ns}`)) out.push(ns);
    } catch {
      // a namespace type the kernel does not have
    }
  }
  return out;
}

/** The leader's cgroups as host directories: its cgroup2 path (and name=systemd v1 when the machine has one). */
export function leaderCgroups(host: Host, m: Machine): string[] {
  const text = host.readFile(`/proc/${m.leader}/cgroup`) ?? "";
  const out: string[] = [];
  const v2 = /^0::(\/.*)$/m.exec(text)?.[1];
  const mount = m.cgroupDir.endsWith(m.controlGroup) ? m.cgroupDir.slice(0, m.cgroupDir.length - m.controlGroup.length) : "";
  if (v2 !== undefined && mount !== "" && (v2 === m.controlGroup || v2.startsWith(`${m.controlGroup}/`))) out.push(`${mount}${v2}`);
  else if (m.cgroupDir !== "") out.push(m.cgroupDir);
  const v1sys = /^\d+:name=systemd:(\/.*)$/m.exec(text)?.[1];
  const v1mount = m.cgroups.find((c) => c.includes("/systemd/") && c.endsWith(m.controlGroup));
  if (v1sys !== undefined && v1mount !== undefined) {
    const base = v1mount.slice(0, v1mount.length - m.controlGroup.length);
    if (v1sys === m.controlGroup || v1sys.startsWith(`${m.controlGroup}/`)) out.push(`${base}${v1sys}`);
  }
  return out;
}

/**
 * The confinement the machine's container was started with (its state.json; for class "oci",
 * machina-oci's state.json of the container): what an entered process gets.
 */
export function machineConfinement(host: Host, stateDir: string, m: Machine): Confinement {
  if (m.class === OCI_CLASS) {
    const c = ociConfinement(host, m);
    if (c === undefined) throw new MachinaError("E_UNSUPPORTED", `machine "${m.name}" has no valid confinement in machina-oci's state`, { machine: m.name });
    return c;
  }
  const c = readState(host, stateDir, m.name)?.confinement;
  if (c === undefined)
    throw new MachinaError(
      "E_UNSUPPORTED",
      `machine "${m.name}" has no recorded confinement (its state.json lacks "confinement")`,
      { machine: m.name },
      "it was started by an older machina: restart it to enter it",
    );
  return c;
}

/**
 * The rlimits of /proc/PID/limits (one row per resource, in resource order, as the kernel
 * prints them): [resource, soft, hard] with "infinity" for "unlimited".
 */
export function parseLimits(text: string): Array<[number, string, string]> {
  const out: Array<[number, string, string]> = [];
  for (const line of text.split("\n").slice(1)) {
    const m = /^Max .+?\s{2,}(unlimited|[0-9]+)\s+(unlimited|[0-9]+)(\s|$)/.exec(line);
    if (m === null) continue;
    const v = (x: string) => (x === "unlimited" ? "infinity" : x);
    out.push([out.length, v(m[1]!), v(m[2]!)]);
  }
  return out.length <= 16 ? out : out.slice(0, 16);
}

/**
 * The confinement records of an enter spec: the container's recorded ones, with the rlimits it
 * inherited (every resource the record does not name) taken from the leader's, so that the
 * command's limits are its PID 1's.
 */
export function enterConfinementRecords(host: Host, leader: number, c: Confinement): EnterRecord[] {
  const named = new Set(c.rlimits.map(([res]) => res));
  const inherited = parseLimits(host.readFile(`/proc/${leader}/limits`) ?? "").filter(([res]) => !named.has(res));
  return confinementRecords({ ...c, rlimits: [...inherited, ...c.rlimits] });
}

export interface ContainerUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
  home: string;
  shell: string;
}

/** A user of the container's /etc/passwd (by name or number; read through its root). */
export function containerUser(host: Host, m: Machine, user: string): ContainerUser {
  const root = `/proc/${m.leader}/root`;
  const passwd = readFileInRoot(host, root, "/etc/passwd") ?? "";
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f.length < 7) continue;
    if (f[0] !== user && f[2] !== user) continue;
    const name = f[0]!;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    const groups = new Set<number>([gid]);
    for (const g of (readFileInRoot(host, root, "/etc/group") ?? "").split("\n")) {
      const gf = g.split(":");
      if (gf.length >= 4 && gf[3]!.split(",").includes(name)) groups.add(Number(gf[2]));
    }
    return { name, uid, gid, groups: [...groups].filter((n) => Number.isInteger(n)), home: f[5] || "/", shell: f[6] || "/bin/sh" };
  }
  if (/^[0-9]+$/.test(user)) return { name: user, uid: Number(user), gid: Number(user), groups: [], home: "/", shell: "/bin/sh" };
  if (user === "root") return { name: "root", uid: 0, gid: 0, groups: [0], home: "/root", shell: "/bin/sh" };
  throw new MachinaError("E_NOT_FOUND", `no user "${user}" in the container's /etc/passwd`, { machine: m.name });
}

export interface EnterCommand {
  /** User name or uid inside the container (default root). */
  user?: string;
  /** The command; default: the user's login shell. */
  command?: string[];
  /** Extra environment (K=V), over the defaults. */
  setenv?: string[];
  /** Pty in the container (interactive) or the caller's stdio (pipe). */
  console: "pty" | "pipe";
  /** TERM of the caller, for a pty. */
  term?: string;
  /** Run login(1) instead of a shell. */
  login?: boolean;
  /** Working directory inside the container (default: the user's home when it is a directory, else /). */
  cwd?: string;
}

function commonRecords(host: Host, m: Machine, namespaces: string[]): EnterRecord[] {
  const start = host.processStartTime(m.leader);
  if (start === undefined) throw new MachinaError("E_NOT_FOUND", `the leader of "${m.name}" is gone`, { machine: m.name });
  return [
    ["prog", ["machinactl"]],
    ["target", [String(m.leader), start]],
    ["namespaces", namespaces],
  ];
}

/**
 * The enter spec for a command (shell, login, exec) in the machine, confined exactly as the
 * container's payload (`confinement`, from machineConfinement).
 */
export function commandSpec(host: Host, m: Machine, cmd: EnterCommand, confinement: Confinement): EnterRecord[] {
  const user = containerUser(host, m, cmd.user ?? "root");
  const asUser = cmd.login ? containerUser(host, m, "root") : user;
  const leaderEnv = (host.readFile(`/proc/${m.leader}/environ`) ?? "").split("\0");
  const containerVar = leaderEnv.find((e) => e.startsWith("container="));
  const env = new Map<string, string>();
  const put = (kv: string) => env.set(kv.slice(0, kv.indexOf("=")), kv);
  put(`PATH=${DEFAULT_PATH}`);
  if (containerVar) put(containerVar);
  put(`HOME=${user.home}`);
  put(`USER=${user.name}`);
  put(`LOGNAME=${user.name}`);
  put(`SHELL=${user.shell}`);
  if (cmd.console === "pty") put(`TERM=${cmd.term || "vt220"}`);
  for (const kv of cmd.setenv ?? []) put(kv);
  const root = `/proc/${m.leader}/root`;
  const cwd = cmd.cwd ?? (kindInRoot(host, root, user.home) === "dir" ? user.home : "/");
  let exec: EnterRecord[];
  let args: string[];
  if (cmd.login) {
    exec = ["/bin/login", "/usr/bin/login", "/sbin/login", "/usr/sbin/login"].map((p) => ["exec", [p, "login"]] as EnterRecord);
    args = [];
  } else if (cmd.command !== undefined && cmd.command.length > 0) {
    exec = [["exec", [cmd.command[0]!, cmd.command[0]!]]];
    args = cmd.command.slice(1);
  } else {
    const base = user.shell.split("/").pop() || "sh";
    exec = [
      ["exec", [user.shell, `-${base}`]],
      ["exec", ["/bin/sh", "-sh"]],
    ];
    args = [];
  }
  return [
    ...commonRecords(host, m, targetNamespaces(host, m.leader)),
    ...leaderCgroups(host, m).map((c) => ["cgroup", [c]] as EnterRecord),
    ...enterConfinementRecords(host, m.leader, confinement),
    ...(m.selinuxContext !== undefined ? [["selinux_context", [m.selinuxContext]] as EnterRecord] : []),
    // login(1) starts as root and changes user itself; always ids of the container (with -U an
    // unmapped host uid would be left otherwise)
    ["user", [String(asUser.uid), String(asUser.gid), ...asUser.groups.map(String)]],
    ["env", [...env.values()]],
    ["chdir", [cmd.login ? "/" : cwd]],
    ["console", [cmd.console]],
    ...exec,
    ["args", args],
  ];
}

/** The enter spec that binds host path `src` onto `dst` inside the machine. */
export function bindSpec(host: Host, m: Machine, src: string, dst: string, options: { readOnly: boolean; mkdir: boolean }): EnterRecord[] {
  const ns = targetNamespaces(host, m.leader).includes("mnt") ? ["mnt"] : [];
  if (ns.length === 0) throw new MachinaError("E_UNSUPPORTED", `machine "${m.name}" shares the host's mount namespace`, { machine: m.name });
  return [...commonRecords(host, m, ns), ["bind", [src, dst, options.readOnly ? "1" : "0", options.mkdir ? "1" : "0"]]];
}

/**
 * Run `machina-helper enter` with the spec and wait (the daemon's way, and bind/copy's). With
 * output "inherit" the command uses this process's stdio; else its output is captured.
 */
export function runEnter(
  host: Host,
  helper: string,
  records: EnterRecord[],
  options: { output?: "inherit" | "capture"; input?: Uint8Array | "inherit"; signal?: AbortSignal; maxCaptureBytes?: number } = {},
): Promise<CommandResult> {
  // an empty environment, as machinactl's exec of the helper: nothing of ours is in its memory
  return host.runAsync([helper, "enter", "--spec-fd"], {
    spec: encodeEnterSpec(records),
    env: {},
    output: options.output ?? "capture",
    ...(options.input !== undefined ? { input: options.input } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    ...(options.maxCaptureBytes !== undefined ? { maxCaptureBytes: options.maxCaptureBytes } : {}),
  });
}
