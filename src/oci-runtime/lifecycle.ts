/**
 * The runtime-spec lifecycle after create (docs/oci-runtime.md): start (the exec fifo, poststart
 * hooks), kill, pause/resume (cgroup2 freezer), delete (cgroups, state, poststop hooks), and the
 * hooks runner. Kept apart from create (create.ts), which needs the whole planning layer: these
 * commands start fast.
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import type { OciHook } from "../settings/oci-config.ts";
import { containerDir, fifoPath, initAlive, OCI_VERSION, readState, status, type StoredState } from "./state.ts";

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
    const r = await host.runAsync(argv, {
      argv0: h.args?.[0] ?? h.path,
      input: new TextEncoder().encode(JSON.stringify(state)),
      output: "inherit",
      env: Object.fromEntries((h.env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      ...(h.timeout !== undefined ? { timeoutMs: h.timeout * 1000 } : {}),
    });
    if (r.status === 0) continue;
    const error = new MachinaError("E_SYSTEM", `${name} hook ${i} (${h.path}) failed with exit status ${r.status}`, { path: h.path });
    if (onFailure === "stop") throw error;
    process.stderr.write(`machina-oci: warning: ${error.message}\n`);
  }
}

/** start: release the init from the exec fifo; then the poststart hooks. */
export async function startContainer(host: Host, root: string, id: string): Promise<void> {
  const st = readState(host, root, id);
  const s = status(host, root, st);
  if (s !== "created")
    throw new MachinaError("E_BUSY", `cannot start container "${id}" in state ${s} (only a created container can be started)`, { value: id });
  const fifo = fifoPath(root, id);
  // The parked init waits in open() for writing (or is about to): our open releases it; it writes
  // "0", runs the startContainer hooks if any and writes "1" once they all succeeded (a failure
  // ends it without), then closes its end (native/SPEC.md oci_hook_state). The read end stays open
  // until then: an init whose open completed never writes into a fifo without a reader. End of
  // file before anything came: it has not opened its end yet, or it died (never hang on a dead init).
  const deadline = host.monotonicMs() + 10_000;
  const reader = host.openFifo(fifo);
  let got = "";
  try {
    for (let round = 0; ; round++) {
      const r = reader.read();
      got += r.text;
      if (r.state === "eof" && got !== "") break;
      if (r.state === "eof") {
        if (!initAlive(host, st)) throw new MachinaError("E_SYSTEM", `container "${id}": its init exited before it was started`);
        if (host.monotonicMs() > deadline) throw new MachinaError("E_SYSTEM", `container "${id}": its init did not take the start within 10 s`);
      }
      // the init is a moment away (it parks right after create reported it): ask again at once a few times
      await host.sleep(round < 20 ? 0 : 1);
    }
  } finally {
    reader.close();
  }
  host.unlink(fifo);
  if (st.startHooks === true && got !== "01")
    throw new MachinaError("E_SYSTEM", `container "${id}": a startContainer hook failed (see the message above); the container stopped`, { value: id });
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
    for (let i = 0; i < 2500 && initAlive(host, st); i++) await host.sleep(2);
  }
  // The init may have been a zombie: what is left in the cgroup goes too.
  for (const pid of containerPids(host, st)) host.kill(pid, 9);
  for (const cg of st.cgroups) {
    // busy for a moment after its last process exited
    for (let i = 0; i < 1000; i++) {
      try {
        host.removeDirTree(cg);
        break;
      } catch {
        await host.sleep(2);
      }
    }
  }
  removeStateDir(host, containerDir(root, id));
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

/** A container's state directory: its files (state.json, hooks.json, exec.fifo), then itself. */
export function removeStateDir(host: Host, dir: string): void {
  if (host.lstat(dir) !== "dir") return;
  for (const name of host.readdir(dir)) host.unlink(`${dir}/${name}`);
  host.removeDirTree(dir);
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
