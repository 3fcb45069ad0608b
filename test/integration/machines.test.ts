/**
 * Machine management from the host (machinactl): start in the background, list/status/show/
 * ps/logs, the signal mapping of poweroff/reboot/kill/terminate (proved by a fake init that
 * records the signals it gets), shell/login/exec through `machina-helper enter` (pipes and a
 * pty, busybox and a booted Debian), bind, stale registry entries, enable/disable, and
 * concurrent starts and stops with nothing left behind. Root only.
 *
 * MACHINA_TEST_MACHINES_LOOPS=50 repeats the concurrency test (default 1).
 */
import { architectureOfUname } from "../../src/settings/architectures.ts";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { debianCopy, systemState } from "../helpers/debian.ts";
import {
  NOTHING,
  REPO,
  Scratch,
  alive,
  baseEnv,
  copyTree,
  leftovers,
  newLeftovers,
  readState,
  startNspawn,
  waitFor,
  waitForState,
} from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");
const T = 60_000;
const LOOPS = Number(process.env.MACHINA_TEST_MACHINES_LOOPS ?? "1");

const files = new Scratch();
const scratch = new Scratch();
let busybox: string;
let pool: string;
let stateDir: string;
let enableDir: string;
/** The trusted settings directory of these tests (MACHINA_SETTINGS_DIRS: never the host's). */
let trustedDir: string;

/** The fake init: records each signal number it receives in /signals.log (SIGRTMIN+3 ends it). */
const FAKE_INIT = `#!/bin/sh
log() { echo "$1" >> /signals.log; }
for s in 1 2 10 12 15 34 35 36 38 39 40; do trap "log $s" $s; done
trap 'log 37; exit 0' 37
log up
echo "fake init running as pid $$"
while :; do sleep 1 & wait $!; done
`;

beforeAll(async () => {
  busybox = await ensureBusyboxImage();
  const base = files.dir("machina-machines-");
  pool = `${base}/pool`;
  stateDir = `${base}/state`;
  enableDir = `${base}/enable`;
  trustedDir = `${base}/trusted`;
  mkdirSync(pool);
  mkdirSync(trustedDir);
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function mctl(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Ran> {
  const p = Bun.spawn([MACHINACTL, ...args], {
    stdin: opts.input !== undefined ? Buffer.from(opts.input) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool, MACHINA_ENABLE_DIR: enableDir, MACHINA_SETTINGS_DIRS: trustedDir, ...opts.env }),
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? 128, stdout, stderr };
}

/** machinactl under a pty (test/helpers/pty-run.py): [{expect}, {send}] steps. */
async function mctlPty(args: string[], steps: Array<Record<string, unknown>>): Promise<{ code: number; output: string; restored: boolean; timeout: boolean }> {
  const p = Bun.spawn(["python3", PTY_RUN, JSON.stringify(steps), MACHINACTL, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool, MACHINA_ENABLE_DIR: enableDir, MACHINA_SETTINGS_DIRS: trustedDir }),
  });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return JSON.parse(out.trim().split("\n").pop()!);
}

/** A busybox copy in the pool under a fresh machine name, with the fake init as /sbin/init. */
function fakeInitImage(prefix = "mm"): { name: string; root: string } {
  const name = scratch.name(prefix);
  const root = `${pool}/${name}`;
  copyTree(busybox, root);
  writeFileSync(`${root}/sbin/fake-init`, FAKE_INIT);
  chmodSync(`${root}/sbin/fake-init`, 0o755);
  try {
    readlinkSync(`${root}/sbin/init`);
    Bun.spawnSync(["rm", "-f", `${root}/sbin/init`]);
  } catch {
    // not a symlink
  }
  symlinkSync("fake-init", `${root}/sbin/init`);
  scratch.defer(() => void Bun.spawnSync(["rm", "-rf", root]));
  return { name, root };
}

const signalsOf = (root: string) => (existsSync(`${root}/signals.log`) ? readFileSync(`${root}/signals.log`, "utf8").split("\n").filter(Boolean) : []);

/** A .nspawn file for machine `name`: trusted (this test file's MACHINA_SETTINGS_DIRS) or next to the image (untrusted). */
function nspawnFile(name: string, text: string, where: "trusted" | "beside"): void {
  const path = where === "trusted" ? `${trustedDir}/${name}.nspawn` : `${pool}/${name}.nspawn`;
  writeFileSync(path, text);
  scratch.defer(() => void Bun.spawnSync(["rm", "-f", path]));
}

