/**
 * machina's own attack suite: a hostile payload (test/attacks/attack.c, static, built by the test)
 * tries to escape or to reach the host, and the HOST is inspected afterwards — a sysctl's value, a
 * release_agent, a file in a host directory, a host mount, a key in root's keyring, a process, the
 * host's clock zone, hostname, Ctrl-Alt-Del setting, the helper binaries' hashes — or a secret only
 * the host knows is looked for in what the payload printed. The payload never judges itself.
 *
 * Configurations:
 *   a    machina-nspawn -D IMG ATTACK            (privileged; side by side with systemd-nspawn)
 *   b    machina-nspawn -U -D IMG ATTACK         (--private-users=pick; side by side with systemd-nspawn -U)
 *   c    machinactl exec/shell NAME ATTACK into a container running in the background
 *        (c:default without, c:U with a user namespace)
 *
 * Expected: contained for machina in b and c:U always (except ALWAYS_LIMITS: the host's network
 * namespace without --private-network); in a and c:default (the same privileged container, entered)
 * for everything systemd-nspawn 252's privileged mode contains: an escape nspawn measurably shares
 * in the same run is a known limit (ESCAPE_LIMITS gives the reasons), except what a registered
 * nspawn contains (REGISTERED_NSPAWN_CONTAINS: the comparison run cannot register). "surface"
 * attempts (a privileged kernel interface is reachable, nothing on the host changed) are held to
 * what nspawn allows in the same configuration. A self-test first runs the harmless attempts on the
 * host itself: every canary must flag them, else the suite would prove nothing.
 *
 * Every attempt is harmless if it succeeds: sysctl/sysfs values the host saves and restores, invalid
 * arguments that fail after the privilege check, canary names that exist nowhere else. Everything
 * is restored and removed in afterEach/afterAll, also when a run fails halfway.
 *
 * MACHINA_ATTACK_TABLE=FILE writes the result table as markdown (for docs/security.md).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  openSync,
  readSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { ensureBusyboxImage, fixtureCacheDir } from "../fixtures/images.ts";
import {
  CGROUP_V1_SYSTEMD,
  CGROUP_V2,
  REPO,
  Scratch,
  baseEnv,
  copyTree,
  haveSystemdNspawn,
  hostSuperOptions,
  machineCgroup,
  MACHINA_NSPAWN,
  NSPAWN_PROPAGATE_NOISE,
  uniqueName,
  unmountBelow,
  alive,
  waitForState,
  startNspawn,
} from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const HELPER = join(REPO, "native/build/machina-helper");
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");
const T = 120_000;
const nspawnAvailable = haveSystemdNspawn();
const t0 = performance.now();
const log = (m: string) => {
  if (process.env.MACHINA_ATTACK_VERBOSE) console.error(`[attacks ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}`);
};

// ------------------------------------------------------------------ the attempts

type Config = "a" | "b" | "c:default" | "c:U";
const CONFIGS: Config[] = ["a", "b", "c:default", "c:U"];
type Engine = "machina" | "nspawn";
type Verdict = "contained" | "escaped" | "n/a";
interface Cell {
  verdict: Verdict;
  detail: string;
}

interface Attempt {
  name: string;
  family: string;
  /** escape: the host changed or a host secret was read; surface: a privileged kernel interface answered */
  kind: "escape" | "surface";
  what: string;
}

const A = (name: string, family: string, what: string, kind: "escape" | "surface" = "escape"): Attempt => ({ name, family, kind, what });

const ATTEMPTS: Attempt[] = [
  A("sysctl-write", "procfs", "write kernel.printk_ratelimit through /proc/sys"),
  A("sysctl-remount", "procfs", "mount -o remount,rw /proc/sys, write kernel.printk_ratelimit_burst"),
  A("sysctl-umount", "procfs", "umount /proc/sys, write fs.lease-break-time below it"),
  A("sysctl-newproc", "procfs", "mount a fresh procfs, write kernel.hung_task_warnings"),
  A("sysctl-move", "procfs", "mount --move /proc/sys away, write kernel.sched_rr_timeslice_ms"),
  A("core-pattern", "procfs", "write kernel.core_pattern (a |pipe helper)"),
  A("sysrq-trigger", "procfs", "umount the mask, write /proc/sysrq-trigger"),
  A("proc-mask-umount", "procfs", "umount the masks of /proc/kallsyms, keys, timer_list, kcore and read them"),
  A("sysfs-write", "sysfs", "write /sys/kernel/rcu_expedited"),
  A("sysfs-remount", "sysfs", "mount -o remount,rw /sys, write /sys/kernel/rcu_normal"),
  A("sysfs-newmount", "sysfs", "mount a fresh sysfs, write /sys/kernel/mm/ksm/advisor_max_cpu"),
  A("sysfs-sb-ro", "sysfs", "mount -o remount,ro /sys without bind: the sysfs superblock (the host's /sys without --private-network)"),
  A("binfmt-misc", "procfs", "mount binfmt_misc, register a handler"),
  A("tracefs", "sysfs", "mount tracefs, write trace_marker"),
  A("kmsg-write", "devices", "write the host's kernel log (/dev/kmsg, mknod 1:11)"),
  A("syslog-read", "devices", "read the host's kernel log (syslog(2), mknod 1:11)"),
  A("cg1-release-agent", "cgroups", "mount each cgroup v1 hierarchy, write release_agent"),
  A("cg1-remount-agent", "cgroups", "remount /sys/fs/cgroup/* rw, write release_agent"),
  A("cg2-escape", "cgroups", "mount cgroup2, mkdir at its root (must be the container's own cgroup)"),
  A("cg2-remount", "cgroups", "remount /sys/fs/cgroup/unified rw, mkdir at the host's root"),
  A("raise-limits", "cgroups", "raise pids.max / memory.limit_in_bytes (TasksMax=123, MemoryMax=400M)"),
  A("mount-propagate", "mounts", "make / rshared, mount a tmpfs: must not appear on the host"),
  A("bind-propagate", "mounts", "mount a tmpfs inside a --bind directory: must not appear on the host"),
  A("bindro-remount", "mounts", "remount,rw a --bind-ro mount and create a file in the host directory"),
  A("rootro-remount", "mounts", "remount,rw a --read-only root and create a file in the image"),
  A("disk-read", "devices", "mknod a host disk (root disk, else a loop device) and read its superblock UUID"),
  A("disk-mount", "devices", "mknod a host disk (root disk, else a loop device), mount it, read a secret on it"),
  A("chroot-breakout", "namespaces", "chroot(subdir); chdir(..)x64; chroot(.); read a host secret"),
  A("open-by-handle", "namespaces", "open_by_handle_at a host file's handle (shocker)"),
  A("hostpid-environ", "processes", "read a host process's environment (/proc, process_vm_readv, ptrace)"),
  A("hostpid-kill", "processes", "kill a host process by its host pid"),
  A("leaked-fds", "processes", "fds beyond 0-2 in a process the host put into the container; walk out of them"),
  A("entered-environ", "entered", "ptrace/process_vm_readv/environ of processes entered with machinactl exec"),
  A("entered-root", "entered", "host root/cwd/fds of entered processes (/proc/PID/root, cwd, fd)"),
  A("exe-overwrite", "entered", "reopen /proc/PID/exe of host helpers for writing (CVE-2019-5736)"),
  A("init-module", "kernel", "init_module (an invalid image)", "surface"),
  A("finit-module", "kernel", "finit_module (an invalid image)", "surface"),
  A("kexec-load", "kernel", "kexec_load (too many segments)", "surface"),
  A("kexec-file-load", "kernel", "kexec_file_load (invalid flags)", "surface"),
  A("bpf-map", "kernel", "bpf(BPF_MAP_CREATE)", "surface"),
  A("bpf-enumerate", "kernel", "bpf(BPF_PROG_GET_NEXT_ID): the host's BPF programs", "surface"),
  A("perf-system-wide", "kernel", "perf_event_open on a whole CPU", "surface"),
  A("userfaultfd", "kernel", "userfaultfd()", "surface"),
  A("io-uring", "kernel", "io_uring_setup()", "surface"),
  A("fanotify-fs", "kernel", "fanotify on the whole file system", "surface"),
  A("iopl", "kernel", "iopl(3)", "surface"),
  A("adjtimex", "time", "adjtimex(ADJ_TICK) (an out-of-range tick)", "surface"),
  A("settimeofday-tz", "time", "settimeofday: the kernel's timezone"),
  A("sethostname", "identity", "sethostname and /proc/sys/kernel/hostname"),
  A("setdomainname", "identity", "setdomainname"),
  A("swapon", "kernel", "swapon (a nonexistent file)", "surface"),
  A("swapoff", "kernel", "swapoff (a nonexistent file)", "surface"),
  A("acct", "kernel", "acct (a nonexistent file)", "surface"),
  A("reboot-cad", "kernel", "reboot(2) LINUX_REBOOT_CMD_CAD_ON/OFF: the host's Ctrl-Alt-Del"),
  A("keyring-read", "keys", "keyctl: read a key in the host root's user keyring"),
  A("keyring-write", "keys", "add_key to the host root's user keyring"),
  A("net-admin", "network", "SIOCSIFTXQLEN on lo"),
  A("abstract-socket", "network", "connect to a host abstract unix socket"),
  A("tiocsti", "terminal", "TIOCSTI a command into the host terminal (under a pty)"),
  A("tioclinux", "terminal", "TIOCLINUX paste into the host terminal (under a pty)"),
  A("copy-to-symlink", "transfers", "machinactl copy-to through image symlinks to host paths"),
  A("copy-from-symlink", "transfers", "machinactl copy-from through image symlinks to a host secret"),
  A("copy-race", "transfers", "copy-to/copy-from while the container swaps a directory and a symlink"),
  A("bind-dest-symlink", "image files", "--bind onto an image path that is a symlink to a host directory"),
  A("user-passwd-shadow", "image files", "-u with /etc/passwd -> /etc/shadow (host's must not be read)"),
  A("user-passwd-host", "image files", "-u with /etc/passwd -> a host passwd file"),
  A("os-release-link", "image files", "/etc/os-release -> a host file, read by machinactl list/status/show"),
  A("timezone-copy", "image files", "--timezone=copy with /etc/localtime -> a host file"),
  A("timezone-symlink", "image files", "--timezone=symlink with /etc/localtime -> ../../host file"),
  A("resolv-copy-host", "image files", "--resolv-conf=copy-host with /etc/resolv.conf -> a host file"),
  A("resolv-replace-host", "image files", "--resolv-conf=replace-host with /etc/resolv.conf -> a host file"),
  A("nspawnfile-bind", "settings", "untrusted IMG.nspawn: Bind=/:/hostroot, read a host secret"),
  A("nspawnfile-caps", "settings", "untrusted IMG.nspawn: Capability=all, then CAP_NET_ADMIN on lo"),
  A("nspawnfile-privateusers", "settings", "untrusted IMG.nspawn: PrivateUsers=no under -U"),
];

