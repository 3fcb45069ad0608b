/**
 * machina on a sysvinit host, proven nested (root): a COPY of the Debian fixture with
 * sysvinit-core in place of systemd-sysv (its .debs downloaded once and cached under
 * $MACHINA_FIXTURE_CACHE/debs, `dpkg -i` in a chroot), run with sysvinit's /sbin/init as PID 1 of
 * a machina container with a user namespace (-U: see bootSysv), the checkout and bun bound
 * read-only (/opt/machina, /opt/bun).
 *
 * Inside: `scripts/install-daemon` — what scripts/setup runs — takes the sysvinit branch:
 * /etc/init.d/machinad in the default runlevels (S01machinad in rc2.d) and started; machinad
 * serves machinactl's front end. `telinit 0` runs the K script (machinad logs its SIGTERM). Booted
 * again, init's rc starts machinad by itself. The host's / and /sys superblocks are unchanged
 * afterwards. Root only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, symlinkSync } from "node:fs";
import { nestedHostOnce } from "../helpers/debian.ts";
import { Scratch, hostSuperOptions, nsenter, startNspawn, waitFor, waitForState } from "../helpers/machina.ts";

const isRoot = process.getuid?.() === 0;
const scratch = new Scratch();
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const host = nestedHostOnce(scratch, "machina-sysvhost-", ["sysvinit-core"], {
  purge: ["systemd-sysv"],
  // the installed commands, as scripts/setup links them (the compiled ones of scripts/build)
  finish: ({ root }) => {
    for (const cmd of ["machinad", "machinactl"]) symlinkSync(`/opt/machina/dist/bin/${cmd}`, `${root}/usr/local/bin/${cmd}`);
  },
});
afterAll(() => scratch.cleanup());

/**
 * sysvinit as the container's PID 1 (the copy still has systemd's binary, which -b would pick, as
 * systemd-nspawn's -b would), in a user namespace (-U): its shutdown scripts remount what they
 * see read-only (`mount -o remount,ro /`, `umount -r`), and in a privileged container such a
 * remount reaches the superblock it shares with the host — this VM's /sys became read-only so,
 * under machina and systemd-nspawn alike (docs/security.md). In a user namespace the kernel refuses them.
 */
async function bootSysv() {
  const { root, stateDir, binds } = host();
  const name = scratch.name("sysv");
  const bg = startNspawn(["-D", root, "-M", name, "-U", "--console=read-only", ...binds, "/sbin/init"], { stateDir }, scratch);
  const state = await waitForState(stateDir, name, undefined, 15_000, bg);
  const leader = state.leader;
  const sh = async (cmd: string, timeoutMs = 30_000) => {
    const r = await nsenter(leader, ["env", "-i", `PATH=${PATH}`, "sh", "-c", cmd], timeoutMs);
    return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
  };
  // runlevel 2 reached: rc has run its S scripts
  await waitFor("runlevel 2", async () => (/run-level 2/.test((await sh("who -r")).out) ? true : undefined), 30_000);
  const halt = async () => {
    await sh("telinit 0");
    await Promise.race([bg.exited, Bun.sleep(20_000)]);
    if (bg.proc.exitCode === null && bg.proc.signalCode === null) {
      bg.proc.kill("SIGKILL");
      await bg.exited;
    }
  };
  return { bg, leader, sh, halt };
}

const machinadLog = () => {
  const log = `${host().root}/var/log/machinad.log`;
  return existsSync(log) ? readFileSync(log, "utf8") : "";
};

/** The host's superblock options of / and /sys (mountinfo's last field): the guest must not change them. */
const hostSuperblocks = () => ["/", "/sys"].map((m) => `${m} ${hostSuperOptions(m)}`);

describe("sysvinit host (nested: a Debian copy with sysvinit-core as PID 1)", () => {
  test.skipIf(!isRoot)(
    "scripts/install-daemon installs /etc/init.d/machinad and starts it; the next boot starts it from rc",
    async () => {
      host();
      const superblocks = hostSuperblocks();
      const first = await bootSysv();
      try {
        expect(await first.sh("cat /proc/1/comm")).toMatchObject({ out: "init" });
        const install = await first.sh("cd /opt/machina && scripts/install-daemon /usr/local/bin 2>&1");
        expect(install).toMatchObject({ code: 0 });
        expect(install.out).toContain("installed /etc/init.d/machinad");
        expect((await first.sh("ls /etc/rc2.d")).out.split("\n")).toContain("S01machinad");
        expect(await first.sh("/etc/init.d/machinad status")).toMatchObject({ code: 0 });
        // served: machinactl's front end reaches the machinad init started
        const list = await first.sh("MACHINA_FRONT_DEBUG=1 machinactl list 2>&1");
        expect(list).toMatchObject({ code: 0 });
        expect(list.out).toContain("served by machinad (/run/machina/machinactl.sock)");
      } finally {
        await first.halt();
      }
      // the halt ran the K script: machinad was told to stop
      expect(machinadLog()).toContain('"event":"stopping","signal":"SIGTERM"');
      const readyBefore = machinadLog().split('"event":"ready"').length - 1;

      const second = await bootSysv();
      try {
        await waitFor("machinad started at boot", async () => ((await second.sh("/etc/init.d/machinad status")).code === 0 ? true : undefined), 30_000);
        await waitFor("its ready line", () => (machinadLog().split('"event":"ready"').length - 1 === readyBefore + 1 ? true : undefined), 10_000);
        expect((await second.sh("MACHINA_FRONT_DEBUG=1 machinactl list 2>&1")).out).toContain("served by machinad");
      } finally {
        await second.halt();
      }
      expect(hostSuperblocks()).toEqual(superblocks);
    },
    240_000,
  );
});