async function startFake(prefix?: string, trusted?: string) {
  const img = fakeInitImage(prefix);
  if (trusted !== undefined) nspawnFile(img.name, trusted, "trusted");
  const r = await mctl(["start", img.name]);
  expect(r).toMatchObject({ code: 0, stderr: "" });
  scratch.defer(async () => {
    await mctl(["terminate", img.name]);
  });
  const state = readState(stateDir, img.name)!;
  await waitFor("the fake init to log 'up'", () => signalsOf(img.root).includes("up") || undefined);
  return { ...img, state };
}

describe("start and inspection", () => {
  test(
    "start boots in the background; list, status, show, ps, logs see it",
    async () => {
      const m = await startFake();
      expect(alive(m.state.leader)).toBe(true);

      const list = await mctl(["list"]);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^MACHINE +CLASS +SERVICE +OS +VERSION +ARCH +ADDRESSES$/m);
      // ARCH: the busybox image's programs are the host's own
      const arch = architectureOfUname(Bun.spawnSync(["uname", "-m"]).stdout.toString().trim())!.name;
      expect(list.stdout).toMatch(new RegExp(`^${m.name} +container +machina-nspawn +busybox +1\\.35\\.0 +${arch} +-$`, "m"));
      expect(list.stdout).toMatch(/^1 machines? listed\.$/m);
      const json = JSON.parse((await mctl(["list", "--json=short"])).stdout);
      expect(json).toEqual([
        { machine: m.name, class: "container", service: "machina-nspawn", os: "busybox", version: "1.35.0", architecture: arch, addresses: [] },
      ]);

      const status = await mctl(["status", m.name]);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain(`          Leader: ${m.state.leader} (init)`);
      expect(status.stdout).toContain(`            Root: ${m.root}`);
      expect(status.stdout).toContain("              OS: BusyBox");
      expect(status.stdout).toContain(`    Architecture: ${arch}\n`);
      expect(status.stdout).toMatch(/^ +Tasks: \d+$/m);
      expect(status.stdout).toMatch(/^ +CPU: \d/m);
      expect(status.stdout).toContain(`Unit: machine-${m.name.replace(/-/g, "\\x2d")}.scope`);
      expect(status.stdout).toMatch(new RegExp(`[├└]─${m.state.leader} /bin/sh /sbin/init`));
      expect(status.stdout).toContain("fake init running as pid 1"); // the last log lines
      const sj = JSON.parse((await mctl(["status", m.name, "--json"])).stdout);
      expect(sj).toMatchObject({ name: m.name, leader: m.state.leader, state: "running" });

      const show = await mctl(["show", m.name]);
      const props = Object.fromEntries(
        show.stdout
          .trim()
          .split("\n")
          .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
      );
      expect(props).toMatchObject({
        Name: m.name,
        Class: "container",
        Service: "machina-nspawn",
        Leader: String(m.state.leader),
        RootDirectory: m.root,
        State: "running",
      });
      expect(props["Id"]).toBe(m.state.uuid.replace(/-/g, ""));
      expect((await mctl(["show", m.name, "-p", "Leader", "--value"])).stdout).toBe(`${m.state.leader}\n`);
      expect(JSON.parse((await mctl(["show", m.name, "-p", "Name,Class", "--json=short"])).stdout)).toEqual({ Name: m.name, Class: "container" });

      const ps = await mctl(["ps", m.name]);
      expect(ps.stdout).toMatch(new RegExp(`^ *${m.state.leader} ${m.name} +/bin/sh /sbin/init$`, "m"));

      const logs = await mctl(["logs", m.name, "-n", "1"]);
      expect(logs).toMatchObject({ code: 0, stdout: "fake init running as pid 1\n" });
    },
    T,
  );

  test(
    "start carries out the machine's .nspawn file like machina-nspawn does, networking included",
    async () => {
      const img = fakeInitImage("mn");
      const settingsDir = `${files.dir("machina-settings-")}`;
      writeFileSync(`${settingsDir}/${img.name}.nspawn`, "[Exec]\nEnvironment=FROM_FILE=yes\n[Network]\nVirtualEthernet=yes\n");
      const env = { MACHINA_SETTINGS_DIRS: settingsDir };
      const r = await mctl(["start", img.name], { env });
      expect(r).toMatchObject({ code: 0, stderr: "" });
      scratch.defer(async () => void (await mctl(["terminate", img.name], { env })));
      const state = readState(stateDir, img.name)!;
      await waitFor("the fake init to log 'up'", () => signalsOf(img.root).includes("up") || undefined);
      expect(readFileSync(`/proc/${state.leader}/environ`, "utf8").split("\0")).toContain("FROM_FILE=yes");
      const links = Bun.spawnSync(["nsenter", "-t", String(state.leader), "-n", "ip", "-o", "link"]).stdout.toString();
      expect(links).toContain("host0");
      const hostSide = `ve-${img.name}`.slice(0, 15);
      expect(Bun.spawnSync(["ip", "-o", "link"]).stdout.toString()).toContain(hostSide);
      expect((await mctl(["terminate", img.name], { env })).code).toBe(0);
      await waitFor("the veth to go", () => !Bun.spawnSync(["ip", "-o", "link"]).stdout.toString().includes(hostSide) || undefined);
    },
    T,
  );

  test(
    "a started machine has systemd-nspawn@.service's defaults: its own user namespace (ID-mapped root) and a veth with DHCP",
    async () => {
      const m = await startFake("mu");
      const uidMap = readFileSync(`/proc/${m.state.leader}/uid_map`, "utf8").trim().split(/\s+/).map(Number);
      expect(uidMap).not.toEqual([0, 0, 4294967295]); // not the host's root
      expect(uidMap[0]).toBe(0);
      expect(uidMap[1]).toBeGreaterThanOrEqual(0x80000); // -U: a picked range
      expect(uidMap[2]).toBe(65536);
      expect(readFileSync(`/proc/${m.state.leader}/gid_map`, "utf8").trim().split(/\s+/).map(Number)).toEqual(uidMap);
      expect(statSync(`${m.root}/bin`).uid).toBe(0); // ID-mapped root: the image was not chowned
      // the veth: host0 inside, ve-NAME outside with an address, and dnsmasq answers DHCP on it
      const hostSide = `ve-${m.name}`.slice(0, 15);
      expect(Bun.spawnSync(["nsenter", "-t", String(m.state.leader), "-n", "ip", "-o", "link"]).stdout.toString()).toContain("host0");
      const hostAddr = Bun.spawnSync(["ip", "-o", "-4", "addr", "show", "dev", hostSide]).stdout.toString();
      const gateway = /inet ([0-9.]+)\//.exec(hostAddr)?.[1];
      expect(gateway).toBeDefined();
      const dhcp = await mctl(["exec", m.name, "/bin/sh", "-c", "ip link set host0 up && udhcpc -i host0 -n -q -t 5 -s /bin/true 2>&1"]);
      expect(dhcp.code).toBe(0);
      expect(dhcp.stdout).toMatch(new RegExp(`lease of [0-9.]+ obtained from ${gateway!.replace(/\./g, "\\.")}`));
      expect((await mctl(["terminate", m.name])).code).toBe(0);
      await waitFor("the veth to go", () => !Bun.spawnSync(["ip", "-o", "link"]).stdout.toString().includes(hostSide) || undefined);
    },
    T,
  );

  test(
    "a trusted PrivateUsers=no / VirtualEthernet=no turns -U and the veth off; the same file next to the image does not",
    async () => {
      const off = "[Exec]\nPrivateUsers=no\n[Network]\nVirtualEthernet=no\n";
      const trusted = await startFake("mt", off);
      expect(readFileSync(`/proc/${trusted.state.leader}/uid_map`, "utf8").trim().split(/\s+/).map(Number)).toEqual([0, 0, 4294967295]);
      expect(readlinkSync(`/proc/${trusted.state.leader}/ns/net`)).toBe(readlinkSync("/proc/self/ns/net"));
      expect(Bun.spawnSync(["ip", "-o", "link"]).stdout.toString()).not.toContain(`ve-${trusted.name}`.slice(0, 15));

      const img = fakeInitImage("mv");
      nspawnFile(img.name, off, "beside"); // untrusted: came with the image
      expect((await mctl(["start", img.name])).code).toBe(0);
      scratch.defer(async () => void (await mctl(["terminate", img.name])));
      const state = readState(stateDir, img.name)!;
      expect(readFileSync(`/proc/${state.leader}/uid_map`, "utf8").trim().split(/\s+/).map(Number)).not.toEqual([0, 0, 4294967295]);
      expect(Bun.spawnSync(["nsenter", "-t", String(state.leader), "-n", "ip", "-o", "link"]).stdout.toString()).toContain("host0");
    },
    T,
  );

  test(
    "unknown machines and bad names are refused",
    async () => {
      expect(await mctl(["status", "nope"])).toMatchObject({ code: 1, stderr: expect.stringContaining('no machine "nope" is running') });
      expect((await mctl(["start", "no/pe"])).code).toBe(1);
      expect((await mctl(["start", "not-in-pool"])).stderr).toContain('no image "not-in-pool"');
    },
    T,
  );
});

