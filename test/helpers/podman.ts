/**
 * podman with an isolated, throwaway configuration, for testing an OCI runtime (machina-oci,
 * issue 13; see docs/podman.md) the way podman drives it.
 *
 * Everything podman keeps is private to one Podman instance: storage (--root, a --runroot under
 * /run: podman refuses one longer than 50 characters), --tmpdir (which also holds the file events
 * backend's log), containers.conf (CONTAINERS_CONF: the network backend, the network config dir,
 * the default network, the ulimits), the default network itself (a CNI bridge with its own name,
 * bridge device and subnet, so nothing is shared with a podman the host may run) and the cgroup
 * parent of the containers and their conmon. cleanup() removes all of it, even after a failure;
 * leftovers() says what is still there.
 *
 * The default network does no masquerading and no firewalling (no CNI firewall or portmap
 * plugins): the tests only talk between the host and the container, and iptables/nft are then
 * never touched — leftovers() checks that the ruleset never names this network.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, unmountBelow } from "./machina.ts";

/** The environment variable naming the runtime under test (default: the repo's bin/machina-oci). */
export const RUNTIME_ENV = "MACHINA_OCI_TEST_RUNTIME";
export const DEFAULT_RUNTIME = join(REPO, "bin/machina-oci");

export function runtimeUnderTest(): string {
  return process.env[RUNTIME_ENV] || DEFAULT_RUNTIME;
}

/**
 * What podman needs on this host: the host's hard limits are below podman's defaults for root
 * (nofile 1048576, nproc 4194304) and cannot be raised, so the runtime's setrlimit fails.
 * Passed as containers.conf default_ulimits, the same as `--ulimit nofile=1024:1024 --ulimit nproc=32768:32768`.
 */
export const PODMAN_ULIMITS = ["nofile=1024:1024", "nproc=32768:32768"] as const;

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function havePodman(): boolean {
  return Bun.spawnSync(["sh", "-c", "command -v podman"], { env: { PATH } }).exitCode === 0;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface PodmanResult {
  code: number;
  stdout: string;
  stderr: string;
  /** wall-clock duration in milliseconds */
  ms: number;
}

/** Runs argv with a deadline (SIGKILL after timeoutMs; code 137 then). */
export async function runCommand(argv: string[], env: Record<string, string>, opts: { timeoutMs?: number; input?: string } = {}): Promise<PodmanResult> {
  const start = performance.now();
  const proc = Bun.spawn(argv, { stdin: opts.input === undefined ? "ignore" : new TextEncoder().encode(opts.input), stdout: "pipe", stderr: "pipe", env });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr, ms: performance.now() - start };
}

/** Lines of a command's output (empty when it fails: used only for snapshots). */
function lines(argv: string[]): string {
  const r = Bun.spawnSync(argv, { env: { PATH }, stdout: "pipe", stderr: "ignore" });
  return r.exitCode === 0 ? r.stdout.toString() : "";
}

/** A /24 in 10.251.0.0/16 that no host route or address uses now. */
function freeSubnet(): number {
  const used = lines(["ip", "-4", "route", "show", "table", "all"]) + lines(["ip", "-4", "-o", "addr"]);
  for (let i = 0; i < 64; i++) {
    const n = 1 + Math.floor(Math.random() * 253);
    if (!used.includes(`10.251.${n}.`)) return n;
  }
  throw new Error("podman test: no free 10.251.N.0/24 subnet for the test network");
}

/** A process's command line, words joined by spaces ("" when it is gone). */
function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

function cgroupControllers(): string[] {
  try {
    return readdirSync("/sys/fs/cgroup").map((c) => join("/sys/fs/cgroup", c));
  } catch {
    return [];
  }
}

/** Removes a cgroup tree depth-first (after killing what is left in it). */
function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
  } catch {
    // gone, or not a cgroup
  }
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      Bun.sleepSync(20);
    }
  }
}

