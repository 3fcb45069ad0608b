/**
 * The exact setup ops and records of --bind/--bind-ro, --tmpfs, --overlay/--overlay-ro,
 * --inaccessible, --volatile, -x, --pivot-root and --link-journal (FakeHost, no root).
 */
import { describe, expect, test } from "bun:test";
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import type { Settings } from "../../src/settings/settings.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { MS } from "../../src/spec/mount-flags.ts";
import { pathCompare } from "../../src/spec/mounts-user.ts";
import type { RunSpec, SetupOp } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";

const ID = "0123456789abcdef0123456789abcdef";
const HOST_ID = "fedcba9876543210fedcba9876543210";
const RAND = "ab".repeat(6); // FakeHost.randomHex -> "abab…"; names use its first 12 digits

function fakeHost(extra: Record<string, string | FakeNode> = {}, env: Record<string, string> = {}) {
  return new FakeHost({
    files: {
      "/usr/lib/os-release": "ID=debian\n",
      "/etc/machine-id": `${HOST_ID}\n`,
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/os-release": "ID=busybox\n",
      "/srv/box/etc/machine-id": `${ID}\n`,
      "/srv/box/bin": { kind: "symlink", target: "usr/bin" },
      "/var/log/journal": { kind: "dir" },
      ...extra,
    },
    env: { TERM: "xterm", ...env },
  });
}

function spec(argv: string[], host = fakeHost(), patch: Partial<Settings> = {}): RunSpec {
  const parsed = parseNspawnCommandLine(argv, host.env(), "/home/u");
  if (parsed.action !== "run") throw new Error("not a run");
  const facts = gatherHostFacts(host, "/run/machina");
  const image = gatherImageFacts(host, parsed.settings.directory!, facts.timezone);
  return buildSpec({ ...parsed.settings, ...patch }, image, facts, { prog: "machina-nspawn" });
}

const base = spec(["-D", "/srv/box", "--link-journal=no", "/bin/true"]).ops;
/** Ops the options add after the standard ones. */
function extraOps(args: string[], host?: FakeHost): SetupOp[] {
  const s = spec(["-D", "/srv/box", "--link-journal=no", ...args, "/bin/true"], host);
  expect(s.ops.slice(0, base.length)).toEqual(base);
  return s.ops.slice(base.length);
}
/** The spec's records NAME, without systemd-machined's records (their own test: machined-records.test.ts). */
const rec = (s: RunSpec, name: string) =>
  specRecords(s)
    .filter(([n, a]) => n === name && !a.some((x) => x.startsWith("/run/systemd")))
    .map(([, a]) => a);

describe("--bind, --bind-ro", () => {
  test("host source, rbind by default, norbind, read-only (recursive), same destination", () => {
    expect(extraOps(["--bind=/srv/data:/data", "--bind=/srv/x:/x:norbind", "--bind-ro=/srv/ro"])).toEqual([
      { op: "mount", source: "/srv/data", target: "/data", fstype: "", flags: MS.BIND | MS.REC, data: "", create: "auto" },
      { op: "mount", source: "/srv/ro", target: "/srv/ro", fstype: "", flags: MS.BIND | MS.REC | MS.RDONLY, data: "", create: "auto" },
      { op: "mount", source: "/srv/x", target: "/x", fstype: "", flags: MS.BIND, data: "", create: "auto" },
    ]);
  });
  test("'+' source stays +CPATH (resolved inside the image by the helper)", () => {
    expect(extraOps(["--bind=+/var/lib/a:/a"])).toEqual([
      { op: "mount", source: "+/var/lib/a", target: "/a", fstype: "", flags: MS.BIND | MS.REC, data: "", create: "auto" },
    ]);
  });
  test("relative source is taken from the working directory", () => {
    expect(extraOps(["--bind=rel:/r"])[0]).toMatchObject({ source: "/home/u/rel" });
  });
  test("empty source: a temporary directory below /var/tmp, created and removed by the supervisor", () => {
    const s = spec(["-D", "/srv/box", "--link-journal=no", "--bind=:/scratch", "/bin/true"]);
    expect(s.ops.slice(base.length)).toEqual([
      { op: "mount", source: `/var/tmp/machina-temp-${RAND}0/src`, target: "/scratch", fstype: "", flags: MS.BIND | MS.REC, data: "", create: "auto" },
    ]);
    expect(rec(s, "scratch_list")).toEqual([["/run/machina/scratch/box"]]);
    expect(rec(s, "scratch_dir")).toEqual([
      [`/var/tmp/machina-temp-${RAND}0`, "0700"],
      [`/var/tmp/machina-temp-${RAND}0/src`, "0755"],
    ]);
  });
  test("idmap without a user namespace is a plain bind; rootidmap an idmap_bind op (details: userns-extra.test.ts)", () => {
    expect(extraOps(["--bind=/a:/a:idmap"])).toEqual([
      { op: "mount", source: "/a", target: "/a", fstype: "", flags: MS.BIND | MS.REC, data: "", create: "auto" },
    ]);
    expect(extraOps(["--bind=/a:/a:rootidmap"])).toEqual([
      { op: "idmapBind", source: "/a", target: "/a", flags: MS.BIND | MS.REC, create: "auto", from: "owner", to: 0, count: 1 },
    ]);
  });
});

