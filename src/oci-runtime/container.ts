/**
 * The runtime-spec lifecycle over machina's planning layer and helper (issue 13, docs/oci-runtime.md):
 *
 * - create: config.json → Settings (settings/oci-config.ts, the mapping --oci-bundle uses, in
 *   "runtime" mode) → the same RunSpec machina-nspawn runs, plus the `oci` records: the helper
 *   sets everything up, the init waits at ROOT/ID/exec.fifo, and the helper (the supervisor)
 *   exits, leaving the init to the caller's subreaper (conmon, containerd's shim) as runc does;
 * - start: opens the fifo (the init goes on to its execve), runs the poststart hooks;
 * - kill, pause/resume (cgroup2 freezer), delete (the cgroup, the state, poststop hooks).
 *
 * OS access goes through Host; what is stored is in state.ts.
 */
import { closeSync, constants as fsConstants, openSync, readSync } from "node:fs";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { ownCommand, type Paths } from "../paths.ts";
import { parseStatusLine } from "../runtime/launch.ts";
import { prepareContainer } from "../runtime/prepare.ts";
import { isValidMachineName } from "../settings/values.ts";
import { mergeSettings } from "../settings/merge.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import { mapOciConfig, type OciHook } from "../settings/oci-config.ts";
import { confinementOf } from "../spec/confinement.ts";
import { encodeSpec } from "../spec/wire.ts";
import { containerDir, fifoPath, initAlive, OCI_VERSION, readState, status, writeState, type StoredState } from "./state.ts";

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** --systemd-cgroup: linux.cgroupsPath is "SLICE:PREFIX:NAME" */
  systemdCgroup?: boolean;
}

/** The machine name for ID: the ID when it is a valid machine name, else a stable one derived from it. */
export function machineNameFor(id: string): string {
  if (isValidMachineName(id)) return id;
  return `oci-${new Bun.CryptoHasher("sha256").update(id).digest("hex").slice(0, 16)}`;
}

/**
 * linux.cgroupsPath → the cgroup below the cgroup2 root: "/a/b" as given (runc's cgroupfs
 * driver), "a/b" likewise, "SLICE:PREFIX:NAME" with --systemd-cgroup as systemd nests it
 * (SLICE/PREFIX-NAME.scope); none: machina-oci/ID.
 */
export function cgroupPathFor(cgroupsPath: string | undefined, id: string, systemd: boolean): string {
  if (cgroupsPath === undefined || cgroupsPath === "") return `machina-oci/${id}`;
  if (systemd || /^[^/:]*:[^/:]*:[^/:]+$/.test(cgroupsPath)) {
    const m = /^([^/:]*):([^/:]*):([^/:]+)$/.exec(cgroupsPath);
    if (m === null)
      throw new MachinaError("E_INVALID", `linux.cgroupsPath "${cgroupsPath}" is not SLICE:PREFIX:NAME (as --systemd-cgroup expects)`, { value: cgroupsPath });
    const slice = m[1] === "" ? "system.slice" : m[1]!;
    const base = slice.slice(0, -".slice".length);
    const parts = base.split("-");
    const nested = slice.endsWith(".slice") && base !== "" && base !== "-" ? parts.map((_, i) => `${parts.slice(0, i + 1).join("-")}.slice`).join("/") : slice;
    const unit = m[3]!.endsWith(".slice") ? m[3]! : `${m[2] === "" ? "" : `${m[2]}-`}${m[3]}.scope`;
    return `${nested}/${unit}`;
  }
  const rel = cgroupsPath.replace(/^\/+/, "").replace(/\/+$/, "");
  if (rel === "" || rel.split("/").some((c) => c === ".." || c === "."))
    throw new MachinaError("E_INVALID", `linux.cgroupsPath "${cgroupsPath}" is not a cgroup path (no "." or ".." components)`, { value: cgroupsPath });
  return rel;
}