export class Podman {
  readonly tag = randomBytes(3).toString("hex");
  /** --root, --tmpdir, containers.conf and the network config dir live here */
  readonly dir = mkdtempSync("/var/tmp/machina-podman-");
  readonly runroot = mkdtempSync(`/run/mtp-${this.tag}-`);
  readonly network = `mtp-${this.tag}`;
  readonly bridge = `mtp${this.tag}`;
  readonly cgroupParent = `/machina-podman-${this.tag}`;
  private readonly octet = freeSubnet();
  readonly subnet = `10.251.${this.octet}.0/24`;
  readonly gateway = `10.251.${this.octet}.1`;
  /** network namespaces of containers on the bridge network (podman removes them; cleanup makes sure) */
  private readonly netns = new Set<string>();
  private readonly cniDirExisted = existsSync("/var/lib/cni");
  /** ids of every container this podman created (from its events log, read at cleanup) */
  private readonly containers = new Set<string>();

  /** runtimeEnv: MACHINA_* variables the runtime gets (through conmon: containers.conf conmon_env_vars) */
  constructor(
    readonly runtime: string,
    runtimeEnv: Record<string, string | undefined> = {},
  ) {
    const machinaVars = Object.entries(runtimeEnv).filter(([k, v]) => k.startsWith("MACHINA_") && v !== undefined);
    const netd = join(this.dir, "networks");
    mkdirSync(netd);
    mkdirSync(join(this.dir, "tmp"));
    writeFileSync(
      join(this.dir, "containers.conf"),
      [
        "[containers]",
        `default_ulimits = [${PODMAN_ULIMITS.map((u) => `"${u}"`).join(", ")}]`,
        "",
        ...(machinaVars.length > 0
          ? ["[engine]", `conmon_env_vars = ${JSON.stringify([`PATH=${PATH}`, ...machinaVars.map(([k, v]) => `${k}=${v}`)])}`, ""]
          : []),
        "[network]",
        // Debian 12's podman 4.3 takes CNI when netavark is not installed (Debian packages netavark 1.4
        // but podman only recommends it): say so, so an installed netavark does not change the test
        'network_backend = "cni"',
        `network_config_dir = "${netd}"`,
        `default_network = "${this.network}"`,
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(netd, `${this.network}.conflist`),
      JSON.stringify(
        {
          cniVersion: "0.4.0",
          name: this.network,
          plugins: [
            {
              type: "bridge",
              bridge: this.bridge,
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: { type: "host-local", routes: [{ dst: "0.0.0.0/0" }], ranges: [[{ subnet: this.subnet, gateway: this.gateway }]] },
            },
          ],
        },
        null,
        2,
      ),
    );
  }

  /** podman's global flags. */
  globals(): string[] {
    return [
      "--root",
      join(this.dir, "root"),
      "--runroot",
      this.runroot,
      "--tmpdir",
      join(this.dir, "tmp"),
      "--storage-driver",
      "overlay",
      "--cgroup-manager=cgroupfs",
      "--events-backend=file",
      "--runtime",
      this.runtime,
    ];
  }

  env(): Record<string, string> {
    return { PATH: process.env.PATH ?? PATH, CONTAINERS_CONF: join(this.dir, "containers.conf"), HOME: this.dir };
  }

  /** The argv of `podman GLOBALS ARGS...`. For `create`/`run`, the cgroup parent is added. */
  argv(args: string[]): string[] {
    const [verb, ...rest] = args;
    const own = verb === "run" || verb === "create" ? [verb, "--cgroup-parent", this.cgroupParent, ...rest] : args;
    return ["podman", ...this.globals(), ...own];
  }

  run(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<PodmanResult> {
    return runCommand(this.argv(args), this.env(), opts);
  }

  /** Runs podman and returns its stdout; throws with its stderr when it fails. */
  async ok(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`podman ${args.join(" ")}: exit ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `podman import` of a rootfs directory (a tar stream of it) as REF. */
  async importRootfs(rootfs: string, ref: string): Promise<void> {
    const tar = Bun.spawn(["tar", "-C", rootfs, "--numeric-owner", "-cf", "-", "."], { stdout: "pipe", stderr: "pipe" });
    const imp = Bun.spawn(this.argv(["import", "-q", "-", ref]), { stdin: tar.stdout, stdout: "pipe", stderr: "pipe", env: this.env() });
    const [code, err, tarCode] = await Promise.all([imp.exited, new Response(imp.stderr).text(), tar.exited]);
    if (tarCode !== 0 || code !== 0) throw new Error(`podman import of ${rootfs}: tar exit ${tarCode}, podman exit ${code}: ${err.trim()}`);
  }

  /** Records a container's network namespace, so that cleanup removes it if podman did not. */
  async trackNetns(container: string): Promise<string> {
    const key = (await this.ok(["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", container])).trim();
    if (key) this.netns.add(key);
    return key;
  }

  /**
   * Processes of this podman's containers, found by what podman puts in every container process's
   * environment (container=podman, HOSTNAME=the short id), so that a runtime that lost track of
   * one (outside its cgroup, say) is still caught.
   */
  private containerProcesses(): string[] {
    const hostnames = new Set([...this.containers].map((id) => `HOSTNAME=${id.slice(0, 12)}`));
    const out: string[] = [];
    if (hostnames.size === 0) return out;
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      try {
        const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
        if (env.includes("container=podman") && env.some((e) => hostnames.has(e))) out.push(pid);
      } catch {
        // gone
      }
    }
    return out;
  }

  /** podman, conmon and runtime processes of this instance (their command lines name its directories). */
  private podmanProcesses(): string[] {
    const out: string[] = [];
    for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)) {
      const cmd = cmdline(pid);
      if (cmd.includes(this.runroot) || cmd.includes(this.dir)) out.push(pid);
    }
    return out;
  }

  /** Removes everything this instance made; safe to call twice. */
  async cleanup(): Promise<void> {
    try {
      for (const line of readFileSync(join(this.dir, "tmp/events/events.log"), "utf8").split("\n")) {
        const id = /^\{"ID":"([0-9a-f]{64})".*"Type":"container"/.exec(line)?.[1];
        if (id) this.containers.add(id);
      }
    } catch {
      // no events (yet), or cleaned up already
    }
    if (existsSync(join(this.dir, "containers.conf"))) {
      await this.run(["rm", "--all", "--force", "--time", "0"], { timeoutMs: 60_000 }).catch(() => undefined);
      // conmon's exit command (`podman container cleanup`, network teardown) may still be running
      for (let i = 0; i < 100 && this.podmanProcesses().length > 0; i++) await Bun.sleep(100);
      await this.run(["system", "reset", "--force"], { timeoutMs: 60_000 }).catch(() => undefined);
    }
    for (const pid of this.podmanProcesses()) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const ns of this.netns) {
      Bun.spawnSync(["umount", "-l", ns], { stderr: "ignore" });
      rmSync(ns, { force: true });
    }
    for (const pid of this.containerProcesses()) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
    for (const controller of cgroupControllers()) removeCgroupTree(join(controller, this.cgroupParent));
    if (lines(["ip", "-o", "link", "show", "dev", this.bridge])) Bun.spawnSync(["ip", "link", "del", "dev", this.bridge], { stderr: "ignore" });
    rmSync(`/var/lib/cni/networks/${this.network}`, { recursive: true, force: true });
    if (!this.cniDirExisted) {
      for (const d of ["/var/lib/cni/networks", "/var/lib/cni/results", "/var/lib/cni"]) {
        try {
          rmdirSync(d); // only when empty: another CNI user may have started meanwhile
        } catch {
          // not empty or gone
        }
      }
    }
    for (const d of [this.runroot, this.dir]) {
      unmountBelow(d);
      rmSync(d, { recursive: true, force: true });
    }
  }

  /** What cleanup() should have removed and is still there (empty: nothing left behind). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const d of [this.dir, this.runroot, `/var/lib/cni/networks/${this.network}`]) if (existsSync(d)) out.push(`directory ${d}`);
    for (const ns of this.netns) if (existsSync(ns)) out.push(`network namespace ${ns}`);
    for (const c of cgroupControllers()) if (existsSync(join(c, this.cgroupParent))) out.push(`cgroup ${join(c, this.cgroupParent)}`);
    if (lines(["ip", "-o", "link", "show", "dev", this.bridge])) out.push(`link ${this.bridge}`);
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    for (const d of [this.dir, this.runroot]) if (mounts.includes(` ${d}`)) out.push(`mounts below ${d}`);
    const ruleset = lines(["nft", "list", "ruleset"]);
    for (const word of [this.network, this.bridge, `10.251.${this.octet}.`]) if (ruleset.includes(word)) out.push(`nft rules naming ${word}`);
    for (const pid of this.podmanProcesses()) out.push(`process ${pid}: ${cmdline(pid).slice(0, 120)}`);
    for (const pid of this.containerProcesses()) out.push(`container process ${pid}`);
    return out;
  }
}