/**
 * What systemd-nspawn 252's privileged mode (no user namespace) cannot contain on this host: the
 * container keeps CAP_SYS_ADMIN in the host's user namespace, so kernel-level read-only flags and
 * masks are only advisory. Config a and c:default report these as known limits when nspawn
 * measurably escapes too (and as failures when nspawn contains them and machina does not).
 */
const ESCAPE_LIMITS: Record<string, string> = {
  "sysctl-remount": "procfs remount (CAP_SYS_ADMIN in the host user namespace)",
  "sysctl-umount": "procfs masks can be unmounted",
  "sysctl-newproc": "a fresh procfs can be mounted",
  "sysctl-move": "procfs masks can be moved away",
  "sysfs-remount": "sysfs remount",
  "sysfs-newmount": "a fresh sysfs can be mounted",
  "sysfs-sb-ro": "sysfs superblock remount (CAP_SYS_ADMIN in the host user namespace): a sysvinit guest's own shutdown does it",
  "binfmt-misc": "binfmt_misc without a user namespace is the host's",
  tracefs: "tracefs without a user namespace is the host's",
  "cg1-release-agent": "cgroup v1 release_agent on a hybrid host",
  "cg1-remount-agent": "cgroup v1 release_agent on a hybrid host",
  "cg2-remount": "cgroup remount",
  "raise-limits": "cgroup v1 hierarchies can be mounted afresh (as for release_agent), limits included",
  "rootro-remount": "--read-only is a plain read-only mount flag",
  "bindro-remount": "--bind-ro is a plain read-only mount flag",
  "chroot-breakout": "CAP_SYS_CHROOT (nspawn keeps it)",
  "open-by-handle": "CAP_DAC_READ_SEARCH (nspawn keeps it)",
  "abstract-socket": "no --private-network: the host's network namespace and its abstract sockets",
  "proc-mask-umount": "the masks over /proc files can be unmounted",
};

/**
 * What the comparison run (`systemd-nspawn --register=no --keep-unit`: there is no machined here)
 * lets through but nspawn's normal privileged mode contains: registered with machined, its scope
 * gets DevicePolicy=closed (DeviceAllow=/dev/net/tun, char-pts only). machina escaping these is a bug.
 */
const REGISTERED_NSPAWN_CONTAINS: Record<string, string> = {
  "kmsg-write": "device policy: /dev/kmsg (mknod 1:11)",
  "syslog-read": "device policy: /dev/kmsg (mknod 1:11)",
  "disk-read": "device policy: block devices",
  "disk-mount": "device policy: block devices",
};

/** Attempts nspawn cannot be measured on (no --property without registration): the attempt whose nspawn verdict stands in. */
const LIMIT_PROXY: Record<string, string> = {
  "raise-limits": "cg1-release-agent",
};

/** Escapes nspawn cannot contain in any mode (shared by design without --private-network). */
const ALWAYS_LIMITS: Record<string, string> = {
  "abstract-socket": "no --private-network: the host's network namespace and its abstract sockets",
};

// ------------------------------------------------------------------ results

const results = new Map<string, Map<string, Cell>>(); // attempt -> "config/engine" -> cell
const key = (c: Config, e: Engine) => `${c}/${e}`;
function put(attempt: string, c: Config, e: Engine, cell: Cell): void {
  if (!ATTEMPTS.some((a) => a.name === attempt)) throw new Error(`unknown attempt ${attempt}`);
  let m = results.get(attempt);
  if (!m) results.set(attempt, (m = new Map()));
  m.set(key(c, e), cell);
}
const cell = (attempt: string, c: Config, e: Engine): Cell | undefined => results.get(attempt)?.get(key(c, e));
const esc = (detail: string): Cell => ({ verdict: "escaped", detail });
const ok = (detail = ""): Cell => ({ verdict: "contained", detail });
const na = (detail: string): Cell => ({ verdict: "n/a", detail });

// ------------------------------------------------------------------ fixtures

const files = new Scratch();
const scratch = new Scratch();
let busybox: string;
let attackBin: string;
let base: string;
let stateDir: string;
let pool: string;
/** the host's root block device "MAJ:MIN" and the bytes of its superblock UUID */
let disk: { dev: string; uuidHex: string; secretPath?: string; secret?: string; loop?: string } | undefined;
let baseline: Map<string, AttackLine>;

async function ensureAttack(): Promise<string> {
  const h = createHash("sha256");
  for (const f of ["test/attacks/attack.c", "test/attacks/build.sh"]) h.update(readFileSync(join(REPO, f)));
  const out = join(fixtureCacheDir(), `attack-${h.digest("hex").slice(0, 16)}`);
  if (existsSync(out)) return out;
  mkdirSync(fixtureCacheDir(), { recursive: true });
  const tmp = `${out}.#${randomBytes(4).toString("hex")}`;
  const r = Bun.spawnSync([join(REPO, "test/attacks/build.sh"), tmp], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`building the attack program: ${r.stderr.toString()}`);
  renameSync(tmp, out);
  return out;
}

interface AttackLine {
  attack: string;
  rc: number;
  errno: string;
  data: string;
  note: string;
}

function parseLines(stdout: string): Map<string, AttackLine> {
  const m = new Map<string, AttackLine>();
  for (const l of stdout.split(/\r?\n/)) {
    if (!l.startsWith('{"attack"')) continue;
    try {
      const j = JSON.parse(l) as AttackLine;
      m.set(j.attack, j);
    } catch {
      // a line cut by the terminal: ignored
    }
  }
  return m;
}

const sh = (cmd: string) => Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
/** The host's /sys superblock: "rw" or "ro". */
const hostSysfsSuper = () => hostSuperOptions("/sys")?.split(",")[0];
const read = (p: string) => readFileSync(p, "utf8").trim();
const tryRead = (p: string) => {
  try {
    return read(p);
  } catch {
    return undefined;
  }
};
const write = (p: string, v: string) => {
  try {
    writeFileSync(p, v);
  } catch {
    // restored best-effort
  }
};
const sha = (p: string) => {
  try {
    return `${createHash("sha256").update(readFileSync(p)).digest("hex")}@${statSync(p).mtimeMs}`;
  } catch {
    return "missing";
  }
};
const hex = () => randomBytes(6).toString("hex");
const hostAttack = (...args: string[]) =>
  sh(`${attackBin} ${args.map((a) => `'${a}'`).join(" ")}`)
    .stdout.toString()
    .trim();
const dmesg = () => sh("dmesg").stdout.toString();

/** A fresh busybox copy with the attack program (and the mount points the binds need). */
function image(name = uniqueName("atk")): string {
  const dir = join(base, "img", name);
  mkdirSync(join(base, "img"), { recursive: true });
  copyTree(busybox, dir);
  copyFileSync(attackBin, join(dir, "usr/bin/attack"));
  chmodSync(join(dir, "usr/bin/attack"), 0o755);
  for (const d of ["mnt/hrw", "mnt/hro", "hostroot"]) mkdirSync(join(dir, d), { recursive: true });
  return dir;
}

// ------------------------------------------------------------------ host canaries

