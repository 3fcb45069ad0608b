/**
 * Malicious archives: each is generated here (tar-stream, or raw 512-byte headers for what
 * tar-stream will not write), imported into a temporary pool, and must be refused — or, for the
 * harmless-but-odd ones, imported as plain data. After every case: the canary tree outside the
 * pool is byte-for-byte, mode- and mtime-identical, the pool holds no new image and no `.#`
 * temporary, and no extraction mount is left. Needs root (mount namespaces), GNU tar, xz, zstd, bzip2.
 * Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tarStream from "tar-stream";
import { LinuxHost } from "../../src/host/linux.ts";
import { importTar, NO_PROGRESS, type TransferContext } from "../../src/image/transfer.ts";
import { discoverImages } from "../../src/image/pool.ts";

const root = mkdtempSync("/tmp/machina-tsafe-");
const pool = join(root, "pool");
const state = join(root, "state");
const canary = join(root, "canary");
const work = join(root, "work");

type E = {
  name: string;
  type?: tarStream.Header["type"];
  linkname?: string;
  data?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
};

async function pack(entries: E[]): Promise<Uint8Array> {
  const p = tarStream.pack();
  const chunks: Uint8Array[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Uint8Array);
  });
  const end = new Promise<void>((r) => p.on("end", () => r()));
  for (const e of entries) {
    const data = typeof e.data === "string" ? Buffer.from(e.data) : e.data;
    const { data: _d, ...header } = e;
    await new Promise<void>((res, rej) =>
      p.entry(
        { mode: 0o644, mtime: new Date(1_600_000_000_000), ...header, ...(data ? { size: data.byteLength } : {}) } as tarStream.Header,
        data ?? Buffer.alloc(0),
        (err) => (err ? rej(err) : res()),
      ),
    );
  }
  p.finalize();
  await end;
  return Buffer.concat(chunks);
}

/** One raw ustar/gnu header block (for what tar-stream refuses to write), checksum computed unless told. */
function header(o: {
  name: string;
  type: string;
  size?: number;
  linkname?: string;
  uid?: number | "base256";
  gid?: number;
  mode?: number;
  magic?: "ustar" | "gnu";
  badSum?: boolean;
}): Buffer {
  const b = Buffer.alloc(512);
  b.write(o.name.slice(0, 100), 0, "latin1");
  b.write((o.mode ?? 0o644).toString(8).padStart(7, "0") + "\0", 100);
  if (o.uid === "base256" || (o.uid ?? 0) > 0o7777777) {
    b[108] = 0x80;
    b.writeUIntBE(o.uid === "base256" ? 2 ** 40 : o.uid!, 110, 6);
  } else b.write((o.uid ?? 0).toString(8).padStart(7, "0") + "\0", 108);
  b.write((o.gid ?? 0).toString(8).padStart(7, "0") + "\0", 116);
  b.write((o.size ?? 0).toString(8).padStart(11, "0") + "\0", 124);
  b.write((1_600_000_000).toString(8).padStart(11, "0") + "\0", 136);
  b.write("        ", 148);
  b.write(o.type, 156, "latin1");
  if (o.linkname) b.write(o.linkname.slice(0, 100), 157, "latin1");
  if ((o.magic ?? "ustar") === "ustar") b.write("ustar\x0000", 257, "latin1");
  else b.write("ustar  \0", 257, "latin1");
  let sum = 0;
  for (const x of b) sum += x;
  if (o.badSum) sum += 1;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148);
  return b;
}
const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const eof = Buffer.alloc(1024);
function raw(...blocks: Buffer[]): Uint8Array {
  return Buffer.concat([...blocks, eof]);
}
function file(name: string, content: string, extra: Partial<Parameters<typeof header>[0]> = {}): Buffer {
  return Buffer.concat([header({ name, type: "0", size: Buffer.byteLength(content), ...extra }), pad(Buffer.from(content))]);
}
function gnuLong(kind: "L" | "K", value: string): Buffer {
  const data = Buffer.from(value + "\0", "latin1");
  return Buffer.concat([header({ name: "././@LongLink", type: kind, size: data.length, magic: "gnu" }), pad(data)]);
}
function paxHeader(records: Record<string, string>): Buffer {
  let text = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    text += `${len}${body}`;
  }
  const data = Buffer.from(text, "utf8");
  return Buffer.concat([header({ name: "PaxHeaders/x", type: "x", size: data.length }), pad(data)]);
}

