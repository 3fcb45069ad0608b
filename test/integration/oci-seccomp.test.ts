/**
 * linux.seccomp honoured exactly (src/settings/oci-seccomp.ts): a bundle (the busybox fixture
 * rootfs, a config.json from `runc spec`'s defaults) runs `probe syscall …` under podman's
 * default profile (test/fixtures/oci/podman-seccomp.json) and under a hand-written one, with
 * machina-oci run and machina-nspawn --oci-bundle; each call gets exactly the errno, the
 * allowance or the kill the profile says — the same answers as runc gives (compared when runc is
 * installed). A profile machina cannot honour is refused with one line and nothing left behind.
 * Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { baseEnv, copyTree, leftovers, newLeftovers, NOTHING, REPO, runNspawn, Scratch } from "../helpers/machina.ts";

const T = 60_000;
const RUNC_SPEC = readFileSync(join(import.meta.dir, "../fixtures/oci/runc-spec.json"), "utf8");
const PODMAN = JSON.parse(readFileSync(join(import.meta.dir, "../fixtures/oci/podman-seccomp.json"), "utf8")) as unknown;
const MACHINA_OCI = join(REPO, "bin/machina-oci");
const RUNC = ["/usr/sbin/runc", "/usr/bin/runc"].find((p) => existsSync(p));
const ROOT = process.getuid?.() === 0;

const files = new Scratch();
const scratch = new Scratch();
let rootfs: string;
let stateDir: string;

type Json = Record<string, unknown>;

/** A bundle whose process runs `probe syscall` once per line of CALLS and prints `rc=N` after each. */
function bundle(seccomp: unknown, calls: string[]): string {
  const dir = scratch.dir("oci-seccomp-");
  const c = JSON.parse(RUNC_SPEC) as Json;
  c.root = { path: rootfs, readonly: true };
  const script = calls.map((a) => `probe syscall ${a}; echo rc=$?`).join("; ");
  Object.assign(c.process as Json, { terminal: false, args: ["/bin/sh", "-c", script] });
  (c.linux as Json).seccomp = seccomp;
  writeFileSync(`${dir}/config.json`, JSON.stringify(c, null, 2));
  return dir;
}

/** Run CMD; its output goes through files, which a detached container may keep open. */
async function run(cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = scratch.dir("oci-seccomp-out-");
  const p = Bun.spawn(cmd, {
    stdin: "ignore",
    stdout: Bun.file(`${out}/stdout`),
    stderr: Bun.file(`${out}/stderr`),
    env: baseEnv({ MACHINA_STATE_DIR: stateDir }),
  });
  scratch.track(p);
  const code = await p.exited;
  return { code, stdout: readFileSync(`${out}/stdout`, "utf8"), stderr: readFileSync(`${out}/stderr`, "utf8") };
}

async function machinaOci(dir: string) {
  const root = scratch.dir("oci-root-");
  const r = await run([MACHINA_OCI, "--root", root, "run", "--bundle", dir, scratch.name("ocs")]);
  return { ...r, left: readdirSync(root) };
}

async function runc(dir: string) {
  const root = scratch.dir("runc-root-");
  return run([RUNC!, "--root", root, "run", "--bundle", dir, `machina-ocs-${process.pid}`]);
}

const lines = (s: string) => s.trim().split("\n");

