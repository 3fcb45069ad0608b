/** Foreign architectures: the table, ELF detection, binfmt_misc entries and claims (fake host), bootstrap --arch, the spec of an emulated boot. */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { FakeHost } from "../../src/host/fake.ts";
import { BINFMT_DIR, BINFMT_STATE, parseBinfmtEntry, provideBinfmt, releaseBinfmt } from "../../src/runtime/binfmt.ts";
import {
  ARCHITECTURES,
  architectureNamed,
  architectureOfElf,
  architectureOfPlatform,
  architectureOfUname,
  binfmtEscape,
  binfmtMagic,
  foreignArchitecture,
  matchesMagic,
  signalForEmulated,
} from "../../src/settings/architectures.ts";
import { planBootstrap } from "../../src/image/bootstrap.ts";

/** A 64-byte ELF header of `arch` (e_type EXEC or DYN), as a compiler writes it. */
function elfHeader(name: string, type = 3, flags = 0): Uint8Array {
  const a = architectureNamed(name)!;
  const h = new Uint8Array(64);
  h.set([0x7f, 0x45, 0x4c, 0x46, a.elf.class, a.elf.data, 1, 0]);
  const le = a.elf.data === 1;
  const put16 = (off: number, v: number) => h.set(le ? [v & 0xff, v >> 8] : [v >> 8, v & 0xff], off);
  put16(16, type);
  put16(18, a.elf.machine);
  if (a.elf.class === 1)
    h.set(
      le ? [flags & 0xff, (flags >> 8) & 0xff, (flags >> 16) & 0xff, flags >>> 24] : [flags >>> 24, (flags >> 16) & 0xff, (flags >> 8) & 0xff, flags & 0xff],
      36,
    );
  return h;
}

