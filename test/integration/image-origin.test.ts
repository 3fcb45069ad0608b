/**
 * Images from outside (src/image/origin.ts): import-tar and import-raw mark the image
 * (trusted.machina.origin), a rename and a clone keep the mark, and machina-nspawn warns once when
 * such an image runs without a user namespace — not with -q, -U, or a trusted PrivateUsers=no,
 * and not for an image made locally. Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, baseEnv, copyTree, shOk } from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const NSPAWN = join(REPO, "bin/machina-nspawn");
const files = new Scratch();
let base: string;
let pool: string;
let trusted: string;
let env: Record<string, string>;

beforeAll(async () => {
  const busybox = await ensureBusyboxImage();
  base = files.dir("machina-origin-");
  pool = `${base}/pool`;
  trusted = `${base}/trusted`;
  mkdirSync(pool);
  mkdirSync(trusted);
  env = baseEnv({ MACHINA_STATE_DIR: `${base}/state`, MACHINA_POOL: pool, MACHINA_SETTINGS_DIRS: trusted });
  shOk(`tar -C '${busybox}' -cf '${base}/bb.tar' .`);
  shOk(`mkfs.ext4 -q -F -d '${busybox}' '${base}/bb.raw' 24M`);
  copyTree(busybox, `${pool}/local`);
});
afterAll(() => files.cleanup());

function run(cmd: string, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync([cmd, ...args], { env, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
  return { code: r.exitCode ?? 128, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const warning = (name: string) =>
  `machina-nspawn: warning: image "${name}" was imported from outside and runs without a user namespace (root in the container is root on the host); use -U\n`;
const warnings = (stderr: string) =>
  stderr
    .split("\n")
    .filter((l) => l.includes("warning:"))
    .map((l) => `${l}\n`);

describe("images from outside", () => {
  test("import-tar / import-raw mark the image; run as the host's root it is warned about once", () => {
    expect(run(MACHINACTL, "import-tar", `${base}/bb.tar`, "imported").code).toBe(0);
    expect(JSON.parse(shOk(`getfattr --only-values -n trusted.machina.origin '${pool}/imported'`))).toMatchObject({
      how: "import-tar",
      source: `${base}/bb.tar`,
    });
    const r = run(NSPAWN, "-M", "imported", "/bin/true");
    expect(r.code).toBe(0);
    expect(warnings(r.stderr)).toEqual([warning("imported")]);
    expect(r.stderr.startsWith(warning("imported"))).toBe(true); // before "Spawning container"

    expect(run(MACHINACTL, "import-raw", `${base}/bb.raw`, "rawimp").code).toBe(0);
    expect(warnings(run(NSPAWN, "-M", "rawimp", "/bin/true").stderr)).toEqual([warning("rawimp")]);

    // the mark follows the image: rename, clone
    expect(run(MACHINACTL, "rename", "imported", "renamed").code).toBe(0);
    expect(warnings(run(NSPAWN, "-M", "renamed", "/bin/true").stderr)).toEqual([warning("renamed")]);
    expect(run(MACHINACTL, "clone", "renamed", "cloned").code).toBe(0);
    expect(warnings(run(NSPAWN, "-M", "cloned", "/bin/true").stderr)).toEqual([warning("cloned")]);
  }, 120_000);

  test("silent with -q, -U, a trusted PrivateUsers=no, and for a local image; an untrusted file does not silence it", () => {
    expect(run(MACHINACTL, "import-tar", `${base}/bb.tar`, "quiet").code).toBe(0);
    expect(run(NSPAWN, "-q", "-M", "quiet", "/bin/true")).toMatchObject({ code: 0, stderr: "" });
    expect(warnings(run(NSPAWN, "-U", "-M", "quiet", "/bin/true").stderr)).toEqual([]);
    expect(warnings(run(NSPAWN, "-M", "local", "/bin/true").stderr)).toEqual([]);
    writeFileSync(`${pool}/quiet.nspawn`, "[Exec]\nPrivateUsers=no\n"); // untrusted: next to the image
    expect(warnings(run(NSPAWN, "-M", "quiet", "/bin/true").stderr)).toContain(warning("quiet"));
    writeFileSync(`${trusted}/quiet.nspawn`, "[Exec]\nPrivateUsers=no\n");
    expect(warnings(run(NSPAWN, "-M", "quiet", "/bin/true").stderr)).toEqual([]);
  }, 120_000);
});
