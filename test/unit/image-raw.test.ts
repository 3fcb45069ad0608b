import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import {
  DPS_SHARED,
  DPS_TYPES,
  GPT_LINUX_GENERIC,
  detectFileSystem,
  parseGpt,
  parseMbr,
  rawImageKind,
  rawLayout,
  setupRawRoot,
  sweepRawMounts,
} from "../../src/image/raw.ts";

/** GUID string -> GPT's mixed-endian bytes. */
function guidBytes(g: string): Buffer {
  const h = g.replace(/-/g, "");
  const b = Buffer.from(h, "hex");
  return Buffer.concat([
    Buffer.from(b.subarray(0, 4)).reverse(),
    Buffer.from(b.subarray(4, 6)).reverse(),
    Buffer.from(b.subarray(6, 8)).reverse(),
    b.subarray(8),
  ]);
}

/** A disk image in memory: a GPT with the given partitions (LBA ranges), ext4 magic in each. */
function disk(parts: Array<{ type: string; first: number; last: number; attrs?: bigint }>): Buffer {
  const size = (Math.max(...parts.map((p) => p.last)) + 34) * 512;
  const d = Buffer.alloc(size);
  d.write("EFI PART", 512, "latin1");
  d.writeBigUInt64LE(2n, 512 + 72);
  d.writeUInt32LE(128, 512 + 80);
  d.writeUInt32LE(128, 512 + 84);
  parts.forEach((p, i) => {
    const e = 1024 + i * 128;
    guidBytes(p.type).copy(d, e);
    d.writeBigUInt64LE(BigInt(p.first), e + 32);
    d.writeBigUInt64LE(BigInt(p.last), e + 40);
    d.writeBigUInt64LE(p.attrs ?? 0n, e + 48);
    d.writeUInt16LE(0xef53, p.first * 512 + 0x438);
  });
  return d;
}
const reader = (b: Buffer) => (o: number, l: number) => b.subarray(o, o + l);
const { root: ROOT, usr: USR } = DPS_TYPES["x64"]!;

describe("GPT and file systems", () => {
  test("partitions with types, offsets, sizes and the DPS flags", () => {
    const parts = parseGpt(
      reader(
        disk([
          { type: USR, first: 100, last: 199 },
          { type: ROOT, first: 200, last: 399, attrs: 1n << 60n },
        ]),
      ),
    )!;
    expect(parts).toEqual([
      { number: 1, type: USR, offset: 51200, size: 51200, readOnly: false, noAuto: false },
      { number: 2, type: ROOT, offset: 102400, size: 102400, readOnly: true, noAuto: false },
    ]);
  });
  test("no GPT: a bare file system", () => {
    const b = Buffer.alloc(0x20000);
    expect(parseGpt(reader(b))).toBeUndefined();
    b.write("_BHRfS_M", 0x10040, "latin1");
    expect(detectFileSystem(reader(b), 0)).toBe("btrfs");
    expect(rawLayout(reader(b), "/x.raw").root).toEqual({ number: undefined, offset: 0, size: 0, fstype: "btrfs", readOnly: false });
  });
  test("layout: root and /usr by type; no-auto partitions skipped; errors", () => {
    const l = rawLayout(
      reader(
        disk([
          { type: ROOT, first: 100, last: 149, attrs: 1n << 63n },
          { type: USR, first: 150, last: 199 },
          { type: ROOT, first: 200, last: 299 },
        ]),
      ),
      "/d.raw",
      "x64",
    );
    expect(l.root).toMatchObject({ number: 3, offset: 102400, fstype: "ext4" });
    expect(l.kind).toBe("dps");
    expect(l.below).toEqual([{ path: "/usr", part: expect.objectContaining({ number: 2, offset: 76800, fstype: "ext4" }) }]);
    expect(() => rawLayout(reader(disk([{ type: USR, first: 100, last: 199 }])), "/d.raw", "x64")).toThrow(
      `has a GPT but no root partition: neither one for x64 (type ${ROOT}) nor a generic Linux data partition`,
    );
    expect(() => rawLayout(reader(Buffer.alloc(70000)), "/j.raw")).toThrow("neither a partition table (GPT or MBR) nor a known file system");
  });
  test("DPS /home and /srv below the root, in that order after /usr", () => {
    const [HOME, SRV] = DPS_SHARED.map((x) => x.type);
    const l = rawLayout(
      reader(
        disk([
          { type: SRV!, first: 100, last: 149 },
          { type: ROOT, first: 150, last: 199 },
          { type: HOME!, first: 200, last: 249 },
          { type: USR, first: 250, last: 299 },
        ]),
      ),
      "/d.raw",
      "x64",
    );
    expect(l.below.map((b) => [b.path, b.part.number])).toEqual([
      ["/usr", 4],
      ["/home", 3],
      ["/srv", 1],
    ]);
  });
});

