/**
 * A private containerd for one test file (test/integration/oci-containerd.test.ts): Debian's
 * containerd 1.6 with its own config, root, state and gRPC socket in a scratch directory, the
 * CRI plugin on, and the OCI runtime under test behind `io.containerd.runc.v2` (the shim that
 * calls a runc-compatible command by its BinaryName).
 *
 *   - CRI runtime handlers: `machina` (the runtime under test) and `runc` (the default, plain
 *     runc): each through its own logging wrapper, so a test sees which runtime a pod used and
 *     the exact command lines the shim ran (runtimeCalls()).
 *   - Images: a busybox image and a "pause" image made from the busybox fixture with
 *     `machinactl export-oci`, imported with `ctr images import`; the CRI sandbox_image is the
 *     local pause image, so nothing is ever pulled.
 *   - Network: a CNI bridge conflist in the scratch directory (Debian's containernetworking
 *     plugins): a host bridge without an address (isGateway false, no masquerading, no routes),
 *     host-local addresses in the scratch directory. Pods reach nothing outside their netns.
 *   - Cgroups: CRI pods under CRI_CGROUP_PARENT's unique parent, ctr containers under the ctr
 *     namespace's (ctr's default cgroup is /NAMESPACE/ID).
 *
 * stop() (registered with the Scratch, so it also runs when a test failed) removes the pods and
 * containers still there, kills what is left in those cgroups, stops containerd and any shim it
 * started (and its socket in /run/containerd/s), removes the cgroups, the bridge, and the
 * directories /run/containerd, /opt/containerd and /var/lib/cni (CNI's result cache) when they
 * were created by this run and are empty; the Scratch then unmounts and removes the directory
 * (netns files, rootfs mounts).
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, readdirSync, readFileSync, openSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Subprocess, spawn } from "bun";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { CriClient } from "./cri/client.ts";
import { baseEnv, machinactlSync, type Scratch, uniqueName, waitFor } from "./machina.ts";

export const CONTAINERD = "containerd";
export const CTR = "ctr";
export const RUNC_SHIM = "containerd-shim-runc-v2";
/** The plain runc the default CRI handler uses (Debian's runc package). */
export const RUNC = "/usr/sbin/runc";
export const CNI_BIN_DIR = "/usr/lib/cni";
/** The CRI runtime handler (a RuntimeClass's `handler`) configured for the runtime under test. */
export const HANDLER = "machina";
export const DEFAULT_HANDLER = "runc";
export const BUSYBOX_REF = "machina.test/busybox:latest";
export const PAUSE_REF = "machina.test/pause:latest";
/** The CRI plugin's namespace in containerd (the kubelet's). */
export const CRI_NAMESPACE = "k8s.io";

