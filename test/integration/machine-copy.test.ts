/**
 * machinactl copy-to / copy-from into a running busybox container (a private `cp -a` copy of
 * the fixture, started in the background): round trips of a file and of a tree with modes,
 * owners, symlinks, a fifo, xattrs and mtimes both ways; --force; symlinks in the container
 * pointing at host paths (as the destination's parent, as the destination, as the source) never
 * touch the host's canary files; a user-namespaced container (--private-users=BASE with chown
 * ownership) gets shifted owners, and they come back unshifted. Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  lutimesSync,
  writeFileSync,
  chmodSync,
  existsSync,
  mkdtempSync,
} from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, alive, baseEnv, copyTree, startNspawn, waitForState } from "../helpers/machina.ts";

const MACHINACTL = join(REPO, "bin/machinactl");
const T = 60_000;
const BASE = 1_441_792; // 0x160000: --private-users=BASE for the user-namespaced container

const scratch = new Scratch();
let stateDir: string;
let work: string;
let name: string;
let root: string;
let uname: string;
let uroot: string;

async function mctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([MACHINACTL, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: baseEnv({ MACHINA_STATE_DIR: stateDir }) });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  return { code: p.exitCode ?? 128, stdout, stderr };
}

async function startCopy(machine: string, extra: string[]): Promise<string> {
  const dir = `${scratch.dir("machina-copy-")}/${machine}`;
  copyTree(await ensureBusyboxImage(), dir);
  if (extra.length > 0) mkdirSync(`${dir}/opt`, { recursive: true });
  const bg = startNspawn(["-q", "--console=pipe", "-D", dir, "-M", machine, ...extra, "/bin/sleep", "60"], { stateDir }, scratch);
  const st = await waitForState(stateDir, machine, undefined, 20_000, bg);
  expect(alive(st.leader)).toBe(true);
  return dir;
}

beforeAll(async () => {
  stateDir = scratch.dir("machina-copy-state-");
  work = scratch.dir("machina-copy-work-");
  name = scratch.name("cp");
  uname = scratch.name("cpu");
  root = await startCopy(name, []);
  mkdirSync(`${root}/opt`, { recursive: true });
  uroot = await startCopy(uname, [`--private-users=${BASE}`, "--private-users-ownership=chown"]);
}, T);
afterAll(() => scratch.cleanup());

const getXattr = (p: string, k: string) => {
  const r = Bun.spawnSync(["getfattr", "--only-values", "-h", "-n", k, p], { stderr: "pipe" });
  return r.exitCode === 0 ? r.stdout.toString() : undefined;
};
const setXattr = (p: string, k: string, v: string) => Bun.spawnSync(["setfattr", "-n", k, "-v", v, p]).exitCode === 0;

/** A fresh host directory below /var/tmp (removed at the end). */
function varTmp(): string {
  const d = mkdtempSync("/var/tmp/machina-copy-");
  scratch.defer(() => void Bun.spawnSync(["rm", "-rf", d]));
  return d;
}

/** Everything the copy must keep, per entry, sorted (relative paths). */
function describeTree(top: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = rel === "" ? top : `${top}/${rel}`;
    const st = lstatSync(p);
    const kind = st.isSymbolicLink() ? "l" : st.isDirectory() ? "d" : st.isFIFO() ? "p" : st.isFile() ? "f" : "?";
    const extra = kind === "l" ? readlinkSync(p) : kind === "f" ? readFileSync(p, "utf8") : "";
    const xa = kind === "f" || kind === "d" ? (getXattr(p, "user.machina") ?? "") : "";
    out.push(`${rel || "."} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs)} ${JSON.stringify(extra)} ${xa}`);
    if (kind === "d") for (const n of readdirSync(p).sort()) walk(rel === "" ? n : `${rel}/${n}`);
  };
  walk("");
  return out.sort();
}

