/**
 * machinad socket-activated (src/daemon/activation.ts): `systemd-socket-activate` binds the
 * front ends' sockets as machinad.socket does under systemd and starts machinad at the first
 * connection with them as fds 3…; machinad serves each door on its passed socket, binds only its
 * API socket itself, and leaves the passed ones to the service manager when it stops. A socket
 * machinad does not serve is refused with one line, and the front end whose connection it never
 * took runs the full program. machinad's units pass `systemd-analyze verify`. Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { daemonUnits } from "../../src/machine/systemd.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { MACHINAD } from "../helpers/daemon.ts";
import { MACHINA_NSPAWN, REPO, Scratch, baseEnv, recordedFallback, runToFiles, waitFor } from "../helpers/machina.ts";

const NSPAWN_FRONT = join(REPO, "native/build/machina-nspawn");
const MACHINACTL_FRONT = join(REPO, "native/build/machinactl");
const OCI_FRONT = join(REPO, "native/build/machina-oci");
const isRoot = process.getuid?.() === 0;
const haveActivate = Bun.which("systemd-socket-activate") !== null;
const files = new Scratch();
let dir = "";
let fallback = { path: "", calls: (): string[] => [] };

beforeAll(() => {
  if (!isRoot) return;
  if (!existsSync(NSPAWN_FRONT)) Bun.spawnSync(["make", "-C", join(REPO, "native"), "-s"]);
  dir = files.dir("activation-");
  fallback = recordedFallback(dir, "machina-nspawn", MACHINA_NSPAWN);
});
afterAll(() => files.cleanup());

/** systemd-socket-activate listening on `paths` (in run/ of `sub`), machinad its program; its stderr is machinad's log. */
function activate(sub: string, paths: string[]) {
  const run = join(dir, sub);
  mkdirSync(run, { mode: 0o700 });
  const env = baseEnv({ MACHINA_STATE_DIR: join(run, "state"), MACHINA_API_SOCKET: join(run, "api.sock"), MACHINA_SYSTEMD: "0" });
  const log = join(run, "machinad.log");
  const proc = files.track(
    Bun.spawn(
      [
        "systemd-socket-activate",
        ...Object.entries(env).flatMap(([k, v]) => ["-E", `${k}=${v}`]),
        ...paths.flatMap((p) => ["-l", join(run, p)]),
        MACHINAD,
        "--no-autostart",
      ],
      { env, stdout: "ignore", stderr: Bun.file(log) },
    ),
  );
  return { run, env, proc, log: () => (existsSync(log) ? readFileSync(log, "utf8") : "") };
}

describe.skipIf(!isRoot || !haveActivate)("machinad socket-activated", () => {
  test("started at the first connection, it serves all three doors on the passed sockets; stopped, it leaves them bound", async () => {
    const a = activate("all", ["nspawn.sock", "machinactl.sock", "oci.sock"]);
    await waitFor("the sockets", () => ["nspawn.sock", "machinactl.sock", "oci.sock"].every((p) => existsSync(join(a.run, p))) || undefined);
    expect(existsSync(join(a.run, "api.sock"))).toBe(false); // machinad is not running yet
    const tree = await ensureBusyboxImage();
    const frontEnv = { ...a.env, MACHINA_FRONT_DEBUG: "1", MACHINA_NSPAWN_FALLBACK: fallback.path };
    const name = files.name("act");
    const r = runToFiles(dir, [NSPAWN_FRONT, "-q", "--register=no", "-D", tree, "-M", name, "/bin/echo", "served"], { env: frontEnv, cwd: dir });
    expect([r.code, r.stdout]).toEqual([0, "served\n"]);
    expect(r.stderr).toContain(`machina-nspawn: debug: served by machinad (${join(a.run, "nspawn.sock")})`);
    expect(fallback.calls()).toEqual([]);
    const listening = a
      .log()
      .split("\n")
      .find((l) => l.includes('"event":"listening"'));
    // in the order of their fds, which is the order the service manager listed them in
    expect(JSON.parse(listening ?? "{}").activated).toEqual(["nspawn.sock", "machinactl.sock", "oci.sock"].map((p) => join(a.run, p)));
    expect(existsSync(join(a.run, "api.sock"))).toBe(true); // bound by machinad itself

    const list = runToFiles(dir, [MACHINACTL_FRONT, "list", "--no-legend"], { env: frontEnv, cwd: dir });
    expect([list.code, list.stderr]).toEqual([0, `machinactl: debug: served by machinad (${join(a.run, "machinactl.sock")})\n`]);
    const oci = runToFiles(dir, [OCI_FRONT, "--debug", "--root", join(a.run, "oci"), "list", "--quiet"], { env: frontEnv, cwd: dir });
    expect([oci.code, oci.stderr]).toEqual([0, `machina-oci: debug: served by machinad (${join(a.run, "oci.sock")})\n`]);

    a.proc.kill("SIGTERM"); // systemd-socket-activate executed machinad: this is machinad
    expect(await a.proc.exited).toBe(0);
    expect(existsSync(join(a.run, "api.sock"))).toBe(false);
    for (const p of ["nspawn.sock", "machinactl.sock", "oci.sock"]) expect(existsSync(join(a.run, p))).toBe(true); // the service manager's
  });

  test("a socket that is not a door: machinad refuses it with one line; the front end it never took runs the full program", async () => {
    const a = activate("wrong", ["nspawn.sock", "other.sock"]);
    await waitFor("the sockets", () => existsSync(join(a.run, "other.sock")) || undefined);
    const tree = await ensureBusyboxImage();
    const r = runToFiles(dir, [NSPAWN_FRONT, "-q", "--register=no", "-D", tree, "-M", files.name("acw"), "/bin/echo", "alone"], {
      env: { ...a.env, MACHINA_FRONT_DEBUG: "1", MACHINA_NSPAWN_FALLBACK: fallback.path },
      cwd: dir,
    });
    expect([r.code, r.stdout]).toEqual([0, "alone\n"]);
    expect(r.stderr).toContain(
      `machina-nspawn: debug: machinad (${join(a.run, "nspawn.sock")}) closed the connection before taking the command; running ${fallback.path}`,
    );
    expect(fallback.calls().at(-1)).toEndWith("/bin/echo alone");
    expect(await a.proc.exited).toBe(1);
    // systemd-socket-activate's own lines first ("Listening on …", "Execing …"), then machinad's one
    expect(
      a
        .log()
        .split("\n")
        .filter((l) => l.startsWith("machinad")),
    ).toEqual([
      `machinad: socket activation: ${join(a.run, "other.sock")} (fd 4) is not one of machinad's front-end sockets: ${["oci", "nspawn", "machinactl"].map((n) => join(a.run, `${n}.sock`)).join(", ")}`,
    ]);
    expect(existsSync(join(a.run, "api.sock"))).toBe(false);
  });
});

