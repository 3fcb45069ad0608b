/**
 * The host's own tools find machina's containers on a host where no systemd-machined runs
 * (issue 17, spec/machined-records.ts): machina writes machined's records itself, and procps'
 * `ps -o machine` (sd_pid_get_machine_name) and `systemctl -M NAME` (sd-bus's container
 * transport) read them — the real tools of this host, against a booted Debian. The records go
 * with the machine: at poweroff, and after a kill -9 of its supervisor at the next sweep.
 * `journalctl -M` in systemd 252 asks machined over the host's bus (OpenMachineRootDirectory),
 * so it needs machined; `journalctl --root=/proc/LEADER/root` is the way without (docs/machines.md).
 * Skipped on a systemd host with machined: there machined makes these records. Root only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { ensureBusyboxImage, ensureDebianImage } from "../fixtures/images.ts";
import { systemState, withBootedDebian } from "../helpers/debian.ts";
import { Scratch, baseEnv, machinactlSync, startNspawn, unitEscape, waitFor, waitForState } from "../helpers/machina.ts";

const isRoot = process.getuid?.() === 0;
const withMachined = existsSync("/run/systemd/system") && ["/usr/lib/systemd/systemd-machined", "/lib/systemd/systemd-machined"].some((p) => existsSync(p));
const DIR = "/run/systemd/machines";
const scratch = new Scratch();
afterAll(() => scratch.cleanup());

function record(name: string): Record<string, string> | undefined {
  if (!existsSync(`${DIR}/${name}`)) return undefined;
  return Object.fromEntries(
    readFileSync(`${DIR}/${name}`, "utf8")
      .split("\n")
      .flatMap((l) => (/^[A-Z_]+=/.test(l) ? [[l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]] : [])),
  );
}
const link = (name: string) => `${DIR}/unit:machine-${unitEscape(name)}.scope`;
const run = (argv: string[]) => {
  const p = Bun.spawnSync(argv, { env: baseEnv(), stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
};
/** procps' MACHINE column of process `pid`. */
const psMachine = (pid: number) => run(["ps", "-o", "machine=", "-p", String(pid)]).stdout.trim();

describe.skipIf(!isRoot || withMachined)("machined's records without machined", () => {
  test("a booted Debian: the record and the unit link, ps -o machine, systemctl -M, journalctl --root; gone after poweroff", async () => {
    const image = await ensureDebianImage();
    const stateDir = scratch.dir("machina-mrec-");
    let name = "";
    await withBootedDebian(
      image,
      scratch,
      stateDir,
      async (m) => {
        name = m.name;
        const r = record(m.name);
        expect(r).toMatchObject({
          NAME: m.name,
          LEADER: String(m.state.leader),
          CLASS: "container",
          SERVICE: "machina-nspawn",
          ROOT: `/proc/${m.state.leader}/root`,
        });
        expect(r?.["ID"]).toBe(m.state.uuid.replace(/-/g, "").toLowerCase());
        expect(readlinkSync(link(m.name))).toBe(m.name);
        expect(["running", "degraded"]).toContain(await systemState(m.state.leader, 60_000));
        // the host's tools
        expect(psMachine(m.state.leader)).toBe(m.name);
        const sd = run(["systemctl", "-M", m.name, "is-system-running"]);
        expect(["running", "degraded"]).toContain(sd.stdout.trim());
        const units = run(["systemctl", "-M", m.name, "list-units", "--no-legend", "--plain", "--no-pager", "systemd-journald.service"]);
        expect(units.stdout).toContain("systemd-journald.service");
        const journal = run(["journalctl", `--root=/proc/${m.state.leader}/root`, "--no-pager", "-n", "20"]);
        expect(journal.code).toBe(0);
        expect(journal.stdout).toContain(m.name); // the container's host name on its lines
        // poweroff: the supervisor removes both
        expect(machinactlSync(baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_NO_DAEMON: "1" }), "poweroff", m.name).status).toBe(0);
        expect(await Promise.race([m.bg.exited, Bun.sleep(30_000).then(() => -1)])).toBe(0);
      },
      ["-x"],
    );
    expect(record(name)).toBeUndefined();
    expect(existsSync(link(name))).toBe(false);
  }, 120_000);

  test("kill -9 of the supervisor leaves them; the next sweep (machinactl list) removes them; --register=no writes none", async () => {
    const busybox = await ensureBusyboxImage();
    const stateDir = scratch.dir("machina-mrec-");
    const name = scratch.name("mrec");
    const bg = startNspawn(["-x", "-D", busybox, "-M", name, "/bin/sleep", "600"], { stateDir }, scratch);
    const st = await waitForState(stateDir, name, undefined, 10_000, bg);
    expect(record(name)).toMatchObject({ NAME: name, LEADER: String(st.leader) });
    expect(psMachine(st.leader)).toBe(name);
    process.kill(st.supervisor, "SIGKILL");
    await bg.exited;
    await waitFor("the payload gone", async () => !existsSync(`/proc/${st.leader}`) || undefined, 10_000);
    expect(record(name)).toBeDefined(); // nobody removed it yet
    expect(machinactlSync(baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_NO_DAEMON: "1" }), "list").status).toBe(0);
    expect(record(name)).toBeUndefined();
    expect(existsSync(link(name))).toBe(false);

    const other = scratch.name("mrec");
    const bg2 = startNspawn(["-x", "-D", busybox, "-M", other, "--register=no", "/bin/sleep", "600"], { stateDir }, scratch);
    const st2 = await waitForState(stateDir, other, undefined, 10_000, bg2);
    expect(record(other)).toBeUndefined();
    expect(psMachine(st2.leader)).toBe("-");
    process.kill(st2.supervisor, "SIGTERM");
    await bg2.exited;
  }, 60_000);
});