beforeAll(async () => {
  rootfs = `${files.dir("oci-seccomp-root-")}/rootfs`;
  copyTree(await ensureBusyboxImage(), rootfs);
  stateDir = files.dir("machina-state-");
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

describe.skipIf(!ROOT)("linux.seccomp", () => {
  test(
    "podman's default profile: ENOSYS by default, EPERM where it says, personality by argument",
    async () => {
      const dir = bundle(PODMAN, [
        "personality 0xffffffff", // allowed: the query
        "personality 8", // allowed: PER_LINUX32
        "personality 0x40000", // ADDR_NO_RANDOMIZE: not listed -> the default, ENOSYS
        "socket 1 1 0", // allowed
        "socket 16 3 0", // AF_NETLINK: allowed
        "kexec_load 0 0 0 0", // EPERM
        "getpid",
      ]);
      const before = leftovers(stateDir);
      const r = await machinaOci(dir);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const got = lines(r.stdout);
      expect(got).toEqual([
        '{"ret":0,"errno":0}',
        "rc=0",
        '{"ret":0,"errno":0}',
        "rc=0",
        '{"ret":-1,"errno":38}',
        "rc=0",
        '{"ret":3,"errno":0}',
        "rc=0",
        '{"ret":3,"errno":0}',
        "rc=0",
        '{"ret":-1,"errno":1}',
        "rc=0",
        expect.stringMatching(/^\{"ret":[0-9]+,"errno":0\}$/),
        "rc=0",
      ]);
      expect(r.left).toEqual([]);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
      if (RUNC !== undefined) {
        const ref = await runc(dir);
        expect(ref.code).toBe(0);
        // the same answers, but getpid's pid
        expect(lines(ref.stdout).slice(0, -2)).toEqual(got.slice(0, -2));
      }
    },
    T,
  );

  test(
    "every comparison, errnoRet, kill_process; the same under machina-nspawn --oci-bundle",
    async () => {
      const profile = {
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        syscalls: [
          { names: ["getpriority"], action: "SCMP_ACT_ERRNO", errnoRet: 7, args: [{ index: 0, value: 5, op: "SCMP_CMP_GE" }] },
          { names: ["getpriority"], action: "SCMP_ACT_ERRNO", errnoRet: 8, args: [{ index: 1, value: 100, op: "SCMP_CMP_GT" }] },
          { names: ["socket"], action: "SCMP_ACT_ERRNO", errnoRet: 97, args: [{ index: 0, value: 17, op: "SCMP_CMP_EQ" }] },
          {
            names: ["socket"],
            action: "SCMP_ACT_ERRNO",
            errnoRet: 93,
            args: [
              { index: 0, value: 1, op: "SCMP_CMP_NE" },
              { index: 1, value: 2, op: "SCMP_CMP_LT" },
              { index: 2, value: 0, op: "SCMP_CMP_LE" },
            ],
          },
          { names: ["personality"], action: "SCMP_ACT_ERRNO", errnoRet: 95, args: [{ index: 0, value: 0x40000, valueTwo: 0x40000, op: "SCMP_CMP_MASKED_EQ" }] },
          { names: ["kexec_load"], action: "SCMP_ACT_KILL_PROCESS" },
        ],
      };
      const dir = bundle(profile, [
        "getpriority 5 0", // a0 >= 5: E2BIG
        "getpriority 0 101", // a1 > 100: ENOEXEC
        "getpriority 0 0", // allowed
        "socket 17 3 0", // AF_PACKET: EAFNOSUPPORT
        "socket 2 1 0", // AF_INET, SOCK_STREAM (< 2), protocol 0: EPROTONOSUPPORT (93)
        "socket 1 1 0", // AF_UNIX: allowed
        "personality 0x40008", // ADDR_NO_RANDOMIZE bit set: EOPNOTSUPP
        "kexec_load 0 0 0 0", // killed: SIGSYS, 128 + 31
      ]);
      const want = [
        '{"ret":-1,"errno":7}',
        "rc=0",
        '{"ret":-1,"errno":8}',
        "rc=0",
        expect.stringMatching(/^\{"ret":[0-9]+,"errno":0\}$/),
        "rc=0",
        '{"ret":-1,"errno":97}',
        "rc=0",
        '{"ret":-1,"errno":93}',
        "rc=0",
        '{"ret":3,"errno":0}',
        "rc=0",
        '{"ret":-1,"errno":95}',
        "rc=0",
        "rc=159",
      ];
      const killed = "Bad system call"; // the shell, about its child
      const r = await machinaOci(dir);
      expect(r.stderr.trim()).toBe(killed);
      expect(lines(r.stdout)).toEqual(want);
      const n = await runNspawn(["-q", `--oci-bundle=${dir}`, "-M", scratch.name()], { stateDir }, scratch);
      expect(n.stderr.trim()).toBe(killed);
      expect(lines(n.stdout)).toEqual(want);
      if (RUNC !== undefined) {
        const ref = await runc(dir);
        expect(ref.stderr.trim()).toBe(killed);
        expect(lines(ref.stdout)).toEqual(want);
      }
    },
    T,
  );

  test.skipIf(process.arch !== "x64")(
    "architectures: the native one always, the listed ones too, an unlisted compat one (x86 through int 0x80) killed",
    async () => {
      const answers: string[][] = [];
      for (const architectures of [[], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], ["SCMP_ARCH_X86"]]) {
        const profile = { defaultAction: "SCMP_ACT_ALLOW", architectures, syscalls: [{ names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 5 }] };
        const dir = bundle(profile, ["getpid"]);
        const c = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")) as Json;
        const args = (c.process as Json).args as string[];
        args[2] = `probe syscall32 20; echo rc=$?; ${args[2]}`; // x86's getpid (20)
        writeFileSync(`${dir}/config.json`, JSON.stringify(c));
        const r = await machinaOci(dir);
        answers.push([r.stderr.trim(), ...lines(r.stdout)]);
        if (RUNC !== undefined) {
          const ref = await runc(dir);
          expect([ref.stderr.trim(), ...lines(ref.stdout)]).toEqual(answers.at(-1)!);
        }
      }
      const denied = ['{"ret":-1,"errno":5}', "rc=0"];
      expect(answers).toEqual([
        ["Bad system call", "rc=159", ...denied], // x86 not listed: killed
        ["", '{"ret":-5}', "rc=0", ...denied], // listed: the profile applies to it
        ["", '{"ret":-5}', "rc=0", ...denied], // x86-64 not listed: the profile applies to it all the same
      ]);
    },
    T,
  );

  test(
    "machina-oci exec: an entered process gets the container's profile",
    async () => {
      const dir = bundle(PODMAN, []);
      const c = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")) as Json;
      (c.process as Json).args = ["/usr/bin/probe", "sleep", "60"];
      writeFileSync(`${dir}/config.json`, JSON.stringify(c));
      const root = scratch.dir("oci-root-");
      const id = scratch.name("ocs");
      const oci = (...args: string[]) => run([MACHINA_OCI, "--root", root, ...args]);
      scratch.defer(async () => void (await oci("delete", "--force", id)));
      const before = leftovers(stateDir);
      const started = await oci("run", "--detach", "--bundle", dir, id);
      expect(started.stderr).toBe("");
      expect(started.code).toBe(0);
      const answers: string[] = [];
      for (const call of [
        ["personality", "0x40000"],
        ["kexec_load", "0", "0", "0", "0"],
        ["personality", "8"],
      ]) {
        const r = await oci("exec", id, "/usr/bin/probe", "syscall", ...call);
        expect(r.code).toBe(0);
        answers.push(r.stdout.trim());
      }
      expect(answers).toEqual(['{"ret":-1,"errno":38}', '{"ret":-1,"errno":1}', '{"ret":0,"errno":0}']);
      expect((await oci("delete", "--force", id)).code).toBe(0);
      expect(readdirSync(root)).toEqual([]);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "a profile machina cannot honour: one line naming the field, nothing left behind",
    async () => {
      const dir = bundle(
        {
          defaultAction: "SCMP_ACT_ALLOW",
          syscalls: [
            {
              names: ["personality"],
              action: "SCMP_ACT_ERRNO",
              args: [
                { index: 0, value: 8, op: "SCMP_CMP_NE" },
                { index: 0, value: 0, op: "SCMP_CMP_NE" },
              ],
            },
          ],
        },
        ["getpid"],
      );
      const before = leftovers(stateDir);
      const r = await machinaOci(dir);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(
        `${dir}/config.json: linux.seccomp.syscalls[0].args[1]: a second condition on argument 0 cannot be honoured (libseccomp cannot AND two conditions on one argument`,
      );
      expect(r.stderr.trim().split("\n").length).toBe(1);
      expect(r.left).toEqual([]);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );
});
