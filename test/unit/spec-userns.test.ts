/** User namespaces: range choice per mode, ownership (off/chown/map), the ops and records. FakeHost, no root. */
import { describe, expect, test } from "bun:test";
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { fsTypeOf, gatherUsernsFacts } from "../../src/host/userns-facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import type { Settings } from "../../src/settings/settings.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { MS } from "../../src/spec/mount-flags.ts";
import { siphash24 } from "../../src/spec/siphash.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { PICK_MAX, PICK_MIN, hashedRange } from "../../src/spec/userns.ts";
import { specRecords } from "../../src/spec/wire.ts";

const MOUNTINFO = [
  "20 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "21 20 0:30 / /srv/tmpfs rw shared:2 - tmpfs tmpfs rw",
  "22 20 0:31 / /srv/nfs rw shared:3 - nfs4 srv:/x rw",
  "31 20 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw",
  "32 20 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd",
].join("\n");

function fakeHost(root = "/srv/box", owner?: { uid: number; gid: number }, extra: Record<string, string | FakeNode> = {}) {
  const h = new FakeHost({
    files: {
      "/usr/lib/os-release": "ID=debian\nVERSION_ID=12\n",
      "/etc/passwd": "root:x:0:0::/root:/bin/sh\nbig:x:1048576:1048576::/:/bin/sh\n",
      "/etc/group": "root:x:0:\n",
      "/etc/resolv.conf": "nameserver 127.0.0.1\n",
      [`${root}/usr/bin/sh`]: "",
      [`${root}/etc/os-release`]: "ID=busybox\n",
      ...extra,
    },
    mountinfo: MOUNTINFO,
  });
  if (owner) h.owners.set(root, owner);
  return h;
}

