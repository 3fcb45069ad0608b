/**
 * pullOciImage against a real Distribution v2 server: Debian's docker-registry on 127.0.0.1,
 * in HTTP and in HTTPS (a CA made here, htpasswd credentials), images pushed into it with
 * skopeo from an OCI layout this test writes: an index with two platforms, gzip and zstd layers,
 * a Docker schema-2 manifest. Nothing but 127.0.0.1 is contacted; the registries are stopped
 * and every file removed afterwards, also on failure.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import * as tarStream from "tar-stream";
import type * as S from "../../src/api/schemas.ts";
import { MachinaClient } from "../../src/client/client.ts";
import { MachinaError } from "../../src/errors.ts";
import { BlobCache } from "../../src/oci/blob-cache.ts";
import { MEDIA_TYPES } from "../../src/oci/manifest.ts";
import { pullOciImage, sha256Hex } from "../../src/oci/registry.ts";
import { REPO, baseEnv } from "../helpers/machina.ts";

const have = (p: string) => Bun.which(p) !== null;
const available = have("docker-registry") && have("skopeo") && have("openssl");
const isRoot = process.getuid?.() === 0;
const MACHINACTL = join(REPO, "bin/machinactl");
const root = mkdtempSync(join(tmpdir(), "machina-oci-pull-"));
const layout = join(root, "layout");
const policy = join(root, "policy.json");
const registries: Subprocess[] = [];
let plain = "";
let secure = "";
const certDir = join(root, "certs");

function run(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: root } });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function tarOf(files: Record<string, string>): Promise<Uint8Array<ArrayBuffer>> {
  const p = tarStream.pack();
  const chunks: Uint8Array[] = [];
  p.on("data", (c: unknown) => chunks.push(c as Uint8Array));
  const end = new Promise<void>((r) => p.on("end", () => r()));
  // a fixed mtime: the same files are the same bytes (tar-stream's default is now, which made the
  // amd64 and arm64 second layers differ when their builds fell on two sides of a second)
  for (const [name, data] of Object.entries(files)) p.entry({ name, mode: 0o644, mtime: new Date(0) }, data);
  p.finalize();
  await end;
  return new Uint8Array(Buffer.concat(chunks));
}

/** Write a blob into the layout; its descriptor. */
interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
}
function put(data: Uint8Array, mediaType: string, extra: Omit<Desc, "mediaType" | "digest" | "size"> = {}): Desc {
  const hex = sha256Hex(data);
  writeFileSync(join(layout, "blobs", "sha256", hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.byteLength, ...extra };
}
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

/** One image for an architecture: a gzip layer and a zstd (or second gzip) layer. */
async function image(arch: string, zstd: boolean) {
  const l1tar = await tarOf({ "etc/arch": `${arch}\n` });
  const l2tar = await tarOf({ "etc/second": "two\n" });
  const l1 = put(Bun.gzipSync(l1tar), MEDIA_TYPES.ociLayerGzip);
  const l2 = zstd ? put(Bun.zstdCompressSync(l2tar), MEDIA_TYPES.ociLayerZstd) : put(Bun.gzipSync(l2tar), MEDIA_TYPES.ociLayerGzip);
  const diffIds = [l1tar, l2tar].map((t) => `sha256:${sha256Hex(t)}`);
  const config = put(
    enc({ architecture: arch, os: "linux", config: { Entrypoint: ["/bin/echo"], Cmd: ["hi"] }, rootfs: { type: "layers", diff_ids: diffIds } }),
    MEDIA_TYPES.ociConfig,
  );
  return put(enc({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config, layers: [l1, l2] }), MEDIA_TYPES.ociManifest, {
    platform: { os: "linux", architecture: arch },
  });
}

async function startRegistry(port: number, tls: boolean): Promise<string> {
  const dir = join(root, `registry-${port}`);
  mkdirSync(dir);
  const lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:", `    rootdirectory: ${dir}/data`, "http:", `  addr: 127.0.0.1:${port}`];
  if (tls) {
    lines.push("  tls:", `    certificate: ${root}/server.crt`, `    key: ${root}/server.key`);
    lines.push("auth:", "  htpasswd:", "    realm: machina-test", `    path: ${root}/htpasswd`);
  }
  writeFileSync(join(dir, "config.yml"), `${lines.join("\n")}\n`);
  const p = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: "ignore" });
  registries.push(p);
  const url = `${tls ? "https" : "http"}://127.0.0.1:${port}/v2/`;
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(url, tls ? { tls: { rejectUnauthorized: false } } : {}).then(
      () => true,
      () => false,
    );
    if (ok) return `127.0.0.1:${port}`;
    await Bun.sleep(100);
  }
  throw new Error(`docker-registry on ${port} did not start`);
}

