/** Transfers, the pure parts: the archive scanner's policy, compression detection, names, checksums, the bootstrap plan. */
import { describe, expect, test } from "bun:test";
import * as tarStream from "tar-stream";
import { FakeHost } from "../../src/host/fake.ts";
import { normalizeMemberName, scanArchive } from "../../src/image/archive-scan.ts";
import { bootstrap, NETWORK_UNITS, planBootstrap } from "../../src/image/bootstrap.ts";
import { enableUnits } from "../../src/image/enable-units.ts";
import { compressionFromSuffix, detectCompression, stripImageSuffixes } from "../../src/image/compression.ts";
import { checksumFor, clearsignedBody, pullUrlProblem } from "../../src/image/transfer.ts";

async function pack(entries: Array<Partial<tarStream.Header> & { name: string; data?: string }>): Promise<Uint8Array> {
  const p = tarStream.pack();
  const chunks: Uint8Array[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Uint8Array);
  });
  const end = new Promise<void>((r) => p.on("end", () => r()));
  for (const { data, ...h } of entries) p.entry(h as tarStream.Header, data ?? "");
  p.finalize();
  await end;
  return Buffer.concat(chunks);
}

describe("scanner", () => {
  test("member names", () => {
    expect(normalizeMemberName("./a//b/")).toEqual(["a", "b"]);
    expect(normalizeMemberName(".")).toEqual([]);
    expect(normalizeMemberName("a/../b")).toBe("`..` component");
    expect(normalizeMemberName("/etc")).toBe("absolute path");
  });
  test("a normal tree passes; escapes are refused", async () => {
    expect(
      (
        await scanArchive([
          await pack([
            { name: "./", type: "directory" },
            { name: "etc/passwd", data: "root" },
            { name: "etc/pw", type: "link", linkname: "etc/passwd" },
            { name: "bin", type: "symlink", linkname: "usr/bin" },
          ]),
        ])
      ).entries,
    ).toBe(4);
    await expect(
      scanArchive([
        await pack([
          { name: "l", type: "symlink", linkname: "/" },
          { name: "l/etc/x", data: "x" },
        ]),
      ]),
    ).rejects.toThrow(/through a symlink/);
    await expect(scanArchive([await pack([{ name: "h", type: "link", linkname: "etc/shadow" }])])).rejects.toThrow(/not an earlier regular file/);
  });
  test("limits", async () => {
    const a = await pack(Array.from({ length: 5 }, (_, i) => ({ name: `f${i}`, data: "x".repeat(1000) })));
    await expect(scanArchive([a], { maxEntries: 4, maxBytes: 1e9, maxDepth: 256 })).rejects.toThrow(/more than 4 entries/);
    await expect(scanArchive([a], { maxEntries: 100, maxBytes: 3000, maxDepth: 256 })).rejects.toThrow(/more than 3000 bytes/);
  });
});

