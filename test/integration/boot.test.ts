/**
 * -b: booting the Debian fixture (a private copy) to `running`, reboot from inside, poweroff by
 * SIGTERM to the supervisor, --kill-signal, and that nothing is left behind. Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { debianCopy, failedUnits, systemState, withBootedDebian } from "../helpers/debian.ts";
import {
  NOTHING,
  Scratch,
  alive,
  leftovers,
  machineCgroup,
  newLeftovers,
  nsenter,
  pidNamespace,
  processesIn,
  statePath,
  waitForState,
} from "../helpers/machina.ts";

const files = new Scratch();
const scratch = new Scratch();
let root: string;
let stateDir: string;

beforeAll(async () => {
  root = await debianCopy(files);
  stateDir = files.dir("machina-state-");
}, 120_000);
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

describe("booting Debian with -b", () => {
  test("reaches running with no failed units; reboot from inside comes back; SIGTERM powers off cleanly", async () => {
    const before = leftovers(stateDir);
    const uuid = "0123456789abcdef0123456789abcdef";
    const ns = await withBootedDebian(
      root,
      scratch,
      stateDir,
      async (m) => {
        // registry
        expect(m.state.supervisor).toBe(m.bg.proc.pid);
        expect(m.state.boot).toBe(true);
        expect(m.state.name).toBe(m.name);
        expect(m.state.os).toBe("debian");
        expect(existsSync(machineCgroup(m.name))).toBe(true);

        // up
        expect(await systemState(m.state.leader)).toBe("running");
        expect(await failedUnits(m.state.leader)).toEqual([]);
        expect((await nsenter(m.state.leader, ["hostname"])).stdout.trim()).toBe(m.name);
        // --uuid initialises the empty machine-id
        expect((await nsenter(m.state.leader, ["cat", "/etc/machine-id"])).stdout.trim()).toBe(uuid);

        // reboot from inside: a new leader, running again, registry updated
        const first = m.state.leader;
        const r = await nsenter(first, ["systemctl", "reboot"]);
        expect(r.code).toBe(0);
        const again = await waitForState(stateDir, m.name, first, 15_000, m.bg);
        expect(again.leader).not.toBe(first);
        expect(again.supervisor).toBe(m.state.supervisor);
        expect(alive(again.leader)).toBe(true);
        expect(await systemState(again.leader)).toBe("running");
        expect(await failedUnits(again.leader)).toEqual([]);

        // SIGTERM to the supervisor: halt within 5 s, exit 0
        const pidns = pidNamespace(again.leader)!;
        const t0 = performance.now();
        m.bg.proc.kill("SIGTERM");
        const code = await m.bg.exited;
        const ms = performance.now() - t0;
        expect(code).toBe(0);
        expect(ms).toBeLessThan(5000);
        const out = await m.bg.stdout;
        expect(out).toContain("Halting system."); // SIGRTMIN+3, nspawn's default -b kill signal
        const err = await m.bg.stderr;
        expect(err).toContain(`Container ${m.name} has been shut down.`);
        expect(err).not.toMatch(/failed|error/i);
        return pidns;
      },
      [`--uuid=${uuid}`],
    );
    expect(processesIn(ns)).toEqual([]);
    expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
  }, 60_000);

  test("--kill-signal=SIGRTMIN+4: SIGTERM to the supervisor powers off instead of halting", async () => {
    const before = leftovers(stateDir);
    await withBootedDebian(
      root,
      scratch,
      stateDir,
      async (m) => {
        expect(await systemState(m.state.leader)).toBe("running");
        m.bg.proc.kill("SIGTERM");
        expect(await m.bg.exited).toBe(0);
        expect(await m.bg.stdout).toContain("Powering off.");
        expect(existsSync(statePath(stateDir, m.name))).toBe(false);
      },
      ["-q", "--kill-signal=SIGRTMIN+4"],
    );
    expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
  }, 60_000);

  test("systemctl poweroff inside ends the supervisor with exit 0", async () => {
    await withBootedDebian(
      root,
      scratch,
      stateDir,
      async (m) => {
        expect(await systemState(m.state.leader)).toBe("running");
        await nsenter(m.state.leader, ["systemctl", "poweroff"]);
        expect(await m.bg.exited).toBe(0);
      },
      ["-q"],
    );
  }, 60_000);
});
