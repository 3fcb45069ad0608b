/**
 * machinactl's native front end (native/front.c, built with -DFRONT_MACHINACTL) with machinad's
 * door (src/daemon/machinactl-door.ts): list, status, show, --version, shell and exec are served —
 * the same output and exit status as the full machinactl, and for shell/exec the front end
 * becomes the helper — while every other verb, a shell on the host, a
 * command line machinactl refuses and a host without machinad go to the full machinactl. Root
 * only; machinad runs on a socket and state directory of the test's own.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { MACHINACTL, spawnMachinad } from "../helpers/daemon.ts";
import { MACHINA_NSPAWN, REPO, Scratch, baseEnv, recordedFallback, runToFiles, waitFor } from "../helpers/machina.ts";

const FRONT = join(REPO, "native/build/machinactl");
const isRoot = process.getuid?.() === 0;
const files = new Scratch();
const daemon = new Scratch();
let dir = "";
let machine = "";
let payload: ReturnType<typeof Bun.spawn> | undefined;
let machinad: Awaited<ReturnType<typeof spawnMachinad>>["proc"] | undefined;
/** the full machinactl, through a script that records each command line the front end hands it */
let fallback = { path: "", calls: (): string[] => [] };

const stateDir = () => join(dir, "state");
const env = (extra: Record<string, string> = {}) =>
  baseEnv({ MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_STATE_DIR: stateDir(), MACHINA_MACHINACTL_FALLBACK: fallback.path, ...extra });
const front = (args: string[], extra: Record<string, string> = {}) => runToFiles(dir, [FRONT, ...args], { env: env(extra), cwd: dir });
/** the same command line run by the full machinactl alone */
const full = (args: string[]) => runToFiles(dir, [MACHINACTL, ...args], { env: env({ MACHINA_NO_DAEMON: "1" }), cwd: dir });
const fallbacks = () => fallback.calls();

beforeAll(async () => {
  if (!isRoot) return;
  if (!existsSync(FRONT)) Bun.spawnSync(["make", "-C", join(REPO, "native"), "-s"]);
  dir = files.dir("machinactl-front-");
  mkdirSync(join(dir, "run"), { mode: 0o700 });
  fallback = recordedFallback(dir, "machinactl", MACHINACTL);
  const d = await spawnMachinad(baseEnv({ MACHINA_STATE_DIR: stateDir(), MACHINA_API_SOCKET: join(dir, "run/api.sock"), MACHINA_SYSTEMD: "0" }), daemon, [
    "--no-autostart",
  ]);
  machinad = d.proc;
  machine = files.name("mcf");
  const tree = await ensureBusyboxImage();
  payload = files.track(
    Bun.spawn([MACHINA_NSPAWN, "-q", "-x", "-D", tree, "-M", machine, "/bin/sleep", "300"], { env: env(), stdout: "ignore", stderr: "inherit" }),
  );
  await waitFor("the machine", () => existsSync(join(stateDir(), `machines/${machine}/state.json`)) || undefined, 15_000, 20);
});

afterAll(async () => {
  try {
    payload?.kill("SIGKILL");
    await payload?.exited;
    if (machinad !== undefined) {
      machinad.kill("SIGTERM");
      expect(await machinad.exited).toBe(0);
      expect(existsSync(join(dir, "run/machinactl.sock"))).toBe(false); // machinad removed its sockets
    }
  } finally {
    await daemon.cleanup();
    await files.cleanup();
  }
});

describe.skipIf(!isRoot)("machinactl's front end, served by machinad", () => {
  test("list, show, --version: served, the full machinactl's output to the byte; status served", () => {
    for (const args of [["list"], [], ["show", machine, "-p", "Leader,Class,RootDirectory,State"], ["--version"], ["list", "--output=json"]]) {
      const served = front(args, { MACHINA_FRONT_DEBUG: "1" });
      const alone = full(args);
      expect(served.stderr).toContain("served by machinad");
      expect([served.code, served.stdout]).toEqual([alone.code, alone.stdout]);
      expect(served.stdout.length).toBeGreaterThan(0);
    }
    const status = front(["status", machine]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`Leader: `);
    expect(fallbacks()).toEqual([]);
  });

  test("exec and shell NAME COMMAND: the front end becomes the helper; the command's output and exit status", () => {
    const exec = front(["exec", machine, "/bin/sh", "-c", "echo inside $(hostname); exit 7"], { MACHINA_FRONT_DEBUG: "1" });
    expect(exec.stderr).toContain("served by machinad");
    expect(exec.code).toBe(7);
    expect(exec.stdout).toContain(`inside ${machine}`);
    const shell = front(["shell", machine, "/bin/echo", "hi"]);
    expect([shell.code, shell.stdout.trim()]).toEqual([0, "hi"]);
    // no such machine: machinactl's own message and status
    const none = front(["exec", "no-such-machine", "/bin/true"]);
    expect([none.code, none.stderr.trim().split("\n")[0]]).toEqual([1, 'machinactl: no machine "no-such-machine" is running']);
    expect(fallbacks()).toEqual([]);
  });

  test("the full machinactl: other verbs, a shell on the host, a refused command line, MACHINA_NO_DAEMON=1, no machinad", () => {
    const host = front(["shell", ".host", "/bin/sh", "-c", "echo on-the-host"], { MACHINA_FRONT_DEBUG: "1" });
    expect(host.stdout.trim()).toBe("on-the-host");
    expect(host.stderr).toContain("a shell on the host");
    const bad = front(["--no-such-option"]);
    expect([bad.code, bad.stderr.trim()]).toEqual([1, "machinactl: unrecognized option '--no-such-option'"]);
    const images = front(["list-images"]);
    expect(images.code).toBe(0);
    expect(front(["list"], { MACHINA_NO_DAEMON: "1" }).stdout).toContain(machine);
    const gone = front(["list"], { MACHINA_API_SOCKET: join(dir, "run/none.sock"), MACHINA_MACHINACTL_SOCKET: join(dir, "run/none.sock") });
    expect(gone.stdout).toContain(machine);
    expect(fallbacks()).toEqual(["shell .host /bin/sh -c echo on-the-host", "--no-such-option", "list-images", "list", "list"]);
  });
});
