/**
 * machinad, for real (root): the typed client against the in-process core (same results),
 * machinactl through the daemon and without it (same JSON), kill -9 of the daemon with running
 * containers (they keep running, networks too; a new daemon adopts them), enabled machines started when the
 * daemon starts, reboot honoured, a cancelled start, 8 containers started and stopped at once
 * (MACHINA_STRESS=1: 50 rounds) with no leftovers and no fd leak, and the socket's permissions.
 * Root only.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { LocalMachineService } from "../../src/api/local-service.ts";
import { MachinaClient } from "../../src/client/client.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { paths } from "../../src/paths.ts";
import { addImage, daemonSuite, fdCount, initUp, machinactl, spawnMachinad, startDaemon, TEST_INIT } from "../helpers/daemon.ts";
import { alive, machineCgroup, readState, waitFor } from "../helpers/machina.ts";

const T = 60_000;
const { t, scratch } = daemonSuite();

function local(): LocalMachineService {
  const host = new LinuxHost();
  return new LocalMachineService(host, paths(t.env), t.env);
}

function name(): string {
  const n = scratch.name("md");
  addImage(t, n);
  return n;
}

/** systemd-nspawn@.service's defaults (settings/managed.ts): a user namespace of its own and a veth (host0 / ve-NAME). */
function expectManagedDefaults(machine: string, leader: number): void {
  const uidMap = readFileSync(`/proc/${leader}/uid_map`, "utf8").trim().split(/\s+/).map(Number);
  expect(uidMap).not.toEqual([0, 0, 4294967295]);
  expect([uidMap[0], uidMap[2]]).toEqual([0, 65536]);
  expect(Bun.spawnSync(["nsenter", "-t", String(leader), "-n", "ip", "-o", "link"]).stdout.toString()).toContain("host0");
  expect(Bun.spawnSync(["ip", "-o", "link"]).stdout.toString()).toContain(`ve-${machine}`.slice(0, 15));
}

/** What is left of machine NAME (a failure's diagnostics): its entry's files, its cgroup's processes. */
function leftovers(machine: string): string {
  const dir = join(t.stateDir, "machines", machine);
  const files = existsSync(dir) ? readdirSync(dir).join(",") : "no entry";
  const cg = machineCgroup(machine);
  const procs = existsSync(cg)
    ? Bun.spawnSync([
        "sh",
        "-c",
        'for p in $(cat "$1"/cgroup.procs "$1"/*/cgroup.procs 2>/dev/null); do echo "$p $(cat /proc/$p/comm 2>/dev/null)"; done',
        "sh",
        cg,
      ])
        .stdout.toString()
        .trim() || "empty"
    : "no cgroup";
  return `entry [${files}], cgroup [${procs.replaceAll("\n", "; ")}]`;
}

const running = () => (existsSync(join(t.stateDir, "machines")) ? readdirSync(join(t.stateDir, "machines")) : []);