const SYSCTL_TARGETS: Record<string, { path: string; arg: string; toggle?: boolean }> = {
  "sysctl-write": { path: "/proc/sys/kernel/printk_ratelimit", arg: "v_printk_ratelimit" },
  "sysctl-remount": { path: "/proc/sys/kernel/printk_ratelimit_burst", arg: "v_printk_ratelimit_burst" },
  "sysctl-umount": { path: "/proc/sys/fs/lease-break-time", arg: "v_lease_break_time" },
  "sysctl-newproc": { path: "/proc/sys/kernel/hung_task_warnings", arg: "v_hung_task_warnings" },
  "sysctl-move": { path: "/proc/sys/kernel/sched_rr_timeslice_ms", arg: "v_sched_rr_timeslice_ms" },
  "sysfs-write": { path: "/sys/kernel/rcu_expedited", arg: "v_rcu_expedited", toggle: true },
  "sysfs-remount": { path: "/sys/kernel/rcu_normal", arg: "v_rcu_normal", toggle: true },
  "sysfs-newmount": { path: "/sys/kernel/mm/ksm/advisor_max_cpu", arg: "v_ksm_advisor_max_cpu" },
};
const CTRL_ALT_DEL = "/proc/sys/kernel/ctrl-alt-del";
const LO_TXQ = "/sys/class/net/lo/tx_queue_len";
const HELPERS_TO_HASH = () => [HELPER, process.execPath, ...(nspawnAvailable ? [sh("command -v systemd-nspawn").stdout.toString().trim()] : [])];

/**
 * Everything the host plants before one run and inspects after it. restore() puts every value back;
 * it runs after each inspection and again (idempotently) from afterAll.
 */
class Canaries {
  readonly token = hex();
  readonly dir: string;
  readonly secret: string;
  readonly fileSecret = `FILESECRET-${hex()}`;
  readonly envSecret = `ENVSECRET-${hex()}`;
  readonly callerSecret = `CALLERSECRET-${hex()}`;
  readonly keySecret = `KEYSECRET-${hex()}`;
  readonly hostLog = `machina-hostlog-${hex()}`;
  readonly hrw: string;
  readonly hro: string;
  private saved = new Map<string, string>();
  /** the host's /sys superblock before the run ("rw") */
  private sysfsSuper: string | undefined;
  private keyId = "";
  private victim: ReturnType<typeof Bun.spawn> | undefined;
  private server: Server | undefined;
  private abstractGot = "";
  private binfmt = "";
  private hashes = new Map<string, string>();
  private tz = "";
  private hostname = "";
  private domainname = "";

  constructor() {
    this.dir = join(base, `canary-${this.token}`);
    mkdirSync(join(this.dir, "secretdir"), { recursive: true, mode: 0o755 });
    chmodSync(this.dir, 0o755);
    this.secret = join(this.dir, "secretdir/secret.txt");
    writeFileSync(this.secret, `${this.fileSecret}\n`, { mode: 0o644 });
    this.hrw = join(this.dir, "hrw");
    this.hro = join(this.dir, "hro");
    mkdirSync(join(this.hrw, "sub"), { recursive: true });
    mkdirSync(this.hro, { recursive: true });
    // writable by anyone: only the read-only mount may stop a write, not the owner of the directory
    chmodSync(this.hro, 0o777);
    chmodSync(this.hrw, 0o777);
  }