function build(argv: string[], host = fakeHost(), patch: Partial<Settings> = {}): RunSpec {
  const parsed = parseNspawnCommandLine(argv, host.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const s = { ...parsed.settings, ...patch };
  const facts = gatherHostFacts(host, "/run/machina");
  const image = gatherImageFacts(host, s.directory!, facts.timezone);
  if (s.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(host, image.root, facts.stateDir);
  return buildSpec(s, image, facts, { prog: "machina-nspawn" });
}

const userRecords = (spec: RunSpec) =>
  specRecords(spec).filter(([n]) => ["uid_map", "gid_map", "cgroup_owner", "userns_lock", "chown_root", "idmap_root"].includes(n));

describe("siphash24 and nspawn's hashed range", () => {
  test("SipHash-2-4 reference vector (key 00..0f, empty message)", () => {
    const key = new Uint8Array(16).map((_, i) => i);
    expect(siphash24(new Uint8Array(0), key)).toBe(0x726fdb47dd0e0e31n);
    expect(
      siphash24(
        new Uint8Array(15).map((_, i) => i),
        key,
      ),
    ).toBe(0xa129ca6149be45e5n);
  });
  test("the same ranges systemd-nspawn 252 picked for machines bb2 and bb3 on this host", () => {
    expect(hashedRange("bb2")).toBe(435159040);
    expect(hashedRange("bb3")).toBe(246611968);
    for (const n of ["a", "debian", "x".repeat(64)]) {
      const b = hashedRange(n);
      expect(b % 65536).toBe(0);
      expect(b >= PICK_MIN && b < PICK_MAX).toBe(true);
    }
  });
  test("fsTypeOf picks the longest mount point prefix", () => {
    expect(fsTypeOf(MOUNTINFO, "/srv/box")).toBe("ext4");
    expect(fsTypeOf(MOUNTINFO, "/srv/tmpfs/x")).toBe("tmpfs");
    expect(fsTypeOf(MOUNTINFO, "/srv/nfsx")).toBe("ext4");
  });
});

describe("--private-users modes", () => {
  test("no: no user namespace, no records, mknod for /dev", () => {
    const s = build(["-D", "/srv/box", "/bin/true"]);
    expect(s.namespaces).not.toContain("user");
    expect(userRecords(s)).toEqual([]);
    expect(s.ops.some((o) => o.op === "mknod" && o.path === "/dev/null")).toBe(true);
  });

  test("BASE: map 0 BASE 65536, ownership off by default, cgroups chowned to BASE", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576", "/bin/true"]);
    expect(s.namespaces).toEqual(["mnt", "pid", "uts", "ipc", "cgroup", "user"]);
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "1048576", "65536"]],
      ["gid_map", ["0", "1048576", "65536"]],
      ["cgroup_owner", ["1048576", "1048576"]],
    ]);
  });

  test("BASE:N with map ownership on ext4: idmap_root", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576:1000", "--private-users-ownership=map", "/bin/true"]);
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "1048576", "1000"]],
      ["gid_map", ["0", "1048576", "1000"]],
      ["cgroup_owner", ["1048576", "1048576"]],
      ["idmap_root", ["1048576", "1000"]],
    ]);
  });

  test("map on a file system without ID-mapped mounts is refused; auto falls back to chown", () => {
    const host = fakeHost("/srv/nfs/box");
    expect(() => build(["-D", "/srv/nfs/box", "--private-users=1048576", "--private-users-ownership=map", "/bin/true"], host)).toThrow(
      /ID mapped mounts are apparently not available/,
    );
    const s = build(["-D", "/srv/nfs/box", "--private-users=1048576", "--private-users-ownership=auto", "/bin/true"], host);
    expect(userRecords(s).find(([n]) => n === "chown_root")).toEqual(["chown_root", ["1048576", "65536"]]);
  });

  test("chown needs a 65536-aligned range of 65536", () => {
    expect(() => build(["-D", "/srv/box", "--private-users=1048577", "--private-users-ownership=chown", "/bin/true"])).toThrow(/needs a range of 65536/);
  });

  test("a number is a base, 0 included (systemd-nspawn 252: --private-users=0 maps 0 0 65536)", () => {
    expect(userRecords(build(["-D", "/srv/box", "--private-users=0", "/bin/true"])).slice(0, 1)).toEqual([["uid_map", ["0", "0", "65536"]]]);
    expect(build(["-D", "/srv/box", "--private-users=no", "/bin/true"]).namespaces).not.toContain("user");
    expect(userRecords(build(["-D", "/srv/box", "--private-users=true", "/bin/true"])).slice(0, 1)).toEqual([["uid_map", ["0", "0", "65536"]]]);
  });

  test("identity: 0 0 65536, nothing remapped", () => {
    const s = build(["-D", "/srv/box", "--private-users=identity", "--private-users-ownership=auto", "/bin/true"]);
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "0", "65536"]],
      ["gid_map", ["0", "0", "65536"]],
      ["cgroup_owner", ["0", "0"]],
    ]);
  });

  test("yes: the range from the root directory's owner; mismatched uid/gid base refused", () => {
    const s = build(["-D", "/srv/box", "--private-users=yes", "/bin/true"], fakeHost("/srv/box", { uid: 0x20000, gid: 0x20000 }));
    expect(userRecords(s).slice(0, 1)).toEqual([["uid_map", ["0", "131072", "65536"]]]);
    expect(() => build(["-D", "/srv/box", "--private-users=yes", "/bin/true"], fakeHost("/srv/box", { uid: 0x20000, gid: 0x30000 }))).toThrow(
      /UID and GID base of \/srv\/box don't match/,
    );
  });

  test("-U on a tree owned by 0: the hashed range, map ownership, a range lock in the state dir", () => {
    const s = build(["-D", "/srv/box", "-M", "bb2", "-U", "/bin/true"]);
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "435159040", "65536"]],
      ["gid_map", ["0", "435159040", "65536"]],
      ["cgroup_owner", ["435159040", "435159040"]],
      ["userns_lock", ["/run/machina/userns/435159040"]],
      ["idmap_root", ["435159040", "65536"]],
    ]);
  });

  test("pick keeps the range a shifted tree is in (chown = no-op marker) when it is free", () => {
    const s = build(["-D", "/srv/box", "-M", "bb2", "--private-users=pick", "/bin/true"], fakeHost("/srv/box", { uid: 0x00090000, gid: 0x00090000 }));
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "589824", "65536"]],
      ["gid_map", ["0", "589824", "65536"]],
      ["cgroup_owner", ["589824", "589824"]],
      ["userns_lock", ["/run/machina/userns/589824"]],
      ["chown_root", ["589824", "65536"]],
    ]);
  });

  test("pick skips ranges whose lock is held and ranges the host's passwd uses", () => {
    const host = fakeHost("/srv/box", { uid: 0x00100000, gid: 0x00100000 }, { "/run/machina/userns/435159040": "other\n" });
    host.heldLocks.add("/run/machina/userns/435159040");
    // 0x100000 = 1048576 is in the host's passwd ("big"): next is the hashed 435159040 (held), then others
    const s = build(["-D", "/srv/box", "-M", "bb2", "--private-users=pick", "/bin/true"], host);
    const base = Number(userRecords(s)[0]![1][1]);
    expect([1048576, 435159040]).not.toContain(base);
    expect(base % 65536).toBe(0);
    expect(userRecords(s).find(([n]) => n === "chown_root")).toEqual(["chown_root", [String(base), "65536"]]);
  });

  test("-U with map ownership on an already shifted tree is refused (as nspawn)", () => {
    expect(() => build(["-D", "/srv/box", "-U", "--private-users-ownership=map", "/bin/true"], fakeHost("/srv/box", { uid: 0x90000, gid: 0x90000 }))).toThrow(
      /UID base of \/srv\/box is not zero/,
    );
  });
});

