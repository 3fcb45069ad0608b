import { describe, expect, test } from "bun:test";
import { imageStatusOf } from "../../src/api/image-service.ts";
import { IMAGE_VERBS, imageStatusText, relative } from "../../src/cli/machinactl/image-verbs.ts";
import { defaultMachinactlOptions, type MachinactlOptions } from "../../src/cli/machinactl/options.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { getImage } from "../../src/image/pool.ts";
import { imageLockPath, imagesOfContainer } from "../../src/image/in-use.ts";
import { defaultSettings, type Settings } from "../../src/settings/settings.ts";
import { cloneImage, parseSizeLimit, removeImage, renameImage, setImageLimit, setImageReadOnly } from "../../src/image/ops.ts";

const POOL = ["/pool", "/usr/lib/machines"];
const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);

function fake(): FakeHost {
  // cp/btrfs create their last argument (enough for the pool logic to see a result).
  const h: FakeHost = new FakeHost({
    onRun: (argv) => {
      if (argv[0] === "cp") h.add(argv[argv.length - 1]!, h.lstat(argv[argv.length - 2]!) === "file" ? "" : { kind: "dir" });
      return undefined;
    },
    files: {
      "/pool/debian/usr": { kind: "dir" },
      "/pool/debian/etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
      "/pool/debian.nspawn": "[Exec]\n",
      "/pool/disk.raw": "0123456789",
      "/pool/.old/usr": { kind: "dir" },
      "/usr/lib/machines/vendor/usr": { kind: "dir" },
    },
  });
  for (const p of ["/pool/debian", "/pool/disk.raw", "/pool/.old", "/usr/lib/machines/vendor"]) h.stats.set(p, { birthtimeMs: T0, mtimeMs: T0 + 60_000 });
  return h;
}

async function runVerb(host: FakeHost, name: string, args: string[], opts: Partial<MachinactlOptions> = {}) {
  const verb = IMAGE_VERBS.find((v) => v.name === name)!;
  let stdout = "";
  let stderr = "";
  const options = { ...defaultMachinactlOptions(), ...opts };
  const status = await verb.run(
    { options, host, paths: { helper: "", stateDir: "/run/m", pool: POOL }, env: {}, out: (t) => void (stdout += t), err: (t) => void (stderr += t) },
    args,
  );
  return { status, stdout, stderr };
}

describe("list-images", () => {
  test("machinectl's columns and footer", async () => {
    expect((await runVerb(fake(), "list-images", [])).stdout).toBe(
      [
        "NAME   TYPE      RO  USAGE CREATED                     MODIFIED",
        "debian directory no  -     Sun 2026-11-01 12:00:00 UTC Sun 2026-11-01 12:01:00 UTC",
        "disk   raw       no  4.0K  Sun 2026-11-01 12:00:00 UTC Sun 2026-11-01 12:01:00 UTC",
        "vendor directory yes -     Sun 2026-11-01 12:00:00 UTC Sun 2026-11-01 12:01:00 UTC",
        "",
        "3 images listed.",
        "",
      ].join("\n"),
    );
  });
  test("-a shows hidden images; --no-legend drops header and footer", async () => {
    const r = await runVerb(fake(), "list-images", [], { all: true, legend: false });
    expect(r.stdout.split("\n")[0]).toStartWith(".old   directory no");
    expect(r.stdout).not.toContain("listed");
  });
  test("--json", async () => {
    const r = await runVerb(fake(), "list-images", [], { json: "short" });
    expect(JSON.parse(r.stdout)[1]).toEqual({ name: "disk", type: "raw", ro: false, usage: 4096, created: T0 * 1000, modified: (T0 + 60_000) * 1000 });
  });
});