  /** `helpers`: hash the host binaries too (only the runs with exe-overwrite need it: bun is 100 MB) */
  async plant(opts: { helpers?: boolean } = {}): Promise<void> {
    for (const [, t] of Object.entries(SYSCTL_TARGETS)) {
      const v = tryRead(t.path);
      if (v !== undefined && !this.saved.has(t.path)) this.saved.set(t.path, v);
    }
    this.saved.set("/proc/sys/kernel/core_pattern", read("/proc/sys/kernel/core_pattern"));
    for (const ra of this.releaseAgents()) this.saved.set(ra, read(ra));
    this.saved.set(CTRL_ALT_DEL, read(CTRL_ALT_DEL));
    this.saved.set(LO_TXQ, read(LO_TXQ));
    this.sysfsSuper ??= hostSysfsSuper();
    this.tz = hostAttack("host-gettz");
    this.hostname = read("/proc/sys/kernel/hostname");
    this.domainname = read("/proc/sys/kernel/domainname");
    this.keyId = hostAttack("host-addkey", `machina-canary-${this.token}`, this.keySecret);
    this.victim = Bun.spawn(["sleep", "600"], { env: { MACHINA_CANARY: this.envSecret }, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    scratch.track(this.victim as never);
    this.server = createServer((s) => s.on("data", (d) => (this.abstractGot += d.toString())));
    await new Promise<void>((res) => this.server!.listen(`\0machina-canary-${this.token}`, res));
    // keep the host's binfmt_misc super block alive during the run (it drops its entries when unmounted)
    this.binfmt = join(this.dir, "binfmt");
    mkdirSync(this.binfmt);
    if (sh(`mount -t binfmt_misc binfmt_misc ${this.binfmt}`).exitCode !== 0) this.binfmt = "";
    write("/dev/kmsg", `${this.hostLog}\n`);
    if (opts.helpers) for (const h of HELPERS_TO_HASH()) this.hashes.set(h, sha(h));
  }

  private releaseAgents(): string[] {
    return readdirSync("/sys/fs/cgroup")
      .map((c) => `/sys/fs/cgroup/${c}/release_agent`)
      .filter((p) => existsSync(p));
  }

  /** KEY=VALUE arguments for `attack run` */
  args(extra: Record<string, string> = {}): string[] {
    const a: Record<string, string> = {
      token: this.token,
      secret: this.secret,
      secretfs: this.secret,
      secretname: "secret.txt",
      hostpid: String(this.victim?.pid ?? 0),
      handle: hostAttack("host-handle", this.secret),
      dirhandle: hostAttack("host-handle", join(this.dir, "secretdir")),
      cad: read(CTRL_ALT_DEL) === "1" ? "0" : "1",
      tz: String((Number(this.tz) + 7) % 720),
      txqlen: String(Number(read(LO_TXQ)) + 3),
      abstract: `machina-canary-${this.token}`,
      bindrw: "/mnt/hrw",
      bindro: "/mnt/hro",
      scratch: "/tmp/.attack",
      ...(this.keyId ? { keyid: this.keyId } : {}),
      ...(disk ? { disk: disk.dev } : {}),
      ...(disk?.secretPath ? { secretfs: disk.secretPath } : {}),
      ...extra,
    };
    for (const [, t] of Object.entries(SYSCTL_TARGETS)) {
      const v = this.saved.get(t.path);
      if (v !== undefined) a[t.arg] = t.toggle ? (v === "0" ? "1" : "0") : String(Number(v) + 1);
    }
    return Object.entries(a).map(([k, v]) => `${k}=${v}`);
  }

  /** The host-side verdict of every attempt of `attack run` whose output is `lines`. */
  inspect(lines: Map<string, AttackLine>, opts: { image?: string; scope?: { pids?: string; memory?: string } } = {}): Map<string, Cell> {
    const out = new Map<string, Cell>();
    const L = (n: string) => lines.get(n);
    const secrets = [this.fileSecret, this.envSecret, this.callerSecret, this.keySecret, this.hostLog, ...(disk?.secret ? [disk.secret] : [])];
    const leaked = (n: string) => {
      const d = L(n)?.data ?? "";
      return secrets.find((s) => d.includes(s));
    };
    const readVerdict = (n: string) => {
      if (!L(n)) return;
      const s = leaked(n);
      out.set(n, s ? esc(`read ${s.split("-")[0]}: ${L(n)!.note}`) : ok(L(n)!.note || L(n)!.errno));
    };
    for (const [n, t] of Object.entries(SYSCTL_TARGETS)) {
      if (!L(n)) continue;
      const before = this.saved.get(t.path);
      const now = tryRead(t.path);
      if (before === undefined) out.set(n, na(`${t.path} does not exist on this host`));
      else out.set(n, now !== before ? esc(`host ${t.path}: ${before} -> ${now}`) : ok(L(n)!.note));
    }
    if (L("sysfs-sb-ro")) {
      const now = hostSysfsSuper();
      out.set("sysfs-sb-ro", now !== this.sysfsSuper ? esc(`host /sys superblock: ${this.sysfsSuper} -> ${now}`) : ok(L("sysfs-sb-ro")!.note));
    }
    if (L("core-pattern")) {
      const now = read("/proc/sys/kernel/core_pattern");
      out.set("core-pattern", now !== this.saved.get("/proc/sys/kernel/core_pattern") ? esc(`host core_pattern = ${now}`) : ok(L("core-pattern")!.note));
    }
    if (L("sysrq-trigger"))
      out.set(
        "sysrq-trigger",
        existsSync("/proc/sysrq-trigger")
          ? /sysrq: HELP/.test(dmesg())
            ? esc("sysrq help in the host's log")
            : ok(L("sysrq-trigger")!.note)
          : na("no /proc/sysrq-trigger on this host (CONFIG_MAGIC_SYSRQ off)"),
      );
    if (L("proc-mask-umount")) {
      const d = L("proc-mask-umount")!.data;
      const stext = /^([0-9a-f]+) T _stext$/m.exec(sh("grep ' T _stext$' /proc/kallsyms").stdout.toString())?.[1];
      const kaddr = stext && !/^0+$/.test(stext) && d.includes(stext);
      out.set(
        "proc-mask-umount",
        d.includes(`machina-canary-${this.token}`)
          ? esc("/proc/keys showed the host's key")
          : kaddr
            ? esc("/proc/kallsyms showed real kernel addresses")
            : ok(L("proc-mask-umount")!.note),
      );
    }
    if (L("binfmt-misc")) {
      const entry = this.binfmt ? join(this.binfmt, `machina-canary-${this.token}`) : "";
      out.set(
        "binfmt-misc",
        !this.binfmt
          ? na("binfmt_misc not mountable on the host")
          : existsSync(entry)
            ? esc("handler registered in the host's binfmt_misc")
            : ok(L("binfmt-misc")!.note),
      );
    }
    if (L("tracefs")) {
      const m = join(this.dir, "tracing");
      mkdirSync(m, { recursive: true });
      if (sh(`mount -t tracefs tracefs ${m}`).exitCode !== 0) out.set("tracefs", na("tracefs not mountable on the host"));
      else {
        const found = sh(`grep -c 'machina-canary-trace-${this.token}' ${m}/trace`).stdout.toString().trim();
        sh(`umount ${m}`);
        out.set("tracefs", Number(found) > 0 ? esc("marker in the host's trace buffer") : ok(L("tracefs")!.note));
      }
    }
    if (L("kmsg-write"))
      out.set("kmsg-write", dmesg().includes(`machina-canary-kmsg-${this.token}`) ? esc("line in the host's kernel log") : ok(L("kmsg-write")!.note));
    readVerdict("syslog-read");
    for (const n of ["cg1-release-agent", "cg1-remount-agent"]) {
      if (!L(n)) continue;
      const hit = this.releaseAgents().filter((p) => read(p).includes(this.token));
      out.set(
        n,
        hit.some((p) => read(p).includes(n === "cg1-release-agent" ? `${this.token}-new` : "-remount"))
          ? esc(`host ${hit.join(", ")} written`)
          : ok(L(n)!.note),
      );
    }
    for (const [n, suffix] of [
      ["cg2-escape", "-cg2"],
      ["cg2-remount", "-cg2r"],
    ] as const) {
      if (!L(n)) continue;
      const roots = readdirSync("/sys/fs/cgroup").map((c) => `/sys/fs/cgroup/${c}/machina-canary-${this.token}${suffix}`);
      const hit = roots.filter((p) => existsSync(p));
      out.set(n, hit.length ? esc(`created ${hit.join(", ")}`) : ok(L(n)!.note));
    }
    if (L("raise-limits")) {
      if (!opts.scope) out.set("raise-limits", na("no limits set (nspawn --register=no cannot set properties)"));
      else {
        const p = opts.scope.pids,
          m = opts.scope.memory;
        const raised = [p && p !== "123" ? `pids.max ${p}` : "", m && Number(m) > 400 * 1024 * 1024 ? `memory ${m}` : ""].filter(Boolean);
        out.set(
          "raise-limits",
          raised.length ? esc(`host sees ${raised.join(", ")}`) : p === undefined ? na("limits not found on the host") : ok(`host: pids.max ${p}, memory ${m}`),
        );
      }
    }
    const mounts = `${tryRead("/proc/1/mountinfo") ?? ""}\n${read("/proc/self/mountinfo")}`;
    for (const [n, tag] of [
      ["mount-propagate", "-root"],
      ["bind-propagate", "-bind"],
    ] as const) {
      if (!L(n)) continue;
      out.set(n, mounts.includes(`machina-canary-${this.token}${tag}`) ? esc("the mount appeared in the host's mount namespace") : ok(L(n)!.note));
    }
    if (L("bindro-remount"))
      out.set(
        "bindro-remount",
        existsSync(join(this.hro, `machina-canary-${this.token}-bindro`))
          ? esc("file created in the host's --bind-ro directory")
          : ok(L("bindro-remount")!.note),
      );
    if (L("rootro-remount") && opts.image)
      out.set(
        "rootro-remount",
        existsSync(join(opts.image, `machina-canary-${this.token}-rootro`)) ? esc("file created in the --read-only image") : ok(L("rootro-remount")!.note),
      );
    if (L("disk-read"))
      out.set(
        "disk-read",
        !disk
          ? na("no host disk the test itself can open")
          : L("disk-read")!.data.includes(disk.uuidHex)
            ? esc(`read the superblock of ${disk.loop ?? "the host disk"}`)
            : ok(L("disk-read")!.note),
      );
    if (L("disk-mount")) {
      const d = L("disk-mount")!;
      if (!disk) out.set("disk-mount", na("no host disk the test itself can open"));
      else if (disk.secret && d.data.includes(disk.secret)) out.set("disk-mount", esc(`mounted ${disk.loop} and read the secret on it`));
      else readVerdict("disk-mount");
    }
    for (const n of ["chroot-breakout", "open-by-handle", "hostpid-environ", "entered-root", "keyring-read"]) readVerdict(n);
    if (L("hostpid-kill")) out.set("hostpid-kill", this.victim && !alive(this.victim.pid) ? esc("the host process was killed") : ok(L("hostpid-kill")!.note));
    if (L("leaked-fds")) {
      const l = L("leaked-fds")!;
      const s = leaked("leaked-fds");
      out.set("leaked-fds", s ? esc(`secret read through a leaked fd: ${l.data}`) : l.rc > 0 ? esc(`leaked: ${l.data}`) : ok("only 0-2"));
    }
    if (L("entered-environ")) {
      const l = L("entered-environ")!;
      const s = leaked("entered-environ");
      // attached to machina's own helper before it was confined like the container's processes:
      // its capabilities, fds and the code it runs next would be the attacker's. (Attaching to a
      // process already confined like PID 1 — the command between its fork and its execve, which
      // a privileged container's root may ptrace as it may any of its processes — gains nothing.)
      const helper = /\{attached \d+ [^}]*machina-helper[^}]* UNCONFINED\}/.exec(l.data)?.[0] ?? (l.data.includes(HELPER) ? HELPER : undefined);
      out.set(
        "entered-environ",
        s
          ? esc(`read ${s.split("-")[0]} from an entered process (${l.note})`)
          : helper
            ? esc(`ptrace-attached to machina's helper while it entered: ${helper} (${l.note})`)
            : ok(l.note),
      );
    }
    if (L("exe-overwrite") && this.hashes.size === 0) throw new Error("exe-overwrite needs plant({ helpers: true })");
    if (L("exe-overwrite")) {
      const changed = [...this.hashes].filter(([p, h]) => sha(p) !== h).map(([p]) => p);
      out.set("exe-overwrite", changed.length ? esc(`rewrote ${changed.join(", ")}`) : ok(L("exe-overwrite")!.note));
    }
    if (L("settimeofday-tz"))
      out.set(
        "settimeofday-tz",
        hostAttack("host-gettz") !== this.tz ? esc(`host timezone ${this.tz} -> ${hostAttack("host-gettz")}`) : ok(L("settimeofday-tz")!.errno),
      );
    if (L("sethostname")) out.set("sethostname", read("/proc/sys/kernel/hostname") !== this.hostname ? esc("host hostname changed") : ok());
    if (L("setdomainname")) out.set("setdomainname", read("/proc/sys/kernel/domainname") !== this.domainname ? esc("host domainname changed") : ok());
    if (L("reboot-cad"))
      out.set("reboot-cad", read(CTRL_ALT_DEL) !== this.saved.get(CTRL_ALT_DEL) ? esc("host Ctrl-Alt-Del setting changed") : ok(L("reboot-cad")!.errno));
    if (L("keyring-write"))
      out.set(
        "keyring-write",
        readFileSync("/proc/keys", "utf8").includes(`machina-canary-${this.token}-w`)
          ? esc("key added to the host root's keyring")
          : ok(L("keyring-write")!.errno),
      );
    if (L("net-admin")) out.set("net-admin", read(LO_TXQ) !== this.saved.get(LO_TXQ) ? esc("host lo txqueuelen changed") : ok(L("net-admin")!.errno));
    if (L("abstract-socket"))
      out.set("abstract-socket", this.abstractGot.includes(`pwned-${this.token}`) ? esc("reached a host abstract socket") : ok(L("abstract-socket")!.errno));
    // the surface probes: judged against the same probe run directly on the host
    for (const a of ATTEMPTS.filter((x) => x.kind === "surface")) {
      const l = L(a.name);
      if (!l) continue;
      const h = baseline.get(a.name);
      const hostCan = h !== undefined && (h.rc >= 0 || !["EPERM", "EACCES", "ENOSYS"].includes(h.errno));
      if (!hostCan) out.set(a.name, na(`not available on this host (${h?.errno ?? "?"})`));
      else out.set(a.name, l.rc >= 0 || l.errno === h.errno ? esc(`allowed (${l.rc >= 0 ? "ok" : l.errno}, as on the host)`) : ok(l.errno));
    }
    return out;
  }

