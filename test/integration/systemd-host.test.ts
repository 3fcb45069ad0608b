/**
 * machina on a systemd host, proven nested (root): a COPY of the Debian fixture, booted with
 * machina-nspawn -b, acts as the systemd host. Into the copy go systemd-container (machined,
 * machinectl; its .debs and the missing dependencies are downloaded once on this host and cached
 * under $MACHINA_FIXTURE_CACHE/debs, then `dpkg -i` in a chroot) and procps (`ps -o machine`);
 * the checkout and bun are bound read-only (/opt/machina, /opt/bun); a busybox copy with a fake
 * init is the image /var/lib/machines/bb.
 *
 * Inside: machina's own unit installer and `machinactl enable --now` (the unit's -U and veth
 * turned off by a trusted /etc/systemd/nspawn/bb.nspawn: see beforeAll), then systemd's view —
 * the unit active, its cgroup split into supervisor/ and payload/, systemd's `machinectl list` and
 * `ps -eo machine` see bb, `machinectl reboot` -> exit 133 -> systemd restarts the unit (new
 * leader, re-registered), `systemctl stop` powers it off cleanly (exit 0, unregistered, cgroup
 * gone); and without --keep-unit machined's CreateMachine makes machine-NAME.scope.
 *
 * Not checked: `systemctl -M bb` and `machinectl shell bb` — both talk to a systemd inside the
 * container, and the busybox image has none (booting a nested Debian would double the time).
 * Root only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { nestedHostOnce, systemState, withBootedDebian } from "../helpers/debian.ts";
import { NOTHING, Scratch, copyTree, leftovers, newLeftovers, nsenter, waitFor } from "../helpers/machina.ts";

const isRoot = process.getuid?.() === 0;
const scratch = new Scratch();
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The fake init: SIGRTMIN+3/+4 power off (exit 0), SIGINT reboots (busybox reboot -f). */
const FAKE_INIT = `#!/bin/sh
log() { echo "$1" >> /signals.log; }
trap 'log 37; exit 0' 37
trap 'log 38; exit 0' 38
trap 'log 2; reboot -f' 2
log up
while :; do sleep 1 & wait $!; done
`;

// systemd-container + procps, and what they need that the fixture lacks
const host = nestedHostOnce(scratch, "machina-sdhost-", ["systemd-container", "procps"], {
  finish: async ({ root }) => {
    // the image
    const bb = `${root}/var/lib/machines/bb`;
    mkdirSync(dirname(bb), { recursive: true });
    copyTree(await ensureBusyboxImage(), bb);
    rmSync(`${bb}/sbin/init`, { force: true });
    writeFileSync(`${bb}/sbin/init`, FAKE_INIT);
    chmodSync(`${bb}/sbin/init`, 0o755);
    // The unit's -U and --network-veth cannot work in this nested host: it lacks nft and dnsmasq,
    // and a user namespace inside a container cannot mount proc (the kernel refuses a new proc
    // mount while the outer container's /proc has masked entries: "failed to mount "proc": EPERM").
    // Managed machines' -U and veth are covered by machines.test.ts and daemon.test.ts; here the
    // administrator's trusted file turns both off for bb, as docs/machines.md shows.
    mkdirSync(`${root}/etc/systemd/nspawn`, { recursive: true });
    writeFileSync(`${root}/etc/systemd/nspawn/bb.nspawn`, "[Exec]\nPrivateUsers=no\n[Network]\nVirtualEthernet=no\n");
  },
});
afterAll(() => scratch.cleanup());