describe("machinad", () => {
  test(
    "socket: 0600, in a directory of root's nobody else may write (made 0755: by default it is the state directory); another user cannot connect",
    async () => {
      // a directory others may write loses that (an existing one is never opened wider)
      const shared = join(dirname(t.socket), "../shared");
      const narrow = join(dirname(t.socket), "../narrow");
      mkdirSync(shared, { mode: 0o777 });
      chmodSync(shared, 0o777);
      mkdirSync(narrow, { mode: 0o700 });
      // the state directory as the socket's (the default, /run/machina), 0700 from an older machinad: 0755 again
      const stateToo = join(dirname(t.socket), "../state-too");
      mkdirSync(stateToo, { mode: 0o700 });
      for (const [dir, mode, stateDir] of [
        [shared, 0o755, join(shared, "state")],
        [narrow, 0o700, join(narrow, "state")],
        [stateToo, 0o755, stateToo],
      ] as const) {
        const env = { ...t.env, MACHINA_API_SOCKET: join(dir, "api.sock"), MACHINA_STATE_DIR: stateDir };
        const d = await spawnMachinad(env, scratch, ["--no-autostart"]);
        expect([statSync(dir).mode & 0o7777, statSync(join(dir, "api.sock")).mode & 0o7777, statSync(join(dir, "nspawn.sock")).mode & 0o7777]).toEqual([
          mode,
          0o600,
          0o600,
        ]);
        d.proc.kill("SIGTERM");
        expect(await d.proc.exited).toBe(0);
      }
      await startDaemon(t, scratch);
      expect(statSync(t.socket).mode & 0o7777).toBe(0o600);
      expect(statSync(dirname(t.socket)).mode & 0o7777).toBe(0o755);
      const py = `import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1]); print("connected")\nexcept PermissionError: print("refused")`;
      const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", py, t.socket]);
      expect(r.stdout.toString().trim()).toBe("refused");
      // a second daemon on the same socket is refused, the first keeps serving
      const second = Bun.spawnSync([join(import.meta.dir, "../../bin/machinad")], { env: t.env });
      expect(second.exitCode).toBe(1);
      expect(second.stderr.toString()).toContain("already serving");
      expect(await new MachinaClient(t.socket).ping()).toBe(true);
    },
    T,
  );

  test(
    "client and core give the same results; machinactl the same JSON both ways",
    async () => {
      await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const a = name();
      const events: string[] = [];
      const started = await client.start(a, { onProgress: (e) => events.push(e.stage ?? e.event ?? "") });
      expect(events).toContain("started");
      expect(started.name).toBe(a);
      expect(alive(started.leader)).toBe(true);
      expectManagedDefaults(a, started.leader);
      const core = local();
      const volatile = (s: object) => ({ ...s, resources: undefined, cgroupTree: undefined });
      expect(await client.list()).toEqual(await core.list());
      expect(volatile(await client.status(a))).toEqual(volatile(JSON.parse(JSON.stringify(await core.status(a)))));
      expect(await client.show(a)).toEqual(await core.show(a));
      // errors: the same MachinaError both ways
      for (const svc of [client, core]) {
        expect(svc.status("nope")).rejects.toMatchObject({ code: "E_NOT_FOUND", message: 'no machine "nope" is running' });
        expect(svc.poweroff("-bad")).rejects.toMatchObject({ code: "E_INVALID" });
      }
      for (const args of [
        ["list", "--json=short"],
        ["show", a, "--json=short"],
        ["show", a],
      ]) {
        const viaDaemon = await machinactl(t, args);
        const direct = await machinactl(t, args, { MACHINA_NO_DAEMON: "1" });
        expect(viaDaemon.code).toBe(0);
        expect(viaDaemon.stdout).toBe(direct.stdout);
      }
      const sd = JSON.parse((await machinactl(t, ["status", a, "--json=short"])).stdout);
      const sc = JSON.parse((await machinactl(t, ["status", a, "--json=short"], { MACHINA_NO_DAEMON: "1" })).stdout);
      expect(volatile(sd)).toEqual(volatile(sc));
      const bad = await machinactl(t, ["poweroff", "nope"]);
      const badDirect = await machinactl(t, ["poweroff", "nope"], { MACHINA_NO_DAEMON: "1" });
      expect([bad.code, bad.stderr]).toEqual([badDirect.code, badDirect.stderr]);
      await initUp(t, a);
      // poweroff through machinactl -> the daemon: SIGRTMIN+4 reaches init, the machine goes away
      expect((await machinactl(t, ["poweroff", a])).code).toBe(0);
      await waitFor("poweroff", () => !running().includes(a) || undefined, 10_000);
      expect(readFileSync(join(t.stateDir, "logs", `${a}.log`), "utf8")).toContain("init: SIGRTMIN+4");
    },
    T,
  );

  test(
    "kill -9 of machinad leaves containers running; a new machinad adopts them",
    async () => {
      const d1 = await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const [a, b] = [name(), name()];
      const [sa, sb] = await Promise.all([client.start(a), client.start(b)]);
      await Promise.all([initUp(t, a), initUp(t, b)]);
      process.kill(d1.pid, "SIGKILL");
      await d1.proc.exited;
      await Bun.sleep(300);
      for (const s of [sa, sb]) {
        expect(alive(s.leader)).toBe(true);
        expect(alive(s.supervisor)).toBe(true);
      }
      expect((await local().list()).map((m) => m.machine).sort()).toEqual([a, b].sort());
      // that list swept leftovers: the networks machinad set up (its pid is gone) belong to the running machines
      expectManagedDefaults(a, sa.leader);
      expectManagedDefaults(b, sb.leader);
      const d2 = await startDaemon(t, scratch); // the stale socket file is replaced
      expect(d2.stderr()).toContain(`"event":"adopted","machine":"${a}"`);
      expect((await client.list()).map((m) => m.machine).sort()).toEqual([a, b].sort());
      // the adopted machines are controlled as before
      expect(await client.terminate(a)).toBe("stopped");
      expect(await client.terminate(b)).toBe("stopped");
      expect(running()).toEqual([]);
      expect(existsSync(machineCgroup(a))).toBe(false);
    },
    T,
  );

  test(
    "enable, then a (re)started machinad starts the machine; disable --now stops it",
    async () => {
      const a = name();
      const d1 = await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const en = await client.enable(a);
      expect(en.changes).toEqual([
        { type: "symlink", path: join(t.enableDir, `machina-nspawn@${a}.service`), source: join(dirname(t.enableDir), "machina-nspawn@.service") },
      ]); // no template installed: machina's own copy
      expect(readFileSync(join(dirname(t.enableDir), "machina-nspawn@.service"), "utf8")).toContain("ExecStart=");
      expect(await client.list()).toEqual([]); // enable alone does not start it
      d1.proc.kill("SIGTERM");
      await d1.proc.exited;
      expect(existsSync(t.socket)).toBe(false);
      const d2 = await startDaemon(t, scratch);
      expect(d2.stderr()).toContain(`"event":"started","machine":"${a}","why":"autostart"`);
      expect((await client.list()).map((m) => m.machine)).toEqual([a]);
      expectManagedDefaults(a, (await client.status(a)).leader); // autostart: the same defaults as machinactl start
      const dis = await client.disable(a, { now: true });
      expect(dis.changes.map((c) => c.type)).toEqual(["unlink"]);
      expect(running()).toEqual([]);
      d2.proc.kill("SIGTERM");
      await d2.proc.exited;
      await startDaemon(t, scratch);
      expect(await client.list()).toEqual([]);
    },
    T,
  );

  test(
    "reboot: the container comes back with a new leader; with --restart=always an exit restarts it",
    async () => {
      await startDaemon(t, scratch, ["--restart=always"]);
      const client = new MachinaClient(t.socket);
      const a = name();
      const s1 = await client.start(a);
      await initUp(t, a);
      await client.reboot(a);
      const s2 = await waitFor(
        "a new leader",
        () => {
          const s = readState(t.stateDir, a);
          return s && s.leader !== s1.leader && alive(s.leader) ? s : undefined;
        },
        10_000,
      );
      expect(s2.supervisor).toBe(s1.supervisor); // the supervisor set it up again itself
      await initUp(t, a, 2);
      // the payload exits on its own (SIGTERM to init -> exit 0): "always" restarts it
      await client.kill(a, { whom: "leader", signal: 15 });
      const s3 = await waitFor(
        "a restarted machine",
        () => {
          const s = readState(t.stateDir, a);
          return s && s.supervisor !== s1.supervisor && alive(s.leader) ? s : undefined;
        },
        10_000,
      );
      expect(alive(s3.leader)).toBe(true);
      await initUp(t, a); // (the log starts anew with each start)
      // a stop through the API is not undone by the policy
      await client.terminate(a);
      await Bun.sleep(600);
      expect(running()).toEqual([]);
    },
    T,
  );

  test(
    "exit status 133 ('restart me') restarts the machine even with --restart=no (RestartForceExitStatus=133)",
    async () => {
      const d = await startDaemon(t, scratch); // default policy: no
      const client = new MachinaClient(t.socket);
      const a = scratch.name("md");
      // an image of its own whose init exits 133 on its first boot, then runs
      const image = join(dirname(t.image), `image-${a}`);
      Bun.spawnSync(["cp", "-a", t.image, image]);
      scratch.defer(() => void Bun.spawnSync(["rm", "-rf", image]));
      writeFileSync(
        join(image, "sbin/init"),
        `#!/bin/sh\nif [ ! -e /booted-once ]; then touch /booted-once; exit 133; fi\n${TEST_INIT.split("\n").slice(1).join("\n")}`,
      );
      symlinkSync(image, join(t.pool, a));
      // the start answers with the first instance, or — when that one has already ended by the
      // time the start looks (it exits at once) — with the instance machinad started again
      const s1 = await client.start(a);
      const s2 = await waitFor(
        "the machine started again by machinad",
        () => {
          const s = readState(t.stateDir, a);
          return s && alive(s.leader) && existsSync(join(image, "booted-once")) ? s : undefined;
        },
        10_000,
      );
      expect(alive(s2.leader)).toBe(true);
      expect(s1.name).toBe(a);
      await initUp(t, a);
      const eventsNow = () =>
        d
          .stderr()
          .split("\n")
          .filter((l) => l.includes(`"machine":"${a}"`))
          .map((l) => JSON.parse(l) as { event?: string; status?: number; why?: string });
      // machinad logs "started" once its start has returned, which may be after the init is up
      const events = await waitFor(
        "machinad's log of the restart",
        () => {
          const e = eventsNow();
          return e.some((x) => x.event === "started" && x.why === "exit-133") ? e : undefined;
        },
        10_000,
      ).catch(() => eventsNow());
      expect(events.some((e) => e.event === "exited" && e.status === 133)).toBe(true);
      expect(events.some((e) => e.event === "started" && e.why === "exit-133")).toBe(true);
      // an ordinary exit is not restarted under the default policy
      await client.kill(a, { whom: "leader", signal: 15 });
      await waitFor("the machine gone", () => (running().includes(a) ? undefined : true), 10_000);
      await Bun.sleep(600);
      expect(running()).not.toContain(a);
    },
    T,
  );

  test(
    "a cancelled start leaves nothing behind; a start of a missing image fails cleanly",
    async () => {
      const d = await startDaemon(t, scratch);
      const client = new MachinaClient(t.socket);
      const a = name();
      const ac = new AbortController();
      const p = client.start(a, { signal: ac.signal, onProgress: () => ac.abort() });
      expect(p).rejects.toMatchObject({ apiCode: "E_CANCELLED" });
      await p.catch(() => undefined);
      await waitFor("the cancelled machine to be gone", () => (!running().includes(a) && !existsSync(machineCgroup(a))) || undefined, 10_000).catch((e) => {
        throw new Error(`${(e as Error).message}; left: ${leftovers(a)}; machinad said: ${d.stderr().slice(-2000)}`);
      });
      // its network too (a managed machine has a veth): no record, no dnsmasq (the supervisor was killed before its undo)
      expect(existsSync(`${t.stateDir}/net/${a}.json`)).toBe(false);
      expect(Bun.spawnSync(["pgrep", "-f", `${t.stateDir}/net/${a}`]).exitCode).toBe(1);
      expect(client.start("no-such-image")).rejects.toMatchObject({ code: "E_NOT_FOUND" });
      expect(running()).toEqual([]);
    },
    T,
  );

  test("8 containers started and stopped at once: no leftovers, no fd leak in machinad", async () => {
    const d = await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const names = Array.from({ length: 8 }, () => name());
    const round = async () => {
      const started = await Promise.all(names.map((n) => client.start(n)));
      expect(new Set(started.map((s) => s.leader)).size).toBe(8);
      expect((await client.list()).length).toBe(8);
      await Promise.all(names.map((n) => initUp(t, n)));
      const outcomes = await Promise.all(names.map((n) => client.terminate(n)));
      expect(outcomes).toEqual(Array(8).fill("stopped"));
      expect(running()).toEqual([]);
      for (const n of names) expect(existsSync(machineCgroup(n))).toBe(false);
    };
    // The first round warms up: the seccomp cache, and the client's pool of keep-alive
    // connections (each one an fd in machinad, not a leak). Then the count must stay put.
    await round();
    await Bun.sleep(200);
    const fdsBefore = fdCount(d.pid);
    const rounds = process.env.MACHINA_STRESS === "1" ? 50 : 2;
    for (let i = 0; i < rounds; i++) await round();
    await Bun.sleep(200);
    expect(fdCount(d.pid)).toBeLessThanOrEqual(fdsBefore);
    const mounts = readFileSync("/proc/self/mountinfo", "utf8");
    expect(mounts).not.toContain(t.stateDir);
  }, 300_000);
});
