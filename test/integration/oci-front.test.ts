/**
 * machina-oci's native front end (native/front.c) with machinad's planner
 * (src/daemon/oci-door.ts): the whole machina-oci suite (oci-runtime-suite.ts) through it, the
 * commands that need their own process handed to the full machina-oci (recorded: none of the
 * served ones may be among them), and the front end's own rules: --debug says who served, no
 * machinad or a dead one's socket or other namespaces mean the full machina-oci, relative paths
 * are the caller's. Root only; machinad runs on a socket and state directory of the test's own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { type Daemon, spawnMachinad } from "../helpers/daemon.ts";
import { REPO, Scratch, baseEnv, copyTree, recordedFallback, runToFiles, waitFor } from "../helpers/machina.ts";
import { ociRuntimeSuite } from "./oci-runtime-suite.ts";

const FRONT = join(REPO, "native/build/machina-oci");
const FULL = join(REPO, "bin/machina-oci");
const isRoot = process.getuid?.() === 0;
const files = new Scratch();
const daemon = new Scratch();
let machinad: Daemon["proc"] | undefined;
let dir = "";
/** the full machina-oci, through a script that records each command line the front end hands it */
let fallback = { path: "", calls: (): string[] => [] };

const env = (extra: Record<string, string> = {}) => baseEnv({ MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_OCI_FALLBACK: fallback.path, ...extra });

beforeAll(async () => {
  if (!isRoot) return;
  if (!existsSync(FRONT)) Bun.spawnSync(["make", "-C", join(REPO, "native"), "-s"]);
  dir = files.dir("oci-front-");
  mkdirSync(join(dir, "run"), { mode: 0o700 });
  fallback = recordedFallback(dir, "machina-oci", FULL);
  const d = await spawnMachinad(
    baseEnv({ MACHINA_STATE_DIR: join(dir, "state"), MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_SYSTEMD: "0" }),
    daemon,
    ["--no-autostart"],
  );
  machinad = d.proc;
});

afterAll(async () => {
  try {
    if (machinad !== undefined) {
      machinad.kill("SIGTERM");
      expect(await machinad.exited).toBe(0);
      expect(existsSync(join(dir, "run/oci.sock"))).toBe(false); // machinad removed its sockets
      expect(existsSync(join(dir, "run/api.sock"))).toBe(false);
    }
  } finally {
    await daemon.cleanup();
    files.cleanup();
  }
});

ociRuntimeSuite({ label: "machina-oci through its front end and machinad", command: FRONT, env: () => env() });

/** The front end; stdout and stderr through files (a created container keeps them open: a pipe would not end). */
function front(args: string[], o: { env?: Record<string, string>; cwd?: string; wrapper?: string[] } = {}) {
  return runToFiles(dir, [...(o.wrapper ?? []), FRONT, ...args], { env: o.env ?? env(), cwd: o.cwd ?? dir });
}