beforeAll(async () => {
  if (!available) return;
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const amd = await image("amd64", true);
  const arm = await image("arm64", true);
  const single = await image("amd64", false);
  const index = put(enc({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [amd, arm] }), MEDIA_TYPES.ociIndex);
  const { platform: _p, ...singleDesc } = single;
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...index, annotations: { "org.opencontainers.image.ref.name": "multi" } },
        { ...singleDesc, annotations: { "org.opencontainers.image.ref.name": "single" } },
      ],
    }),
  );
  writeFileSync(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));

  // A CA, a server certificate for 127.0.0.1, htpasswd credentials.
  mkdirSync(certDir);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run(["openssl", "req", "-x509", ...ec, "-keyout", join(root, "ca.key"), "-out", join(certDir, "ca.crt"), "-days", "1", "-subj", "/CN=machina test CA"]);
  run(["openssl", "req", ...ec, "-keyout", join(root, "server.key"), "-out", join(root, "server.csr"), "-subj", "/CN=127.0.0.1"]);
  writeFileSync(join(root, "ext"), "subjectAltName=IP:127.0.0.1\n");
  run([
    "openssl",
    "x509",
    "-req",
    "-in",
    join(root, "server.csr"),
    "-CA",
    join(certDir, "ca.crt"),
    "-CAkey",
    join(root, "ca.key"),
    "-CAcreateserial",
    "-out",
    join(root, "server.crt"),
    "-days",
    "1",
    "-extfile",
    join(root, "ext"),
  ]);
  writeFileSync(join(root, "htpasswd"), `alice:${await Bun.password.hash("wonderland", { algorithm: "bcrypt", cost: 4 })}\n`);

  plain = await startRegistry(await freePort(), false);
  secure = await startRegistry(await freePort(), true);

  const copy = (...args: string[]) => run(["skopeo", "--policy", policy, "copy", "--quiet", ...args]);
  copy("--all", "--dest-tls-verify=false", `oci:${layout}:multi`, `docker://${plain}/test/multi:1`);
  copy("--format", "v2s2", "--dest-tls-verify=false", `oci:${layout}:single`, `docker://${plain}/test/docker:1`);
  copy("--dest-cert-dir", certDir, "--dest-creds", "alice:wonderland", `oci:${layout}:single`, `docker://${secure}/test/secure:1`);
}, 120_000);

afterAll(async () => {
  for (const p of registries) p.kill("SIGTERM");
  await Promise.all(registries.map((p) => p.exited));
  rmSync(root, { recursive: true, force: true });
});

async function gunzipText(path: string): Promise<string> {
  const data = Bun.gunzipSync(new Uint8Array(await Bun.file(path).arrayBuffer()));
  return new TextDecoder().decode(data);
}

let n = 0;
const cache = () => new BlobCache({ dir: join(root, `cache${n++}`) });