describe("console log (bounded, rotated while running)", () => {
  /** An init that prints 100 numbered lines (~6 KB) and "burst K done" each time /burst appears. */
  const CHATTY_INIT = `#!/bin/sh
trap 'exit 0' 37
echo "chatty init up"
n=0; k=0
while :; do
  if [ -e /burst ]; then
    rm -f /burst; k=$((k+1)); i=0
    while [ $i -lt 100 ]; do n=$((n+1)); echo "line $n: padding padding padding padding padding"; i=$((i+1)); done
    echo "burst $k done"
  fi
  sleep 0.05 & wait $!
done
`;
  test(
    "the supervisor rotates NAME.log within MAXBYTES × KEEP; logs -n and logs -f across rotations",
    async () => {
      const img = fakeInitImage("mlog");
      writeFileSync(`${img.root}/sbin/fake-init`, CHATTY_INIT);
      const env = { MACHINA_CONSOLE_LOG_MAX_BYTES: "8192", MACHINA_CONSOLE_LOG_KEEP: "3" };
      expect(await mctl(["start", img.name], { env })).toMatchObject({ code: 0, stderr: "" });
      scratch.defer(async () => void (await mctl(["terminate", img.name])));
      const log = `${stateDir}/logs/${img.name}.log`;
      const text = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");
      await waitFor("the init's first line", () => text(log).includes("chatty init up") || undefined);
      const follow = Bun.spawn([MACHINACTL, "logs", img.name, "-f", "-n", "0"], {
        stdout: "pipe",
        stderr: "pipe",
        env: baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool }),
      });
      const followed = new Response(follow.stdout).text();
      await Bun.sleep(300);
      let maxSize = 0;
      for (let k = 1; k <= 6; k++) {
        writeFileSync(`${img.root}/burst`, "");
        await waitFor(`burst ${k}`, () => text(log).includes(`burst ${k} done`) || undefined);
        for (const f of [log, `${log}.1`, `${log}.2`]) if (existsSync(f)) maxSize = Math.max(maxSize, Bun.file(f).size);
        await Bun.sleep(300);
      }
      expect(maxSize).toBeLessThanOrEqual(8192);
      expect(existsSync(`${log}.1`) && existsSync(`${log}.2`)).toBe(true);
      expect(existsSync(`${log}.3`)).toBe(false);
      expect(text(`${log}.2`)).not.toContain("chatty init up"); // 36 KB of output: the oldest is gone
      const tail = await mctl(["logs", img.name, "-n", "5"]);
      expect(tail).toMatchObject({
        code: 0,
        stdout: [597, 598, 599, 600].map((n) => `line ${n}: padding padding padding padding padding\n`).join("") + "burst 6 done\n",
      });
      expect((await mctl(["terminate", img.name])).code).toBe(0);
      const timer = setTimeout(() => follow.kill("SIGKILL"), 10_000);
      await follow.exited;
      clearTimeout(timer);
      const lines = (await followed).split("\n").filter((l) => l.startsWith("line "));
      // every line exactly once and in order, although NAME.log was rotated several times meanwhile
      expect(lines.length).toBe(600);
      expect(lines.every((l, i) => l.startsWith(`line ${i + 1}:`))).toBe(true);
    },
    T,
  );
});