describe("the architecture table", () => {
  test("ELF headers name their architecture; ARM's float ABI tells armhf from armel; anything else is unknown", () => {
    for (const a of ARCHITECTURES) {
      if (a.name === "armel" || a.name === "armhf") continue;
      expect(architectureOfElf(elfHeader(a.name))?.name).toBe(a.name);
    }
    expect(architectureOfElf(elfHeader("armhf", 2, 0x05000400))?.name).toBe("armhf");
    expect(architectureOfElf(elfHeader("armel", 2, 0x05000200))?.name).toBe("armel");
    expect(architectureOfElf(new TextEncoder().encode("#!/bin/sh\necho not an ELF file at all\n"))).toBeUndefined();
    const mips = elfHeader("amd64");
    mips.set([8, 0], 18); // EM_MIPS
    expect(architectureOfElf(mips)).toBeUndefined();
  });

  test("the host's name, Go's platforms, and what runs natively (x86-64 runs i386)", () => {
    expect(architectureOfUname("x86_64")?.name).toBe("amd64");
    expect(architectureOfUname("aarch64")?.name).toBe("arm64");
    expect(architectureOfUname("i686")?.name).toBe("i386");
    expect(architectureOfPlatform("arm64", "v8")?.name).toBe("arm64");
    expect(architectureOfPlatform("arm", "v7")?.name).toBe("armhf");
    expect(architectureOfPlatform("ppc64le", undefined)?.name).toBe("ppc64el");
    expect(foreignArchitecture("x86_64", elfHeader("arm64"))?.name).toBe("arm64");
    expect(foreignArchitecture("x86_64", elfHeader("amd64"))).toBeUndefined();
    expect(foreignArchitecture("x86_64", elfHeader("i386"))).toBeUndefined();
    expect(foreignArchitecture("aarch64", elfHeader("amd64"))?.name).toBe("amd64");
    expect(foreignArchitecture(undefined, elfHeader("arm64"))).toBeUndefined();
  });

  test("binfmt magic and mask: match the architecture's executables and shared objects, and nothing of another", () => {
    for (const a of ARCHITECTURES) {
      const { magic, mask } = binfmtMagic(a);
      expect(magic.length).toBe(20);
      for (const b of ARCHITECTURES) {
        const same = b.elf.class === a.elf.class && b.elf.data === a.elf.data && b.elf.machine === a.elf.machine;
        expect(matchesMagic(elfHeader(b.name, 2), 0, magic, mask)).toBe(same);
        expect(matchesMagic(elfHeader(b.name, 3), 0, magic, mask)).toBe(same);
      }
      expect(matchesMagic(elfHeader(a.name, 1 /* REL: an object file, not run */), 0, magic, mask)).toBe(false);
    }
    expect(binfmtEscape(Uint8Array.from([0x7f, 0x45, 0x00]))).toBe("\\x7f\\x45\\x00");
  });

  // qemu-user-static's own entries (Debian ships them for systemd-binfmt): ours match the same programs
  const debianConf = "/usr/lib/binfmt.d";
  test.skipIf(!existsSync(`${debianConf}/qemu-aarch64.conf`))("agrees with qemu-user-static's binfmt.d entries where both know the architecture", () => {
    const fromEscapes = (s: string) => Uint8Array.from(s.match(/\\x[0-9a-f]{2}/g) ?? [], (x) => parseInt(x.slice(2), 16));
    let compared = 0;
    for (const f of readdirSync(debianConf).filter((f) => /^qemu-.*\.conf$/.test(f))) {
      const [, , , offset, magic, mask] = readFileSync(`${debianConf}/${f}`, "utf8").trim().split(":");
      const theirs = { magic: fromEscapes(magic!), mask: fromEscapes(mask!) };
      for (const a of ARCHITECTURES.filter((a) => `qemu-${a.qemu}.conf` === f)) {
        for (const type of [2, 3])
          expect(matchesMagic(elfHeader(a.name, type, a.elf.hardFloat ? 0x400 : 0), Number(offset || "0"), theirs.magic, theirs.mask)).toBe(true);
        const ours = binfmtMagic(a);
        expect(matchesMagic(theirs.magic, 0, ours.magic, ours.mask)).toBe(true);
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(6);
  });
});

describe("binfmt_misc: reuse the host's entry, else register machina's and claim it", () => {
  const ENTRY = "machina-qemu-aarch64";
  const prog = (root = "/img") => ({ arch: architectureNamed("arm64")!, root, subject: 'machine "arm"', header: elfHeader("arm64") });
  const host = (extra: Record<string, string | { kind: "dir" }> = {}) =>
    new FakeHost({
      env: { PATH: "/usr/bin" },
      files: {
        [`${BINFMT_DIR}/register`]: "",
        [`${BINFMT_DIR}/status`]: "enabled\n",
        "/usr/bin/qemu-aarch64-static": "",
        "/img": { kind: "dir" },
        "/s/machines/arm/lock": "",
        ...extra,
      },
    });

  test("no handler: registers qemu-aarch64-static with flags POF, records it, claims it for the machine; the last release removes it", () => {
    const h = host();
    const use = provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined);
    expect(use).toEqual({ kind: "machina", entry: ENTRY, registered: true, claimed: true });
    const line = h.readFile(`${BINFMT_DIR}/register`)!;
    const { magic, mask } = binfmtMagic(architectureNamed("arm64")!);
    expect(line).toBe(`:${ENTRY}:M::${binfmtEscape(magic)}:${binfmtEscape(mask)}:/usr/bin/qemu-aarch64-static:POF`);
    expect(JSON.parse(h.readFile(`${BINFMT_STATE}/${ENTRY}.added`)!)).toEqual({ architecture: "arm64", interpreter: "/usr/bin/qemu-aarch64-static" });
    const claims = h.readdir(`${BINFMT_STATE}/${ENTRY}.claims`);
    expect(claims).toHaveLength(1);
    expect(claims[0]).toMatch(/^arm@[0-9a-f]{12}$/);
    // the kernel now has the entry; a second machine of another state directory claims it too, and keeps it
    h.add(`${BINFMT_DIR}/${ENTRY}`, "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POF\noffset 0\nmagic 7f454c46\n");
    h.add("/t/machines/arm/lock", "");
    h.heldLocks.add("/t/machines/arm/lock");
    expect(provideBinfmt(h, "/t", prog(), "arm", "x86_64", undefined)).toEqual({ kind: "machina", entry: ENTRY, registered: false, claimed: true });
    expect(releaseBinfmt(h, "/s", "arm")).toEqual([]);
    expect(h.readFile(`${BINFMT_DIR}/${ENTRY}`)).not.toBe("-1");
    expect(releaseBinfmt(h, "/t", "arm")).toEqual([ENTRY]);
    expect(h.readFile(`${BINFMT_DIR}/${ENTRY}`)).toBe("-1");
    expect(h.lstat(`${BINFMT_STATE}/${ENTRY}.added`)).toBeUndefined();
    expect(h.lstat(`${BINFMT_STATE}/${ENTRY}.claims`)).toBeUndefined();
  });

  test("a claim that exists already (a running machine of that name) is not this start's to drop", () => {
    const h = host();
    expect(provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined).kind).toBe("machina");
    h.add(`${BINFMT_DIR}/${ENTRY}`, "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POF\n");
    const again = provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined);
    expect(again).toMatchObject({ claimed: false, registered: false });
  });

  test("the host's own enabled entry with F (systemd-binfmt, binfmt-support) is used and never touched", () => {
    const h = host({
      [`${BINFMT_DIR}/qemu-aarch64`]:
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
    });
    expect(provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined)).toEqual({ kind: "host", entry: "qemu-aarch64" });
    expect(h.readFile(`${BINFMT_DIR}/register`)).toBe("");
    expect(h.lstat(`${BINFMT_STATE}/${ENTRY}.added`)).toBeUndefined();
  });

  test("a host entry without F is used only when its interpreter is inside the image; a disabled one never", () => {
    const entry =
      "interpreter /usr/bin/qemu-aarch64-static\nflags: \noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";
    const inImage = host({ [`${BINFMT_DIR}/old`]: `enabled\n${entry}`, "/img/usr/bin/qemu-aarch64-static": "" });
    expect(provideBinfmt(inImage, "/s", prog(), "arm", "x86_64", undefined)).toEqual({ kind: "host", entry: "old" });
    const notInImage = host({ [`${BINFMT_DIR}/old`]: `enabled\n${entry}` });
    expect(provideBinfmt(notInImage, "/s", prog(), "arm", "x86_64", undefined).kind).toBe("machina");
    const disabled = host({ [`${BINFMT_DIR}/old`]: `disabled\n${entry}`, "/img/usr/bin/qemu-aarch64-static": "" });
    expect(provideBinfmt(disabled, "/s", prog(), "arm", "x86_64", undefined).kind).toBe("machina");
  });

  test("neither a handler nor qemu: one line naming the architecture and the package; nothing recorded", () => {
    const h = host();
    h.nodes.delete("/usr/bin/qemu-aarch64-static");
    let error: unknown;
    try {
      provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined);
    } catch (e) {
      error = e;
    }
    expect(String((error as Error).message)).toBe(
      'machine "arm" is arm64 (aarch64): this x86_64 host runs its programs only through qemu-user, and has neither a binfmt_misc handler for them nor qemu-aarch64-static',
    );
    expect((error as { hint?: string }).hint).toBe("apt-get install qemu-user-static");
    expect(h.readFile(`${BINFMT_DIR}/register`)).toBe("");
    expect(h.readdir(BINFMT_STATE).filter((f) => f !== "lock")).toEqual([]);
    // MACHINA_QEMU_DIR: looked up there only
    const elsewhere = host({ "/opt/qemu/bin/qemu-aarch64-static": "" });
    elsewhere.nodes.delete("/usr/bin/qemu-aarch64-static");
    provideBinfmt(elsewhere, "/s", prog(), "arm", "x86_64", "/opt/qemu/bin");
    expect(elsewhere.readFile(`${BINFMT_DIR}/register`)).toContain(":/opt/qemu/bin/qemu-aarch64-static:POF");
  });

  test("binfmt_misc disabled on the host: refused with the command that enables it", () => {
    const h = host({ [`${BINFMT_DIR}/status`]: "disabled\n" });
    expect(() => provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined)).toThrow("binfmt_misc is disabled on this host");
  });

  test("not mounted: mounted first (as systemd's proc-sys-fs-binfmt_misc.mount)", () => {
    const h = host();
    h.nodes.delete(`${BINFMT_DIR}/register`);
    h.onMount = (target) => {
      if (target === BINFMT_DIR) h.add(`${BINFMT_DIR}/register`, "");
    };
    provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined);
    expect(h.mounts).toEqual([{ source: "binfmt_misc", target: BINFMT_DIR, fstype: "binfmt_misc", flags: 0xe, data: "" }]);
  });

  test("the sweep: a claim of a machine that stopped without its at-exit command (killed) is dropped, and then the entry", () => {
    const h = host();
    provideBinfmt(h, "/s", prog(), "arm", "x86_64", undefined);
    h.add(`${BINFMT_DIR}/${ENTRY}`, "enabled\n");
    const claim = h.readdir(`${BINFMT_STATE}/${ENTRY}.claims`)[0]!;
    // moments after the start the claim stands (the supervisor may not hold its lock yet)
    h.mtimes.set(`${BINFMT_STATE}/${ENTRY}.claims/${claim}`, Date.now());
    expect(releaseBinfmt(h, "/s", undefined)).toEqual([]);
    h.mtimes.set(`${BINFMT_STATE}/${ENTRY}.claims/${claim}`, Date.now() - 600_000);
    h.heldLocks.add("/s/machines/arm/lock"); // running
    expect(releaseBinfmt(h, "/s", undefined)).toEqual([]);
    h.heldLocks.delete("/s/machines/arm/lock"); // killed: its lock is free
    expect(releaseBinfmt(h, "/s", undefined)).toEqual([ENTRY]);
  });

  test("entries of /proc/sys/fs/binfmt_misc parse", () => {
    const e = parseBinfmtEntry("qemu-arm", "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: OCF\noffset 0\nmagic 7f454c46\nmask ffffffff\n");
    expect(e).toEqual({
      name: "qemu-arm",
      enabled: true,
      interpreter: "/usr/bin/qemu-arm-static",
      flags: "OCF",
      offset: 0,
      magic: Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]),
      mask: Uint8Array.from([0xff, 0xff, 0xff, 0xff]),
    });
  });
});

