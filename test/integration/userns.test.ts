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
const uidMap = (out: string) =>
  out
    .split("\n")
    .find((l) => /^\s*\d+\s+\d+\s+\d+\s*$/.test(l))
    ?.trim()
    .split(/\s+/)
    .join(" ");

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
  test(
    "BASE: uid_map 0 BASE 65536, uid 0 inside, tree untouched (ownership off)",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const name = scratch.name("un");
      const root = await bbCopy(name);
      const out = await run(root, name, ["--private-users=1048576"], ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; /usr/bin/probe"], stateDir);
      expect(
        out
          .split("\n")
          .filter((l) => /^\s*0\s/.test(l))
          .map((l) => l.trim().split(/\s+/).join(" ")),
      ).toEqual(["0 1048576 65536", "0 1048576 65536"]);
      const p = parseProbe(out);
      expect([p.uid, p.euid, p.gid]).toEqual([0, 0, 0]);
      expect(owner(root)).toBe("0:0");
      expect(readdirSync(`${stateDir}`).includes("userns") ? readdirSync(`${stateDir}/userns`) : []).toEqual([]);
    },
    T,
  );

  test(
    "chown: the tree and files made inside are owned by BASE on the host — same as systemd-nspawn",
    async () => {
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
    },
    T,
  );

  test(
    "-U: the range nspawn hashes from the machine name, an ID-mapped root, nothing changed on disk — same as systemd-nspawn",
    async () => {
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
    },
    T,
  );

  test(
    "identity: 0 0 65536",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const name = scratch.name("ui");
      const root = await bbCopy(name);
      const out = await run(root, name, ["--private-users=identity"], SHOW, stateDir);
      expect(uidMap(out)).toBe("0 0 65536");
      expect(owner(`${root}/root/made-inside`)).toBe("0:0");
    },
    T,
  );

  test(
    "pick: a tree's own range when free; a second container on a tree in the same range gets another",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const base = 0x00090000;
      const [n1, n2] = [scratch.name("p1"), scratch.name("p2")];
      const r1 = await bbCopy(n1);
      const r2 = await bbCopy(n2);
      // both trees shifted into range `base` (the root's owner is what pick reads first)
      for (const [r, n] of [
        [r1, n1],
        [r2, n2],
      ] as const)
        await run(r, n, [`--private-users=${base}`, "--private-users-ownership=chown"], ["/bin/true"], stateDir);
      expect(owner(r1)).toBe(`${base}:${base}`);
      const first = startNspawn(
        ["-q", "--console=pipe", "-D", r1, "-M", n1, "--private-users=pick", "/bin/sh", "-c", "cat /proc/self/uid_map; sleep 30"],
        { stateDir },
        scratch,
      );
      await waitFor(
        "the first container's range lock",
        () => {
          try {
            return readdirSync(`${stateDir}/userns`).length > 0 ? true : undefined;
          } catch {
            return undefined;
          }
        },
        10_000,
      );
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
    },
    T,
  );
});

/**
 * Under -U the container's root owns its mount namespace, so only the kernel's mount locks
 * (MNT_LOCK_READONLY, MNT_LOCKED: set when a mount namespace is copied into a less privileged
 * user namespace) keep read-only mounts read-only and masks in place. Each attempt prints
 * NAME=STATUS; the host checks the files behind the read-only mounts afterwards.
 */
