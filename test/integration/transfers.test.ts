/**
 * machinactl transfers end to end (root): export/import round trip of the busybox fixture,
 * pulls from an HTTP server on 127.0.0.1 started here (checksum, gpg signature with a throwaway
 * key, Range resume, a server that aborts), list-transfers/cancel-transfer across processes,
 * and kill -9 during an import.
 * Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as fs from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";

const REPO = join(import.meta.dir, "../..");
const root = fs.mkdtempSync("/tmp/machina-transfers-");
const pool = join(root, "pool");
const state = join(root, "state");
const files = join(root, "files");
const env = { ...process.env, MACHINA_POOL: pool, MACHINA_STATE_DIR: state, NO_COLOR: "1" } as Record<string, string>;

function machinactl(args: string[], extra: Record<string, string> = {}): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([join(REPO, "bin/machinactl"), ...args], { env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? 128, out: r.stdout.toString(), err: r.stderr.toString() };
}

async function machinactlAsync(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([join(REPO, "bin/machinactl"), ...args], { env: { ...env, ...extra }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

const poolEntries = () => fs.readdirSync(pool).sort();
const visibleImages = () => JSON.parse(machinactl(["list-images", "-a", "--json=short"]).out || "[]").map((i: { name: string }) => i.name) as string[];

/** Everything about a tree that a faithful copy keeps (python: lstat + xattrs). */
function manifest(dir: string): string {
  const py = `
import os, sys, hashlib
root = sys.argv[1]
inodes = {}
out = []
for d, dirs, fs_ in os.walk(root):
    dirs.sort()
    for n in sorted(dirs + fs_):
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        extra = ""
        import stat as S
        if S.S_ISLNK(st.st_mode): extra = "->" + os.readlink(p)
        elif S.S_ISREG(st.st_mode): extra = hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]
        elif S.S_ISCHR(st.st_mode) or S.S_ISBLK(st.st_mode): extra = "dev=%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        link = ""
        if S.S_ISREG(st.st_mode) and st.st_nlink > 1:
            link = "hl=" + inodes.setdefault(st.st_ino, rel)
        try: xa = sorted((k, os.getxattr(p, k, follow_symlinks=False).hex()) for k in os.listxattr(p, follow_symlinks=False))
        except OSError: xa = []
        mt = "" if S.S_ISLNK(st.st_mode) or S.S_ISDIR(st.st_mode) else int(st.st_mtime)
        out.append("%s %o %d:%d %s %s %s %s" % (rel, st.st_mode, st.st_uid, st.st_gid, extra, link, xa, mt))
print("\\n".join(out))
`;
  const r = Bun.spawnSync(["python3", "-c", py, dir], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return r.stdout.toString();
}

let server: ReturnType<typeof Bun.serve> | undefined;
/** A bare TCP server for the broken transfers: it sends a Content-Length, then closes the connection early. */
let raw: net.Server | undefined;
let rawBase = "";
let base = "";
const hits: string[] = [];
let flakyFirst = true;

beforeAll(async () => {
  for (const d of [pool, state, files]) fs.mkdirSync(d, { recursive: true });
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      hits.push(`${url.pathname} ${req.headers.get("range") ?? ""}`);
      const [, mode, ...rest] = url.pathname.split("/");
      const path = join(files, rest.join("/"));
      if (!fs.existsSync(path) || !fs.statSync(path).isFile()) return new Response("not found", { status: 404 });
      const data = fs.readFileSync(path);
      const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
      if (mode === "ok" || rest.at(-1) === "SHA256SUMS" || rest.at(-1) === "SHA256SUMS.gpg" || rest.at(-1)!.endsWith(".sha256")) {
        if (range)
          return new Response(data.subarray(Number(range[1])), {
            status: 206,
            headers: { "content-range": `bytes ${range[1]}-${data.length - 1}/${data.length}` },
          });
        return new Response(data);
      }
      const half = Math.floor(data.length / 2);
      const abort = (from: number) =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(data.subarray(from, Math.max(from + 1, half)));
              setTimeout(() => c.close(), 20); // short of content-length: the client sees the connection end early
            },
          }),
          { status: from === 0 ? 200 : 206, headers: { "content-length": String(data.length - from) } },
        );
      if (mode === "flaky") {
        // First request: half the body, then the connection breaks; later ones honour Range.
        if (!range && flakyFirst) {
          flakyFirst = false;
          return abort(0);
        }
        const from = range ? Number(range[1]) : 0;
        return new Response(data.subarray(from), { status: range ? 206 : 200 });
      }
      if (mode === "abort") return abort(range ? Number(range[1]) : 0);
      if (mode === "slow") {
        let sent = 0;
        return new Response(
          new ReadableStream({
            async pull(c) {
              await Bun.sleep(100);
              if (sent >= data.length) return c.close();
              c.enqueue(data.subarray(sent, sent + 1024));
              sent += 1024;
            },
          }),
          { headers: { "content-length": String(data.length) } },
        );
      }
      return new Response("?", { status: 400 });
    },
  });
  base = `http://127.0.0.1:${server.port}`;
  raw = net.createServer((sock) => {
    let buf = "";
    sock.on("data", (chunk) => {
      buf += chunk.toString("latin1");
      if (!buf.includes("\r\n\r\n")) return;
      const [line, ...hdrs] = buf.split("\r\n");
      const path = line!.split(" ")[1]!;
      const range = hdrs.map((h) => /^range:\s*bytes=(\d+)-/i.exec(h)).find((m) => m)?.[1];
      hits.push(`${path} ${range ? `bytes=${range}-` : ""}`);
      const [, mode, ...rest] = path.split("/");
      const data = fs.readFileSync(join(files, rest.join("/")));
      const start = Number(range ?? 0);
      // flaky: only the first request breaks; abort: every request breaks half-way.
      const breaks = mode === "abort" || (mode === "flaky" && flakyFirst);
      if (mode === "flaky") flakyFirst = false;
      const body = data.subarray(start);
      sock.write(
        `HTTP/1.1 ${range ? "206 Partial Content" : "200 OK"}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n${range ? `Content-Range: bytes ${start}-${data.length - 1}/${data.length}\r\n` : ""}\r\n`,
      );
      sock.write(breaks ? body.subarray(0, Math.max(1, Math.floor(body.length / 2))) : body);
      setTimeout(() => sock.end(), 50);
    });
  });
  await new Promise<void>((r) => raw!.listen(0, "127.0.0.1", () => r()));
  rawBase = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}`;
});

afterAll(() => {
  server?.stop(true);
  raw?.close();
  for (const n of fs.existsSync(pool) ? fs.readdirSync(pool) : []) Bun.spawnSync(["chattr", "-i", join(pool, n)], { stderr: "ignore" });
  fs.rmSync(root, { recursive: true, force: true });
});

describe("round trip", () => {
  test("import-fs, export-tar (xz, zstd, gzip, bzip2, plain) and import-tar keep the tree identical", async () => {
    const busybox = await ensureBusyboxImage();
    const src = join(root, "src");
    expect(Bun.spawnSync(["cp", "-a", busybox, src]).exitCode).toBe(0);
    // What a rootfs has beyond busybox: xattrs, a device node, a FIFO, hardlinks, setuid, odd owners.
    Bun.spawnSync([
      "python3",
      "-c",
      `import os; os.setxattr("${src}/bin/busybox", "user.machina", b"\\x00\\x01bin"); os.setxattr("${src}/etc", "trusted.t", b"x")`,
    ]);
    Bun.spawnSync(["mknod", "-m", "0620", `${src}/dev/tty9`, "c", "4", "9"]);
    Bun.spawnSync(["mknod", "-m", "0600", `${src}/dev/fifo`, "p"]);
    fs.writeFileSync(`${src}/etc/suid`, "x");
    fs.chmodSync(`${src}/etc/suid`, 0o4755);
    fs.chownSync(`${src}/etc/suid`, 1234, 4321);
    fs.linkSync(`${src}/etc/suid`, `${src}/etc/suid-link`);
    const want = manifest(src);

    let r = machinactl(["import-fs", src, "rt"]);
    expect(r.err).toContain('as image "rt"');
    expect(manifest(join(pool, "rt"))).toBe(want);
    for (const suffix of ["tar.xz", "tar.zst", "tar.gz", "tar.bz2", "tar"]) {
      const out = join(root, `rt.${suffix}`);
      r = machinactl(["export-tar", "rt", out]);
      expect(r.code).toBe(0);
      // progress as the imports show it (plain lines when stderr is not a terminal), up to 100%
      expect(r.err).toMatch(/^Exporting rt: 100% \([0-9.]+[KM] of [0-9.]+[KM]\)$/m);
      const name = `rt-${suffix.replace(/\./g, "-")}`;
      r = machinactl(["import-tar", out, name]);
      expect(r.code).toBe(0);
      expect(manifest(join(pool, name))).toBe(want);
      fs.rmSync(out);
    }
    // --format wins over the suffix; content detection on import.
    r = machinactl(["export-tar", "--format=zstd", "rt", join(root, "weird.tar.gz")]);
    expect(r.code).toBe(0);
    expect(Buffer.from(fs.readFileSync(join(root, "weird.tar.gz")).subarray(0, 4)).toString("hex")).toBe("28b52ffd");
    expect(machinactl(["import-tar", join(root, "weird.tar.gz"), "weird"]).code).toBe(0);
    expect(manifest(join(pool, "weird"))).toBe(want);
    // An existing name is refused without --force, replaced with it.
    r = machinactl(["import-tar", join(root, "weird.tar.gz"), "weird"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('image "weird" already exists');
    expect(machinactl(["--force", "--read-only", "import-tar", join(root, "weird.tar.gz"), "weird"]).code).toBe(0);
    // --read-only: the replacement is marked read-only.
    expect(JSON.parse(machinactl(["show-image", "weird", "--json=short"]).out)).toMatchObject([{ name: "weird", readOnly: true }]);
    expect(machinactl(["image-status", "weird"]).out).toMatch(/^weird\n(?:\t.*\n)*\t +RO: read-only\n/);
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
    fs.rmSync(src, { recursive: true });
  }, 120_000);

  test("import-raw / export-raw: sparse copy, compressed, checked to be a file system", () => {
    const img = join(root, "fs.raw");
    expect(Bun.spawnSync(["truncate", "-s", "64M", img]).exitCode).toBe(0);
    expect(Bun.spawnSync(["mkfs.ext4", "-q", "-F", img]).exitCode).toBe(0);
    const sum = (p: string) => new Bun.CryptoHasher("sha256").update(fs.readFileSync(p)).digest("hex");
    const want = sum(img);
    Bun.spawnSync(["xz", "-k", "-T0", "-1", img]);
    let r = machinactl(["import-raw", `${img}.xz`, "disk"]);
    expect(r.code).toBe(0);
    const st = fs.statSync(join(pool, "disk.raw"));
    expect(st.size).toBe(64 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(st.size / 4); // holes kept
    expect(sum(join(pool, "disk.raw"))).toBe(want);
    r = machinactl(["export-raw", "disk", join(root, "out.raw.zst")]);
    expect(r.code).toBe(0);
    expect(r.err).toContain("Exporting disk: 100% (64M of 64M)");
    r = machinactl(["export-raw", "disk", join(root, "out.raw")]);
    expect(r.code).toBe(0);
    expect(r.err).toContain("Exporting disk: 100% (64M of 64M)");
    expect(sum(join(root, "out.raw"))).toBe(want);
    expect(machinactl(["import-raw", join(root, "out.raw.zst"), "disk2"]).code).toBe(0);
    expect(sum(join(pool, "disk2.raw"))).toBe(want);
    // Not a disk image: refused, nothing left.
    fs.writeFileSync(join(root, "junk.raw"), Buffer.alloc(200_000, 7));
    r = machinactl(["import-raw", join(root, "junk.raw")]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("not a raw disk image");
    expect(poolEntries().filter((n) => n.startsWith(".#") || n.startsWith("junk"))).toEqual([]);
  }, 60_000);
});

describe("pull over HTTP (127.0.0.1)", () => {
  let tarball = "";
  let sha = "";
  const gnupg = join(root, "gnupg");
  const keyring = join(root, "pubring.gpg");
  const otherKeyring = join(root, "other.gpg");

  beforeAll(async () => {
    // A small image tarball + SHA256SUMS + a detached signature by a throwaway key.
    const src = join(root, "pullsrc");
    fs.mkdirSync(join(src, "etc"), { recursive: true });
    fs.writeFileSync(join(src, "etc/os-release"), "ID=pulled\n");
    fs.writeFileSync(
      join(src, "big"),
      Buffer.alloc(3 * 1024 * 1024, 1).map((_, i) => (i * 31) & 0xff),
    );
    tarball = join(files, "img.tar.gz");
    expect(Bun.spawnSync(["tar", "-czf", tarball, "-C", src, "."]).exitCode).toBe(0);
    sha = new Bun.CryptoHasher("sha256").update(fs.readFileSync(tarball)).digest("hex");
    fs.writeFileSync(join(files, "SHA256SUMS"), `${"0".repeat(64)}  other.tar\n${sha} *img.tar.gz\n`);
    fs.mkdirSync(gnupg, { mode: 0o700 });
    const gpg = (args: string[], home = gnupg) =>
      Bun.spawnSync(["gpg", "--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", "", ...args], { stdout: "pipe", stderr: "pipe" });
    expect(gpg(["--quick-gen-key", "machina test <test@machina.invalid>", "ed25519", "sign", "never"]).exitCode).toBe(0);
    fs.writeFileSync(keyring, gpg(["--export"]).stdout);
    expect(gpg(["--yes", "--detach-sign", "-o", join(files, "SHA256SUMS.gpg"), join(files, "SHA256SUMS")]).exitCode).toBe(0);
    const other = join(root, "gnupg2");
    fs.mkdirSync(other, { mode: 0o700 });
    expect(gpg(["--quick-gen-key", "someone else <x@machina.invalid>", "ed25519", "sign", "never"], other).exitCode).toBe(0);
    fs.writeFileSync(otherKeyring, gpg(["--export"], other).stdout);
    for (const m of ["ok", "flaky", "abort", "slow"]) fs.mkdirSync(join(files, m), { recursive: true });
    for (const m of ["ok", "flaky", "abort", "slow"])
      for (const f of ["img.tar.gz", "SHA256SUMS", "SHA256SUMS.gpg"]) fs.copyFileSync(join(files, f), join(files, m, f));
  }, 120_000);

  test("--verify=signature (the default) with SHA256SUMS and SHA256SUMS.gpg", async () => {
    const r = await machinactlAsync(["pull-tar", `${base}/ok/img.tar.gz`], { MACHINA_IMPORT_PUBRING: keyring });
    expect(r.err).toContain('as image "img"');
    expect(r.code).toBe(0);
    expect(fs.readFileSync(join(pool, "img/etc/os-release"), "utf8")).toBe("ID=pulled\n");
  });

  test("a signature by an unknown key is refused, nothing left", async () => {
    const r = await machinactlAsync(["pull-tar", `${base}/ok/img.tar.gz`, "bad-sig"], { MACHINA_IMPORT_PUBRING: otherKeyring });
    expect(r.code).toBe(1);
    expect(r.err).toContain("signature check");
    expect(visibleImages()).not.toContain("bad-sig");
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
  });

  test("--verify=checksum: a tampered image is refused; .sha256 is preferred over SHA256SUMS", async () => {
    fs.mkdirSync(join(files, "t"), { recursive: true });
    fs.copyFileSync(tarball, join(files, "t/img.tar.gz"));
    fs.appendFileSync(join(files, "t/img.tar.gz"), "tampered");
    fs.writeFileSync(join(files, "t/SHA256SUMS"), `${sha}  img.tar.gz\n`);
    let r = await machinactlAsync(["pull-tar", "--verify=checksum", `${base}/ok/t/img.tar.gz`, "tampered"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("checksum mismatch");
    fs.writeFileSync(
      join(files, "t/img.tar.gz.sha256"),
      `${new Bun.CryptoHasher("sha256").update(fs.readFileSync(join(files, "t/img.tar.gz"))).digest("hex")}  img.tar.gz\n`,
    );
    r = await machinactlAsync(["pull-tar", "--verify=checksum", `${base}/ok/t/img.tar.gz`, "persha"]);
    expect(r.err).toContain(".sha256");
    expect(r.code).toBe(1); // the tarball now has trailing garbage after the gzip stream: gzip refuses
    expect(visibleImages().filter((n) => n === "tampered" || n === "persha")).toEqual([]);
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
  });

  test("Range resume after a connection that breaks mid-body", async () => {
    const r = await machinactlAsync(["pull-tar", "--verify=no", `${rawBase}/flaky/img.tar.gz`, "resumed"]);
    expect(r.code).toBe(0);
    expect(hits.filter((h) => h.startsWith("/flaky/img.tar.gz")).some((h) => /bytes=\d+-/.test(h))).toBe(true);
    expect(fs.readFileSync(join(pool, "resumed/etc/os-release"), "utf8")).toBe("ID=pulled\n");
  });

  test("a server that always aborts mid-transfer leaves no image", async () => {
    const r = await machinactlAsync(["pull-tar", "--verify=no", `${rawBase}/abort/img.tar.gz`, "aborted"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("download failed");
    expect(visibleImages()).not.toContain("aborted");
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
  });

  test("download cap (MACHINA_PULL_MAX_BYTES)", async () => {
    const r = await machinactlAsync(["pull-tar", "--verify=no", `${base}/ok/img.tar.gz`, "capped"], { MACHINA_PULL_MAX_BYTES: "1000" });
    expect(r.code).toBe(1);
    expect(r.err).toContain("limit");
    expect(poolEntries().filter((n) => n.startsWith(".#") || n === "capped")).toEqual([]);
  });

  test("list-transfers and cancel-transfer from another process; kill -9 leaves no image, the next run cleans up", async () => {
    const start = () =>
      Bun.spawn([join(REPO, "bin/machinactl"), "pull-tar", "--verify=no", `${base}/slow/img.tar.gz`, "slowpoke"], { env, stdout: "pipe", stderr: "pipe" });
    let p = start();
    let listed = "";
    for (let i = 0; i < 100 && !listed.includes("slowpoke"); i++) {
      await Bun.sleep(100);
      listed = machinactl(["list-transfers"]).out;
    }
    expect(listed).toContain("pull-tar");
    expect(listed).toMatch(/^ID\s+PERCENT\s+TYPE\s+LOCAL\s+REMOTE/m);
    const id = /^(\d+)\s/m.exec(listed.split("\n").slice(1).join("\n"))![1]!;
    expect(poolEntries().some((n) => n.startsWith(".#"))).toBe(true);
    const c = machinactl(["cancel-transfer", id]);
    expect(c.code).toBe(0);
    expect(await p.exited).toBe(1);
    expect(await new Response(p.stderr).text()).toContain("cancelled");
    expect(poolEntries().filter((n) => n.startsWith(".#") || n === "slowpoke")).toEqual([]);
    expect(machinactl(["list-transfers"]).out).toContain("0 transfers listed.");

    p = start();
    for (let i = 0; i < 100 && !poolEntries().some((n) => n.startsWith(".#")); i++) await Bun.sleep(50);
    p.kill("SIGKILL");
    await p.exited;
    expect(visibleImages()).not.toContain("slowpoke");
    expect(poolEntries().some((n) => n.startsWith(".#"))).toBe(true); // the killed run's temporary
    expect(machinactl(["list-transfers", "--json=short"]).out.trim()).toBe("[]");
    // The next transfer removes it.
    expect(machinactl(["import-tar", tarball, "after-kill"]).code).toBe(0);
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
  }, 60_000);

  test("kill -9 during the extraction of a large archive", async () => {
    const big = join(root, "big.tar.gz");
    const src = join(root, "bigsrc");
    fs.mkdirSync(src);
    for (let i = 0; i < 6; i++) fs.writeFileSync(join(src, `z${i}`), Buffer.alloc(64 * 1024 * 1024));
    expect(Bun.spawnSync(["tar", "-czf", big, "-C", src, "."]).exitCode).toBe(0);
    fs.rmSync(src, { recursive: true });
    const p = Bun.spawn([join(REPO, "bin/machinactl"), "import-tar", big, "bigone"], { env, stdout: "pipe", stderr: "pipe" });
    for (let i = 0; i < 200 && !poolEntries().some((n) => n.startsWith(".#bigone")); i++) await Bun.sleep(10);
    await Bun.sleep(150);
    p.kill("SIGKILL");
    await p.exited;
    expect(visibleImages()).not.toContain("bigone");
    // The next run waits for nothing: tar (holding the temporary's lock) dies with its input; then it is cleaned.
    for (let i = 0; i < 50 && machinactl(["import-tar", tarball, `again${i}`]).code === 0 && poolEntries().some((n) => n.startsWith(".#")); i++)
      await Bun.sleep(100);
    expect(poolEntries().filter((n) => n.startsWith(".#"))).toEqual([]);
    expect(visibleImages()).not.toContain("bigone");
    fs.rmSync(big);
  }, 120_000);
});
