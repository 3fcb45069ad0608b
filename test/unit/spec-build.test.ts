import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { MS, S_IF } from "../../src/spec/mount-flags.ts";
import type { RunSpec, SetupOp } from "../../src/spec/types.ts";
import { encodeSpec, specRecords } from "../../src/spec/wire.ts";

const OS_RELEASE = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n';

function fakeHost(
  extra: Record<string, string | import("../../src/host/fake.ts").FakeNode> = {},
  opts: { tty?: boolean; readOnly?: string[]; env?: Record<string, string> } = {},
) {
  return new FakeHost({
    files: {
      "/usr/lib/os-release": OS_RELEASE,
      "/etc/os-release": { kind: "symlink", target: "../usr/lib/os-release" },
      "/etc/localtime": { kind: "symlink", target: "/usr/share/zoneinfo/Europe/Berlin" },
      "/usr/share/zoneinfo/Europe/Berlin": "TZif",
      "/etc/resolv.conf": "nameserver 127.0.0.1\n",
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
      "/srv/box/etc/group": "root:x:0:\nwheel:x:10:user\nuser:x:1000:\n",
      "/srv/box/etc/os-release": "ID=busybox\nVERSION_ID=1.35\n",
      ...extra,
    },
    env: { TERM: "xterm-256color", LANG: "C.UTF-8", ...(opts.env ?? {}) },
    tty: opts.tty ?? false,
    readOnly: opts.readOnly ?? [],
  });
}

