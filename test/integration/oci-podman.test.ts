/**
 * machina-oci under podman (issue 13): podman 4.3 (Debian 12) drives the OCI runtime under test
 * through conmon — create, start, exec, kill, delete, --version (docs/podman.md lists the exact
 * interface) — for run, exit codes, run -d, ps, exec, logs, stop, rm, run -it on a pty,
 * --network=none, podman's default (CNI bridge) network, --user, -e, -w, -v, --read-only and
 * --pid/--ipc/--uts=host.
 *
 * The runtime is the repo's bin/machina-oci, or $MACHINA_OCI_TEST_RUNTIME (e.g. /usr/sbin/runc, the
 * reference these tests were proven against). A missing default runtime fails the file; no podman
 * or not root skips it. podman's storage, configuration, network and cgroups are private to the run
 * and removed at the end (test/helpers/podman.ts); the last test checks nothing is left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { accessSync, constants, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { DEFAULT_RUNTIME, havePodman, isRoot, Podman, RUNTIME_ENV, runCommand, runtimeUnderTest } from "../helpers/podman.ts";

const T = 120_000;
const RUNTIME = runtimeUnderTest();
const IMAGE = "localhost/machina-test-busybox:latest";
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");
/** The non-network tests run with --network=none: quicker, and the network has its own tests. */
const NONE = "--network=none";

const skipWhy = !havePodman()
  ? "podman is not installed (apt-get install podman)"
  : !isRoot()
    ? "podman as root is needed (rootful containers, cgroupfs)"
    : undefined;
if (skipWhy) console.warn(`test/integration/oci-podman.test.ts skipped: ${skipWhy}`);

/** Fails loudly (never skips) when the runtime under test is missing. */
function checkRuntime(): void {
  try {
    if (!statSync(RUNTIME).isFile()) throw new Error("not a file");
    accessSync(RUNTIME, constants.X_OK);
  } catch (e) {
    const hint = RUNTIME === DEFAULT_RUNTIME ? ` (the default; set ${RUNTIME_ENV}=/usr/sbin/runc to prove the tests against runc)` : ` (from ${RUNTIME_ENV})`;
    throw new Error(`the OCI runtime under test ${RUNTIME}${hint} is not an executable file: ${(e as Error).message}`);
  }
}

