import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { DPS_TYPES, detectFileSystem, parseGpt, rawLayout, setupRawRoot, sweepRawMounts } from "../../src/image/raw.ts";

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
    expect(l.usr).toMatchObject({ number: 2, offset: 76800, fstype: "ext4" });
    expect(() => rawLayout(reader(disk([{ type: USR, first: 100, last: 199 }])), "/d.raw", "x64")).toThrow("has a GPT but no root partition for x64");
    expect(() => rawLayout(reader(Buffer.alloc(70000)), "/j.raw")).toThrow("neither a GPT partition table nor a known file system");
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