describe("signals (fake init)", () => {
  test(
    "poweroff = SIGRTMIN+4, reboot = SIGINT to the leader; kill -s, --kill-whom; terminate = SIGRTMIN+3 then gone",
    async () => {
      const m = await startFake();
      const expectLast = (n: string) => waitFor(`signal ${n}`, () => signalsOf(m.root).at(-1) === n || undefined);
      expect((await mctl(["poweroff", m.name])).code).toBe(0);
      await expectLast("38");
      expect((await mctl(["reboot", m.name])).code).toBe(0);
      await expectLast("2");
      expect((await mctl(["kill", m.name, "-s", "SIGUSR1", "--kill-whom=leader"])).code).toBe(0);
      await expectLast("10");
      expect((await mctl(["kill", m.name, "--signal=RTMIN+6"])).code).toBe(0);
      await expectLast("40");
      const before = leftovers(stateDir);
      const t = await mctl(["terminate", m.name]);
      expect(t).toMatchObject({ code: 0, stderr: "" });
      expect(signalsOf(m.root).at(-1)).toBe("37");
      expect(alive(m.state.leader)).toBe(false);
      expect((await mctl(["list"])).stdout).not.toContain(m.name);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "a supervisor killed with SIGKILL leaves an entry that is never listed and is cleaned",
    async () => {
      const m = await startFake();
      process.kill(m.state.supervisor, "SIGKILL");
      await waitFor("the leader to die", () => !alive(m.state.leader) || undefined);
      expect((await mctl(["list", "--all"])).stdout).not.toContain(m.name);
      expect(existsSync(`${stateDir}/machines/${m.name}`)).toBe(false);
    },
    T,
  );

  test(
    "another user than root: list shows what root's list shows, read-only — never a dead machine, and it removes nothing; status, show, ps what it may read",
    async () => {
      const m = await startFake();
      chmodSync(dirname(stateDir), 0o755); // the test's own directory (mkdtemp: 0700), as /run is
      const asNobody = (args: string[]) => {
        const r = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", MACHINACTL, ...args], {
          env: baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool, MACHINA_NO_DAEMON: "1" }),
          stdout: "pipe",
          stderr: "pipe",
        });
        return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
      };
      const theirs = asNobody(["list", "--json=short"]);
      expect([theirs.code, theirs.stderr]).toEqual([0, ""]);
      const rootList = await mctl(["list", "--json=short"]);
      expect(JSON.parse(theirs.stdout)).toEqual(JSON.parse(rootList.stdout));
      expect((JSON.parse(theirs.stdout) as Array<{ machine: string }>).map((x) => x.machine)).toContain(m.name);
      // status, show and ps: what another user may read (not the container's root, journal or console log)
      const status = asNobody(["status", m.name]);
      expect([status.code, status.stderr]).toEqual([0, ""]);
      expect(status.stdout).toContain(`Leader: ${m.state.leader} `);
      expect(status.stdout).toContain(`Root: ${m.root}`);
      const show = asNobody(["show", m.name, "-p", "Leader", "--value"]);
      expect([show.code, show.stdout, show.stderr]).toEqual([0, `${m.state.leader}\n`, ""]);
      const ps = asNobody(["ps", m.name]);
      expect([ps.code, ps.stderr]).toEqual([0, ""]);
      expect(ps.stdout).toContain(`${m.state.leader}`);
      process.kill(m.state.supervisor, "SIGKILL");
      await waitFor("the leader to die", () => !alive(m.state.leader) || undefined);
      const after = asNobody(["list", "--all", "--json=short"]);
      expect([after.code, after.stderr]).toEqual([0, ""]);
      expect((JSON.parse(after.stdout) as Array<{ machine: string }>).map((x) => x.machine)).not.toContain(m.name);
      expect(existsSync(`${stateDir}/machines/${m.name}`)).toBe(true); // only root cleans up
      expect((await mctl(["list"])).stdout).not.toContain(m.name);
      expect(existsSync(`${stateDir}/machines/${m.name}`)).toBe(false);
    },
    T,
  );
});

