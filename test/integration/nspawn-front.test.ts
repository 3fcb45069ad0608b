/**
 * machina-nspawn's native front end (native/front.c, built with -DFRONT_NSPAWN) with machinad's
 * planner (src/daemon/nspawn-door.ts): a served run is machina-nspawn's own — the exit code, the
 * payload's output, the error line, the caller's working directory and limits, the status fd, a
 * network made and removed — and the front end becomes the helper (its pid is the supervisor's).
 * What goes to the full machina-nspawn: no machinad, a dead one's socket, MACHINA_NO_DAEMON=1,
 * other namespaces. A --template copy is made by machinad without blocking it. A front end that goes away between the plan and the
 * exec leaves nothing behind (machinad undoes the network it set up). Root only; machinad runs on
 * a socket and state directory of the test's own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { vethHostName } from "../../src/net/names.ts";
import { encodeRequest, type Frame, FrameReader } from "../../src/oci-runtime/front-door.ts";
import { processIdentity } from "../../src/host/identity.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { type Daemon, spawnMachinad } from "../helpers/daemon.ts";
import { MACHINA_NSPAWN, REPO, Scratch, baseEnv, recordedFallback, runToFiles, waitFor } from "../helpers/machina.ts";

const FRONT = join(REPO, "native/build/machina-nspawn");
const isRoot = process.getuid?.() === 0;
const files = new Scratch();
const daemon = new Scratch();
let machinad: Daemon["proc"] | undefined;
/** machinad's stderr so far */
let machinadLog = () => "";
let dir = "";
let tree = "";
/** the full machina-nspawn, through a script that records each command line the front end hands it */
let fallback = { path: "", calls: (): string[] => [] };

const stateDir = () => join(dir, "state");
const env = (extra: Record<string, string> = {}) =>
  baseEnv({ MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_STATE_DIR: stateDir(), MACHINA_NSPAWN_FALLBACK: fallback.path, ...extra });

beforeAll(async () => {
  if (!isRoot) return;
  if (!existsSync(FRONT)) Bun.spawnSync(["make", "-C", join(REPO, "native"), "-s"]);
  dir = files.dir("nspawn-front-");
  mkdirSync(join(dir, "run"), { mode: 0o700 });
  tree = await ensureBusyboxImage();
  fallback = recordedFallback(dir, "machina-nspawn", MACHINA_NSPAWN);
  const d = await spawnMachinad(baseEnv({ MACHINA_STATE_DIR: stateDir(), MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_SYSTEMD: "0" }), daemon, [
    "--no-autostart",
  ]);
  machinad = d.proc;
  machinadLog = d.stderr;
});

afterAll(async () => {
  try {
    if (machinad !== undefined) {
      machinad.kill("SIGTERM");
      expect(await machinad.exited).toBe(0);
      expect(existsSync(join(dir, "run/nspawn.sock"))).toBe(false); // machinad removed its sockets
    }
  } finally {
    await daemon.cleanup();
    files.cleanup();
  }
});

/** The front end; stdout and stderr through files, the status fd (3) too when asked. */
function front(args: string[], o: { env?: Record<string, string>; cwd?: string; wrapper?: string[]; status?: boolean } = {}) {
  const env_ = { ...(o.env ?? env()), ...(o.status ? { MACHINA_STATUS_FD: "3" } : {}) };
  return runToFiles(dir, [...(o.wrapper ?? []), FRONT, ...args], { env: env_, cwd: o.cwd ?? dir, status: o.status ?? false });
}

const fallbacks = () => fallback.calls();
const debug = (extra: Record<string, string> = {}) => env({ MACHINA_FRONT_DEBUG: "1", ...extra });
const SERVED = () => `machina-nspawn: debug: served by machinad (${join(dir, "run/nspawn.sock")})`;