describe("bootstrap --arch", () => {
  const host = (tools: string[]) =>
    new FakeHost({ env: { PATH: "/usr/sbin:/usr/bin" }, files: { "/proc/sys/kernel/arch": "x86_64\n", ...Object.fromEntries(tools.map((t) => [t, ""])) } });
  const req = (distro: string, arch: string | undefined) => ({ name: "img", distro, release: undefined, mirror: undefined, rootPassword: undefined, arch });

  test("debootstrap of another architecture: --arch and --foreign, then the second stage inside the tree", () => {
    const plan = planBootstrap(host(["/usr/sbin/debootstrap"]), req("debian", "arm64"));
    expect(plan.build).toEqual([
      "/usr/sbin/debootstrap",
      "--variant=minbase",
      "--arch=arm64",
      "--foreign",
      "--include=systemd,systemd-sysv,dbus",
      "bookworm",
      "TARGET",
      "http://deb.debian.org/debian",
    ]);
    expect(plan.secondStage).toEqual(["chroot", "TARGET", "/debootstrap/debootstrap", "--second-stage"]);
    expect(plan).toMatchObject({ arch: "arm64", foreign: true });
  });

  test("the host's own (or i386 on x86-64) needs no second stage; mmdebstrap and dnf take it their way; Ubuntu's ports mirror", () => {
    expect(planBootstrap(host(["/usr/sbin/debootstrap"]), req("debian", "i386"))).toMatchObject({ foreign: false, arch: "i386" });
    expect(planBootstrap(host(["/usr/sbin/debootstrap"]), req("debian", "i386")).secondStage).toBeUndefined();
    expect(planBootstrap(host(["/usr/sbin/debootstrap"]), req("debian", undefined))).toMatchObject({ foreign: false, arch: "amd64" });
    expect(planBootstrap(host(["/usr/bin/mmdebstrap"]), req("debian", "riscv64")).build).toContain("--architectures=riscv64");
    expect(planBootstrap(host(["/usr/bin/dnf"]), req("fedora", "arm64")).build).toContain("--forcearch=aarch64");
    expect(planBootstrap(host(["/usr/sbin/debootstrap"]), req("ubuntu", "arm64")).build).toContain("http://ports.ubuntu.com/ubuntu-ports");
  });

  test("an unknown architecture, or one the distribution lacks: one line naming the flag and what is allowed", () => {
    expect(() => planBootstrap(host(["/usr/sbin/debootstrap"]), req("debian", "sparc"))).toThrow(
      'unknown architecture "sparc" for --arch: allowed are amd64, i386, arm64, armhf, armel, ppc64el, s390x, riscv64',
    );
    expect(() => planBootstrap(host(["/usr/bin/dnf"]), req("fedora", "armhf"))).toThrow(
      "Fedora has no armhf architecture: allowed are amd64, arm64, ppc64el, s390x, riscv64",
    );
  });
});