/** containerd, ctr and the runc v2 shim are installed (Debian's containerd package). */
export function haveContainerd(): boolean {
  return [CONTAINERD, CTR, RUNC_SHIM].every((p) => Bun.which(p, { PATH: baseEnv().PATH }) !== null);
}

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (stdin /dev/null unless `input`), killing it after `timeoutMs`. */
export async function runCmd(cmd: string[], opts: { input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<CmdResult> {
  const p = spawn(cmd, {
    stdin: opts.input === undefined ? "ignore" : Buffer.from(opts.input),
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv(),
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function runOk(cmd: string[], what: string): Promise<string> {
  const r = await runCmd(cmd);
  if (r.code !== 0) throw new Error(`${what}: ${cmd.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/**
 * A shell script that appends its arguments (tab-separated, one call a line) to `log` and then
 * execs `runtime` with them: stdin, stdout, stderr and the exit status are the runtime's own.
 */
export function writeLoggingWrapper(path: string, runtime: string, log: string): void {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(path, `#!/bin/sh\n{ for a in "$@"; do printf '%s\\t' "$a"; done; printf '\\n'; } >>${q(log)}\nexec ${q(runtime)} "$@"\n`, { mode: 0o755 });
}

/** The calls a logging wrapper recorded, each as its argument list. */
export function readCalls(log: string): string[][] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.replace(/\t$/, "").split("\t"));
}

/** The runtime command of a call (the first argument that is not a global option or its value). */
export function callCommand(call: string[]): string | undefined {
  const withValue = new Set(["--root", "--log", "--log-format", "--criu"]);
  for (let i = 0; i < call.length; i++) {
    const a = call[i]!;
    if (withValue.has(a)) i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

// ------------------------------------------------------------------ cgroups

/** The directories `rel` has in every cgroup hierarchy (v2 alone, or v1 controllers + unified). */
function cgroupDirs(rel: string): string[] {
  const root = "/sys/fs/cgroup";
  if (existsSync(`${root}/cgroup.procs`)) return [join(root, rel)];
  return readdirSync(root)
    .map((h) => join(root, h))
    .filter((h) => existsSync(join(h, "cgroup.procs")))
    .map((h) => join(h, rel));
}

function subtree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...subtree(join(dir, e.name)));
  return out;
}

/** Kill every process in the cgroup `rel` (all hierarchies, all children), then remove the cgroups. */
export async function removeCgroupTree(rel: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    let left = 0;
    for (const top of cgroupDirs(rel)) {
      for (const d of subtree(top)) {
        const procs = existsSync(`${d}/cgroup.procs`) ? readFileSync(`${d}/cgroup.procs`, "utf8").split("\n").filter(Boolean) : [];
        for (const pid of procs) {
          left++;
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // gone
          }
        }
      }
    }
    if (left === 0) break;
    await Bun.sleep(100);
  }
  for (const top of cgroupDirs(rel)) {
    for (const d of subtree(top).reverse()) {
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(d);
          break;
        } catch {
          await Bun.sleep(50);
        }
      }
    }
  }
}

/** The memory limit of the cgroup `rel` in bytes (memory.limit_in_bytes on v1, memory.max on v2). */
export function memoryLimit(rel: string): number | undefined {
  const root = "/sys/fs/cgroup";
  const file = existsSync(`${root}/cgroup.procs`) ? join(root, rel, "memory.max") : join(root, "memory", rel, "memory.limit_in_bytes");
  if (!existsSync(file)) return undefined;
  const v = readFileSync(file, "utf8").trim();
  return v === "max" ? Number.POSITIVE_INFINITY : Number(v);
}

/** Whether any hierarchy still has the cgroup `rel`. */
export function cgroupExists(rel: string): boolean {
  return cgroupDirs(rel).some((d) => existsSync(d));
}

// ------------------------------------------------------------------ images

export interface TestImages {
  busybox: string;
  pause: string;
}

/**
 * The busybox fixture as two OCI archives written by `machinactl export-oci` (in a private
 * pool): "busybox" (PATH set, no command) and "pause" (`/bin/sleep 2147483647`, the sandbox's
 * init: it holds the pod's namespaces; containerd kills it with SIGKILL at StopPodSandbox).
 */
export async function buildTestImages(scratch: Scratch): Promise<TestImages> {
  const rootfs = await ensureBusyboxImage();
  const dir = scratch.dir("machina-cri-img-");
  const env = baseEnv({ MACHINA_STATE_DIR: `${dir}/state`, MACHINA_POOL: `${dir}/pool` });
  mkdirSync(`${dir}/state`);
  mkdirSync(`${dir}/pool`);
  const path = "Environment=PATH=/usr/sbin:/usr/bin:/sbin:/bin\n";
  const settings: Record<keyof TestImages, string> = {
    busybox: `[Exec]\n${path}`,
    pause: `[Exec]\nParameters=/bin/sleep 2147483647\n${path}`,
  };
  const out = {} as TestImages;
  for (const name of ["busybox", "pause"] as const) {
    for (const args of [["import-fs", rootfs, name], [], ["export-oci", name, `${dir}/${name}.tar`]]) {
      if (args.length === 0) {
        writeFileSync(`${dir}/pool/${name}.nspawn`, settings[name]);
        continue;
      }
      const r = machinactlSync(env, ...args);
      if (r.status !== 0) throw new Error(`machinactl ${args.join(" ")}: ${r.stderr.trim()}`);
    }
    out[name] = `${dir}/${name}.tar`;
  }
  return out;
}