  /** Put everything back; idempotent. */
  async restore(): Promise<void> {
    // first: the writes below need the host's /sys writable again
    if (this.sysfsSuper === "rw" && hostSysfsSuper() === "ro") sh("mount -o remount,rw /sys");
    for (const [p, v] of this.saved) write(p, v.length === 0 ? "\n" : v);
    if (this.tz !== "" && hostAttack("host-gettz") !== this.tz) hostAttack("host-settz", this.tz);
    if (this.hostname && read("/proc/sys/kernel/hostname") !== this.hostname) write("/proc/sys/kernel/hostname", this.hostname);
    if (this.domainname && read("/proc/sys/kernel/domainname") !== this.domainname) write("/proc/sys/kernel/domainname", this.domainname);
    for (const l of readFileSync("/proc/keys", "utf8").split("\n"))
      if (l.includes(`machina-canary-${this.token}`)) hostAttack("host-unlinkkey", String(parseInt(l.split(" ")[0]!, 16)));
    for (const c of existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup") : []) {
      sh(`find /sys/fs/cgroup/${c} -maxdepth 8 -depth -type d -name '*machina-canary-${this.token}*' -exec rmdir {} \\; 2>/dev/null`);
    }
    for (const mp of [...read("/proc/self/mountinfo").split("\n"), ...(tryRead("/proc/1/mountinfo") ?? "").split("\n")])
      if (mp.includes(`machina-canary-${this.token}`)) sh(`umount -l '${mp.split(" ")[4]}'`);
    if (this.binfmt) {
      const e = join(this.binfmt, `machina-canary-${this.token}`);
      if (existsSync(e)) write(e, "-1");
      sh(`umount -l ${this.binfmt}`);
      this.binfmt = "";
    }
    // had a payload ever run in the host's mount namespace: what it made at the root
    for (const f of [`/machina-canary-${this.token}-rootro`]) rmSync(f, { force: true });
    if (existsSync("/machina-prop") && !sh("mountpoint -q /machina-prop").exitCode) sh("umount -l /machina-prop");
    if (existsSync("/machina-prop")) sh("rmdir /machina-prop");
    if (this.victim && this.victim.exitCode === null) this.victim.kill("SIGKILL");
    this.server?.close();
    this.server = undefined;
  }
}

const allCanaries: Canaries[] = [];
function canaries(): Canaries {
  const c = new Canaries();
  allCanaries.push(c);
  return c;
}

// ------------------------------------------------------------------ running the engines

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command; when its stdout shows {"holding":true}, call onHold (the payload waits for it). */
async function run(cmd: string[], env: Record<string, string>, onHold?: () => void, timeoutMs = 60_000): Promise<Ran> {
  log(
    cmd
      .filter((a) => !a.includes("="))
      .slice(0, 6)
      .join(" "),
  );
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
  scratch.track(p as never);
  const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  let stdout = "";
  const errP = new Response(p.stderr).text();
  const dec = new TextDecoder();
  let held = false;
  for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
    stdout += dec.decode(chunk, { stream: true });
    if (!held && onHold && stdout.includes('{"holding":true}')) {
      held = true;
      onHold();
    }
  }
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? -1, stdout, stderr: await errP };
}

const machinaEnv = (extra: Record<string, string> = {}) =>
  baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool, MACHINA_SETTINGS_DIRS: join(base, "no-settings"), ...extra });

/** systemd-nspawn in a cgroup of its own (as runSystemdNspawn), with the same onHold streaming. */
async function runNspawnEngine(args: string[], machine: string, wrapper: string[] = []): Promise<Ran> {
  const cg = `machina-it-${uniqueName("ns")}`;
  const dirs = [`${CGROUP_V1_SYSTEMD}/${cg}`, `${CGROUP_V2}/${cg}`];
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const script = `echo $$ > ${dirs[0]}/cgroup.procs && echo $$ > ${dirs[1]}/cgroup.procs && exec systemd-nspawn --register=no --keep-unit "$@"`;
  try {
    const r = await run([...wrapper, "sh", "-c", script, "sh", ...args], baseEnv({ SYSTEMD_NSPAWN_TMPFS_TMP: "1" }));
    return {
      ...r,
      stderr: r.stderr
        .split("\n")
        .filter((l) => !NSPAWN_PROPAGATE_NOISE.test(l))
        .join("\n"),
    };
  } finally {
    for (const d of dirs) {
      for (let i = 0; i < 50 && existsSync(d); i++) {
        for (const pid of (tryRead(`${d}/cgroup.procs`) ?? "").split("\n").filter(Boolean)) sh(`kill -9 ${pid}`);
        sh(`find ${d} -depth -type d -exec rmdir {} \\; 2>/dev/null`);
        if (existsSync(d)) await Bun.sleep(40);
      }
    }
    rmSync(`/run/systemd/nspawn/propagate/${machine}`, { recursive: true, force: true });
  }
}

/** The v1 pids and memory limits of machine NAME's scope, read on the host. */
function scopeLimits(name: string): { pids?: string; memory?: string } {
  const find = (hier: string, file: string) => {
    const r = sh(`find /sys/fs/cgroup/${hier} -maxdepth 4 -type d -name '${machineCgroup(name, "").slice(1).replace(/\\/g, "\\\\")}'`)
      .stdout.toString()
      .split("\n")[0];
    return r ? tryRead(`${r}/${file}`) : undefined;
  };
  const v2 = tryRead(`${machineCgroup(name)}/pids.max`);
  return { pids: find("pids", "pids.max") ?? v2, memory: find("memory", "memory.limit_in_bytes") ?? tryRead(`${machineCgroup(name)}/memory.max`) };
}

const MAIN_ONLY = ATTEMPTS.filter(
  (a) =>
    !["tiocsti", "tioclinux", "entered-environ", "entered-root", "exe-overwrite"].includes(a.name) &&
    a.family !== "transfers" &&
    a.family !== "image files" &&
    a.family !== "settings",
)
  .map((a) => a.name)
  .join(",");

function record(c: Config, e: Engine, cells: Map<string, Cell>, r: Ran, wanted: string[]): void {
  for (const n of wanted) {
    const v = cells.get(n);
    put(
      n,
      c,
      e,
      v ??
        (r.code !== 0 && !r.stdout.includes('{"done"')
          ? na(`the run failed (${r.code}): ${r.stderr.trim().split("\n").slice(-2).join(" / ")}`)
          : na("not attempted")),
    );
  }
}

/** Config a or b: the payload is PID 1 of `machina-nspawn`/`systemd-nspawn` (-U for b). */
async function mainRun(c: "a" | "b", e: Engine): Promise<void> {
  const can = canaries();
  const img = image();
  const name = scratch.name("atk");
  const userns = c === "b" ? ["-U"] : [];
  const common = ["-q", "-D", img, "-M", name, "--read-only", `--bind=${can.hrw}:/mnt/hrw`, `--bind-ro=${can.hro}:/mnt/hro`, ...userns];
  let scope: { pids?: string; memory?: string } | undefined;
  try {
    await can.plant();
    const payload = ["/usr/bin/attack", "run", ...can.args({ only: MAIN_ONLY, hold: "2" })];
    let r: Ran;
    if (e === "machina") {
      r = await run(
        [MACHINA_NSPAWN, ...common, "--property=TasksMax=123", "--property=MemoryMax=400M", ...payload],
        machinaEnv(),
        () => (scope = scopeLimits(name)),
      );
    } else {
      r = await runNspawnEngine([...common, ...payload], name);
    }
    const cells = can.inspect(parseLines(r.stdout), { image: img, scope });
    record(c, e, cells, r, MAIN_ONLY.split(","));
    // leaked fds of PID 1 are measured in the same run
  } finally {
    await can.restore();
  }
}

