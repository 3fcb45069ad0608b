/**
 * `machinactl bootstrap NAME DISTRO [RELEASE]` (a step past machinectl): build a new image with
 * the host's own tool — mmdebstrap (when present) or debootstrap for Debian and Ubuntu,
 * `dnf --installroot` for Fedora — into a pool temporary, set it up to boot under
 * machina-nspawn -b, then rename it into place. Every effect goes through the Host.
 */
import { MachinaError } from "../errors.ts";
import { dependencyOf, missingProgramError } from "../host/deps.ts";
import type { Host } from "../host/host.ts";
import type { Paths } from "../paths.ts";
import { beginTemporary, checkImageName, cleanTemporaries, ensureWritablePool, findImage, lockImage, Reverter } from "./pool.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";
import { enableUnits } from "./enable-units.ts";
import { ARCHITECTURE_NAMES, ARCHITECTURES, architectureNamed, architectureOfUname, binfmtMagic, runsNatively } from "../settings/architectures.ts";
import { provideBinfmt, releaseBinfmt } from "../runtime/binfmt.ts";
import { machinaEnv } from "../config.ts";

export const DISTROS = {
  debian: { release: "bookworm", mirror: "http://deb.debian.org/debian", tools: ["mmdebstrap", "debootstrap"] },
  ubuntu: { release: "noble", mirror: "http://archive.ubuntu.com/ubuntu", tools: ["mmdebstrap", "debootstrap"] },
  fedora: { release: "41", mirror: undefined, tools: ["dnf"] },
} as const;
export type Distro = keyof typeof DISTROS;

export interface BootstrapRequest {
  name: string;
  distro: string;
  release: string | undefined;
  /** Package mirror (Debian/Ubuntu); default the distribution's. */
  mirror: string | undefined;
  /** The architecture (Debian's name); undefined: the host's. Another than the host's is built and runs under qemu-user. */
  arch?: string | undefined;
  /** Root's password; undefined: passwordless root login on the console. */
  rootPassword: string | undefined;
}

export interface BootstrapPlan {
  distro: Distro;
  release: string;
  tool: string;
  /** The build command; "TARGET" stands for the temporary directory. */
  build: string[];
  /** debootstrap of another architecture: its second stage, run in the new tree under emulation ("TARGET" as above). */
  secondStage?: string[];
  /** The image's architecture, and whether the host runs it only under emulation (binfmt_misc with qemu-user). */
  arch: string;
  foreign: boolean;
  /** The set-up steps, in order, for messages and tests. */
  setup: string[];
}

/** The full path of `tool` in $PATH, or undefined. */
export function which(host: Host, tool: string): string | undefined {
  for (const dir of (host.env()["PATH"] ?? DEFAULT_PATH).split(":").filter(Boolean)) {
    const k = host.lstat(`${dir}/${tool}`);
    if (k === "file" || k === "symlink") return `${dir}/${tool}`;
  }
  return undefined;
}

const PACKAGES_DEB = "systemd,systemd-sysv,dbus";
const UBUNTU_PORTS = "http://ports.ubuntu.com/ubuntu-ports";

/**
 * Enabled in the new tree (with their Also=), as mkosi's images are: systemd-networkd configures
 * host0 from the 80-container-host0.network systemd ships, systemd-resolved (when installed) DNS.
 */
export const NETWORK_UNITS = ["systemd-networkd.service", "systemd-networkd.socket", "systemd-resolved.service"];