describe.skipIf(skipWhy !== undefined)(`podman with --runtime ${RUNTIME}`, () => {
  let podman: Podman;

  beforeAll(async () => {
    checkRuntime();
    podman = new Podman(RUNTIME);
    await podman.importRootfs(await ensureBusyboxImage(), IMAGE);
  }, T);

  afterAll(async () => {
    await podman?.cleanup();
  }, T);

  /** `podman run --rm --network=none IMAGE ARGS...` (OPTIONS before the image). */
  function runNone(args: string[], options: string[] = []) {
    return podman.run(["run", "--rm", NONE, ...options, IMAGE, ...args]);
  }

  /** `podman ps ARGS...` (podman's verb, not procps' ps) */
  function podmanPs(...args: string[]): Promise<string> {
    return podman.ok(["ps", ...args]);
  }

  async function exitCode(name: string): Promise<number> {
    return Number((await podman.ok(["inspect", "--format", "{{.State.ExitCode}}", name])).trim());
  }

  async function waitForLog(name: string, text: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if ((await podman.ok(["logs", name])).includes(text)) return;
      await Bun.sleep(50);
    }
    throw new Error(`podman logs ${name}: no "${text}" after 10 s`);
  }

  test("the runtime under test is an executable file; podman info runs it (--version) and names it", async () => {
    checkRuntime();
    const [path, version] = (await podman.ok(["info", "--format", "{{.Host.OCIRuntime.Path}}\t{{.Host.OCIRuntime.Version}}"])).trim().split("\t");
    expect(path).toBe(RUNTIME);
    expect(version?.length).toBeGreaterThan(0);
  });

  test(
    "run --rm: the exit status propagates (true 0, false 1, sh -c 'exit 7' 7)",
    async () => {
      expect((await runNone(["true"])).code).toBe(0);
      expect((await runNone(["false"])).code).toBe(1);
      const r = await runNone(["sh", "-c", "exit 7"]);
      expect(r.code).toBe(7);
      expect(r.stderr).toBe("");
    },
    T,
  );

  test(
    "run --rm: a command that does not exist exits 127, one that is not executable 126 (podman reads the runtime's error)",
    async () => {
      const missing = await runNone(["/no/such/program"]);
      expect(missing.code).toBe(127);
      expect(missing.stderr).toMatch(/no such file or directory|executable file not found/i);
      const notExecutable = await runNone(["/etc/passwd"]);
      expect(notExecutable.code).toBe(126);
      expect(notExecutable.stderr).toMatch(/permission denied/i);
    },
    T,
  );

  test(
    "run: the command's stdout and stderr reach podman's stdout and stderr",
    async () => {
      const r = await runNone(["sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("to-stdout\n");
      expect(r.stderr).toBe("to-stderr\n");
    },
    T,
  );

  test(
    "run -i: podman's stdin reaches the command",
    async () => {
      const r = await podman.run(["run", "--rm", "-i", NONE, IMAGE, "sh", "-c", 'read line; echo "got:$line"'], { input: "from-stdin\n" });
      expect(r).toMatchObject({ code: 0, stdout: "got:from-stdin\n" });
    },
    T,
  );

  test(
    "run -d, ps, exec (output, exit status, same container), logs",
    async () => {
      const id = (
        await podman.ok(["run", "-d", "--name", "bg", NONE, IMAGE, "sh", "-c", 'echo started; trap "echo bye; exit 3" TERM; while :; do sleep 0.1; done'])
      ).trim();
      expect(id).toMatch(/^[0-9a-f]{64}$/);
      await waitForLog("bg", "started");
      expect(await podman.ok(["inspect", "--format", "{{.OCIRuntime}}", "bg"])).toBe(`${RUNTIME}\n`);

      const ps = await podmanPs("--format", "{{.ID}} {{.Names}} {{.Status}}");
      expect(ps).toMatch(new RegExp(`^${id.slice(0, 12)} bg Up `, "m"));

      const ex = await podman.run(["exec", "bg", "sh", "-c", "echo in-exec; echo exec-err >&2; exit 4"]);
      expect(ex).toMatchObject({ code: 4, stdout: "in-exec\n", stderr: "exec-err\n" });
      // exec joins the container: its PID 1 is the container's shell, its hostname the container's
      const inside = await podman.ok(["exec", "bg", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname"]);
      expect(inside).toBe(`sh -c echo started; trap "echo bye; exit 3" TERM; while :; do sleep 0.1; done \n${id.slice(0, 12)}\n`);

      expect(await podman.ok(["logs", "bg"])).toBe("started\n");
    },
    T,
  );

  test(
    "stop: a shell that traps TERM exits at once with its own status; the trap's output is logged",
    async () => {
      const r = await podman.run(["stop", "--time", "20", "bg"]);
      expect(r.code).toBe(0);
      expect(r.ms).toBeLessThan(8000);
      expect(await exitCode("bg")).toBe(3);
      expect(await podman.ok(["logs", "bg"])).toBe("started\nbye\n");
      expect(await podmanPs("-a", "--filter", "name=^bg$", "--format", "{{.Status}}")).toMatch(/^Exited \(3\)/);
    },
    T,
  );

  test(
    "stop: PID 1 without a TERM handler ignores SIGTERM, so podman kills it after --time 2 (137)",
    async () => {
      await podman.ok(["run", "-d", "--name", "stubborn", NONE, IMAGE, "sh", "-c", "echo up; while :; do sleep 0.1; done"]);
      await waitForLog("stubborn", "up");
      const r = await podman.run(["stop", "--time", "2", "stubborn"]);
      expect(r.code).toBe(0);
      expect(r.ms).toBeGreaterThanOrEqual(2000);
      expect(r.ms).toBeLessThan(15_000);
      expect(await exitCode("stubborn")).toBe(137);
    },
    T,
  );

  test(
    "rm: removes stopped containers; rm -f kills and removes a running one",
    async () => {
      await podman.ok(["rm", "bg", "stubborn"]);
      expect((await podman.run(["container", "exists", "bg"])).code).toBe(1);
      await podman.ok(["run", "-d", "--name", "doomed", NONE, IMAGE, "sleep", "1000"]);
      const r = await podman.run(["rm", "--force", "--time", "0", "doomed"]);
      expect(r.code).toBe(0);
      expect(r.ms).toBeLessThan(10_000);
      expect((await podman.run(["container", "exists", "doomed"])).code).toBe(1);
      expect(await podmanPs("-a", "--format", "{{.Names}}")).toBe("");
    },
    T,
  );

  test(
    "run -d: a detached container's exit status is what podman wait reports",
    async () => {
      await podman.ok(["run", "-d", "--name", "short", NONE, IMAGE, "sh", "-c", "exit 42"]);
      expect((await podman.ok(["wait", "short"])).trim()).toBe("42");
      await podman.ok(["rm", "short"]);
    },
    T,
  );

  test(
    "run -it on a pty: a terminal inside, raw host terminal, input relayed, exit status, terminal restored",
    async () => {
      const steps = [{ expect: "ready" }, { raw: true }, { send: "hello\r" }, { expect: "got:hello" }];
      const argv = podman.argv(["run", "--rm", "-it", NONE, IMAGE, "sh", "-c", 'tty; echo ready; read line; echo "got:$line"; exit 5']);
      const r = await runCommand(["python3", PTY_RUN, JSON.stringify(steps), ...argv], podman.env());
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as { code: number; output: string; raw: boolean[]; restored: boolean; timeout: boolean };
      expect(out.timeout).toBe(false);
      expect(out.output).toMatch(/^\/dev\/pts\/\d+\r\nready\r\n/);
      expect(out.raw).toEqual([true]);
      expect(out.code).toBe(5);
      expect(out.restored).toBe(true);
    },
    T,
  );

  test(
    "exec -it on a pty: the exec'd process has a terminal",
    async () => {
      await podman.ok(["run", "-d", "--name", "exec-tty", NONE, IMAGE, "sleep", "1000"]);
      const argv = podman.argv(["exec", "-it", "exec-tty", "sh", "-c", "tty; exit 6"]);
      const r = await runCommand(["python3", PTY_RUN, JSON.stringify([{ expect: "/dev/pts/" }]), ...argv], podman.env());
      const out = JSON.parse(r.stdout) as { code: number; output: string; timeout: boolean };
      expect(out.timeout).toBe(false);
      expect(out.code).toBe(6);
      await podman.ok(["rm", "--force", "--time", "0", "exec-tty"]);
    },
    T,
  );

  test(
    "--network=none: the container has only lo",
    async () => {
      const r = await runNone(["sh", "-c", "ls /sys/class/net; ip -o -4 addr show"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("lo\n1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n");
    },
    T,
  );

  test(
    "default network: an address on podman's CNI bridge, a default route to it, host and container reach each other",
    async () => {
      await podman.ok(["run", "-d", "--name", "web", IMAGE, "sh", "-c", "echo hello-from-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]);
      const netns = await podman.trackNetns("web");
      expect(netns).toMatch(/^\/run\/netns\//);
      const ip = (await podman.ok(["inspect", "--format", "{{.NetworkSettings.IPAddress}}", "web"])).trim();
      expect(ip.startsWith(podman.subnet.replace(/0\/24$/, ""))).toBe(true);
      expect(await podman.ok(["exec", "web", "ip", "-4", "route"])).toContain(`default via ${podman.gateway} dev eth0`);
      expect(await podman.ok(["exec", "web", "ls", "/sys/class/net"])).toBe("eth0\nlo\n");
      // host → container (a TCP connection to the container's own address)
      let body = "";
      for (let i = 0; i < 100 && !body; i++) {
        body = await fetch(`http://${ip}:8080/index.html`, { signal: AbortSignal.timeout(2000) })
          .then((res) => res.text())
          .catch(() => "");
        if (!body) await Bun.sleep(50);
      }
      expect(body).toBe("hello-from-web\n");
      // container → host (ICMP to the bridge's address; podman allows ping via net.ipv4.ping_group_range)
      const ping = await podman.run(["exec", "web", "ping", "-c", "1", "-W", "2", podman.gateway]);
      expect(ping.stdout).toContain("1 packets received");
      await podman.ok(["rm", "--force", "--time", "0", "web"]);
      // podman (not the runtime) made the namespace and removes it with the container
      expect(() => statSync(netns)).toThrow();
    },
    T,
  );

  test(
    "--user: numeric uid:gid and a user name from the image's /etc/passwd",
    async () => {
      expect((await runNone(["sh", "-c", "id -u; id -g"], ["--user", "1000:100"])).stdout).toBe("1000\n100\n");
      expect((await runNone(["id"], ["--user", "user"])).stdout).toMatch(/^uid=1000\(user\) gid=1000\(user\)/);
    },
    T,
  );

  test(
    "-e sets the environment, -w the working directory",
    async () => {
      const r = await runNone(["sh", "-c", 'echo "$GREETING"; pwd'], ["-e", "GREETING=hello there", "-w", "/home"]);
      expect(r).toMatchObject({ code: 0, stdout: "hello there\n/home\n" });
    },
    T,
  );

  test(
    "-v: a bind mount shows host files and writes through to the host; :ro refuses writes",
    async () => {
      const dir = mkdtempSync("/var/tmp/machina-podman-vol-");
      try {
        writeFileSync(join(dir, "in"), "from-host\n");
        const r = await runNone(["sh", "-c", "cat /data/in; echo from-container > /data/out"], ["-v", `${dir}:/data`]);
        expect(r).toMatchObject({ code: 0, stdout: "from-host\n" });
        expect(readFileSync(join(dir, "out"), "utf8")).toBe("from-container\n");
        const ro = await runNone(["sh", "-c", "echo x > /data/out"], ["-v", `${dir}:/data:ro`]);
        expect(ro.code).toBe(1);
        expect(ro.stderr).toContain("Read-only file system");
        expect(readFileSync(join(dir, "out"), "utf8")).toBe("from-container\n");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    T,
  );

  test(
    "--read-only: the root file system refuses writes; /tmp is a writable tmpfs",
    async () => {
      const r = await runNone(["sh", "-c", "touch /etc/x; echo rc=$?; touch /tmp/x && echo tmp-ok"], ["--read-only"]);
      expect(r.stdout).toBe("rc=1\ntmp-ok\n");
      expect(r.stderr).toContain("Read-only file system");
    },
    T,
  );

  test(
    "--pid=host --ipc=host --uts=host: the container is in the host's PID, IPC and UTS namespaces",
    async () => {
      const r = await runNone(["sh", "-c", "for n in pid ipc uts; do readlink /proc/self/ns/$n; done"], ["--pid=host", "--ipc=host", "--uts=host"]);
      const host = ["pid", "ipc", "uts"].map((n) => readlinkSync(`/proc/self/ns/${n}`));
      expect(r.stdout.trim().split("\n")).toEqual(host);
    },
    T,
  );

  test(
    "cleanup leaves nothing: containers, storage, runroot, netns, bridge, CNI state, cgroups, nft rules, processes",
    async () => {
      await podman.cleanup();
      expect(podman.leftovers()).toEqual([]);
    },
    T,
  );
});