/** Config c: a container in the background (`attack init` as PID 1), attacked through machinactl exec. */
async function enteredRun(c: "c:default" | "c:U"): Promise<void> {
  const can = canaries();
  const name = scratch.name("atk");
  const img = join(pool, name);
  copyTree(image(`${name}-src`), img);
  // symlinks for the transfer attempts: in the image (read by copy-from) and in the writable --bind
  // directory /mnt/hrw (the root is --read-only), where the container can also swap them
  const hostOut = join(can.dir, "copy-target");
  mkdirSync(hostOut);
  const rw = can.hrw;
  symlinkSync(hostOut, join(rw, "evil-abs"));
  symlinkSync(`../../../../../../../../../../..${hostOut}`, join(rw, "evil-rel"));
  symlinkSync(can.secret, join(img, "leak"));
  symlinkSync(join(can.dir, "secretdir"), join(img, "leakdir"));
  mkdirSync(join(rw, "race1"), { mode: 0o777 });
  symlinkSync(hostOut, join(rw, "race1l"));
  mkdirSync(join(rw, "race2"), { mode: 0o777 });
  writeFileSync(join(rw, "race2/secret.txt"), "benign\n", { mode: 0o644 });
  symlinkSync(join(can.dir, "secretdir"), join(rw, "race2l"));
  chmodSync(join(rw, "race1"), 0o777);
  chmodSync(join(rw, "race2"), 0o777);
  const osr = join(can.dir, "os-release");
  writeFileSync(osr, `NAME="machina-canary-osr-${can.token}"\nPRETTY_NAME="machina-canary-osr-${can.token}"\nID=canary\n`);
  rmSync(join(img, "etc/os-release"), { force: true });
  rmSync(join(img, "usr/lib/os-release"), { force: true });
  symlinkSync(osr, join(img, "etc/os-release"));
  const userns = c === "c:U" ? ["-U"] : [];
  const bg = startNspawn(
    [
      "-q",
      "-D",
      img,
      "-M",
      name,
      "--read-only",
      `--bind=${can.hrw}:/mnt/hrw`,
      `--bind-ro=${can.hro}:/mnt/hro`,
      "--property=TasksMax=123",
      "--property=MemoryMax=400M",
      ...userns,
      "/usr/bin/attack",
      "init",
    ],
    { stateDir, env: { MACHINA_POOL: pool, MACHINA_SETTINGS_DIRS: join(base, "no-settings") } },
    scratch,
  );
  const mctl = (args: string[], extra: Record<string, string> = {}) =>
    run([MACHINACTL, ...args], machinaEnv({ MACHINA_HOST_SECRET: can.callerSecret, ...extra }), undefined, 20_000);
  try {
    await can.plant({ helpers: true });
    await waitForState(stateDir, name, undefined, 15_000, bg);
    // 1. the main attempts, from an entered process (its own fds are the entered process's)
    const main = await mctl(["exec", name, "/usr/bin/attack", "run", ...can.args({ only: MAIN_ONLY })]);
    const scope = scopeLimits(name);
    await Bun.sleep(200); // the abstract socket's data event
    const cells = can.inspect(parseLines(main.stdout), { image: img, scope });
    // 2. processes the host enters, attacked from inside while they start
    const loop = mctl(["exec", name, "/usr/bin/attack", "run", ...can.args({ only: "entered-environ,entered-root,exe-overwrite", loop: "5" })]);
    await Bun.sleep(300);
    for (let i = 0; i < 8; i++) {
      await mctl(["exec", name, "/bin/sleep", "0.2"]);
      await run([MACHINACTL, "shell", name, "/bin/true"], machinaEnv({ MACHINA_HOST_SECRET: can.callerSecret }));
    }
    const entered = await loop;
    for (const [k, v] of can.inspect(parseLines(entered.stdout))) cells.set(k, v);
    // 3. transfers through symlinks, and while the container swaps a directory and a symlink
    const src = join(can.dir, "payload.txt");
    writeFileSync(src, "from the host\n");
    await mctl(["copy-to", name, src, "/mnt/hrw/evil-abs/pwned-abs"]);
    await mctl(["copy-to", name, src, "/mnt/hrw/evil-rel/pwned-rel"]);
    const outA = join(can.dir, "out-a"),
      outB = join(can.dir, "out-b");
    await mctl(["copy-from", name, "/leak", outA]);
    await mctl(["copy-from", name, "/leakdir/secret.txt", outB]);
    // What was copied out, as files: a symlink is copied as a symlink (as machinectl does) and
    // holds no host data; following it here with the host's privileges would read the host's own
    // file, not something the copy leaked.
    const got = (p: string): string => {
      const st = existsSync(p) || lstatSync(p, { throwIfNoEntry: false }) ? lstatSync(p) : undefined;
      if (st === undefined || st.isSymbolicLink()) return "";
      return st.isDirectory() ? sh(`find ${p} -type f -exec cat {} + 2>/dev/null`).stdout.toString() : readFileSync(p, "utf8");
    };
    const planted = readdirSync(hostOut);
    cells.set("copy-to-symlink", planted.length ? esc(`wrote ${planted.join(", ")} into the host directory`) : ok());
    const outLeaks = [
      got(outA).includes(can.fileSecret) ? "copy-from /leak (-> the host secret) copied the host file" : "",
      got(outB).includes(can.fileSecret) ? "copy-from /leakdir/secret.txt (/leakdir -> the host directory) copied the host file" : "",
    ].filter(Boolean);
    cells.set("copy-from-symlink", outLeaks.length ? esc(outLeaks.join("; ")) : ok());
    const race = mctl(["exec", name, "/usr/bin/attack", "race", "/mnt/hrw/race1", "/mnt/hrw/race1l", "/mnt/hrw/race2", "/mnt/hrw/race2l", "4"]);
    await Bun.sleep(200);
    let leakedRace = false;
    for (let i = 0; i < 10; i++) {
      await mctl(["copy-to", name, src, `/mnt/hrw/race1/pwned-race-${i}`]);
      const o = join(can.dir, `race-out-${i}`);
      await mctl(["copy-from", name, "/mnt/hrw/race2/secret.txt", o]);
      if (got(o).includes(can.fileSecret)) leakedRace = true;
    }
    const raced = await race;
    const plantedRace = readdirSync(hostOut).filter((f) => f.startsWith("pwned-race"));
    cells.set(
      "copy-race",
      plantedRace.length || leakedRace ? esc(`${plantedRace.join(", ")}${leakedRace ? " secret copied out" : ""}`) : ok(raced.stdout.trim()),
    );
    // 4. os-release read by the host-side tools
    const shown = (await mctl(["list"])).stdout + (await mctl(["status", name])).stdout + (await mctl(["show", name])).stdout;
    cells.set("os-release-link", shown.includes(`machina-canary-osr-${can.token}`) ? esc("machinactl showed the host file's content") : ok());
    record(c, "machina", cells, main, [
      ...MAIN_ONLY.split(","),
      "entered-environ",
      "entered-root",
      "exe-overwrite",
      "copy-to-symlink",
      "copy-from-symlink",
      "copy-race",
      "os-release-link",
    ]);
  } finally {
    await run([MACHINACTL, "terminate", name], machinaEnv());
    bg.proc.kill("SIGKILL");
    await bg.exited;
    await can.restore();
  }
}

/** TIOCSTI/TIOCLINUX under a pty: the host shell reads its terminal after the payload exited. */
async function ptyRun(c: Config, e: Engine, background?: string): Promise<void> {
  const can = canaries();
  const img = background ? "" : image();
  const payload = ["/usr/bin/attack", "run", `token=${can.token}`, "only=leaked-fds,tiocsti,tioclinux"];
  const q = (a: string[]) => a.map((x) => `'${x}'`).join(" ");
  let inner: string;
  if (background) inner = `${q([MACHINACTL, "shell", background, ...payload])}`;
  else if (e === "machina") inner = q([MACHINA_NSPAWN, "-q", "-D", img, ...(c === "b" ? ["-U"] : []), ...payload]);
  else inner = q(["systemd-nspawn", "--register=no", "--keep-unit", "-q", "-D", img, ...(c === "b" ? ["-U"] : []), ...payload]);
  const script = `${inner}; read -t 2 line; echo "HOSTREAD:$line"`;
  // bash: dash's read has no -t
  let cmd = ["python3", PTY_RUN, "[]", "bash", "-c", script];
  const cg = `machina-it-${uniqueName("ns")}`;
  const dirs = [`${CGROUP_V1_SYSTEMD}/${cg}`, `${CGROUP_V2}/${cg}`];
  if (e === "nspawn") {
    for (const d of dirs) mkdirSync(d, { recursive: true });
    cmd = ["python3", PTY_RUN, "[]", "bash", "-c", `echo $$ > ${dirs[0]}/cgroup.procs && echo $$ > ${dirs[1]}/cgroup.procs && ${script}`];
  }
  try {
    const r = await run(cmd, machinaEnv());
    const j = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { output?: string };
    const output = j.output ?? "";
    const lines = parseLines(output);
    const hostRead = /HOSTREAD:(.*)/.exec(output)?.[1] ?? "";
    const injected = hostRead.includes(`GOT-${can.token}`);
    // the fds of a process started on a terminal (PID 1 of a/b, `machinactl shell` of c): a leak here counts too
    const fds = lines.get("leaked-fds");
    if (fds && fds.rc > 0) put("leaked-fds", c, e, esc(`on a terminal: ${fds.data}`));
    else if (!cell("leaked-fds", c, e)) put("leaked-fds", c, e, fds ? ok("only 0-2") : na("no result"));
    for (const n of ["tiocsti", "tioclinux"]) {
      const l = lines.get(n);
      put(n, c, e, !l ? na(`no result: ${output.slice(-200)}`) : injected ? esc(`the host shell read "${hostRead.trim()}"`) : ok(l.note || l.errno));
    }
  } finally {
    if (e === "nspawn")
      for (const d of dirs)
        for (let i = 0; i < 50 && existsSync(d); i++) {
          for (const pid of (tryRead(`${d}/cgroup.procs`) ?? "").split("\n").filter(Boolean)) sh(`kill -9 ${pid}`);
          sh(`find ${d} -depth -type d -exec rmdir {} \\; 2>/dev/null`);
          if (existsSync(d)) await Bun.sleep(40);
        }
    await can.restore();
  }
}