describe("compression and names", () => {
  test("magic bytes", () => {
    expect(detectCompression(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0]))).toBe("gzip");
    expect(detectCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))).toBe("xz");
    expect(detectCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0]))).toBe("zstd");
    expect(detectCompression(new Uint8Array([0x42, 0x5a, 0x68, 0x39, 0, 0]))).toBe("bzip2");
    expect(detectCompression(new Uint8Array([0x2e, 0x2f, 0, 0, 0, 0]))).toBe("uncompressed");
  });
  test("suffixes", () => {
    expect(compressionFromSuffix("x.tar.zst")).toBe("zstd");
    expect(compressionFromSuffix("x.tar")).toBeUndefined();
    expect(stripImageSuffixes("fedora-41.tar.xz", "tar")).toBe("fedora-41");
    expect(stripImageSuffixes("disk.raw.gz", "raw")).toBe("disk");
  });
  test("checksum lists and URLs", () => {
    const h = "a".repeat(64);
    expect(checksumFor(`${"b".repeat(64)}  other\n${h} *img.tar.xz\n`, "img.tar.xz")).toBe(h);
    expect(checksumFor(`${h}  img.tar.xz\n`, "img.tar")).toBeUndefined();
    expect(clearsignedBody(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${h}  x\n- -dash\n-----BEGIN PGP SIGNATURE-----\nsig\n`)).toBe(
      `${h}  x\n-dash`,
    );
    expect(pullUrlProblem("ftp://x/y")).toContain("http");
    expect(pullUrlProblem("https://example.invalid/a.tar")).toBeUndefined();
  });
});

describe("bootstrap plan", () => {
  const pool = "/pool";
  test("debootstrap for debian (mmdebstrap preferred when present); a missing tool is refused clearly", () => {
    const h = new FakeHost({ files: { "/usr/sbin/debootstrap": "" } });
    const p = planBootstrap(h, { name: "deb", distro: "debian", release: undefined, mirror: undefined, rootPassword: undefined });
    expect(p.build).toEqual([
      "/usr/sbin/debootstrap",
      "--variant=minbase",
      "--include=systemd,systemd-sysv,dbus",
      "bookworm",
      "TARGET",
      "http://deb.debian.org/debian",
    ]);
    const h2 = new FakeHost({ files: { "/usr/sbin/debootstrap": "", "/usr/bin/mmdebstrap": "" } });
    expect(planBootstrap(h2, { name: "u", distro: "ubuntu", release: "jammy", mirror: "http://m/ubuntu", rootPassword: "pw" }).build.slice(0, 1)).toEqual([
      "/usr/bin/mmdebstrap",
    ]);
    expect(() => planBootstrap(new FakeHost(), { name: "f", distro: "fedora", release: "41", mirror: undefined, rootPassword: undefined })).toThrow(
      'bootstrap needs "dnf" (Debian package dnf): apt-get install dnf',
    );
    expect(() => planBootstrap(new FakeHost(), { name: "d", distro: "debian", release: undefined, mirror: undefined, rootPassword: undefined })).toThrow(
      'bootstrap needs "debootstrap" (Debian package debootstrap): apt-get install debootstrap',
    );
    expect(() => planBootstrap(h, { name: "x", distro: "arch", release: undefined, mirror: undefined, rootPassword: undefined })).toThrow(
      /unknown distribution/,
    );
    expect(() => planBootstrap(h, { name: ".#x", distro: "debian", release: undefined, mirror: undefined, rootPassword: undefined })).toThrow(/reserved/);
  });
  test("carried out on the fake host: build into a .# temporary, set up, rename", async () => {
    const h = new FakeHost({ files: { "/usr/sbin/debootstrap": "", [`${pool}/.keep`]: "", "/state/x": "" } });
    await bootstrap(
      { host: h, paths: { helper: "", stateDir: "/state", pool: [pool] }, force: false, log: () => undefined },
      { name: "deb", distro: "debian", release: "bookworm", mirror: undefined, rootPassword: "s3cret" },
    );
    const build = h.asyncRuns.map((r) => r.argv).find((c) => c[0] === "/usr/sbin/debootstrap")!;
    expect(build[4]).toMatch(/^\/pool\/\.#deb-[0-9a-f]{8}$/);
    const tmp = build[4]!;
    expect(h.commands).toContainEqual(["chroot", tmp, "chpasswd"]);
    expect(h.inputs).toContain("root:s3cret\n");
    expect(h.readFile(`${pool}/deb/etc/machine-id`)).toBe("");
    expect(h.lstat(tmp)).toBeUndefined();
  });
});

describe("enableUnits (systemctl --root enable, for bootstrap)", () => {
  const unit = (install: string) => `[Unit]\nDescription=x\n\n[Service]\nExecStart=/bin/true\n\n[Install]\n${install}\n`;
  test("WantedBy/RequiredBy/Alias links, Also followed, missing/masked/template units skipped, existing links kept", () => {
    const h = new FakeHost({
      files: {
        "/t/etc/systemd/system/multi-user.target.wants/other.service": { kind: "symlink", target: "/lib/systemd/system/other.service" },
        "/t/etc/systemd/system/masked.service": { kind: "symlink", target: "/dev/null" },
        "/t/lib/systemd/system/masked.service": unit("WantedBy=multi-user.target"),
        "/t/lib/systemd/system/systemd-networkd.service": unit(
          "WantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\nAlso=not-installed.service masked.service",
        ),
        "/t/lib/systemd/system/systemd-networkd.socket": unit("WantedBy=sockets.target"),
        "/t/usr/lib/systemd/system/needs.service": unit("RequiredBy=basic.target foo.target"),
        "/t/lib/systemd/system/tpl@.service": unit("WantedBy=multi-user.target"),
      },
    });
    const made = enableUnits(h, "/t", ["systemd-networkd.service", "systemd-resolved.service", "needs.service", "tpl@.service"]);
    expect(made).toEqual([
      { path: "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", target: "/lib/systemd/system/systemd-networkd.service" },
      { path: "/etc/systemd/system/dbus-org.freedesktop.network1.service", target: "/lib/systemd/system/systemd-networkd.service" },
      { path: "/etc/systemd/system/basic.target.requires/needs.service", target: "/usr/lib/systemd/system/needs.service" },
      { path: "/etc/systemd/system/foo.target.requires/needs.service", target: "/usr/lib/systemd/system/needs.service" },
      { path: "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket", target: "/lib/systemd/system/systemd-networkd.socket" },
    ]);
    expect(h.readlink("/t/etc/systemd/system/sockets.target.wants/systemd-networkd.socket")).toBe("/lib/systemd/system/systemd-networkd.socket");
    expect(h.lstat("/t/etc/systemd/system/multi-user.target.wants/masked.service")).toBeUndefined();
    expect(h.readlink("/t/etc/systemd/system/multi-user.target.wants/other.service")).toBe("/lib/systemd/system/other.service");
    // again: nothing new
    expect(enableUnits(h, "/t", ["systemd-networkd.service"])).toEqual([]);
  });
  test("a tree without the units: nothing is made", () => {
    const h = new FakeHost({ files: { "/t/etc/os-release": "" } });
    expect(enableUnits(h, "/t", NETWORK_UNITS)).toEqual([]);
    expect(h.lstat("/t/etc/systemd")).toBeUndefined();
  });
});