describe("--tmpfs, --inaccessible", () => {
  test("tmpfs: nodev,strictatime; default mode=0755, options as given", () => {
    expect(extraOps(["--tmpfs=/t1", "--tmpfs=/t2:mode=0700,size=1m"])).toEqual([
      { op: "mount", source: "tmpfs", target: "/t1", fstype: "tmpfs", flags: MS.NODEV | MS.STRICTATIME, data: "mode=0755", create: "dir" },
      { op: "mount", source: "tmpfs", target: "/t2", fstype: "tmpfs", flags: MS.NODEV | MS.STRICTATIME, data: "mode=0700,size=1m", create: "dir" },
    ]);
  });
  test("mount flags in the options are mount flags (nspawn's mount_option_mangle), the rest tmpfs data; x-* dropped", () => {
    expect(extraOps(["--tmpfs=/var:rw,nosuid,noexec", "--tmpfs=/w:mode=0700,ro,dev,x-keep,size=1m,rw,ro"])).toEqual([
      { op: "mount", source: "tmpfs", target: "/var", fstype: "tmpfs", flags: MS.NODEV | MS.STRICTATIME | MS.NOSUID | MS.NOEXEC, data: "", create: "dir" },
      { op: "mount", source: "tmpfs", target: "/w", fstype: "tmpfs", flags: MS.STRICTATIME | MS.RDONLY, data: "mode=0700,size=1m", create: "dir" },
    ]);
    expect(() => extraOps(["--tmpfs=/var:mode=0700,bind"])).toThrow(/"\/var:mode=0700,bind" for --tmpfs.*bind is not one/);
  });
  test("inaccessible is the mask op", () => {
    expect(extraOps(["--inaccessible=/etc/shadow"])).toEqual([{ op: "mask", path: "/etc/shadow" }]);
  });
  test("custom mounts are sorted by destination, then bind < tmpfs < overlay < inaccessible", () => {
    const ops = extraOps(["--inaccessible=/a", "--tmpfs=/a", "--bind=/h:/a/b", "--bind=/h:/a", "--tmpfs=/-"]);
    expect(ops.map((o) => `${o.op}:${"target" in o ? o.target : "path" in o ? o.path : ""}`)).toEqual([
      "mount:/-",
      "mount:/a",
      "mount:/a",
      "mask:/a",
      "mount:/a/b",
    ]);
    expect(ops[1]).toMatchObject({ source: "/h" });
    expect(pathCompare("/a/b", "/a-b")).toBeLessThan(0); // component-wise, not byte-wise
  });
});

describe("--overlay, --overlay-ro", () => {
  test("host layers: work dir is a .# sibling of the upper dir (a scratch dir)", () => {
    const s = spec(["-D", "/srv/box", "--link-journal=no", "--overlay=/l1:/l2:/up:/dest", "/bin/true"]);
    const work = `/.#up${RAND}0`;
    expect(s.ops.slice(base.length)).toEqual([{ op: "overlay", target: "/dest", flags: 0, upper: "/up", work, lower: ["/l1", "/l2"] }]);
    expect(rec(s, "scratch_dir")).toEqual([[work, "0700"]]);
    expect(rec(s, "overlay")).toEqual([["/dest", "0", "/up", work, "/l1", "/l2"]]);
  });
  test("two paths: LOWER:UPPER mounted at UPPER", () => {
    expect(extraOps(["--overlay=/srv/l:/srv/u"])[0]).toMatchObject({ target: "/srv/u", upper: "/srv/u", lower: ["/srv/l"] });
  });
  test("'+' layers and an empty upper (temporary)", () => {
    const s = spec(["-D", "/srv/box", "--link-journal=no", "--overlay=+/var::/var", "/bin/true"]);
    const t = `/var/tmp/machina-temp-${RAND}0`;
    expect(s.ops.slice(base.length)).toEqual([{ op: "overlay", target: "/var", flags: 0, upper: `${t}/src`, work: `${t}/.#src${RAND}1`, lower: ["+/var"] }]);
    expect(rec(s, "scratch_dir")).toEqual([
      [t, "0700"],
      [`${t}/src`, "0755"],
      [`${t}/.#src${RAND}1`, "0700"],
    ]);
  });
  test("'+' upper: the work dir is inside the image too", () => {
    expect(extraOps(["--overlay=/l:+/data/up:/d"])[0]).toEqual({
      op: "overlay",
      target: "/d",
      flags: 0,
      upper: "+/data/up",
      work: `+/data/.#up${RAND}0`,
      lower: ["/l"],
    });
  });
  test("read-only: all paths are lower layers, no upper, MS_RDONLY", () => {
    expect(extraOps(["--overlay-ro=/a:/b:/d", "--overlay-ro=/x:/y"])).toEqual([
      { op: "overlay", target: "/d", flags: MS.RDONLY, upper: "", work: "", lower: ["/a", "/b"] },
      { op: "overlay", target: "/y", flags: MS.RDONLY, upper: "", work: "", lower: ["/x", "/y"] },
    ]);
  });
});

