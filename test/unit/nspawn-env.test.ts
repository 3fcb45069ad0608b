/**
 * systemd-nspawn's environment variables (src/settings/nspawn-env.ts) and what they change in
 * the plan. The side-by-side run is in test/integration/nspawn-compare.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { parseNspawnEnvironment } from "../../src/settings/nspawn-env.ts";
import { buildSpec } from "../../src/spec/build.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";

function spec(argv: string[], env: Record<string, string>): RunSpec {
  const host = new FakeHost({
    files: { "/usr/lib/os-release": "ID=debian\n", "/srv/box/usr/bin/sh": "", "/srv/box/etc/os-release": "ID=x\n" },
    env,
  });
  const parsed = parseNspawnCommandLine(argv, host.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const facts = gatherHostFacts(host, "/run/machina");
  return buildSpec(parsed.settings, gatherImageFacts(host, "/srv/box", facts.timezone), facts, { prog: "machina-nspawn" });
}
const targets = (s: RunSpec) => s.ops.flatMap((o) => ("target" in o ? [`${o.op} ${o.target}`] : []));

describe("nspawn's environment variables", () => {
  test("defaults when unset", () => {
    expect(parseNspawnEnvironment({})).toEqual({
      apiVfs: "ro",
      tmpfsTmp: true,
      shareIpc: false,
      shareUts: false,
      suppressSync: undefined,
      containerService: undefined,
      lockImage: true,
    });
  });

  test("values, as nspawn parses them", () => {
    expect(parseNspawnEnvironment({ SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network" }).apiVfs).toBe("network");
    expect(parseNspawnEnvironment({ SYSTEMD_NSPAWN_API_VFS_WRITABLE: "yes" }).apiVfs).toBe("rw");
    expect(parseNspawnEnvironment({ SYSTEMD_NSPAWN_API_VFS_WRITABLE: "off" }).apiVfs).toBe("ro");
    expect(parseNspawnEnvironment({ SYSTEMD_NSPAWN_SHARE_SYSTEM: "1", SYSTEMD_NSPAWN_SHARE_NS_PID: "0" })).toMatchObject({ shareIpc: true, shareUts: true });
    expect(parseNspawnEnvironment({ SYSTEMD_SUPPRESS_SYNC: "junk" }).suppressSync).toBeUndefined(); // ignored, as nspawn
    expect(parseNspawnEnvironment({ SYSTEMD_NSPAWN_USE_CGNS: "1", SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" }).apiVfs).toBe("ro");
  });

  test.each([
    [{ SYSTEMD_NSPAWN_API_VFS_WRITABLE: "maybe" }, "$SYSTEMD_NSPAWN_API_VFS_WRITABLE"],
    [{ SYSTEMD_NSPAWN_TMPFS_TMP: "2" }, "$SYSTEMD_NSPAWN_TMPFS_TMP"],
    [{ SYSTEMD_NSPAWN_SHARE_NS_PID: "1" }, "own pid namespace"],
    [{ SYSTEMD_NSPAWN_SHARE_SYSTEM: "yes" }, "$SYSTEMD_NSPAWN_SHARE_SYSTEM=yes is not supported"],
    [{ SYSTEMD_NSPAWN_USE_CGNS: "0" }, "cgroup namespace"],
    [{ SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "0" }, "cgroup2"],
    [{ SYSTEMD_NSPAWN_CONTAINER_SERVICE: "a b" }, "$SYSTEMD_NSPAWN_CONTAINER_SERVICE"],
  ])("refuses %p", (env, message) => {
    expect(() => parseNspawnEnvironment(env)).toThrow(message);
  });

  test("the plan: writable API file systems, /proc/sys/net, no /tmp tmpfs, shared IPC/UTS, suppress-sync", () => {
    const base = spec(["-D", "/srv/box", "x"], {});
    const rw = spec(["-D", "/srv/box", "x"], { SYSTEMD_NSPAWN_API_VFS_WRITABLE: "1" });
    expect(targets(base)).toContain("rebind /proc/sys");
    expect(targets(rw)).not.toContain("rebind /proc/sys");
    expect(rw.ops.find((o) => o.op === "mount" && o.target === "/sys")).toMatchObject({ flags: 2 | 4 | 8 });
    expect(targets(spec(["-D", "/srv/box", "x"], { SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network" }))).toContain("rebind /proc/sys/net");
    expect(targets(base)).toContain("mount /tmp");
    expect(targets(spec(["-D", "/srv/box", "x"], { SYSTEMD_NSPAWN_TMPFS_TMP: "no" }))).not.toContain("mount /tmp");
    const shared = spec(["-D", "/srv/box", "x"], { SYSTEMD_NSPAWN_SHARE_NS_UTS: "1", SYSTEMD_NSPAWN_SHARE_NS_IPC: "1" });
    expect(shared.namespaces).toEqual(["mnt", "pid", "cgroup"]);
    expect(shared.hostname).toBeUndefined();
    expect(specRecords(shared).some(([name]) => name === "hostname")).toBe(false);
    expect(spec(["-D", "/srv/box", "x"], { SYSTEMD_SUPPRESS_SYNC: "1" }).seccomp).not.toEqual(base.seccomp);
    // the command line wins over the environment
    expect(spec(["-D", "/srv/box", "--suppress-sync=no", "x"], { SYSTEMD_SUPPRESS_SYNC: "1" }).seccomp).toEqual(base.seccomp);
  });

  test("-U refuses read-write API file systems, and 'network' without --private-network (nspawn's messages)", () => {
    expect(() => spec(["-D", "/srv/box", "-U", "x"], { SYSTEMD_NSPAWN_API_VFS_WRITABLE: "yes" })).toThrow(
      "Cannot combine --private-users with read-write mounts",
    );
    expect(() => spec(["-D", "/srv/box", "-U", "x"], { SYSTEMD_NSPAWN_API_VFS_WRITABLE: "network" })).toThrow("requires --private-network");
  });
});