describe("the spec of a container of another architecture", () => {
  const build = async (argv: string[], arch: string, binfmtClaim = false) => {
    const { gatherHostFacts, gatherImageFacts } = await import("../../src/host/facts.ts");
    const { parseNspawnCommandLine } = await import("../../src/settings/nspawn-cli.ts");
    const { buildSpec } = await import("../../src/spec/build.ts");
    const h = new FakeHost({
      env: { TERM: "xterm" },
      files: {
        "/proc/sys/kernel/arch": "x86_64\n",
        "/srv/arm/usr/lib/systemd/systemd": "",
        "/srv/arm/sbin/init": { kind: "symlink", target: "/usr/lib/systemd/systemd" },
        "/srv/arm/usr/bin/sh": "",
        "/srv/arm/etc/os-release": "ID=debian\nVERSION_ID=12\n",
        "/srv/arm/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
      },
    });
    h.bytes.set("/srv/arm/usr/lib/systemd/systemd", elfHeader(arch));
    const parsed = parseNspawnCommandLine(argv, h.env());
    if (parsed.action !== "run") throw new Error("not a run");
    const facts = gatherHostFacts(h, "/run/machina");
    const image = gatherImageFacts(h, parsed.settings.directory!, facts.timezone);
    return buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn", netTeardown: ["/bin/machina-net", "teardown"], binfmtClaim });
  };
  const dropin = (s: { ops: Array<{ op: string; path?: string }> }) =>
    s.ops.find((o) => o.op === "write" && o.path === "/run/systemd/system/service.d/50-machina-qemu-user.conf");

  test("booted under emulation: the services' credentials emptied and networkd masked in /run, the architecture recorded, the claim released at exit", async () => {
    const s = await build(["-D", "/srv/arm", "-b"], "arm64", true);
    expect(s.ops).toContainEqual({ op: "symlink", target: "/dev/null", path: "/run/systemd/system/systemd-networkd.service" });
    expect(dropin(s)).toMatchObject({ mode: 0o644, content: expect.stringContaining("[Service]\nLoadCredential=\n") });
    expect(JSON.parse(`{${s.stateJson}}`)).toMatchObject({ architecture: "arm64", emulated: true });
    expect(s.onExit).toEqual(["/bin/machina-net", "teardown", "arm"]);
  });

  test("the supervisor's kill signal reaches an emulated init as meant: qemu-user shifts the real-time signals by 2", async () => {
    // SIGRTMIN+3 (37, halt) would reach the emulated systemd as SIGRTMIN+1 (rescue): 39 is sent
    expect((await build(["-D", "/srv/arm", "-b"], "arm64")).killSignal).toBe(39);
    expect((await build(["-D", "/srv/arm", "-b"], "amd64")).killSignal).toBe(37);
    expect((await build(["-D", "/srv/arm", "-b", "--kill-signal=SIGRTMIN+4"], "arm64")).killSignal).toBe(40);
    expect((await build(["-D", "/srv/arm", "-b", "--kill-signal=SIGTERM"], "arm64")).killSignal).toBe(15);
    expect((await build(["-D", "/srv/arm", "/bin/true"], "arm64")).killSignal).toBe(9);
    expect([signalForEmulated(15), signalForEmulated(34), signalForEmulated(62), signalForEmulated(64)]).toEqual([15, 36, 64, 64]);
  });

  test("a command under emulation: no drop-in (no systemd), no at-exit command when the host's entry runs it; the host's own architecture: nothing of it at all", async () => {
    const cmd = await build(["-D", "/srv/arm", "/bin/true"], "arm64");
    expect(dropin(cmd)).toBeUndefined();
    expect(cmd.onExit).toBeUndefined();
    const native = await build(["-D", "/srv/arm", "-b"], "amd64");
    expect(dropin(native)).toBeUndefined();
    expect(JSON.parse(`{${native.stateJson}}`)).toMatchObject({ architecture: "amd64", emulated: false });
    expect(native.onExit).toBeUndefined();
  });
});

