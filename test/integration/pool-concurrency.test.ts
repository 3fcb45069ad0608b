/**
 * The image pool under concurrency and crashes (root): 16 concurrent clone/rename/remove on one
 * image, kill -9 during a clone, and clone fidelity (ownership, modes, xattrs, ACLs, hardlinks,
 * device nodes, sparse files). The pool and state directory are temporary directories
 * (MACHINA_POOL, MACHINA_STATE_DIR): the real /var/lib/machines is never touched.
 * Root only.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawn } from "bun";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, machinactlSync, shOk } from "../helpers/machina.ts";

let dir = "";
let pool = "";
let env: Record<string, string> = {};

const sh = shOk;

const MACHINACTL = join(REPO, "bin/machinactl");
const machinactl = (...args: string[]) => machinactlSync(env, ...args);

async function concurrently(commands: string[][]): Promise<Array<{ args: string[]; status: number; stderr: string }>> {
  const procs = commands.map((args) => ({ args, p: spawn([MACHINACTL, ...args], { env, stdout: "ignore", stderr: "pipe" }) }));
  return Promise.all(procs.map(async ({ args, p }) => ({ args, status: await p.exited, stderr: await new Response(p.stderr).text() })));
}

/** A small tree with every kind of file a clone must keep. */
function makeImage(path: string): void {
  mkdirSync(`${path}/usr/bin`, { recursive: true });
  mkdirSync(`${path}/etc`, { recursive: true });
  writeFileSync(`${path}/etc/os-release`, 'PRETTY_NAME="Test image"\n');
  for (let i = 0; i < 50; i++) writeFileSync(`${path}/usr/bin/f${i}`, `file ${i}\n`.repeat(100));
  sh(`cd '${path}' && ln usr/bin/f0 usr/bin/hardlink && ln -s f1 usr/bin/symlink && mknod dev-null c 1 3 && mkfifo fifo`);
  sh(`cd '${path}' && chown 1234:5678 usr/bin/f2 && chmod 4751 usr/bin/f3 && truncate -s 64M sparse && printf x >> sparse`);
  sh(`cd '${path}' && setfattr -n user.machina -v hello usr/bin/f4 && setfacl -m u:4321:rwx usr/bin/f5`);
}

const entries = () => readdirSync(pool).sort();
const images = () => JSON.parse(machinactl("list-images", "-a", "--json=short").stdout) as Array<{ name: string }>;
const fileCount = (path: string) => Number(sh(`find '${path}' | wc -l`).trim());

beforeEach(() => {
  dir = mkdtempSync("/var/tmp/machina-pool-test-");
  pool = `${dir}/pool`;
  mkdirSync(pool);
  env = { ...process.env, MACHINA_POOL: pool, MACHINA_STATE_DIR: `${dir}/state`, MACHINA_OCI_CACHE: `${dir}/oci` } as Record<string, string>;
  makeImage(`${pool}/img`);
  makeImage(`${dir}/reference`);
  writeFileSync(`${pool}/img.nspawn`, "[Exec]\nBoot=no\n");
});

afterEach(() => {
  sh(`chattr -R -i '${dir}' 2>/dev/null || true`);
  rmSync(dir, { recursive: true, force: true });
});