describe("--volatile, -x, --pivot-root", () => {
  test("yes: tmpfs root, image /usr read-only, base file system; files bound, not copied", () => {
    const host = fakeHost({ "/srv/box/usr/sbin/x": "", "/srv/box/usr/lib/x": "" });
    const s = spec(["-D", "/srv/box", "--link-journal=no", "--volatile=yes", "/bin/true"], host);
    expect(rec(s, "root_tmpfs")).toEqual([["mode=755,size=25%,nr_inodes=1m"]]);
    expect(s.ops.slice(0, 7)).toEqual([
      { op: "mount", source: "+/usr", target: "/usr", fstype: "", flags: MS.BIND | MS.REC | MS.RDONLY, data: "", create: "dir" },
      { op: "symlink", target: "usr/bin", path: "/bin" },
      { op: "symlink", target: "usr/lib", path: "/lib" },
      { op: "symlink", target: "usr/sbin", path: "/sbin" },
      { op: "mkdir", path: "/root", mode: 0o750 },
      { op: "mkdir", path: "/var", mode: 0o755 },
      { op: "mkdir", path: "/etc", mode: 0o755 },
    ]);
    expect(s.readOnly).toBe(false);
    expect(s.ops.some((o) => o.op === "copy")).toBe(false);
  });
  test("yes refuses an image whose /bin is a directory (nspawn's message)", () => {
    const host = fakeHost({ "/srv/box/bin": { kind: "dir" } });
    expect(() => spec(["-D", "/srv/box", "--volatile=yes", "/bin/true"], host)).toThrow(/not supported with OS images that have not merged \/bin\//);
  });
  test("state: read-only root, tmpfs /var first", () => {
    const s = spec(["-D", "/srv/box", "--link-journal=no", "--volatile=state", "/bin/true"]);
    expect(s.readOnly).toBe(true);
    expect(s.ops[0]).toEqual({
      op: "mount",
      source: "tmpfs",
      target: "/var",
      fstype: "tmpfs",
      flags: MS.STRICTATIME,
      data: "mode=755,size=25%,nr_inodes=1m",
      create: "dir",
    });
    expect(rec(s, "root_tmpfs")).toEqual([]);
  });
  test("overlay and -x: root_overlay, nothing else", () => {
    expect(rec(spec(["-D", "/srv/box", "--volatile=overlay", "/bin/true"]), "root_overlay")).toEqual([["mode=755,size=25%,nr_inodes=1m"]]);
    const x = spec(["-D", "/srv/box", "-x", "/bin/true"]);
    expect(rec(x, "root_overlay")).toEqual([["mode=755"]]);
    expect(rec(x, "scratch_dir")).toEqual([]);
    expect(x.ops).toEqual(spec(["-D", "/srv/box", "--link-journal=no", "/bin/true"]).ops); // and no journal link
  });
  test("pivot-root with and without an old-root directory", () => {
    expect(rec(spec(["-D", "/srv/box", "--pivot-root=/sysroot/a", "/bin/true"]), "pivot_root_dir")).toEqual([["/sysroot/a", ""]]);
    expect(rec(spec(["-D", "/srv/box", "--pivot-root=/sysroot/a:/old", "/bin/true"]), "pivot_root_dir")).toEqual([["/sysroot/a", "/old"]]);
  });
});

describe("--link-journal", () => {
  const J = `/var/log/journal/${ID}`;
  const bind: SetupOp = { op: "mount", source: J, target: J, fstype: "", flags: MS.BIND, data: "", create: "dir" };
  test("auto (the default): nothing without a host directory; a bind when it exists", () => {
    expect(spec(["-D", "/srv/box", "/bin/true"]).ops).toEqual(base);
    expect(extraOps(["--link-journal=auto"], fakeHost({ [J]: { kind: "dir" } }))).toEqual([bind]);
  });
  test("auto with the host symlink of an earlier guest run: the guest directory is made", () => {
    const host = fakeHost({ [J]: { kind: "symlink", target: `/srv/box${J}` } });
    expect(spec(["-D", "/srv/box", "/bin/true"], host).ops.slice(base.length)).toEqual([{ op: "mkdir", path: J, mode: 0o755 }]);
  });
  test("host: host_mkdir + bind; guest: host_symlink + guest mkdir", () => {
    const h = spec(["-D", "/srv/box", "--link-journal=host", "/bin/true"]);
    expect(h.ops.slice(base.length)).toEqual([bind]);
    expect(rec(h, "host_mkdir")).toEqual([[J, "0755"]]);
    const g = spec(["-D", "/srv/box", "--link-journal=guest", "/bin/true"]);
    expect(g.ops.slice(base.length)).toEqual([{ op: "mkdir", path: J, mode: 0o755 }]);
    expect(rec(g, "host_symlink")).toEqual([[`/srv/box${J}`, J]]);
  });
  test("the host directory is overridable (MACHINA_HOST_JOURNAL_DIR)", () => {
    const host = fakeHost({ "/tmp/j": { kind: "dir" } }, { MACHINA_HOST_JOURNAL_DIR: "/tmp/j" });
    expect(rec(spec(["-D", "/srv/box", "--link-journal=host", "/bin/true"], host), "host_mkdir")).toEqual([[`/tmp/j/${ID}`, "0755"]]);
  });
  test("try-*: no host journal directory or a read-only image is no error; plain modes fail", () => {
    const noDir = new FakeHost({ files: { "/srv/box/usr/bin/sh": "", "/srv/box/etc/machine-id": `${ID}\n` } });
    const plain = spec(["-D", "/srv/box", "--link-journal=no", "/bin/true"], noDir).ops;
    for (const m of ["try-host", "try-guest"]) expect(spec(["-D", "/srv/box", `--link-journal=${m}`, "/bin/true"], noDir).ops).toEqual(plain);
    expect(() => spec(["-D", "/srv/box", "--link-journal=host", "/bin/true"], noDir)).toThrow(/no persistent journal directory/);
    expect(() => spec(["-D", "/srv/box", "--read-only", "--link-journal=guest", "/bin/true"])).toThrow(/read-only/);
  });
  test("equal host and container machine ids are refused (try: ignored)", () => {
    const host = fakeHost({ "/etc/machine-id": `${ID}\n` });
    expect(() => spec(["-D", "/srv/box", "--link-journal=guest", "/bin/true"], host)).toThrow(/Host and machine ids are equal/);
    expect(spec(["-D", "/srv/box", "--link-journal=try-guest", "/bin/true"], host).ops).toEqual(base);
  });
});

describe("root propagation (machina-oci's linux.rootfsPropagation)", () => {
  const records = (patch: Partial<Settings>) => specRecords(spec(["-D", "/srv/box", "/bin/true"], fakeHost(), patch)).filter(([n]) => n === "root_propagation");
  test("one root_propagation record with the mount(2) flags; none without it (machina-nspawn: the root stays a slave)", () => {
    expect(records({})).toEqual([]);
    expect(records({ ociRootPropagation: "shared" })).toEqual([["root_propagation", [String(MS.SHARED)]]]);
    expect(records({ ociRootPropagation: "slave" })).toEqual([["root_propagation", [String(MS.SLAVE)]]]);
    expect(records({ ociRootPropagation: "private" })).toEqual([["root_propagation", [String(MS.PRIVATE)]]]);
    expect(records({ ociRootPropagation: "unbindable" })).toEqual([["root_propagation", [String(MS.UNBINDABLE)]]]);
    expect(records({ ociRootPropagation: "rshared" })).toEqual([["root_propagation", [String(MS.SHARED | MS.REC)]]]);
  });
});

describe("machina-oci's mounts: config.json's order and each mount's propagation", () => {
  test("ordered by config index (not by path), masks after them; the propagation type is in FLAGS without a recursive bind of its own", () => {
    const ops = spec(["-D", "/srv/box", "/bin/true"], fakeHost(), {
      ociRuntime: true,
      tmpfs: [{ destination: "/tmp/t", options: "mode=755", propagation: "shared", order: 0 }],
      binds: [
        { source: "/etc", sourceInImage: false, destination: "/mnt/b", readOnly: false, recursive: false, idmap: "noidmap", propagation: "rshared", order: 2 },
        {
          source: "/etc",
          sourceInImage: false,
          destination: "/mnt/a",
          readOnly: false,
          recursive: true,
          idmap: "noidmap",
          propagation: "unbindable",
          order: 1,
        },
      ],
      inaccessible: ["/aaa"],
    }).ops;
    const user = ops.filter((o) => ("target" in o && ["/tmp/t", "/mnt/a", "/mnt/b"].includes(o.target)) || (o.op === "mask" && o.path === "/aaa"));
    expect(user.map((o) => (o.op === "mask" ? o.path : "target" in o ? o.target : ""))).toEqual(["/tmp/t", "/mnt/a", "/mnt/b", "/aaa"]);
    const flags = user.map((o) => (o.op === "mount" ? o.flags : 0));
    expect(flags[0]! & MS.SHARED).toBe(MS.SHARED);
    expect(flags[1]).toBe(MS.BIND | MS.REC | MS.UNBINDABLE);
    expect(flags[2]).toBe(MS.BIND | MS.SHARED); // rshared on a plain bind: no MS_REC (that would make the bind recursive)
  });
});

describe("machina-oci's tmpcopyup", () => {
  test("a tmpfs with copyUp is a mount op with CREATE copyup; without it CREATE dir", () => {
    const ops = spec(["-D", "/srv/box", "/bin/true"], fakeHost(), {
      ociRuntime: true,
      tmpfs: [
        { destination: "/etc", options: "mode=755,ro", order: 0, copyUp: true },
        { destination: "/tmp/t", options: "mode=755", order: 1 },
      ],
    }).ops;
    expect(ops.filter((o) => o.op === "mount" && ["/etc", "/tmp/t"].includes(o.target))).toEqual([
      { op: "mount", source: "tmpfs", target: "/etc", fstype: "tmpfs", flags: MS.NODEV | MS.STRICTATIME | MS.RDONLY, data: "mode=755", create: "copyup" },
      { op: "mount", source: "tmpfs", target: "/tmp/t", fstype: "tmpfs", flags: MS.NODEV | MS.STRICTATIME, data: "mode=755", create: "dir" },
    ]);
    const recs = specRecords(
      spec(["-D", "/srv/box", "/bin/true"], fakeHost(), { ociRuntime: true, tmpfs: [{ destination: "/etc", options: "", order: 0, copyUp: true }] }),
    );
    expect(recs.filter(([n, a]) => n === "mount" && a[1] === "/etc")).toEqual([
      ["mount", ["tmpfs", "/etc", "tmpfs", String(MS.NODEV | MS.STRICTATIME), "", "copyup"]],
    ]);
  });

  test("config.json's own /run tmpfs (podman --read-only) with tmpcopyup: CREATE copyup; /dev without it: dir", () => {
    const ops = spec(["-D", "/srv/box", "/bin/true"], fakeHost(), {
      ociRuntime: true,
      ociApiMounts: [
        { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"] },
      ],
    }).ops;
    const create = (t: string) => ops.filter((o) => o.op === "mount" && o.target === t).map((o) => (o.op === "mount" ? o.create : ""));
    expect(create("/run")).toEqual(["copyup"]);
    expect(create("/dev")).toEqual(["dir"]);
  });
});

describe("machina-oci's namespaces joined by path", () => {
  test("mntns and pidns replace mnt and pid; a joined UTS namespace gets the configured hostname only", () => {
    const patch: Partial<Settings> = {
      ociRuntime: true,
      mountNamespacePath: "/proc/42/ns/mnt",
      pidNamespacePath: "/proc/42/ns/pid_for_children",
      utsNamespacePath: "/proc/42/ns/uts",
    };
    const s = spec(["-D", "/srv/box", "/bin/true"], fakeHost(), patch);
    expect(s.namespaces).toEqual(["ipc", "cgroup"]);
    const recs = specRecords(s).filter(([n]) => ["mntns", "pidns", "utsns", "hostname", "namespaces"].includes(n));
    expect(recs).toEqual([
      ["namespaces", ["ipc", "cgroup"]],
      ["mntns", ["/proc/42/ns/mnt"]],
      ["pidns", ["/proc/42/ns/pid_for_children"]],
      ["utsns", ["/proc/42/ns/uts"]],
    ]);
    const named = specRecords(spec(["-D", "/srv/box", "--hostname=h1", "/bin/true"], fakeHost(), patch));
    expect(named.filter(([n]) => n === "hostname")).toEqual([["hostname", ["h1"]]]);
  });
});
