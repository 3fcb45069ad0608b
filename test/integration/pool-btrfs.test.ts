/**
 * The image pool on btrfs (root): a btrfs file system on a loop file made by the test (and
 * removed afterwards, also when a test fails): snapshots for clone, subvolumes from plain
 * directories, the ro property, set-limit with qgroups.
 * Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { machinactlSync, shOk } from "../helpers/machina.ts";

let dir = "";
let mnt = "";
let pool = "";
let env: Record<string, string> = {};

const sh = shOk;
const machinactl = (...args: string[]) => machinactlSync(env, ...args);

beforeAll(() => {
  dir = mkdtempSync("/var/tmp/machina-btrfs-test-");
  mnt = `${dir}/mnt`;
  mkdirSync(mnt);
  sh(`truncate -s 1G '${dir}/btrfs.img' && mkfs.btrfs -q '${dir}/btrfs.img' && mount -o loop '${dir}/btrfs.img' '${mnt}'`);
  pool = `${mnt}/pool`;
  mkdirSync(pool);
  env = { ...process.env, MACHINA_POOL: pool, MACHINA_STATE_DIR: `${dir}/state` } as Record<string, string>;
  sh(`btrfs subvolume create '${pool}/sub' >/dev/null && mkdir -p '${pool}/sub/usr/bin' '${pool}/plain/usr/bin'`);
  for (let i = 0; i < 20; i++) {
    writeFileSync(`${pool}/sub/usr/bin/f${i}`, `file ${i}\n`);
    writeFileSync(`${pool}/plain/usr/bin/f${i}`, `file ${i}\n`);
  }
  writeFileSync(`${pool}/sub.nspawn`, "[Exec]\n");
});

afterAll(() => {
  // Unmount (lazily if busy) and remove the loop file; losetup's autoclear frees the device.
  spawnSync(["umount", "-l", mnt]);
  rmSync(dir, { recursive: true, force: true });
});

describe("btrfs pool", () => {
  test("list-images tells subvolumes from directories", () => {
    expect(machinactl("list-images", "--no-legend").stdout).toMatch(/^plain +directory +no[\s\S]*^sub +subvolume +no/m);
  });

  test("clone of a subvolume is a snapshot; --read-only sets the ro property", () => {
    const r = machinactl("clone", "sub", "snap", "--json=short");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ name: "snap", type: "subvolume", method: "snapshot" });
    expect(sh(`btrfs subvolume show '${pool}/snap'`)).toMatch(/Parent UUID:\s+[0-9a-f-]{36}/);
    expect(existsSync(`${pool}/snap.nspawn`)).toBe(true);
    expect(machinactl("clone", "--read-only", "sub", "rosnap").status).toBe(0);
    expect(sh(`btrfs property get -ts '${pool}/rosnap' ro`).trim()).toBe("ro=true");
    expect(machinactl("list-images", "--no-legend").stdout).toMatch(/^rosnap +subvolume +yes/m);
  });

  test("clone of a plain directory becomes a subvolume (as machined)", () => {
    const r = machinactl("clone", "plain", "plainclone", "--json=short");
    expect(JSON.parse(r.stdout)).toMatchObject({ type: "subvolume", method: "subvolume+copy" });
    expect(sh(`ls '${pool}/plainclone/usr/bin' | wc -l`).trim()).toBe("20");
  });

  test("read-only toggles the ro property; remove deletes a read-only subvolume", () => {
    expect(machinactl("read-only", "snap").status).toBe(0);
    expect(sh(`btrfs property get -ts '${pool}/snap' ro`).trim()).toBe("ro=true");
    expect(machinactl("read-only", "snap", "false").status).toBe(0);
    expect(sh(`btrfs property get -ts '${pool}/snap' ro`).trim()).toBe("ro=false");
    expect(machinactl("remove", "rosnap").status).toBe(0);
    expect(existsSync(`${pool}/rosnap`)).toBe(false);
    expect(sh(`btrfs subvolume list '${mnt}'`)).not.toContain("rosnap");
  });

  test("set-limit: qgroup limit on a subvolume; a clear error for a plain directory", () => {
    expect(machinactl("set-limit", "snap", "100M").status).toBe(0);
    sh("sync");
    const show = JSON.parse(machinactl("show-image", "snap", "--json=short").stdout)[0];
    expect(show.limit).toBe(100 * 1024 * 1024);
    expect(machinactl("image-status", "snap").stdout).toContain("\t   Limit: 100M\n");
    expect(machinactl("set-limit", "snap", "-").status).toBe(0);
    expect(JSON.parse(machinactl("show-image", "snap", "--json=short").stdout)[0].limit).toBe(null);
    const r = machinactl("set-limit", "plain", "1G");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('"' + `${pool}/plain` + '" is a plain directory, not a btrfs subvolume');
  });
});
