/**
 * The planning half of machinactl copy-to / copy-from (src/machine/copy.ts): paths, the enter
 * spec's records, owner maps for user-namespaced containers. No root, FakeHost.
 */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { copyPaths, copySpec, idMapArgs, normalizeAbsolute, parseIdMap, type CopyRequest } from "../../src/machine/copy.ts";
import { encodeEnterSpec } from "../../src/machine/enter.ts";
import type { Machine } from "../../src/machine/machines.ts";

const machine = { name: "web", leader: 200, root: "/srv/web" } as Machine;
const req = (direction: "to" | "from", paths: [string] | [string, string], force = false): CopyRequest => ({ direction, paths, force, cwd: "/home/admin" });

function host(uidMap = "         0          0 4294967295\n", sharedMnt = false) {
  return new FakeHost({
    files: {
      "/proc/self/ns/mnt": { kind: "symlink", target: "mnt:[1]" },
      "/proc/self/ns/pid": { kind: "symlink", target: "pid:[2]" },
      "/proc/200/ns/mnt": { kind: "symlink", target: sharedMnt ? "mnt:[1]" : "mnt:[9]" },
      "/proc/200/ns/pid": { kind: "symlink", target: "pid:[8]" },
      "/proc/200/uid_map": uidMap,
      "/proc/200/gid_map": uidMap,
    },
  });
}

describe("paths", () => {
  test("normalize lexically", () => {
    expect(normalizeAbsolute("a/./b//c/../d/")).toBe("/a/b/d");
    expect(normalizeAbsolute("/../../etc")).toBe("/etc");
  });

  test("copy-to SRC [DST]: host first; one path is both and must be absolute", () => {
    expect(copyPaths(req("to", ["/etc/hosts"]))).toEqual({ hostPath: "/etc/hosts", containerPath: "/etc/hosts" });
    expect(copyPaths(req("to", ["notes.txt", "srv/notes"]))).toEqual({ hostPath: "/home/admin/notes.txt", containerPath: "/srv/notes" });
    expect(() => copyPaths(req("to", ["notes.txt"]))).toThrow('path "notes.txt" is not absolute');
  });

  test("copy-from SRC [DST]: container first; relative container paths are relative to its root", () => {
    expect(copyPaths(req("from", ["var/log/x", "out"]))).toEqual({ hostPath: "/home/admin/out", containerPath: "/var/log/x" });
    expect(copyPaths(req("from", ["/../../etc/shadow", "/tmp/s"])).containerPath).toBe("/etc/shadow");
  });

  test("neither root may be the target or the source", () => {
    expect(() => copyPaths(req("from", ["/", "/tmp/all"]))).toThrow("container's root");
    expect(() => copyPaths(req("to", ["/tmp/x", "/.."]))).toThrow("container's root");
    expect(() => copyPaths(req("from", ["/etc", "/"]))).toThrow("host's root");
    expect(() => copyPaths(req("to", ["", "/x"]))).toThrow("empty path");
  });
});

describe("owner maps", () => {
  test("the identity map (no user namespace) is no map", () => {
    expect(parseIdMap("         0          0 4294967295\n")).toBeUndefined();
    expect(parseIdMap("")).toBeUndefined();
    expect(parseIdMap("0 1441792 65536\n")).toEqual([{ inside: 0, outside: 1441792, count: 65536 }]);
  });

  test("copy-to shifts into the range (nobody inside for unmapped ids); copy-from shifts back (65534 for outside ids)", () => {
    const r = parseIdMap("0 1441792 65536\n")!;
    expect(idMapArgs(r, "to")).toEqual([String(1441792 + 65534), "0", "1441792", "65536"]);
    expect(idMapArgs(r, "from")).toEqual(["65534", "1441792", "0", "65536"]);
    // a range without 65534: the container's root takes unmapped ids
    expect(idMapArgs([{ inside: 0, outside: 500000, count: 1000 }], "to")[0]).toBe("500000");
    // several ranges (--bind-user adds lines)
    const multi = parseIdMap("0 1441792 60514\n60514 1000 1\n60515 1502307 5021\n")!;
    expect(idMapArgs(multi, "from")).toEqual(["65534", "1441792", "0", "60514", "1000", "60514", "1", "1502307", "60515", "5021"]);
  });
});

describe("the enter spec", () => {
  test("copy-to into a container with its own mount namespace, no user namespace", () => {
    expect(copySpec(host(), machine, req("to", ["/srv/data", "/data"], true))).toEqual([
      ["prog", ["machinactl"]],
      ["target", ["200", "123456"]],
      ["namespaces", ["mnt"]],
      ["copy", ["to", "/srv/data", "/data", "1"]],
    ]);
  });

  test("copy-from out of a user-namespaced container carries both maps", () => {
    const spec = copySpec(host("0 1441792 65536\n"), machine, req("from", ["/etc/os-release", "/tmp/os"]));
    expect(spec.slice(3)).toEqual([
      ["copy", ["from", "/tmp/os", "/etc/os-release", "0"]],
      ["copy_uids", ["65534", "1441792", "0", "65536"]],
      ["copy_gids", ["65534", "1441792", "0", "65536"]],
    ]);
    const bytes = new TextDecoder().decode(encodeEnterSpec(spec));
    expect(bytes.startsWith("MACHINA-ENTER\x001\x00prog\x001\x00machinactl\x00")).toBe(true);
    expect(bytes.endsWith("end\x000\x00")).toBe(true);
  });

  test("a container sharing the host's mount namespace: nothing to enter, the root is still the leader's", () => {
    expect(copySpec(host(undefined, true), machine, req("to", ["/a"]))[2]).toEqual(["namespaces", []]);
  });
});
