/**
 * Booting the Debian fixture under machina-nspawn -b, for integration tests. Always boots a
 * private copy (`cp -a --reflink=auto`), never the shared cache.
 */
import { beforeAll } from "bun:test";
import { copyFileSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ensureDebianImage, fixtureCacheDir } from "../fixtures/images.ts";
import { type Background, type MachineState, REPO, type Scratch, copyTree, nsenter, startNspawn, waitForState } from "./machina.ts";

/** Packages apt would install into `root` for `pkgs` (simulated against the copy's dpkg status). */
export function missingPackages(root: string, pkgs: string[]): string[] {
  const p = Bun.spawnSync(["apt-get", "-s", "-o", `Dir::State::status=${root}/var/lib/dpkg/status`, "install", "--no-install-recommends", ...pkgs], {
    stderr: "pipe",
  });
  if (p.exitCode !== 0) throw new Error(`apt-get -s failed: ${p.stderr.toString()}`);
  return p.stdout
    .toString()
    .split("\n")
    .flatMap((l) => (/^Inst (\S+)/.exec(l)?.[1] ? [/^Inst (\S+)/.exec(l)![1]!] : []));
}

/** The cached .deb of each package (downloaded with `apt-get download` when missing). */
export function cachedDebs(names: string[]): string[] {
  const dir = join(fixtureCacheDir(), "debs");
  mkdirSync(dir, { recursive: true });
  const find = (n: string) => readdirSync(dir).find((f) => f.startsWith(`${n}_`) && f.endsWith(".deb"));
  const missing = names.filter((n) => find(n) === undefined);
  if (missing.length > 0) {
    const p = Bun.spawnSync(["apt-get", "download", ...missing], { cwd: dir, stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`apt-get download ${missing.join(" ")} failed (no network?): ${p.stderr.toString()}`);
  }
  return names.map((n) => join(dir, find(n)!));
}

/** Install `debs` into the tree `root` (`dpkg -i` in a chroot), after `dpkg --purge` of `purge` (forced: e.g. systemd-sysv, which sysvinit-core replaces). */
export function installDebs(root: string, debs: string[], purge: string[] = []): void {
  const dir = `${root}/tmp/machina-debs`;
  mkdirSync(dir);
  for (const d of debs) copyFileSync(d, `${dir}/${basename(d)}`);
  const remove = purge.length > 0 ? `dpkg --purge --force-remove-essential --force-remove-protected ${purge.join(" ")} && ` : "";
  const dpkg = Bun.spawnSync(["chroot", root, "sh", "-c", `${remove}dpkg -i /tmp/machina-debs/*.deb && rm -rf /tmp/machina-debs`], {
    stderr: "pipe",
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  if (dpkg.exitCode !== 0) throw new Error(`dpkg in the copy failed: ${dpkg.stdout.toString().slice(-2000)}${dpkg.stderr.toString()}`);
}

/**
 * A nested host for machina's own commands: a private copy of the Debian fixture (in a fresh
 * directory of `scratch`, beside an empty `state` directory for the outer machina) with `packages`
 * and what they need installed (after `purge`: installDebs), bun on PATH (/usr/local/bin/bun ->
 * /opt/bun), and the mount points the returned `binds` fill read-only: the checkout at
 * /opt/machina, bun's directory at /opt/bun.
 */
export interface NestedHost {
  root: string;
  stateDir: string;
  binds: string[];
}

export async function nestedHost(scratch: Scratch, prefix: string, packages: string[], purge: string[] = []): Promise<NestedHost> {
  const base = scratch.dir(prefix);
  const root = `${base}/debian`;
  copyTree(await ensureDebianImage(), root);
  installDebs(root, cachedDebs(missingPackages(root, packages)), purge);
  const bunExe = realpathSync(process.execPath);
  mkdirSync(`${root}/opt/machina`, { recursive: true });
  mkdirSync(`${root}/opt/bun`, { recursive: true });
  symlinkSync(`/opt/bun/${basename(bunExe)}`, `${root}/usr/local/bin/bun`);
  return { root, stateDir: `${base}/state`, binds: [`--bind-ro=${REPO}:/opt/machina`, `--bind-ro=${dirname(bunExe)}:/opt/bun`] };
}

/**
 * A nested host made once for a test file, in its beforeAll (root only), `finish` completing the
 * tree: the returned getter gives it to the tests, or throws why it could not be made.
 */
export function nestedHostOnce(
  scratch: Scratch,
  prefix: string,
  packages: string[],
  o: { purge?: string[]; finish?: (h: NestedHost) => void | Promise<void> } = {},
): () => NestedHost {
  let host: NestedHost | undefined;
  let failed = "not made (root only)";
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return;
    try {
      const h = await nestedHost(scratch, prefix, packages, o.purge);
      await o.finish?.(h);
      host = h;
    } catch (e) {
      failed = String(e);
    }
  }, 180_000);
  return () => {
    if (host === undefined) throw new Error(`preparing the nested host failed: ${failed}`);
    return host;
  };
}

export interface BootedDebian {
  name: string;
  root: string;
  stateDir: string;
  bg: Background;
  state: MachineState;
}

/** A private copy of the Debian fixture (removed with `scratch`). ~1-5 s: share it within a file. */
export async function debianCopy(scratch: Scratch): Promise<string> {
  const image = await ensureDebianImage();
  const root = `${scratch.dir("machina-debian-")}/debian`;
  copyTree(image, root);
  return root;
}

/** `systemctl is-system-running --wait` inside the container. */
export async function systemState(leader: number, timeoutMs = 20_000): Promise<string> {
  // Until systemd has created its socket, systemctl fails at once with no output, or says
  // "offline" (no /run/systemd/system yet): retry.
  const end = performance.now() + timeoutMs;
  for (;;) {
    const r = await nsenter(leader, ["systemctl", "is-system-running", "--wait"], timeoutMs);
    const state = r.stdout.trim();
    if ((state !== "" && state !== "offline") || performance.now() > end) return state || `(no answer: ${r.stderr.trim()})`;
    await Bun.sleep(50);
  }
}

export async function failedUnits(leader: number): Promise<string[]> {
  const r = await nsenter(leader, ["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"]);
  return r.stdout.split("\n").filter((l) => l.trim().length > 0);
}

/**
 * Boot `root` with machina-nspawn -b (console read-only so the boot messages are captured), wait
 * for the registry entry and for systemd to be up, run `fn`, and make sure the container is gone
 * afterwards (SIGKILL of the supervisor if `fn` did not stop it; Scratch removes the rest).
 */
export async function withBootedDebian<T>(
  root: string,
  scratch: Scratch,
  stateDir: string,
  fn: (m: BootedDebian) => Promise<T>,
  extraArgs: string[] = [],
): Promise<T> {
  const name = scratch.name("deb");
  const bg = startNspawn(["-D", root, "-M", name, "-b", "--console=read-only", ...extraArgs], { stateDir }, scratch);
  try {
    const state = await waitForState(stateDir, name, undefined, 15_000, bg);
    return await fn({ name, root, stateDir, bg, state });
  } finally {
    if (bg.proc.exitCode === null && bg.proc.signalCode === null) {
      bg.proc.kill("SIGKILL");
      await bg.exited;
    }
  }
}
