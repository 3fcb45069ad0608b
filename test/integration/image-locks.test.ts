/**
 * A running container holds a lock on its image (src/image/in-use.ts, the helper's `image_lock`):
 * machinactl remove / rename / read-only of an image in use fail with one line naming the machine,
 * and work again after the machine stopped — also after a kill -9 of its supervisor, whose lock
 * the kernel drops. Covered: a directory image started by machinactl start, the base of -x and
 * --template containers (locked shared: more -x containers may run, a writable start may not),
 * and a .raw image. Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, alive, baseEnv, copyTree, readState, shOk, startNspawn, waitFor, waitForState } from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const NSPAWN = join(REPO, "bin/machina-nspawn");
const MACHINA_NET = join(REPO, "bin/machina-net");
const T = 60_000;

const files = new Scratch();
const scratch = new Scratch();
let busybox: string;
let base: string;
let pool: string;
let stateDir: string;
let env: Record<string, string>;

/** /sbin/init of the managed machines: SIGRTMIN+3 (machinactl terminate) ends it. */
const INIT = `#!/bin/sh
trap 'exit 0' 37
echo up
while :; do sleep 1 & wait $!; done
`;

beforeAll(async () => {
  busybox = await ensureBusyboxImage();
  base = files.dir("machina-image-locks-");
  pool = `${base}/pool`;
  stateDir = `${base}/state`;
  mkdirSync(pool);
  mkdirSync(`${base}/trusted`);
  env = baseEnv({ MACHINA_STATE_DIR: stateDir, MACHINA_POOL: pool, MACHINA_SETTINGS_DIRS: `${base}/trusted` });
});
afterEach(() => scratch.cleanup());
afterAll(() => {
  // loop devices and mounts of the raw test, if it failed halfway
  for (const l of readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.includes(base))
    .reverse())
    spawnSync(["umount", "-l", l.split(" ")[4]!]);
  for (const l of shOk("losetup -a -O NAME,BACK-FILE --noheadings || true")
    .split("\n")
    .filter((l) => l.includes(base)))
    spawnSync(["losetup", "-d", l.trim().split(/\s+/)[0]!]);
  files.cleanup();
});

