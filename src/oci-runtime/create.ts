/**
 * machina-oci create (docs/oci-runtime.md): config.json → Settings (settings/oci-config.ts, the
 * mapping --oci-bundle uses, in "runtime" mode) → the same RunSpec machina-nspawn runs, plus the
 * `oci` records: the helper sets everything up, the init waits at ROOT/ID/exec.fifo, and the helper
 * (the supervisor) exits, leaving the init to the caller's subreaper (conmon, containerd's shim)
 * as runc does. The rest of the lifecycle is lifecycle.ts.
 *
 * OS access goes through Host; what is stored is in state.ts.
 */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { ownCommand, type Paths } from "../paths.ts";
import { readStatusLines } from "../runtime/launch.ts";
import { prepareContainer } from "../runtime/prepare.ts";
import { isValidMachineName } from "../settings/values.ts";
import { mergeSettings } from "../settings/merge.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import { mapOciConfig, type OciHooks } from "../settings/oci-config.ts";
import { confinementOf } from "../spec/confinement.ts";
import type { RunSpec, SpecOciHook } from "../spec/types.ts";
import { encodeSpec } from "../spec/wire.ts";
import { removeStateDir } from "./lifecycle.ts";
import { containerDir, fifoPath, OCI_VERSION, writeState, type StoredState } from "./state.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";

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

/**
 * The createContainer and startContainer hooks as the helper runs them (native/SPEC.md `oci_hook`),
 * with each stage's state: as runc, "creating" for createContainer and "created" for
 * startContainer; the helper adds the pid (its own, in the container's PID namespace, as runc).
 */
export function ociHookRecords(
  hooks: Pick<OciHooks, "createContainer" | "startContainer">,
  state: { id: string; bundle: string; annotations: Record<string, string> },
): Pick<NonNullable<RunSpec["oci"]>, "hooks" | "hookState"> {
  const out: SpecOciHook[] = [];
  const hookState: NonNullable<NonNullable<RunSpec["oci"]>["hookState"]> = {};
  const stages = [
    ["create_container", hooks.createContainer, "creating"],
    ["start_container", hooks.startContainer, "created"],
  ] as const;
  for (const [stage, list, status] of stages) {
    if (list.length === 0) continue;
    for (const h of list)
      out.push({
        stage,
        path: h.path,
        timeout: Math.min(h.timeout ?? 0, 2 ** 31 - 1),
        argv: h.args !== undefined && h.args.length > 0 ? h.args : [h.path],
        env: h.env ?? [],
      });
    hookState[stage] = JSON.stringify({ ociVersion: OCI_VERSION, id: state.id, status, bundle: state.bundle, annotations: state.annotations }).slice(1, -1);
  }
  return out.length > 0 ? { hooks: out, hookState } : {};
}

/** create: everything up to the init waiting at the exec fifo. Returns the init's pid. */
export async function createContainer(host: Host, p: Paths, o: CreateOptions): Promise<number> {
  const dir = containerDir(o.root, o.id);
  if (host.lstat(dir) !== undefined) throw new MachinaError("E_BUSY", `container "${o.id}" already exists`, { value: o.id });
  // the helper's own start overlaps the planning where the host can do that (the front end)
  const helperArgv = [p.helper, "run", "--spec-fd"];
  const helperEnv = { PATH: DEFAULT_PATH };
  host.announceSpawn?.(helperArgv, helperEnv);
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
    spec.oci = {
      detach: true,
      execFifo: fifo,
      ...(o.consoleSocket !== undefined ? { consoleSocket: o.consoleSocket } : {}),
      ...ociHookRecords(mapped.hooks, { id: o.id, bundle, annotations: mapped.annotations }),
    };
    if (mapped.hooks.createRuntime.length > 0 || Object.keys(mapped.sysctl).length > 0) {
      host.writeFile(
        `${dir}/hooks.json`,
        JSON.stringify({ createRuntime: mapped.hooks.createRuntime, sysctl: mapped.sysctl, bundle, annotations: mapped.annotations }),
        0o600,
      );
      spec.onLeader = [...ownCommand("machina-oci"), "--root", o.root, "_run-hooks", o.id, "{leader}"];
    }
    const child = host.spawnWithStatus(helperArgv, { spec: encodeSpec(spec), env: helperEnv });
    // Until "exited": the parked init still holds the status pipe (it is closed at its execve).
    await readStatusLines(child, (line) => {
      if (line.event === "parked" && line.leader !== undefined) pid = line.leader;
      return line.event === "exited";
    });
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
      ...(mapped.hooks.startContainer.length > 0 ? { startHooks: true } : {}),
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
    removeStateDir(host, dir);
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