describe.skipIf(!available)("pull from docker-registry", () => {
  test("an index with two platforms, gzip and zstd layers (plain HTTP, tlsVerify: false)", async () => {
    const c = cache();
    const arm = await pullOciImage(`${plain}/test/multi:1`, { cache: c, tlsVerify: false, platform: "linux/arm64" });
    expect(arm.indexDigest).toMatch(/^sha256:/);
    expect(arm.config.architecture).toBe("arm64");
    expect(arm.layers.map((l) => l.compression)).toEqual(["gzip", "zstd"]);
    expect(await gunzipText(arm.layers[0]?.path ?? "")).toContain("arm64\n");
    const second = Bun.zstdDecompressSync(new Uint8Array(await Bun.file(arm.layers[1]?.path ?? "").arrayBuffer()));
    expect(new TextDecoder().decode(second)).toContain("two\n");
    const amd = await pullOciImage(`${plain}/test/multi:1`, { cache: c, tlsVerify: false, platform: "linux/amd64" });
    expect(amd.config.config?.Entrypoint).toEqual(["/bin/echo"]);
    expect(await gunzipText(amd.layers[0]?.path ?? "")).toContain("amd64\n");
    // the amd64 and arm64 second layers are the same bytes: one file in the cache
    expect(amd.layers[1]?.path).toBe(arm.layers[1]?.path);
  });

  test("a Docker schema-2 manifest", async () => {
    const img = await pullOciImage(`${plain}/test/docker:1`, { cache: cache(), tlsVerify: false, platform: "linux/amd64" });
    expect(img.manifest.mediaType).toBe(MEDIA_TYPES.dockerManifest);
    expect(img.layers.map((l) => l.mediaType)).toEqual([MEDIA_TYPES.dockerLayerGzip, MEDIA_TYPES.dockerLayerGzip]);
  });

  test("HTTPS with the test's CA (certDir) and credentials from an auth.json", async () => {
    const authFile = join(root, "auth.json");
    writeFileSync(authFile, JSON.stringify({ auths: { [secure]: { auth: Buffer.from("alice:wonderland").toString("base64") } } }));
    const img = await pullOciImage(`${secure}/test/secure:1`, { cache: cache(), certDir, authFile, platform: "linux/amd64" });
    expect(await gunzipText(img.layers[0]?.path ?? "")).toContain("amd64\n");
    // no credentials: refused with a hint; no CA: the TLS error
    await expect(pullOciImage(`${secure}/test/secure:1`, { cache: cache(), certDir, platform: "linux/amd64" })).rejects.toThrow(/access denied \(401\)/);
    const e = await pullOciImage(`${secure}/test/secure:1`, { cache: cache(), authFile, platform: "linux/amd64" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(MachinaError);
    expect((e as MachinaError).message).toMatch(new RegExp(`registry ${secure}: .*certificate`));
    expect((e as MachinaError).hint).toMatch(/--cert-dir/);
  });

  test("tlsVerify: false on an HTTPS registry: HTTPS without verification, as podman's --tls-verify=no", async () => {
    const authFile = join(root, "auth.json");
    const img = await pullOciImage(`${secure}/test/secure:1`, { cache: cache(), tlsVerify: false, authFile, platform: "linux/amd64" });
    expect(img.layers.length).toBe(2);
  });

  test("an unknown tag: not found", async () => {
    await expect(pullOciImage(`${plain}/test/multi:nope`, { cache: cache(), tlsVerify: false })).rejects.toThrow(
      /manifest test\/multi:nope: not found \(404\)/,
    );
  });

  test("nothing but blobs is left in a cache", () => {
    for (const d of readdirSync(root).filter((e) => e.startsWith("cache"))) {
      expect(readdirSync(join(root, d, "blobs", "sha256")).filter((f) => !/^[a-f0-9]{64}$/.test(f))).toEqual([]);
    }
  });
});

/** `machinactl pull-oci`: the verb, into a pool of this test's own (root: the pool is written as root). */
describe.skipIf(!available || !isRoot)("machinactl pull-oci", () => {
  const pool = join(root, "pool");
  const ociCache = join(root, "oci-cache");
  const helperBin = join(root, "helper-bin");
  const machinactl = (...args: string[]) => {
    mkdirSync(pool, { recursive: true });
    const env = baseEnv({ MACHINA_POOL: pool, MACHINA_STATE_DIR: join(root, "state"), MACHINA_OCI_CACHE: ociCache, HOME: root });
    env.PATH = `${helperBin}:${env.PATH ?? "/usr/bin:/bin"}`;
    const r = Bun.spawnSync([MACHINACTL, ...args], { env, stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  };
  const poolEntries = () => readdirSync(pool).sort();

  test("an index: the host's platform by default, --platform picks another; the layers land in the cache", () => {
    const r = machinactl("pull-oci", "--tls-verify=no", `${plain}/test/multi:1`, "multi-img");
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`Pulled "${plain}/test/multi:1"`);
    const host = process.arch === "arm64" ? "arm64" : "amd64";
    expect(readFileSync(join(pool, "multi-img", "etc", "arch"), "utf8")).toBe(`${host}\n`);
    expect(readFileSync(join(pool, "multi-img", "etc", "second"), "utf8")).toBe("two\n");
    const arm = machinactl("pull-oci", "--tls-verify=no", "--platform=linux/arm64", `${plain}/test/multi:1`, "arm-img");
    expect(arm.code).toBe(0);
    expect(readFileSync(join(pool, "arm-img", "etc", "arch"), "utf8")).toBe("arm64\n");
    expect(readdirSync(join(ociCache, "blobs", "sha256")).filter((f) => /^[a-f0-9]{64}$/.test(f)).length).toBeGreaterThanOrEqual(3);
    const s = machinactl("image-status", "multi-img");
    expect(s.code).toBe(0);
    expect(s.stdout).toContain(`${plain}/test/multi:1`);
  });

  test("the default name comes from the reference; an existing name is refused without --force", () => {
    expect(machinactl("pull-oci", "--tls-verify=no", `${plain}/test/docker:1`).code).toBe(0);
    expect(existsSync(join(pool, "docker", "etc", "arch"))).toBe(true);
    const other = machinactl("pull-oci", "--tls-verify=no", `${plain}/test/multi:1`, "docker");
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain('image "docker" already exists');
    expect(machinactl("pull-oci", "--tls-verify=no", "--force", `${plain}/test/docker:1`).code).toBe(0);
  });

  test("a pull of an image already in the pool at the registry's digest changes nothing; a newer digest needs --force", () => {
    const copy = (from: string) =>
      run(["skopeo", "--policy", policy, "copy", "--quiet", "--all", "--dest-tls-verify=false", `oci:${layout}:${from}`, `docker://${plain}/test/moving:1`]);
    copy("single");
    expect(machinactl("pull-oci", "--tls-verify=no", `${plain}/test/moving:1`).code).toBe(0);
    writeFileSync(join(pool, "moving", "marker"), "kept\n");
    const again = machinactl("--json", "pull-oci", "--tls-verify=no", `${plain}/test/moving:1`);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ image: "moving", upToDate: true });
    const text = machinactl("pull-oci", "--tls-verify=no", `${plain}/test/moving:1`);
    expect(text.code).toBe(0);
    expect(text.stderr).toContain(`Image "moving" is up to date with "${plain}/test/moving:1"`);
    expect(readFileSync(join(pool, "moving", "marker"), "utf8")).toBe("kept\n");
    copy("multi");
    const newer = machinactl("pull-oci", "--tls-verify=no", `${plain}/test/moving:1`);
    expect(newer.code).not.toBe(0);
    expect(newer.stderr).toContain("the registry now has sha256:");
    expect(readFileSync(join(pool, "moving", "marker"), "utf8")).toBe("kept\n");
    expect(machinactl("pull-oci", "--tls-verify=no", "--force", `${plain}/test/moving:1`).code).toBe(0);
    expect(existsSync(join(pool, "moving", "marker"))).toBe(false);
  });

  test("a failed pull (unknown tag, untrusted certificate, no credentials) leaves the pool as it was", () => {
    const before = poolEntries();
    const nope = machinactl("pull-oci", "--tls-verify=no", `${plain}/test/multi:nope`, "nope");
    expect(nope.code).not.toBe(0);
    expect(nope.stderr).toMatch(/not found \(404\)/);
    expect(
      nope.stderr
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("hint:")).length,
    ).toBe(1);
    const authFile = join(root, "auth-cli.json");
    writeFileSync(authFile, JSON.stringify({ auths: { [secure]: { auth: Buffer.from("alice:wonderland").toString("base64") } } }));
    const untrusted = machinactl("pull-oci", `--authfile=${authFile}`, `${secure}/test/secure:1`, "sec");
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.stderr).toContain("certificate");
    const denied = machinactl("pull-oci", `--cert-dir=${certDir}`, `${secure}/test/secure:1`, "sec");
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/401/);
    expect(poolEntries()).toEqual(before);
    const ok = machinactl("pull-oci", `--cert-dir=${certDir}`, `--authfile=${authFile}`, `${secure}/test/secure:1`, "sec");
    expect(ok.code).toBe(0);
    expect(existsSync(join(pool, "sec", "etc", "second"))).toBe(true);
  });

  test("credentials from a docker credential helper (credsStore), run with the registry on stdin", () => {
    mkdirSync(helperBin, { recursive: true });
    const asked = join(root, "helper-asked");
    writeFileSync(
      join(helperBin, "docker-credential-machinatest"),
      `#!/bin/sh\n[ "$1" = get ] || exit 3\ncat > '${asked}'\necho '{"ServerURL":"x","Username":"alice","Secret":"wonderland"}'\n`,
      { mode: 0o755 },
    );
    const authFile = join(root, "helper-auth.json");
    writeFileSync(authFile, JSON.stringify({ credsStore: "machinatest" }));
    const r = machinactl("pull-oci", `--cert-dir=${certDir}`, `--authfile=${authFile}`, `${secure}/test/secure:1`, "by-helper");
    expect(r.stderr).toContain('as image "by-helper"');
    expect(r.code).toBe(0);
    expect(readFileSync(asked, "utf8")).toBe(secure);
    writeFileSync(authFile, JSON.stringify({ credsStore: "not-installed" }));
    const missing = machinactl("pull-oci", `--cert-dir=${certDir}`, `--authfile=${authFile}`, `${secure}/test/secure:1`, "by-helper2");
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("credential helper docker-credential-not-installed is not installed");
    expect(poolEntries()).not.toContain("by-helper2");
  });

  test("machinactl clean empties the blob cache; the pulled images stay", () => {
    const r = machinactl("clean");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Removed \d+ cached OCI blobs\. Freed /);
    expect(readdirSync(join(ociCache, "blobs", "sha256")).filter((f) => /^[a-f0-9]{64}$/.test(f))).toEqual([]);
    expect(existsSync(join(pool, "multi-img", "etc", "arch"))).toBe(true);
  });

  test("bad input: one line naming the value", () => {
    const r = machinactl("pull-oci", "--tls-verify=maybe", `${plain}/test/docker:1`, "x");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("maybe");
    const bad = machinactl("pull-oci", "UPPER/Case:1", "y");
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("UPPER/Case:1");
  });
});

