/**
 * machina-nspawn -i IMAGE.raw (root): a bare ext4 image and a GPT disk following the
 * Discoverable Partitions Specification (root + /usr partitions), built from the busybox
 * fixture with mkfs.ext4 -d; -M NAME finding NAME.raw in the pool; --read-only; the loop
 * devices and mounts gone after exit, and after a SIGKILL of the supervisor at the next start.
 * Every test's loop devices and mounts are removed in afterAll, also when a test failed.
 * Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, shOk } from "../helpers/machina.ts";

const NSPAWN = join(REPO, "bin/machina-nspawn");
const ROOT_X86_64 = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
const USR_X86_64 = "8484680c-9521-48c6-9c11-b0720656f69e";
const HOME = "933AC7E1-2EB4-4F13-B844-0E14E2AEF915";
const SRV = "3B8F8425-20E0-4F3B-907F-1A25A76F98E8";
const GPT_GENERIC = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649";
const ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
let busyboxTree = "";
let dir = "";
let pool = "";
let env: Record<string, string> = {};

const sh = shOk;
function nspawn(...args: string[]) {
  const r = spawnSync([NSPAWN, "-q", ...args], { env, stdout: "pipe", stderr: "pipe" });
  return { status: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}
/** Loop devices backed by files of this test, and mounts below its directory. */
const loops = () =>
  sh("losetup -a -O NAME,BACK-FILE --noheadings || true")
    .split("\n")
    .filter((l) => l.includes(dir));
const mounts = () =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(dir));

/**
 * A disk image at `path`: `size` bytes of nothing, the partition table `table` (sfdisk's script:
 * a label, then `start=SECTOR, size=SECTORS, type=…` per line), and an ext4 file system in each
 * of `fs` (its first sector and size; its content from `tree`, else empty).
 */
function makeDisk(path: string, size: string, table: string[], fs: Array<{ start: number; size: string; tree?: string }>): void {
  sh(`truncate -s ${size} '${path}' && printf '${table.join("\\n")}\\n' | sfdisk -q '${path}'`);
  for (const f of fs) sh(`mkfs.ext4 -q -F -E offset=${f.start * 512}${f.tree !== undefined ? ` -d '${f.tree}'` : ""} '${path}' ${f.size}`);
}

beforeAll(async () => {
  const busybox = await ensureBusyboxImage();
  busyboxTree = busybox;
  dir = mkdtempSync("/var/tmp/machina-raw-test-");
  pool = `${dir}/pool`;
  mkdirSync(pool);
  env = { ...process.env, MACHINA_POOL: pool, MACHINA_STATE_DIR: `${dir}/state` } as Record<string, string>;
  sh(`mkfs.ext4 -q -F -d '${busybox}' '${dir}/bare.raw' 64M`);
  // GPT: root (without /usr content) and /usr partitions.
  cpSync(busybox, `${dir}/rootfs`, { recursive: true, verbatimSymlinks: true });
  renameSync(`${dir}/rootfs/usr`, `${dir}/usrfs`);
  mkdirSync(`${dir}/rootfs/usr`);
  makeDisk(
    `${pool}/gpt.raw`,
    "140M",
    ["label: gpt", `start=2048, size=131072, type=${ROOT_X86_64}`, `start=133120, size=131072, type=${USR_X86_64}`],
    [
      { start: 2048, size: "64M", tree: `${dir}/rootfs` },
      { start: 133120, size: "64M", tree: `${dir}/usrfs` },
    ],
  );
}, 120_000);

afterAll(() => {
  for (const l of mounts().reverse()) spawnSync(["umount", "-l", l.split(" ")[4]!]);
  for (const l of loops()) spawnSync(["losetup", "-d", l.trim().split(/\s+/)[0]!]);
  rmSync(dir, { recursive: true, force: true });
});

