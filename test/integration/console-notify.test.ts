/**
 * Console modes (pipe, read-only, passive, interactive under a pty) and sd_notify forwarding
 * (--notify-ready). Root only; busybox image (a private copy where a test writes).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "bun";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { MACHINA_NSPAWN, REPO, Scratch, TEST_NOTIFY, baseEnv, copyTree, parseProbe, runNspawn, waitFor } from "../helpers/machina.ts";

const T = 30_000;
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");
const NOTIFY_LISTEN = join(import.meta.dir, "../helpers/notify-listen.py");
const files = new Scratch();
const scratch = new Scratch();
let image: string;
let copy: string;
let stateDir: string;

beforeAll(async () => {
  image = await ensureBusyboxImage();
  copy = `${files.dir()}/bb`;
  copyTree(image, copy);
  if (!existsSync(TEST_NOTIFY)) {
    const r = Bun.spawnSync(["make", "-C", join(REPO, "native"), "-s", "build/test-notify"], { stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`building ${TEST_NOTIFY}: ${r.stderr.toString()}`);
  }
  copyFileSync(TEST_NOTIFY, `${copy}/usr/bin/test-notify`);
  stateDir = files.dir("machina-state-");
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

const base = (console: string, root = image) => ["-q", `--console=${console}`, "-D", root, "-M", scratch.name()];

describe("console", () => {
  test(
    "pipe: stdin, stdout and stderr are the caller's",
    async () => {
      const r = await runNspawn([...base("pipe"), "/bin/sh", "-c", "cat; echo to-stderr >&2"], { stateDir, input: "input line\nsecond\n" }, scratch);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("input line\nsecond\n");
      expect(r.stderr).toBe("to-stderr\n");
    },
    T,
  );

  test(
    "pipe: binary data passes through unchanged",
    async () => {
      const data = new Uint8Array(256 * 64).map((_, i) => i & 0xff);
      const p = spawn([MACHINA_NSPAWN, ...base("pipe"), "/bin/cat"], {
        stdin: data,
        stdout: "pipe",
        stderr: "pipe",
        env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
      });
      scratch.track(p);
      const out = new Uint8Array(await new Response(p.stdout).arrayBuffer());
      expect(await p.exited).toBe(0);
      expect(Buffer.compare(Buffer.from(out), Buffer.from(data))).toBe(0);
    },
    T,
  );

  test(
    "read-only (stdout not a tty): output relayed byte-exact, stdin not passed, pty inside",
    async () => {
      const p = spawn([MACHINA_NSPAWN, ...base("read-only"), "/bin/sh", "-c", 'read -t 0.3 x; echo "got:$x."; printf "a\\tb\\r\\nc\\n\\001\\377"'], {
        stdin: Buffer.from("typed\n"),
        stdout: "pipe",
        stderr: "pipe",
        env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
      });
      scratch.track(p);
      const out = Buffer.from(await new Response(p.stdout).arrayBuffer());
      expect(await p.exited).toBe(0);
      expect(out).toEqual(Buffer.from("got:.\na\tb\r\nc\n\x01\xff", "latin1"));
    },
    T,
  );

  test(
    "read-only: fds 0-2 are the container's pty, /dev/console exists",
    async () => {
      const r = await runNspawn([...base("read-only"), "/usr/bin/probe"], { stateDir }, scratch);
      expect(r.code).toBe(0);
      const p = parseProbe(r.stdout);
      expect(p.fds).toEqual({ "0": "/dev/pts/0", "1": "/dev/pts/0", "2": "/dev/pts/0" });
      expect(p.tty.stdin).toBe(true);
      const consoleEntry = p.dev!.find((e) => e.name === "console");
      expect(consoleEntry).toBeDefined();
      expect(p.devPts!.map((e) => e.name).sort()).toEqual(["0", "ptmx"]);
    },
    T,
  );

  test(
    "passive: the payload's stdio is /dev/null, no /dev/console",
    async () => {
      const r = await runNspawn(
        [
          ...base("passive", copy),
          "/bin/sh",
          "-c",
          "for i in 0 1 2; do (stat -L -c '%F %t:%T' /proc/$$/fd/$i) >> /root/fds; done; ls /dev > /root/dev; echo lost",
        ],
        { stateDir, input: "ignored\n" },
        scratch,
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("");
      expect(readFileSync(`${copy}/root/fds`, "utf8")).toBe("character special file 1:3\n".repeat(3)); // null
      expect(readFileSync(`${copy}/root/dev`, "utf8").split("\n")).not.toContain("console");
    },
    T,
  );

  async function ptyRun(steps: object[], args: string[]) {
    const p = spawn(["python3", PTY_RUN, JSON.stringify(steps), MACHINA_NSPAWN, ...args], {
      stdout: "pipe",
      stderr: "pipe",
      env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
    });
    scratch.track(p);
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
    if ((await p.exited) !== 0) throw new Error(`pty-run failed: ${err}`);
    return JSON.parse(out) as { code: number; output: string; raw: boolean[]; restored: boolean; timeout: boolean; after: Record<string, boolean> };
  }

  test(
    "interactive (on a terminal, the default): raw host terminal, input relayed, exit status, terminal restored",
    async () => {
      const name = scratch.name();
      const r = await ptyRun(
        [{ expect: "ready" }, { raw: true }, { send: "hello\r" }, { expect: "got:hello" }],
        ["-D", image, "-M", name, "/bin/sh", "-c", 'echo ready; read line; echo "got:$line"; exit 5'],
      );
      expect(r.timeout).toBe(false);
      expect(r.code).toBe(5);
      expect(r.raw).toEqual([true]);
      expect(r.restored).toBe(true);
      expect(r.after.icanon && r.after.echo).toBe(true);
      expect(r.output).toContain(`Spawning container ${name} on ${image}.`);
      expect(r.output).toContain("Press ^] three times within 1s to kill container.");
      expect(r.output).toContain(`Container ${name} failed with error code 5.`);
    },
    T,
  );

  test(
    "interactive: ^]^]^] kills the container (137), terminal restored",
    async () => {
      const r = await ptyRun(
        [{ expect: "ready" }, { send: "\x1d\x1d\x1d" }],
        ["-q", "--console=interactive", "-D", image, "-M", scratch.name(), "/bin/sh", "-c", "echo ready; sleep 10"],
      );
      expect(r.timeout).toBe(false);
      expect(r.code).toBe(137);
      expect(r.restored).toBe(true);
    },
    T,
  );

  test(
    "interactive: the payload has the pty as controlling terminal and sees its size",
    async () => {
      const r = await ptyRun([], ["-q", "-D", image, "-M", scratch.name(), "/bin/sh", "-c", "stty size; tty"]);
      expect(r.code).toBe(0);
      expect(r.output).toContain("24 80");
      expect(r.output).toContain("/dev/pts/0");
      expect(r.restored).toBe(true);
    },
    T,
  );
});

describe("sd_notify forwarding", () => {
  async function withListener(fn: (socket: string) => Promise<void>): Promise<Array<{ t: number; msg: string }>> {
    const socket = `${scratch.dir("machina-notify-")}/notify`;
    const l = spawn(["python3", NOTIFY_LISTEN, socket], { stdout: "pipe", stderr: "inherit" });
    scratch.track(l);
    await waitFor("the listener's socket", () => existsSync(socket) || undefined, 5000);
    const out = new Response(l.stdout).text();
    await fn(socket);
    await Bun.sleep(100);
    l.kill("SIGTERM");
    await l.exited;
    return (await out)
      .split("\n")
      .filter(Boolean)
      .map((x) => JSON.parse(x));
  }

  test(
    "without --notify-ready, READY=1 is sent when the payload starts",
    async () => {
      let t0 = 0;
      const got = await withListener(async (socket) => {
        t0 = Date.now();
        const r = await runNspawn([...base("pipe"), "/bin/sleep", "0.6"], { stateDir, env: { NOTIFY_SOCKET: socket } }, scratch);
        expect(r.code).toBe(0);
      });
      const ready = got.filter((m) => m.msg.split("\n").includes("READY=1"));
      expect(ready).toHaveLength(1);
      expect(ready[0]!.t - t0).toBeLessThan(500);
    },
    T,
  );

  test(
    "--notify-ready=yes: READY=1 only when the container sends it",
    async () => {
      let t0 = 0;
      const got = await withListener(async (socket) => {
        t0 = Date.now();
        const r = await runNspawn(
          [...base("pipe", copy), "--notify-ready=yes", "/bin/sh", "-c", "sleep 0.6; test-notify READY=1 STATUS=up; sleep 0.1"],
          { stateDir, env: { NOTIFY_SOCKET: socket } },
          scratch,
        );
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
      });
      const ready = got.filter((m) => m.msg.split("\n").includes("READY=1"));
      expect(ready).toHaveLength(1);
      expect(ready[0]!.t - t0).toBeGreaterThanOrEqual(600);
      expect(got.map((m) => m.msg).join("\n")).toContain("STATUS=up");
    },
    T,
  );

  test(
    "--notify-ready=yes and a container that never sends it: no READY=1",
    async () => {
      const got = await withListener(async (socket) => {
        const r = await runNspawn([...base("pipe"), "--notify-ready=yes", "/bin/sleep", "0.3"], { stateDir, env: { NOTIFY_SOCKET: socket } }, scratch);
        expect(r.code).toBe(0);
      });
      expect(got.filter((m) => m.msg.split("\n").includes("READY=1"))).toEqual([]);
    },
    T,
  );
});
