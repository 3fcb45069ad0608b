/**
 * src/oci/ without root: whiteout planning, the checks and removals against the lower tree
 * (a temporary directory), the image config as an untrusted .nspawn file (read back by the
 * real parser), and reading layouts (digest and size checks, no symlink followed, paths of
 * docker save archives). The extraction itself (mount namespaces) is in
 * test/integration/oci-import.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxHost } from "../../src/host/linux.ts";
import { settingsFromConfig, quoteWord } from "../../src/oci/image-config.ts";
import { planLayer, prepareLower } from "../../src/oci/layers.ts";
import { layoutDocuments, readImageSource } from "../../src/oci/layout.ts";
import { hostPlatform, parsePlatform } from "../../src/oci/platform.ts";
import { imageConfigSchema, imageIndexSchema, imageManifestSchema, type ImageConfig } from "../../src/oci/manifest.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";

const root = mkdtempSync(join(tmpdir(), "machina-oci-unit-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const host = new LinuxHost();
const sha = (b: Uint8Array | string) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
let n = 0;
const fresh = () => {
  const d = join(root, `t${++n}`);
  fs.mkdirSync(d);
  return d;
};
const f = (path: string, kind: "file" | "dir" | "symlink" = "file") => ({ path, kind });

describe("planLayer", () => {
  test("whiteouts and opaque directories are split from the content", () => {
    const plan = planLayer([f("a", "dir"), f("a/.wh.b"), f("a/.wh..wh..opq"), f(".wh.top"), f("a/c"), f("a/.wh..wh.plnk")]);
    expect(plan).toEqual({ remove: ["a/b", "top"], opaque: ["a"], entries: [f("a", "dir"), f("a/c")] });
  });
  test.each([["d/.wh..."], ["d/.wh.."], [".wh."]])("a whiteout naming %p is refused", (name) => {
    expect(() => planLayer([f(name)])).toThrow(/unsafe archive: a whiteout naming/);
  });
  test("a whiteout that is a directory is refused", () => {
    expect(() => planLayer([f("x/.wh.y", "dir")])).toThrow(/a whiteout that is a directory/);
  });
});

describe("prepareLower", () => {
  test("whiteouts remove, never follow; opaque empties; kind changes remove the lower entry", () => {
    const outside = fresh();
    fs.writeFileSync(`${outside}/precious`, "x");
    const t = fresh();
    fs.mkdirSync(`${t}/d/sub`, { recursive: true });
    fs.writeFileSync(`${t}/d/sub/f`, "f");
    fs.symlinkSync(outside, `${t}/link`);
    fs.mkdirSync(`${t}/opq`);
    fs.writeFileSync(`${t}/opq/old`, "old");
    fs.writeFileSync(`${t}/file`, "file");
    fs.mkdirSync(`${t}/dir`);
    fs.writeFileSync(`${t}/dir/x`, "x");
    prepareLower(host, t, planLayer([f(".wh.link"), f("d/.wh.sub"), f("opq/.wh..wh..opq"), f("file", "dir"), f("dir"), f("opq/new")]));
    expect(fs.existsSync(`${t}/link`)).toBe(false);
    expect(fs.readFileSync(`${outside}/precious`, "utf8")).toBe("x");
    expect(fs.readdirSync(`${t}/d`)).toEqual([]);
    expect(fs.readdirSync(`${t}/opq`)).toEqual([]);
    expect(fs.existsSync(`${t}/file`)).toBe(false); // a directory comes in its place
    expect(fs.existsSync(`${t}/dir`)).toBe(false); // a file comes in its place
  });
  test("an entry or whiteout through a lower symlink or file is refused before anything is removed", () => {
    const outside = fresh();
    fs.writeFileSync(`${outside}/precious`, "x");
    const t = fresh();
    fs.symlinkSync(outside, `${t}/link`);
    fs.writeFileSync(`${t}/file`, "f");
    fs.writeFileSync(`${t}/victim`, "v");
    const cases: Array<[ReturnType<typeof f>[], RegExp]> = [
      [[f(".wh.victim"), f("link/precious")], /the entry passes through a symlink of a lower layer \("link"\)/],
      [[f(".wh.victim"), f("link/.wh.precious")], /a whiteout passes through a symlink/],
      [[f(".wh.victim"), f("link/.wh..wh..opq")], /an opaque whiteout in a symlink of a lower layer/],
      [[f(".wh.victim"), f("file/x")], /passes through a non-directory of a lower layer \("file"\)/],
      // opaque in a lower symlink, an entry through it before the layer's own directory replaces it
      [[f(".wh.victim"), f("link/.wh..wh..opq"), f("link/precious"), f("link", "dir")], /the entry passes through a symlink of a lower layer \("link"\)/],
    ];
    for (const [entries, pattern] of cases) {
      expect(() => prepareLower(host, t, planLayer(entries))).toThrow(pattern);
      expect(fs.existsSync(`${t}/victim`)).toBe(true);
    }
    expect(fs.readdirSync(outside)).toEqual(["precious"]);
    // The layer may replace the symlink with a directory first, or white it out.
    prepareLower(host, t, planLayer([f("link", "dir"), f("link/new")]));
    prepareLower(host, t, planLayer([f("link/.wh..wh..opq"), f("link", "dir"), f("link/new")]));
    prepareLower(host, t, planLayer([f(".wh.link"), f("link/new")]));
    expect(fs.existsSync(`${t}/link`)).toBe(false);
    expect(fs.readdirSync(outside)).toEqual(["precious"]);
  });
});

describe("the image config as an untrusted .nspawn file", () => {
  const config = (c: Record<string, unknown>): ImageConfig =>
    imageConfigSchema.parse({ architecture: "amd64", os: "linux", config: c, rootfs: { type: "layers", diff_ids: [] } });
  test("reads back, untrusted, without warnings, as the config says", () => {
    const s = settingsFromConfig(
      config({
        Entrypoint: ["/bin/sh", "-c"],
        Cmd: ['echo "$HOME"', "it's", "a b", "back\\slash"],
        Env: ["PATH=/usr/bin:/bin", "X=with space", "Y=it's"],
        WorkingDir: "/srv",
        User: "1000:1000",
        StopSignal: "SIGQUIT",
        ExposedPorts: { "8080/tcp": {} },
        Volumes: { "/data": {} },
        Labels: { "a\nb": "c" },
      }),
      ["from somewhere\nelse"],
    );
    const parsed = parseNspawnFile(s.text, "x.nspawn", false);
    expect(parsed.warnings).toEqual([]);
    expect(parsed.values.command).toEqual(["/bin/sh", "-c", 'echo "$HOME"', "it's", "a b", "back\\slash"]);
    expect(parsed.values.environment).toEqual(["PATH=/usr/bin:/bin", "X=with space", "Y=it's"]);
    expect(parsed.values.chdir).toBe("/srv");
    expect(parsed.values.user).toBe("1000");
    expect(parsed.values.killSignal).toBe(3);
    expect(s.text).toContain("# ExposedPorts: 8080/tcp");
    expect(s.text).toContain("# Volumes: /data");
    expect(s.text).toContain("# Label a\\nb=c");
    expect(s.text.split("\n").filter((l) => l.includes("from somewhere"))).toEqual(["# from somewhere\\nelse"]);
    expect(s.skipped).toEqual(['User "1000:1000": only the user "1000" is kept (User= takes no group)']);
  });
  test("what cannot be written is skipped with a note, never written half", () => {
    const s = settingsFromConfig(config({ Cmd: ["a'b\"c"], Env: ["1BAD=x", "OK=1"], WorkingDir: "rel", StopSignal: "NOPE" }), []);
    expect(s.text).not.toContain("Parameters=");
    expect(s.text).toContain("Environment=OK=1");
    expect(s.skipped).toHaveLength(4);
    expect(parseNspawnFile(s.text, "x.nspawn", false).warnings).toEqual([]);
  });
  test("quoteWord", () => {
    expect(quoteWord("plain")).toBe("plain");
    expect(quoteWord("")).toBe("''");
    expect(quoteWord("a\nb")).toBeUndefined();
    expect(quoteWord("trailing\\")).toBeUndefined();
  });
});

describe("reading layouts", () => {
  function layout(dir: string, layer: Uint8Array): { layerPath: string } {
    fs.mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
    const p = hostPlatform();
    const put = (b: Uint8Array | string) => {
      fs.writeFileSync(`${dir}/blobs/sha256/${sha(b)}`, b);
      return { digest: `sha256:${sha(b)}`, size: Buffer.byteLength(b) };
    };
    const l = put(layer);
    const config = put(JSON.stringify({ architecture: p.architecture, os: "linux", rootfs: { type: "layers", diff_ids: [l.digest] } }));
    const manifest = put(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l }],
      }),
    );
    fs.writeFileSync(
      `${dir}/index.json`,
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }] }),
    );
    fs.writeFileSync(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    return { layerPath: `${dir}/blobs/sha256/${l.digest.slice(7)}` };
  }
  const read = (dir: string) => readImageSource(host, dir, dir, hostPlatform(), () => undefined);

  test("a layout without platforms: its one image", async () => {
    const d = fresh();
    layout(d, new Uint8Array(1024));
    const s = await read(d);
    expect(s.format).toBe("oci");
    expect(s.layers).toHaveLength(1);
    expect(s.platform).toBe(`linux/${hostPlatform().architecture}`);
  });
  test("a blob that does not match its digest, or its size, is refused", async () => {
    const d = fresh();
    const { layerPath } = layout(d, new Uint8Array(1024));
    const bytes = fs.readFileSync(layerPath);
    bytes[0] = 1;
    fs.writeFileSync(layerPath, bytes);
    await expect(read(d)).rejects.toThrow(/the blob of layer 1 does not match its digest: expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}$/);
    fs.appendFileSync(layerPath, "x");
    await expect(read(d)).rejects.toThrow(/has 1025 bytes, its descriptor says 1024/);
  });
  test("a blob that is a symlink is not followed", async () => {
    const d = fresh();
    const { layerPath } = layout(d, new Uint8Array(1024));
    fs.renameSync(layerPath, `${root}/elsewhere`);
    fs.symlinkSync(`${root}/elsewhere`, layerPath);
    await expect(read(d)).rejects.toThrow(/is a symlink, not a regular file/);
  });
  test("docker save: paths must stay inside", async () => {
    const d = fresh();
    fs.writeFileSync(`${d}/manifest.json`, JSON.stringify([{ Config: "../x.json", Layers: [] }]));
    await expect(read(d)).rejects.toThrow(/the config "\.\.\/x\.json" is not a relative path inside it \(`\.\.` component\)/);
  });
  test("neither layout nor archive", async () => {
    await expect(read(fresh())).rejects.toThrow(/not an OCI image layout \(no oci-layout file\) nor a docker save archive/);
  });
  test("export documents parse back through the schemas", () => {
    const config = imageConfigSchema.parse({
      architecture: "arm64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${"a".repeat(64)}`] },
    });
    const docs = new Map(layoutDocuments({ layer: { digest: `sha256:${"a".repeat(64)}`, size: 10 }, config }, "latest"));
    const index = imageIndexSchema.parse(JSON.parse(docs.get("index.json")!));
    expect(index.manifests[0]!.platform).toEqual({ os: "linux", architecture: "arm64" });
    const manifestText = docs.get(`blobs/sha256/${index.manifests[0]!.digest.slice(7)}`)!;
    expect(sha(manifestText)).toBe(index.manifests[0]!.digest.slice(7));
    expect(imageManifestSchema.parse(JSON.parse(manifestText)).layers[0]!.size).toBe(10);
  });
  test("parsePlatform", () => {
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(() => parsePlatform("amd64")).toThrow(/OS\/ARCH/);
  });
});
