/**
 * -Z/--selinux-context= and -L/--selinux-apifs-context=: the command line, the host fact
 * (SELinux enabled?), the plan on a host with SELinux (fake: selinuxfs mounted with `enforce`)
 * and the refusal on a host without it, the machine's state and the enter spec.
 */
import { describe, expect, test } from "bun:test";
import { MachinaError, renderError } from "../../src/errors.ts";
import { FakeHost, type FakeNode } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts, parseSelinuxfs } from "../../src/host/facts.ts";
import { gatherUsernsFacts } from "../../src/host/userns-facts.ts";
import { commandSpec } from "../../src/machine/enter.ts";
import type { Machine } from "../../src/machine/machines.ts";
import { readState } from "../../src/machine/registry.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";
import type { Confinement } from "../../src/spec/confinement.ts";

const CONFINED: Confinement = { version: 1, caps_bounding: "a80425fb", caps_ambient: "0", no_new_privs: false, rlimits: [], seccomp: [] };

const CGROUP2 = "31 30 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw";
const SELINUXFS = "40 22 0:21 / /sys/fs/selinux rw,nosuid,noexec,relatime shared:7 - selinuxfs selinuxfs rw";
const LABEL = "system_u:system_r:container_t:s0:c1,c2";
const FS_LABEL = "system_u:object_r:container_file_t:s0:c1,c2";

function host(selinux: "enabled" | "no-enforce" | "absent", extra: Record<string, string | FakeNode> = {}) {
  return new FakeHost({
    files: {
      "/usr/lib/os-release": "ID=debian\n",
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/os-release": "ID=busybox\n",
      ...(selinux === "enabled" ? { "/sys/fs/selinux/enforce": "1" } : {}),
      ...extra,
    },
    mountinfo: [CGROUP2, ...(selinux === "absent" ? [] : [SELINUXFS])].join("\n"),
  });
}

