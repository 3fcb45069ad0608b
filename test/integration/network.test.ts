/**
 * Networking (root): veth, zones, bridges, moved interfaces, macvlan/ipvlan, port forwarding
 * (tcp and udp, from the host's loopback and from a second network namespace made here), the
 * same names and MACs as systemd-nspawn, and cleanliness — after every test, and after kill -9
 * of a supervisor — nothing of machina's is left: no link, nft table, dnsmasq, netns or lease.
 * Traffic goes only to addresses inside namespaces made here (and the host's loopback).
 * Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import {
  REPO,
  Scratch,
  copyTree,
  haveSystemdNspawn,
  runNspawn,
  runSystemdNspawn,
  startNspawn,
  waitFor,
  waitForState,
  type Background,
} from "../helpers/machina.ts";
import { TEST_INIT } from "../helpers/daemon.ts";
import { generateMac, HASH_KEYS, vethHostName } from "../../src/net/names.ts";
import { debianCopy, systemState, withBootedDebian } from "../helpers/debian.ts";
import { symlinkSync } from "node:fs";

const T = 60_000;
const files = new Scratch();
const scratch = new Scratch();
let image: string;
let root: string; // writable copy of the busybox image (with /www and /bin/udpecho)
let stateDir: string;
const machineId = readFileSync("/etc/machine-id", "utf8").trim();

function sh(cmd: string): { code: number; out: string } {
  const r = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

interface NetRecord {
  phase: string;
  addr?: { container: { v4: string; v6?: string }; gateway: { v4: string; v6?: string } };
}
const record = (name: string): NetRecord | undefined => {
  try {
    return JSON.parse(readFileSync(`${stateDir}/net/${name}.json`, "utf8")) as NetRecord;
  } catch {
    return undefined;
  }
};
const up = (name: string) => waitFor(`network of ${name}`, () => (record(name)?.phase === "up" ? record(name) : undefined), 15_000);

/** Nothing of machina's left on the host. */
function expectClean(): void {
  const links = sh("ip -o link show")
    .out.split("\n")
    .map((l) => l.split(": ")[1]?.split("@")[0] ?? "");
  expect(links.filter((l) => /^(ve|vb|vz)-/.test(l))).toEqual([]);
  expect(sh("nft list tables").out).not.toContain("machina");
  expect(
    sh("pgrep -a dnsmasq")
      .out.split("\n")
      .filter((l) => l.includes(stateDir)),
  ).toEqual([]);
  expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(`${stateDir}/netns/`);
  expect(existsSync(`${stateDir}/netns`) ? readdirSync(`${stateDir}/netns`) : []).toEqual([]);
  const leases = existsSync(`${stateDir}/net/leases.json`) ? JSON.parse(readFileSync(`${stateDir}/net/leases.json`, "utf8")) : { subnets: {} };
  expect(leases.subnets).toEqual({});
  expect((existsSync(`${stateDir}/net`) ? readdirSync(`${stateDir}/net`) : []).filter((f) => f !== "lock" && f !== "leases.json")).toEqual([]);
}

/** A test network namespace with a veth to the host: host 198.18.0.1/30 + fd99::1/64, netns .2 / ::2. */
function testPeer(tag: string): { ns: string; run(cmd: string): { code: number; out: string } } {
  const dir = files.dir("machina-netns-");
  const ns = `${dir}/ns`;
  writeFileSync(ns, "");
  const host = `th-${tag}`;
  const cmds = [
    `unshare --net=${ns} true`,
    `ip link add ${host} type veth peer name eth0 netns ${ns}`,
    `ip addr add 198.18.0.1/30 dev ${host}`,
    `ip addr add fd99::1/64 dev ${host} nodad`,
    `ip link set ${host} up`,
    `nsenter --net=${ns} sh -c 'ip link set lo up; ip addr add 198.18.0.2/30 dev eth0; ip addr add fd99::2/64 dev eth0 nodad; ip link set eth0 up; ip route add default via 198.18.0.1'`,
  ];
  for (const c of cmds) expect(sh(c)).toMatchObject({ code: 0 });
  scratch.defer(() => {
    sh(`ip link del ${host}; umount ${ns}`);
  });
  return { ns, run: (cmd) => sh(`nsenter --net=${ns} ${cmd}`) };
}