/** create: everything up to the init waiting at the exec fifo. Returns the init's pid. */
export async function createContainer(host: Host, p: Paths, o: CreateOptions): Promise<number> {
  const dir = containerDir(o.root, o.id);
  if (host.lstat(dir) !== undefined) throw new MachinaError("E_BUSY", `container "${o.id}" already exists`, { value: o.id });
  const bundle = o.bundle.replace(/\/+$/, "") || "/";
  const configPath = `${bundle}/config.json`;
  const text = host.readFile(configPath);
  if (text === undefined) throw new MachinaError("E_NOT_FOUND", `${configPath}: no such file (the bundle needs a config.json)`, { file: configPath });
  const mapped = mapOciConfig(text, bundle, "runtime");
  const machine = machineNameFor(o.id);
  const parsed = parseNspawnCommandLine(["-q", "--settings=no", "--register=no", `--machine=${machine}`], {}, bundle);
  if (parsed.action !== "run") throw new MachinaError("E_SYSTEM", "internal: machina-oci's base settings did not parse");
  const settings = mergeSettings(parsed.settings, mapped, "override");
  settings.ociRuntime = true;
  // As runc: SELinux labels are for hosts that enforce SELinux; elsewhere they are not applied.
  if (host.lstat("/sys/fs/selinux/enforce") === undefined) {
    settings.selinuxContext = undefined;
    settings.selinuxApifsContext = undefined;
  }
  settings.cgroupPath = cgroupPathFor(mapped.cgroupsPath, o.id, o.systemdCgroup === true);
  const terminal = mapped.terminal;
  if (terminal && o.consoleSocket === undefined)
    throw new MachinaError("E_USAGE", "process.terminal is true: --console-socket is required (the pty master is sent there)", { flag: "--console-socket" });
  if (!terminal && o.consoleSocket !== undefined)
    throw new MachinaError("E_USAGE", "--console-socket is given, but process.terminal is false", { flag: "--console-socket" });
  settings.console = terminal ? "interactive" : "pipe";

  host.mkdirp(o.root, 0o700);
  host.mkdirp(dir, 0o700);
  let pid: number | undefined;
  const cgroups: string[] = [];
  try {
    const fifo = fifoPath(o.root, o.id);
    host.mkfifo(fifo, 0o622);
    const prepared = prepareContainer(host, p, settings, bundle, { prog: "machina-oci", statusFd: 4, detached: true });
    const spec = prepared.spec;
    cgroups.push(...spec.cgroups);
    spec.registry = undefined;
    spec.stateJson = undefined;
    delete spec.onExit;
    delete spec.imageLocks;
    spec.quiet = true;
    spec.consoleOpost = true; // a terminal as any other: the caller's stdout is not ours to judge
    spec.oci = { detach: true, execFifo: fifo, ...(o.consoleSocket !== undefined ? { consoleSocket: o.consoleSocket } : {}) };
    if (mapped.hooks.createRuntime.length > 0 || Object.keys(mapped.sysctl).length > 0) {
      host.writeFile(
        `${dir}/hooks.json`,
        JSON.stringify({ createRuntime: mapped.hooks.createRuntime, sysctl: mapped.sysctl, bundle, annotations: mapped.annotations }),
        0o600,
      );
      spec.onLeader = [...ownCommand("machina-oci"), "--root", o.root, "_run-hooks", o.id, "{leader}"];
    }
    const child = host.spawnWithStatus([p.helper, "run", "--spec-fd"], {
      spec: encodeSpec(spec),
      env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
    });
    const reader = child.status.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    // Until "exited": the parked init still holds the status pipe (it is closed at its execve).
    let ended = false;
    while (!ended) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = parseStatusLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (line?.event === "parked" && line.leader !== undefined) pid = line.leader;
        if (line?.event === "exited") ended = true;
        nl = buf.indexOf("\n");
      }
    }
    reader.releaseLock();
    child.closeStatus();
    const code = await child.exited;
    if (code !== 0 || pid === undefined) throw new MachinaError("E_SYSTEM", `container "${o.id}" could not be created (the helper exited with status ${code})`);
    const pidStart = host.processStartTime(pid);
    if (pidStart === undefined) throw new MachinaError("E_SYSTEM", `container "${o.id}": its init (pid ${pid}) is gone`);
    const st: StoredState = {
      ociVersion: OCI_VERSION,
      id: o.id,
      pid,
      pidStart,
      bundle,
      rootfs: mapped.root,
      created: new Date().toISOString(),
      annotations: mapped.annotations,
      cgroups,
      machine,
      confinement: confinementOf(spec),
      ...(spec.selinuxContext !== undefined ? { selinuxContext: spec.selinuxContext } : {}),
      hooks: { poststart: mapped.hooks.poststart, poststop: mapped.hooks.poststop },
    };
    writeState(host, o.root, st);
    if (o.pidFile !== undefined) {
      const tmp = `${o.pidFile}.${host.pid()}.tmp`;
      host.writeFile(tmp, String(pid), 0o644);
      host.rename(tmp, o.pidFile, false);
    }
    return pid;
  } catch (e) {
    if (pid !== undefined) host.kill(pid, 9);
    for (const c of cgroups) removeCgroup(host, c);
    host.removeTree(dir);
    throw e;
  }
}

