import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxHost } from "../../src/host/linux.ts";
import { BusyboxImageError, busyboxApplets, makeBusyboxImage } from "../../src/image/busybox-image.ts";

const host = new LinuxHost();

const haveBusybox = existsSync("/bin/busybox");

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "machina-bbimg-"));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** nothing but `keep` left in dir (in particular no `.#` temporaries) */
function entries(dir: string): string[] {
  return readdirSync(dir).sort();
}

describe.if(haveBusybox)("makeBusyboxImage", () => {
  test("builds the expected tree", async () => {
    const fakeProbe = join(work, "fake-probe");
    writeFileSync(fakeProbe, "#!/bin/sh\necho {}\n");
    const dest = join(work, "bb");
    await makeBusyboxImage(host, dest, { probe: fakeProbe });

    expect(entries(work)).toEqual(["bb", "fake-probe"]);
    for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "tmp", "var/tmp", "root", "home"]) {
      expect(statSync(join(dest, d)).isDirectory()).toBe(true);
    }
    expect(statSync(join(dest, "tmp")).mode & 0o7777).toBe(0o1777);
    expect(statSync(join(dest, "var/tmp")).mode & 0o7777).toBe(0o1777);
    expect(statSync(join(dest, "root")).mode & 0o7777).toBe(0o700);
    expect(statSync(join(dest, ".")).mode & 0o7777).toBe(0o755);

    const bb = statSync(join(dest, "bin/busybox"));
    expect(bb.isFile()).toBe(true);
    expect(bb.mode & 0o777).toBe(0o755);
    expect(bb.size).toBe(statSync("/bin/busybox").size);

    // every applet is a symlink to /bin/busybox, except init (left out by default)
    const applets = await busyboxApplets(host);
    for (const a of applets) {
      if (a === "bin/busybox") continue;
      const p = join(dest, a);
      if (a === "sbin/init" || a === "linuxrc") {
        expect(existsSync(p)).toBe(false);
        continue;
      }
      expect(lstatSync(p).isSymbolicLink()).toBe(true);
      expect(readlinkSync(p)).toBe("/bin/busybox");
    }
    expect(readlinkSync(join(dest, "bin/sh"))).toBe("/bin/busybox");

    const osr = readFileSync(join(dest, "usr/lib/os-release"), "utf8");
    expect(osr).toContain("ID=busybox\n");
    expect(osr).toMatch(/^VERSION_ID=\d+\.\d+\.\d+$/m);
    expect(osr).toMatch(/^PRETTY_NAME=".+"$/m);
    expect(osr).toMatch(/^NAME=".+"$/m);
    expect(readlinkSync(join(dest, "etc/os-release"))).toBe("../usr/lib/os-release");
    expect(readFileSync(join(dest, "etc/os-release"), "utf8")).toBe(osr);

    const passwd = readFileSync(join(dest, "etc/passwd"), "utf8");
    expect(passwd).toMatch(/^root:x:0:0:/m);
    expect(passwd).toMatch(/^nobody:x:65534:65534:/m);
    expect(passwd).toMatch(/^user:x:1000:1000:[^:]*:\/home\/user:\/bin\/sh$/m);
    const group = readFileSync(join(dest, "etc/group"), "utf8");
    expect(group).toMatch(/^root:x:0:$/m);
    expect(group).toMatch(/^user:x:1000:$/m);
    expect(readFileSync(join(dest, "etc/inittab"), "utf8")).toContain("console::respawn:-/bin/sh");

    expect(existsSync(join(dest, "etc/hostname"))).toBe(false);
    expect(existsSync(join(dest, "etc/machine-id"))).toBe(false);

    const probe = statSync(join(dest, "usr/bin/probe"));
    expect(probe.mode & 0o777).toBe(0o755);
    expect(readFileSync(join(dest, "usr/bin/probe"), "utf8")).toBe("#!/bin/sh\necho {}\n");

    if (process.getuid?.() === 0) {
      expect(statSync(join(dest, "home/user")).uid).toBe(1000);
    }

    // the image's shell actually runs (static busybox, host kernel)
    const r = Bun.spawnSync([join(dest, "bin/busybox"), "sh", "-c", "echo ok"]);
    expect(r.stdout.toString()).toBe("ok\n");
    rmSync(dest, { recursive: true, force: true });
  });

  test("init: true links /sbin/init", async () => {
    const dest = join(work, "bb-init");
    await makeBusyboxImage(host, dest, { init: true });
    expect(readlinkSync(join(dest, "sbin/init"))).toBe("/bin/busybox");
    expect(existsSync(join(dest, "usr/bin/probe"))).toBe(false);
    rmSync(dest, { recursive: true, force: true });
  });

  test("refuses an existing destination and leaves it untouched", async () => {
    const dest = join(work, "exists");
    writeFileSync(dest, "keep");
    const err = await makeBusyboxImage(host, dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusyboxImageError);
    expect((err as BusyboxImageError).code).toBe("DEST_EXISTS");
    expect(readFileSync(dest, "utf8")).toBe("keep");
    expect(entries(work).filter((n) => n.startsWith(".#"))).toEqual([]);
    rmSync(dest);
  });

  test("missing busybox: clear error with the apt-get hint, nothing created", async () => {
    const dest = join(work, "nobb");
    const err = await makeBusyboxImage(host, dest, { busybox: join(work, "no-such-busybox") }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusyboxImageError);
    expect((err as BusyboxImageError).code).toBe("BUSYBOX_MISSING");
    expect((err as Error).message).toContain("apt-get install busybox-static");
    expect(existsSync(dest)).toBe(false);
    expect(entries(work).filter((n) => n.startsWith(".#") || n === "nobb")).toEqual([]);
  });

  test("missing probe: PROBE_MISSING, nothing created", async () => {
    const dest = join(work, "noprobe");
    const err = await makeBusyboxImage(host, dest, { probe: join(work, "no-probe") }).catch((e: unknown) => e);
    expect((err as BusyboxImageError).code).toBe("PROBE_MISSING");
    expect(existsSync(dest)).toBe(false);
  });

  test("failure halfway removes the temporary tree", async () => {
    // a probe that is a directory passes the existence check but copyFile fails
    // after the tree has been populated
    const probeDir = join(work, "probe-is-a-dir");
    await Bun.write(join(probeDir, "x"), "x");
    const dest = join(work, "half");
    const err = await makeBusyboxImage(host, dest, { probe: probeDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusyboxImageError);
    expect((err as BusyboxImageError).code).toBe("BUILD_FAILED");
    expect(existsSync(dest)).toBe(false);
    expect(entries(work).filter((n) => n.startsWith(".#"))).toEqual([]);
    rmSync(probeDir, { recursive: true, force: true });
  });

  test("missing parent directory", async () => {
    const err = await makeBusyboxImage(host, join(work, "no/such/dir/img")).catch((e: unknown) => e);
    expect((err as BusyboxImageError).code).toBe("DEST_PARENT_MISSING");
  });
});
