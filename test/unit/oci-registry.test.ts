/**
 * The Distribution v2 client against a fake registry (Bun.serve on 127.0.0.1 only): bearer-token
 * challenge, an index with two platforms, a Docker schema-2 manifest, blob verification, resume
 * with Range, redirects, size caps, auth.json, and the blob cache.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobCache, cleanBlobCache } from "../../src/oci/blob-cache.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { MEDIA_TYPES } from "../../src/oci/manifest.ts";
import type { HelperResult } from "../../src/host/credential-helper.ts";
import { credentialsFromAuthFile, defaultAuthFile, parseChallenge } from "../../src/oci/auth.ts";
import { parsePlatform, selectPlatform } from "../../src/oci/platform.ts";
import { pullOciImage, RegistryClient, sha256Hex } from "../../src/oci/registry.ts";
import { parseImageReference } from "../../src/oci/reference.ts";

const enc = new TextEncoder();
interface Blob {
  digest: string;
  size: number;
  data: Uint8Array;
}
function blob(content: string | Uint8Array): Blob {
  const data = typeof content === "string" ? enc.encode(content) : content;
  return { digest: `sha256:${sha256Hex(data)}`, size: data.byteLength, data };
}
const json = (v: unknown) => enc.encode(JSON.stringify(v));

interface Served {
  body: Uint8Array;
  type: string;
}

/** The fake registry's state; tests change `tweak` for hostile behaviour. */
const manifests = new Map<string, Served>(); // "repo/ref" → document
const blobs = new Map<string, Uint8Array>(); // digest → bytes served (may differ from the digest!)
const log: { path: string; range: string | null; auth: string | null }[] = [];
let requireToken = true;
let tokenRequests = 0;
/** digest → how many more GETs stop half way */
const breakBlob = new Map<string, number>();
/** digests whose GET sends half and then hangs */
const stallBlob = new Set<string>();
/** path → Location */
const redirects = new Map<string, string>();

let server: ReturnType<typeof Bun.serve>;
let host: string;
let dir: string;

function tokenOk(req: Request): boolean {
  return req.headers.get("authorization") === "Bearer good-token";
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "oci-registry-test-"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      log.push({ path: url.pathname, range: req.headers.get("range"), auth: req.headers.get("authorization") });
      if (url.pathname === "/token" && req.method === "POST") {
        tokenRequests++;
        return req.text().then((body) => {
          const form = new URLSearchParams(body);
          const ok = form.get("grant_type") === "refresh_token" && form.get("refresh_token") === "refresh-me" && form.get("service") === "fake";
          return ok && form.get("scope")?.startsWith("repository:") ? Response.json({ access_token: "good-token" }) : new Response("no", { status: 401 });
        });
      }
      if (url.pathname === "/token") {
        tokenRequests++;
        if (url.searchParams.get("service") !== "fake" || !url.searchParams.get("scope")?.startsWith("repository:"))
          return new Response("bad", { status: 400 });
        return Response.json({ token: "good-token" });
      }
      if (requireToken && !tokenOk(req)) {
        return new Response("{}", {
          status: 401,
          headers: {
            "WWW-Authenticate": `Bearer realm="http://${host}/token",service="fake",scope="repository:${url.pathname.split("/").slice(2, -2).join("/")}:pull"`,
          },
        });
      }
      if (url.pathname === "/v2/") return new Response("{}");
      const target = redirects.get(url.pathname);
      if (target) return new Response(null, { status: 307, headers: { Location: target } });
      const m = url.pathname.match(/^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/);
      if (!m) return new Response("no", { status: 404 });
      const [, repo, kind, ref] = m as unknown as [string, string, string, string];
      if (kind === "manifests") {
        const doc = manifests.get(`${repo}/${ref}`);
        if (!doc) return new Response("{}", { status: 404 });
        return new Response(doc.body.slice(), { headers: { "Content-Type": doc.type } });
      }
      const data = blobs.get(ref);
      if (!data) return new Response("{}", { status: 404 });
      const range = req.headers.get("range")?.match(/^bytes=(\d+)-$/);
      const start = range ? Number(range[1]) : 0;
      const part = data.subarray(start);
      const headers: Record<string, string> = { "Content-Length": String(part.byteLength), "Content-Type": "application/octet-stream" };
      if (range) headers["Content-Range"] = `bytes ${start}-${data.byteLength - 1}/${data.byteLength}`;
      if (stallBlob.has(ref)) {
        const half = part.slice(0, Math.floor(part.byteLength / 2));
        return new Response(
          new ReadableStream<Uint8Array>({
            start(c) {
              c.enqueue(half);
            },
          }),
          { headers },
        );
      }
      const breaks = breakBlob.get(ref) ?? 0;
      if (breaks > 0) {
        breakBlob.set(ref, breaks - 1);
        const half = part.subarray(0, Math.floor(part.byteLength / 2));
        const stream = new ReadableStream<Uint8Array>({
          async start(c) {
            c.enqueue(half);
            await Bun.sleep(20);
            c.close(); // fewer bytes than Content-Length: the connection ends early
          },
        });
        return new Response(stream, { status: range ? 206 : 200, headers });
      }
      return new Response(part.slice(), { status: range ? 206 : 200, headers });
    },
  });
  host = `127.0.0.1:${server.port}`;
});

afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  manifests.clear();
  blobs.clear();
  log.length = 0;
  breakBlob.clear();
  stallBlob.clear();
  redirects.clear();
  requireToken = true;
  tokenRequests = 0;
});

let n = 0;
function freshCache(maxBytes?: number): BlobCache {
  const opts: { dir: string; maxBytes?: number } = { dir: join(dir, `cache${n++}`) };
  if (maxBytes !== undefined) opts.maxBytes = maxBytes;
  return new BlobCache(opts);
}

/** Publish an image (config + layers) under repo:tag; returns its parts. */
function publish(repo: string, tag: string, opts: { arch?: string; docker?: boolean; layers?: (string | Uint8Array)[] } = {}) {
  const layers = (opts.layers ?? ["layer one", "layer two"]).map(blob);
  const config = blob(
    JSON.stringify({
      architecture: opts.arch ?? "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"], Env: ["A=1"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
    }),
  );
  for (const b of [config, ...layers]) blobs.set(b.digest, b.data);
  const docker = opts.docker === true;
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest,
      config: { mediaType: docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: docker ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip, digest: l.digest, size: l.size })),
    }),
  );
  const type = docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest;
  manifests.set(`${repo}/${tag}`, { body: manifest.data, type });
  manifests.set(`${repo}/${manifest.digest}`, { body: manifest.data, type });
  return { config, layers, manifest };
}

const opts = (cache: BlobCache, extra: Record<string, unknown> = {}) => ({ cache, tlsVerify: false, platform: "linux/amd64", ...extra });

describe("pure parts", () => {
  test("challenge", () => {
    expect(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull"')).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/debian:pull" },
    });
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: "basic", params: { realm: "Registry Realm" } });
  });
  test("platforms", () => {
    expect(parsePlatform("linux/arm/v7")).toEqual({ os: "linux", architecture: "arm", variant: "v7" });
    expect(() => parsePlatform("amd64")).toThrow(/invalid --platform "amd64": allowed is OS\/ARCH\[\/VARIANT\]/);
    const d = (architecture: string, variant?: string) => ({
      mediaType: MEDIA_TYPES.ociManifest,
      digest: `sha256:${sha256Hex(enc.encode(architecture + (variant ?? "")))}`,
      size: 1,
      platform: variant ? { os: "linux", architecture, variant } : { os: "linux", architecture },
    });
    const index = { schemaVersion: 2 as const, manifests: [d("amd64"), d("arm", "v6"), d("arm", "v7"), d("arm64", "v8")] };
    expect(selectPlatform(index, { os: "linux", architecture: "arm", variant: "v7" }).platform?.variant).toBe("v7");
    expect(selectPlatform(index, { os: "linux", architecture: "arm64" }).platform?.architecture).toBe("arm64");
    expect(() => selectPlatform(index, { os: "linux", architecture: "s390x" })).toThrow(
      /no manifest for platform linux\/s390x; it offers: linux\/amd64, linux\/arm\/v6/,
    );
  });
  test("the default auth file, as podman picks it", () => {
    const has =
      (...files: string[]) =>
      (p: string) =>
        files.includes(p);
    expect(defaultAuthFile({ REGISTRY_AUTH_FILE: "/etc/a.json" }, 0, has())).toBe("/etc/a.json");
    expect(defaultAuthFile({ HOME: "/root" }, 0, has("/run/containers/0/auth.json", "/root/.docker/config.json"))).toBe("/run/containers/0/auth.json");
    expect(defaultAuthFile({ HOME: "/root" }, 0, has("/root/.docker/config.json"))).toBe("/root/.docker/config.json");
    expect(defaultAuthFile({ XDG_RUNTIME_DIR: "/run/user/1000" }, 1000, has("/run/user/1000/containers/auth.json"))).toBe(
      "/run/user/1000/containers/auth.json",
    );
    expect(defaultAuthFile({ HOME: "/root" }, 0, has())).toBeUndefined();
  });
  test("auth.json", () => {
    const f = join(dir, "auth.json");
    const b64 = Buffer.from("alice:s3cr:et").toString("base64");
    writeFileSync(f, JSON.stringify({ auths: { "r.io/team": { auth: b64 }, "docker.io": { auth: Buffer.from("bob:pw").toString("base64") } } }));
    expect(credentialsFromAuthFile(f, parseImageReference("r.io/team/app"))).toEqual({ username: "alice", password: "s3cr:et" });
    expect(credentialsFromAuthFile(f, parseImageReference("r.io/other"))).toBeUndefined();
    expect(credentialsFromAuthFile(f, parseImageReference("debian"))).toEqual({ username: "bob", password: "pw" });
    writeFileSync(f, "{");
    expect(() => credentialsFromAuthFile(f, parseImageReference("debian"))).toThrow(/--authfile .*: not JSON; allowed is the containers auth.json format/);
  });
});