describe("16 concurrent operations on one image", () => {
  test("16 clones to one name: exactly one wins, the others fail cleanly", async () => {
    const results = await concurrently(Array.from({ length: 16 }, () => ["clone", "img", "copy"]));
    const won = results.filter((r) => r.status === 0);
    expect(won.length).toBe(1);
    for (const r of results.filter((r) => r.status !== 0)) expect(r.stderr).toMatch(/^machinactl: (image "(img|copy)" is busy|image "copy" already exists)/);
    expect(entries()).toEqual(["copy", "copy.nspawn", "img", "img.nspawn"]);
    expect(fileCount(`${pool}/copy`)).toBe(fileCount(`${pool}/img`));
  });

  test("8 renames (distinct names) and 8 removes of one image: exactly one wins", async () => {
    const cmds = [...Array.from({ length: 8 }, (_, i) => ["rename", "img", `r${i}`]), ...Array.from({ length: 8 }, () => ["remove", "img"])];
    const results = await concurrently(cmds);
    const won = results.filter((r) => r.status === 0);
    expect(won.length).toBe(1);
    for (const r of results.filter((r) => r.status !== 0)) expect(r.stderr).toMatch(/^machinactl: (image "img" is busy|no image "img" in)/);
    const winner = won[0]!.args;
    if (winner[0] === "rename") expect(entries()).toEqual([winner[2]!, `${winner[2]}.nspawn`]);
    else expect(entries()).toEqual([]);
  });

  test("mixed clones, renames and removes: the pool stays consistent", async () => {
    const cmds = [
      ...Array.from({ length: 6 }, (_, i) => ["clone", "img", `c${i}`]),
      ...Array.from({ length: 5 }, (_, i) => ["rename", "img", `r${i}`]),
      ...Array.from({ length: 5 }, () => ["remove", "img"]),
    ];
    const results = await concurrently(cmds);
    for (const r of results.filter((r) => r.status !== 0)) expect(r.stderr).toMatch(/^machinactl: (image "img" is busy|no image "img" in)/);
    const won = results.filter((r) => r.status === 0).map((r) => r.args);
    const destructive = won.filter((a) => a[0] !== "clone");
    expect(destructive.length).toBeLessThanOrEqual(1);
    const expected = new Set<string>(won.filter((a) => a[0] === "clone").map((a) => a[2]!));
    if (destructive[0]?.[0] === "rename") expected.add(destructive[0][2]!);
    else if (destructive.length === 0) expected.add("img");
    expect(
      images()
        .map((i) => i.name)
        .sort(),
    ).toEqual([...expected].sort());
    expect(entries().filter((e) => e.startsWith(".#"))).toEqual([]);
    const reference = fileCount(`${dir}/reference`);
    for (const name of expected) {
      expect(fileCount(`${pool}/${name}`)).toBe(reference);
      expect(existsSync(`${pool}/${name}.nspawn`)).toBe(true);
    }
  });
});

describe("kill -9", () => {
  test("during a clone: no image appears; the next operation removes the temporary", async () => {
    sh(`head -c 600M /dev/zero > '${pool}/img/big'`);
    for (const group of [false, true]) {
      const p = spawn([MACHINACTL, "clone", "img", "copy"], { env, stdout: "ignore", stderr: "ignore", detached: group });
      const deadline = Date.now() + 10_000;
      while (!entries().some((e) => e.startsWith(".#copy-")) && Date.now() < deadline) await Bun.sleep(5);
      expect(entries().some((e) => e.startsWith(".#copy-"))).toBe(true);
      await Bun.sleep(50);
      const children = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      process.kill(group ? -p.pid : p.pid, "SIGKILL");
      await p.exited;
      expect(images().map((i) => i.name)).toEqual(["img"]);
      if (!group) {
        // The orphaned cp still holds the temporary's lock: the temporary is kept until it ends.
        expect(machinactl("clean").status).toBe(0);
        expect(entries().some((e) => e.startsWith(".#copy-"))).toBe(children.length > 0 && children.some((c) => existsSync(`/proc/${c}`)));
        for (const c of children) while (existsSync(`/proc/${c}`) && Date.now() < deadline + 30_000) await Bun.sleep(20);
      }
      expect(entries().some((e) => e.startsWith(".#"))).toBe(true);
      const r = machinactl("clean");
      expect(r.status).toBe(0);
      expect(entries()).toEqual(["img", "img.nspawn"]);
    }
  }, 60_000);
});