// ------------------------------------------------------------------ containerd

export interface ContainerdOptions {
  /** The OCI runtime under test (the `machina` handler, and ctr's --runc-binary). */
  runtime: string;
}

export class PrivateContainerd {
  readonly socket: string;
  readonly config: string;
  readonly log: string;
  /** Where the logging wrappers record the runtime calls of each handler. */
  readonly callLogs: Record<typeof HANDLER | typeof DEFAULT_HANDLER, string>;
  /** The logging wrapper in front of the runtime under test (give it to ctr as --runc-binary). */
  readonly runtimeWrapper: string;
  /** The runtimes' --root directories (per handler, and for ctr). */
  readonly runtimeRoots: { machina: string; runc: string; ctr: string };
  /** The ctr namespace of this containerd's ctr containers; also their parent cgroup. */
  readonly ctrNamespace = uniqueName("machina-ctr");
  /** The parent cgroup of the CRI pods (LinuxPodSandboxConfig.cgroup_parent). */
  readonly criCgroupParent = `/${uniqueName("machina-cri")}`;
  /** The CNI bridge on the host (no address: nothing is routed to it). */
  readonly bridge = `mcri${Math.floor(Math.random() * 0xfffff).toString(16)}`;
  private proc: Subprocess | undefined;
  /** Directories outside `dir` that containerd, shims or CNI create, and whether they were missing. */
  private readonly createdByUs = Object.fromEntries(["/run/containerd", "/opt/containerd", "/var/lib/cni"].map((d) => [d, !existsSync(d)]));

  constructor(
    readonly dir: string,
    readonly opts: ContainerdOptions,
  ) {
    this.socket = `${dir}/containerd.sock`;
    this.config = `${dir}/config.toml`;
    this.log = `${dir}/containerd.log`;
    this.callLogs = { machina: `${dir}/calls-${HANDLER}.log`, runc: `${dir}/calls-${DEFAULT_HANDLER}.log` };
    this.runtimeWrapper = `${dir}/runtime-${HANDLER}`;
    this.runtimeRoots = { machina: `${dir}/runtime-root-${HANDLER}`, runc: `${dir}/runtime-root-${DEFAULT_HANDLER}`, ctr: `${dir}/runtime-root-ctr` };
  }

  /** The config.toml (version 2, containerd 1.6; 1.7 reads it too). */
  configText(): string {
    const d = this.dir;
    const cri = `plugins."io.containerd.grpc.v1.cri"`;
    const handler = (name: string, binary: string, root: string): string =>
      [
        `[${cri}.containerd.runtimes.${name}]`,
        `  runtime_type = "io.containerd.runc.v2"`,
        `[${cri}.containerd.runtimes.${name}.options]`,
        `  BinaryName = ${JSON.stringify(binary)}`,
        `  Root = ${JSON.stringify(root)}`,
        `  SystemdCgroup = false`,
      ].join("\n");
    return `${[
      "version = 2",
      `root = ${JSON.stringify(`${d}/root`)}`,
      `state = ${JSON.stringify(`${d}/state`)}`,
      // what this test does not use, and the opt plugin (it would create /opt/containerd)
      `disabled_plugins = ${JSON.stringify([
        "io.containerd.internal.v1.opt",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
      ])}`,
      "[grpc]",
      `  address = ${JSON.stringify(this.socket)}`,
      `[${cri}]`,
      `  sandbox_image = ${JSON.stringify(PAUSE_REF)}`,
      // the pods' netns files in the scratch directory, not /var/run/netns
      "  netns_mounts_under_state_dir = true",
      "  disable_apparmor = true",
      // a pod sandbox asks for oom_score_adj -998: lowering it needs CAP_SYS_RESOURCE, which a
      // test host (a container itself) may lack; this clamps it to containerd's own value
      "  restrict_oom_score_adj = true",
      `  stream_server_address = "127.0.0.1"`,
      `  stream_server_port = "0"`,
      `[${cri}.cni]`,
      `  bin_dir = ${JSON.stringify(CNI_BIN_DIR)}`,
      `  conf_dir = ${JSON.stringify(`${d}/net.d`)}`,
      `[${cri}.containerd]`,
      `  snapshotter = "overlayfs"`,
      `  default_runtime_name = ${JSON.stringify(DEFAULT_HANDLER)}`,
      handler(HANDLER, this.runtimeWrapper, this.runtimeRoots.machina),
      handler(DEFAULT_HANDLER, `${d}/runtime-${DEFAULT_HANDLER}`, this.runtimeRoots.runc),
    ].join("\n")}\n`;
  }