describe("-i IMAGE.raw", () => {
  test("a bare ext4 image is the root; loop device and mount gone after exit", () => {
    const r = nspawn("-i", `${dir}/bare.raw`, "/bin/sh", "-c", "hostname; grep ' / ' /proc/self/mountinfo");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const [hostname, root] = r.stdout.trim().split("\n");
    expect(hostname).toBe("bare");
    expect(root).toMatch(/ \/ \/ rw,nodev[^ ]* - ext4 \/dev\/loop\d+ rw/);
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("a GPT disk: root and /usr partitions found by type; -M NAME finds NAME.raw in the pool", () => {
    const r = nspawn("-M", "gpt", "/bin/sh", "-c", 'awk \'$5=="/"||$5=="/usr"{print $5, $(NF-2)}\' /proc/self/mountinfo; ls /usr/bin/probe');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("/ ext4\n/usr ext4\n/usr/bin/probe\n");
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("nothing of a finished run stays in the state directory; the image can be renamed and removed at once", () => {
    sh(`cp --sparse=always '${pool}/gpt.raw' '${pool}/gone.raw'`);
    expect(nspawn("-M", "gone", "/bin/true").status).toBe(0);
    expect(existsSync(`${dir}/state/raw-mounts`) ? readdirSync(`${dir}/state/raw-mounts`) : []).toEqual([]);
    const ctl = (...args: string[]) => spawnSync([join(REPO, "bin/machinactl"), ...args], { env, stdout: "pipe", stderr: "pipe" });
    const mv = ctl("rename", "gone", "gone2");
    expect(mv.stderr.toString()).toBe("");
    expect(ctl("remove", "gone2").exitCode).toBe(0);
    expect(existsSync(`${pool}/gone2.raw`)).toBe(false);
  });

  test("--read-only: read-only loop devices and mounts", () => {
    const r = nspawn("-M", "gpt", "--read-only", "/bin/sh", "-c", "touch /x 2>&1; touch /usr/x 2>&1; true");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("touch: /x: Read-only file system");
    expect(r.stdout).toContain("touch: /usr/x: Read-only file system");
    expect(loops()).toEqual([]);
  });

  test("not a file system, or a GPT without a root partition: a clear error, nothing left", () => {
    sh(`truncate -s 10M '${dir}/junk.raw'`);
    expect(nspawn("-i", `${dir}/junk.raw`, "/bin/true").stderr).toBe(
      `machina-nspawn: "${dir}/junk.raw" has neither a partition table (GPT or MBR) nor a known file system\n`,
    );
    makeDisk(`${dir}/noroot.raw`, "10M", ["label: gpt", `start=2048, size=8192, type=${USR_X86_64}`], []);
    expect(nspawn("-i", `${dir}/noroot.raw`, "/bin/true").stderr).toContain("has a GPT but no root partition: neither one for x64");
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("cloud layouts: GPT with BIOS-boot, EFI and one generic Linux partition; MBR with one bootable Linux partition; -i and -M", () => {
    const root = [{ start: 24576, size: "64M", tree: busyboxTree }];
    // as an older cloud image: BIOS boot, ESP (vfat), the root as type 0FC63DAF (generic Linux data)
    makeDisk(
      `${pool}/cloud.raw`,
      "90M",
      ["label: gpt", `start=2048, size=2048, type=${BIOS_BOOT}`, `start=4096, size=20480, type=${ESP}`, `start=24576, size=131072, type=${GPT_GENERIC}`],
      root,
    );
    // MBR: a FAT partition, the bootable Linux root, a swap partition (as `sfdisk` writes a dos label)
    makeDisk(
      `${pool}/mbr.raw`,
      "90M",
      ["label: dos", "start=2048, size=20480, type=c", "start=24576, size=131072, type=83, bootable", "start=155648, size=8192, type=82"],
      root,
    );
    for (const [name, check, out] of [
      ["cloud", "hostname", "cloud\n"],
      ["mbr", "touch /written && echo rw", "rw\n"],
    ] as const)
      for (const args of [
        ["-i", `${pool}/${name}.raw`],
        ["-M", name],
      ]) {
        const r = nspawn(...args, "/bin/sh", "-c", `awk '$5=="/"{print $5, $(NF-2)}' /proc/self/mountinfo; ${check}`);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe(`/ ext4\n${out}`);
      }
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("DPS /home and /srv partitions are mounted there (a missing /srv is made in the writable root)", () => {
    sh(`mkdir -p '${dir}/homefs/alice' && echo hi > '${dir}/homefs/alice/note'`);
    makeDisk(
      `${dir}/dps.raw`,
      "220M",
      ["label: gpt", `start=2048, size=131072, type=${ROOT_X86_64}`, `start=133120, size=65536, type=${HOME}`, `start=198656, size=65536, type=${SRV}`],
      [
        { start: 2048, size: "64M", tree: busyboxTree },
        { start: 133120, size: "32M", tree: `${dir}/homefs` },
        { start: 198656, size: "32M" },
      ],
    );
    const r = nspawn("-i", `${dir}/dps.raw`, "/bin/sh", "-c", 'awk \'$5=="/home"||$5=="/srv"{print $5, $(NF-2)}\' /proc/self/mountinfo; cat /home/alice/note');
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("/home ext4\n/srv ext4\nhi\n");
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("ambiguous or unmarked cloud layouts: one clear line, nothing attached or mounted", () => {
    makeDisk(`${dir}/two.raw`, "20M", ["label: gpt", `start=2048, size=8192, type=${GPT_GENERIC}`, `start=10240, size=8192, type=${GPT_GENERIC}`], []);
    let r = nspawn("-i", `${dir}/two.raw`, "/bin/true");
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe(
      `machina-nspawn: "${dir}/two.raw" has a GPT with more than one generic Linux data partition (1, 2) and no root partition for x64: which is the root is ambiguous`,
    );
    makeDisk(`${dir}/nboot.raw`, "20M", ["label: dos", "start=2048, size=16384, type=83"], [{ start: 2048, size: "8M" }]);
    r = nspawn("-i", `${dir}/nboot.raw`, "/bin/true");
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe(
      `machina-nspawn: "${dir}/nboot.raw" has an MBR partition table but no bootable Linux partition (type 83 with the bootable flag): partition 1 is not marked bootable`,
    );
    expect(loops()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  test("SIGKILL of the supervisor: the next start detaches the stale mounts and loop devices", async () => {
    const p = spawn([NSPAWN, "-q", "-M", "gpt", "/bin/sleep", "60"], { env, stdout: "ignore", stderr: "ignore" });
    const deadline = Date.now() + 10_000;
    while (mounts().length < 2 && Date.now() < deadline) await Bun.sleep(20);
    expect(mounts().length).toBeGreaterThanOrEqual(2);
    const registry = `${dir}/state/machines/gpt/state.json`;
    while (!existsSync(registry) && Date.now() < deadline) await Bun.sleep(20);
    const leader = JSON.parse(readFileSync(registry, "utf8")).leader as number;
    process.kill(p.pid, "SIGKILL"); // the supervisor (machina-nspawn exec'd the helper)
    process.kill(leader, "SIGKILL");
    await p.exited;
    await Bun.sleep(200);
    expect(mounts().length).toBeGreaterThanOrEqual(2); // nobody detached them
    const r = nspawn("-i", `${dir}/bare.raw`, "/bin/true");
    expect(r.status).toBe(0);
    expect(mounts()).toEqual([]);
    expect(loops()).toEqual([]);
    expect(readdirSync(`${dir}/state/raw-mounts`).filter((id) => id.startsWith("gpt-"))).toEqual([]);
  }, 30_000);
});
