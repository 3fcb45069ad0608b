import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import {
  beginTemporary,
  checkImageName,
  cleanTemporaries,
  discoverImages,
  ensureWritablePool,
  findImage,
  imageNameProblem,
  lockImage,
  lockImages,
  validImageName,
} from "../../src/image/pool.ts";

const POOL = ["/pool", "/usr/local/lib/machines", "/usr/lib/machines"];
const STATE = "/run/m";

describe("image names", () => {
  test("valid names", () => {
    for (const n of ["debian", "a", ".hidden", "my image", "x.y-z_1", "ü", "a".repeat(251)]) expect(imageNameProblem(n)).toBeUndefined();
  });
  test("invalid names, with reasons", () => {
    expect(imageNameProblem("")).toContain("empty");
    expect(imageNameProblem(".")).toContain("not a file name");
    expect(imageNameProblem("..")).toContain("not a file name");
    expect(imageNameProblem("a/b")).toContain("'/'");
    expect(imageNameProblem("a\nb")).toContain("control");
    expect(imageNameProblem("a\x7f")).toContain("control");
    expect(imageNameProblem(".#tmp")).toContain("reserved");
    expect(imageNameProblem("disk.raw")).toContain(".raw");
    expect(imageNameProblem(".host")).toContain("reserved");
    expect(imageNameProblem("a".repeat(256))).toContain("255 bytes");
    expect(imageNameProblem("a".repeat(252))).toContain("251 bytes");
    expect(imageNameProblem("é".repeat(128))).toContain("255 bytes"); // 256 bytes in UTF-8
    expect(validImageName("ok")).toBe(true);
    expect(() => checkImageName("a/b")).toThrow(/invalid image name "a\/b"/);
  });
});

describe("discovery", () => {
  const host = () => {
    const h = new FakeHost({
      files: {
        "/pool/debian/usr/bin/sh": "",
        "/pool/debian.nspawn": "[Exec]\n",
        "/pool/disk.raw": "xxxx",
        "/pool/.hidden/usr": { kind: "dir" },
        "/pool/.#debian-0123abcd/usr": { kind: "dir" },
        "/pool/notes.txt": "ignored",
        "/pool/link": { kind: "symlink", target: "/elsewhere/tree" },
        "/elsewhere/tree/usr": { kind: "dir" },
        "/pool/dangling": { kind: "symlink", target: "/nope" },
        "/pool/sub": { kind: "dir" },
        "/usr/lib/machines/vendor/usr": { kind: "dir" },
        "/usr/lib/machines/debian/usr": { kind: "dir" }, // shadowed by /pool/debian
        "/pool/ro.raw": "x",
      },
      fsTypes: { "/pool/sub": "btrfs" },
    });
    h.stats.set("/pool/sub", { ino: 256 });
    h.stats.set("/pool/ro.raw", { mode: 0o444 });
    h.immutables.add("/pool/debian");
    return h;
  };
  test("kinds, names, hidden, temporaries, symlinks, shadowing", () => {
    const images = discoverImages(host(), POOL);
    expect(images.map((i) => [i.name, i.type, i.readOnly, i.root])).toEqual([
      ["debian", "directory", true, "/pool"],
      ["disk", "raw", false, "/pool"],
      ["link", "directory", false, "/pool"],
      ["ro", "raw", true, "/pool"],
      ["sub", "subvolume", false, "/pool"],
      ["vendor", "directory", true, "/usr/lib/machines"],
    ]);
    expect(images[0]!.settingsFile).toBe("/pool/debian.nspawn");
    expect(images[1]!.usage).toBe(4096);
    expect(images[1]!.limit).toBe(4);
    expect(images[2]!.target).toBe("/elsewhere/tree");
    const all = discoverImages(host(), POOL, { hidden: true }).map((i) => i.name);
    expect(all).toContain(".hidden");
    expect(all.some((n) => n.startsWith(".#"))).toBe(false);
  });
  test("findImage: NAME then NAME.raw, in root order", () => {
    const h = host();
    expect(findImage(h, POOL, "disk")?.path).toBe("/pool/disk.raw");
    expect(findImage(h, POOL, "vendor")?.writablePool).toBe(false);
    expect(findImage(h, POOL, ".#debian-0123abcd")).toBeUndefined();
    expect(findImage(h, POOL, "notes.txt")).toBeUndefined();
    expect(findImage(h, POOL, "dangling")).toBeUndefined();
  });
});

