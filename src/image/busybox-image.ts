/**
 * Build a tiny container root file system from Debian's static busybox
 * (`apt-get install busybox-static`, which ships /bin/busybox).
 *
 * The tree is assembled under a temporary sibling `.#NAME-XXXXXXXX` (the `.#`
 * prefix is reserved for temporaries in the image pool, so pool listings never
 * show it) and renamed into place in one step; on any failure the temporary
 * is removed and nothing is left behind.
 *
 * What the image contains is documented in docs/FIXTURES.md.
 */
import { basename, dirname, join } from "node:path";
import { dependencyOf } from "../host/deps.ts";
import type { Host } from "../host/host.ts";
import { Reverter } from "../reverter.ts";
import { checkImageName, ensureWritablePool } from "./pool.ts";

export type BusyboxImageErrorCode =
  | "BUSYBOX_MISSING" // no busybox binary at the given path
  | "BUSYBOX_UNUSABLE" // it exists but does not run or list its applets
  | "PROBE_MISSING" // opts.probe names a file that does not exist
  | "DEST_EXISTS" // refusing to replace an existing image
  | "DEST_PARENT_MISSING" // the directory that should hold the image does not exist
  | "BUILD_FAILED"; // any other I/O failure while assembling the tree

export class BusyboxImageError extends Error {
  override readonly name = "BusyboxImageError";
  readonly code: BusyboxImageErrorCode;
  readonly path: string;
  readonly hint: string | undefined;

  constructor(code: BusyboxImageErrorCode, message: string, path: string, options?: { cause?: unknown; hint?: string }) {
    super(options?.hint ? `${message} (hint: ${options.hint})` : message, { cause: options?.cause });
    this.code = code;
    this.path = path;
    this.hint = options?.hint;
  }
}

export interface BusyboxImageOptions {
  /** a static probe binary to install as /usr/bin/probe (mode 0755) */
  probe?: string;
  /** the busybox binary to use; default /bin/busybox */
  busybox?: string;
  /** also link /sbin/init -> busybox (busybox init reading /etc/inittab); default false */
  init?: boolean;
}

export const DEFAULT_BUSYBOX = "/bin/busybox";

/** Directories created in every image, with their modes. */
export const BUSYBOX_IMAGE_DIRS: ReadonlyArray<readonly [string, number]> = [
  ["bin", 0o755],
  ["sbin", 0o755],
  ["usr", 0o755],
  ["usr/bin", 0o755],
  ["usr/sbin", 0o755],
  ["usr/lib", 0o755],
  ["etc", 0o755],
  ["proc", 0o555],
  ["sys", 0o555],
  ["dev", 0o755],
  ["run", 0o755],
  ["tmp", 0o1777],
  ["var", 0o755],
  ["var/tmp", 0o1777],
  ["root", 0o700],
  ["home", 0o755],
  ["home/user", 0o755],
];

/** Applets that are not linked unless asked for: init would make `-b` pick busybox init. */
const INIT_APPLETS = new Set(["sbin/init", "linuxrc"]);

const PASSWD = `root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
`;

// root has an empty password (passwordless console login, as in the Debian fixture)
const SHADOW = `root::19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
user:*:19000:0:99999:7:::
`;

const GROUP = `root:x:0:
tty:x:5:
users:x:100:user
nogroup:x:65534:
user:x:1000:
`;

// busybox init: no mounts (the container manager provides /proc, /sys, /dev),
// a shell on the console, and a clean shutdown path.
// Signals busybox init understands: SIGTERM = reboot, SIGUSR1 = halt,
// SIGUSR2 = poweroff, SIGINT = the ctrlaltdel action. It ignores SIGRTMIN+3.
const INITTAB = `# /etc/inittab for busybox init (machina test image)
::sysinit:/bin/mkdir -p /run/lock /var/log
console::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
`;

const PROFILE = `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PS1='\\h:\\w\\$ '
`;