describe("systemd host (nested: a booted Debian copy with systemd-machined)", () => {
  test.skipIf(!isRoot)(
    "machina-nspawn@.service, machined registration, reboot -> 133 -> restart, clean stop, CreateMachine scope",
    async () => {
      const { root, stateDir, binds } = host();
      const before = leftovers(stateDir);
      await withBootedDebian(
        root,
        scratch,
        stateDir,
        async (m) => {
          const leader = m.state.leader;
          const sh = async (cmd: string, timeoutMs = 20_000) => {
            const r = await nsenter(leader, ["env", "-i", `PATH=${PATH}`, "sh", "-c", cmd], timeoutMs);
            return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
          };
          const ok = async (cmd: string) => {
            const r = await sh(cmd);
            if (r.code !== 0) throw new Error(`inside: ${cmd}: exit ${r.code}: ${r.err}`);
            return r.out;
          };
          const prop = async (unit: string, p: string) => ok(`systemctl show ${unit} -p ${p} --value`);
          try {
            await inside();
          } catch (e) {
            // the inner journal says why
            const j = await sh("journalctl -n 40 --no-pager -o short-monotonic");
            throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- journal inside ---\n${j.out}`);
          }
          async function inside() {
            expect(await systemState(leader)).toBe("running");

            // machina's own installer and enable verb
            await ok(
              `cd /opt/machina && bun -e 'import { installUnit } from "/opt/machina/src/machine/systemd.ts"; import { LinuxHost } from "/opt/machina/src/host/linux.ts"; await installUnit(new LinuxHost(), "/opt/machina/bin")'`,
            );
            expect(await ok("cat /etc/systemd/system/machina-nspawn@.service")).toContain(
              "ExecStart=/opt/machina/bin/machina-nspawn --quiet --keep-unit --boot",
            );
            await ok("/opt/machina/bin/machinactl enable --now bb");
            const unit = "machina-nspawn@bb.service";
            expect(await ok(`systemctl is-enabled ${unit}`)).toBe("enabled");
            expect(await ok(`systemctl is-active ${unit}`)).toBe("active");

            // systemd's machinectl sees it, attached to the unit; the cgroups are the unit's own
            await waitFor(
              "bb in systemd's machinectl list",
              async () => ((await sh("machinectl list --no-legend")).out.includes("bb") ? true : undefined),
              10_000,
            );
            const list = await ok("machinectl list --no-legend");
            expect(list).toMatch(/^bb\s+container\s+machina-nspawn\s+busybox/m);
            expect(await ok("machinectl show bb -p Unit --value")).toBe(unit);
            const l1 = Number(await ok("machinectl show bb -p Leader --value"));
            const main = Number(await prop(unit, "MainPID"));
            expect(l1).toBeGreaterThan(1);
            // the trusted file's PrivateUsers=no won over the unit's -U (--settings=override)
            expect((await ok(`cat /proc/${l1}/uid_map`)).split(/\s+/)).toEqual(["0", "0", "4294967295"]);
            expect(await ok(`grep '^0::' /proc/${l1}/cgroup`)).toBe(`0::/machine.slice/${unit}/payload`);
            expect(await ok(`grep '^0::' /proc/${main}/cgroup`)).toBe(`0::/machine.slice/${unit}/supervisor`);
            // ps's machine column (sd_pid_get_machine_name: the unit's machine)
            const ps = await ok("ps -eo pid,machine,comm --no-headers");
            expect(ps).toMatch(new RegExp(`^\\s*${l1}\\s+bb\\s+init$`, "m"));
            // machina's own view inside agrees
            const mine = await ok("/opt/machina/bin/machinactl show bb -p Unit --value");
            expect(mine).toBe(unit);

            // reboot inside -> exit 133 -> RestartForceExitStatus=133 -> a new leader, registered again
            await ok("machinectl reboot bb");
            await waitFor(
              "the unit restarted",
              async () => ((await prop(unit, "NRestarts")) === "1" && (await prop(unit, "ActiveState")) === "active" ? true : undefined),
              15_000,
            );
            const l2 = await waitFor(
              "a new leader registered",
              async () => {
                const r = await sh("machinectl show bb -p Leader --value");
                return r.code === 0 && r.out !== "" && Number(r.out) !== l1 ? Number(r.out) : undefined;
              },
              10_000,
            );
            expect(await ok(`grep '^0::' /proc/${l2}/cgroup`)).toBe(`0::/machine.slice/${unit}/payload`);
            expect(await ok("journalctl -u machina-nspawn@bb.service -o cat --no-pager")).toContain("Scheduled restart job");

            // stop: SIGTERM to machina-nspawn -> SIGRTMIN+3 to the init -> exit 0; unregistered, cgroup gone
            await ok(`systemctl stop ${unit}`);
            expect(await prop(unit, "ActiveState")).toBe("inactive");
            expect(await prop(unit, "Result")).toBe("success");
            expect(await prop(unit, "ExecMainStatus")).toBe("0");
            expect(await ok("cat /var/lib/machines/bb/signals.log")).toBe("up\n2\nup\n37");
            expect((await sh("machinectl list --no-legend")).out).not.toContain("bb");
            expect((await sh(`test -e /sys/fs/cgroup/machine.slice/${unit}`)).code).not.toBe(0);
            expect((await sh("ls /run/machina/machines")).out).toBe("");

            // without --keep-unit: machined's CreateMachine creates machine-bb2.scope around the leader
            await ok("systemd-run -q --unit=t-bb2 /opt/machina/bin/machina-nspawn -D /var/lib/machines/bb -M bb2 /bin/sleep 1000");
            await waitFor(
              "bb2 registered",
              async () => ((await sh("machinectl show bb2 -p Unit --value")).out === "machine-bb2.scope" ? true : undefined),
              10_000,
            );
            const l3 = Number(await ok("machinectl show bb2 -p Leader --value"));
            // machined lists the machine as soon as it asked for the scope; the move into it is the scope job's
            const inScope = async () => ((await ok(`grep '^0::' /proc/${l3}/cgroup`)) === "0::/machine.slice/machine-bb2.scope" ? true : undefined);
            await waitFor("the leader moved into machine-bb2.scope", inScope, 10_000);
            expect(await ok("systemctl is-active machine-bb2.scope")).toBe("active");
            await ok("systemctl stop t-bb2.service");
            await waitFor(
              "machine-bb2.scope gone",
              async () => ((await sh("systemctl is-active machine-bb2.scope")).out !== "active" ? true : undefined),
              10_000,
            );
            expect((await sh("machinectl list --no-legend")).out).not.toContain("bb2");

            await ok("/opt/machina/bin/machinactl disable bb");
            expect((await sh(`systemctl is-enabled ${unit}`)).out).toBe("disabled");

            // machinad.socket: machinad starts at the first front end's connection and serves it
            await ok(
              `cd /opt/machina && bun -e 'import { installDaemonUnits } from "/opt/machina/src/machine/systemd.ts"; import { LinuxHost } from "/opt/machina/src/host/linux.ts"; await installDaemonUnits(new LinuxHost(), "/opt/machina/bin")'`,
            );
            await ok("systemctl enable --now machinad.socket");
            expect(await ok("systemctl is-active machinad.socket")).toBe("active");
            expect((await sh("systemctl is-active machinad.service")).out).toBe("inactive");
            expect(await ok("stat -c %a /run/machina/nspawn.sock")).toBe("600");
            const served =
              "MACHINA_FRONT_DEBUG=1 MACHINA_NSPAWN_FALLBACK=/opt/machina/bin/machina-nspawn /opt/machina/native/build/machina-nspawn -q -D /var/lib/machines/bb -M bb3 /bin/echo served";
            const first = await sh(served, 60_000);
            expect([first.code, first.out]).toEqual([0, "served"]);
            expect(first.err).toContain("machina-nspawn: debug: served by machinad (/run/machina/nspawn.sock)");
            // Type=notify: active once machinad has sent READY=1 (it serves its doors just before)
            await waitFor(
              "machinad.service active",
              async () => ((await sh("systemctl is-active machinad.service")).out === "active" ? true : undefined),
              20_000,
            );
            expect(await ok("systemctl show machinad.service -p StatusText --value")).toBe("serving /run/machina/api.sock");
            expect(await ok("journalctl -u machinad.service -o cat --no-pager")).toContain(
              '"activated":["/run/machina/oci.sock","/run/machina/nspawn.sock","/run/machina/machinactl.sock"]',
            );
            // stopped, it is started again by the next connection; the socket stays
            await ok("systemctl stop machinad.service");
            expect(await ok("systemctl is-active machinad.socket")).toBe("active");
            const again = await sh(served, 60_000);
            expect([again.code, again.out]).toEqual([0, "served"]);
            await waitFor(
              "machinad.service active again",
              async () => ((await sh("systemctl is-active machinad.service")).out === "active" ? true : undefined),
              20_000,
            );
            // started by hand it waits for READY=1: active when systemctl returns
            await ok("systemctl restart machinad.service");
            expect(await ok("systemctl is-active machinad.service")).toBe("active");
            await ok("systemctl disable --now machinad.socket machinad.service");
            expect((await sh("test -e /run/machina/nspawn.sock")).code).not.toBe(0);
          }

          // power the outer container off cleanly
          m.bg.proc.kill("SIGTERM");
          const code = await Promise.race([m.bg.exited, Bun.sleep(15_000).then(() => "timeout")]);
          expect(code).toBe(0);
        },
        binds,
      );
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    90_000,
  );
});