/** machinad's pull job (POST /v1/images/pull, kind oci): the same pull, its bytes as progress events. */
describe.skipIf(!available || !isRoot)("machinad: an OCI pull as a job", () => {
  test("the image lands in machinad's pool; the job's events carry bytes; a bad reference is a 400 and nothing", async () => {
    const base = join(root, "machinad");
    mkdirSync(join(base, "run"), { recursive: true, mode: 0o700 });
    mkdirSync(join(base, "pool"), { recursive: true });
    const socket = join(base, "run/api.sock");
    const env = baseEnv({
      MACHINA_POOL: join(base, "pool"),
      MACHINA_STATE_DIR: join(base, "state"),
      MACHINA_OCI_CACHE: join(base, "cache"),
      MACHINA_API_SOCKET: socket,
      HOME: root,
    });
    const daemon = Bun.spawn([join(REPO, "bin/machinad"), "--no-autostart"], { env, stdout: "ignore", stderr: "ignore" });
    try {
      const client = new MachinaClient(socket);
      for (let i = 0; !(await client.ping(200)); i++) {
        if (i > 100) throw new Error("machinad did not start");
        await Bun.sleep(50);
      }
      const events: S.JobEvent[] = [];
      const made = await client.pull({ kind: "oci", ref: `${plain}/test/docker:1`, name: "from-api", tlsVerify: false }, { onProgress: (e) => events.push(e) });
      expect(made).toEqual({ image: "from-api", from: `${plain}/test/docker:1` });
      expect(existsSync(join(base, "pool", "from-api", "etc", "arch"))).toBe(true);
      const sized = events.filter((e) => e.total !== undefined && e.done !== undefined);
      expect(sized.length).toBeGreaterThan(0);
      expect(sized.every((e) => e.done! <= e.total!)).toBe(true);
      expect(client.pull({ kind: "oci", ref: "Not A Reference" })).rejects.toMatchObject({ code: "E_INVALID" });
      // a registry that refuses plain HTTP when TLS is asked for: the job fails, the pool has only the first image
      const refused = await client.pull({ kind: "oci", ref: `${plain}/test/docker:1`, name: "needs-tls" }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(MachinaError);
      expect(
        readdirSync(join(base, "pool"))
          .filter((n) => !n.startsWith("."))
          .sort(),
      ).toEqual(["from-api", "from-api.nspawn"]);
    } finally {
      daemon.kill("SIGTERM");
      await daemon.exited;
    }
  }, 60_000);
});