describe("setup ops in a user namespace", () => {
  test("uid=/gid= of tmpfs and devpts become host ids (the setup runs in the host's user namespace); ids outside the map are refused", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576", "--tmpfs=/mnt:mode=0700,uid=7,gid=8", "/bin/true"]);
    expect(s.ops.find((o) => o.op === "mount" && o.fstype === "devpts")).toMatchObject({ data: "newinstance,ptmxmode=0666,mode=620,gid=1048581" });
    expect(s.ops.find((o) => o.op === "mount" && o.target === "/mnt")).toMatchObject({ data: "mode=0700,uid=1048583,gid=1048584" });
    expect(s.ops.find((o) => o.op === "mount" && o.target === "/tmp")).toMatchObject({ data: "mode=1777,size=10%,nr_inodes=400k" });
    expect(() => build(["-D", "/srv/box", "--private-users=1048576", "--tmpfs=/mnt:uid=70000", "/bin/true"])).toThrow(
      /uid=70000 of the tmpfs on \/mnt is outside the container's user namespace/,
    );
    // without a user namespace nothing is translated
    expect(build(["-D", "/srv/box", "--tmpfs=/mnt:uid=7", "/bin/true"]).ops.find((o) => o.op === "mount" && o.target === "/mnt")).toMatchObject({
      data: "uid=7",
    });
  });

  test("host device nodes are bound, the block inaccessible node is left out, sysfs comes from the supervisor", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576", "--private-users-ownership=map", "/bin/true"]);
    const ops = s.ops;
    expect(ops.filter((o) => o.op === "mknod" && o.path.startsWith("/dev/"))).toEqual([]);
    expect(ops.find((o) => o.op === "mount" && o.target === "/dev/null")).toEqual({
      op: "mount",
      source: "/dev/null",
      target: "/dev/null",
      fstype: "",
      flags: MS.BIND,
      data: "",
      create: "file",
    });
    expect(ops.some((o) => o.op === "mknod" && o.path === "/run/host/inaccessible/blk")).toBe(false);
    expect(ops.some((o) => o.op === "mknod" && o.path === "/run/host/inaccessible/chr")).toBe(true);
    expect(ops.find((o) => o.op === "fsmount")).toEqual({
      op: "fsmount",
      fstype: "sysfs",
      target: "/sys",
      flags: MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
      data: "source=sysfs",
    });
    expect(ops.some((o) => o.op === "mount" && o.fstype === "sysfs")).toBe(false);
    expect(specRecords(s).find(([n]) => n === "fsmount")).toEqual([
      "fsmount",
      ["sysfs", "/sys", String(MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC), "source=sysfs"],
    ]);
  });

  test("with a private network sysfs is mounted by the child itself", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576", "--private-network", "/bin/true"]);
    expect(s.ops.some((o) => o.op === "fsmount")).toBe(false);
    expect(s.ops.some((o) => o.op === "mount" && o.fstype === "sysfs")).toBe(true);
    expect(s.ops.find((o) => o.op === "mount" && o.target === "/dev/net/tun")).toBeDefined();
  });

  test("a tree the container's root does not own: /etc files are bound read-only, not copied", () => {
    const s = build(["-D", "/srv/box", "--private-users=1048576", "--resolv-conf=copy-host", "/bin/true"]);
    expect(s.ops.some((o) => o.op === "copy" && o.path === "/etc/resolv.conf")).toBe(false);
    expect(s.ops.find((o) => o.op === "mount" && o.target === "/etc/resolv.conf")).toEqual({
      op: "mount",
      source: "/etc/resolv.conf",
      target: "/etc/resolv.conf",
      fstype: "",
      flags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV,
      data: "",
      create: "optional",
    });
    const mapped = build(["-D", "/srv/box", "--private-users=1048576", "--private-users-ownership=map", "--resolv-conf=copy-host", "/bin/true"]);
    expect(mapped.ops.some((o) => o.op === "copy" && o.path === "/etc/resolv.conf")).toBe(true);
  });
});

