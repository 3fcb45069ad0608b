/**
 * systemd-machined's records written by machina on a host where no machined runs
 * (spec/machined-records.ts: what the supervisor writes; runtime/machined-records.ts: what a
 * sweep removes after a kill). Pure, fake host. The real `ps -o machine` and `systemctl -M`
 * reading them: test/integration/machined-records.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { machineLockPath } from "../../src/machine/registry.ts";
import { sweepMachinedRecords } from "../../src/runtime/machined-records.ts";
import { cescape, machinedRecordBody, parseMachinedRecord, unitOfCgroup } from "../../src/spec/machined-records.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";
import { fakeSpec, systemdFakeHost, V2 } from "../helpers/systemd-fake.ts";

const host = systemdFakeHost;
const spec = fakeSpec;

const records = (s: RunSpec) =>
  specRecords(s)
    .filter((r) => r[0].startsWith("host_"))
    .map(([name, args]) => [name, ...args]);

describe("when machina writes machined's records", () => {
  test("a host without systemd (machined installed or not): the record and the unit link with every leader, their directories, both removed at exit", () => {
    for (const machined of [false, true]) {
      const s = spec(["-D", "/srv/web", "-M", "web", "--uuid=0123456789abcdef0123456789ABCDEF", "-b"], host({ machined }));
      expect(s.hostRecords).toEqual([
        {
          path: "/run/systemd/machines/web",
          body: [
            "# This is private data. Do not parse.",
            "NAME=web",
            "SCOPE=machine-web.scope",
            "SERVICE=machina-nspawn",
            "ROOT=/proc/{leader}/root",
            "ID=0123456789abcdef0123456789abcdef",
            "LEADER={leader}",
            "CLASS=container",
            "",
          ].join("\n"),
        },
      ]);
      expect(records(s)).toEqual([
        ["host_mkdir", "/run/systemd", "0755"],
        ["host_mkdir", "/run/systemd/machines", "0755"],
        ["host_remove", "/run/systemd/machines/web"],
        ["host_remove", "/run/systemd/machines/unit:machine-web.scope"],
        ["host_record", "/run/systemd/machines/web", s.hostRecords![0]!.body],
        ["host_record_link", "web", "/run/systemd/machines/unit:machine-web.scope"],
      ]);
    }
  });

  test("under systemd with machined: none (machined's registration makes them), with --register=no none either", () => {
    expect(spec(["-D", "/srv/web", "-M", "web", "/bin/true"], host({ systemd: true, machined: true })).hostRecords).toBeUndefined();
    expect(spec(["-D", "/srv/web", "-M", "web", "--register=no", "/bin/true"], host({ systemd: true, machined: true })).hostRecords).toBeUndefined();
    const plain = spec(["-D", "/srv/web", "-M", "web", "--register=no", "/bin/true"], host());
    expect(plain.hostRecords).toBeUndefined();
    expect(plain.hostRemoves).toBeUndefined();
  });

  test("under systemd without machined (systemd-container not installed): machina writes them", () => {
    const s = spec(["-D", "/srv/web", "-M", "web", "/bin/true"], host({ systemd: true }));
    expect(s.hostRecords?.[0]?.path).toBe("/run/systemd/machines/web");
  });

  test("the unit is the first component below the slices: --slice, a name systemd escapes, --cgroup-path at the root", () => {
    const s = spec(["-D", "/srv/web", "-M", "web-1", "--slice=a-b.slice", "/bin/true"], host());
    expect(s.cgroups).toEqual([`${V2}/a.slice/a-b.slice/machine-web\\x2d1.scope`]);
    expect(s.hostRecords?.[0]?.body).toContain("SCOPE=machine-web\\\\x2d1.scope\n");
    expect(records(s)).toContainEqual(["host_record_link", "web-1", "/run/systemd/machines/unit:machine-web\\x2d1.scope"]);
    expect(unitOfCgroup("machine.slice/machine-x.scope/payload")).toBe("machine-x.scope");
    expect(unitOfCgroup("system.slice/machina-nspawn@web.service/payload")).toBe("machina-nspawn@web.service");
    expect(unitOfCgroup("a.slice")).toBeUndefined();
  });

  test("cescape and the reader agree (machined's escaping, parse_env_file's unescaping)", () => {
    expect(cescape(`a\\b"c'd\ne\u0001\u00e9`)).toBe(`a\\\\b\\"c\\'d\\ne\\001\\303\\251`);
    const body = machinedRecordBody({ name: "w", unit: "machine-w\\x2d1.scope", uuid: "" });
    expect(parseMachinedRecord(body)).toMatchObject({ NAME: "w", SCOPE: "machine-w\\x2d1.scope", LEADER: "{leader}", CLASS: "container" });
    expect(body).not.toContain("ID=");
  });
});

describe("the sweep of records killed supervisors left", () => {
  const rec = (name: string, leader: number, service = "machina-nspawn") =>
    `# This is private data. Do not parse.\nNAME=${name}\nSCOPE=machine-${name}.scope\nSERVICE=${service}\nLEADER=${leader}\nCLASS=container\n`;
  const sweepHost = (extra: Record<string, string | FakeNode> = {}) =>
    new FakeHost({
      files: {
        "/run/systemd/machines/alive": rec("alive", 10),
        "/run/systemd/machines/unit:machine-alive.scope": { kind: "symlink", target: "alive" },
        "/proc/10/cgroup": "0::/machine.slice/machine-alive.scope\n",
        "/run/systemd/machines/dead": rec("dead", 20),
        "/run/systemd/machines/unit:machine-dead.scope": { kind: "symlink", target: "dead" },
        "/run/systemd/machines/reused": rec("reused", 30),
        "/proc/30/cgroup": "0::/user.slice/session-1.scope\n",
        "/run/systemd/machines/theirs": rec("theirs", 40, "systemd-nspawn"),
        "/run/systemd/machines/unit:machine-lone.scope": { kind: "symlink", target: "lone" },
        ...extra,
      },
    });
  const left = (h: FakeHost) => h.readdir("/run/systemd/machines").sort();

  test("a full sweep: machina's records whose leader is gone (or another process now) go, with their links; live and foreign ones stay", () => {
    const h = sweepHost();
    sweepMachinedRecords(h, "/run/machina", { removed: [], quick: false });
    expect(left(h)).toEqual(["alive", "theirs", "unit:machine-alive.scope"]); // and the link left without its record
  });

  test("a quick sweep (before a start) looks only at the machines whose entries it removed", () => {
    const h = sweepHost();
    sweepMachinedRecords(h, "/run/machina", { removed: [], quick: true });
    expect(left(h)).toContain("dead");
    sweepMachinedRecords(h, "/run/machina", { removed: ["dead"], quick: true });
    expect(left(h)).not.toContain("dead");
    expect(left(h)).not.toContain("unit:machine-dead.scope");
    expect(left(h)).toContain("reused");
  });

  test("a machine between a reboot's two leaders (its registry lock held) keeps its record; with machined possible nothing is touched", () => {
    const h = sweepHost({ [machineLockPath("/run/machina", "dead")]: "" });
    expect(h.tryLock(machineLockPath("/run/machina", "dead"))).toBeDefined(); // held from here on
    sweepMachinedRecords(h, "/run/machina", { removed: ["dead"], quick: false });
    expect(left(h)).toContain("dead");
    const systemdHost = sweepHost({ "/run/systemd/system": { kind: "dir" }, "/usr/lib/systemd/systemd-machined": "" });
    sweepMachinedRecords(systemdHost, "/run/machina", { removed: [], quick: false });
    expect(left(systemdHost)).toContain("dead");
  });
});