/** Image files that are symlinks to host paths, and an untrusted .nspawn file, for config a or b. */
async function imageFileRuns(c: "a" | "b", e: Engine): Promise<void> {
  const can = canaries();
  const U = c === "b" ? ["-U"] : [];
  const engine = async (args: string[], name: string): Promise<Ran> =>
    e === "machina" ? run([MACHINA_NSPAWN, "-q", ...U, ...args], machinaEnv()) : runNspawnEngine(["-q", ...U, ...args], name);
  const victim = (n: string) => {
    const p = join(can.dir, n);
    writeFileSync(p, `victim ${n}\n`);
    return p;
  };
  const untouched = (p: string, n: string) => existsSync(p) && readFileSync(p, "utf8") === `victim ${n}\n`;
  try {
    await can.plant();
    // --bind onto an image path that is a symlink to a host directory
    {
      const img = image();
      const hostDir = join(can.dir, "bind-victim");
      mkdirSync(hostDir);
      symlinkSync(hostDir, join(img, "mnt/evil"));
      const r = await engine(["-D", img, `--bind=${can.hrw}:/mnt/evil/sub`, "/usr/bin/attack", "run", "only=whoami"], uniqueName("atk"));
      const mounted = read("/proc/self/mountinfo").includes(hostDir);
      const made = readdirSync(hostDir);
      put("bind-dest-symlink", c, e, mounted || made.length ? esc(`host ${hostDir}: ${made.join(",")}${mounted ? " mounted" : ""}`) : ok(`exit ${r.code}`));
    }
    // -u with /etc/passwd -> /etc/shadow: the host's shadow must not be read
    {
      const img = image();
      rmSync(join(img, "etc/passwd"));
      symlinkSync("/etc/shadow", join(img, "etc/passwd"));
      const r = await engine(["-D", img, "-u", "root", "/usr/bin/attack", "run", "only=whoami"], uniqueName("atk"));
      const hostShadow = read("/etc/shadow")
        .split("\n")
        .map((l) => l.split(":").slice(0, 2).join(":"))
        .filter((l) => l.length > 8 && !l.endsWith(":*") && !l.endsWith(":!") && !l.endsWith(":!*"));
      const out = r.stdout + r.stderr;
      const leak = hostShadow.find((l) => out.includes(l));
      put("user-passwd-shadow", c, e, leak ? esc("host shadow entry in the output") : ok(`exit ${r.code}: ${r.stderr.trim().split("\n")[0] ?? ""}`));
    }
    // -u with /etc/passwd -> a host passwd file that has the user
    {
      const img = image();
      const hostPw = join(can.dir, "passwd");
      writeFileSync(hostPw, "root:x:0:0::/root:/bin/sh\nmcanary:x:4242:4242::/:/bin/sh\n");
      rmSync(join(img, "etc/passwd"));
      symlinkSync(hostPw, join(img, "etc/passwd"));
      const r = await engine(["-D", img, "-u", "mcanary", "/usr/bin/attack", "run", "only=whoami"], uniqueName("atk"));
      put(
        "user-passwd-host",
        c,
        e,
        r.stdout.includes("uid=4242") ? esc("the user was looked up in the host's file") : ok(`exit ${r.code}: ${r.stderr.trim().split("\n")[0] ?? ""}`),
      );
    }
    // --timezone / --resolv-conf writing through image symlinks
    const cases: Array<[string, string, string[], boolean]> = [
      ["timezone-copy", "etc/localtime", ["--timezone=copy"], false],
      ["timezone-symlink", "etc/localtime", ["--timezone=symlink"], true],
      ["resolv-copy-host", "etc/resolv.conf", ["--resolv-conf=copy-host"], false],
      ["resolv-replace-host", "etc/resolv.conf", ["--resolv-conf=replace-host"], true],
    ];
    for (const [n, file, opt, relative] of cases) {
      const img = image();
      const v = victim(n);
      rmSync(join(img, file), { force: true });
      symlinkSync(relative ? `../../../../../../../../..${v}` : v, join(img, file));
      const before = readdirSync(can.dir).sort().join(",");
      const r = await engine(["-D", img, ...opt, "/usr/bin/attack", "run", "only=whoami"], uniqueName("atk"));
      const after = readdirSync(can.dir).sort().join(",");
      put(n, c, e, !untouched(v, n) ? esc(`host ${v} was written`) : before !== after ? esc(`host directory changed: ${after}`) : ok(`exit ${r.code}`));
    }
    // an untrusted .nspawn file next to the image
    {
      const parent = join(base, `nsf-${can.token}-${e}`);
      mkdirSync(parent);
      const nm = uniqueName("nsf");
      const img = join(parent, nm);
      copyTree(image(), img);
      writeFileSync(join(parent, `${nm}.nspawn`), "[Exec]\nCapability=all\nPrivateUsers=no\n\n[Files]\nBind=/:/hostroot\n");
      const args = ["-D", img, "-M", nm, "/usr/bin/attack", "run", ...can.args({ only: "hostroot-read,net-admin,sysctl-newproc" })];
      const r = e === "machina" ? await run([MACHINA_NSPAWN, "-q", ...U, ...args], machinaEnv()) : await runNspawnEngine(["-q", ...U, ...args], nm);
      const lines = parseLines(r.stdout);
      const cells = can.inspect(lines);
      const readHost = (lines.get("hostroot-read")?.data ?? "").includes(can.fileSecret);
      put(
        "nspawnfile-bind",
        c,
        e,
        !lines.size
          ? na(`run failed: ${r.stderr.trim().split("\n")[0]}`)
          : readHost
            ? esc("read a host secret through Bind=/:/hostroot")
            : ok(lines.get("hostroot-read")?.note ?? ""),
      );
      put(
        "nspawnfile-caps",
        c,
        e,
        cells.get("net-admin")?.verdict === "escaped"
          ? esc("CAP_NET_ADMIN on the host's lo")
          : lines.size
            ? ok(lines.get("net-admin")?.errno ?? "")
            : na("run failed"),
      );
      // without a user namespace a fresh procfs writes the host's sysctls (sysctl-newproc escapes in config a)
      const sys = cells.get("sysctl-newproc");
      if (c === "b")
        put(
          "nspawnfile-privateusers",
          c,
          e,
          !sys ? na(`run failed: ${r.stderr.trim().split("\n")[0]}`) : sys.verdict === "escaped" ? esc(`no user namespace: ${sys.detail}`) : ok(sys.detail),
        );
      else put("nspawnfile-privateusers", c, e, na("needs -U"));
    }
  } finally {
    await can.restore();
  }
}

// ------------------------------------------------------------------ expectations

/** The row key nspawn's verdict is compared with: c:default is the privileged container, c:U the -U one. */
const nspawnTwin = (c: Config): "a" | "b" => (c === "a" || c === "c:default" ? "a" : "b");

type Status = "contained" | "escaped: known limit" | "ESCAPED" | "n/a";
function status(attempt: Attempt, c: Config): { status: Status; why: string } {
  const m = cell(attempt.name, c, "machina");
  if (!m || m.verdict === "n/a") return { status: "n/a", why: m?.detail ?? "not run in this configuration" };
  if (m.verdict === "contained") return { status: "contained", why: m.detail };
  const twin = cell(LIMIT_PROXY[attempt.name] ?? attempt.name, nspawnTwin(c), "nspawn");
  const nspawnEscapes = twin?.verdict === "escaped";
  const privileged = nspawnTwin(c) === "a";
  if (ALWAYS_LIMITS[attempt.name] && (nspawnEscapes || !nspawnAvailable)) return { status: "escaped: known limit", why: ALWAYS_LIMITS[attempt.name]! };
  if (privileged && !REGISTERED_NSPAWN_CONTAINS[attempt.name] && (nspawnEscapes || (!nspawnAvailable && ESCAPE_LIMITS[attempt.name])))
    return { status: "escaped: known limit", why: ESCAPE_LIMITS[attempt.name] ?? `systemd-nspawn escapes the same way (${twin?.detail ?? ""})` };
  if (attempt.kind === "surface" && nspawnEscapes) return { status: "escaped: known limit", why: `nspawn allows it too (${twin!.detail})` };
  return { status: "ESCAPED", why: m.detail };
}

function table(): string {
  const out: string[] = [];
  const mark = (x: Cell | undefined, a: Attempt) =>
    !x
      ? "–"
      : x.verdict === "contained"
        ? "contained"
        : x.verdict === "escaped"
          ? REGISTERED_NSPAWN_CONTAINS[a.name]
            ? "**escaped** (contained when registered)"
            : "**escaped**"
          : "n/a";
  const mstat = (a: Attempt, c: Config) => {
    const s = status(a, c);
    return s.status === "contained" ? "contained" : s.status === "n/a" ? "n/a" : s.status === "ESCAPED" ? "**ESCAPED (bug)**" : "escaped (known limit)";
  };
  out.push("| attempt | what | a: machina | a: nspawn | b (-U): machina | b (-U): nspawn | c: exec, default | c: exec, -U |");
  out.push("|---|---|---|---|---|---|---|---|");
  for (const a of ATTEMPTS)
    out.push(
      `| \`${a.name}\` | ${a.what.replace(/\|/g, "\\|")} | ${mstat(a, "a")} | ${mark(cell(a.name, "a", "nspawn"), a)} | ${mstat(a, "b")} | ${mark(cell(a.name, "b", "nspawn"), a)} | ${mstat(a, "c:default")} | ${mstat(a, "c:U")} |`,
    );
  return out.join("\n");
}