describe("credential helpers (credHelpers, credsStore)", () => {
  const calls: Array<[string, string]> = [];
  const helper =
    (answers: Record<string, HelperResult | "missing">) =>
    (name: string, server: string): HelperResult | "missing" => {
      calls.push([name, server]);
      return answers[name] ?? { code: 1, stdout: "credentials not found in native keychain\n", stderr: "" };
    };
  const ok = (u: string, p: string): HelperResult => ({ code: 0, stdout: JSON.stringify({ ServerURL: "x", Username: u, Secret: p }), stderr: "" });
  const file = (doc: unknown) => {
    const f = join(dir, "helpers.json");
    writeFileSync(f, JSON.stringify(doc));
    return f;
  };
  afterEach(() => {
    calls.length = 0;
  });

  test("auths first; then the registry's credHelpers entry; then credsStore; Docker Hub asked as docker login names it", () => {
    const f = file({ auths: { "r.io": { auth: Buffer.from("a:b").toString("base64") } }, credHelpers: { "q.io": "ecr" }, credsStore: "pass" });
    const run = helper({ ecr: ok("AWS", "ecr-secret"), pass: ok("hub", "hub-secret") });
    expect(credentialsFromAuthFile(f, parseImageReference("r.io/app"), run)).toEqual({ username: "a", password: "b" });
    expect(calls).toEqual([]);
    expect(credentialsFromAuthFile(f, parseImageReference("q.io/app"), run)).toEqual({ username: "AWS", password: "ecr-secret" });
    expect(credentialsFromAuthFile(f, parseImageReference("debian"), run)).toEqual({ username: "hub", password: "hub-secret" });
    expect(calls).toEqual([
      ["ecr", "q.io"],
      ["pass", "https://index.docker.io/v1/"],
    ]);
  });

  test("a helper with nothing for the server: no credentials; failures and bad answers: one line naming the helper", () => {
    const f = file({ credsStore: "desktop" });
    const ref = parseImageReference("r.io/app");
    expect(credentialsFromAuthFile(f, ref, helper({}))).toBeUndefined();
    expect(() => credentialsFromAuthFile(f, ref, helper({ desktop: "missing" }))).toThrow(
      "credential helper docker-credential-desktop is not installed (not on $PATH)",
    );
    expect(() => credentialsFromAuthFile(f, ref, helper({ desktop: { code: 2, stdout: "", stderr: "locked keyring\nmore" } }))).toThrow(
      "docker-credential-desktop get r.io: exit 2: locked keyring",
    );
    expect(() => credentialsFromAuthFile(f, ref, helper({ desktop: { code: 0, stdout: "nope", stderr: "" } }))).toThrow(
      'docker-credential-desktop get r.io: the answer is not JSON; allowed is {"Username":"…","Secret":"…"}',
    );
    expect(() => credentialsFromAuthFile(file({ credsStore: "../../bin/sh" }), ref, helper({}))).toThrow(
      'credential helper "../../bin/sh" is not a helper name',
    );
  });

  test("a pull with a helper's identity token: the refresh_token grant at the token server, read only when the registry asks", async () => {
    const img = publish("team/app", "v1");
    const f = file({ credsStore: "ident" });
    const run = helper({ ident: ok("<token>", "refresh-me") });
    const pulled = await pullOciImage(`${host}/team/app:v1`, { ...opts(freshCache()), authFile: f, credentialHelper: run });
    expect(pulled.manifestDigest).toBe(img.manifest.digest);
    expect(calls).toEqual([["ident", host]]);
    const wrong = helper({ ident: ok("<token>", "stale") });
    await expect(pullOciImage(`${host}/team/app:v1`, { ...opts(freshCache()), authFile: f, credentialHelper: wrong })).rejects.toThrow(
      /token server .*: answered 401/,
    );
    requireToken = false;
    calls.length = 0;
    await pullOciImage(`${host}/team/app:v1`, { ...opts(freshCache()), authFile: f, credentialHelper: run });
    expect(calls).toEqual([]);
  });
});

