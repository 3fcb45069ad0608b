import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { readState, removeAbandonedEntry, scanEntry, sweepStale } from "../../src/machine/registry.ts";

const state = (name: string) =>
  JSON.stringify({
    leader: 20,
    supervisor: 10,
    name,
    root: `/srv/${name}`,
    cgroups: [`/sys/fs/cgroup/unified/machine.slice/machine-${name}.scope`, `/sys/fs/cgroup/systemd/machine.slice/machine-${name}.scope`],
  });

function host() {
  const h = new FakeHost({
    files: {
      "/run/m/machines/dead/lock": "",
      "/run/m/machines/dead/state.json": state("dead"),
      "/run/m/machines/live/lock": "",
      "/run/m/machines/live/state.json": state("live"),
      "/run/m/machines/starting/lock": "",
      "/sys/fs/cgroup/unified/machine.slice/machine-dead.scope/init.scope": { kind: "dir" },
      "/sys/fs/cgroup/systemd/machine.slice/machine-dead.scope": { kind: "dir" },
      "/sys/fs/cgroup/unified/machine.slice/machine-live.scope": { kind: "dir" },
    },
  });
  h.heldLocks.add("/run/m/machines/live/lock");
  h.mtimes.set("/run/m/machines/starting", 1_000_000);
  return h;
}

describe("registry", () => {
  test("readState validates the file", () => {
    const h = host();
    expect(readState(h, "/run/m", "dead")).toMatchObject({ leader: 20, supervisor: 10, name: "dead" });
    h.add("/run/m/machines/bad/state.json", "{not json");
    expect(readState(h, "/run/m", "bad")).toBeUndefined();
    h.add("/run/m/machines/bad/state.json", '{"leader":"x"}');
    expect(readState(h, "/run/m", "bad")).toBeUndefined();
  });

  test("sweepStale removes entries whose lock is free, with their cgroups, and nothing else", () => {
    const h = host();
    expect(sweepStale(h, "/run/m", 1_000_500)).toEqual(["dead"]);
    expect(h.lstat("/run/m/machines/dead")).toBeUndefined();
    expect(h.lstat("/sys/fs/cgroup/unified/machine.slice/machine-dead.scope")).toBeUndefined();
    expect(h.lstat("/sys/fs/cgroup/systemd/machine.slice/machine-dead.scope")).toBeUndefined();
    expect(h.lstat("/sys/fs/cgroup/unified/machine.slice")).toBe("dir");
    // a running machine keeps everything
    expect(h.lstat("/run/m/machines/live/state.json")).toBe("file");
    expect(h.lstat("/sys/fs/cgroup/unified/machine.slice/machine-live.scope")).toBe("dir");
    // an entry without state.json is given time to finish starting
    expect(h.lstat("/run/m/machines/starting/lock")).toBe("file");
    expect(h.heldLocks.has("/run/m/machines/dead/lock")).toBe(false);
  });

  test("an entry that never got a state.json is removed once it is old", () => {
    const h = host();
    expect(sweepStale(h, "/run/m", 1_000_000 + 60_000).sort()).toEqual(["dead", "starting"]);
  });
});

describe("removeAbandonedEntry (a cancelled start's supervisor was killed)", () => {
  const dir = "/run/m/machines/m1";
  const cg = "/sys/fs/cgroup/unified/machine.slice/machine-m1.scope";
  const sleeps: number[] = [];
  const sleep = (ms: number) => void sleeps.push(ms);

  test("an entry made but not locked yet: locked by us, removed", () => {
    const h = new FakeHost({ files: { [dir]: { kind: "dir" } } });
    removeAbandonedEntry(h, dir, [cg], sleep);
    expect(h.lstat(dir)).toBeUndefined();
    expect(h.heldLocks.size + h.fileLocks.size).toBe(0);
  });

  test("what is left in its cgroups is killed, then they and the entry go", () => {
    const h = new FakeHost({
      files: { [`${dir}/lock`]: "", [`${dir}/state.json`]: state("m1"), [`${cg}/cgroup.procs`]: "41\n", [`${cg}/payload/cgroup.procs`]: "42\n" },
    });
    h.onKill = (pid) => {
      h.unlink(pid === 41 ? `${cg}/cgroup.procs` : `${cg}/payload/cgroup.procs`);
    };
    removeAbandonedEntry(h, dir, [cg], sleep);
    expect(h.kills.sort()).toEqual([
      [41, 9],
      [42, 9],
    ]);
    expect(h.lstat(cg)).toBeUndefined();
    expect(h.lstat(dir)).toBeUndefined();
  });

  test("a lock held longer than its children take to die is another start's: nothing touched", () => {
    const h = new FakeHost({ files: { [`${dir}/lock`]: "", [`${dir}/state.json`]: state("m1"), [cg]: { kind: "dir" } } });
    h.heldLocks.add(`${dir}/lock`);
    sleeps.length = 0;
    removeAbandonedEntry(h, dir, [cg], sleep);
    expect(sleeps.length).toBe(300);
    expect(h.lstat(`${dir}/state.json`)).toBe("file");
    expect(h.lstat(cg)).toBe("dir");
  });

  test("no entry: nothing to do (its cgroups come after its lock)", () => {
    const h = new FakeHost({ files: { [cg]: { kind: "dir" } } });
    removeAbandonedEntry(h, dir, [cg], sleep);
    expect(h.lstat(cg)).toBe("dir");
  });

  test("sweepStale removes an entry directory without a lock once it is old, and only if empty", () => {
    const h = new FakeHost({ files: { "/run/m/machines/young": { kind: "dir" }, "/run/m/machines/old": { kind: "dir" }, "/run/m/machines/other/x": "" } });
    h.mtimes.set("/run/m/machines/young", 1_000_000);
    h.mtimes.set("/run/m/machines/old", 1_000_000 - 60_000);
    h.mtimes.set("/run/m/machines/other", 1_000_000 - 60_000);
    sweepStale(h, "/run/m", 1_000_000);
    expect(h.lstat("/run/m/machines/young")).toBe("dir");
    expect(h.lstat("/run/m/machines/old")).toBeUndefined();
    expect(h.lstat("/run/m/machines/other/x")).toBe("file");
  });
});

describe("scanEntry: one entry by name", () => {
  test("a name that is no machine name is never a path: nothing outside the registry is read or removed", () => {
    const h = new FakeHost({ files: { "/run/m/lock": "", "/run/m/state.json": "{}", "/run/m/machines/web/lock": "" } });
    for (const name of ["..", ".", "", "../m", "web/../.."]) expect(scanEntry(h, "/run/m", name, 1e15)).toBeUndefined();
    expect(h.lstat("/run/m/lock")).toBe("file");
    expect(h.lstat("/run/m/state.json")).toBe("file");
    // a real entry whose lock nobody holds (its supervisor is gone): removed
    expect(scanEntry(h, "/run/m", "web", 1e15)).toBeUndefined();
    expect(h.lstat("/run/m/machines/web/lock")).toBeUndefined();
  });
});