/** Every escape with what the host saw (machina and nspawn). */
function details(): string {
  const out: string[] = [];
  for (const a of ATTEMPTS)
    for (const [k, v] of results.get(a.name) ?? [])
      if (
        v.verdict === "escaped" ||
        process.env.MACHINA_ATTACK_VERBOSE === "2" ||
        (process.env.MACHINA_ATTACK_VERBOSE && [...(results.get(a.name) ?? [])].some(([, w]) => w.verdict === "escaped"))
      )
        out.push(`- \`${a.name}\` ${k}: ${v.verdict === "escaped" ? "" : `(${v.verdict}) `}${v.detail.replace(/\s+/g, " ").slice(0, 300)}`);
  return out.join("\n");
}

function summary(): string {
  const counts = new Map<Status, number>();
  for (const a of ATTEMPTS) for (const c of CONFIGS) counts.set(status(a, c).status, (counts.get(status(a, c).status) ?? 0) + 1);
  const ns = (cfg: "a" | "b") => ATTEMPTS.filter((a) => cell(a.name, cfg, "nspawn")?.verdict === "escaped").length;
  return `attacks: ${ATTEMPTS.length} attempts x ${CONFIGS.length} configurations: ${counts.get("contained") ?? 0} contained, ${counts.get("escaped: known limit") ?? 0} known limits, ${counts.get("ESCAPED") ?? 0} ESCAPED, ${counts.get("n/a") ?? 0} n/a; systemd-nspawn escaped in ${ns("a")} (a) and ${ns("b")} (b)`;
}

// ------------------------------------------------------------------ the suite

beforeAll(async () => {
  busybox = await ensureBusyboxImage();
  attackBin = await ensureAttack();
  base = files.dir("machina-attacks-");
  chmodSync(base, 0o755);
  stateDir = join(base, "state");
  pool = join(base, "pool");
  mkdirSync(stateDir);
  mkdirSync(pool);
  mkdirSync(join(base, "no-settings"));
  const st = statSync("/");
  const dev = `${Math.floor(Number(st.dev) / 256) & 0xfff}:${(Number(st.dev) & 0xff) | ((Number(st.dev) >> 12) & 0xfff00)}`;
  const devname = /^DEVNAME=(.*)$/m.exec(tryRead(`/sys/dev/block/${dev}/uevent`) ?? "")?.[1];
  const node = `/dev/${devname}`;
  if (devname && existsSync(node)) {
    try {
      const b = Buffer.alloc(16);
      const fd = openSync(node, "r");
      readSync(fd, b, 0, 16, 1024 + 0x68);
      closeSync(fd);
      disk = { dev, uuidHex: b.toString("hex") };
    } catch {
      // the test itself may not open it (a devices cgroup around this session)
    }
  }
  if (!disk) {
    // a loop device over an ext4 image with a secret stands in for the host's disk
    const dir = join(base, "loopdisk");
    mkdirSync(join(dir, "root"), { recursive: true });
    const secret = `DISKSECRET-${hex()}`;
    writeFileSync(join(dir, "root/secret.txt"), `${secret}\n`);
    const made = sh(`truncate -s 8M ${dir}/disk.img && mkfs.ext4 -q -d ${dir}/root ${dir}/disk.img && losetup -f --show ${dir}/disk.img`);
    const loop = made.stdout.toString().trim();
    if (made.exitCode === 0 && loop.startsWith("/dev/loop")) {
      const st2 = statSync(loop);
      const rdev = Number(st2.rdev);
      const b = Buffer.alloc(16);
      const fd = openSync(loop, "r");
      readSync(fd, b, 0, 16, 1024 + 0x68);
      closeSync(fd);
      disk = { dev: `${(rdev >> 8) & 0xfff}:${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`, uuidHex: b.toString("hex"), secretPath: "/secret.txt", secret, loop };
    }
  }
  // the surface probes on the host itself, as a baseline (all of them are harmless by construction)
  const surface = ATTEMPTS.filter((a) => a.kind === "surface")
    .map((a) => a.name)
    .join(",");
  baseline = parseLines(sh(`${attackBin} run only=${surface} scratch=${join(base, "host-scratch")}`).stdout.toString());
}, T);

afterAll(async () => {
  for (const c of allCanaries) await c.restore();
  if (disk?.loop) sh(`losetup -d ${disk.loop}`);
  await scratch.cleanup();
  // the v1 controller scopes --property made (scratch removes the v2 and name=systemd ones)
  for (const hier of ["pids", "memory"])
    sh(`find /sys/fs/cgroup/${hier}/machine.slice -maxdepth 1 -type d -name 'machine-atk\\\\x2d${process.pid.toString(36)}*' -exec rmdir {} \\; 2>/dev/null`);
  if (base) unmountBelow(base);
  await files.cleanup();
  const t = table();
  const s = summary();
  const d = details();
  console.log(`\n${t}\n\n${s}`);
  if (process.env.MACHINA_ATTACK_VERBOSE) console.log(`\n${d}`);
  const f = process.env.MACHINA_ATTACK_TABLE;
  if (f) writeFileSync(f, `${t}\n\n${s}\n\nWhat the host saw, per escape:\n\n${d}\n`);
}, T);

/**
 * The canaries must see an escape when there is one: the harmless attempts, run directly on the
 * host (no container at all), must all be judged "escaped" — else the suite proves nothing.
 */
const SELF_TEST = [
  "sysctl-write",
  "core-pattern",
  "sysfs-write",
  "sysfs-sb-ro",
  "kmsg-write",
  "syslog-read",
  "chroot-breakout",
  "open-by-handle",
  "hostpid-environ",
  "hostpid-kill",
  "settimeofday-tz",
  "reboot-cad",
  "keyring-read",
  "keyring-write",
  "net-admin",
  "abstract-socket",
];
describe("the canaries see escapes (the payload run on the host itself)", () => {
  test(
    "every host-side check flags the same attempt made without a container",
    async () => {
      const can = canaries();
      try {
        await can.plant();
        const r = await run([attackBin, "run", ...can.args({ only: SELF_TEST.join(","), scratch: join(can.dir, "scratch") })], baseEnv());
        await Bun.sleep(200); // the abstract socket's data event
        const cells = can.inspect(parseLines(r.stdout));
        const missed = SELF_TEST.filter((n) => cells.get(n)?.verdict !== "escaped" && cells.get(n)?.verdict !== "n/a");
        expect(missed).toEqual([]);
      } finally {
        await can.restore();
      }
      // TIOCSTI straight into the pty: the shell reads it back
      const token = hex();
      const script = `${attackBin} run token=${token} only=tiocsti; read -t 2 line; echo "HOSTREAD:$line"`;
      const out = await run(["python3", PTY_RUN, "[]", "bash", "-c", script], baseEnv());
      const j = JSON.parse(out.stdout.trim().split("\n").pop() ?? "{}") as { output?: string };
      const legacy = tryRead("/proc/sys/dev/tty/legacy_tiocsti");
      if (legacy !== "0") expect(/HOSTREAD:(.*)/.exec(j.output ?? "")?.[1]).toContain(`GOT-${token}`);
    },
    T,
  );
});

const describeRuns = (title: string, runs: () => Promise<void>, configs: Config[]) =>
  describe(title, () => {
    beforeAll(runs, T);
    for (const a of ATTEMPTS)
      for (const c of configs)
        test(`${a.name} [${c}]`, () => {
          const s = status(a, c);
          if (s.status === "ESCAPED") throw new Error(`${a.name} escaped in config ${c}: ${s.why}`);
          expect(s.status).not.toBe("ESCAPED");
        });
  });

describeRuns("config a: machina-nspawn -D IMG (privileged), side by side with systemd-nspawn", async () => {
  await mainRun("a", "machina");
  if (nspawnAvailable) await mainRun("a", "nspawn");
  await ptyRun("a", "machina");
  if (nspawnAvailable) await ptyRun("a", "nspawn");
  await imageFileRuns("a", "machina");
  if (nspawnAvailable) await imageFileRuns("a", "nspawn");
}, ["a"]);

describeRuns("config b: machina-nspawn -U, side by side with systemd-nspawn -U", async () => {
  await mainRun("b", "machina");
  if (nspawnAvailable) await mainRun("b", "nspawn");
  await ptyRun("b", "machina");
  if (nspawnAvailable) await ptyRun("b", "nspawn");
  await imageFileRuns("b", "machina");
  if (nspawnAvailable) await imageFileRuns("b", "nspawn");
}, ["b"]);

describeRuns("config c: machinactl exec/shell into a running container (default and -U)", async () => {
  for (const c of ["c:default", "c:U"] as const) {
    await enteredRun(c);
    // TIOCSTI from `machinactl shell` into the caller's terminal
    const name = scratch.name("atk");
    const img = join(pool, name);
    copyTree(image(`${name}-src`), img);
    const bg = startNspawn(
      ["-q", "-D", img, "-M", name, ...(c === "c:U" ? ["-U"] : []), "/usr/bin/attack", "init"],
      { stateDir, env: { MACHINA_POOL: pool } },
      scratch,
    );
    try {
      await waitForState(stateDir, name, undefined, 15_000, bg);
      await ptyRun(c, "machina", name);
    } finally {
      await run([MACHINACTL, "terminate", name], machinaEnv());
      bg.proc.kill("SIGKILL");
      await bg.exited;
    }
  }
}, ["c:default", "c:U"]);