const BIOS_BOOT = "21686148-6449-6e6f-744e-656564454649";
const ESP = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/** An MBR disk in memory: primary entries (LBA start, count, type, bootable), ext4 magic in each. */
function mbrDisk(parts: Array<{ start: number; count: number; type: number; bootable?: boolean }>): Buffer {
  const d = Buffer.alloc((Math.max(...parts.map((p) => p.start + p.count)) + 8) * 512);
  parts.forEach((p, i) => {
    const e = 446 + i * 16;
    d[e] = p.bootable ? 0x80 : 0;
    d[e + 4] = p.type;
    d.writeUInt32LE(p.start, e + 8);
    d.writeUInt32LE(p.count, e + 12);
    if (p.type === 0x83) d.writeUInt16LE(0xef53, p.start * 512 + 0x438);
  });
  d[510] = 0x55;
  d[511] = 0xaa;
  return d;
}

describe("cloud images: what systemd-nspawn 252 accepts besides DPS (checked against its systemd-dissect)", () => {
  test("GPT with one generic Linux data partition next to BIOS-boot and EFI partitions: that one is the root", () => {
    const l = rawLayout(
      reader(
        disk([
          { type: BIOS_BOOT, first: 40, last: 49 },
          { type: ESP, first: 50, last: 99 },
          { type: GPT_LINUX_GENERIC, first: 100, last: 199 },
        ]),
      ),
      "/c.raw",
      "x64",
    );
    expect(l).toMatchObject({ kind: "gpt-generic", root: { number: 3, offset: 51200, fstype: "ext4" }, below: [] });
  });
  test("a DPS root wins over generic partitions; two generic ones without it are ambiguous; no-auto ones do not count", () => {
    expect(
      rawLayout(
        reader(
          disk([
            { type: GPT_LINUX_GENERIC, first: 100, last: 149 },
            { type: ROOT, first: 150, last: 199 },
          ]),
        ),
        "/c.raw",
        "x64",
      ).root.number,
    ).toBe(2);
    const two = disk([
      { type: GPT_LINUX_GENERIC, first: 100, last: 149 },
      { type: GPT_LINUX_GENERIC, first: 150, last: 199 },
    ]);
    expect(() => rawLayout(reader(two), "/c.raw", "x64")).toThrow(
      '"/c.raw" has a GPT with more than one generic Linux data partition (1, 2) and no root partition for x64: which is the root is ambiguous',
    );
    const oneAuto = disk([
      { type: GPT_LINUX_GENERIC, first: 100, last: 149, attrs: 1n << 63n },
      { type: GPT_LINUX_GENERIC, first: 150, last: 199 },
    ]);
    expect(rawLayout(reader(oneAuto), "/c.raw", "x64").root.number).toBe(2);
  });
  test("MBR: exactly one bootable Linux partition (0x83) is the root; not bootable, or two, is refused", () => {
    const ok = mbrDisk([
      { start: 64, count: 64, type: 0x0c },
      { start: 128, count: 128, type: 0x83, bootable: true },
      { start: 256, count: 64, type: 0x82 },
    ]);
    expect(parseMbr(reader(ok))).toEqual([
      { number: 1, type: 0x0c, bootable: false, offset: 32768, size: 32768 },
      { number: 2, type: 0x83, bootable: true, offset: 65536, size: 65536 },
      { number: 3, type: 0x82, bootable: false, offset: 131072, size: 32768 },
    ]);
    expect(rawLayout(reader(ok), "/m.raw", "x64")).toMatchObject({ kind: "mbr", root: { number: 2, offset: 65536, size: 65536, fstype: "ext4" } });
    const fake = new FakeHost({ files: { "/m.raw": "" } });
    fake.bytes.set("/m.raw", ok);
    expect(rawImageKind(fake, "/m.raw")).toBe("mbr");
    expect(() => rawLayout(reader(mbrDisk([{ start: 64, count: 64, type: 0x83 }])), "/m.raw", "x64")).toThrow(
      '"/m.raw" has an MBR partition table but no bootable Linux partition (type 83 with the bootable flag): partition 1 is not marked bootable',
    );
    const two = mbrDisk([
      { start: 64, count: 64, type: 0x83, bootable: true },
      { start: 128, count: 64, type: 0x83, bootable: true },
    ]);
    expect(() => rawLayout(reader(two), "/m.raw", "x64")).toThrow("more than one bootable Linux partition (1, 2)");
  });
  test("not an MBR: a protective MBR (GPT), boot code whose status bytes are not 0/0x80", () => {
    const prot = mbrDisk([{ start: 1, count: 100, type: 0xee }]);
    expect(parseMbr(reader(prot))).toBeUndefined();
    const code = mbrDisk([{ start: 64, count: 64, type: 0x83, bootable: true }]);
    code[446] = 0x31;
    expect(parseMbr(reader(code))).toBeUndefined();
  });
});

