/**
 * The rest of issue 3's user-namespace work: PrivateUsers=pick in files, --bind …:idmap /
 * :rootidmap, --bind-user, --load-credential from sockets. Exact records, FakeHost, no root.
 */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { gatherUsernsFacts } from "../../src/host/userns-facts.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { MS } from "../../src/spec/mount-flags.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";
import { mergeSettings } from "../../src/settings/merge.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import type { Settings } from "../../src/settings/settings.ts";

const F = "/etc/systemd/nspawn/box.nspawn";

function cli(...argv: string[]): Settings {
  const r = parseNspawnCommandLine(argv, {}, "/");
  if (r.action !== "run") throw new Error("not a run");
  return r.settings;
}

describe("PrivateUsers=pick in a .nspawn file", () => {
  test("implies PrivateUsersOwnership=auto (nspawn's loader), from the PrivateUsers= line", () => {
    const f = parseNspawnFile("[Exec]\n\nPrivateUsers=pick\n", F, true);
    expect(f.values.privateUsers).toEqual({ mode: "pick" });
    expect(f.values.privateUsersOwnership).toBe("auto");
    expect(f.provenance.get("privateUsersOwnership")).toMatchObject({ kind: "file", file: F, line: 3 });
  });
  test("an explicit PrivateUsersOwnership= wins, wherever it is in the file", () => {
    expect(parseNspawnFile("[Files]\nPrivateUsersOwnership=off\n[Exec]\nPrivateUsers=pick\n", F, true).values.privateUsersOwnership).toBe("off");
    expect(parseNspawnFile("[Exec]\nPrivateUsers=pick\n[Files]\nPrivateUsersChown=yes\n", F, true).values.privateUsersOwnership).toBe("chown");
  });
  test("other modes imply nothing", () => {
    for (const v of ["yes", "no", "identity", "65536"])
      expect(parseNspawnFile(`[Exec]\nPrivateUsers=${v}\n`, F, true).values.privateUsersOwnership).toBeUndefined();
  });
  test("file PrivateUsers=pick and command line -U give the same settings", () => {
    const fromFile = mergeSettings(cli("-D", "/m/box"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "yes");
    const fromCli = cli("-D", "/m/box", "-U");
    expect([fromFile.privateUsers, fromFile.privateUsersOwnership]).toEqual([fromCli.privateUsers, fromCli.privateUsersOwnership]);
  });
  test("the command line masks the file's user namespace settings as a group", () => {
    const m = mergeSettings(cli("-D", "/m/box", "--private-users-ownership=chown"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "yes");
    expect([m.privateUsers, m.privateUsersOwnership]).toEqual([{ mode: "no" }, "chown"]);
    const o = mergeSettings(cli("-D", "/m/box", "--private-users=no"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "override");
    expect([o.privateUsers, o.privateUsersOwnership]).toEqual([{ mode: "pick" }, "auto"]);
  });
  test("untrusted: ignored with a warning, nothing implied", () => {
    const f = parseNspawnFile("[Exec]\nPrivateUsers=pick\n", "/var/lib/machines/box.nspawn", false);
    expect(f.values.privateUsers).toBeUndefined();
    expect(f.values.privateUsersOwnership).toBeUndefined();
    expect(f.warnings.join("\n")).toContain("PrivateUsers");
  });
});

const MOUNTINFO = [
  "20 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "31 20 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw",
].join("\n");

function fakeHost(extra: Record<string, string> = {}) {
  return new FakeHost({
    files: {
      "/usr/lib/os-release": "ID=debian\nVERSION_ID=12\n",
      "/etc/passwd": "root:x:0:0::/root:/bin/sh\n",
      "/etc/group": "root:x:0:\n",
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/os-release": "ID=busybox\n",
      ...extra,
    },
    mountinfo: MOUNTINFO,
  });
}

function build(argv: string[], host = fakeHost()): RunSpec {
  const parsed = parseNspawnCommandLine(argv, host.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const s = parsed.settings;
  const facts = gatherHostFacts(host, "/run/machina");
  const image = gatherImageFacts(host, s.directory!, facts.timezone);
  if (s.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(host, image.root, facts.stateDir);
  return buildSpec(s, image, facts, { prog: "machina-nspawn" });
}
const records = (spec: RunSpec, name: string) =>
  specRecords(spec)
    .filter(([n]) => n === name)
    .map(([, a]) => a);
const BIND = String(MS.BIND | MS.REC);

describe("--bind=…:idmap / :rootidmap", () => {
  test("idmap with a user namespace: on-disk 0…N-1 are the container's 0…N-1 (idmap_bind 0 BASE N)", () => {
    const spec = build(["-D", "/srv/box", "--private-users=1048576:65536", "--bind=/srv/data:/data:idmap", "/bin/true"]);
    expect(records(spec, "idmap_bind")).toEqual([["/srv/data", "/data", BIND, "auto", "0", "1048576", "65536"]]);
    expect(records(spec, "mount").some((a) => a[1] === "/data")).toBe(false);
  });
  test("rootidmap: the source's owner is the container's root (idmap_bind owner BASE 1)", () => {
    const spec = build(["-D", "/srv/box", "--private-users=1048576", "--bind-ro=/srv/data:/data:rootidmap,norbind", "/bin/true"]);
    expect(records(spec, "idmap_bind")).toEqual([["/srv/data", "/data", String(MS.BIND | MS.RDONLY), "auto", "owner", "1048576", "1"]]);
  });
  test("the range of -U (pick) is used; + and empty sources keep their forms", () => {
    const spec = build(["-D", "/srv/box", "-M", "bb2", "-U", "--bind=+/var:/v:idmap", "--bind=:/scratch:rootidmap", "/bin/true"]);
    const base = String(specRecords(spec).find(([n]) => n === "uid_map")![1][1]);
    const ib = records(spec, "idmap_bind");
    expect(ib[0]).toEqual(["/var/tmp/" + ib[0]![0]!.split("/")[3] + "/src", "/scratch", BIND, "auto", "owner", base, "1"]);
    expect(ib[1]).toEqual(["+/var", "/v", BIND, "auto", "0", base, "65536"]);
  });
  test("without a user namespace: idmap is a plain bind (the identity); rootidmap maps the owner to 0 (as nspawn 252)", () => {
    const spec = build(["-D", "/srv/box", "--bind=/srv/a:/a:idmap", "--bind=/srv/b:/b:rootidmap", "/bin/true"]);
    expect(records(spec, "idmap_bind")).toEqual([["/srv/b", "/b", BIND, "auto", "owner", "0", "1"]]);
    expect(records(spec, "mount").filter((a) => a[1] === "/a")).toEqual([["/srv/a", "/a", "", BIND, "", "auto"]]);
    expect(specRecords(spec).some(([n]) => n === "uid_map")).toBe(false);
  });
  test("--private-users=identity: idmap is the identity too", () => {
    const spec = build(["-D", "/srv/box", "--private-users=identity", "--bind=/srv/a:/a:idmap", "/bin/true"]);
    expect(records(spec, "idmap_bind")).toEqual([]);
    expect(records(spec, "mount").filter((a) => a[1] === "/a")).toEqual([["/srv/a", "/a", "", BIND, "", "auto"]]);
  });
  test("idmap binds keep nspawn's mount order (sorted by destination with the other mounts)", () => {
    const spec = build(["-D", "/srv/box", "--private-users=1048576", "--tmpfs=/b", "--bind=/srv/a:/a:idmap", "--bind=/srv/c:/c", "/bin/true"]);
    const order = specRecords(spec)
      .filter(([n, a]) => (n === "mount" || n === "idmap_bind") && ["/a", "/b", "/c"].includes(a[1]!))
      .map(([n, a]) => `${n}:${a[1]}`);
    expect(order).toEqual(["idmap_bind:/a", "mount:/b", "mount:/c"]);
  });
});

describe("--bind-user", () => {
  const users = {
    "/etc/passwd":
      "root:x:0:0::/root:/bin/sh\nalice:x:1001:1001:Alice:/home/alice:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/sh\nnobody:x:65534:65534::/:/bin/false\ncarol:x:1003:100::/home/carol:/bin/sh\n",
    "/etc/group": "root:x:0:\nusers:x:100:\nalice:x:1001:\nbob:x:1002:\nnogroup:x:65534:\n",
    "/etc/shadow": "root:*:1::::::\nalice:$y$j9T$salt$hash:19000:0:99999:7:::\nbob::19000::::::\n",
  };
  const image = {
    "/srv/box/etc/passwd": "root:x:0:0::/root:/bin/sh\ntaken:x:60514:60514::/:/bin/sh\n",
    "/srv/box/etc/group": "root:x:0:\nalsotaken:x:60515:\n",
  };
  const host = () => fakeHost({ ...users, ...image });

  test("records, symlinks, home bind and uid/gid maps with holes — as systemd-nspawn 252", () => {
    const spec = build(["-D", "/srv/box", "--private-users=1048576", "--bind-user=alice", "--bind-user=bob", "/bin/true"], host());
    // 60514 is a user and 60515 a group of the image: alice gets 60516, bob 60517
    expect(records(spec, "uid_map")).toEqual([
      ["0", "1048576", "60516"],
      ["60516", "1001", "1"],
      ["60517", "1002", "1"],
      ["60518", String(1048576 + 60518), String(65536 - 60518)],
    ]);
    expect(records(spec, "gid_map")).toEqual([
      ["0", "1048576", "60516"],
      ["60516", "1001", "1"],
      ["60517", "1002", "1"],
      ["60518", String(1048576 + 60518), String(65536 - 60518)],
    ]);
    const ops = spec.ops.filter(
      (o) =>
        ("path" in o && o.path.startsWith("/run/host/userdb")) ||
        ("target" in o && o.target.startsWith("/run/host/home")) ||
        ("path" in o && o.path === "/run/host/home"),
    );
    expect(ops).toEqual([
      { op: "mkdir", path: "/run/host/userdb", mode: 0o755 },
      { op: "mkdir", path: "/run/host/home", mode: 0o755 },
      { op: "symlink", target: "alice.user", path: "/run/host/userdb/60516.user" },
      {
        op: "write",
        path: "/run/host/userdb/alice.user",
        mode: 0o644,
        content: '{"userName":"alice","uid":60516,"gid":60516,"homeDirectory":"/run/host/home/alice","service":"io.systemd.NSpawn"}\n',
      },
      { op: "symlink", target: "alice.group", path: "/run/host/userdb/60516.group" },
      { op: "write", path: "/run/host/userdb/alice.group", mode: 0o644, content: '{"groupName":"alice","gid":60516,"service":"io.systemd.NSpawn"}\n' },
      { op: "symlink", target: "alice.user-privileged", path: "/run/host/userdb/60516.user-privileged" },
      { op: "write", path: "/run/host/userdb/alice.user-privileged", mode: 0o600, content: '{"privileged":{"hashedPassword":["$y$j9T$salt$hash"]}}\n' },
      { op: "mount", source: "/home/alice", target: "/run/host/home/alice", fstype: "", flags: MS.BIND, data: "", create: "dir" },
      { op: "symlink", target: "bob.user", path: "/run/host/userdb/60517.user" },
      {
        op: "write",
        path: "/run/host/userdb/bob.user",
        mode: 0o644,
        content: '{"userName":"bob","uid":60517,"gid":60517,"homeDirectory":"/run/host/home/bob","service":"io.systemd.NSpawn"}\n',
      },
      { op: "symlink", target: "bob.group", path: "/run/host/userdb/60517.group" },
      { op: "write", path: "/run/host/userdb/bob.group", mode: 0o644, content: '{"groupName":"bob","gid":60517,"service":"io.systemd.NSpawn"}\n' },
      { op: "mount", source: "/home/bob", target: "/run/host/home/bob", fstype: "", flags: MS.BIND, data: "", create: "dir" },
    ]);
    // before /run/host is sealed read-only
    const seal = spec.ops.findIndex((o) => o.op === "rebind" && o.target === "/run/host");
    const last = spec.ops.findIndex((o) => o.op === "mount" && o.target === "/run/host/home/bob");
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThan(seal);
  });
  test("BindUser= in a trusted file works like --bind-user", () => {
    const h = host();
    const parsed = parseNspawnCommandLine(["-D", "/srv/box", "--private-users=1048576", "/bin/true"], h.env());
    if (parsed.action !== "run") throw new Error("not a run");
    const s = mergeSettings(parsed.settings, parseNspawnFile("[Files]\nBindUser=alice\n", F, true), "yes");
    expect(s.bindUsers).toEqual(["alice"]);
  });
  test.each([
    [["--bind-user=alice"], /--bind-user= requires --private-users/],
    [["-U", "--bind-user=root"], /Mapping 'root' user not supported/],
    [["-U", "--bind-user=nobody"], /Mapping 'nobody' user not supported/],
    [["-U", "--bind-user=mallory"], /Failed to resolve user 'mallory'/],
    [["-U", "--bind-user=carol"], /without private groups/],
    [["--private-users=0", "--bind-user=alice"], /UID 1001 of user 'alice' to map is already in container UID range \(0 - 65536\)/],
  ])("%p is refused", (args, re) => {
    expect(() => build(["-D", "/srv/box", "-M", "bb2", ...args, "/bin/true"], host())).toThrow(re);
  });
  test("a name the image already knows is refused; a full range too", () => {
    expect(() =>
      build(["-D", "/srv/box", "-U", "--bind-user=alice", "/bin/true"], fakeHost({ ...users, ...image, "/srv/box/etc/passwd": "alice:x:5:5::/:/bin/sh\n" })),
    ).toThrow(/the user 'alice' already exists in the container/);
    expect(() =>
      build(["-D", "/srv/box", "-U", "--bind-user=alice", "/bin/true"], fakeHost({ ...users, ...image, "/srv/box/etc/group": "alice:x:5:\n" })),
    ).toThrow(/the group 'alice' already exists in the container/);
    const full = Array.from({ length: 64 }, (_, i) => `u${i}:x:${60514 + i}:0::/:/bin/sh`).join("\n");
    expect(() => build(["-D", "/srv/box", "-U", "--bind-user=alice", "/bin/true"], fakeHost({ ...users, ...image, "/srv/box/etc/passwd": full }))).toThrow(
      /No suitable available UID in range 60514…60577/,
    );
  });
  test("no shadow hash: no user-privileged record", () => {
    const spec = build(["-D", "/srv/box", "--private-users=1048576", "--bind-user=bob", "/bin/true"], host());
    expect(specRecords(spec).filter(([n, a]) => n === "write" && a[0]!.includes("privileged"))).toEqual([]);
  });
});