/** A tree with the awkward cases: modes, owners, set-id bits, symlinks out, a fifo, xattrs, old mtimes. */
function makeTree(dir: string): void {
  mkdirSync(`${dir}/sub/deep`, { recursive: true });
  writeFileSync(`${dir}/plain`, "plain\n");
  writeFileSync(`${dir}/sub/secret`, "only for 1234\n");
  writeFileSync(`${dir}/sub/tool`, "#!/bin/sh\n");
  chownSync(`${dir}/sub/secret`, 1234, 5678);
  chmodSync(`${dir}/sub/secret`, 0o640);
  chmodSync(`${dir}/sub/tool`, 0o4755);
  chownSync(`${dir}/sub/deep`, 42, 43);
  chmodSync(`${dir}/sub/deep`, 0o700);
  symlinkSync("/etc/shadow", `${dir}/abs-link`);
  symlinkSync("../../../../../../etc/passwd", `${dir}/sub/rel-link`);
  Bun.spawnSync(["mkfifo", "-m", "0620", `${dir}/sub/fifo`]);
  setXattr(`${dir}/plain`, "user.machina", "on-a-file");
  setXattr(`${dir}/sub`, "user.machina", "on-a-dir");
  const old = new Date("2001-02-03T04:05:06Z");
  for (const p of ["plain", "sub/secret", "sub/tool", "sub/fifo", "sub/deep", "sub", "."]) utimesSync(`${dir}/${p}`, old, old);
  lutimesSync(`${dir}/abs-link`, old, old);
}