async function compress(cmd: string[], data: Uint8Array): Promise<Uint8Array> {
  const p = Bun.spawn(cmd, { stdin: data, stdout: "pipe" });
  return new Uint8Array(await new Response(p.stdout).arrayBuffer());
}

// ---------------------------------------------------------------- canary

interface Snap {
  [path: string]: string;
}
function snapshot(dir: string): Snap {
  const out: Snap = {};
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d)) {
      const p = join(d, n);
      const st = fs.lstatSync(p);
      const what = st.isSymbolicLink() ? `link:${fs.readlinkSync(p)}` : st.isFile() ? `file:${fs.readFileSync(p, "hex")}` : "dir";
      out[p] = `${what} mode=${st.mode.toString(8)} uid=${st.uid} mtime=${st.mtimeMs} nlink=${st.nlink}`;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

let before: Snap;
let etcBefore: string;

beforeAll(() => {
  for (const d of [pool, state, canary, work]) fs.mkdirSync(d, { recursive: true });
  fs.mkdirSync(join(canary, "dir"));
  fs.writeFileSync(join(canary, "file"), "canary\n");
  fs.writeFileSync(join(canary, "dir/inner"), "inner\n");
  fs.symlinkSync("file", join(canary, "link"));
  for (const p of ["file", "dir/inner", "dir"]) fs.utimesSync(join(canary, p), 200_000, 200_000);
  before = snapshot(canary);
  etcBefore = fs.readFileSync("/etc/shadow", "hex") + fs.statSync("/etc/shadow").mtimeMs;
});

afterAll(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function ctx(env: Record<string, string> = {}): TransferContext {
  return {
    host: new LinuxHost(),
    paths: { helper: "", stateDir: state, pool: [pool] },
    env,
    progress: NO_PROGRESS,
    signal: new AbortController().signal,
    log: () => undefined,
  };
}

let counter = 0;
/** Import `data` as archive; returns the error message (undefined when it was imported). */
async function tryImport(data: Uint8Array, env: Record<string, string> = {}): Promise<{ error: string | undefined; name: string }> {
  const name = `case${++counter}`;
  const path = join(work, `${name}.tar`);
  fs.writeFileSync(path, data);
  let error: string | undefined;
  try {
    await importTar(ctx(env), path, name, { force: false, readOnly: false });
  } catch (e) {
    error = (e as Error).message;
  }
  fs.rmSync(path);
  return { error, name };
}

function assertNothingEscaped(): void {
  expect(snapshot(canary)).toEqual(before);
  expect(fs.readFileSync("/etc/shadow", "hex") + fs.statSync("/etc/shadow").mtimeMs).toBe(etcBefore);
  expect(fs.readdirSync(pool).filter((n) => n.startsWith(".#"))).toEqual([]);
  expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("machina-extract");
  expect(fs.readdirSync(root).sort()).toEqual(["canary", "pool", "state", "work"]);
}

async function refused(data: Uint8Array | Promise<Uint8Array>, pattern: RegExp, env: Record<string, string> = {}): Promise<void> {
  const { error } = await tryImport(await data, env);
  expect(error).toBeDefined();
  expect(error!).toMatch(pattern);
  expect(
    discoverImages(new LinuxHost(), [pool], { hidden: true })
      .map((i) => i.name)
      .filter((n) => n.startsWith("case") && n === `case${counter}`),
  ).toEqual([]);
  assertNothingEscaped();
}

const C = () => `../canary`; // relative to the target, which lives in ROOT/pool/.#…
const ABS = () => `${canary}/file`;

describe("malicious archives are refused and write nothing outside the target", () => {
  const cases: Array<[string, () => Uint8Array | Promise<Uint8Array>, RegExp, Record<string, string>?]> = [
    ["../x", () => raw(file("../x", "evil")), /`\.\.` component/],
    ["a/../../x", () => raw(file("a/../../x", "evil")), /`\.\.` component/],
    ["/abs", () => raw(file(ABS(), "evil")), /absolute path/],
    ["./../x", () => raw(file("./../x", "evil")), /`\.\.` component/],
    ["deep ../ chain into the canary", () => raw(file(`a/b/c/../../../../${C()}/file`, "evil")), /`\.\.` component/],
    ["bare ..", () => raw(header({ name: "..", type: "5" })), /`\.\.` component/],
    ["trailing /..", () => raw(header({ name: "a/..", type: "5" })), /`\.\.` component/],
    [
      "symlink to / then write through it",
      () =>
        pack([
          { name: "l", type: "symlink", linkname: "/" },
          { name: `l${canary}/file`, data: "evil" },
        ]),
      /through a symlink/,
    ],
    [
      "symlink to .. then write through it",
      () =>
        pack([
          { name: "l", type: "symlink", linkname: ".." },
          { name: "l/x", data: "evil" },
        ]),
      /through a symlink/,
    ],
    [
      "symlink to ../.. chain",
      () =>
        pack([
          { name: "a", type: "symlink", linkname: ".." },
          { name: "b", type: "symlink", linkname: "a/.." },
          { name: "b/canary/file", data: "evil" },
        ]),
      /through a symlink/,
    ],
    [
      "symlink into the canary then write",
      () =>
        pack([
          { name: "l", type: "symlink", linkname: canary },
          { name: "l/file", data: "evil" },
        ]),
      /through a symlink/,
    ],
    [
      "symlinked parent deeper down",
      () =>
        pack([
          { name: "d", type: "directory" },
          { name: "d/l", type: "symlink", linkname: "/etc" },
          { name: "d/l/shadow", data: "evil" },
        ]),
      /through a symlink/,
    ],
    ["hardlink to /etc/shadow", () => pack([{ name: "h", type: "link", linkname: "/etc/shadow" }]), /absolute path/],
    ["hardlink to ../outside", () => pack([{ name: "h", type: "link", linkname: `../../canary/file` }]), /`\.\.` component/],
    ["hardlink to a file not in the archive", () => pack([{ name: "h", type: "link", linkname: "etc/passwd" }]), /not an earlier regular file/],
    [
      "hardlink to a later entry",
      () =>
        pack([
          { name: "h", type: "link", linkname: "f" },
          { name: "f", data: "x" },
        ]),
      /not an earlier regular file/,
    ],
    [
      "hardlink to a directory",
      () =>
        pack([
          { name: "d", type: "directory" },
          { name: "h", type: "link", linkname: "d" },
        ]),
      /not an earlier regular file/,
    ],
    [
      "hardlink to a symlink",
      () =>
        pack([
          { name: "s", type: "symlink", linkname: "/etc/shadow" },
          { name: "h", type: "link", linkname: "s" },
        ]),
      /not an earlier regular file/,
    ],
    [
      "hardlink to a device node",
      () =>
        pack([
          { name: "sda", type: "block-device", devmajor: 8, devminor: 0 },
          { name: "h", type: "link", linkname: "sda" },
        ]),
      /not an earlier regular file/,
    ],
    [
      "hardlink through a symlink",
      () =>
        pack([
          { name: "f", data: "x" },
          { name: "l", type: "symlink", linkname: "/" },
          { name: "h", type: "link", linkname: "l/etc/shadow" },
        ]),
      /not an earlier regular file/,
    ],
    [
      "symlink loop, then write through it",
      () =>
        pack([
          { name: "a", type: "symlink", linkname: "b" },
          { name: "b", type: "symlink", linkname: "a" },
          { name: "a/x", data: "x" },
        ]),
      /through a symlink/,
    ],
    [
      "directory replaced by a symlink (duplicate entry)",
      () =>
        pack([
          { name: "d", type: "directory" },
          { name: "d", type: "symlink", linkname: "/" },
          { name: "d/x", data: "x" },
        ]),
      /turns a dir into a symlink/,
    ],
    [
      "implied directory replaced by a symlink",
      () =>
        pack([
          { name: "a/b", data: "x" },
          { name: "a", type: "symlink", linkname: canary },
          { name: "a/file", data: "evil" },
        ]),
      /turns a dir into a symlink/,
    ],
    [
      "directory replaced by a file",
      () =>
        pack([
          { name: "d", type: "directory" },
          { name: "d", data: "x" },
        ]),
      /turns a dir into a file/,
    ],
    [
      "device replaced by a file (write through a device node)",
      () =>
        pack([
          { name: "sda", type: "block-device", devmajor: 8, devminor: 0 },
          { name: "sda", data: "evil" },
        ]),
      /turns a block into a file/,
    ],
    [
      "write below a regular file",
      () =>
        pack([
          { name: "f", data: "x" },
          { name: "f/x", data: "x" },
        ]),
      /passes through a file/,
    ],
    ["root entry is a symlink", () => pack([{ name: "./", type: "symlink", linkname: "/" }]), /root is not a directory/],
    ["bad header checksum", () => raw(file("x", "data", { badSum: true })), /not a valid tar archive/],
    ["truncated in the data", () => raw(file("x", "a".repeat(3000))).slice(0, 1536), /truncated|not a valid/],
    ["truncated in a header", () => raw(file("x", "abc"), file("y", "abc")).slice(0, 1024 + 200), /truncated|not a valid/],
    ["random bytes", () => new Uint8Array(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff))), /not a valid tar archive/],
    ["empty archive", () => new Uint8Array(2048), /no entries/],
    [
      "GNU longname with ..",
      () => raw(gnuLong("L", `${"a/".repeat(60)}${"../".repeat(80)}x`), file("placeholder", "evil", { magic: "gnu" })),
      /`\.\.` component/,
    ],
    [
      "GNU longlink hardlink escape",
      () => raw(gnuLong("K", `${"../".repeat(40)}etc/shadow`), header({ name: "h", type: "1", magic: "gnu" })),
      /`\.\.` component/,
    ],
    ["PAX path ../x", () => raw(paxHeader({ path: "../x" }), file("innocent", "evil")), /`\.\.` component/],
    ["PAX linkpath escape", () => raw(paxHeader({ linkpath: "/etc/shadow" }), header({ name: "h", type: "1" })), /absolute path/],
    [
      "PAX GNU.sparse.name escape",
      () => raw(paxHeader({ "GNU.sparse.name": "../../evil", "GNU.sparse.major": "1", "GNU.sparse.minor": "0" }), file("GNUSparseFile.0/evil", "x")),
      /`\.\.` component/,
    ],
    ["name longer than PATH_MAX (PAX)", () => raw(paxHeader({ path: "a/".repeat(2100) + "x" }), file("x", "x")), /PATH_MAX/],
    ["component longer than NAME_MAX", () => raw(paxHeader({ path: "x".repeat(300) }), file("x", "x")), /NAME_MAX/],
    ["deeper than 256", () => raw(paxHeader({ path: "a/".repeat(257) + "x" }), file("x", "x")), /deeper than 256/],
    ["huge uid (base-256)", () => raw(Buffer.concat([header({ name: "x", type: "0", uid: "base256" })])), /uid .* out of range/],
    ["uid 2^32-1", () => raw(file("x", "x", { uid: 4294967295 })), /uid .* out of range/],
    ["huge PAX uid", () => raw(paxHeader({ uid: "99999999999999" }), file("x", "x")), /uid .* out of range/],
    [
      "directory with data (parser differential)",
      () => raw(Buffer.concat([header({ name: "d/", type: "5", size: 512 }), file("../evil", "x")])),
      /dir entry with data|`\.\.`/,
    ],
    ["symlink with data", () => raw(header({ name: "s", type: "2", linkname: "/", size: 512 }), Buffer.alloc(512)), /symlink entry with data/],
    ["unknown entry type", () => raw(header({ name: "x", type: "Z" })), /unsupported entry type/],
    ["GNU sparse (old) entry type", () => raw(header({ name: "x", type: "S" })), /unsupported entry type/],
    ["symlink with an empty target", () => raw(header({ name: "s", type: "2" })), /empty target/],
    [
      "too many entries",
      () => pack(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: "x" }))),
      /more than 20 entries/,
      { MACHINA_IMPORT_MAX_ENTRIES: "20" },
    ],
    [
      "gzip bomb",
      async () => gzipSync(await pack([{ name: "zero", data: new Uint8Array(48 * 1024 * 1024) }])),
      /more than 8388608 bytes/,
      { MACHINA_IMPORT_MAX_BYTES: String(8 * 1024 * 1024) },
    ],
    [
      "xz bomb",
      async () => compress(["xz", "-c", "-1"], await pack([{ name: "zero", data: new Uint8Array(48 * 1024 * 1024) }])),
      /more than 8388608 bytes/,
      { MACHINA_IMPORT_MAX_BYTES: String(8 * 1024 * 1024) },
    ],
    [
      "zstd bomb",
      async () => compress(["zstd", "-c", "-q"], await pack([{ name: "zero", data: new Uint8Array(48 * 1024 * 1024) }])),
      /more than 8388608 bytes/,
      { MACHINA_IMPORT_MAX_BYTES: String(8 * 1024 * 1024) },
    ],
    [
      "bzip2 bomb",
      async () => compress(["bzip2", "-c"], await pack([{ name: "zero", data: new Uint8Array(48 * 1024 * 1024) }])),
      /more than 8388608 bytes/,
      { MACHINA_IMPORT_MAX_BYTES: String(8 * 1024 * 1024) },
    ],
    [
      "bomb of many small entries",
      async () => gzipSync(await pack(Array.from({ length: 3000 }, (_, i) => ({ name: `d/${i}`, data: "" })))),
      /more than 1000 entries/,
      { MACHINA_IMPORT_MAX_ENTRIES: "1000" },
    ],
    [
      "corrupt xz stream",
      async () => (await compress(["xz", "-c"], await pack([{ name: "f", data: "x".repeat(10000) }]))).map((b, i) => (i > 40 && i < 60 ? b ^ 0xff : b)),
      /xz|not a valid|truncated/,
    ],
    [
      "evil entry after many good ones",
      () =>
        pack([
          ...Array.from({ length: 200 }, (_, i) => ({ name: `ok/${i}`, data: "fine" })),
          { name: "l", type: "symlink" as const, linkname: "/" },
          { name: `l${canary}/file`, data: "evil" },
        ]),
      /through a symlink/,
    ],
  ];
  test("there are at least 40 malicious cases", () => expect(cases.length).toBeGreaterThanOrEqual(40));
  for (const [what, make, pattern, env] of cases) test(what, () => refused(make(), pattern, env), 60_000);
});