function removeCgroup(host: Host, dir: string): void {
  try {
    host.removeDirTree(dir);
  } catch {
    // busy or gone: delete retries
  }
}

/**
 * Run hooks in order with the state on stdin (runtime-spec "hooks"). `onFailure` "stop": the first
 * failure throws (prestart, createRuntime: the container is not created); "warn": a failure is a
 * warning line on stderr and the remaining hooks still run (poststart, poststop).
 */
export async function runHooks(
  host: Host,
  name: string,
  hooks: readonly OciHook[],
  state: Record<string, unknown>,
  onFailure: "stop" | "warn" = "stop",
): Promise<void> {
  for (const [i, h] of hooks.entries()) {
    const argv = h.args !== undefined && h.args.length > 0 ? [h.path, ...h.args.slice(1)] : [h.path];
    const proc = Bun.spawn(argv, {
      argv0: h.args?.[0] ?? h.path,
      stdin: new TextEncoder().encode(JSON.stringify(state)),
      stdout: "inherit",
      stderr: "inherit",
      env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
    } as Parameters<typeof Bun.spawn>[1]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (h.timeout !== undefined) timer = setTimeout(() => proc.kill("SIGKILL"), h.timeout * 1000);
    const code = await proc.exited;
    if (timer !== undefined) clearTimeout(timer);
    if (code === 0) continue;
    const error = new MachinaError("E_SYSTEM", `${name} hook ${i} (${h.path}) failed with exit status ${code}`, { path: h.path });
    if (onFailure === "stop") throw error;
    process.stderr.write(`machina-oci: warning: ${error.message}\n`);
  }
  void host;
}

/** start: release the init from the exec fifo; then the poststart hooks. */
export async function startContainer(host: Host, root: string, id: string): Promise<void> {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  if (s !== "created")
    throw new MachinaError("E_BUSY", `cannot start container "${id}" in state ${s} (only a created container can be started)`, { value: id });
  const fifo = fifoPath(root, id);
  // O_NONBLOCK: never hang on an init that died meanwhile; the byte arrives once it opened its end.
  const fd = openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(1);
    const deadline = host.monotonicMs() + 10_000;
    for (;;) {
      let n = 0;
      try {
        n = readSync(fd, buf, 0, 1, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
      }
      if (n === 1) break;
      if (!initAlive(host, st)) throw new MachinaError("E_SYSTEM", `container "${id}": its init exited before it was started`);
      if (host.monotonicMs() > deadline) throw new MachinaError("E_SYSTEM", `container "${id}": its init did not take the start within 10 s`);
      await host.sleep(2);
    }
  } finally {
    closeSync(fd);
  }
  host.unlink(fifo);
  if (st.hooks.poststart.length > 0) {
    // runtime-spec: a poststart failure is a warning; the other hooks and the lifecycle go on
    await runHooks(
      host,
      "poststart",
      st.hooks.poststart,
      { ociVersion: st.ociVersion, id, status: "running", pid: st.pid, bundle: st.bundle, annotations: st.annotations },
      "warn",
    );
  }
}

/** The processes of the container: its cgroup's (cgroup.procs), else just the init. */
export function containerPids(host: Host, st: StoredState): number[] {
  const procs = st.cgroups[0] !== undefined ? host.readFile(`${st.cgroups[0]}/cgroup.procs`) : undefined;
  if (procs !== undefined)
    return procs
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
  return initAlive(host, st) ? [st.pid] : [];
}

export function killContainer(host: Host, root: string, id: string, signal: number, all: boolean): void {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  // --all also reaches what is left after the init exited (as runc: the shim's kill-all on exit)
  if (s === "stopped" && !all) throw new MachinaError("E_NOT_FOUND", `container "${id}" is not running`, { value: id });
  if (all) for (const pid of containerPids(host, st)) host.kill(pid, signal);
  else host.kill(st.pid, signal);
  if (s === "stopped") return;
  // A paused container gets the signal when it thaws (as runc: SIGKILL thaws it)
  if (signal === 9 && s === "paused") setFrozen(host, st, false);
}

export function setFrozen(host: Host, st: StoredState, frozen: boolean): void {
  const cg = st.cgroups[0];
  if (cg === undefined || host.lstat(`${cg}/cgroup.freeze`) !== "file")
    throw new MachinaError("E_UNSUPPORTED", `container "${st.id}": its cgroup has no cgroup2 freezer (cgroup.freeze)`, { value: st.id });
  host.writeFile(`${cg}/cgroup.freeze`, frozen ? "1" : "0");
}

export async function pauseContainer(host: Host, root: string, id: string, pause: boolean): Promise<void> {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  if (pause && s !== "running") throw new MachinaError("E_BUSY", `container "${id}" is ${s}, not running`, { value: id });
  if (!pause && s !== "paused") throw new MachinaError("E_BUSY", `container "${id}" is ${s}, not paused`, { value: id });
  setFrozen(host, st, pause);
  for (let i = 0; i < 500; i++) {
    if ((status(host, root, st) === "paused") === pause) return;
    await host.sleep(2);
  }
}

export async function deleteContainer(host: Host, root: string, id: string, force: boolean): Promise<void> {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  if (s !== "stopped" && !force)
    throw new MachinaError("E_BUSY", `cannot delete container "${id}" that is not stopped: ${s}`, { value: id }, "use delete --force to kill it first");
  if (s !== "stopped") {
    if (s === "paused") setFrozen(host, st, false);
    for (const pid of containerPids(host, st)) host.kill(pid, 9);
    host.kill(st.pid, 9);
    for (let i = 0; i < 500 && initAlive(host, st); i++) await host.sleep(10);
  }
  // The init may have been a zombie: what is left in the cgroup goes too.
  for (const pid of containerPids(host, st)) host.kill(pid, 9);
  for (const cg of st.cgroups) {
    for (let i = 0; i < 100; i++) {
      try {
        host.removeDirTree(cg);
        break;
      } catch {
        await host.sleep(20);
      }
    }
  }
  host.removeTree(containerDir(root, id));
  if (st.hooks.poststop.length > 0) {
    // runtime-spec: a poststop failure is a warning; the other hooks and the lifecycle go on
    await runHooks(
      host,
      "poststop",
      st.hooks.poststop,
      { ociVersion: st.ociVersion, id, status: "stopped", pid: 0, bundle: st.bundle, annotations: st.annotations },
      "warn",
    );
  }
}

/**
 * Run by the helper's on_leader with the init's pid, once its namespaces exist and before it sets
 * its root up: linux.sysctl written in its network and IPC namespaces (the keys were checked to
 * belong to them), then the createRuntime/prestart hooks.
 */
export async function runCreateHooks(host: Host, root: string, id: string, leader: number): Promise<void> {
  const text = host.readFile(`${containerDir(root, id)}/hooks.json`);
  if (text === undefined) return;
  const h = JSON.parse(text) as { createRuntime: OciHook[]; sysctl: Record<string, string>; bundle: string; annotations: Record<string, string> };
  for (const [key, value] of Object.entries(h.sysctl)) {
    const r = await host.runAsync([
      "nsenter",
      "-t",
      String(leader),
      "--net",
      "--ipc",
      "sh",
      "-c",
      'printf "%s\n" "$1" > "$2"',
      "sh",
      value,
      `/proc/sys/${key.replace(/\./g, "/")}`,
    ]);
    if (r.status !== 0)
      throw new MachinaError("E_SYSTEM", `linux.sysctl.${key}: cannot set it to "${value}": ${r.stderr.trim().split("\n")[0] ?? ""}`, { value: key });
  }
  await runHooks(host, "createRuntime", h.createRuntime, {
    ociVersion: OCI_VERSION,
    id,
    status: "created", // as runc passes it (and runtime-tools checks) to prestart and createRuntime
    pid: leader,
    bundle: h.bundle,
    annotations: h.annotations,
  });
}