describe("-U locks the container's mounts", () => {
  const ATTEMPTS = [
    ["root", "mount -o remount,bind,rw /"],
    ["bindro", "mount -o remount,bind,rw /mnt"],
    ["bindro_idmap", "mount -o remount,bind,rw /mnt2"],
    ["procsys", "mount -o remount,bind,rw /proc/sys"],
    ["sys", "mount -o remount,bind,rw /sys"],
    ["runhost", "mount -o remount,bind,rw /run/host"],
    ["umount_procsys", "umount /proc/sys"],
    ["umount_mask", "umount /proc/kallsyms"],
    ["umount_bindro", "umount -l /mnt"],
    ["move_bindro", "mkdir -p /tmp/mv && mount --move /mnt /tmp/mv"],
  ] as const;
  const script = [
    ...ATTEMPTS.map(([name, cmd]) => `if ${cmd} 2>/dev/null; then echo ${name}=escaped; else echo ${name}=contained; fi`),
    "echo pwned > /mnt/f 2>/dev/null; echo pwned > /mnt2/f 2>/dev/null; echo pwned > /root/ro 2>/dev/null; true",
  ].join("\n");
  const results = (out: string) =>
    Object.fromEntries(
      out
        .split("\n")
        .filter((l) => /^\w+=(escaped|contained)$/.test(l))
        .map((l) => l.split("=")),
    );

  test(
    "--read-only root, --bind-ro (also :idmap), /proc/sys, /sys, masks: remount rw, umount and move refused; files behind them unchanged",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const name = scratch.name("ul");
      const root = await bbCopy(name);
      const hostDir = scratch.dir("machina-hostro-");
      Bun.spawnSync(["sh", "-c", `echo canary > ${hostDir}/f && mkdir -p ${root}/mnt ${root}/mnt2`]);
      const args = ["-U", "--read-only", `--bind-ro=${hostDir}:/mnt`, `--bind-ro=${hostDir}:/mnt2:idmap`];
      const out = await run(root, name, args, ["/bin/sh", "-c", script], stateDir);
      const mine = results(out);
      expect(Object.keys(mine).sort()).toEqual(ATTEMPTS.map(([n]) => n).sort());
      for (const [attempt, result] of Object.entries(mine)) expect(`${attempt}=${result}`).toBe(`${attempt}=contained`);
      expect(readFileSync(`${hostDir}/f`, "utf8")).toBe("canary\n");
      expect(() => statSync(`${root}/root/ro`)).toThrow();
      if (haveSystemdNspawn()) {
        // systemd-nspawn 252 -U locks the root and --bind-ro the same way (its /proc/sys is not locked)
        const ref = await bbCopy(name);
        Bun.spawnSync(["mkdir", "-p", `${ref}/mnt`, `${ref}/mnt2`]);
        const theirs = results(
          await runRef(ref, name, ["-U", "--read-only", `--bind-ro=${hostDir}:/mnt`, `--bind-ro=${hostDir}:/mnt2:idmap`], ["/bin/sh", "-c", script]),
        );
        for (const k of ["root", "bindro", "bindro_idmap"]) expect(`${k}=${theirs[k]}`).toBe(`${k}=contained`);
        expect(readFileSync(`${hostDir}/f`, "utf8")).toBe("canary\n");
      }
    },
    T,
  );

  test(
    "-x and --volatile=overlay: writes land in the overlay as the container's root, the image stays untouched",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const name = scratch.name("ux");
      const root = await bbCopy(name);
      for (const mode of ["-x", "--volatile=overlay"]) {
        const out = await run(root, name, ["-U", mode], ["/bin/sh", "-c", "echo x > /made && stat -c '%u:%g' / /made"], stateDir);
        expect(out).toBe("0:0\n0:0\n");
        expect(() => statSync(`${root}/made`)).toThrow();
      }
    },
    T,
  );

  test(
    "files made by the setup are the container root's; mounts on top of locked ones still work",
    async () => {
      const stateDir = scratch.dir("machina-state-");
      const name = scratch.name("um");
      const root = await bbCopy(name);
      const cmd = "stat -c '%u:%g %n' / /dev /dev/pts/ptmx /run /run/host /tmp; stat -c 'pts:%g' $(tty); mount -t tmpfs x /mnt && echo ok-on-top; id -u";
      const out = await run(root, name, ["-U", "--tmpfs=/mnt:uid=7,gid=8", "--console=read-only"], ["/bin/sh", "-c", `${cmd}; stat -c '%u:%g' /mnt`], stateDir);
      expect(out).toContain("0:0 /\n0:0 /dev\n");
      expect(out).toContain("0:0 /run\n0:0 /run/host\n0:0 /tmp\n");
      expect(out).toMatch(/\npts:5\r?\nok-on-top\r?\n0\r?\n/); // the console pty belongs to group tty (5) inside
    },
    T,
  );
});

describe("-U boots Debian", () => {
  test("reaches running with zero failed units and powers off cleanly", async () => {
    const stateDir = scratch.dir("machina-state-");
    const root = await debianCopy(scratch);
    await withBootedDebian(
      root,
      scratch,
      stateDir,
      async (m) => {
        expect(await systemState(m.state.leader, 30_000)).toBe("running");
        expect(await failedUnits(m.state.leader)).toEqual([]);
        const map = readFileSync(`/proc/${m.state.leader}/uid_map`, "utf8").trim().split(/\s+/).join(" ");
        expect(map).toBe(`0 ${hashedRange(m.name)} 65536`);
        m.bg.proc.kill("SIGTERM");
        expect(await m.bg.exited).toBe(0);
      },
      ["-U"],
    );
    expect(owner(root)).toBe("0:0"); // ID-mapped: nothing chowned
  }, 90_000);
});