describe("odd but harmless archives are imported as data", () => {
  test("symlink loops, absolute symlinks and nested archives stay data", async () => {
    const inner = await pack([{ name: "../../escape", data: "inner" }].map((e) => e)).catch(() => raw(file("../../escape", "inner")));
    const { error, name } = await tryImport(
      await pack([
        { name: "a", type: "symlink", linkname: "b" },
        { name: "b", type: "symlink", linkname: "a" },
        { name: "etc", type: "directory" },
        { name: "etc/mtab", type: "symlink", linkname: "/proc/self/mounts" },
        { name: "etc/up", type: "symlink", linkname: "../../../../canary/file" },
        { name: "nested.tar", data: inner },
      ]),
    );
    expect(error).toBeUndefined();
    const img = join(pool, name);
    expect(fs.readlinkSync(join(img, "a"))).toBe("b");
    expect(fs.readlinkSync(join(img, "etc/mtab"))).toBe("/proc/self/mounts");
    expect(fs.readlinkSync(join(img, "etc/up"))).toBe("../../../../canary/file");
    expect(Buffer.compare(fs.readFileSync(join(img, "nested.tar")), Buffer.from(inner))).toBe(0);
    expect(fs.existsSync(join(root, "escape"))).toBe(false);
    fs.rmSync(img, { recursive: true });
    assertNothingEscaped();
  });

  test("setuid files, device nodes and FIFOs are kept as data with numeric ids", async () => {
    const { error, name } = await tryImport(
      await pack([
        { name: "./", type: "directory", mode: 0o755 },
        { name: "usr/bin/su", data: "#!/bin/false\n", mode: 0o4755, uid: 0, gid: 0 },
        { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, uid: 0, gid: 6 },
        { name: "dev/mem", type: "character-device", devmajor: 1, devminor: 1, mode: 0o640 },
        { name: "run/fifo", type: "fifo", mode: 0o600 },
        { name: "home/u/f", data: "u", uid: 200_000, gid: 12345, mode: 0o2750 },
        { name: "home/u/hard", type: "link", linkname: "./home/u/f" },
      ]),
    );
    expect(error).toBeUndefined();
    const img = join(pool, name);
    const su = fs.statSync(join(img, "usr/bin/su"));
    expect(su.mode & 0o7777).toBe(0o4755);
    const sda = fs.lstatSync(join(img, "dev/sda"));
    expect(sda.isBlockDevice()).toBe(true);
    expect(sda.rdev).toBe(8 * 256 + 0);
    expect(sda.gid).toBe(6);
    expect(fs.lstatSync(join(img, "dev/mem")).isCharacterDevice()).toBe(true);
    expect(fs.lstatSync(join(img, "run/fifo")).isFIFO()).toBe(true);
    const f = fs.statSync(join(img, "home/u/f"));
    expect([f.uid, f.gid, f.mode & 0o7777, f.nlink]).toEqual([200_000, 12345, 0o2750, 2]);
    expect(fs.statSync(join(img, "home/u/hard")).ino).toBe(f.ino);
    fs.rmSync(img, { recursive: true });
    assertNothingEscaped();
  });

  test("a uid of 2^32-2 (base-256 header) is kept", async () => {
    const { error, name } = await tryImport(raw(file("f", "x", { uid: 4294967294 })));
    expect(error).toBeUndefined();
    expect(fs.statSync(join(pool, name, "f")).uid).toBe(4294967294);
    fs.rmSync(join(pool, name), { recursive: true });
    assertNothingEscaped();
  });
});