describe.skipIf(!isRoot || !haveActivate)("machinad under a service manager", () => {
  test("Type=notify: READY=1 (with its pid) once it serves, STOPPING=1 when it stops", async () => {
    const run = join(dir, "notify");
    mkdirSync(run, { mode: 0o700 });
    // systemd's notify socket: a datagram socket whose messages are printed one per line
    const notifyPath = join(run, "notify.sock");
    const receiver = files.track(
      Bun.spawn(
        [
          "python3",
          "-c",
          `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\nwhile True:\n  print(repr(s.recv(4096).decode()),flush=True)`,
          notifyPath,
        ],
        { stdout: "pipe" },
      ),
    );
    const lines: string[] = [];
    void (async () => {
      const decoder = new TextDecoder();
      let buf = "";
      for await (const chunk of receiver.stdout as ReadableStream<Uint8Array>) {
        buf += decoder.decode(chunk);
        const parts = buf.split("\n");
        buf = parts.pop()!;
        lines.push(...parts);
      }
    })();
    await waitFor("the notify socket", () => lines.includes("bound") || undefined);
    const env = baseEnv({ MACHINA_STATE_DIR: join(run, "state"), MACHINA_API_SOCKET: join(run, "api.sock"), MACHINA_SYSTEMD: "0", NOTIFY_SOCKET: notifyPath });
    const proc = files.track(
      Bun.spawn(
        [
          "systemd-socket-activate",
          ...Object.entries(env).flatMap(([k, v]) => ["-E", `${k}=${v}`]),
          ...["nspawn.sock", "machinactl.sock", "oci.sock"].flatMap((p) => ["-l", join(run, p)]),
          MACHINAD,
          "--no-autostart",
        ],
        { env, stdout: "ignore", stderr: "ignore" },
      ),
    );
    await waitFor("the sockets", () => existsSync(join(run, "oci.sock")) || undefined);
    const version = runToFiles(dir, [MACHINACTL_FRONT, "--version"], { env, cwd: dir }); // the first connection starts machinad
    expect(version.code).toBe(0);
    const ready = await waitFor("READY=1", () => lines.find((l) => l.includes("READY=1")), 20_000);
    expect(ready).toBe(`'READY=1\\nSTATUS=serving ${join(run, "api.sock")}\\nMAINPID=${proc.pid}'`);
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    await waitFor("STOPPING=1", () => lines.find((l) => l === "'STOPPING=1'"));
    receiver.kill();
  });
});

test.skipIf(Bun.which("systemd-analyze") === null)("machinad.socket and machinad.service pass systemd-analyze verify", () => {
  const d = files.dir("units-");
  const bin = join(d, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "machinad"), "#!/bin/sh\n", { mode: 0o755 });
  for (const [name, text] of Object.entries(daemonUnits(bin))) writeFileSync(join(d, name), text);
  const r = Bun.spawnSync(["systemd-analyze", "verify", "--man=no", join(d, "machinad.socket"), join(d, "machinad.service")], { stderr: "pipe" });
  expect([r.exitCode, r.stderr.toString()]).toEqual([0, ""]);
});