describe("clone fidelity (ext4: cp -a --reflink=auto)", () => {
  test("ownership, modes, xattrs, ACLs, hardlinks, devices, fifos, sparse files, symlinks; .nspawn copied", () => {
    expect(machinactl("clone", "img", "copy").status).toBe(0);
    const c = `${pool}/copy`;
    expect(statSync(`${c}/usr/bin/f2`)).toMatchObject({ uid: 1234, gid: 5678 });
    expect(statSync(`${c}/usr/bin/f3`).mode & 0o7777).toBe(0o4751);
    expect(sh(`getfattr --only-values -n user.machina '${c}/usr/bin/f4'`)).toBe("hello");
    expect(sh(`getfacl -p '${c}/usr/bin/f5'`)).toContain("user:4321:rwx");
    expect(statSync(`${c}/usr/bin/hardlink`).ino).toBe(statSync(`${c}/usr/bin/f0`).ino);
    expect(statSync(`${c}/dev-null`).isCharacterDevice()).toBe(true);
    expect(statSync(`${c}/dev-null`).rdev).toBe(statSync(`${pool}/img/dev-null`).rdev);
    expect(statSync(`${c}/fifo`).isFIFO()).toBe(true);
    expect(sh(`readlink '${c}/usr/bin/symlink'`).trim()).toBe("f1");
    expect(statSync(`${c}/sparse`).size).toBe(64 * 1024 * 1024 + 1);
    expect(statSync(`${c}/sparse`).blocks * 512).toBeLessThan(1024 * 1024);
    expect(readFileSync(`${pool}/copy.nspawn`, "utf8")).toBe("[Exec]\nBoot=no\n");
  });

  test("read-only: chattr +i on directories, write bits on raw files; remove of a read-only image works", () => {
    expect(machinactl("clone", "--read-only", "img", "ro").status).toBe(0);
    expect(sh(`lsattr -d '${pool}/ro'`)).toMatch(/^-*i/);
    expect(JSON.parse(machinactl("show-image", "ro", "--json=short").stdout)[0].readOnly).toBe(true);
    expect(machinactl("read-only", "ro", "no").status).toBe(0);
    expect(sh(`lsattr -d '${pool}/ro'`)).not.toMatch(/^-*i/);
    expect(machinactl("read-only", "ro").status).toBe(0);
    expect(machinactl("rename", "ro", "ro2").status).toBe(0);
    expect(sh(`lsattr -d '${pool}/ro2'`)).toMatch(/^-*i/);
    expect(machinactl("remove", "ro2").status).toBe(0);
    expect(existsSync(`${pool}/ro2`)).toBe(false);
    sh(`truncate -s 1M '${pool}/disk.raw'`);
    expect(machinactl("read-only", "disk").status).toBe(0);
    expect(statSync(`${pool}/disk.raw`).mode & 0o222).toBe(0);
    expect(machinactl("list-images", "--no-legend").stdout).toMatch(/^disk +raw +yes +0B/m);
  });

  test("remove and rename refuse an image of a running machine", () => {
    // A registry entry whose lock is held, rooted at the image (as the helper writes it).
    const reg = `${dir}/state/machines/busy`;
    mkdirSync(reg, { recursive: true });
    writeFileSync(`${reg}/state.json`, JSON.stringify({ leader: 1, supervisor: 1, name: "busy", root: `${pool}/img`, cgroups: [] }));
    writeFileSync(`${reg}/lock`, "");
    const holder = spawn(["flock", `${reg}/lock`, "sleep", "30"], { stdout: "ignore" });
    try {
      Bun.sleepSync(200);
      const r = machinactl("remove", "img");
      expect(r.status).toBe(1);
      expect(r.stderr).toBe('machinactl: cannot remove image "img": it is in use by the running machine "busy"\n');
      expect(machinactl("rename", "img", "x").stderr).toContain("in use by the running machine");
      expect(machinactl("clone", "img", "x").status).toBe(0);
    } finally {
      holder.kill();
    }
    expect(existsSync(`${pool}/img`)).toBe(true);
  });
});
