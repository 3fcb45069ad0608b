/**
 * machinad's LSB init script for hosts whose init is sysvinit (src/machine/sysv.ts), run as
 * /etc/init.d/machinad would be, with the installed (compiled) machinad of scripts/build and a
 * socket, state directory, pid file and log of the test's own: `start` returns once machinad
 * serves (start-stop-daemon --notify-await and machinad's READY=1), again is a no-op, `status`
 * says so, `stop` ends it and removes the pid file; a machinad that cannot start fails `start` at
 * once (its ERRNO=, not start-stop-daemon's 60 s timeout) with its reason and leaves no pid file.
 * Root only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MachinaClient } from "../../src/client/client.ts";
import { daemonInitScript } from "../../src/machine/sysv.ts";
import { REPO, Scratch, alive, baseEnv } from "../helpers/machina.ts";

const isRoot = process.getuid?.() === 0;
const DAEMON = join(REPO, "dist/bin/machinad");
const files = new Scratch();
afterAll(() => files.cleanup());

/** The script with the test's paths; `opts` are machinad's options (MACHINAD_OPTS in the defaults file). */
function initScript(opts: string, daemon = DAEMON) {
  const dir = files.dir("sysv-");
  const paths = { pidFile: join(dir, "machinad.pid"), logFile: join(dir, "machinad.log"), defaults: join(dir, "defaults") };
  const socket = join(dir, "run/api.sock");
  writeFileSync(paths.defaults, `export MACHINA_API_SOCKET=${socket}\nexport MACHINA_STATE_DIR=${join(dir, "state")}\nMACHINAD_OPTS="${opts}"\n`);
  const script = join(dir, "machinad");
  writeFileSync(script, daemonInitScript({ daemon, ...paths }), { mode: 0o755 });
  const run = (action: string) => {
    const t0 = performance.now();
    const r = Bun.spawnSync([script, action], { env: baseEnv(), stdout: "pipe", stderr: "pipe" });
    return { status: r.exitCode, out: r.stdout.toString() + r.stderr.toString(), ms: performance.now() - t0 };
  };
  const pid = () => (existsSync(paths.pidFile) ? Number(readFileSync(paths.pidFile, "utf8").trim()) : undefined);
  files.defer(() => {
    run("stop");
    const p = pid();
    if (p !== undefined) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
  });
  return { dir, script, socket, run, pid, log: () => readFileSync(paths.logFile, "utf8") };
}

describe.skipIf(!isRoot)("machinad's init script (sysvinit)", () => {
  test("the script is valid sh with an LSB header", () => {
    const s = initScript("--no-autostart");
    expect(Bun.spawnSync(["sh", "-n", s.script]).exitCode).toBe(0);
    expect(readFileSync(s.script, "utf8")).toMatch(/### BEGIN INIT INFO\n# Provides: +machinad\n[\s\S]*### END INIT INFO/);
  });

  test("start waits until machinad serves; start again changes nothing; status; stop ends it and removes the pid file", async () => {
    const s = initScript("--no-autostart");
    const started = s.run("start");
    expect(started).toMatchObject({ status: 0 });
    const pid = s.pid()!;
    expect(alive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain("--no-autostart");
    // READY=1 came after the sockets: it answers as start returns
    expect(await new MachinaClient(s.socket).ping(1000)).toBe(true);
    expect(s.log()).toContain('"event":"ready"');

    expect(s.run("start").status).toBe(0);
    expect(s.pid()).toBe(pid);
    expect(s.run("status")).toMatchObject({ status: 0 });

    expect(s.run("stop").status).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(s.pid()).toBeUndefined();
    expect(s.run("status").status).toBe(3); // LSB: not running
    // a stop after READY=1 finds start-stop-daemon's notify socket gone: not an error worth a line
    expect(s.log()).not.toContain("notify-failed");
  });

  test("restart after an upgrade replaced the binary: the old machinad is found by its pid file and name, and the new one serves", async () => {
    const bin = join(files.dir("sysv-bin-"), "machinad");
    copyFileSync(DAEMON, bin);
    const s = initScript("--no-autostart", bin);
    expect(s.run("start").status).toBe(0);
    const old = s.pid()!;
    // as scripts/build does: a new file renamed over the old one (the running machinad keeps the old inode)
    copyFileSync(DAEMON, `${bin}.tmp`);
    renameSync(`${bin}.tmp`, bin);
    expect(readlinkSync(`/proc/${old}/exe`)).toEndWith("(deleted)");
    const r = s.run("restart");
    expect(r).toMatchObject({ status: 0 });
    const now = s.pid()!;
    expect(now).not.toBe(old);
    expect(alive(old)).toBe(false);
    expect(readlinkSync(`/proc/${now}/exe`)).toBe(bin);
    expect(await new MachinaClient(s.socket).ping(1000)).toBe(true);
    expect(s.run("stop").status).toBe(0);
    expect(alive(now)).toBe(false);
  });

  test("a machinad that cannot start fails start at once, with its reason, and leaves no pid file", () => {
    const s = initScript("--no-such-option");
    const r = s.run("start");
    expect(r.status).not.toBe(0);
    expect(r.ms).toBeLessThan(10_000); // ERRNO= ends start-stop-daemon's wait (its timeout is 60 s)
    expect(r.out).toContain("unrecognized option '--no-such-option'");
    expect(s.pid()).toBeUndefined();
  });
});