describe("image-status and show-image", () => {
  test("image-status block", () => {
    const h = fake();
    expect(imageStatusText(imageStatusOf(h, getImage(h, POOL, "debian")), T0 + 3_600_000 + 120_000)).toBe(
      [
        "debian",
        "\t    Type: directory",
        "\t    Path: /pool/debian",
        "\t      OS: Debian GNU/Linux 12 (bookworm)",
        "\t      RO: writable",
        "\t Created: Sun 2026-11-01 12:00:00 UTC; 1h 2min ago",
        "\tModified: Sun 2026-11-01 12:01:00 UTC; 1h 1min ago",
        "",
      ].join("\n"),
    );
    expect(relative(T0, T0)).toBe("now");
    expect(relative(T0, T0 + 3 * 86400_000 + 5000)).toBe("3d ago");
  });
  test("show-image: properties, -p, --value, -a; empty ones hidden", async () => {
    const h = fake();
    const all = (await runVerb(h, "show-image", ["disk"])).stdout;
    expect(all).toContain("Name=disk\nPath=/pool/disk.raw\nType=raw\nReadOnly=no\n");
    expect(all).toContain("Usage=4096\nLimit=10\n");
    expect((await runVerb(h, "show-image", ["debian"])).stdout).not.toContain("Usage=");
    expect((await runVerb(h, "show-image", ["debian"], { all: true })).stdout).toContain("Usage=\n");
    expect((await runVerb(h, "show-image", ["debian"], { properties: ["Type"], value: true })).stdout).toBe("directory\n");
    // no NAME: machined's manager properties (2^64-1 where the pool has no btrfs quota group, as machined)
    expect((await runVerb(h, "show-image", [])).stdout).toBe("PoolPath=/pool\nPoolUsage=18446744073709551615\nPoolLimit=18446744073709551615\n");
    expect((await runVerb(h, "show-image", [], { properties: ["PoolPath"], value: true })).stdout).toBe("/pool\n");
    expect(JSON.parse((await runVerb(h, "show-image", ["debian"], { json: "short" })).stdout)[0]).toMatchObject({
      name: "debian",
      type: "directory",
      readOnly: false,
      settingsFile: "/pool/debian.nspawn",
    });
  });
  test("image-status without NAME shows every image (-a: hidden ones too)", async () => {
    const names = (out: string) => out.split("\n").filter((l) => /^[^\t]/.test(l) && l !== "");
    expect(names((await runVerb(fake(), "image-status", [])).stdout)).toEqual(["debian", "disk", "vendor"]);
    expect(names((await runVerb(fake(), "image-status", [], { all: true })).stdout)).toEqual([".old", "debian", "disk", "vendor"]);
  });
  test("unknown image", () => {
    expect(runVerb(fake(), "image-status", ["nope"])).rejects.toThrow('no image "nope" in /pool, /usr/lib/machines');
  });
});

