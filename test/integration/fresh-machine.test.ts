/**
 * A fresh machine (root): no image pool directory yet. Whatever first puts an image into the
 * writable pool creates it, mode 0700 as systemd does — the demo's busybox image
 * (scripts/demo), import-fs, clone — here with MACHINA_POOL pointing at a directory that does
 * not exist yet. A missing optional program is named with its package. And machinactl
 * enable/disable without systemd: only images of the pool, no dangling link, no empty enable
 * directory left behind.
 * Root only.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { LinuxHost } from "../../src/host/linux.ts";
import { ensurePoolBusyboxImage } from "../../src/image/busybox-image.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { baseEnv, machinactlSync, REPO, runNspawn, Scratch } from "../helpers/machina.ts";

const scratch = new Scratch();
afterAll(() => scratch.cleanup());

const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe("the image pool on a fresh machine", () => {
  test("the demo's busybox image creates the missing pool (0700) and runs", async () => {
    const root = scratch.dir("machina-fresh-");
    const pool = join(root, "var/lib/machines");
    const state = join(root, "state");
    const first = await ensurePoolBusyboxImage(new LinuxHost(), [pool]);
    expect(first).toEqual({ path: join(pool, "busybox"), made: true });
    expect(modeOf(pool)).toBe(0o700);
    expect(statSync(join(pool, "busybox/bin/busybox")).isFile()).toBe(true);
    // A second run keeps the image.
    expect(await ensurePoolBusyboxImage(new LinuxHost(), [pool])).toEqual({ path: join(pool, "busybox"), made: false });
    const r = await runNspawn(["-q", "-D", first.path, "/bin/sh", "-c", "echo hello from $(hostname)"], { stateDir: state }, scratch);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello from busybox\n");
    expect(r.code).toBe(0);
  });

  test("import-fs and clone create a missing writable pool (0700)", async () => {
    const busybox = await ensureBusyboxImage();
    const root = scratch.dir("machina-fresh-");
    const pool = join(root, "new/pool");
    const other = join(root, "other/pool");
    const env = baseEnv({ MACHINA_POOL: pool, MACHINA_STATE_DIR: join(root, "state"), NO_COLOR: "1" });
    let r = machinactlSync(env, "import-fs", busybox, "bb");
    expect(r.stderr).toContain('as image "bb"');
    expect(r.status).toBe(0);
    expect(modeOf(pool)).toBe(0o700);
    expect(statSync(join(pool, "bb/bin/busybox")).isFile()).toBe(true);
    // clone from the (now read-only) second root into a writable root that does not exist yet
    r = machinactlSync({ ...env, MACHINA_POOL: `${other}:${pool}` }, "clone", "bb", "bb2");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(modeOf(other)).toBe(0o700);
    expect(statSync(join(other, "bb2/bin/busybox")).isFile()).toBe(true);
  });
});

describe("a missing program", () => {
  test("export-tar to .tar.xz without xz: one line naming xz-utils, no file, no temporary", async () => {
    const busybox = await ensureBusyboxImage();
    const root = scratch.dir("machina-noxz-");
    const pool = join(root, "pool");
    const bin = join(root, "bin"); // a PATH with the programs export-tar runs, except xz
    mkdirSync(pool);
    mkdirSync(bin);
    symlinkSync(busybox, join(pool, "bb"));
    for (const p of ["tar", "sh", "cat", "cp", "rm", "gzip", "du"]) symlinkSync(Bun.which(p)!, join(bin, p));
    const env = baseEnv({ PATH: bin, MACHINA_POOL: pool, MACHINA_STATE_DIR: join(root, "state"), NO_COLOR: "1" });
    const out = join(root, "out");
    mkdirSync(out);
    const r = Bun.spawnSync([process.execPath, join(REPO, "bin/machinactl"), "export-tar", "bb", join(out, "bb.tar.xz")], {
      env,
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.stderr.toString()).toBe('machinactl: transfers needs "xz" (Debian package xz-utils): apt-get install xz-utils\n');
    expect(r.exitCode).toBe(1);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe("machinactl enable / disable without systemd", () => {
  test("an image that is not in the pool: one line, nothing created", () => {
    const root = scratch.dir("machina-enable-");
    const env = baseEnv({
      MACHINA_POOL: join(root, "pool"),
      MACHINA_STATE_DIR: join(root, "state"),
      MACHINA_SYSTEMD: "0",
      MACHINA_ENABLE_DIR: join(root, "etc/machina/machines.target.wants"),
      MACHINA_UNIT_DIR: join(root, "units"),
    });
    const r = machinactlSync(env, "enable", "nope");
    expect(r.stderr).toBe(`machinactl: no image "nope" in ${join(root, "pool")}: only an image of the pool can be enabled\n`);
    expect(r.status).toBe(1);
    expect(existsSync(join(root, "etc"))).toBe(false);
    expect(existsSync(join(root, "units"))).toBe(false);
  });

  test("enable links to a template that exists; disable of the last one removes the enable directory", async () => {
    const busybox = await ensureBusyboxImage();
    const root = scratch.dir("machina-enable-");
    const pool = join(root, "pool");
    const wants = join(root, "etc/machina/machines.target.wants");
    const env = baseEnv({
      MACHINA_POOL: pool,
      MACHINA_STATE_DIR: join(root, "state"),
      MACHINA_SYSTEMD: "0",
      MACHINA_ENABLE_DIR: wants,
      MACHINA_UNIT_DIR: join(root, "units"),
    });
    machinactlSync(env, "list-images"); // nothing made by a read
    expect(existsSync(pool)).toBe(false);
    Bun.spawnSync(["mkdir", "-p", pool]);
    symlinkSync(busybox, join(pool, "bb"));
    // all or nothing: bb exists, nope does not
    expect(machinactlSync(env, "enable", "bb", "nope").status).toBe(1);
    expect(existsSync(wants)).toBe(false);
    let r = machinactlSync(env, "enable", "bb");
    const link = join(wants, "machina-nspawn@bb.service");
    const template = join(root, "etc/machina/machina-nspawn@.service");
    expect(r.stderr).toBe(`Created symlink ${link} → ${template}.\n`);
    expect(readlinkSync(link)).toBe(template);
    expect(readFileSync(link, "utf8")).toContain("ExecStart="); // not dangling
    r = machinactlSync(env, "disable", "bb");
    expect(r.stderr).toBe(`Removed ${link}.\n`);
    expect(existsSync(wants)).toBe(false);
  });
});