  /** The CNI network: a bridge without an address, host-local IPs in a /28 (never routed). */
  cniConfig(): object {
    return {
      cniVersion: "1.0.0",
      name: "machina-cri-test",
      plugins: [
        {
          type: "bridge",
          bridge: this.bridge,
          isGateway: false,
          ipMasq: false,
          ipam: { type: "host-local", ranges: [[{ subnet: "10.213.0.0/28" }]], dataDir: `${this.dir}/cni-ipam` },
        },
      ],
    };
  }

  async start(): Promise<void> {
    writeLoggingWrapper(this.runtimeWrapper, this.opts.runtime, this.callLogs.machina);
    writeLoggingWrapper(`${this.dir}/runtime-${DEFAULT_HANDLER}`, RUNC, this.callLogs.runc);
    mkdirSync(`${this.dir}/net.d`);
    mkdirSync(`${this.dir}/fifo`);
    writeFileSync(`${this.dir}/net.d/10-machina-cri-test.conflist`, JSON.stringify(this.cniConfig(), null, 2));
    writeFileSync(this.config, this.configText());
    const logFd = openSync(this.log, "a");
    this.proc = spawn([CONTAINERD, "--config", this.config, "--log-level", "info"], {
      stdin: "ignore",
      stdout: logFd,
      stderr: logFd,
      env: baseEnv(),
      cwd: this.dir,
    });
    closeSync(logFd);
    const proc = this.proc;
    await waitFor(
      `containerd on ${this.socket} (log: ${this.log})`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`containerd exited ${proc.exitCode}: ${this.logTail()}`);
        return existsSync(this.socket) && (await runCmd([CTR, "--address", this.socket, "version"], { timeoutMs: 5000 })).code === 0 ? true : undefined;
      },
      30_000,
      100,
    );
  }

  logTail(lines = 20): string {
    try {
      return readFileSync(this.log, "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** `ctr --address SOCKET --namespace NS ARGS` (NS: this containerd's ctr namespace unless given). */
  ctr(args: string[], opts: { namespace?: string; timeoutMs?: number; input?: string } = {}): Promise<CmdResult> {
    return runCmd([CTR, "--address", this.socket, "--namespace", opts.namespace ?? this.ctrNamespace, ...args], opts);
  }

  /** Import the test images into the ctr namespace and the CRI's (k8s.io). */
  async importImages(images: TestImages): Promise<void> {
    for (const ns of [this.ctrNamespace, CRI_NAMESPACE]) {
      for (const [name, tar] of Object.entries(images)) {
        const r = await this.ctr(["images", "import", "--base-name", `machina.test/${name}`, tar], { namespace: ns });
        if (r.code !== 0) throw new Error(`ctr images import ${tar} (namespace ${ns}): ${r.stderr.trim()}`);
      }
    }
  }

  /** The `ctr run` options that select the runtime under test (through its logging wrapper). */
  runtimeFlags(): string[] {
    return ["--runtime", "io.containerd.runc.v2", "--runc-binary", this.runtimeWrapper, "--runc-root", this.runtimeRoots.ctr, "--fifo-dir", `${this.dir}/fifo`];
  }

  cri(): CriClient {
    return new CriClient(this.socket);
  }

  /** Shims this containerd started (their command line names its socket), with their own sockets. */
  shims(): Array<{ pid: number; socket: string }> {
    const out: Array<{ pid: number; socket: string }> = [];
    for (const e of readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const argv = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
        if (!argv[0]?.endsWith(RUNC_SHIM) || !argv.includes(this.socket)) continue;
        const opt = (name: string): string => argv[argv.indexOf(name) + 1] ?? "";
        // containerd 1.6's shim.SocketAddress: /run/containerd/s/ + sha256(ADDRESS/NAMESPACE/ID)
        const hash = createHash("sha256")
          .update(`${this.socket}/${opt("-namespace")}/${opt("-id")}`)
          .digest("hex");
        out.push({ pid: Number(e), socket: `/run/containerd/s/${hash}` });
      } catch {
        // gone
      }
    }
    return out;
  }

  /** Stop everything this containerd ran and remove what it left (idempotent; never throws). */
  async stop(): Promise<void> {
    const running = (): boolean => this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
    // best effort through containerd first: it tears pods down (netns, CNI DEL) and lets shims exit
    if (running()) {
      const c = this.cri();
      try {
        for (const p of await c.listPodSandbox()) {
          await c.stopPodSandbox(p.id).catch(() => undefined);
          await c.removePodSandbox(p.id).catch(() => undefined);
        }
      } catch {
        // containerd not answering: the rest below still cleans up
      } finally {
        c.close();
      }
      for (const id of (await this.ctr(["tasks", "ls", "-q"], { timeoutMs: 10_000 })).stdout.split("\n").filter(Boolean)) {
        await this.ctr(["tasks", "delete", "--force", id], { timeoutMs: 10_000 });
      }
      for (const id of (await this.ctr(["containers", "ls", "-q"], { timeoutMs: 10_000 })).stdout.split("\n").filter(Boolean)) {
        await this.ctr(["containers", "delete", id], { timeoutMs: 10_000 });
      }
    }
    await removeCgroupTree(this.criCgroupParent);
    await removeCgroupTree(this.ctrNamespace);
    if (running() && this.proc) {
      this.proc.kill("SIGTERM");
      if ((await Promise.race([this.proc.exited, Bun.sleep(10_000).then(() => "timeout")])) === "timeout") {
        this.proc.kill("SIGKILL");
        await this.proc.exited;
      }
    }
    await waitFor("shims to exit", () => (this.shims().length === 0 ? true : undefined), 5000, 100).catch(() => undefined);
    for (const shim of this.shims()) {
      try {
        process.kill(shim.pid, "SIGKILL");
      } catch {
        // gone
      }
      rmSync(shim.socket, { force: true });
    }
    await runCmd(["ip", "link", "del", this.bridge]).catch(() => undefined);
    // what containerd, its shims and CNI create outside the scratch directory, when it was not there
    const created = [
      ...(this.createdByUs["/run/containerd"] ? ["/run/containerd/s", "/run/containerd/fifo", "/run/containerd"] : []),
      ...(this.createdByUs["/opt/containerd"] ? ["/opt/containerd"] : []),
      ...(this.createdByUs["/var/lib/cni"] ? ["/var/lib/cni/results", "/var/lib/cni"] : []),
    ];
    for (const d of created) {
      try {
        rmdirSync(d); // only when empty: a shim socket left there means something went wrong
      } catch {
        // not empty or not there
      }
    }
  }
}

/** Start a private containerd in a scratch directory; stopped and cleaned at the scratch's cleanup. */
export async function startContainerd(scratch: Scratch, opts: ContainerdOptions): Promise<PrivateContainerd> {
  const c = new PrivateContainerd(scratch.dir("machina-cri-"), opts);
  scratch.defer(() => c.stop());
  try {
    await c.start();
  } catch (e) {
    throw new Error(`${(e as Error).message}\ncontainerd log:\n${c.logTail()}`);
  }
  return c;
}