/** Pure apart from looking the tools up: what bootstrap will run. */
export function planBootstrap(host: Host, req: BootstrapRequest): BootstrapPlan {
  checkImageName(req.name);
  if (!(req.distro in DISTROS)) throw new MachinaError("E_INVALID", `unknown distribution "${req.distro}": expected one of ${Object.keys(DISTROS).join(", ")}`);
  const distro = req.distro as Distro;
  const d = DISTROS[distro];
  const release = req.release ?? d.release;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(release)) throw new MachinaError("E_INVALID", `invalid release "${release}"`);
  const found = d.tools.map((t) => [t, which(host, t)] as const).find(([, p]) => p !== undefined);
  if (found === undefined) {
    // The tool install-deps installs (scripts/deps.txt: not an alternative), else the last one.
    const tool = d.tools.find((t) => dependencyOf(t)?.alternative === false) ?? d.tools[d.tools.length - 1]!;
    throw missingProgramError(tool);
  }
  const [tool, path] = found;
  const hostArch = architectureOfUname(host.readFile("/proc/sys/kernel/arch")?.trim());
  // no --arch: the host's own, whatever the kernel calls it
  const arch = req.arch === undefined ? hostArch : architectureNamed(req.arch);
  if (req.arch !== undefined && arch === undefined)
    throw new MachinaError("E_INVALID", `unknown architecture "${req.arch}" for --arch: allowed are ${ARCHITECTURE_NAMES.join(", ")}`, {
      flag: "--arch",
      value: req.arch,
    });
  if (req.arch !== undefined && distro === "fedora" && arch?.fedora === undefined)
    throw new MachinaError(
      "E_INVALID",
      `Fedora has no ${req.arch} architecture: allowed are ${ARCHITECTURES.filter((a) => a.fedora !== undefined)
        .map((a) => a.name)
        .join(", ")}`,
      { flag: "--arch", value: req.arch },
    );
  const foreign = req.arch !== undefined && (hostArch === undefined || !runsNatively(hostArch, arch!));
  // Ubuntu keeps other architectures than amd64 and i386 on its ports mirror
  const mirror = req.mirror ?? (distro === "ubuntu" && arch !== undefined && arch.name !== "amd64" && arch.name !== "i386" ? UBUNTU_PORTS : d.mirror);
  const archArg = req.arch === undefined ? [] : [tool === "mmdebstrap" ? `--architectures=${req.arch}` : `--arch=${req.arch}`];
  let build: string[];
  let secondStage: string[] | undefined;
  if (tool === "mmdebstrap") build = [path!, "--variant=minbase", ...archArg, `--include=${PACKAGES_DEB}`, release, "TARGET", mirror!];
  else if (tool === "debootstrap") {
    // another architecture: the first stage unpacks, the second configures inside the tree under emulation
    build = [path!, "--variant=minbase", ...archArg, ...(foreign ? ["--foreign"] : []), `--include=${PACKAGES_DEB}`, release, "TARGET", mirror!];
    if (foreign) secondStage = ["chroot", "TARGET", "/debootstrap/debootstrap", "--second-stage"];
  } else
    build = [
      path!,
      ...(req.arch !== undefined ? [`--forcearch=${arch!.fedora}`] : []),
      "--installroot=TARGET",
      `--releasever=${release}`,
      "--setopt=install_weak_deps=False",
      "--use-host-config",
      "-y",
      "--nodocs",
      "install",
      "systemd",
      "passwd",
      "dnf",
      "fedora-release",
      "util-linux",
    ];
  return {
    distro,
    release,
    tool: path!,
    build,
    ...(secondStage !== undefined ? { secondStage } : {}),
    arch: arch?.name ?? "",
    foreign,
    setup: [
      "/etc/machine-id emptied (0444): systemd initialises it at the first boot",
      "/etc/hostname removed: the machine name decides",
      "/etc/securetty (when present) allows console and pts/0..9",
      req.rootPassword === undefined ? "root's password removed (passwordless console login)" : "root's password set",
      "downloaded packages removed",
      `${NETWORK_UNITS.join(", ")} enabled when the tree has them: a guest with a veth (-n) configures host0 at boot`,
    ],
  };
}

export interface BootstrapContext {
  host: Host;
  paths: Paths;
  force: boolean;
  /** Informational lines, the build tool's output among them (its progress: "I: Retrieving …"). */
  log: (line: string) => void;
  /** cancel-transfer: SIGTERM to the build tool (debootstrap unmounts what it mounted), then everything is undone. */
  signal?: AbortSignal;
}

