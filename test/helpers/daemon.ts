/**
 * machinad for integration tests: a daemon on a temporary socket, state dir, enable dir and
 * image pool; a bootable busybox image whose init records the signals it gets; cleanup of
 * everything (daemon, supervisors, containers, cgroups, files) even when a test fails.
 */
import { spawn, type Subprocess } from "bun";
import { afterAll, afterEach, beforeAll } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { baseEnv, copyTree, REPO, Scratch, waitFor } from "./machina.ts";

export const MACHINAD = join(REPO, "bin/machinad");
export const MACHINACTL = join(REPO, "bin/machinactl");

/**
 * /sbin/init of the test image: logs the signals it gets on the console; SIGRTMIN+3 (37, the
 * stop signal), SIGRTMIN+4 (38, poweroff) and SIGTERM end it; SIGINT (reboot) makes it call
 * `reboot -f`, so the supervisor sets the container up again.
 */
export const TEST_INIT = `#!/bin/sh
trap 'echo "init: SIGRTMIN+3"; exit 0' 37
trap 'echo "init: SIGRTMIN+4"; exit 0' 38
trap 'echo "init: SIGTERM"; exit 0' TERM
trap 'echo "init: SIGINT"; reboot -f' INT
echo "init: up"
while :; do sleep 1000 & wait $!; done
`;

export interface TestEnv {
  stateDir: string;
  pool: string;
  enableDir: string;
  socket: string;
  image: string;
  env: Record<string, string>;
}

/** Temporary dirs and a bootable image (a copy of the busybox fixture with TEST_INIT). */
export async function daemonTestEnv(scratch: Scratch): Promise<TestEnv> {
  const busybox = await ensureBusyboxImage();
  const base = scratch.dir("machina-daemon-");
  const image = join(base, "image");
  copyTree(busybox, image);
  writeFileSync(join(image, "sbin/init"), TEST_INIT);
  chmodSync(join(image, "sbin/init"), 0o755);
  const t = {
    stateDir: join(base, "state"),
    pool: join(base, "pool"),
    enableDir: join(base, "wants"),
    socket: join(base, "run/api.sock"),
    image,
  };
  Bun.spawnSync(["mkdir", "-p", t.pool, t.stateDir]);
  const env = baseEnv({
    MACHINA_STATE_DIR: t.stateDir,
    MACHINA_POOL: t.pool,
    MACHINA_ENABLE_DIR: t.enableDir,
    MACHINA_API_SOCKET: t.socket,
    MACHINA_SYSTEMD: "0",
    MACHINA_UNIT_DIR: join(base, "units"),
    MACHINA_SETTINGS_DIRS: join(base, "nspawn"), // trusted .nspawn files: never the host's
  });
  scratch.defer(() => killSupervisors(t.stateDir));
  return { ...t, env };
}

/**
 * A test file's machinad environment: `t` is filled before its first test (daemonTestEnv) and
 * removed after its last; `scratch` (daemons, machines, files of one test) is emptied after each.
 */
export function daemonSuite(): { t: TestEnv; scratch: Scratch } {
  const files = new Scratch();
  const scratch = new Scratch();
  const t = {} as TestEnv;
  beforeAll(async () => {
    Object.assign(t, await daemonTestEnv(files));
  });
  afterEach(() => scratch.cleanup());
  afterAll(() => files.cleanup());
  return { t, scratch };
}

/**
 * Pool image NAME: a copy of the test image (each machine needs an image of its own name, and a
 * running machine holds its image locked, src/image/in-use.ts, so machines cannot share one).
 */
export function addImage(t: TestEnv, name: string): void {
  copyTree(t.image, join(t.pool, name));
}

export interface Daemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  pid: number;
  stderr: () => string;
}

/** Start machinad and wait until it answers. */
export function startDaemon(t: TestEnv, scratch: Scratch, args: string[] = [], extraEnv: Record<string, string> = {}): Promise<Daemon> {
  return spawnMachinad({ ...t.env, ...extraEnv }, scratch, args);
}

/** machinad with this environment (tracked by `scratch`), once it has logged "ready"; its stderr so far with stderr(). */
export async function spawnMachinad(env: Record<string, string>, scratch: Scratch, args: string[] = []): Promise<Daemon> {
  const proc = spawn([MACHINAD, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env }) as Subprocess<"ignore", "pipe", "pipe">;
  scratch.track(proc);
  let err = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr) err += dec.decode(chunk);
  })();
  await waitFor(
    "machinad to be ready",
    () => {
      if (proc.exitCode !== null) throw new Error(`machinad exited ${proc.exitCode}: ${err}`);
      return err.includes('"event":"ready"') || undefined;
    },
    15_000,
  );
  return { proc, pid: proc.pid, stderr: () => err };
}

/** Run machinactl with the test environment (plus extra variables). */
export async function machinactl(t: TestEnv, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = spawn([MACHINACTL, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...t.env, ...extraEnv } });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code: await p.exited, stdout, stderr };
}

/** Wait until the machine's init has set up its signal handlers (N-th "init: up" in its console log). */
export async function initUp(t: TestEnv, name: string, count = 1): Promise<void> {
  await waitFor(
    `init of ${name} to be up`,
    () => {
      try {
        return readFileSync(join(t.stateDir, "logs", `${name}.log`), "utf8").split("init: up").length - 1 >= count || undefined;
      } catch {
        return undefined;
      }
    },
    10_000,
  );
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** SIGKILL every supervisor still registered under stateDir (test cleanup). */
export function killSupervisors(stateDir: string): void {
  const dir = join(stateDir, "machines");
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    try {
      const s = JSON.parse(readFileSync(join(dir, name, "state.json"), "utf8")) as { supervisor: number; leader: number };
      for (const pid of [s.leader, s.supervisor]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    } catch {
      // no state
    }
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on right now (for machinad --listen). */
export function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

/** The web token machinad --listen made in the test's state dir. */
export function webToken(t: TestEnv): string {
  return readFileSync(join(t.stateDir, "web.token"), "utf8").trim();
}