describe("round trips", () => {
  test(
    "a file: content, mode, owner, mtime, xattr; copy-from gives it back",
    async () => {
      const src = `${work}/file1`;
      writeFileSync(src, "hello container\n");
      chownSync(src, 1000, 1001);
      chmodSync(src, 0o604);
      expect(setXattr(src, "user.machina", "x1")).toBe(true);
      utimesSync(src, new Date(1_000_000_000_000), new Date(1_000_000_000_000));
      const r = await mctl(["copy-to", name, src, "/opt/file1"]);
      expect(r).toMatchObject({ code: 0, stderr: "" });
      expect(describeTree(`${root}/opt/file1`)).toEqual(describeTree(src));
      expect(getXattr(`${root}/opt/file1`, "user.machina")).toBe("x1");
      const back = `${work}/file1.back`;
      expect(await mctl(["copy-from", name, "opt/file1", back])).toMatchObject({ code: 0, stderr: "" }); // relative: in the container's root
      expect(describeTree(back)).toEqual(describeTree(src));
    },
    T,
  );

  test(
    "a directory tree both ways; one path = the same path on both sides",
    async () => {
      const src = `${work}/tree`;
      makeTree(src);
      expect(await mctl(["copy-to", name, src, "/opt/tree"])).toMatchObject({ code: 0, stderr: "" });
      const want = describeTree(src);
      expect(want.length).toBeGreaterThan(8);
      expect(describeTree(`${root}/opt/tree`)).toEqual(want);
      // copy-from with one path: /opt/tree in the container to /opt/tree… use a second path on the host
      const back = `${work}/tree.back`;
      expect(await mctl(["copy-from", name, "/opt/tree", back])).toMatchObject({ code: 0, stderr: "" });
      expect(describeTree(back)).toEqual(want);
      // the same path on both sides
      // (not below /tmp: the container has a tmpfs there)
      const sameDir = varTmp();
      const same = `${sameDir}/same`;
      writeFileSync(same, "same\n");
      mkdirSync(`${root}${sameDir}`, { recursive: true });
      expect(await mctl(["copy-to", name, same])).toMatchObject({ code: 0, stderr: "" });
      expect(readFileSync(`${root}${same}`, "utf8")).toBe("same\n");
      // nothing temporary left behind
      expect(readdirSync(`${root}/opt`).filter((n) => n.startsWith(".#"))).toEqual([]);
      expect(readdirSync(work).filter((n) => n.startsWith(".#"))).toEqual([]);
    },
    T,
  );

  test(
    "errors name the path; a missing machine",
    async () => {
      const r = await mctl(["copy-to", name, `${work}/does-not-exist`, "/opt/x"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${work}/does-not-exist`);
      const f = await mctl(["copy-from", name, "/opt/nope/x", `${work}/x`]);
      expect(f.code).toBe(1);
      expect(f.stderr).toContain("/opt/nope");
      expect(existsSync(`${work}/x`)).toBe(false);
      const rel = await mctl(["copy-to", name, "relative"]);
      expect(rel.code).toBe(1);
      expect(rel.stderr).toContain("not absolute");
      const root1 = await mctl(["copy-from", name, "/", `${work}/all`]);
      expect(root1.code).toBe(1);
      expect((await mctl(["copy-to", "no-such-machine", `${work}/file1`])).code).toBe(1);
    },
    T,
  );
});

describe("--force", () => {
  test(
    "an existing target is an error without it, replaced with it (file over a tree too)",
    async () => {
      const a = `${work}/force-a`;
      writeFileSync(a, "new\n");
      writeFileSync(`${root}/opt/force`, "old\n");
      const r = await mctl(["copy-to", name, a, "/opt/force"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("/opt/force");
      expect(r.stderr).toContain("exists");
      expect(readFileSync(`${root}/opt/force`, "utf8")).toBe("old\n");
      expect(await mctl(["copy-to", "--force", name, a, "/opt/force"])).toMatchObject({ code: 0 });
      expect(readFileSync(`${root}/opt/force`, "utf8")).toBe("new\n");
      // a directory replaced by a file, and the other way round
      mkdirSync(`${root}/opt/forcedir/x`, { recursive: true });
      expect(await mctl(["copy-to", name, a, "/opt/forcedir", "--force"])).toMatchObject({ code: 0 });
      expect(readFileSync(`${root}/opt/forcedir`, "utf8")).toBe("new\n");
      // copy-from onto an existing host file
      const h = `${work}/force-host`;
      writeFileSync(h, "host\n");
      const f = await mctl(["copy-from", name, "/opt/force", h]);
      expect(f.code).toBe(1);
      expect(f.stderr).toContain(h);
      expect(readFileSync(h, "utf8")).toBe("host\n");
      mkdirSync(`${work}/force-dir/inner`, { recursive: true });
      expect(await mctl(["copy-from", "--force", name, "/opt/tree", `${work}/force-dir`])).toMatchObject({ code: 0 });
      expect(existsSync(`${work}/force-dir/inner`)).toBe(false);
      expect(readFileSync(`${work}/force-dir/plain`, "utf8")).toBe("plain\n");
    },
    T,
  );
});

describe("symlinks in the container never reach the host", () => {
  test(
    "as the destination's parent, as the destination, as the source",
    async () => {
      // (not below /tmp, which is a tmpfs in the container: the same path must be creatable inside)
      const canary = `${varTmp()}/canary`;
      mkdirSync(canary);
      writeFileSync(`${canary}/secret`, "HOST SECRET\n");
      writeFileSync(`${canary}/victim`, "untouched\n");
      const before = describeTree(canary);
      const payload = `${work}/payload`;
      writeFileSync(payload, "payload\n");
      // the container points at the host's canary directory, absolutely and with ../..
      symlinkSync(canary, `${root}/opt/abs-escape`);
      symlinkSync(`../../../../../../../../..${canary}`, `${root}/opt/rel-escape`);
      symlinkSync(`${canary}/victim`, `${root}/opt/victim-link`);
      symlinkSync(`${canary}/secret`, `${root}/opt/secret-link`);

      // destination parent: resolved inside the root, where that directory does not exist
      for (const via of ["abs-escape", "rel-escape"]) {
        const r = await mctl(["copy-to", name, payload, `/opt/${via}/dropped`]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`/opt/${via}/dropped`);
      }
      // the same path inside the container exists: the file lands there, not on the host
      mkdirSync(`${root}${canary}`, { recursive: true });
      expect(await mctl(["copy-to", name, payload, "/opt/abs-escape/dropped"])).toMatchObject({ code: 0 });
      expect(readFileSync(`${root}${canary}/dropped`, "utf8")).toBe("payload\n");
      expect(await mctl(["copy-to", name, payload, "/opt/rel-escape/dropped2"])).toMatchObject({ code: 0 });
      expect(existsSync(`${root}${canary}/dropped2`)).toBe(true);
      // destination: the symlink is replaced (with --force), never written through
      expect((await mctl(["copy-to", name, payload, "/opt/victim-link"])).code).toBe(1);
      expect(await mctl(["copy-to", "--force", name, payload, "/opt/victim-link"])).toMatchObject({ code: 0 });
      expect(lstatSync(`${root}/opt/victim-link`).isFile()).toBe(true);
      // source: a symlink is copied as a symlink; through a symlinked directory it is resolved inside
      const got = `${work}/got-link`;
      expect(await mctl(["copy-from", name, "/opt/secret-link", got])).toMatchObject({ code: 0 });
      expect(lstatSync(got).isSymbolicLink()).toBe(true);
      expect(readlinkSync(got)).toBe(`${canary}/secret`);
      const r = await mctl(["copy-from", name, "/opt/rel-escape/secret", `${work}/got-secret`]);
      expect(r.code).toBe(1);
      expect(existsSync(`${work}/got-secret`)).toBe(false);
      // a directory copied out holding escape links keeps them as links
      expect(await mctl(["copy-from", name, "/opt", `${work}/opt-out`])).toMatchObject({ code: 0 });
      expect(readlinkSync(`${work}/opt-out/abs-escape`)).toBe(canary);

      expect(describeTree(canary)).toEqual(before);
    },
    T,
  );
});

describe("user namespace", () => {
  test(
    "owners shifted into the container's range (--private-users=BASE, chown), and back",
    async () => {
      const leader = JSON.parse(readFileSync(`${stateDir}/machines/${uname}/state.json`, "utf8")).leader as number;
      expect(readFileSync(`/proc/${leader}/uid_map`, "utf8").trim().split(/\s+/)).toEqual(["0", String(BASE), "65536"]);
      const src = `${work}/uns`;
      mkdirSync(src);
      writeFileSync(`${src}/root-file`, "r\n");
      writeFileSync(`${src}/user-file`, "u\n");
      writeFileSync(`${src}/far-file`, "f\n");
      chownSync(`${src}/user-file`, 1000, 1001);
      chownSync(`${src}/far-file`, 200_000, 200_000); // no mapping in the container
      symlinkSync("root-file", `${src}/link`);
      chmodSync(`${src}/user-file`, 0o2755);
      expect(await mctl(["copy-to", uname, src, "/opt/uns"])).toMatchObject({ code: 0, stderr: "" });
      const owner = (p: string) => `${lstatSync(p).uid}:${lstatSync(p).gid}`;
      expect(owner(`${uroot}/opt/uns`)).toBe(`${BASE}:${BASE}`);
      expect(owner(`${uroot}/opt/uns/root-file`)).toBe(`${BASE}:${BASE}`);
      expect(owner(`${uroot}/opt/uns/link`)).toBe(`${BASE}:${BASE}`);
      expect(owner(`${uroot}/opt/uns/user-file`)).toBe(`${BASE + 1000}:${BASE + 1001}`);
      expect(lstatSync(`${uroot}/opt/uns/user-file`).mode & 0o7777).toBe(0o2755);
      expect(owner(`${uroot}/opt/uns/far-file`)).toBe(`${BASE + 65534}:${BASE + 65534}`);
      const back = `${work}/uns.back`;
      expect(await mctl(["copy-from", uname, "/opt/uns", back])).toMatchObject({ code: 0, stderr: "" });
      expect(owner(`${back}/root-file`)).toBe("0:0");
      expect(owner(`${back}/user-file`)).toBe("1000:1001");
      expect(owner(`${back}/far-file`)).toBe("65534:65534");
      // a file of the container outside its range (owned by the host's 0) comes back as nobody
      writeFileSync(`${uroot}/opt/host-owned`, "h\n");
      chownSync(`${uroot}/opt/host-owned`, 0, 0);
      expect(await mctl(["copy-from", uname, "/opt/host-owned", `${work}/host-owned`])).toMatchObject({ code: 0 });
      expect(owner(`${work}/host-owned`)).toBe("65534:65534");
    },
    T,
  );
});