describe("locks and temporaries", () => {
  test("exclusive vs shared, all-or-none", () => {
    const h = new FakeHost();
    const a = lockImage(h, STATE, "a", "shared");
    const a2 = lockImage(h, STATE, "a", "shared");
    expect(() => lockImage(h, STATE, "a", "exclusive")).toThrow(/image "a" is busy/);
    const b = lockImage(h, STATE, "b", "exclusive");
    expect(() =>
      lockImages(h, STATE, [
        ["c", "exclusive"],
        ["b", "shared"],
      ]),
    ).toThrow(/"b" is busy/);
    expect(lockImage(h, STATE, "c", "exclusive")).toBeDefined(); // c was released by the failed lockImages
    a.release();
    a2.release();
    b.release();
    expect(lockImage(h, STATE, "a", "exclusive")).toBeDefined();
  });
  test("temporary: commit without replacing, discard, stale cleanup", () => {
    const h = new FakeHost({ files: { "/pool/taken/usr": { kind: "dir" } } });
    const t = beginTemporary(h, STATE, "/pool", "new");
    expect(t.path).toBe("/pool/.#new-abababab");
    h.add(`${t.path}/usr`, { kind: "dir" });
    expect(cleanTemporaries(h, STATE, "/pool")).toEqual([]); // its creator holds the lock
    expect(() => t.commit("/pool/taken")).toThrow(/already exists/);
    t.commit("/pool/new");
    t.release();
    expect(h.lstat("/pool/new/usr")).toBe("dir");
    // A temporary left by a dead process: no lock held.
    h.add("/pool/.#old-12345678/usr", { kind: "dir" });
    expect(cleanTemporaries(h, STATE, "/pool")).toEqual(["/pool/.#old-12345678"]);
    expect(h.lstat("/pool/.#old-12345678")).toBeUndefined();
    const d = beginTemporary(h, STATE, "/pool", "x");
    h.add(`${d.path}/f`, "");
    const s = d.sibling("x.nspawn");
    h.add(s, "");
    d.discard();
    expect(h.lstat(d.path)).toBeUndefined();
    expect(h.lstat(s)).toBeUndefined();
  });
  test("temporary names stay within NAME_MAX", () => {
    const t = beginTemporary(new FakeHost(), STATE, "/pool", "n".repeat(251));
    expect(Buffer.byteLength(t.path.slice("/pool/".length))).toBeLessThanOrEqual(255);
  });
});

describe("the writable root on a fresh machine", () => {
  test("ensureWritablePool creates the missing root (and its missing parents) 0700, and leaves an existing one alone", () => {
    const h = new FakeHost({ files: { "/var/lib": { kind: "dir" } } });
    expect(h.lstat("/var/lib/machines")).toBeUndefined();
    expect(ensureWritablePool(h, ["/var/lib/machines", "/usr/lib/machines"])).toBe("/var/lib/machines");
    expect(h.stat("/var/lib/machines", false)).toMatchObject({ kind: "dir", mode: 0o700 });
    expect(h.stat("/var/lib", false)?.mode).toBe(0o755); // existing: untouched
    expect(h.lstat("/usr/lib/machines")).toBeUndefined(); // read-only roots are never created
    h.chmod("/var/lib/machines", 0o755);
    ensureWritablePool(h, ["/var/lib/machines"]);
    expect(h.stat("/var/lib/machines", false)?.mode).toBe(0o755);
  });
});