describe("shell, login, exec, bind (busybox)", () => {
  test(
    "shell [USER@].host runs on the host itself (login shell or command, exit status kept); show without NAME gives the pool path",
    async () => {
      const r = await mctl([
        "shell",
        "-E",
        "FOO=bar",
        ".host",
        "/bin/sh",
        "-c",
        'echo "$USER $HOME $FOO $(pwd) $(cat /proc/self/ns/pid 2>/dev/null; readlink /proc/self/ns/pid)"; exit 7',
      ]);
      expect(r.code).toBe(7);
      expect(r.stdout.trim()).toBe(`root /root bar /root ${readlinkSync("/proc/self/ns/pid")}`);
      const login = await mctl(["shell", ".host"], { input: "echo $0 $SHELL; exit 3\n" });
      expect(login.code).toBe(3);
      const shell = readFileSync("/etc/passwd", "utf8")
        .split("\n")
        .find((l) => l.startsWith("root:"))!
        .split(":")[6];
      expect(login.stdout).toContain(`${shell}\n`);
      expect(await mctl(["shell", "nobody@.host", "/usr/bin/id", "-u"])).toMatchObject({ code: 0, stdout: "65534\n" });
      expect((await mctl(["show", "--property=PoolPath", "--value"])).stdout).toBe(`${pool.split(":")[0]}\n`);
      expect((await mctl(["status", "x", "--machine=a b"])).stderr).toContain('invalid value "a b" for --machine');
    },
    T,
  );

  test(
    "exec and shell with pipes return the command's exit status; entered like the container",
    async () => {
      const m = await startFake();
      const r = await mctl([
        "exec",
        m.name,
        "--",
        "/bin/sh",
        "-c",
        'echo "$(hostname) $$"; grep CapBnd /proc/self/status; cat /proc/self/cgroup | grep "^0::"; exit 42',
      ]);
      expect(r.code).toBe(42);
      const [host, pid] = r.stdout.split("\n")[0]!.split(" ");
      expect(host).toBe(m.name);
      expect(Number(pid)).toBeGreaterThan(1); // in the container's pid namespace
      const leaderCap = /^CapBnd:\s*(\S+)$/m.exec(readFileSync(`/proc/${m.state.leader}/status`, "utf8"))![1];
      expect(r.stdout).toContain(`CapBnd:\t${leaderCap}`);
      expect(r.stdout).toContain("0::/");
      const sh = await mctl(["shell", m.name], { input: "echo in-shell $HOME; exit 3\n" });
      expect(sh).toMatchObject({ code: 3, stdout: "in-shell /root\n" });
      const user = await mctl(["shell", "--uid=nobody", m.name, "/bin/sh", "-c", "id -u; echo $X"], { env: {} });
      expect(user.stdout).toBe("65534\n\n");
      const env = await mctl(["shell", "-E", "X=1", `nobody@${m.name}`, "/bin/sh", "-c", "id -u; echo $X"]);
      expect(env.stdout).toBe("65534\n1\n");
      expect((await mctl(["exec", m.name, "/nonexistent"])).code).toBe(127);
    },
    T,
  );

  // Both in a -U machine (machinactl start's default): login runs as the container's root, and
  // bind --mkdir makes its mount points as the container's root (through the ID-mapped root).
  test(
    "shell and login on a pty from the container's devpts",
    async () => {
      const m = await startFake();
      const sh = await mctlPty(["shell", m.name], [{ expect: "# " }, { send: "tty; stty size; exit 5\r" }]);
      expect(sh.timeout).toBe(false);
      expect(sh.code).toBe(5);
      expect(sh.output).toContain("Connected to machine");
      expect(sh.output).toMatch(/\/dev\/pts\/\d+\r\n24 80\r\n/);
      expect(sh.restored).toBe(true);
      const login = await mctlPty(
        ["login", m.name],
        [{ expect: "login: " }, { send: "root\r" }, { expect: "# " }, { send: "echo logged-in-$(id -u); exit\r" }],
      );
      expect(login.timeout).toBe(false);
      expect(login.output).toContain(`${m.name} login: `);
      expect(login.output).toContain("logged-in-0");
    },
    T,
  );

  test(
    "bind: a host directory into the running container (--mkdir, --read-only), not on the host",
    async () => {
      const m = await startFake();
      const src = scratch.dir("machina-bind-");
      writeFileSync(`${src}/file`, "from the host\n");
      chmodSync(src, 0o755); // host-owned: in the machine's user namespace it is nobody's, readable by all
      expect(await mctl(["bind", "--mkdir", m.name, src, "/mnt/in"])).toMatchObject({ code: 0, stderr: "" });
      expect((await mctl(["exec", m.name, "stat", "-c", "%u:%g", "/mnt"])).stdout).toBe("0:0\n"); // made as the container's root
      expect((await mctl(["exec", m.name, "cat", "/mnt/in/file"])).stdout).toBe("from the host\n");
      expect(existsSync(`${m.root}/mnt/in/file`)).toBe(false); // mounted in the container's namespace only
      expect(await mctl(["bind", "--read-only", "--mkdir", m.name, src, "/ro"])).toMatchObject({ code: 0 });
      expect((await mctl(["exec", m.name, "/bin/sh", "-c", "echo x > /ro/new"])).code).not.toBe(0);
      // a symlink inside the container cannot send the target to the host
      Bun.spawnSync(["ln", "-s", "/../../../../tmp", `${m.root}/escape`]);
      const outside = scratch.dir("machina-outside-");
      const r = await mctl(["bind", "--mkdir", m.name, src, `/escape/${outside.split("/").pop()}/x`]);
      expect(r.code).toBe(0);
      expect(existsSync(`${outside}/x`)).toBe(false);
      expect((await mctl(["bind", m.name, src, "/missing/dir"])).code).toBe(1);
    },
    T,
  );
});