function spec(argv: string[], h = host("enabled")): RunSpec {
  const parsed = parseNspawnCommandLine(argv, h.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const facts = gatherHostFacts(h, "/run/machina");
  const image = gatherImageFacts(h, parsed.settings.directory!, facts.timezone);
  if (parsed.settings.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(h, image.root, facts.stateDir);
  return buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn" });
}

const records = (s: RunSpec, ...names: string[]) => specRecords(s).filter(([n]) => names.includes(n));
const mountData = (s: RunSpec) => Object.fromEntries(s.ops.flatMap((o) => (o.op === "mount" && o.fstype !== "" ? [[o.target, o.data]] : [])));

describe("command line", () => {
  const settings = (argv: string[]) => {
    const p = parseNspawnCommandLine(["-D", "/srv/box", ...argv], {});
    if (p.action !== "run") throw new Error("not a run");
    return p.settings;
  };
  test("-Z, --selinux-context=, -L, --selinux-apifs-context= (no longer refused as unsupported)", () => {
    expect(settings(["-Z", LABEL]).selinuxContext).toBe(LABEL);
    expect(settings([`--selinux-context=${LABEL}`]).selinuxContext).toBe(LABEL);
    expect(settings(["-L", FS_LABEL]).selinuxApifsContext).toBe(FS_LABEL);
    expect(settings([`--selinux-apifs-context=${FS_LABEL}`]).selinuxApifsContext).toBe(FS_LABEL);
    expect(settings(["-Z", LABEL, "-L", FS_LABEL]).unsupported).toEqual([]);
  });
  test("an empty value resets", () => {
    expect(settings(["-Z", LABEL, "--selinux-context="]).selinuxContext).toBeUndefined();
    expect(settings(["-L", FS_LABEL, "-L", ""]).selinuxApifsContext).toBeUndefined();
  });
  test("a value that cannot be a label (or be quoted in mount options) is refused by name", () => {
    for (const bad of ['a:b:c"d', "a:b c", "a:b\\c", "container_t", "a:b:c\n"])
      expect(() => settings(["-L", bad])).toThrow(
        `invalid value ${JSON.stringify(bad)} for -L: expected an SELinux context such as system_u:system_r:container_t:s0 (no quotes, backslashes or spaces)`,
      );
  });
});

describe("host fact: SELinux enabled", () => {
  test("selinuxfs mounted with its enforce file", () => {
    expect(gatherHostFacts(host("enabled"), "/run/machina").selinux).toEqual({ enabled: true, fs: "/sys/fs/selinux" });
    expect(gatherHostFacts(host("no-enforce"), "/run/machina").selinux).toEqual({ enabled: false, fs: "/sys/fs/selinux" });
    expect(gatherHostFacts(host("absent"), "/run/machina").selinux).toEqual({ enabled: false, fs: undefined });
  });
  test("parseSelinuxfs: the mount point, unescaped", () => {
    expect(parseSelinuxfs(`${CGROUP2}\n${SELINUXFS}`)).toBe("/sys/fs/selinux");
    expect(parseSelinuxfs("50 1 0:30 / /se\\040fs rw - selinuxfs selinuxfs rw")).toBe("/se fs");
    expect(parseSelinuxfs(CGROUP2)).toBeUndefined();
  });
});

describe("plan on a host with SELinux", () => {
  test("-Z: the selinux_context record (payload), and the label in the machine's state", () => {
    const s = spec(["-D", "/srv/box", "-Z", LABEL, "/bin/true"]);
    expect(records(s, "selinux_context")).toEqual([["selinux_context", [LABEL]]]);
    // just before the exec candidates, with the other payload records
    const names = specRecords(s).map(([n]) => n);
    expect(names.indexOf("selinux_context")).toBeLessThan(names.indexOf("exec"));
    expect(JSON.parse(`{${s.stateJson}}`).selinux_context).toBe(LABEL);
    // -Z alone labels no file system
    expect(JSON.stringify(s.ops)).not.toContain("context=");
  });

  test("without -Z: no record, no state member", () => {
    const s = spec(["-D", "/srv/box", "/bin/true"]);
    expect(records(s, "selinux_context")).toEqual([]);
    expect(JSON.parse(`{${s.stateJson}}`)).not.toHaveProperty("selinux_context");
  });

  test('-L: context="…" appended to nspawn\'s API file systems (every tmpfs and devpts), not mqueue/proc/sysfs/cgroup2', () => {
    const s = spec(["-D", "/srv/box", "-L", FS_LABEL, "/bin/true"]);
    const ctx = `context="${FS_LABEL}"`;
    expect(mountData(s)).toEqual({
      "/tmp": `mode=1777,size=10%,nr_inodes=400k,${ctx}`,
      "/sys": "",
      "/dev": `mode=0755,size=4m,nr_inodes=64k,${ctx}`,
      "/dev/shm": `mode=1777,size=10%,nr_inodes=400k,${ctx}`,
      "/dev/pts": `newinstance,ptmxmode=0666,mode=620,gid=5,${ctx}`,
      "/dev/mqueue": "",
      "/run": `mode=0755,size=20%,nr_inodes=800k,${ctx}`,
      "/proc": "",
      "/sys/fs/cgroup": "",
    });
    expect(records(s, "selinux_context")).toEqual([]);
  });

  test("-L also labels --tmpfs= and the --volatile= tmpfs, not the tmpfs under -x (nspawn copies the image there)", () => {
    const ctx = `context="${FS_LABEL}"`;
    expect(mountData(spec(["-D", "/srv/box", "-L", FS_LABEL, "--tmpfs=/scratch:mode=0700", "/bin/true"]))["/scratch"]).toBe(`mode=0700,${ctx}`);
    expect(mountData(spec(["-D", "/srv/box", "-L", FS_LABEL, "--tmpfs=/empty:", "/bin/true"]))["/empty"]).toMatch(
      new RegExp(`${ctx.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`),
    );
    expect(mountData(spec(["-D", "/srv/box", "-L", FS_LABEL, "--volatile=state", "/bin/true"]))["/var"]).toMatch(
      /,context="system_u:object_r:container_file_t:s0:c1,c2"$/,
    );
    const yes = spec(["-D", "/srv/box", "-L", FS_LABEL, "--volatile=yes", "/bin/true"]);
    expect(records(yes, "root_tmpfs")[0]![1][0]).toEndWith(`,${ctx}`);
    const overlay = spec(["-D", "/srv/box", "-L", FS_LABEL, "--volatile=overlay", "/bin/true"]);
    expect(records(overlay, "root_overlay")[0]![1][0]).toEndWith(`,${ctx}`);
    const ephemeral = spec(["-D", "/srv/box", "-L", FS_LABEL, "-x", "/bin/true"]);
    expect(records(ephemeral, "root_overlay")[0]![1][0]).not.toContain("context=");
  });

  test("-L with -U: the devpts and tmpfs data carry the context the same way", () => {
    const h = host("enabled", { "/etc/passwd": "root:x:0:0::/root:/bin/sh\n", "/etc/group": "root:x:0:\n" });
    const s = spec(["-D", "/srv/box", "-L", FS_LABEL, "--private-users=1048576:65536", "--private-users-ownership=off", "/bin/true"], h);
    expect(mountData(s)["/dev/pts"]).toBe(`newinstance,ptmxmode=0666,mode=620,gid=1048581,context="${FS_LABEL}"`); // gid= as a host id: the setup runs outside the user namespace
    expect(s.namespaces).toContain("user");
  });
});

describe("refusal on a host without SELinux", () => {
  const refusal = (argv: string[], h: FakeHost) => {
    try {
      spec(["-D", "/srv/box", ...argv, "/bin/true"], h);
    } catch (e) {
      expect(e).toBeInstanceOf(MachinaError);
      expect((e as MachinaError).code).toBe("E_UNSUPPORTED");
      return renderError("machina-nspawn", e);
    }
    throw new Error("not refused");
  };
  for (const kind of ["absent", "no-enforce"] as const) {
    test(`selinuxfs ${kind === "absent" ? "not mounted" : "without enforce"}: one line naming the flag as given`, () => {
      const h = host(kind);
      expect(refusal(["--selinux-context=" + LABEL], h)).toBe("machina-nspawn: --selinux-context= requires SELinux, which is not enabled on this host");
      expect(refusal(["-Z", LABEL], h)).toBe("machina-nspawn: -Z requires SELinux, which is not enabled on this host");
      expect(refusal(["--selinux-apifs-context=" + FS_LABEL], h)).toBe(
        "machina-nspawn: --selinux-apifs-context= requires SELinux, which is not enabled on this host",
      );
      expect(refusal(["-L", FS_LABEL], h)).toBe("machina-nspawn: -L requires SELinux, which is not enabled on this host");
    });
  }
  test("nothing asked, nothing refused", () => {
    expect(() => spec(["-D", "/srv/box", "-Z", LABEL, "-Z", "", "/bin/true"], host("absent"))).not.toThrow();
  });
});

describe("entering: the label is kept in the state and given to what is entered", () => {
  const state = (extra: string) => `{"leader":200,"supervisor":100,"name":"web","root":"/srv/box","cgroups":[]${extra}}`;
  test("readState: selinux_context", () => {
    const h = new FakeHost({ files: { "/run/machina/machines/web/state.json": state(`,"selinux_context":"${LABEL}"`) } });
    expect(readState(h, "/run/machina", "web")?.selinuxContext).toBe(LABEL);
    const plain = new FakeHost({ files: { "/run/machina/machines/web/state.json": state("") } });
    expect(readState(plain, "/run/machina", "web")).not.toHaveProperty("selinuxContext");
  });

  const machine = (selinuxContext?: string): Machine => ({
    name: "web",
    class: "container",
    service: "machina-nspawn",
    state: "running",
    leader: 200,
    supervisor: 100,
    root: "/srv/box",
    uuid: "",
    boot: false,
    timestampUsec: 0,
    timestampMonotonicUsec: 0,
    cgroupDir: "",
    controlGroup: "",
    unit: "",
    cgroups: [],
    os: "",
    version: "",
    architecture: "",
    emulated: false,
    ...(selinuxContext !== undefined ? { selinuxContext } : {}),
  });
  const h = new FakeHost({
    files: {
      "/proc/200/status": "CapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n",
      "/proc/200/root/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    },
  });
  test("commandSpec: the selinux_context record with the machine's label", () => {
    const r = commandSpec(h, machine(LABEL), { console: "pipe", command: ["/bin/true"] }, CONFINED);
    expect(r.filter(([n]) => n === "selinux_context")).toEqual([["selinux_context", [LABEL]]]);
    expect(r.findIndex(([n]) => n === "selinux_context")).toBeLessThan(r.findIndex(([n]) => n === "exec"));
  });
  test("commandSpec: none without -Z", () => {
    const r = commandSpec(h, machine(), { console: "pipe", command: ["/bin/true"] }, CONFINED);
    expect(r.some(([n]) => n === "selinux_context")).toBe(false);
  });
});