describe("pull", () => {
  test("token challenge, OCI manifest, config and layers in order, verified into the cache", async () => {
    const img = publish("team/app", "v1");
    const cache = freshCache();
    const pulled = await pullOciImage(`${host}/team/app:v1`, opts(cache));
    expect(tokenRequests).toBe(1);
    expect(pulled.manifestDigest).toBe(img.manifest.digest);
    expect(pulled.config.config?.Cmd).toEqual(["/bin/sh"]);
    expect(pulled.platform).toEqual({ os: "linux", architecture: "amd64" });
    expect(pulled.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => l.digest));
    expect(pulled.layers.every((l) => l.compression === "gzip")).toBe(true);
    for (const [i, l] of pulled.layers.entries()) expect(await Bun.file(l.path).text()).toBe(i === 0 ? "layer one" : "layer two");
    // the token went to the registry only after the challenge; never to the token endpoint as Bearer
    expect(log.filter((r) => r.path === "/token").every((r) => r.auth === null)).toBe(true);

    // warm: no blob is fetched again
    log.length = 0;
    await pullOciImage(`${host}/team/app:v1`, opts(cache));
    expect(log.filter((r) => r.path.includes("/blobs/"))).toEqual([]);
  });

  test("an index with two platforms: the one asked for", async () => {
    const amd = publish("multi", "amd", { arch: "amd64", layers: ["amd layer"] });
    const arm = publish("multi", "arm", { arch: "arm64", layers: ["arm layer"] });
    const index = json({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: [
        { mediaType: MEDIA_TYPES.ociManifest, digest: amd.manifest.digest, size: amd.manifest.size, platform: { os: "linux", architecture: "amd64" } },
        {
          mediaType: MEDIA_TYPES.ociManifest,
          digest: arm.manifest.digest,
          size: arm.manifest.size,
          platform: { os: "linux", architecture: "arm64", variant: "v8" },
        },
      ],
    });
    manifests.set("multi/latest", { body: index, type: MEDIA_TYPES.ociIndex });
    const cache = freshCache();
    const pulled = await pullOciImage(`${host}/multi`, opts(cache, { platform: "linux/arm64" }));
    expect(pulled.indexDigest).toBe(`sha256:${sha256Hex(index)}`);
    expect(pulled.manifestDigest).toBe(arm.manifest.digest);
    expect(await Bun.file(pulled.layers[0]?.path ?? "").text()).toBe("arm layer");
    await expect(pullOciImage(`${host}/multi`, opts(cache, { platform: "linux/riscv64" }))).rejects.toThrow(
      /no manifest for platform linux\/riscv64; it offers: linux\/amd64, linux\/arm64\/v8/,
    );
  });

  test("a Docker schema-2 manifest, by digest", async () => {
    const img = publish("dock", "1", { docker: true });
    const pulled = await pullOciImage(`${host}/dock@${img.manifest.digest}`, opts(freshCache()));
    expect(pulled.manifest.mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(pulled.layers.map((l) => l.compression)).toEqual(["gzip", "gzip"]);
  });

  test("a manifest that does not match the digest asked for is refused", async () => {
    const img = publish("dock", "1");
    const other = publish("dock", "2", { layers: ["x"] });
    manifests.set(`dock/${img.manifest.digest}`, { body: other.manifest.data, type: MEDIA_TYPES.ociManifest });
    await expect(pullOciImage(`${host}/dock@${img.manifest.digest}`, opts(freshCache()))).rejects.toThrow(/the content's digest is sha256:.*; refused/);
  });

  test("a blob whose content does not match its digest: refused, nothing kept", async () => {
    const img = publish("bad", "1");
    const layer = img.layers[1] as Blob;
    blobs.set(layer.digest, enc.encode("layer tw0")); // same size, other content
    const cache = freshCache();
    await expect(pullOciImage(`${host}/bad:1`, opts(cache))).rejects.toThrow(
      new RegExp(`blob ${layer.digest}: the content's digest is sha256:[0-9a-f]{64}; refused and deleted`),
    );
    const left = readdirSync(join(cache.dir, "blobs", "sha256"));
    expect(left).not.toContain(layer.digest.slice(7));
    expect(left.filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  test("a server that stops mid-blob: resumed with Range", async () => {
    const big = new Uint8Array(200_000).map((_, i) => i % 251);
    const img = publish("resume", "1", { layers: [big] });
    const layer = img.layers[0] as Blob;
    breakBlob.set(layer.digest, 2);
    const pulled = await pullOciImage(`${host}/resume:1`, opts(freshCache()));
    expect(sha256Hex(new Uint8Array(await Bun.file(pulled.layers[0]?.path ?? "").arrayBuffer()))).toBe(layer.digest.slice(7));
    const gets = log.filter((r) => r.path.endsWith(layer.digest));
    expect(gets.length).toBe(3);
    expect(gets[0]?.range).toBeNull();
    expect(gets[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  test("a partial download a previous run left is resumed", async () => {
    const big = new Uint8Array(100_000).map((_, i) => i % 13);
    const img = publish("resume2", "1", { layers: [big] });
    const layer = img.layers[0] as Blob;
    const cache = freshCache();
    await cache.ensureDir();
    writeFileSync(cache.partialPath(layer.digest), big.subarray(0, 40_000));
    await pullOciImage(`${host}/resume2:1`, opts(cache));
    expect(log.find((r) => r.path.endsWith(layer.digest))?.range).toBe("bytes=40000-");
  });

  test("a stale partial file that is not the blob's start: downloaded again from nothing", async () => {
    const big = new Uint8Array(50_000).map((_, i) => i % 7);
    const img = publish("stale", "1", { layers: [big] });
    const layer = img.layers[0] as Blob;
    const cache = freshCache();
    await cache.ensureDir();
    writeFileSync(cache.partialPath(layer.digest), new Uint8Array(10_000).fill(9));
    const pulled = await pullOciImage(`${host}/stale:1`, opts(cache));
    expect(sha256Hex(new Uint8Array(await Bun.file(pulled.layers[0]?.path ?? "").arrayBuffer()))).toBe(layer.digest.slice(7));
    expect(log.filter((r) => r.path.endsWith(layer.digest)).map((r) => r.range)).toEqual(["bytes=10000-", null]);
  });

  test("cancel: E_CANCELLED, the partial download kept for a resume", async () => {
    const img = publish("stall", "1", { layers: [new Uint8Array(100_000)] });
    const layer = img.layers[0] as Blob;
    stallBlob.add(layer.digest);
    const cache = freshCache();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const e = await pullOciImage(`${host}/stall:1`, opts(cache, { signal: ac.signal })).catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe("E_CANCELLED");
    expect(existsSync(cache.path(layer.digest))).toBe(false);
  });

  test("two pulls of one image at once, one lock between them: each blob downloaded once", async () => {
    publish("two", "1", { layers: [new Uint8Array(100_000).fill(1), "small"] });
    const held = new Set<string>();
    const lock = (p: string) => {
      if (held.has(p)) return undefined;
      held.add(p);
      return { release: () => void held.delete(p) };
    };
    const shared = join(dir, `shared${n++}`);
    const [a, b] = [new BlobCache({ dir: shared, lock }), new BlobCache({ dir: shared, lock })];
    const [x, y] = await Promise.all([pullOciImage(`${host}/two:1`, opts(a)), pullOciImage(`${host}/two:1`, opts(b))]);
    expect(x.layers.map((l) => l.path)).toEqual(y.layers.map((l) => l.path));
    expect(log.filter((r) => r.path.includes("/blobs/")).length).toBe(3); // config + 2 layers
    expect(held.size).toBe(0);
  });

  test("a server that keeps stopping: fails after the retries, one clear line", async () => {
    const img = publish("flaky", "1", { layers: [new Uint8Array(50_000)] });
    breakBlob.set((img.layers[0] as Blob).digest, 100);
    await expect(pullOciImage(`${host}/flaky:1`, opts(freshCache()))).rejects.toThrow(/interrupted at \d+ of 50000 bytes after 4 attempts/);
  });

  test("redirects: same host followed, another host refused", async () => {
    const img = publish("redir", "1");
    const layer = img.layers[0] as Blob;
    const path = `/v2/redir/blobs/${layer.digest}`;
    blobs.set("sha256:" + "0".repeat(64), layer.data);
    redirects.set(path, `http://${host}/v2/redir/blobs/sha256:${"0".repeat(64)}`);
    await pullOciImage(`${host}/redir:1`, opts(freshCache()));
    redirects.set(path, `http://localhost:${server.port}/elsewhere`);
    const cache = freshCache();
    await expect(pullOciImage(`${host}/redir:1`, opts(cache))).rejects.toThrow(/redirects to another host \(http:\/\/localhost:\d+\); refused/);
    expect(log.some((r) => r.path === "/elsewhere")).toBe(false);
    expect(existsSync(cache.path(layer.digest))).toBe(false);
  });

  test("size caps: the descriptor's size over the limit, and more bytes than the descriptor names", async () => {
    publish("huge", "1", { layers: [new Uint8Array(10_000)] });
    await expect(pullOciImage(`${host}/huge:1`, opts(freshCache(), { maxBytes: 5_000 }))).rejects.toThrow(/over the limit of 5000/);
    await expect(pullOciImage(`${host}/huge:1`, opts(freshCache(), { env: { MACHINA_PULL_MAX_BYTES: "6000" } }))).rejects.toThrow(
      /over the limit of 6000 \(MACHINA_PULL_MAX_BYTES\)/,
    );
    const img = publish("liar", "1");
    const layer = img.layers[0] as Blob;
    blobs.set(layer.digest, new Uint8Array(1_000_000));
    const cache = freshCache();
    await expect(pullOciImage(`${host}/liar:1`, opts(cache))).rejects.toThrow(/more than the 9 bytes its descriptor names; refused/);
    expect(readdirSync(join(cache.dir, "blobs", "sha256")).filter((f) => f.startsWith(layer.digest.slice(7)))).toEqual([]);
  });

  test("parallel, bounded; the same layer twice is fetched once", async () => {
    const layers = Array.from({ length: 8 }, (_, i) => `layer ${i}`);
    layers.push("layer 0");
    publish("par", "1", { layers });
    await pullOciImage(`${host}/par:1`, opts(freshCache(), { concurrency: 3 }));
    const gets = log.filter((r) => r.path.includes("/blobs/"));
    expect(gets.length).toBe(9); // config + 8 distinct layers
  });

  test("plain http needs tlsVerify: false; https is the default", async () => {
    publish("tls", "1");
    await expect(pullOciImage(`${host}/tls:1`, { cache: freshCache(), platform: "linux/amd64" })).rejects.toThrow(/registry 127\.0\.0\.1:\d+/);
  });

  test("a 404 says not found", async () => {
    requireToken = false;
    await expect(pullOciImage(`${host}/none:1`, opts(freshCache()))).rejects.toThrow(/manifest none:1: not found \(404\)/);
  });

  test("ping", async () => {
    await new RegistryClient(parseImageReference(`${host}/x`), { tlsVerify: false }).ping();
  });
});

describe("blob cache", () => {
  test("LRU eviction keeps the pinned and the recently used; clean removes all", async () => {
    const cache = freshCache(25);
    await cache.ensureDir();
    const put = async (s: string, t: number) => {
      const b = blob(s);
      const tmp = cache.partialPath(b.digest);
      writeFileSync(tmp, b.data);
      const p = await cache.commit(b.digest, tmp);
      const { utimesSync } = await import("node:fs");
      utimesSync(p, t, t);
      return b;
    };
    const a = await put("aaaaaaaaaa", 1000);
    const b = await put("bbbbbbbbbb", 2000);
    const c = await put("cccccccccc", 3000);
    expect(await cache.lookup(a.digest, 10)).toBeDefined(); // a is now the most recent
    const r = await cache.evict([c.digest]);
    expect(r).toEqual({ removed: 1, bytes: 10 });
    expect(await cache.lookup(b.digest)).toBeUndefined();
    expect(await cache.lookup(a.digest)).toBeDefined();
    expect(await cache.lookup(c.digest, 11)).toBeUndefined(); // wrong size: dropped
    expect(cleanBlobCache(new LinuxHost(), cache.dir)).toEqual({ removed: 1, bytes: 10 });
    expect(await cache.lookup(a.digest)).toBeUndefined();
    expect(() => cache.path("sha256:../../etc")).toThrow(/not a sha256 digest/);
  });
});