describe("operations on the fake host", () => {
  const ctx = (h: FakeHost) => ({ host: h, pool: POOL, stateDir: "/run/m" });
  test("clone: cp -a --reflink=auto into a temporary, renamed into place with its .nspawn", () => {
    const h = fake();
    const r = cloneImage(ctx(h), "debian", "copy", false);
    expect(r.method).toBe("copy");
    expect(h.commands[0]).toEqual(["cp", "-a", "--reflink=auto", "--", "/pool/debian", "/pool/.#copy-abababab"]);
    expect(h.commands[1]).toEqual(["cp", "-a", "--", "/pool/debian.nspawn", "/pool/.#copy.nspawn-abababab"]);
    expect(h.lstat("/pool/copy")).toBe("dir");
    expect(h.lstat("/pool/copy.nspawn")).toBe("file");
    expect(h.readdir("/pool").filter((e) => e.startsWith(".#"))).toEqual([]);
    expect(cloneImage(ctx(h), "disk", "d2", true).image).toMatchObject({ name: "d2", type: "raw", readOnly: true, path: "/pool/d2.raw" });
  });
  test("clone into a writable root that does not exist yet creates it (0700) first", () => {
    const h = fake();
    const pool = ["/var/lib/machines", "/pool"];
    expect(h.lstat("/var/lib/machines")).toBeUndefined();
    const r = cloneImage({ host: h, pool, stateDir: "/run/m" }, "debian", "copy", false);
    expect(r.image).toMatchObject({ name: "copy", path: "/var/lib/machines/copy" });
    expect(h.stat("/var/lib/machines", false)).toMatchObject({ kind: "dir", mode: 0o700 });
  });
  test("clone refuses taken and invalid names; rename, read-only, remove guard the read-only pool", () => {
    const h = fake();
    expect(() => cloneImage(ctx(h), "debian", "disk", false)).toThrow('image "disk" already exists');
    expect(() => cloneImage(ctx(h), "debian", "a/b", false)).toThrow("invalid image name");
    expect(() => cloneImage(ctx(h), "../x", "y", false)).toThrow("invalid image name");
    expect(() => renameImage(ctx(h), "vendor", "v2")).toThrow("read-only pool /usr/lib/machines");
    expect(() => removeImage(ctx(h), "vendor")).toThrow("read-only pool");
    expect(() => setImageReadOnly(ctx(h), "vendor", true)).toThrow("read-only pool");
  });
  test("rename moves the image and NAME.nspawn; read-only flags; remove", () => {
    const h = fake();
    renameImage(ctx(h), "debian", "deb");
    expect(h.lstat("/pool/deb/usr")).toBe("dir");
    expect(h.lstat("/pool/deb.nspawn")).toBe("file");
    expect(h.lstat("/pool/debian")).toBeUndefined();
    expect(setImageReadOnly(ctx(h), "deb", true).readOnly).toBe(true);
    expect(h.immutables.has("/pool/deb")).toBe(true);
    expect(setImageReadOnly(ctx(h), "disk", true).readOnly).toBe(true);
    expect(h.stat("/pool/disk.raw", true)!.mode).toBe(0o444);
    expect(setImageReadOnly(ctx(h), "disk", false).readOnly).toBe(false);
    removeImage(ctx(h), "deb");
    expect(h.lstat("/pool/deb")).toBeUndefined();
    expect(h.lstat("/pool/deb.nspawn")).toBeUndefined();
    expect(h.immutables.has("/pool/deb")).toBe(false);
  });
  test("a held lock makes the operation fail with busy", () => {
    const h = fake();
    h.heldLocks.add("/run/m/image-locks/debian.lock");
    expect(() => removeImage(ctx(h), "debian")).toThrow('image "debian" is busy');
    expect(h.lstat("/pool/debian")).toBe("dir");
  });
  test("an image a running container holds (its in-use lock) cannot be removed, renamed or made read-only; one line without a hint", () => {
    const h = fake();
    const lock = imageLockPath(h, "/run/m", "/pool/debian")!;
    expect(lock).toMatch(/^\/run\/m\/image-use\/\d+-\d+$/);
    const held = h.lockFile(lock, "shared")!; // as a supervisor of a -x container holds it
    for (const op of [() => removeImage(ctx(h), "debian"), () => renameImage(ctx(h), "debian", "deb"), () => setImageReadOnly(ctx(h), "debian", true)])
      expect(op).toThrow(/^cannot (remove|rename|change the read-only flag of) image "debian": it is in use by a running container$/);
    try {
      removeImage(ctx(h), "debian");
    } catch (e) {
      expect(e).toMatchObject({ code: "E_BUSY", hint: undefined });
    }
    expect(h.lstat("/pool/debian")).toBe("dir");
    held.release();
    renameImage(ctx(h), "debian", "deb");
    expect(h.lstat("/pool/deb")).toBe("dir");
  });
  test("which images a container locks, and how", () => {
    const s = (over: Partial<Settings>): Settings => ({ ...defaultSettings(), ...over });
    expect(imagesOfContainer(s({ directory: "/pool/a" }))).toEqual([{ path: "/pool/a", mode: "exclusive" }]);
    for (const over of [{ readOnly: true }, { ephemeral: true }, { volatile: "overlay" as const }])
      expect(imagesOfContainer(s({ directory: "/pool/a", ...over }))).toEqual([{ path: "/pool/a", mode: "shared" }]);
    expect(imagesOfContainer(s({ directory: "/srv/new", template: "/pool/base" }))).toEqual([
      { path: "/srv/new", mode: "exclusive" },
      { path: "/pool/base", mode: "shared" },
    ]);
    // -i: the .raw file, not the directory it is mounted on
    expect(imagesOfContainer(s({ image: "/pool/d.raw", directory: "/run/m/raw-mounts/x/root" }))).toEqual([{ path: "/pool/d.raw", mode: "exclusive" }]);
  });
  test("set-limit: btrfs only, sizes", () => {
    expect(() => setImageLimit(ctx(fake()), "debian", 1024)).toThrow(/is on ext2\/ext3, and size limits need btrfs quotas/);
    expect(parseSizeLimit("1G")).toBe(1024 ** 3);
    expect(parseSizeLimit("512")).toBe(512);
    expect(parseSizeLimit("1.5K")).toBe(1536);
    expect(parseSizeLimit("-")).toBeUndefined();
    expect(() => parseSizeLimit("lots")).toThrow("invalid size");
  });
  test("clean removes hidden images only, --all every image in the writable root", async () => {
    const h = fake();
    const r = await runVerb(h, "clean", []);
    expect(r.stdout).toBe("Removed image '.old'.\n");
    expect(h.lstat("/pool/debian")).toBe("dir");
    await runVerb(h, "clean", [], { all: true });
    expect(h.readdir("/pool")).toEqual([]);
    expect(h.lstat("/usr/lib/machines/vendor")).toBe("dir");
  });
  test("clean empties pull-oci's blob cache, except a blob being downloaded", async () => {
    const h = fake();
    const dir = "/var/cache/machina/oci/blobs/sha256";
    const [a, b, c] = ["a".repeat(64), "b".repeat(64), "c".repeat(64)];
    h.add(`${dir}/${a}`, "layer-a");
    h.add(`${dir}/${b}.partial`, "par");
    h.add(`${dir}/${c}`, "layer-c");
    h.add(`${dir}/not-a-blob`, "x");
    const pulling = h.lockFile(`${dir}/${c}.lock`, "exclusive");
    const r = await runVerb(h, "clean", []);
    expect(r.stdout).toBe("Removed image '.old'.\nRemoved 2 cached OCI blobs. Freed 10B\n");
    expect(h.readdir(dir).sort()).toEqual([`${a}.lock`, `${b}.lock`, c, `${c}.lock`, "not-a-blob"].sort());
    pulling?.release();
    const j = await runVerb(h, "clean", [], { json: "short" });
    expect(JSON.parse(j.stdout).ociCache).toEqual({ removed: 1, freed: 7 });
  });
});

describe("names that cannot be started", () => {
  test("clone and rename to a name that is not a machine name: done, with one warning line", async () => {
    const h = fake();
    const c = await runVerb(h, "clone", ["debian", "a b"]);
    expect(c.status).toBe(0);
    expect(h.lstat("/pool/a b")).toBe("dir");
    expect(c.stderr).toBe(
      `machinactl: warning: image name "a b" is not a valid machine name (letters, digits, '-' and '.', at most 64 characters, no leading '-' or '.'): it cannot be started\n`,
    );
    const r = await runVerb(h, "rename", ["a b", "c_d"]);
    expect(r.status).toBe(0);
    expect(r.stderr.split("\n").filter((l) => l !== "")).toEqual([expect.stringContaining('"c_d" is not a valid machine name')]);
    expect((await runVerb(h, "rename", ["c_d", "fine-name"])).stderr).toBe("");
    expect((await runVerb(h, "clone", ["debian", "also.fine"])).stderr).toBe("");
  });
});