function mctl(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync([MACHINACTL, ...args], { env, stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  return { code: r.exitCode ?? 128, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A bootable busybox image in the pool under a fresh name. */
function poolImage(prefix: string): { name: string; root: string } {
  const name = scratch.name(prefix);
  const root = `${pool}/${name}`;
  copyTree(busybox, root);
  spawnSync(["rm", "-f", `${root}/sbin/init`]);
  writeFileSync(`${root}/sbin/init`, INIT);
  chmodSync(`${root}/sbin/init`, 0o755);
  scratch.defer(() => {
    spawnSync(["chattr", "-i", root]);
    spawnSync(["rm", "-rf", root]);
  });
  return { name, root };
}

/** The one line machinactl prints for an image in use. */
const busy = (what: string, image: string, machine: string) =>
  `machinactl: cannot ${what} image "${image}": it is in use by the running machine "${machine}"\n`;

/** remove, rename and read-only of `image` all fail, naming `machine`; nothing changed. */
function expectRefused(image: string, machine: string): void {
  expect(mctl("remove", image)).toMatchObject({ code: 1, stderr: busy("remove", image, machine) });
  expect(mctl("rename", image, `${image}-new`)).toMatchObject({ code: 1, stderr: busy("rename", image, machine) });
  expect(mctl("read-only", image)).toMatchObject({ code: 1, stderr: busy("change the read-only flag of", image, machine) });
  expect(existsSync(`${pool}/${image}`) || existsSync(`${pool}/${image}.raw`)).toBe(true);
  expect(existsSync(`${pool}/${image}-new`)).toBe(false);
}

/** read-only on and off, rename there and back: all succeed. */
function expectFree(image: string): void {
  expect(mctl("read-only", image)).toMatchObject({ code: 0, stderr: "" });
  expect(mctl("read-only", image, "false")).toMatchObject({ code: 0, stderr: "" });
  expect(mctl("rename", image, `${image}-new`)).toMatchObject({ code: 0, stderr: "" });
  expect(mctl("rename", `${image}-new`, image)).toMatchObject({ code: 0, stderr: "" });
}

describe("a running container holds its image", () => {
  test(
    "machinactl start: remove, rename, read-only refused while it runs; fine after it stopped",
    () => {
      const img = poolImage("il");
      expect(mctl("start", img.name)).toMatchObject({ code: 0, stderr: "" });
      scratch.defer(() => void mctl("terminate", img.name));
      expectRefused(img.name, img.name);
      expect(mctl("terminate", img.name).code).toBe(0);
      expectFree(img.name);
      expect(mctl("remove", img.name)).toMatchObject({ code: 0, stderr: "" });
      expect(existsSync(img.root)).toBe(false);
    },
    T,
  );

  test(
    "kill -9 of the supervisor: the kernel drops its lock, the image is free at once",
    async () => {
      const img = poolImage("ik");
      expect(mctl("start", img.name)).toMatchObject({ code: 0, stderr: "" });
      scratch.defer(() => void spawnSync([MACHINA_NET, "sweep", "--state-dir", stateDir], { env })); // its network's undo never ran
      const state = readState(stateDir, img.name)!;
      expectRefused(img.name, img.name);
      process.kill(state.supervisor, "SIGKILL");
      await waitFor("the supervisor and the container to be gone", () => (!alive(state.supervisor) && !alive(state.leader)) || undefined);
      expectFree(img.name);
      expect(mctl("remove", img.name)).toMatchObject({ code: 0, stderr: "" });
    },
    T,
  );

  test(
    "-x and --template: the base is locked shared (more -x containers may run, a writable one may not)",
    async () => {
      const img = poolImage("ib");
      const eph = scratch.name("ix");
      const bg = startNspawn(["-q", "-x", "-D", img.root, "-M", eph, "/bin/sleep", "60"], { stateDir, env }, scratch);
      await waitForState(stateDir, eph, undefined, 15_000, bg);
      expectRefused(img.name, eph);
      // another ephemeral container of the same base runs; a writable one is refused
      const again = spawnSync([NSPAWN, "-q", "-x", "-D", img.root, "-M", scratch.name("ix"), "/bin/true"], { env, stderr: "pipe" });
      expect(again.exitCode).toBe(0);
      const rw = spawnSync([NSPAWN, "-q", "-D", img.root, "-M", scratch.name("iw"), "/bin/true"], { env, stderr: "pipe" });
      expect(rw.exitCode).toBe(1);
      expect(rw.stderr.toString()).toBe(`machina-nspawn: image "${img.root}" is in use by another container: Device or resource busy (EBUSY)\n`);
      expect(mctl("terminate", eph).code).toBe(0);
      await bg.exited;

      // --template: the new machine's tree is made from the base, which stays locked while it runs
      const tpl = scratch.name("it");
      const dir = `${files.dir("machina-template-")}/${tpl}`;
      const bg2 = startNspawn(["-q", `--template=${img.root}`, "-D", dir, "-M", tpl, "/bin/sleep", "60"], { stateDir, env }, scratch);
      await waitForState(stateDir, tpl, undefined, 15_000, bg2);
      expect(mctl("remove", img.name)).toMatchObject({ code: 1, stderr: busy("remove", img.name, tpl) });
      expect(mctl("terminate", tpl).code).toBe(0);
      await bg2.exited;
      expect(mctl("remove", img.name)).toMatchObject({ code: 0, stderr: "" });
    },
    T,
  );

  test(
    "a .raw image (-i): refused while it runs, fine after",
    async () => {
      const name = scratch.name("ir");
      const raw = `${pool}/${name}.raw`;
      shOk(`mkfs.ext4 -q -F -d '${busybox}' '${raw}' 24M`);
      scratch.defer(() => void spawnSync(["rm", "-f", raw]));
      const bg = startNspawn(["-q", "-i", raw, "-M", name, "/bin/sleep", "60"], { stateDir, env }, scratch);
      await waitForState(stateDir, name, undefined, 15_000, bg);
      expectRefused(name, name);
      expect(mctl("terminate", name).code).toBe(0);
      await bg.exited;
      expectFree(name);
      expect(mctl("remove", name)).toMatchObject({ code: 0, stderr: "" });
      expect(existsSync(raw)).toBe(false);
    },
    T,
  );
});
