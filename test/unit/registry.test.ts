import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { readState, sweepStale } from "../../src/machine/registry.ts";

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