function spec(argv: string[], host = fakeHost()): RunSpec {
  const parsed = parseNspawnCommandLine(argv, host.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const s = parsed.settings;
  const facts = gatherHostFacts(host, "/run/machina");
  const image = gatherImageFacts(host, s.directory!, facts.timezone);
  return buildSpec(s, image, facts, { prog: "machina-nspawn" });
}

const API_RO = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC;

describe("buildSpec", () => {
  test("the setup operations for a plain command, exactly", () => {
    const s = spec(["-D", "/srv/box", "/bin/true"]);
    const expected: SetupOp[] = [
      {
        op: "mount",
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
        data: "mode=1777,size=10%,nr_inodes=400k",
        create: "dir",
      },
      { op: "mount", source: "sysfs", target: "/sys", fstype: "sysfs", flags: API_RO, data: "", create: "dir" },
      {
        op: "mount",
        source: "tmpfs",
        target: "/dev",
        fstype: "tmpfs",
        flags: MS.NOSUID | MS.STRICTATIME,
        data: "mode=0755,size=4m,nr_inodes=64k",
        create: "dir",
      },
      { op: "mknod", path: "/dev/null", mode: S_IF.CHR | 0o666, major: 1, minor: 3 },
      { op: "mknod", path: "/dev/zero", mode: S_IF.CHR | 0o666, major: 1, minor: 5 },
      { op: "mknod", path: "/dev/full", mode: S_IF.CHR | 0o666, major: 1, minor: 7 },
      { op: "mknod", path: "/dev/random", mode: S_IF.CHR | 0o666, major: 1, minor: 8 },
      { op: "mknod", path: "/dev/urandom", mode: S_IF.CHR | 0o666, major: 1, minor: 9 },
      { op: "mknod", path: "/dev/tty", mode: S_IF.CHR | 0o666, major: 5, minor: 0 },
      { op: "symlink", target: "../null", path: "/dev/char/1:3" },
      { op: "symlink", target: "../zero", path: "/dev/char/1:5" },
      { op: "symlink", target: "../full", path: "/dev/char/1:7" },
      { op: "symlink", target: "../random", path: "/dev/char/1:8" },
      { op: "symlink", target: "../urandom", path: "/dev/char/1:9" },
      { op: "symlink", target: "../tty", path: "/dev/char/5:0" },
      {
        op: "mount",
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
        data: "mode=1777,size=10%,nr_inodes=400k",
        create: "dir",
      },
      {
        op: "mount",
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MS.NOSUID | MS.NOEXEC,
        data: "newinstance,ptmxmode=0666,mode=620,gid=5",
        create: "dir",
      },
      { op: "symlink", target: "pts/ptmx", path: "/dev/ptmx" },
      { op: "mount", source: "mqueue", target: "/dev/mqueue", fstype: "mqueue", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "dir" },
      { op: "symlink", target: "/proc/self/fd", path: "/dev/fd" },
      { op: "symlink", target: "/proc/self/fd/0", path: "/dev/stdin" },
      { op: "symlink", target: "/proc/self/fd/1", path: "/dev/stdout" },
      { op: "symlink", target: "/proc/self/fd/2", path: "/dev/stderr" },
      {
        op: "mount",
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MS.NOSUID | MS.NODEV | MS.STRICTATIME,
        data: "mode=0755,size=20%,nr_inodes=800k",
        create: "dir",
      },
      { op: "mkdir", path: "/run/host", mode: 0o755 },
      { op: "mkdir", path: "/run/host/inaccessible", mode: 0o755 },
      { op: "mknod", path: "/run/host/inaccessible/reg", mode: S_IF.REG, major: 0, minor: 0 },
      { op: "mkdir", path: "/run/host/inaccessible/dir", mode: 0 },
      { op: "mknod", path: "/run/host/inaccessible/chr", mode: S_IF.CHR, major: 0, minor: 0 },
      { op: "mknod", path: "/run/host/inaccessible/blk", mode: S_IF.BLK, major: 0, minor: 0 },
      { op: "mknod", path: "/run/host/inaccessible/fifo", mode: S_IF.FIFO, major: 0, minor: 0 },
      { op: "mknod", path: "/run/host/inaccessible/sock", mode: S_IF.SOCK, major: 0, minor: 0 },
      { op: "mkdir", path: "/run/host/incoming", mode: 0o700 },
      { op: "mount", source: "/usr/lib/os-release", target: "/run/host/os-release", fstype: "", flags: MS.BIND | API_RO, data: "", create: "file" },
      { op: "write", path: "/run/host/container-manager", mode: 0o444, content: "systemd-nspawn\n" },
      { op: "write", path: "/run/host/container-uuid", mode: 0o444, content: "abababab-abab-abab-abab-abababababab\n" },
      { op: "notify", path: "/run/host/notify" },
      { op: "rebind", target: "/run/host", flags: API_RO, optional: false },
      { op: "mount", source: "proc", target: "/proc", fstype: "proc", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "dir" },
      { op: "rebind", target: "/proc/sys", flags: API_RO, optional: false },
      ...["acpi", "apm", "asound", "bus", "fs", "irq", "scsi"].map((p): SetupOp => ({ op: "rebind", target: `/proc/${p}`, flags: API_RO, optional: true })),
      ...["kallsyms", "kcore", "keys", "sysrq-trigger", "timer_list"].map((p): SetupOp => ({ op: "mask", path: `/proc/${p}` })),
      { op: "cgroupns" },
      { op: "mount", source: "cgroup2", target: "/sys/fs/cgroup", fstype: "cgroup2", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, data: "", create: "none" },
      // --timezone=auto, host /etc/localtime is a zoneinfo symlink but the image lacks the zone: bind
      {
        op: "mount",
        source: "/usr/share/zoneinfo/Europe/Berlin",
        target: "/etc/localtime",
        fstype: "",
        flags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV,
        data: "",
        create: "file",
      },
      // --resolv-conf=auto on a writable image without resolved: copy the host's file
      { op: "copy", source: "/etc/resolv.conf", path: "/etc/resolv.conf", mode: 0o644 },
    ];
    expect(s.ops).toEqual(expected);
  });

  test("identity, namespaces, registry, cgroups and environment", () => {
    const s = spec(["-D", "/srv/box", "-E", "FOO=bar", "/bin/true", "a", "b"]);
    expect(s.machine).toBe("box");
    expect(s.hostname).toBe("box");
    expect(s.root).toBe("/srv/box");
    expect(s.namespaces).toEqual(["mnt", "pid", "uts", "ipc", "cgroup"]);
    expect(s.registry).toBe("/run/machina/machines/box");
    expect(s.cgroups).toEqual(["/sys/fs/cgroup/unified/machine.slice/machine-box.scope"]);
    expect(s.env).toEqual([
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "container=systemd-nspawn",
      "container_uuid=abababab-abab-abab-abab-abababababab",
      "container_host_id=debian",
      "container_host_version_id=12",
      "HOME=/root",
      "USER=root",
      "LOGNAME=root",
      "NOTIFY_SOCKET=/run/host/notify",
      "TERM=xterm-256color",
      "LANG=C.UTF-8",
      "FOO=bar",
    ]);
    expect(s.exec).toEqual([{ path: "/bin/true", argv0: "/bin/true" }]);
    expect(s.args).toEqual(["a", "b"]);
    expect(s.killSignal).toBe(9);
    expect(s.console).toBe("read-only");
    expect(s.consoleOpost).toBe(false);
    expect(s.capsBounding).toBe("fdecafff");
    expect(JSON.parse(`{${s.stateJson}}`)).toMatchObject({ name: "box", class: "container", root: "/srv/box", boot: false, os: "busybox" });
  });

  test("-M, --hostname, --uuid, -u, --chdir, caps, rlimits, no-new-privs", () => {
    const s = spec([
      "-D",
      "/srv/box",
      "-M",
      "web",
      "--hostname=h1",
      "--uuid=0123456789abcdef0123456789abcdef",
      "-u",
      "user",
      "--chdir=/tmp",
      "--capability=CAP_NET_ADMIN",
      "--drop-capability=CAP_MKNOD",
      "--rlimit=NOFILE=10:20",
      "--no-new-privileges=yes",
      "--kill-signal=SIGTERM",
      "id",
    ]);
    expect(s.machine).toBe("web");
    expect(s.hostname).toBe("h1");
    expect(s.env).toContain("container_uuid=01234567-89ab-cdef-0123-456789abcdef");
    expect(s.env).toContain("HOME=/home/user");
    expect(s.env).toContain("USER=user");
    expect(s.user).toEqual({ uid: 1000, gid: 1000, groups: [10] });
    expect(s.chdir).toBe("/tmp");
    expect(BigInt("0x" + s.capsBounding) & (1n << 12n)).toBe(1n << 12n); // NET_ADMIN
    expect(BigInt("0x" + s.capsBounding) & (1n << 27n)).toBe(0n); // MKNOD dropped
    expect(s.rlimits).toEqual([{ resource: 7, soft: 10n, hard: 20n, mode: "closest" }]);
    expect(s.noNewPrivs).toBe(true);
    expect(s.killSignal).toBe(15);
  });

  test("--boot runs the image's init with SIGRTMIN+3 as kill signal; --keep-unit exits 133 on reboot", () => {
    const host = fakeHost({ "/srv/box/lib/systemd/systemd": "", "/srv/box/sbin/init": { kind: "symlink", target: "/lib/systemd/systemd" } });
    const s = spec(["-bD", "/srv/box", "--keep-unit", "systemd.unit=rescue.target"], host);
    expect(s.exec).toEqual([
      { path: "/lib/systemd/systemd", argv0: "/lib/systemd/systemd" },
      { path: "/sbin/init", argv0: "/sbin/init" },
    ]);
    expect(s.args).toEqual(["systemd.unit=rescue.target"]);
    expect(s.killSignal).toBe(34 + 3);
    expect(s.boot).toBe(true);
    expect(s.onReboot).toBe("exit133");
    expect(spec(["-bD", "/srv/box"], host).onReboot).toBe("restart");
  });

  test("the payload gets nspawn's NOFILE soft limit of 1024 with the hard limit inherited", () => {
    const limits =
      "Limit                     Soft Limit           Hard Limit           Units\nMax open files            65536                524288               files\n";
    expect(spec(["-D", "/srv/box", "x"], fakeHost({ "/proc/self/limits": limits })).rlimits).toEqual([
      { resource: 7, soft: 1024n, hard: 524288n, mode: "exact" },
    ]);
    expect(spec(["-D", "/srv/box", "--rlimit=NOFILE=9", "x"], fakeHost({ "/proc/self/limits": limits })).rlimits).toEqual([
      { resource: 7, soft: 9n, hard: 9n, mode: "closest" },
    ]);
  });

  test("TERM: the caller's, vt220 with a pty when the caller has none, nothing with pipes; LANG is always C.UTF-8", () => {
    const noTerm = (console: string) => spec(["-D", "/srv/box", `--console=${console}`, "x"], fakeHost({}, { env: { LANG: "de_DE.UTF-8" } }));
    expect(noTerm("read-only").env).toContain("TERM=xterm-256color");
    const bare = (console: string) => {
      const h = new FakeHost({ files: Object.fromEntries([...fakeHost().nodes].filter(([, n]) => n.kind !== "dir").map(([p, n]) => [p, n])) });
      return spec(["-D", "/srv/box", `--console=${console}`, "x"], h).env;
    };
    expect(bare("read-only")).toContain("TERM=vt220");
    expect(bare("pipe").some((e) => e.startsWith("TERM="))).toBe(false);
    expect(noTerm("pipe").env).toContain("LANG=C.UTF-8");
  });

  test("no command: a login shell, bash preferred", () => {
    expect(spec(["-D", "/srv/box"]).exec).toEqual([
      { path: "/bin/bash", argv0: "-bash" },
      { path: "/bin/sh", argv0: "-sh" },
    ]);
  });

  test("console mode follows the terminal, and --console/--pipe override it", () => {
    expect(spec(["-D", "/srv/box", "x"], fakeHost({}, { tty: true })).console).toBe("interactive");
    expect(spec(["-D", "/srv/box", "--console=autopipe", "x"]).console).toBe("pipe");
    expect(spec(["-D", "/srv/box", "--console=autopipe", "x"], fakeHost({}, { tty: true })).console).toBe("interactive");
    expect(spec(["-PD", "/srv/box", "x"], fakeHost({}, { tty: true })).console).toBe("pipe");
  });

  test("--private-network: a net namespace, /dev/net/tun, writable /proc/sys/net, CAP_NET_ADMIN, no resolv.conf", () => {
    const s = spec(["-D", "/srv/box", "--private-network", "x"]);
    expect(s.namespaces).toContain("net");
    expect(s.ops).toContainEqual({ op: "mknod", path: "/dev/net/tun", mode: S_IF.CHR | 0o666, major: 10, minor: 200 });
    expect(s.ops).toContainEqual({ op: "rebind", target: "/proc/sys/net", flags: MS.NOSUID | MS.NODEV | MS.NOEXEC, optional: true });
    expect(BigInt("0x" + s.capsBounding) & (1n << 12n)).toBe(1n << 12n);
    expect(s.ops.some((o) => "path" in o && o.path === "/etc/resolv.conf")).toBe(false);
  });

  test("--read-only: resolv.conf and localtime are bind-mounted instead of written", () => {
    const s = spec(["-D", "/srv/box", "--read-only", "x"]);
    expect(s.readOnly).toBe(true);
    expect(s.ops.filter((o) => o.op === "copy" || o.op === "remove" || (o.op === "write" && o.path.startsWith("/etc")))).toEqual([]);
    expect(s.ops).toContainEqual({
      op: "mount",
      source: "/etc/resolv.conf",
      target: "/etc/resolv.conf",
      fstype: "",
      flags: MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV,
      data: "",
      create: "file",
    });
  });

  test("timezone: a symlink when the image has the host's zone; resolv.conf left alone when it is a symlink", () => {
    const host = fakeHost({
      "/srv/box/usr/share/zoneinfo/Europe/Berlin": "TZif",
      "/srv/box/etc/resolv.conf": { kind: "symlink", target: "../run/systemd/resolve/stub-resolv.conf" },
    });
    const s = spec(["-D", "/srv/box", "x"], host);
    expect(s.ops.slice(-2)).toEqual([
      { op: "remove", path: "/etc/localtime" },
      { op: "symlink", target: "../usr/share/zoneinfo/Europe/Berlin", path: "/etc/localtime" },
    ]);
    expect(s.ops.some((o) => o.op === "copy")).toBe(false);
  });

  test("the image's machine id becomes the container UUID", () => {
    const host = fakeHost({ "/srv/box/etc/machine-id": "0123456789abcdef0123456789abcdef\n" });
    expect(spec(["-D", "/srv/box", "x"], host).env).toContain("container_uuid=01234567-89ab-cdef-0123-456789abcdef");
  });

  test("--timezone=bind / --resolv-conf=bind-host over an image's symlink: followed inside the image, else nspawn's fallback", () => {
    const RO = MS.BIND | MS.RDONLY | MS.NOSUID | MS.NODEV;
    const etcOps = (target: string, extra: Record<string, string> = {}) => {
      const host = fakeHost({
        "/srv/box/etc/localtime": { kind: "symlink", target },
        "/srv/box/etc/resolv.conf": { kind: "symlink", target },
        "/srv/box/etc/real": "x",
        ...extra,
      });
      return spec(["-D", "/srv/box", "--timezone=bind", "--resolv-conf=bind-host", "x"], host).ops.filter(
        (o) => ("target" in o && o.target.startsWith("/etc/")) || ("path" in o && o.path.startsWith("/etc/")),
      );
    };
    const zone = "/usr/share/zoneinfo/Europe/Berlin";
    // to a file of the image (never out of it: ../.. stops at its root): bound there
    expect(etcOps("../../../etc/real")).toEqual([
      { op: "mount", source: zone, target: "/etc/real", fstype: "", flags: RO, data: "", create: "none" },
      { op: "mount", source: "/etc/resolv.conf", target: "/etc/real", fstype: "", flags: RO, data: "", create: "none" },
    ]);
    // dangling into an existing directory: the file is created there, then bound
    expect(etcOps("/etc/new").map((o) => [o.op, "target" in o ? o.target : "", "create" in o ? o.create : ""])).toEqual([
      ["mount", "/etc/new", "file"],
      ["mount", "/etc/new", "file"],
    ]);
    // dangling into a missing directory: localtime copied over the link, resolv.conf left alone
    expect(etcOps("../usr/share/zoneinfo/Nowhere")).toEqual([
      { op: "remove", path: "/etc/localtime" },
      { op: "copy", source: zone, path: "/etc/localtime", mode: 0o644 },
    ]);
  });

  test("--network-namespace-path= with --private-network: the namespace is joined (nspawn accepts the pair)", () => {
    const s = spec(["-D", "/srv/box", "--network-namespace-path=/run/netns/x", "--private-network", "x"]);
    expect(s.namespaces).not.toContain("net");
    expect(s.netns).toBe("/run/netns/x");
    expect(BigInt("0x" + s.capsBounding) & (1n << 12n)).toBe(1n << 12n); // NET_ADMIN, as nspawn
  });

  test("-u root / -u 0 need no /etc/passwd: root is uid 0, gid 0, home /root (nspawn's change_uid_gid)", () => {
    const host = fakeHost({ "/srv/bare/usr/bin/sh": "", "/srv/bare/etc/os-release": "ID=x\n" });
    for (const u of ["root", "0"]) {
      const s = spec(["-D", "/srv/bare", "-u", u, "x"], host);
      expect(s.user).toEqual({ uid: 0, gid: 0, groups: [] });
      expect(s.env).toContain("HOME=/root");
      expect(s.env).toContain(`USER=${u}`);
    }
  });

  test.each([
    [["-D", "/nope", "x"], 'directory "/nope" does not exist'],
    [["-D", "/srv/box/etc/passwd", "x"], "is not a directory"],
    [["-D", "/etc", "x"], "doesn't look like an OS tree (/usr/ is missing)"],
    [["-D", "/srv/box", "-b"], "no init found"],
    [["-D", "/srv/box", "-u", "nobody", "x"], 'user "nobody" not found in the container\'s /etc/passwd'],
    [["-D", "/srv/box", "-u", "4294967295", "x"], "a numeric user is at most 4294967294"],
    [["-D", "/srv/box", "-p", "80", "x"], "-p needs --network-veth or --network-zone="],
    [["-D", "/srv/box", "--network-namespace-path=/run/netns/x", "--network-veth", "x"], "may not be combined"],
  ])("refuses %p: %s", (argv, message) => {
    expect(() => spec(argv as string[])).toThrow(message);
  });

  test("-b needs an os-release file", () => {
    const host = fakeHost({ "/srv/bare/usr/lib/systemd/systemd": "" });
    expect(() => spec(["-D", "/srv/bare", "-b"], host)).toThrow("has no os-release file");
  });

  test("the wire encoding is the header, the records and the end marker", () => {
    const s = spec(["-D", "/srv/box", "/bin/true"]);
    const bytes = new TextDecoder().decode(encodeSpec(s));
    const words = bytes.split("\0");
    expect(words.slice(0, 5)).toEqual(["MACHINA-SPEC", "1", "prog", "1", "machina-nspawn"]);
    // The last word is empty: every string, the last one included, ends with NUL.
    expect(words.slice(-5)).toEqual(["args", "0", "end", "0", ""]);
    const records = specRecords(s);
    expect(records.find(([n]) => n === "mount")).toEqual([
      "mount",
      ["tmpfs", "/tmp", "tmpfs", String(MS.NOSUID | MS.NODEV | MS.STRICTATIME), "mode=1777,size=10%,nr_inodes=400k", "dir"],
    ]);
    expect(records.find(([n]) => n === "mknod")).toEqual(["mknod", ["/dev/null", "020666", "1", "3"]]);
  });

  test("machina-oci's hooks: oci_hook STAGE PATH TIMEOUT NARGV ARGV ENV, then each stage's oci_hook_state", () => {
    const s = spec(["-D", "/srv/box", "/bin/true"]);
    s.oci = {
      detach: true,
      execFifo: "/run/f",
      hooks: [
        { stage: "create_container", path: "/c", timeout: 5, argv: ["c0", "x"], env: ["A=1"] },
        { stage: "start_container", path: "/bin/s", timeout: 0, argv: ["/bin/s"], env: [] },
      ],
      hookState: { create_container: '"status":"creating"', start_container: '"status":"created"' },
    };
    expect(specRecords(s).filter(([n]) => n.startsWith("oci_hook"))).toEqual([
      ["oci_hook", ["create_container", "/c", "5", "2", "c0", "x", "A=1"]],
      ["oci_hook", ["start_container", "/bin/s", "0", "1", "/bin/s"]],
      ["oci_hook_state", ["create_container", '"status":"creating"']],
      ["oci_hook_state", ["start_container", '"status":"created"']],
    ]);
  });

  test("image locks: image_lock records right after the registry's state, their images in state.json", () => {
    const host = fakeHost();
    const parsed = parseNspawnCommandLine(["-D", "/srv/box", "/bin/true"], host.env());
    if (parsed.action !== "run") throw new Error("not a run");
    const facts = gatherHostFacts(host, "/run/machina");
    const image = gatherImageFacts(host, "/srv/box", facts.timezone);
    const imageLocks = [{ path: "/run/machina/image-use/1-2", mode: "exclusive" as const, image: "/srv/box" }];
    const s = buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn", imageLocks });
    const names = specRecords(s).map(([n]) => n);
    expect(names.indexOf("image_lock")).toBe(names.indexOf("state_json") + 1);
    expect(specRecords(s).find(([n]) => n === "image_lock")).toEqual(["image_lock", ["/run/machina/image-use/1-2", "exclusive", "/srv/box"]]);
    expect(JSON.parse(`{${s.stateJson}}`).images).toEqual(["/srv/box"]);
    expect(specRecords(spec(["-D", "/srv/box", "/bin/true"])).some(([n]) => n === "image_lock")).toBe(false);
  });
});