describe("machina-oci's exact maps (linux.uidMappings/gidMappings)", () => {
  const maps = (uid: [number, number, number][], gid: [number, number, number][]): Partial<Settings> => ({
    privateUsers: {
      mode: "maps",
      uid: uid.map(([inside, outside, count]) => ({ inside, outside, count })),
      gid: gid.map(([inside, outside, count]) => ({ inside, outside, count })),
    },
  });

  test("uid and gid maps differ and have several lines: written as given; cgroups owned by the container's root; no chown, idmap or lock", () => {
    const s = build(
      ["-D", "/srv/box", "/bin/true"],
      fakeHost(),
      maps(
        [
          [0, 1000, 2000],
          [5000, 300000, 10],
        ],
        [[0, 1001, 3000]],
      ),
    );
    expect(s.namespaces).toContain("user");
    expect(userRecords(s)).toEqual([
      ["uid_map", ["0", "1000", "2000"]],
      ["uid_map", ["5000", "300000", "10"]],
      ["gid_map", ["0", "1001", "3000"]],
      ["cgroup_owner", ["1000", "1001"]],
    ]);
  });

  test("ownership settings are not applied to exact maps (runc changes no ownership)", () => {
    const s = build(["-D", "/srv/box", "--private-users-ownership=chown", "/bin/true"], fakeHost(), maps([[0, 1048576, 65536]], [[0, 1048576, 65536]]));
    expect(userRecords(s).map(([n]) => n)).toEqual(["uid_map", "gid_map", "cgroup_owner"]);
  });

  test("a tree the container's root does not own: /etc files are bound read-only; owned by it: copied", () => {
    const notOwned = build(["-D", "/srv/box", "--resolv-conf=copy-host", "/bin/true"], fakeHost(), maps([[0, 1000, 2000]], [[0, 1000, 3000]]));
    expect(notOwned.ops.some((o) => o.op === "copy" && o.path === "/etc/resolv.conf")).toBe(false);
    const owned = build(
      ["-D", "/srv/box", "--resolv-conf=copy-host", "/bin/true"],
      fakeHost("/srv/box", { uid: 1000, gid: 2000 }),
      maps([[0, 1000, 2000]], [[0, 2000, 3000]]),
    );
    expect(owned.ops.some((o) => o.op === "copy" && o.path === "/etc/resolv.conf")).toBe(true);
  });

  test("maps without the container's root are refused", () => {
    expect(() => build(["-D", "/srv/box", "/bin/true"], fakeHost(), maps([[1, 1000, 10]], [[0, 1000, 10]]))).toThrow("maps no root");
  });
});