function osRelease(version: string): string {
  return [
    'NAME="BusyBox"',
    "ID=busybox",
    `VERSION_ID=${version}`,
    `PRETTY_NAME="BusyBox v${version} (machina test image)"`,
    'HOME_URL="https://busybox.net/"',
    "",
  ].join("\n");
}

async function run(host: Host, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await host.runAsync(cmd);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const exists = (host: Host, path: string): boolean => host.lstat(path) !== undefined;

/** Version of a busybox binary, e.g. "1.35.0", from its banner line. */
export async function busyboxVersion(host: Host, busybox: string = DEFAULT_BUSYBOX): Promise<string> {
  let res: { code: number; stdout: string; stderr: string };
  try {
    res = await run(host, [busybox]);
  } catch (e) {
    throw new BusyboxImageError("BUSYBOX_UNUSABLE", `cannot run ${busybox}`, busybox, { cause: e });
  }
  const m = /BusyBox v(\d+(?:\.\d+)+)/.exec(res.stdout + res.stderr);
  if (!m?.[1]) {
    throw new BusyboxImageError("BUSYBOX_UNUSABLE", `${busybox} did not print a BusyBox version banner`, busybox);
  }
  return m[1];
}

/** Applet paths relative to / (e.g. "bin/sh", "usr/bin/awk"), from `busybox --list-full`. */
export async function busyboxApplets(host: Host, busybox: string = DEFAULT_BUSYBOX): Promise<string[]> {
  let res: { code: number; stdout: string; stderr: string };
  try {
    res = await run(host, [busybox, "--list-full"]);
  } catch (e) {
    throw new BusyboxImageError("BUSYBOX_UNUSABLE", `cannot run ${busybox} --list-full`, busybox, { cause: e });
  }
  const applets = res.stdout
    .split("\n")
    .map((l) => l.trim().replace(/^\/+/, ""))
    .filter((l) => l.length > 0);
  if (res.code !== 0 || applets.length === 0) {
    throw new BusyboxImageError("BUSYBOX_UNUSABLE", `${busybox} --list-full failed (exit ${res.code}): ${res.stderr.trim() || "no applets listed"}`, busybox);
  }
  for (const a of applets) {
    if (a.split("/").some((c) => c === ".." || c === "." || c === "")) {
      throw new BusyboxImageError("BUSYBOX_UNUSABLE", `${busybox} listed a suspicious applet path "${a}"`, busybox);
    }
  }
  return applets;
}

/**
 * Build a busybox root file system at `dest`, which must not exist yet
 * (its parent must). Atomic: either `dest` appears complete, or nothing does.
 */
export async function makeBusyboxImage(host: Host, dest: string, opts: BusyboxImageOptions = {}): Promise<void> {
  const busybox = opts.busybox ?? DEFAULT_BUSYBOX;
  if (!exists(host, busybox)) {
    throw new BusyboxImageError("BUSYBOX_MISSING", `busybox not found at ${busybox}`, busybox, {
      hint: `apt-get install ${dependencyOf("busybox")?.package ?? "busybox-static"}`, // scripts/deps.txt
    });
  }
  if (opts.probe !== undefined && !exists(host, opts.probe)) {
    throw new BusyboxImageError("PROBE_MISSING", `probe binary not found at ${opts.probe}`, opts.probe, {
      hint: "build it with test/probe/build.sh OUT",
    });
  }
  const parent = dirname(dest);
  if (!exists(host, parent)) {
    throw new BusyboxImageError("DEST_PARENT_MISSING", `directory ${parent} does not exist`, parent);
  }
  if (exists(host, dest)) {
    throw new BusyboxImageError("DEST_EXISTS", `${dest} already exists; refusing to replace it`, dest);
  }

  const version = await busyboxVersion(host, busybox);
  const applets = await busyboxApplets(host, busybox);

  const tmp = join(parent, `.#${basename(dest)}-${host.randomHex(4)}`);
  const r = new Reverter();
  try {
    host.mkdirp(tmp, 0o755);
    r.add(`remove the temporary tree "${tmp}"`, () => host.removeTree(tmp));
    host.chmod(tmp, 0o755); // mkdir's mode is filtered by the umask
    populate(host, tmp, { busybox, version, applets, probe: opts.probe, init: opts.init ?? false });
    try {
      host.rename(tmp, dest, true);
    } catch (e) {
      if (e instanceof Error && "code" in e && e.code === "EEXIST")
        throw new BusyboxImageError("DEST_EXISTS", `${dest} appeared while the image was being built`, dest);
      throw e;
    }
    r.commit();
  } catch (e) {
    const undoFailed = r.revert();
    const undo = undoFailed === undefined ? "" : ` (${undoFailed.message})`;
    if (e instanceof BusyboxImageError) {
      if (undoFailed === undefined) throw e;
      throw new BusyboxImageError(e.code, `${e.message}${undo}`, e.path, { cause: e });
    }
    const msg = e instanceof Error ? e.message : String(e);
    throw new BusyboxImageError("BUILD_FAILED", `building busybox image ${dest} failed: ${msg}${undo}`, dest, { cause: e });
  }
}

/**
 * The image `name` (default "busybox") in the writable pool root: made when missing, the root
 * too (ensureWritablePool, mode 0700) — what `scripts/demo` runs on a fresh machine.
 */
export async function ensurePoolBusyboxImage(
  host: Host,
  pool: readonly string[],
  name = "busybox",
  opts: BusyboxImageOptions = {},
): Promise<{ path: string; made: boolean }> {
  checkImageName(name);
  const path = `${ensureWritablePool(host, pool)}/${name}`;
  if (host.lstat(path) !== undefined) return { path, made: false };
  await makeBusyboxImage(host, path, opts);
  return { path, made: true };
}

interface PopulateArgs {
  busybox: string;
  version: string;
  applets: string[];
  probe: string | undefined;
  init: boolean;
}

function populate(host: Host, root: string, a: PopulateArgs): void {
  for (const [dir, mode] of BUSYBOX_IMAGE_DIRS) {
    const p = join(root, dir);
    host.mkdirp(p, mode);
    host.chmod(p, mode);
  }

  host.copyFile(a.busybox, join(root, "bin/busybox"));
  host.chmod(join(root, "bin/busybox"), 0o755);

  for (const applet of a.applets) {
    if (applet === "bin/busybox") continue;
    if (!a.init && INIT_APPLETS.has(applet)) continue;
    const p = join(root, applet);
    host.mkdirp(dirname(p), 0o755);
    if (exists(host, p)) continue; // busybox lists a few applets twice
    host.symlink("/bin/busybox", p);
  }

  const files: ReadonlyArray<readonly [string, string, number]> = [
    ["usr/lib/os-release", osRelease(a.version), 0o644],
    ["etc/passwd", PASSWD, 0o644],
    ["etc/shadow", SHADOW, 0o600],
    ["etc/group", GROUP, 0o644],
    ["etc/inittab", INITTAB, 0o644],
    ["etc/profile", PROFILE, 0o644],
    ["etc/shells", "/bin/sh\n/bin/ash\n", 0o644],
  ];
  for (const [path, content, mode] of files) {
    const p = join(root, path);
    host.writeFile(p, content, mode);
    host.chmod(p, mode);
  }
  host.symlink("../usr/lib/os-release", join(root, "etc/os-release"));

  if (a.probe !== undefined) {
    host.copyFile(a.probe, join(root, "usr/bin/probe"));
    host.chmod(join(root, "usr/bin/probe"), 0o755);
  }

  // Built by root (the tree is root's): the unprivileged user owns its home, as on a real system.
  if (host.owner(root)?.uid === 0) host.chown(join(root, "home/user"), 1000, 1000);
}