describe("binfmt_misc: an entry of machina's name that machina did not record", () => {
  test("enabled with F: borrowed like any host entry, never removed; disabled: refused, not replaced", () => {
    const files = (state: string) => ({
      [`${BINFMT_DIR}/register`]: "",
      [`${BINFMT_DIR}/status`]: "enabled\n",
      [`${BINFMT_DIR}/machina-qemu-aarch64`]: `${state}\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n`,
      "/usr/bin/qemu-aarch64-static": "",
      "/img": { kind: "dir" as const },
    });
    const prog = { arch: architectureNamed("arm64")!, root: "/img", subject: "x", header: elfHeader("arm64") };
    const enabled = new FakeHost({ env: { PATH: "/usr/bin" }, files: files("enabled") });
    expect(provideBinfmt(enabled, "/s", prog, "arm", "x86_64", undefined)).toEqual({ kind: "host", entry: "machina-qemu-aarch64" });
    expect(releaseBinfmt(enabled, "/s", "arm")).toEqual([]);
    expect(enabled.readFile(`${BINFMT_DIR}/machina-qemu-aarch64`)).toStartWith("enabled");
    const disabled = new FakeHost({ env: { PATH: "/usr/bin" }, files: files("disabled") });
    expect(() => provideBinfmt(disabled, "/s", prog, "arm", "x86_64", undefined)).toThrow("was not made by machina");
    expect(disabled.readFile(`${BINFMT_DIR}/machina-qemu-aarch64`)).toStartWith("disabled");
  });
});
