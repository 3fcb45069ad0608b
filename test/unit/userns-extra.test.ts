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
    for (const v of ["yes", "no", "identity", "65536"]) expect(parseNspawnFile(`[Exec]\nPrivateUsers=${v}\n`, F, true).values.privateUsersOwnership).toBeUndefined();
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
const records = (spec: RunSpec, name: string) => specRecords(spec).filter(([n]) => n === name).map(([, a]) => a);
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
    const order = specRecords(spec).filter(([n, a]) => (n === "mount" || n === "idmap_bind") && ["/a", "/b", "/c"].includes(a[1]!)).map(([n, a]) => `${n}:${a[1]}`);
    expect(order).toEqual(["idmap_bind:/a", "mount:/b", "mount:/c"]);
  });
});