/** Build the image; returns the plan that was carried out. */
export async function bootstrap(ctx: BootstrapContext, req: BootstrapRequest): Promise<BootstrapPlan> {
  const { host } = ctx;
  const plan = planBootstrap(host, req);
  const writable = ensureWritablePool(host, ctx.paths.pool);
  cleanTemporaries(host, ctx.paths.stateDir, writable);
  await Reverter.run(async (r) => {
    const lock = lockImage(host, ctx.paths.stateDir, req.name, "exclusive");
    r.always("unlock", () => lock.release());
    const existing = findImage(host, [writable], req.name);
    if ((existing !== undefined || host.lstat(`${writable}/${req.name}`) !== undefined) && !ctx.force)
      throw new MachinaError("E_BUSY", `image "${req.name}" already exists`, { value: req.name }, "use --force to replace it");
    const temp = beginTemporary(host, ctx.paths.stateDir, writable, req.name);
    r.add("discard temporary", () => temp.discard());
    const target = temp.path;
    if (plan.foreign) {
      // the tree's programs run under qemu-user while it is built (second stage, passwd): claimed by this process
      const arch = architectureNamed(plan.arch)!;
      const user = `.bootstrap-${host.pid()}`;
      const use = provideBinfmt(
        host,
        ctx.paths.stateDir,
        { arch, root: target, subject: `bootstrap --arch=${arch.name}`, header: binfmtMagic(arch).magic },
        user,
        host.readFile("/proc/sys/kernel/arch")?.trim() ?? "this",
        machinaEnv(host.env(), "MACHINA_QEMU_DIR"),
      );
      if (use.kind === "machina" && use.claimed) r.always("release binfmt_misc", () => void releaseBinfmt(host, ctx.paths.stateDir, user));
    }
    ctx.log(
      `Bootstrapping ${plan.distro} ${plan.release}${plan.arch !== "" ? ` (${plan.arch}${plan.foreign ? ", under emulation" : ""})` : ""} with ${plan.tool} …`,
    );
    for (const step of [plan.build, ...(plan.secondStage !== undefined ? [plan.secondStage] : [])]) {
      const argv = step.map((a) => a.replace(/^TARGET$/, target).replace(/^--installroot=TARGET$/, `--installroot=${target}`));
      const res = await host.runAsync(argv, {
        fds: [temp.lock.fd],
        ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
        onLine: (line) => {
          if (line.trim() !== "") ctx.log(line);
        },
      });
      if (ctx.signal?.aborted) throw new MachinaError("E_CANCELLED", `bootstrap of "${req.name}" cancelled`);
      if (res.status !== 0) {
        const tail = (res.stdout + res.stderr).trim().split("\n").slice(-8).join("\n");
        throw new MachinaError("E_SYSTEM", `${step === plan.build ? plan.tool : "debootstrap --second-stage"} failed (exit ${res.status}):\n${tail}`);
      }
    }
    setUpForBoot(host, target, req.rootPassword);
    const final = `${writable}/${req.name}`;
    if (existing !== undefined) host.removeTree(existing.path);
    temp.commit(final);
    temp.release();
  });
  return plan;
}

/** The steps of plan.setup, in a finished tree. */
export function setUpForBoot(host: Host, root: string, rootPassword: string | undefined): void {
  host.unlink(`${root}/etc/machine-id`);
  host.writeFile(`${root}/etc/machine-id`, "", 0o444);
  host.unlink(`${root}/etc/hostname`);
  const securetty = host.readFile(`${root}/etc/securetty`);
  if (securetty !== undefined) {
    const have = new Set(securetty.split("\n").map((l) => l.trim()));
    const add = ["console", ...Array.from({ length: 10 }, (_, i) => `pts/${i}`)].filter((t) => !have.has(t));
    if (add.length > 0) host.writeFile(`${root}/etc/securetty`, securetty.replace(/\n?$/, "\n") + add.join("\n") + "\n", 0o644);
  }
  const r =
    rootPassword === undefined
      ? host.run(["chroot", root, "passwd", "-d", "root"])
      : host.run(["chroot", root, "chpasswd"], { input: `root:${rootPassword}\n` });
  if (r.status !== 0) throw new MachinaError("E_SYSTEM", `setting root's password failed: ${r.stderr.trim()}`);
  for (const dir of [`${root}/var/cache/apt/archives`]) for (const f of host.readdir(dir)) if (f.endsWith(".deb")) host.unlink(`${dir}/${f}`);
  enableUnits(host, root, NETWORK_UNITS);
}