describe("enable / disable", () => {
  test(
    "links in the enable directory; --now starts and stops",
    async () => {
      const img = fakeInitImage("me");
      scratch.defer(async () => {
        await mctl(["terminate", img.name]);
      });
      const link = `${enableDir}/machina-nspawn@${img.name}.service`;
      expect((await mctl(["enable", "--now", img.name])).code).toBe(0);
      expect(existsSync(link) || readlinkSync(link) !== "").toBe(true);
      expect((await mctl(["list"])).stdout).toContain(img.name);
      expect((await mctl(["disable", "--now", img.name])).code).toBe(0);
      expect(() => readlinkSync(link)).toThrow();
      expect((await mctl(["list"])).stdout).not.toContain(img.name);
    },
    T,
  );
});

describe("concurrency", () => {
  test(
    `8 containers started and stopped at once (${LOOPS}×), nothing left behind`,
    async () => {
      const imgs = Array.from({ length: 8 }, () => fakeInitImage("mc"));
      for (let loop = 0; loop < LOOPS; loop++) {
        const before = leftovers(stateDir);
        const started = await Promise.all(imgs.map((i) => mctl(["start", i.name])));
        expect(started.map((r) => r.code)).toEqual(Array(8).fill(0));
        const list = await mctl(["list", "--no-legend"]);
        for (const i of imgs) expect(list.stdout).toContain(i.name);
        const stopped = await mctl(["terminate", ...imgs.map((i) => i.name)]);
        expect(stopped).toMatchObject({ code: 0, stderr: "" });
        expect((await mctl(["list", "--no-legend", "--all"])).stdout.trim()).toBe("");
        expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
      }
    },
    60_000 + LOOPS * 20_000,
  );
});

