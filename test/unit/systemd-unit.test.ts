/** machina-nspawn@.service and the machined registration call (src/machine/systemd.ts). Pure. */
import { expect, test } from "bun:test";
import type { z } from "zod";
import type * as S from "../../src/api/schemas.ts";
import type { MachineStatus, MachineSummary } from "../../src/machine/machines.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { disableMachine, enableMachine, listEnabled } from "../../src/machine/enable.ts";
import { registerMachineArgs, systemdAvailable, unitName, unitTemplate } from "../../src/machine/systemd.ts";
import { managedNspawnArgs } from "../../src/settings/managed.ts";

test("the unit template has systemd-nspawn@.service's settings (-U and --network-veth included)", () => {
  const t = unitTemplate("/usr/local/bin");
  const lines = t.split("\n");
  expect(lines).toContain(
    "ExecStart=/usr/local/bin/machina-nspawn --quiet --keep-unit --boot --link-journal=try-guest --network-veth -U --settings=override --machine=%i",
  );
  expect(t).not.toContain("ExecStartPost"); // machina-nspawn registers itself (on_leader)
  for (const l of [
    "Type=notify",
    "KillMode=mixed",
    "Delegate=yes",
    "Slice=machine.slice",
    "RestartForceExitStatus=133",
    "SuccessExitStatus=133",
    "WantedBy=machines.target",
    "PartOf=machines.target",
    "Before=machines.target",
    "TasksMax=16384",
    "DevicePolicy=closed",
  ])
    expect(lines).toContain(l);
  expect(t).not.toContain("WatchdogSec");
  expect(unitName("web")).toBe("machina-nspawn@web.service");
});

test("machinactl start and machinad use the unit's flags (one list), without --keep-unit", () => {
  expect(managedNspawnArgs("web")).toEqual(["--quiet", "--boot", "--link-journal=try-guest", "--network-veth", "-U", "--settings=override", "--machine=web"]);
});

test("RegisterMachine arguments for busctl", () => {
  expect(registerMachineArgs({ name: "web", uuid: "02411d8b-2ce5-f382-79ce-406ef73b8756", leader: 42, root: "/var/lib/machines/web" })).toEqual([
    "busctl",
    "call",
    "--quiet",
    "org.freedesktop.machine1",
    "/org/freedesktop/machine1",
    "org.freedesktop.machine1.Manager",
    "RegisterMachine",
    "sayssus",
    "web",
    "16",
    "2",
    "65",
    "29",
    "139",
    "44",
    "229",
    "243",
    "130",
    "121",
    "206",
    "64",
    "110",
    "247",
    "59",
    "135",
    "86",
    "machina-nspawn",
    "container",
    "42",
    "/var/lib/machines/web",
  ]);
  expect(registerMachineArgs({ name: "x", uuid: "", leader: 1, root: "/" })).toContain("0");
});

test("systemd detection can be forced", () => {
  expect(systemdAvailable(new FakeHost(), { MACHINA_SYSTEMD: "0" })).toBe(false);
  expect(systemdAvailable(new FakeHost(), { MACHINA_SYSTEMD: "1" })).toBe(true);
});

test("the wire schemas carry the core's types (compile-time)", () => {
  const status = (s: MachineStatus): z.input<typeof S.MachineStatus> => s;
  const summary = (s: MachineSummary): z.input<typeof S.MachineSummary> => s;
  expect(typeof status).toBe("function");
  expect(typeof summary).toBe("function");
});

test("enable/disable without systemd: a symlink to the template (written when missing) in the enable directory", async () => {
  const host = new FakeHost({ files: { "/pool/web/usr": { kind: "dir" } } });
  const env = { MACHINA_SYSTEMD: "0", MACHINA_ENABLE_DIR: "/etc/w", MACHINA_UNIT_DIR: "/u" };
  const pool = ["/pool"];
  const link = "/etc/w/machina-nspawn@web.service";
  // no template installed in /u: machina's own copy next to the enable directory
  expect(await enableMachine(host, env, pool, "web")).toEqual({ changes: [{ type: "symlink", path: link, source: "/etc/machina-nspawn@.service" }] });
  expect(host.readlink(link)).toBe("/etc/machina-nspawn@.service");
  expect(host.readFile(link)).toContain("ExecStart="); // the link does not dangle
  expect(host.lstat("/u")).toBeUndefined();
  expect(await enableMachine(host, env, pool, "web")).toEqual({ changes: [] });
  host.add("/etc/w/machina-nspawn@bad name.service", { kind: "symlink", target: "/u" });
  expect(listEnabled(host, env)).toEqual(["web"]);
  // an installed template is linked to
  host.add("/u/machina-nspawn@.service", "[Unit]\n");
  expect(await enableMachine(host, env, pool, "web")).toEqual({ changes: [{ type: "symlink", path: link, source: "/u/machina-nspawn@.service" }] });
  expect(await disableMachine(host, env, "web")).toEqual({ changes: [{ type: "unlink", path: link, source: "" }] });
  expect(await disableMachine(host, env, "web")).toEqual({ changes: [] });
  expect(host.lstat("/etc/w")).toBe("dir"); // another link is still there
  host.unlink("/etc/w/machina-nspawn@bad name.service");
  await enableMachine(host, env, pool, "web");
  await disableMachine(host, env, "web");
  expect(host.lstat("/etc/w")).toBeUndefined(); // empty: removed with the last link
  expect(host.asyncRuns).toEqual([]);
});

test("enable of an image that is not in the pool: one line, nothing created", async () => {
  const host = new FakeHost({ files: { "/pool/web/usr": { kind: "dir" } } });
  const env = { MACHINA_SYSTEMD: "0", MACHINA_ENABLE_DIR: "/etc/w", MACHINA_UNIT_DIR: "/u" };
  await expect(enableMachine(host, env, ["/pool"], "nope")).rejects.toThrow('no image "nope" in /pool: only an image of the pool can be enabled');
  expect(host.lstat("/etc/w")).toBeUndefined();
  expect(host.lstat("/u")).toBeUndefined();
  // on a systemd host too: systemctl is not asked
  const sd = new FakeHost({ files: { "/u/machina-nspawn@.service": "[Unit]\n" } });
  await expect(enableMachine(sd, { ...env, MACHINA_SYSTEMD: "1" }, ["/pool"], "nope")).rejects.toThrow('no image "nope"');
  expect(sd.asyncRuns).toEqual([]);
});
