/**
 * User namespaces (--private-users, -U, --private-users-ownership) on copies of the busybox
 * fixture (never the shared cache: chown modes change the tree), side by side with
 * systemd-nspawn 252, and a Debian boot with -U. Root only.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { debianCopy, failedUnits, systemState, withBootedDebian } from "../helpers/debian.ts";
import { Scratch, copyTree, haveSystemdNspawn, parseProbe, runNspawn, runSystemdNspawn, startNspawn, waitFor, waitForState } from "../helpers/machina.ts";
import { hashedRange } from "../../src/spec/userns.ts";

const T = 60_000;
const scratch = new Scratch();
afterEach(() => scratch.cleanup());

/** A private copy of the busybox image, named NAME (the directory name is the machine name). */
async function bbCopy(name: string): Promise<string> {
  const root = `${scratch.dir("machina-userns-")}/${name}`;
  copyTree(await ensureBusyboxImage(), root);
  return root;
}

const owner = (p: string) => {
  const st = statSync(p);
  return `${st.uid}:${st.gid}`;
};
const uidMap = (out: string) => out.split("\n").find((l) => /^\s*\d+\s+\d+\s+\d+\s*$/.test(l))?.trim().split(/\s+/).join(" ");

async function run(root: string, name: string, args: string[], cmd: string[], stateDir: string) {
  const r = await runNspawn(["-q", "--console=pipe", "-D", root, "-M", name, ...args, ...cmd], { stateDir }, scratch);
  if (r.code !== 0) throw new Error(`machina-nspawn exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
async function runRef(root: string, name: string, args: string[], cmd: string[]) {
  const r = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-M", name, ...args, ...cmd], name);
  if (r.code !== 0) throw new Error(`systemd-nspawn exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const SHOW = ["/bin/sh", "-c", "cat /proc/self/uid_map; touch /root/made-inside; /usr/bin/probe"];

describe("--private-users", () => {
  test("BASE: uid_map 0 BASE 65536, uid 0 inside, tree untouched (ownership off)", async () => {
    const stateDir = scratch.dir("machina-state-");
    const name = scratch.name("un");
    const root = await bbCopy(name);
    const out = await run(root, name, ["--private-users=1048576"], ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; /usr/bin/probe"], stateDir);
    expect(out.split("\n").filter((l) => /^\s*0\s/.test(l)).map((l) => l.trim().split(/\s+/).join(" "))).toEqual(["0 1048576 65536", "0 1048576 65536"]);
    const p = parseProbe(out);
    expect([p.uid, p.euid, p.gid]).toEqual([0, 0, 0]);
    expect(owner(root)).toBe("0:0");
    expect(readdirSync(`${stateDir}`).includes("userns") ? readdirSync(`${stateDir}/userns`) : []).toEqual([]);
  }, T);

  test("chown: the tree and files made inside are owned by BASE on the host — same as systemd-nspawn", async () => {
    const stateDir = scratch.dir("machina-state-");
    const name = scratch.name("uc");
    const mine = await bbCopy(name);
    const ref = await bbCopy(name);
    const args = ["--private-users=1048576", "--private-users-ownership=chown"];
    const out = await run(mine, name, args, SHOW, stateDir);
    expect(uidMap(out)).toBe("0 1048576 65536");
    expect(parseProbe(out).uid).toBe(0);
    expect(owner(mine)).toBe("1048576:1048576");
    expect(owner(`${mine}/root/made-inside`)).toBe("1048576:1048576");
    expect(owner(`${mine}/home/user`)).toBe(`${1048576 + 1000}:${1048576 + 1000}`);
    expect((statSync(`${mine}/bin/busybox`).mode & 0o7777).toString(8)).toBe("755");
    if (haveSystemdNspawn()) {
      const rout = await runRef(ref, name, args, SHOW);
      expect(uidMap(rout)).toBe(uidMap(out)!);
      for (const p of ["", "/root/made-inside", "/home/user", "/bin/busybox", "/etc/passwd"]) expect(owner(`${mine}${p}`)).toBe(owner(`${ref}${p}`));
    }
    // undo, as the man page says: --private-users=0 --private-users-ownership=chown
    await run(mine, name, ["--private-users=0", "--private-users-ownership=chown"], ["/bin/true"], stateDir);
    expect(owner(mine)).toBe("0:0");
    expect(owner(`${mine}/home/user`)).toBe("1000:1000");
  }, T);

  test("-U: the range nspawn hashes from the machine name, an ID-mapped root, nothing changed on disk — same as systemd-nspawn", async () => {
    const stateDir = scratch.dir("machina-state-");
    const name = scratch.name("uu");
    const mine = await bbCopy(name);
    const ref = await bbCopy(name);
    const cmd = ["/bin/sh", "-c", "cat /proc/self/uid_map; touch /root/made-inside; grep -c ' / .*idmapped' /proc/self/mountinfo; /usr/bin/probe"];
    const out = await run(mine, name, ["-U"], cmd, stateDir);
    expect(uidMap(out)).toBe(`0 ${hashedRange(name)} 65536`);
    expect(out).toContain("\n1\n");
    expect(parseProbe(out).uid).toBe(0);
    expect(owner(mine)).toBe("0:0");
    expect(owner(`${mine}/root/made-inside`)).toBe("0:0");
    expect(readdirSync(`${stateDir}/userns`)).toEqual([]); // the range lock is gone with the container
    if (haveSystemdNspawn()) {
      const rout = await runRef(ref, name, ["-U"], cmd);
      expect(uidMap(rout)).toBe(uidMap(out)!);
      expect(owner(`${ref}/root/made-inside`)).toBe("0:0");
    }
  }, T);

  test("identity: 0 0 65536", async () => {
    const stateDir = scratch.dir("machina-state-");
    const name = scratch.name("ui");
    const root = await bbCopy(name);
    const out = await run(root, name, ["--private-users=identity"], SHOW, stateDir);
    expect(uidMap(out)).toBe("0 0 65536");
    expect(owner(`${root}/root/made-inside`)).toBe("0:0");
  }, T);

  test("pick: a tree's own range when free; a second container on a tree in the same range gets another", async () => {
    const stateDir = scratch.dir("machina-state-");
    const base = 0x00090000;
    const [n1, n2] = [scratch.name("p1"), scratch.name("p2")];
    const r1 = await bbCopy(n1);
    const r2 = await bbCopy(n2);
    // both trees shifted into range `base` (the root's owner is what pick reads first)
    for (const [r, n] of [[r1, n1], [r2, n2]] as const) await run(r, n, [`--private-users=${base}`, "--private-users-ownership=chown"], ["/bin/true"], stateDir);
    expect(owner(r1)).toBe(`${base}:${base}`);
    const first = startNspawn(["-q", "--console=pipe", "-D", r1, "-M", n1, "--private-users=pick", "/bin/sh", "-c", "cat /proc/self/uid_map; sleep 30"], { stateDir }, scratch);
    await waitFor("the first container's range lock", () => { try { return readdirSync(`${stateDir}/userns`).length > 0 ? true : undefined; } catch { return undefined; } }, 10_000);
    expect(readdirSync(`${stateDir}/userns`)).toEqual([String(base)]);
    expect(readFileSync(`${stateDir}/userns/${base}`, "utf8")).toBe(`${n1}\n`);
    const out2 = await run(r2, n2, ["--private-users=pick"], ["/bin/sh", "-c", "cat /proc/self/uid_map"], stateDir);
    const second = Number(uidMap(out2)!.split(" ")[1]);
    expect(second).not.toBe(base);
    expect(second).toBe(hashedRange(n2));
    expect(owner(r2)).toBe(`${second}:${second}`); // auto on a shifted tree = chown (as nspawn)
    const st = await waitForState(stateDir, n1, undefined, 10_000, first);
    expect(readFileSync(`/proc/${st.leader}/uid_map`, "utf8").trim().split(/\s+/).join(" ")).toBe(`0 ${base} 65536`);
    first.proc.kill("SIGTERM");
    await first.exited;
    expect(readdirSync(`${stateDir}/userns`)).toEqual([]);
  }, T);
});

describe("-U boots Debian", () => {
  test("reaches running with zero failed units and powers off cleanly", async () => {
    const stateDir = scratch.dir("machina-state-");
    const root = await debianCopy(scratch);
    await withBootedDebian(root, scratch, stateDir, async (m) => {
      expect(await systemState(m.state.leader, 30_000)).toBe("running");
      expect(await failedUnits(m.state.leader)).toEqual([]);
      const map = readFileSync(`/proc/${m.state.leader}/uid_map`, "utf8").trim().split(/\s+/).join(" ");
      expect(map).toBe(`0 ${hashedRange(m.name)} 65536`);
      m.bg.proc.kill("SIGTERM");
      expect(await m.bg.exited).toBe(0);
    }, ["-U"]);
    expect(owner(root)).toBe("0:0"); // ID-mapped: nothing chowned
  }, 90_000);
});