describe("Debian (booted)", () => {
  test("shell runs systemctl in the booted container and returns its status; login on a pty", async () => {
    const root = await debianCopy(scratch);
    const name = scratch.name("md");
    const bg = startNspawn(["-D", root, "-M", name, "-b", "--console=read-only"], { stateDir }, scratch);
    const state = await waitForState(stateDir, name, undefined, 15_000, bg);
    expect(await systemState(state.leader)).toBe("running");
    const r = await mctl(["shell", name, "/bin/systemctl", "is-system-running"]);
    expect(r).toMatchObject({ code: 0, stdout: "running\n" });
    expect((await mctl(["shell", name, "/bin/systemctl", "is-active", "no-such.service"])).code).toBe(3);
    const status = await mctl(["status", name]);
    expect(status.stdout).toContain("              OS: Debian GNU/Linux 12 (bookworm)");
    expect(status.stdout).toMatch(/init\.scope\n.*─\d+ \/(usr\/)?lib\/systemd\/systemd|─\d+ \/sbin\/init/);
    const sh = await mctlPty(["shell", name], [{ expect: "# " }, { send: "readlink /proc/self/fd/0; echo $SHELL; exit 4\r" }]);
    expect(sh.code).toBe(4);
    expect(sh.output).toMatch(/\/dev\/pts\/\d+\r\n\/bin\/bash\r\n/);
    const login = await mctlPty(
      ["login", name],
      [{ expect: "login: " }, { send: "root\r" }, { expect: "# " }, { send: "echo logged-in-$(id -u)-$(tty); exit\r" }],
    );
    expect(login.timeout).toBe(false);
    expect(login.output).toMatch(/logged-in-0-\/dev\/pts\/\d+/);
    expect((await mctl(["poweroff", name])).code).toBe(0);
    expect(await bg.exited).toBe(0);
  }, 120_000);
});