describe.skipIf(!isRoot)("machina-nspawn's front end", () => {
  test("a served run: the payload's output and exit code; the helper runs in the front end's process (its status fd)", () => {
    const before = fallbacks().length;
    const r = front(["--register=no", "--console=pipe", "-D", tree, "-M", "fe-exit", "sh", "-c", "echo out; echo err >&2; exit 3"], { env: debug() });
    expect(r.stderr).toContain(SERVED());
    expect(r.stderr).toContain("Spawning container fe-exit on");
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toContain("err\n");
    expect(r.code).toBe(3);
    // the helper replaced the front end: the front end's fd 3 gets the planner's stages and the helper's
    const s = front(["--register=no", "-q", "-D", tree, "/bin/true"], { status: true });
    expect(s.code).toBe(0);
    const stages = s.status
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { stage?: string; event?: string; t?: number });
    const names = stages.map((l) => l.stage ?? l.event);
    expect(names.slice(0, 2)).toEqual(["main", "planned"]); // a served run has no Bun start of its own
    expect(names).toContain("spec");
    expect(names).toContain("exec");
    expect(stages.every((l) => typeof l.t === "number")).toBe(true);
    expect(fallbacks().length).toBe(before);
  });

  test("the front end's process becomes the supervisor, named as without machinad (machina-helper run …)", async () => {
    const p = Bun.spawn([FRONT, "--register=no", "-q", "-D", tree, "sleep", "2"], { env: env(), cwd: dir, stdio: ["ignore", "ignore", "ignore"] });
    const cmdline = await waitFor("the helper in the front end's process", () => {
      const c = existsSync(`/proc/${p.pid}/cmdline`) ? readFileSync(`/proc/${p.pid}/cmdline`, "utf8") : "";
      return c.startsWith("machina-helper\0") ? c : undefined;
    });
    expect(cmdline.split("\0").slice(0, 3)).toEqual(["machina-helper", "run", "--spec-fd"]);
    expect(await p.exited).toBe(0);
  });

  test("an error is the same one line, exit 1; --version and --help are served", () => {
    const bad = front(["--bogus"], { env: debug() });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(SERVED());
    expect(bad.stderr).toContain("machina-nspawn: unrecognized option '--bogus'");
    const missing = front(["-D", join(dir, "nope"), "/bin/true"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(front(["--version"]).stdout).toContain("machina-nspawn");
    expect(front(["--help"]).stdout).toContain("--directory");
  });

  test("the caller's working directory (-D relative) and RLIMIT_NOFILE hard limit, not machinad's", () => {
    const r = front(["--register=no", "-q", "-D", ".", "sh", "-c", "grep 'Max open files' /proc/self/limits"], {
      cwd: tree,
      wrapper: ["prlimit", "--nofile=2000:3000"],
    });
    expect(r.code).toBe(0);
    expect(r.stdout.split(/\s+/).slice(3, 5)).toEqual(["1024", "3000"]);
  });

  test("--network-veth: made for the run, nothing left after it", async () => {
    const name = `fv${process.pid.toString(36)}`;
    const r = front(["--register=no", "-q", "-D", tree, "-M", name, "--network-veth", "sh", "-c", "ip -o link show host0 >/dev/null && echo up"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("up\n");
    expect(r.code).toBe(0);
    // the supervisor's at-exit teardown finishes after the exit (issue 18: the kernel's part is not waited for)
    await waitFor("the network's teardown", () => !existsSync(join(stateDir(), "net", `${name}.json`)) || undefined);
    await waitFor(
      "the host's veth to go",
      () => Bun.spawnSync(["ip", "link", "show", vethHostName(name, false)], { stderr: "ignore" }).exitCode !== 0 || undefined,
    );
  });

  test("no machinad, a dead one's socket, MACHINA_NO_DAEMON=1 or other namespaces: the full machina-nspawn", () => {
    const none = join(dir, "run/none.sock");
    const alone = front(["--register=no", "-q", "-D", tree, "/bin/true"], { env: debug({ MACHINA_NSPAWN_SOCKET: none }) });
    expect(alone.code).toBe(0);
    expect(alone.stderr).toContain(`machina-nspawn: debug: machinad does not answer at ${none} (No such file or directory); running ${fallback.path}`);

    const stale = join(dir, "run/stale.sock");
    expect(Bun.spawnSync(["bun", "-e", `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]).exitCode).toBe(0);
    const dead = front(["--register=no", "-q", "-D", tree, "/bin/true"], { env: debug({ MACHINA_NSPAWN_SOCKET: stale }) });
    expect(dead.code).toBe(0);
    expect(dead.stderr).toContain(`machinad does not answer at ${stale} (Connection refused)`);

    const off = front(["--register=no", "-q", "-D", tree, "/bin/true"], { env: debug({ MACHINA_NO_DAEMON: "1" }) });
    expect(off.code).toBe(0);
    expect(off.stderr).toContain("machina-nspawn: debug: MACHINA_NO_DAEMON=1; running");

    const other = front(["--register=no", "-q", "-D", tree, "/bin/true"], { env: debug(), wrapper: ["unshare", "--mount"] });
    expect(other.code).toBe(0);
    expect(other.stderr).toContain("machina-nspawn runs in other namespaces or another root than machinad; running");
  });

  test("--template: the copy made by machinad without blocking it, then served; a bad template is one line", () => {
    const made = join(dir, "from-template");
    const before = fallbacks().length;
    const first = front(["--register=no", "-q", `--template=${tree}`, "-D", made, "/bin/true"], { env: debug() });
    expect(first.stderr).toContain(SERVED());
    expect(first.code).toBe(0);
    expect(readdirSync(made).sort()).toEqual(readdirSync(tree).sort());
    const again = front(["--register=no", "-q", `--template=${tree}`, "-D", made, "/bin/true"], { env: debug() });
    expect(again.code).toBe(0);
    expect(fallbacks().length).toBe(before);
    const bad = front(["--register=no", "-q", `--template=${join(dir, "no-template")}`, "-D", join(dir, "from-nothing"), "/bin/true"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`machina-nspawn: template "${join(dir, "no-template")}" is not a directory\n`);
    expect(existsSync(join(dir, "from-nothing"))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith(".#"))).toEqual([]); // no temporary left
  });

  test("a helper that cannot be executed: one line, exit 1, and machinad undoes the network it set up", async () => {
    const name = `fn${process.pid.toString(36)}`;
    const broken = join(dir, "not-a-helper");
    writeFileSync(broken, "\u007fELF but not really\n");
    chmodSync(broken, 0o755);
    const r = front(["--register=no", "-q", "-D", tree, "-M", name, "--network-veth", "/bin/true"], { env: env({ MACHINA_HELPER: broken }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^machina-nspawn: cannot run the helper \/proc\/[0-9]+\/fd\/[0-9]+: Exec format error\n$/);
    await waitFor("machinad to undo the network", () => !existsSync(join(stateDir(), "net", `${name}.json`)) || undefined);
    await waitFor("machinad's log of it", () => machinadLog().includes(`could not run the helper`) || undefined);
    expect(Bun.spawnSync(["ip", "link", "show", vethHostName(name, false)], { stderr: "ignore" }).exitCode).not.toBe(0);
  });

  test("a front end that goes away between the plan and the exec: machinad undoes the network it set up", async () => {
    const name = `fg${process.pid.toString(36)}`;
    const sock = connect(join(dir, "run/nspawn.sock"));
    const reader = new FrameReader();
    const frames: Frame[] = [];
    sock.on("data", (c: Buffer) => frames.push(...reader.push(c)));
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    sock.write(
      encodeRequest({
        cwd: dir,
        identity: processIdentity(),
        pid: process.pid,
        ttys: [false, false, false],
        argv: ["--register=no", "-q", "-D", tree, "-M", name, "--network-veth", "/bin/true"],
        env: env(),
      }),
    );
    const x = await waitFor("the planner's exec frame", () => frames.find((f) => f.type === "x" || f.type === "X"));
    expect(x.type).toBe("x");
    // planned and set up: the network's record and the host's end of the veth pair exist now
    expect(existsSync(join(stateDir(), "net", `${name}.json`))).toBe(true);
    sock.destroy(); // gone without 'A'
    await waitFor("machinad to undo the network", () => !existsSync(join(stateDir(), "net", `${name}.json`)) || undefined);
    expect(Bun.spawnSync(["ip", "link", "show", vethHostName(name, false)], { stderr: "ignore" }).exitCode).not.toBe(0);
    await waitFor("machinad's log of it", () => machinadLog().includes('"event":"nspawn-door-abandoned"') || undefined);
  });
});