function start(args: string[], cmd: string): Background {
  return startNspawn(["-q", "--register=no", "--console=pipe", "-D", root, ...args, "/bin/sh", "-c", cmd], { stateDir }, scratch);
}

beforeAll(async () => {
  image = await ensureBusyboxImage();
  const work = files.dir();
  root = `${work}/bbnet`;
  copyTree(image, root);
  mkdirSync(`${root}/www`);
  writeFileSync(`${root}/www/index.html`, "hello from the container\n");
  expect(sh(`gcc -static -O2 -o ${root}/bin/udpecho ${REPO}/test/fixtures/udpecho.c`).code).toBe(0);
  stateDir = files.dir("machina-state-");
  chmodSync(stateDir, 0o755); // as /run/machina: dnsmasq's "nobody" re-reads the veth and zone hosts files in it
  sh("ip link del dmt0 2>/dev/null; ip link del dmt1 2>/dev/null");
});
afterEach(async () => {
  await scratch.cleanup();
  // The next start sweeps whatever a killed test left; then nothing may remain.
  await runNspawn(["-q", "--register=no", "--console=pipe", "-D", root, "/bin/true"], { stateDir });
  expectClean();
});
afterAll(() => files.cleanup());

describe("networking", () => {
  test(
    "a start right after an exit: the same name, port and zone again at once (the teardown runs in the background) — each gets its address and rule",
    async () => {
      const name = scratch.name("nr");
      for (const extra of [
        ["-n", "-p", "18097:80"],
        ["--network-zone=nrz", "-p", "18097:80"],
      ])
        for (let i = 0; i < 4; i++) {
          // exits as soon as it has printed its address: the next start follows its exit at once
          const bg = start(["-M", name, ...extra], "ip -4 -o addr show host0 | grep -q 'inet 10\\.' && echo ADDR-OK");
          expect(await bg.exited).toBe(0);
          expect(await bg.stdout).toContain("ADDR-OK");
        }
      // afterEach: after the last teardown nothing is left (no link, rule, lease, record, mark)
    },
    T,
  );

  test(
    "the payload runs only once the nft table's base is in place: a slow nft (the helper's prestart) is waited for, a failing one stops the start before the payload",
    () => {
      const dir = files.dir("machina-prestart-");
      const mark = `${dir}/mark`;
      mkdirSync(mark);
      expect(sh(`cp /usr/sbin/nft ${dir}/nft.real`).code).toBe(0);
      writeFileSync(`${dir}/nft-slow`, `#!/bin/sh\nsleep 0.3\ntouch ${mark}/nft-done\nexec ${dir}/nft.real "$@"\n`, { mode: 0o755 });
      writeFileSync(`${dir}/nft-fail`, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
      // /usr/sbin/nft replaced in a mount namespace of this start's own (its background teardown too)
      const run = (wrapper: string) =>
        sh(
          `unshare -m --propagation private sh -c 'mount --bind "$0" /usr/sbin/nft && exec "$@"' ${dir}/${wrapper} ` +
            `${REPO}/bin/machina-nspawn -q --register=no --console=pipe -D ${root} -M ${scratch.name("np")} -n --bind=${mark}:/mark ` +
            `/bin/sh -c 'test -e /mark/nft-done && echo TABLE-FIRST; touch /mark/ran'`,
        );
      const slow = run("nft-slow");
      expect(slow.out).toContain("TABLE-FIRST");
      expect(slow.code).toBe(0);
      sh(`rm -f ${mark}/*`);
      const failed = run("nft-fail");
      expect(failed.code).not.toBe(0);
      expect(failed.out).toMatch(/machina-nspawn: the prestart command "[^"]+" failed with exit status 3/);
      expect(existsSync(`${mark}/ran`)).toBe(false);
      // afterEach: the next start (with the real nft) sweeps what the failed one's teardown could not remove
    },
    T,
  );

  test(
    "the table's base applied last: a start finds the table over netlink and runs no nft — unless someone deleted the table, which it puts back",
    async () => {
      const dir = files.dir("machina-prestart-");
      const mark = `${dir}/mark`;
      mkdirSync(mark);
      expect(sh(`cp /usr/sbin/nft ${dir}/nft.real`).code).toBe(0);
      writeFileSync(`${dir}/nft-seen`, `#!/bin/sh\necho "$@" >> ${mark}/nft-ran\nexec ${dir}/nft.real "$@"\n`, { mode: 0o755 });
      const run = () =>
        sh(
          `MACHINA_STATE_DIR=${stateDir} unshare -m --propagation private sh -c 'mount --bind "$0" /usr/sbin/nft && exec "$@"' ${dir}/nft-seen ` +
            `${REPO}/bin/machina-nspawn -q --register=no --console=pipe -D ${root} -M ${scratch.name("nq")} -x -n /bin/true`,
        );
      // one that stays: the table and its base are in place
      const stays = start(["-M", scratch.name("nq"), "-x", "-n", `--bind=${mark}:/mark`], "touch /mark/up; sleep 30");
      await waitFor("the first container's payload", () => existsSync(`${mark}/up`) || undefined, 10_000, 20);
      expect(sh("nft list table inet machina").code).toBe(0);
      const r1 = run();
      expect(r1.out).toBe("");
      expect(r1.code).toBe(0);
      expect(existsSync(`${mark}/nft-ran`)).toBe(false);
      expect(sh("nft delete table inet machina").code).toBe(0);
      expect(run().code).toBe(0);
      expect(readFileSync(`${mark}/nft-ran`, "utf8")).toBe(`-f ${stateDir}/net/base.nft\n`);
      expect(sh("nft list table inet machina").code).toBe(0);
      stays.proc.kill("SIGTERM");
      await stays.exited;
    },
    T,
  );

  test(
    "the installed form (dist/bin/machina-nspawn, scripts/build): its at-exit command is the compiled dist/libexec/machina-net, which undoes the network",
    async () => {
      const name = scratch.name("ni");
      const installed = `${REPO}/dist/bin/machina-nspawn`;
      const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", MACHINA_STATE_DIR: stateDir };
      const argv = [installed, "-q", "--register=no", "--console=pipe", "-D", root, "-M", name, "-n", "/bin/sh", "-c", "ip -4 -o addr show host0"];
      const plan = Bun.spawnSync(argv, { env: { ...env, MACHINA_PRINT_SPEC: "1" } }).stdout.toString();
      expect(plan).toContain(`"${REPO}/dist/libexec/machina-net","teardown"`);
      const r = Bun.spawnSync(argv, { env });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toContain("inet 10.");
      expect(r.exitCode).toBe(0);
      // afterEach: no veth, namespace, record, lease or rule is left
    },
    T,
  );

  test(
    "--network-veth: host0 addressed from outside, container and host reach each other; names and MACs as nspawn",
    async () => {
      const name = scratch.name("nv");
      const bg = start(
        ["-M", name, "-n"],
        "ip -o link show host0; ip -4 -o addr show host0; ip route; ping -c1 -W2 $(ip route | sed -n 's/default via \\([^ ]*\\).*/\\1/p') >/dev/null && echo PING-OK; httpd -p 80 -h /www; sleep 3",
      );
      const rec = await up(name);
      await waitFor("httpd", () => sh(`busybox wget -q -O- http://${rec.addr!.container.v4}/`).out.includes("hello") || undefined, 5000);
      expect(sh(`curl -s -g -m3 http://[${rec.addr!.container.v6}]/`).out).toContain("hello");
      const hostLink = sh(`ip -o link show ${vethHostName(name, false)}`).out;
      expect(hostLink).toContain(generateMac(machineId, name, HASH_KEYS.host));
      expect(await bg.exited).toBe(0);
      const out = await bg.stdout;
      expect(out).toContain(generateMac(machineId, name, HASH_KEYS.container));
      expect(out).toContain(`inet ${rec.addr!.container.v4}/28`);
      expect(out).toContain(`default via ${rec.addr!.gateway.v4} dev host0`);
      expect(out).toContain("PING-OK");
    },
    T,
  );

  test(
    "-p: tcp and udp forwarded from the host's loopback, from its own addresses and from another network namespace (IPv4 and IPv6)",
    async () => {
      const peer = testPeer("pf");
      const name = scratch.name("pf");
      start(["-M", name, "-n", "-p", "18080:80", "-p", "udp:15353:5353"], "httpd -p 80 -h /www; udpecho 5353 & sleep 8");
      await up(name);
      await waitFor("forwarded http on 127.0.0.1", () => sh("busybox wget -q -O- http://127.0.0.1:18080/").out.includes("hello") || undefined, 5000);
      expect(sh("curl -s -g -m3 http://[fd99::1]:18080/").out).toContain("hello"); // the host's own IPv6 address
      expect(peer.run("busybox wget -q -O- http://198.18.0.1:18080/").out).toContain("hello");
      const udp = (from: string, addr: string) =>
        sh(
          `${from} python3 -c "import socket;s=socket.socket(socket.AF_INET6 if ':' in '${addr}' else socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.sendto(b'ping',('${addr}',15353));print(s.recv(100).decode())"`,
        ).out;
      expect(udp("", "127.0.0.1")).toContain("echo:ping");
      expect(udp(`nsenter --net=${peer.ns}`, "198.18.0.1")).toContain("echo:ping");
      expect(udp("", "fd99::1")).toContain("echo:ping");
    },
    T,
  );

  test(
    "--network-zone: two containers in one zone reach each other; the bridge goes with the last one",
    async () => {
      const zone = `z${Math.random().toString(36).slice(2, 8)}`;
      const a = scratch.name("za");
      const b = scratch.name("zb");
      // -x for both: a running container holds its tree locked (src/image/in-use.ts), exclusively
      // when it may write it; two ephemeral ones share it
      const bgA = start(["-M", a, "-x", `--network-zone=${zone}`], "httpd -p 80 -h /www; sleep 4");
      const recA = await up(a);
      const bgB = start(
        ["-M", b, "-x", `--network-zone=${zone}`],
        `wget -q -O- http://${recA.addr!.container.v4}/ && ping -c1 -W2 ${recA.addr!.container.v4} >/dev/null && echo ZONE-OK; ip -o link show host0`,
      );
      expect(await bgB.exited).toBe(0);
      const out = await bgB.stdout;
      expect(out).toContain("hello");
      expect(out).toContain("ZONE-OK");
      expect(sh(`ip -o link show vz-${zone}`).code).toBe(0); // a is still there
      expect(await bgA.exited).toBe(0);
      // the last member's teardown runs in the background, right after its supervisor exited
      await waitFor(`vz-${zone} gone`, () => (sh(`ip -o link show vz-${zone}`).code !== 0 ? true : undefined), 5000);
    },
    T,
  );

  test(
    "--network-bridge: the host side joins a bridge made by the test",
    async () => {
      const br = `brmt${Math.random().toString(36).slice(2, 6)}`;
      expect(sh(`ip link add ${br} type bridge && ip addr add 198.18.1.1/24 dev ${br} && ip link set ${br} up`).code).toBe(0);
      scratch.defer(() => void sh(`ip link del ${br}`));
      const name = scratch.name("br");
      const r = await runNspawn(
        [
          "-q",
          "--register=no",
          "--console=pipe",
          "-D",
          root,
          "-M",
          name,
          `--network-bridge=${br}`,
          "/bin/sh",
          "-c",
          "ip addr add 198.18.1.2/24 dev host0 && ip link set host0 up && ping -c1 -W3 198.18.1.1 >/dev/null && echo BRIDGE-OK",
        ],
        { stateDir },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain("BRIDGE-OK");
      expect(sh(`ip -o link show master ${br}`).out).toBe("");
    },
    T,
  );

  // This kernel has neither dummy nor ipvlan built in: one end of a veth pair stands in for the
  // dummy interface (moved in, given back; macvlan parent); ipvlan is tested where it exists.
  const ipvlanWorks = (() => {
    const ok = sh("ip link add ivprobe0 type veth peer name ivprobe1 && ip link add link ivprobe0 name ivprobe2 type ipvlan mode l2").code === 0;
    sh("ip link del ivprobe0 2>/dev/null");
    return ok;
  })();

  test(
    "--network-interface moves an interface in (renamed) and gives it back; --network-macvlan on a parent made by the test",
    async () => {
      expect(sh("ip link add dmt0 type veth peer name dmt0p && ip link add dmt1 type veth peer name dmt1p && ip link set dmt1 up").code).toBe(0);
      scratch.defer(() => void sh("ip link del dmt0; ip link del dmt1"));
      const name = scratch.name("if");
      const r = await runNspawn(
        [
          "-q",
          "--register=no",
          "--console=pipe",
          "-D",
          root,
          "-M",
          name,
          "--network-interface=dmt0:inner",
          "--network-macvlan=dmt1",
          "/bin/sh",
          "-c",
          "ip -o link",
        ],
        { stateDir },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain(": inner@");
      expect(r.stdout).toMatch(/: mv-dmt1@/);
      expect(r.stdout).toContain(generateMac(machineId, name, HASH_KEYS.macvlan, 0));
      expect(sh("ip -o link show dmt0").code).toBe(0); // back, under its own name
      expect(sh("ip -o link").out).not.toContain("mv-dmt1");
    },
    T,
  );

  test(
    "--network-macvlan alone (twice, and with -U): made by the helper straight in the container's own namespace, nspawn's name and MAC; gone with it",
    async () => {
      expect(sh("ip link add dmt1 type veth peer name dmt1p && ip link set dmt1 up").code).toBe(0);
      scratch.defer(() => void sh("ip link del dmt1"));
      for (const extra of [[], ["-U"]]) {
        const name = scratch.name("mv");
        const r = await runNspawn(
          ["-q", "--register=no", "--console=pipe", "-D", root, "-M", name, ...extra, "--network-macvlan=dmt1", "/bin/sh", "-c", "ip -o link show mv-dmt1"],
          { stateDir },
        );
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/: mv-dmt1@/);
        expect(r.stdout).toContain(generateMac(machineId, name, HASH_KEYS.macvlan, 0));
        expect(existsSync(`${stateDir}/netns/${name}`)).toBe(false); // no namespace prepared for it
        expect(sh("ip -o link").out).not.toContain("mv-dmt1");
      }
    },
    T,
  );

  test.skipIf(!ipvlanWorks)(
    "--network-ipvlan on a parent made by the test",
    async () => {
      expect(sh("ip link add dmt1 type veth peer name dmt1p && ip link set dmt1 up").code).toBe(0);
      scratch.defer(() => void sh("ip link del dmt1"));
      const name = scratch.name("iv");
      const r = await runNspawn(["-q", "--register=no", "--console=pipe", "-D", root, "-M", name, "--network-ipvlan=dmt1", "/bin/sh", "-c", "ip -o link"], {
        stateDir,
      });
      expect(r.stdout).toMatch(/: iv-dmt1@/);
    },
    T,
  );

  test(
    "kill -9 of the supervisor: the next start removes the network (checked by afterEach)",
    async () => {
      const name = scratch.name("k9");
      const bg = start(["-M", name, "-n", "-p", "18081:80"], "sleep 30");
      await up(name);
      expect(sh("nft list table inet machina").out).toContain("18081");
      bg.proc.kill("SIGKILL");
      await bg.exited;
      expect(existsSync(`${stateDir}/net/${name}.json`)).toBe(true); // left behind ...
    },
    T,
  );

  test(
    "kill -9 of a supervisor nobody reaps (a zombie): machinactl list sweeps its network — rules, record, lease",
    async () => {
      const name = scratch.name("kz");
      // The supervisor's parent execs sleep, which never reaps: after SIGKILL it stays a zombie,
      // as under a PID 1 that is not an init.
      const nspawn = [`${REPO}/bin/machina-nspawn`, "-q", "--register=no", "--console=pipe", "-D", root, "-M", name, "-n", "-p", "18082:80", "sleep", "30"];
      const parent = Bun.spawn(["sh", "-c", `"$@" & exec sleep 30`, "sh", ...nspawn], {
        env: { ...process.env, MACHINA_STATE_DIR: stateDir },
        stdout: "ignore",
        stderr: "ignore",
      });
      scratch.defer(() => parent.kill("SIGKILL"));
      await up(name);
      expect(sh("nft list table inet machina").out).toContain("18082");
      const stateJson = `${stateDir}/machines/${name}/state.json`;
      const sup = await waitFor(
        "state.json",
        () => (existsSync(stateJson) ? Number(/"supervisor":(\d+)/.exec(readFileSync(stateJson, "utf8"))?.[1]) : undefined),
        5000,
      );
      scratch.defer(() => void sh(`kill -9 ${sup} 2>/dev/null`));
      process.kill(sup, "SIGKILL");
      await waitFor("zombie", () => (/^State:\s+Z/m.test(readFileSync(`/proc/${sup}/status`, "utf8")) ? true : undefined), 5000);
      const list = Bun.spawnSync([`${REPO}/bin/machinactl`, "list"], { env: { ...process.env, MACHINA_STATE_DIR: stateDir }, stdout: "pipe", stderr: "pipe" });
      expect(list.stdout.toString()).toContain("0 machines listed.");
      expect(existsSync(`${stateDir}/net/${name}.json`)).toBe(false);
      expect(sh("nft list tables").out).not.toContain("machina");
    },
    T,
  );

  test.skipIf(!haveSystemdNspawn())(
    "side by side with systemd-nspawn: the same interface names and MACs (short and long machine names)",
    async () => {
      for (const name of [scratch.name("sb"), `averylongname-${Math.random().toString(36).slice(2, 8)}`]) {
        const cmd = ["/bin/sh", "-c", "cat /sys/class/net/host0/address; sleep 1.5"];
        const look = async (p: Promise<unknown>) => {
          const host = await waitFor(
            "host side",
            () => {
              const l = sh("ip -o link show")
                .out.split("\n")
                .find((x) => x.includes(`ve-${name.slice(0, 8)}`));
              return l;
            },
            8000,
          );
          await p;
          return host.split(": ")[1]!.split("@")[0] + " " + host.match(/link\/ether ([0-9a-f:]+)/)![1];
        };
        const ns = runSystemdNspawn(["-q", "--console=pipe", "-n", "-M", name, "-D", root, ...cmd], name);
        const nsHost = await look(ns);
        const nsOut = (await ns).stdout.trim();
        const mc = runNspawn(["-q", "--register=no", "--console=pipe", "-n", "-M", name, "-D", root, ...cmd], { stateDir });
        const mcHost = await look(mc);
        const mcOut = (await mc).stdout.trim();
        expect(mcHost).toBe(nsHost);
        expect(mcOut).toBe(nsOut);
      }
    },
    T,
  );

  /** A private copy of the Debian fixture with systemd-networkd enabled (what `systemctl enable` would link). */
  async function networkdCopy(): Promise<string> {
    const deb = await debianCopy(scratch);
    for (const [unit, dir] of [
      ["systemd-networkd.service", "multi-user.target.wants"],
      ["systemd-networkd.socket", "sockets.target.wants"],
    ] as const) {
      mkdirSync(`${deb}/etc/systemd/system/${dir}`, { recursive: true });
      if (!existsSync(`${deb}/etc/systemd/system/${dir}/${unit}`)) symlinkSync(`/lib/systemd/system/${unit}`, `${deb}/etc/systemd/system/${dir}/${unit}`);
    }
    return deb;
  }

  /** Boot it with `extra`: networkd applies the DHCP lease (IPv4) and, from the router advertisement + DHCPv6, the ULA; both reach the host. */
  async function bootAndCheckLease(extra: string[]): Promise<void> {
    const deb = await networkdCopy();
    await withBootedDebian(
      deb,
      scratch,
      stateDir,
      async (m) => {
        const rec = await up(m.name);
        // the host's one veth dnsmasq serves it: its lines, tagged with its link's name
        expect(sh("pgrep -a dnsmasq").out).toContain(`--pid-file=${stateDir}/net/veth-dhcp.pid`);
        expect(readFileSync(`${stateDir}/net/veth-dhcp.hosts`, "utf8")).toContain(`tag:${vethHostName(m.name, false)},`);
        await systemState(m.state.leader, 30_000);
        const ip = rec.addr!.container.v4;
        const ip6 = rec.addr!.container.v6!;
        const lease = await waitFor(
          "DHCP lease",
          () => {
            const t = existsSync(`${stateDir}/net/veth-dhcp.leases`) ? readFileSync(`${stateDir}/net/veth-dhcp.leases`, "utf8") : "";
            return t.includes(ip) ? t : undefined;
          },
          30_000,
          100,
        );
        expect(lease).toContain(generateMac(machineId, m.name, HASH_KEYS.container));
        const inside = await waitFor(
          "address on host0",
          () => {
            const r = sh(`nsenter -t ${m.state.leader} -n ip -4 -o addr show host0`).out;
            return r.includes(ip) ? r : undefined;
          },
          15_000,
          100,
        );
        expect(inside).toContain("dynamic"); // from DHCP, not from outside
        // (retried: the first packet may wait for neighbour discovery while networkd still configures the link)
        const reaches = (cmd: string) => waitFor(cmd, () => sh(cmd).code === 0 || undefined, 10_000, 200);
        await reaches(`nsenter -t ${m.state.leader} -n busybox ping -c1 -W2 ${rec.addr!.gateway.v4}`);
        await reaches(`busybox ping -c1 -W2 ${ip}`);
        // IPv6: the ULA machina gave it, by DHCPv6 after dnsmasq's router advertisement
        const inside6 = await waitFor(
          "IPv6 ULA on host0",
          () => {
            const r = sh(`nsenter -t ${m.state.leader} -n ip -6 -o addr show host0 scope global`).out;
            return r.includes(ip6) && !r.includes("tentative") ? r : undefined; // DAD done
          },
          20_000,
          100,
        );
        expect(inside6).toContain(ip6);
        await reaches(`nsenter -t ${m.state.leader} -n busybox ping6 -c1 -W2 ${rec.addr!.gateway.v6}`);
        await reaches(`busybox ping6 -c1 -W2 ${ip6}`);
        const dnsmasq = readFileSync(`${stateDir}/net/veth-dhcp.pid`, "utf8").trim();
        m.bg.proc.kill("SIGTERM");
        expect(await m.bg.exited).toBe(0);
        // the last booted container gone: the veth dnsmasq and its files too (the teardown runs after the
        // exit; a zombie's cmdline is empty: this host's PID 1 may never reap it)
        const alive = () => (existsSync(`/proc/${dnsmasq}/cmdline`) ? readFileSync(`/proc/${dnsmasq}/cmdline`, "utf8") : "") !== "";
        await waitFor("the veth dnsmasq stopped", () => (!alive() && !existsSync(`${stateDir}/net/veth-dhcp.pid`)) || undefined, 10_000, 50);
        expect(existsSync(`${stateDir}/net/veth-dhcp.hosts`)).toBe(false);
      },
      extra,
    );
  }

  test(
    "booted containers on veths share one dnsmasq: each gets its own lease on its own link (the second's lines re-read on SIGHUP), the last one's exit stops it",
    async () => {
      const boot = `${files.dir("machina-boot-")}/bb`;
      copyTree(image, boot);
      rmSync(`${boot}/sbin/init`, { force: true });
      writeFileSync(`${boot}/sbin/init`, TEST_INIT, { mode: 0o755 });
      const names = [scratch.name("nd"), scratch.name("nd")];
      const bgs = names.map((n) => startNspawn(["-q", "--register=yes", "--console=pipe", "-x", "-D", boot, "-M", n, "-b", "-n"], { stateDir }, scratch));
      const leaders = await Promise.all(names.map((n) => waitForState(stateDir, n).then((st) => st.leader)));
      const lines = readFileSync(`${stateDir}/net/veth-dhcp.hosts`, "utf8").trim().split("\n");
      expect(lines.map((l) => l.split(",")[0]).sort()).toEqual(names.map((n) => `tag:${vethHostName(n, false)}`).sort());
      const lease = (leader: number) => sh(`nsenter -t ${leader} -n -m busybox sh -c 'ip link set host0 up && udhcpc -i host0 -n -q -t 5 -s /bin/true 2>&1'`);
      for (const [i, n] of names.entries()) {
        const rec = JSON.parse(readFileSync(`${stateDir}/net/${n}.json`, "utf8")) as { addr: { container: { v4: string }; gateway: { v4: string } } };
        const r = lease(leaders[i]!);
        expect(r.out).toContain(`lease of ${rec.addr.container.v4} obtained from ${rec.addr.gateway.v4}`);
      }
      // the first gone: its lines go, the second is still served
      bgs[0]!.proc.kill("SIGTERM");
      expect(await bgs[0]!.exited).toBe(0);
      await waitFor(
        "the first's lines removed",
        () => readFileSync(`${stateDir}/net/veth-dhcp.hosts`, "utf8").trim().split("\n").length === 1 || undefined,
        10_000,
        50,
      );
      expect(lease(leaders[1]!).out).toContain("obtained");
      const pid = readFileSync(`${stateDir}/net/veth-dhcp.pid`, "utf8").trim();
      bgs[1]!.proc.kill("SIGTERM");
      expect(await bgs[1]!.exited).toBe(0);
      const alive = () => (existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, "utf8") : "") !== "";
      await waitFor("the veth dnsmasq stopped", () => (!alive() && !existsSync(`${stateDir}/net/veth-dhcp.hosts`)) || undefined, 10_000, 50);
    },
    T,
  );

  test("a booted Debian container with systemd-networkd gets its addresses by DHCP/DHCPv6 (dnsmasq) and reaches the host", async () => {
    await bootAndCheckLease(["-n"]);
  }, 120_000);

  test("-U: a booted Debian's network namespace is its user namespace's: networkd applies the lease (IPv4 and IPv6)", async () => {
    await bootAndCheckLease(["-n", "-U"]);
  }, 120_000);

  test(
    "-U -n: a command container reaches the host and its root may reconfigure host0",
    async () => {
      const name = scratch.name("un");
      const own = `${files.dir()}/bbu`; // -U shifts the tree's owners: not the shared copy
      copyTree(image, own);
      const r = await runNspawn(
        [
          "-q",
          "--register=no",
          "--console=pipe",
          "-D",
          own,
          "-M",
          name,
          "-U",
          "-n",
          "/bin/sh",
          "-c",
          "ping -c1 -W2 $(ip route | sed -n 's/default via \\([^ ]*\\).*/\\1/p') >/dev/null && echo PING-OK; ip link set host0 mtu 1280 && echo CONFIG-OK; cat /proc/self/uid_map",
        ],
        { stateDir },
      );
      expect(r.stdout).toContain("PING-OK");
      expect(r.stdout).toContain("CONFIG-OK");
      expect(r.stdout).not.toMatch(/^\s*0\s+0\s+4294967295/m); // really in a user namespace
    },
    T,
  );
});
