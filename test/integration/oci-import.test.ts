/**
 * import-oci / export-oci (src/oci/): OCI image layouts, oci-archive tars and `docker save`
 * archives generated here with tar-stream, imported into a temporary pool. Layers are applied
 * in order with whiteouts and opaque directories; hostile content (escaping names, symlinks
 * followed out, hard links outside, a whiteout naming `..`, a blob that does not match its
 * digest) is refused with one line, leaving nothing in the pool and nothing changed outside.
 * A busybox-based image's entrypoint runs with `machina-nspawn -M NAME`; export-oci round-trips
 * (and skopeo reads the layout, when installed). Root only (mount namespaces).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import * as fs from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tarStream from "tar-stream";
import { LinuxHost } from "../../src/host/linux.ts";
import { discoverImages } from "../../src/image/pool.ts";
import { NO_PROGRESS, type TransferContext } from "../../src/image/transfer.ts";
import { hostPlatform } from "../../src/oci/platform.ts";
import { importOci } from "../../src/oci/transfer.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, baseEnv, shOk } from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const NSPAWN = join(REPO, "bin/machina-nspawn");
const files = new Scratch();
let base: string;
let pool: string;
let state: string;
let canary: string;
let work: string;
let env: Record<string, string>;
let busybox: string;

type E = { name: string; type?: tarStream.Header["type"]; linkname?: string; data?: string; mode?: number };

async function pack(entries: E[]): Promise<Buffer> {
  const p = tarStream.pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const end = new Promise<void>((r) => p.on("end", () => r()));
  for (const e of entries) {
    const data = e.data === undefined ? undefined : Buffer.from(e.data);
    const { data: _d, ...header } = e;
    await new Promise<void>((res, rej) =>
      p.entry(
        {
          mode: e.type === "directory" ? 0o755 : 0o644,
          mtime: new Date(1_600_000_000_000),
          ...header,
          ...(data ? { size: data.byteLength } : {}),
        } as tarStream.Header,
        data ?? Buffer.alloc(0),
        (err) => (err ? rej(err) : res()),
      ),
    );
  }
  p.finalize();
  await end;
  return Buffer.concat(chunks);
}

const sha = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

type LayerSpec = { tar: Buffer; compression?: "none" | "gzip" | "zstd"; mediaType?: string; corrupt?: boolean };

function compress(tar: Buffer, c: "none" | "gzip" | "zstd"): Buffer {
  if (c === "gzip") return gzipSync(tar);
  if (c === "zstd") return Buffer.from(spawnSync(["zstd", "-q", "-c"], { stdin: tar, stdout: "pipe" }).stdout);
  return tar;
}

/** Write an OCI layout of `layers` (bottom first) with `runtime` as the config's `config`. */
function writeLayout(dir: string, layers: LayerSpec[], runtime: Record<string, unknown> = {}, opts: { platform?: boolean } = {}): void {
  fs.mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
  const put = (b: Uint8Array | string) => {
    const h = sha(b);
    fs.writeFileSync(`${dir}/blobs/sha256/${h}`, b);
    return { digest: `sha256:${h}`, size: Buffer.byteLength(b) };
  };
  const descs = layers.map((l) => {
    const c = l.compression ?? "gzip";
    const blob = compress(l.tar, c);
    const d = put(blob);
    if (l.corrupt) fs.appendFileSync(`${dir}/blobs/sha256/${d.digest.slice(7)}`, "x");
    const mediaType = l.mediaType ?? `application/vnd.oci.image.layer.v1.tar${c === "none" ? "" : `+${c}`}`;
    return { mediaType, ...d, ...(l.corrupt ? { size: d.size + 1 } : {}) };
  });
  const p = hostPlatform();
  const config = put(
    JSON.stringify({
      architecture: p.architecture,
      os: "linux",
      config: runtime,
      rootfs: { type: "layers", diff_ids: layers.map((l) => `sha256:${sha(l.tar)}`) },
    }),
  );
  const manifest = put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: descs,
    }),
  );
  const other = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"0".repeat(64)}`,
    size: 10,
    platform: { os: "linux", architecture: "s390x-not-here" },
  };
  fs.writeFileSync(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        ...(opts.platform === false ? [] : [other]),
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          ...(opts.platform === false ? {} : { platform: { os: "linux", architecture: p.architecture } }),
          annotations: { "org.opencontainers.image.ref.name": "v1" },
        },
      ],
    }),
  );
  fs.writeFileSync(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
}

function ctx(o: Partial<TransferContext> = {}): TransferContext {
  return {
    host: new LinuxHost(),
    paths: { helper: "", stateDir: state, pool: [pool] },
    env: {},
    progress: NO_PROGRESS,
    signal: new AbortController().signal,
    log: () => undefined,
    ...o,
  };
}

function run(cmd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync([cmd, ...args], { env, stdout: "pipe", stderr: "pipe", timeout: 120_000 });
  return { code: r.exitCode ?? 128, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of fs.readdirSync(d)) {
      const p = join(d, n);
      const st = fs.lstatSync(p);
      out[p] = `${st.isSymbolicLink() ? `link:${fs.readlinkSync(p)}` : st.isFile() ? `file:${fs.readFileSync(p, "hex")}` : "dir"} ${st.mode} ${st.mtimeMs}`;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}
let canaryBefore: Record<string, string>;

beforeAll(async () => {
  busybox = await ensureBusyboxImage();
  base = files.dir("machina-oci-");
  pool = `${base}/pool`;
  state = `${base}/state`;
  canary = `${base}/canary`;
  work = `${base}/work`;
  for (const d of [pool, state, canary, work]) fs.mkdirSync(d);
  fs.writeFileSync(`${canary}/file`, "canary\n");
  fs.mkdirSync(`${canary}/dir`);
  fs.writeFileSync(`${canary}/dir/inner`, "inner\n");
  canaryBefore = snapshot(canary);
  env = baseEnv({ MACHINA_STATE_DIR: state, MACHINA_POOL: pool });
});
afterAll(() => files.cleanup());

function nothingLeft(name: string): void {
  expect(discoverImages(new LinuxHost(), [pool], { hidden: true }).map((i) => i.name)).not.toContain(name);
  expect(fs.readdirSync(pool).filter((n) => n.startsWith(".#") || n.startsWith(name))).toEqual([]);
  expect(fs.readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("machina-extract");
  expect(snapshot(canary)).toEqual(canaryBefore);
}

let counter = 0;
async function importLayers(
  layers: LayerSpec[],
  runtime: Record<string, unknown> = {},
  c: Partial<TransferContext> = {},
): Promise<{ name: string; error: string | undefined }> {
  const name = `oci${++counter}`;
  const dir = `${work}/${name}`;
  writeLayout(dir, layers, runtime);
  let error: string | undefined;
  try {
    await importOci(ctx(c), dir, name, { force: false, readOnly: false });
  } catch (e) {
    error = (e as Error).message;
  }
  return { name, error };
}

describe("import-oci applies layers", () => {
  test("whiteouts, opaque directories, hard links, kind changes; gzip, zstd and plain layers", async () => {
    const l1 = await pack([
      { name: "etc/", type: "directory" },
      { name: "etc/keep", data: "keep" },
      { name: "etc/gone", data: "gone" },
      { name: "opq/", type: "directory" },
      { name: "opq/old", data: "old" },
      { name: "opq/sub/", type: "directory" },
      { name: "opq/sub/deep", data: "deep" },
      { name: "becomes-dir", data: "file" },
      { name: "becomes-file/", type: "directory" },
      { name: "becomes-file/x", data: "x" },
      { name: "link", type: "symlink", linkname: "etc" },
      { name: "wholedir/", type: "directory" },
      { name: "wholedir/a", data: "a" },
    ]);
    const l2 = await pack([
      { name: "etc/.wh.gone", data: "" },
      { name: ".wh.wholedir", data: "" },
      { name: "opq/", type: "directory" },
      { name: "opq/.wh..wh..opq", data: "" },
      { name: "opq/new", data: "new" },
      { name: "becomes-dir/", type: "directory" },
      { name: "becomes-dir/in", data: "in" },
      { name: "becomes-file", data: "now a file" },
      { name: "hl/", type: "directory" },
      { name: "hl/a", data: "shared" },
      { name: "hl/b", type: "link", linkname: "hl/a" },
    ]);
    const l3 = await pack([
      { name: "link/", type: "directory" },
      { name: "link/replaced", data: "a directory now" },
      { name: "etc/.wh.keep-not-there", data: "" },
    ]);
    const { name, error } = await importLayers([
      { tar: l1, compression: "gzip" },
      { tar: l2, compression: "zstd" },
      { tar: l3, compression: "none" },
    ]);
    expect(error).toBeUndefined();
    const root = `${pool}/${name}`;
    expect(fs.readFileSync(`${root}/etc/keep`, "utf8")).toBe("keep");
    expect(fs.existsSync(`${root}/etc/gone`)).toBe(false);
    expect(fs.existsSync(`${root}/etc/.wh.gone`)).toBe(false);
    expect(fs.existsSync(`${root}/wholedir`)).toBe(false);
    expect(fs.readdirSync(`${root}/opq`)).toEqual(["new"]);
    expect(fs.readFileSync(`${root}/becomes-dir/in`, "utf8")).toBe("in");
    expect(fs.readFileSync(`${root}/becomes-file`, "utf8")).toBe("now a file");
    expect(fs.statSync(`${root}/hl/a`).ino).toBe(fs.statSync(`${root}/hl/b`).ino);
    expect(fs.lstatSync(`${root}/link`).isDirectory()).toBe(true);
    expect(fs.readdirSync(`${root}/etc`)).toEqual(["keep"]); // the symlink was replaced, not followed
    expect(fs.readdirSync(pool).filter((n) => n.startsWith(".#"))).toEqual([]);
    expect(fs.readFileSync(`${pool}/${name}.nspawn`, "utf8")).toContain("[Exec]");
  });

  const hostile: Array<[string, () => Promise<LayerSpec[]>, RegExp]> = [
    [
      "a layer escaping with ../",
      async () => [{ tar: await pack([{ name: "../canary/file", data: "evil" }]) }],
      /^".*\/oci\d+": layer 1 \(sha256:[0-9a-f]{64}\): unsafe archive: `\.\.` component: "\.\.\/canary\/file"$/,
    ],
    ["an absolute path", async () => [{ tar: await pack([{ name: `${canary}/file`, data: "evil" }]) }], /unsafe archive: absolute path/],
    [
      "symlink then a file through it (one layer)",
      async () => [
        {
          tar: await pack([
            { name: "l", type: "symlink", linkname: canary },
            { name: "l/file", data: "evil" },
          ]),
        },
      ],
      /through a symlink/,
    ],
    [
      "a lower layer's symlink, a file through it",
      async () => [{ tar: await pack([{ name: "l", type: "symlink", linkname: canary }]) }, { tar: await pack([{ name: "l/file", data: "evil" }]) }],
      /layer 2 .*passes through a symlink of a lower layer \("l"\)/,
    ],
    [
      "a whiteout through a lower symlink",
      async () => [{ tar: await pack([{ name: "l", type: "symlink", linkname: canary }]) }, { tar: await pack([{ name: "l/.wh.file", data: "" }]) }],
      /a whiteout passes through a symlink of a lower layer/,
    ],
    [
      "an opaque whiteout through a lower symlink",
      async () => [
        { tar: await pack([{ name: "l", type: "symlink", linkname: "../../canary" }]) },
        { tar: await pack([{ name: "l/.wh..wh..opq", data: "" }]) },
      ],
      /an opaque whiteout in a symlink of a lower layer \("l"\)/,
    ],
    ["a hard link outside", async () => [{ tar: await pack([{ name: "h", type: "link", linkname: `${canary}/file` }]) }], /hardlink target: absolute path/],
    [
      "a hard link to a lower layer's file",
      async () => [{ tar: await pack([{ name: "f", data: "x" }]) }, { tar: await pack([{ name: "h", type: "link", linkname: "f" }]) }],
      /not an earlier regular file of the archive/,
    ],
    [
      "a whiteout naming ..",
      async () => [
        {
          tar: await pack([
            { name: "d/", type: "directory" },
            { name: "d/.wh...", data: "" },
          ]),
        },
      ],
      /a whiteout naming "\.\."/,
    ],
    [
      "a blob that does not match its digest",
      async () => [{ tar: await pack([{ name: "f", data: "x" }]), corrupt: true }],
      /does not match its digest|has \d+ bytes, its descriptor says/,
    ],
    [
      "a media type that lies about compression",
      async () => [{ tar: await pack([{ name: "f", data: "x" }]), compression: "none", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip" }],
      /media type says gzip, its content is uncompressed/,
    ],
    [
      "an unknown layer media type",
      async () => [{ tar: await pack([{ name: "f", data: "x" }]), mediaType: "application/x-evil" }],
      /not a layer type machina applies/,
    ],
  ];
  for (const [what, layers, pattern] of hostile) {
    test(`refused: ${what}`, async () => {
      const { name, error } = await importLayers(await layers());
      expect(error).toBeDefined();
      expect(error!).toMatch(pattern);
      expect(error!).not.toContain("\n");
      nothingLeft(name);
    });
  }

  test("the size cap counts all layers together", async () => {
    const layer = async (n: string) => ({ tar: await pack([{ name: n, data: "x".repeat(40_000) }]) });
    const { name, error } = await importLayers([await layer("a"), await layer("b"), await layer("c")], {}, { env: { MACHINA_IMPORT_MAX_BYTES: "100000" } });
    expect(error).toMatch(/layer 3 \(sha256:[0-9a-f]{64}\): unsafe archive: more than \d+ bytes/);
    nothingLeft(name);
  });

  test("a transfer cancelled between layers leaves nothing", async () => {
    const controller = new AbortController();
    const progress = {
      ...NO_PROGRESS,
      start: (what: string) => {
        if (what.startsWith("Applying layer 2")) controller.abort();
      },
    };
    const { name, error } = await importLayers(
      [{ tar: await pack([{ name: "a", data: "a" }]) }, { tar: await pack([{ name: "b", data: "b" }]) }],
      {},
      { signal: controller.signal, progress },
    );
    expect(error).toMatch(/transfer cancelled/);
    nothingLeft(name);
  });

  test("a platform the index does not have: refused naming the ones it has", async () => {
    const dir = `${work}/noplat`;
    writeLayout(dir, [{ tar: await pack([{ name: "f", data: "x" }]) }]);
    const r = run(MACHINACTL, "import-oci", dir, "noplat-img");
    expect(r.code).toBe(0); // the host's platform is there
    const other = run(MACHINACTL, "import-oci", "--platform=linux/riscv32", dir, "noplat-other");
    expect(other.stderr).toMatch(/no image for linux\/riscv32: it has linux\/s390x-not-here, linux\/[a-z0-9]+\n/);
    const bad = run(MACHINACTL, "import-oci", "--platform=amd64", dir, "noplat-bad");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('invalid platform "amd64" for --platform: a platform is OS/ARCH[/VARIANT]');
    nothingLeft("noplat-other");
    const index = JSON.parse(fs.readFileSync(`${dir}/index.json`, "utf8")) as { manifests: unknown[] };
    fs.writeFileSync(`${dir}/index.json`, JSON.stringify({ ...index, manifests: index.manifests.slice(0, 1) }));
    const r2 = run(MACHINACTL, "import-oci", dir, "noplat-img2");
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/no image for linux\/[a-z0-9]+: it has linux\/s390x-not-here/);
    nothingLeft("noplat-img2");
  });
  test("a layout of several images: PATH:REF takes one by its ref name; without REF, refused naming them", async () => {
    const dir = `${work}/several`;
    const one = `${work}/several-one`;
    writeLayout(dir, [{ tar: await pack([{ name: "which", data: "first" }]) }], {}, { platform: false });
    writeLayout(one, [{ tar: await pack([{ name: "which", data: "second" }]) }], {}, { platform: false });
    for (const b of fs.readdirSync(`${one}/blobs/sha256`)) fs.copyFileSync(`${one}/blobs/sha256/${b}`, `${dir}/blobs/sha256/${b}`);
    type Index = { manifests: Array<Record<string, unknown>> };
    const named = (d: string, ref: string) =>
      (JSON.parse(fs.readFileSync(`${d}/index.json`, "utf8")) as Index).manifests.map((m) => ({
        ...m,
        annotations: { "org.opencontainers.image.ref.name": ref },
      }));
    fs.writeFileSync(`${dir}/index.json`, JSON.stringify({ schemaVersion: 2, manifests: [...named(dir, "first"), ...named(one, "second")] }));
    const r = run(MACHINACTL, "import-oci", dir, "several-none");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('index.json lists 2 images (ref names: "first", "second"); name one as PATH:REF');
    nothingLeft("several-none");
    const unknown = run(MACHINACTL, "import-oci", `${dir}:third`, "several-third");
    expect(unknown.stderr).toContain('no image named "third" in index.json; its ref names: "first", "second"');
    nothingLeft("several-third");
    const second = run(MACHINACTL, "--json=short", "import-oci", `${dir}:second`);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ image: "several", reference: "second" });
    expect(fs.readFileSync(`${pool}/several/which`, "utf8")).toBe("second");
    expect(run(MACHINACTL, "image-status", "several").stdout).toContain(`Origin: import-oci ${dir}:second`);
  });
});

describe("import-oci of a busybox image runs its entrypoint; export-oci round-trips", () => {
  let layout: string;
  beforeAll(async () => {
    const baseTar = Buffer.from(spawnSync(["tar", "-C", busybox, "--numeric-owner", "-cf", "-", "."], { stdout: "pipe", maxBuffer: 512 * 1024 * 1024 }).stdout);
    const app = await pack([
      { name: "app/", type: "directory" },
      { name: "app/entry.sh", mode: 0o755, data: '#!/bin/sh\necho "entry pwd=$(pwd) greeting=$GREETING args=$*"\n' },
    ]);
    layout = `${work}/bb-layout`;
    writeLayout(
      layout,
      [
        { tar: baseTar, compression: "gzip" },
        { tar: app, compression: "gzip" },
      ],
      {
        Entrypoint: ["/bin/sh", "/app/entry.sh"],
        Cmd: ["one", "two words"],
        Env: ["PATH=/usr/bin:/bin", "GREETING=hello there"],
        WorkingDir: "/app",
        StopSignal: "SIGTERM",
        ExposedPorts: { "80/tcp": {} },
        Labels: { "org.example": "x" },
      },
    );
  });

  test("machina-nspawn -M NAME runs the entrypoint with the image's environment; image-status shows the origin", () => {
    const r = run(MACHINACTL, "import-oci", layout, "bbapp");
    expect(r.stderr).toContain('as image "bbapp"');
    expect(r.code).toBe(0);
    const settings = fs.readFileSync(`${pool}/bbapp.nspawn`, "utf8");
    expect(settings).toContain("Parameters=/bin/sh /app/entry.sh one 'two words'");
    expect(settings).toContain("# ExposedPorts: 80/tcp");
    const n = run(NSPAWN, "-q", "-M", "bbapp");
    expect(n.stdout).toContain("entry pwd=/app greeting=hello there args=one two words");
    expect(n.code).toBe(0);
    const s = run(MACHINACTL, "image-status", "bbapp");
    expect(s.stdout).toContain(`Origin: import-oci ${layout} (v1)`);
    expect(s.stdout).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    expect(s.stdout).toContain(`Platform: linux/${hostPlatform().architecture}`);
  }, 180_000);

  test("oci-archive (a tar of the layout) and docker save archives import too", async () => {
    shOk(`tar -C '${layout}' -cf '${work}/bb.oci.tar' .`);
    const r = run(MACHINACTL, "import-oci", `${work}/bb.oci.tar`);
    expect(r.code).toBe(0);
    expect(fs.existsSync(`${pool}/bb/app/entry.sh`)).toBe(true);

    // docker save: manifest.json, the config named by its digest, uncompressed layers.
    const dir = `${work}/docker`;
    fs.mkdirSync(`${dir}/layer1`, { recursive: true });
    const tar = await pack([{ name: "hello", data: "from docker" }]);
    fs.writeFileSync(`${dir}/layer1/layer.tar`, tar);
    const config = JSON.stringify({
      architecture: hostPlatform().architecture,
      os: "linux",
      config: { Cmd: ["/hello"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha(tar)}`] },
    });
    fs.writeFileSync(`${dir}/${sha(config)}.json`, config);
    fs.writeFileSync(`${dir}/manifest.json`, JSON.stringify([{ Config: `${sha(config)}.json`, RepoTags: ["example/hello:1"], Layers: ["layer1/layer.tar"] }]));
    shOk(`tar -C '${dir}' -cf '${work}/hello.docker.tar' .`);
    const d = run(MACHINACTL, "--json=short", "import-oci", `${work}/hello.docker.tar`);
    expect(d.code).toBe(0);
    expect(JSON.parse(d.stdout)).toMatchObject({ image: "hello", reference: "example/hello:1", digest: `sha256:${sha(config)}` });
    expect(fs.readFileSync(`${pool}/hello/hello`, "utf8")).toBe("from docker");

    // two images in one archive: PATH:TAG takes one (a tag may have a colon; normalized names match)
    fs.writeFileSync(
      `${dir}/manifest.json`,
      JSON.stringify([
        { Config: `${sha(config)}.json`, RepoTags: ["example/hello:1"], Layers: ["layer1/layer.tar"] },
        { Config: `${sha(config)}.json`, RepoTags: ["docker.io/library/other:latest"], Layers: ["layer1/layer.tar"] },
      ]),
    );
    const two = run(MACHINACTL, "import-oci", dir, "two-tags");
    expect(two.stderr).toContain('manifest.json lists 2 images (tags: "example/hello:1", "docker.io/library/other:latest"); name one as PATH:TAG');
    nothingLeft("two-tags");
    const tagged = run(MACHINACTL, "--json=short", "import-oci", `${dir}:other`, "two-tags");
    expect(tagged.code).toBe(0);
    expect(JSON.parse(tagged.stdout)).toMatchObject({ image: "two-tags", reference: "other" });
    expect(run(MACHINACTL, "import-oci", `${dir}:example/hello:1`, "two-tags2").code).toBe(0);

    // a docker layer that is not what the config says
    fs.writeFileSync(`${dir}/layer1/layer.tar`, await pack([{ name: "hello", data: "tampered" }]));
    const bad = run(MACHINACTL, "import-oci", `${dir}:other`, "tampered");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/layer 1 \("layer1\/layer.tar"\) does not match its digest/);
    nothingLeft("tampered");
  }, 180_000);

  test("export-oci writes a layout (and a .tar) that imports back the same tree", () => {
    expect(run(MACHINACTL, "export-oci", "bbapp", `${work}/out`).code).toBe(0);
    expect(run(MACHINACTL, "export-oci", "bbapp", `${work}/out.tar`).code).toBe(0);
    expect(run(MACHINACTL, "export-oci", "bbapp", `${work}/out`).stderr).toContain("already exists");
    expect(run(MACHINACTL, "import-oci", `${work}/out`, "again").code).toBe(0);
    expect(run(MACHINACTL, "import-oci", `${work}/out.tar`, "again2").code).toBe(0);
    const list = (d: string) => shOk(`cd '${d}' && find . -printf '%p %y %m %U %G %s %l\\n' | sort`);
    expect(list(`${pool}/again`)).toBe(list(`${pool}/bbapp`));
    expect(list(`${pool}/again2`)).toBe(list(`${pool}/bbapp`));
    // the command and environment travel in the config
    expect(fs.readFileSync(`${pool}/again.nspawn`, "utf8")).toContain("Environment='GREETING=hello there'");
    expect(run(NSPAWN, "-q", "-M", "again").stdout).toContain("greeting=hello there");
    if (spawnSync(["sh", "-c", "command -v skopeo"]).exitCode === 0) {
      const info = JSON.parse(shOk(`skopeo inspect --config oci:'${work}/out':latest`)) as { config?: { Env?: string[] } };
      expect(info.config?.Env).toContain("GREETING=hello there");
    }
  }, 180_000);

  test.skipIf(spawnSync(["sh", "-c", "command -v umoci"]).exitCode !== 0)(
    "umoci: its layers (whiteouts of a repack) import; it unpacks what export-oci writes",
    () => {
      const L = `${work}/umoci`;
      const b = (n: string) => `${work}/umoci-bundle-${n}`;
      shOk(`umoci init --layout '${L}' && umoci new --image '${L}:latest' && umoci unpack --image '${L}:latest' '${b("1")}'`);
      shOk(`cd '${b("1")}/rootfs' && mkdir d o && echo keep > keep && echo gone > d/gone && echo x > o/x && umoci repack --image '${L}:latest' '${b("1")}'`);
      shOk(
        `umoci unpack --image '${L}:latest' '${b("2")}' && cd '${b("2")}/rootfs' && rm keep d/gone && echo z > o/z && umoci repack --image '${L}:latest' '${b("2")}'`,
      );
      shOk(`umoci config --image '${L}:latest' --config.entrypoint=/bin/echo --config.cmd=hi --config.env=A=1`);
      const r = run(MACHINACTL, "import-oci", L, "umoci-made");
      expect(r.stderr).toContain('as image "umoci-made"');
      const tree = shOk(`cd '${pool}/umoci-made' && find . | sort`).trim().split("\n");
      expect(tree).toEqual([".", "./d", "./o", "./o/x", "./o/z"]);
      expect(fs.readFileSync(`${pool}/umoci-made.nspawn`, "utf8")).toContain("Parameters=/bin/echo hi\nEnvironment=A=1\n");

      expect(run(MACHINACTL, "export-oci", "bbapp", `${work}/for-umoci`).code).toBe(0);
      shOk(`umoci unpack --image '${work}/for-umoci:latest' '${b("3")}'`);
      expect(fs.readFileSync(`${b("3")}/rootfs/app/entry.sh`, "utf8")).toContain("entry pwd=");
      const config = JSON.parse(fs.readFileSync(`${b("3")}/config.json`, "utf8")) as { process: { env: string[]; cwd: string } };
      expect(config.process.env).toContain("GREETING=hello there");
      expect(config.process.cwd).toBe("/app");
    },
    180_000,
  );
});