describe.skipIf(!isRoot)("machina-oci's front end", () => {
  test("the suite's served commands never went to the full machina-oci", () => {
    const lines = fallback.calls();
    // run, exec and update need their own process; start/delete only for containers with hooks
    const command = (line: string) =>
      line.split(" ").find((w, i, all) => !w.startsWith("-") && !["--root", "--log", "--log-format"].includes(all[i - 1] ?? ""));
    const served = ["create", "state", "kill", "pause", "resume", "list", "ps"];
    expect(lines.filter((l) => served.includes(command(l) ?? ""))).toEqual([]);
  });

  test("--debug says who served; errors are the same line either way", () => {
    const served = front(["--debug", "--root", join(dir, "root"), "state", "nope"]);
    expect(served.code).toBe(1);
    expect(served.stderr).toContain(`machina-oci: debug: served by machinad (${join(dir, "run/oci.sock")})`);
    expect(served.stderr).toContain('machina-oci: container "nope" does not exist');

    const alone = front(["--debug", "--root", join(dir, "root"), "state", "nope"], { env: env({ MACHINA_OCI_SOCKET: join(dir, "run/none.sock") }) });
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain(
      `machina-oci: debug: machinad does not answer at ${join(dir, "run/none.sock")} (No such file or directory); running ${fallback.path}`,
    );
    expect(alone.stderr).toContain('machina-oci: container "nope" does not exist');
  });

  test("a dead machinad's socket, or a caller in other namespaces: the full machina-oci", () => {
    const stale = join(dir, "run/stale.sock");
    const made = Bun.spawnSync(["bun", "-e", `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`]);
    expect(made.exitCode).toBe(0);
    expect(existsSync(stale)).toBe(true);
    const r = front(["--debug", "--root", join(dir, "root"), "list", "--quiet"], { env: env({ MACHINA_OCI_SOCKET: stale }) });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`machinad does not answer at ${stale} (Connection refused)`);

    const other = front(["--debug", "--root", join(dir, "root"), "list", "--quiet"], { wrapper: ["unshare", "--mount"] });
    expect(other.code).toBe(0);
    expect(other.stderr).toContain("machina-oci runs in other namespaces or another root than machinad; running");
  });

  test("a socket that closes before machinad's 'a' (a failed socket-activated start): the full program; after it: one line, exit 1", async () => {
    const closing = join(dir, "run/closing.sock"); // closes each connection at once, without a frame: nothing was done
    const taking = join(dir, "run/taking.sock"); // takes the connection ('a'), then closes it: the command may have begun
    const script = `const net = require("node:net");
      net.createServer((c) => c.destroy()).listen(${JSON.stringify(closing)}, () =>
        net.createServer((c) => c.end(Buffer.from([0x61, 0, 0, 0, 0]))).listen(${JSON.stringify(taking)}, () => console.log("ready")));`;
    const servers = Bun.spawn(["bun", "-e", script], { stdout: "pipe" });
    try {
      const first = await servers.stdout.getReader().read();
      expect(new TextDecoder().decode(first.value)).toBe("ready\n");
      const r = front(["--debug", "--root", join(dir, "root"), "list", "--quiet"], { env: env({ MACHINA_OCI_SOCKET: closing }) });
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`machina-oci: debug: machinad (${closing}) closed the connection before taking the command; running ${fallback.path}`);
      expect(fallback.calls()).toContain(`--debug --root ${join(dir, "root")} list --quiet`);
      const t = front(["--root", join(dir, "root"), "list", "--quiet"], { env: env({ MACHINA_OCI_SOCKET: taking }) });
      expect([t.code, t.stderr]).toEqual([1, `machina-oci: machinad (${taking}) closed the connection during the command\n`]);
    } finally {
      servers.kill();
      await servers.exited;
    }
  });

  test("the planner plans for the caller's process: its RLIMIT_NOFILE hard limit, not machinad's", async () => {
    const bundle = join(dir, "limits-bundle");
    mkdirSync(bundle);
    copyTree(await ensureBusyboxImage(), join(bundle, "rootfs"));
    expect(front(["spec"], { cwd: bundle }).code).toBe(0);
    const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as { process: Record<string, unknown> };
    Object.assign(config.process, { terminal: false, args: ["sh", "-c", "grep 'Max open files' /proc/self/limits"] });
    delete config.process.rlimits; // none given: the caller's hard limit stays (soft 1024, as machina-nspawn)
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
    const id = `limits-${process.pid}`;
    const out = join(bundle, "out");
    const fd = openSync(out, "w");
    try {
      const created = Bun.spawnSync(["prlimit", "--nofile=2000:3000", FRONT, "--debug", "--root", "state-root", "create", id], {
        env: env(),
        cwd: bundle,
        stdin: "ignore",
        stdout: fd,
        stderr: fd,
      });
      expect(created.exitCode).toBe(0);
      expect(front(["--root", join(bundle, "state-root"), "start", id]).code).toBe(0);
      const line = await waitFor("the container's limits", () => /Max open files.*\n/.exec(readFileSync(out, "utf8"))?.[0]);
      expect(readFileSync(out, "utf8")).toContain("served by machinad");
      expect(line.split(/\s+/).slice(3, 5)).toEqual(["1024", "3000"]);
    } finally {
      closeSync(fd);
      front(["--root", join(bundle, "state-root"), "delete", "--force", id]);
    }
  });

  test("relative --bundle, --pid-file and --root are the caller's", async () => {
    const bundle = join(dir, "rel-bundle");
    mkdirSync(bundle);
    copyTree(await ensureBusyboxImage(), join(bundle, "rootfs"));
    expect(front(["spec"], { cwd: bundle }).code).toBe(0);
    const config = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as { process: Record<string, unknown> };
    Object.assign(config.process, { terminal: false, args: ["/bin/true"] });
    writeFileSync(join(bundle, "config.json"), JSON.stringify(config));
    const id = `rel-${process.pid}`;
    try {
      const c = front(["--debug", "--root", "state-root", "create", "--bundle", ".", "--pid-file", "init.pid", id], { cwd: bundle });
      expect(c.stderr).toContain("served by machinad");
      expect(c.code).toBe(0);
      const pid = Number(readFileSync(join(bundle, "init.pid"), "utf8"));
      expect(pid).toBeGreaterThan(1);
      const st = JSON.parse(front(["--root", join(bundle, "state-root"), "state", id]).stdout) as { bundle: string; pid: number; status: string };
      expect(st).toMatchObject({ bundle, pid, status: "created" });
    } finally {
      expect(front(["--root", join(bundle, "state-root"), "delete", "--force", id]).code).toBe(0);
    }
  });
});