describe("setupRawRoot on the fake host", () => {
  test("one loop device per file system, over its range; mounts; a record; release undoes", () => {
    const h = new FakeHost({ files: { "/pool/d.raw": "" } });
    h.bytes.set(
      "/pool/d.raw",
      disk([
        { type: ROOT, first: 100, last: 199 },
        { type: USR, first: 200, last: 299 },
      ]),
    );
    h.onMount = (target) => {
      if (target.endsWith("/root")) h.mkdirp(`${target}/usr`, 0o755); // the root file system has /usr
    };
    const r = setupRawRoot(h, "/run/m", "/pool/d.raw", true, "d");
    expect(r.root).toBe("/run/m/raw-mounts/d-abababab/root");
    expect(r.umounts).toEqual([r.root]);
    expect(h.loops).toEqual([
      { file: "/pool/d.raw", readOnly: true, device: "/dev/loop0", range: { offset: 51200, size: 51200 } },
      { file: "/pool/d.raw", readOnly: true, device: "/dev/loop1", range: { offset: 102400, size: 51200 } },
    ]);
    expect(h.mounts).toEqual([
      { source: "/dev/loop0", target: r.root, fstype: "ext4", flags: 1 | 4, data: "" },
      { source: "/dev/loop1", target: `${r.root}/usr`, fstype: "ext4", flags: 1 | 4, data: "" },
    ]);
    expect(JSON.parse(h.readFile(r.record)!)).toEqual({
      image: "/pool/d.raw",
      machine: "d",
      loops: ["/dev/loop0", "/dev/loop1"],
      mounts: [r.root, `${r.root}/usr`],
    });
    r.release();
    expect(h.umounts).toEqual([`${r.root}/usr`, r.root]);
    expect(h.lstat("/run/m/raw-mounts/d-abababab")).toBeUndefined();
  });
  test("a mount point missing from the root: made when the root is writable, refused (nothing left) when it is read-only", () => {
    const [HOME] = DPS_SHARED.map((x) => x.type);
    const image = disk([
      { type: ROOT, first: 100, last: 199 },
      { type: HOME!, first: 200, last: 299 },
    ]);
    const rw = new FakeHost({ files: { "/pool/d.raw": "" } });
    rw.bytes.set("/pool/d.raw", image);
    const r = setupRawRoot(rw, "/run/m", "/pool/d.raw", false, "d");
    expect(rw.lstat(`${r.root}/home`)).toBe("dir");
    expect(rw.mounts.map((m) => m.target)).toEqual([r.root, `${r.root}/home`]);
    const ro = new FakeHost({ files: { "/pool/d.raw": "" } });
    ro.bytes.set("/pool/d.raw", image);
    expect(() => setupRawRoot(ro, "/run/m", "/pool/d.raw", true, "d")).toThrow('"/pool/d.raw": the root has no /home for partition 2 and is mounted read-only');
    expect(ro.lstat("/run/m/raw-mounts/d-abababab")).toBeUndefined();
  });
  test("a step failing halfway undoes the others (all of them) and reports an undo that failed", () => {
    const h = new FakeHost({ files: { "/pool/d.raw": "" } });
    h.bytes.set(
      "/pool/d.raw",
      disk([
        { type: ROOT, first: 100, last: 199 },
        { type: USR, first: 200, last: 299 },
      ]),
    );
    h.onMount = (target) => {
      if (target.endsWith("/root")) h.mkdirp(`${target}/usr`, 0o755);
      if (target.endsWith("/usr")) throw Object.assign(new Error("EINVAL: mount"), { code: "EINVAL" });
    };
    h.onUmount = () => {
      throw new Error("EBUSY: umount");
    };
    let error: unknown;
    try {
      setupRawRoot(h, "/run/m", "/pool/d.raw", true, "d");
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toBe(
      'failed to set up the raw image "/pool/d.raw": EINVAL: mount (undoing it failed too: undo "unmount "/run/m/raw-mounts/d-abababab/root"" failed: EBUSY: umount)',
    );
    // The loop devices were closed and the directory removed even though the unmount failed.
    expect(h.closedFds).toEqual([101, 102]);
    expect(h.lstat("/run/m/raw-mounts/d-abababab")).toBeUndefined();
  });
  test("sweep: records of dead machines are detached and removed, running ones kept", () => {
    const h = new FakeHost({
      files: {
        "/run/m/raw-mounts/a-1/record.json": JSON.stringify({ image: "/p/a.raw", machine: "a", loops: [], mounts: ["/run/m/raw-mounts/a-1/root"] }),
        "/run/m/machines/a/lock": "",
        "/run/m/raw-mounts/b-2/record.json": JSON.stringify({ image: "/p/b.raw", machine: "b", loops: [], mounts: ["/run/m/raw-mounts/b-2/root"] }),
        "/run/m/machines/b/lock": "",
      },
    });
    h.heldLocks.add("/run/m/machines/b/lock"); // b runs
    expect(sweepRawMounts(h, "/run/m", 1_000_000)).toEqual(["a-1"]);
    expect(h.umounts).toEqual(["/run/m/raw-mounts/a-1/root"]);
    expect(h.lstat("/run/m/raw-mounts/b-2/record.json")).toBe("file");
  });
});
