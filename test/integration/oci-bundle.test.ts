/**
 * `machina-nspawn --oci-bundle=DIR`: a bundle made by the test (the busybox fixture rootfs as
 * `root`, a config.json from `runc spec`'s defaults with args/env/cwd/hostname/user/mounts/
 * rlimits changed) runs the probe, which reports the mapped values; command-line options
 * override the bundle's; a config.json machina cannot honour is refused with one line and
 * nothing left behind. Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { NOTHING, Scratch, capHex, capMask, copyTree, findMount, leftovers, newLeftovers, parseProbe, runNspawn } from "../helpers/machina.ts";

const T = 30_000;
const RUNC = readFileSync(join(import.meta.dir, "../fixtures/oci/runc-spec.json"), "utf8");
const files = new Scratch();
const scratch = new Scratch();
let bundle: string;
let stateDir: string;

type Json = Record<string, unknown>;
function writeConfig(dir: string, edit: (c: Json) => void): void {
  const c = JSON.parse(RUNC) as Json;
  edit(c);
  writeFileSync(`${dir}/config.json`, JSON.stringify(c, null, 2));
}
const CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  bundle = files.dir("oci-bundle-");
  copyTree(image, `${bundle}/root`);
  mkdirSync(`${bundle}/data`);
  writeFileSync(`${bundle}/data/hello`, "from the bundle\n");
  stateDir = files.dir("machina-state-");
  writeConfig(bundle, (c) => {
    c.root = { path: "root", readonly: true };
    c.hostname = "oci-box";
    Object.assign(c.process as Json, {
      terminal: false,
      args: ["/usr/bin/probe"],
      env: ["PATH=/usr/bin:/bin", "OCI_TEST=yes"],
      cwd: "/tmp",
      user: { uid: 1000, gid: 1001, additionalGids: [10, 20] },
      rlimits: [{ type: "RLIMIT_NOFILE", soft: 512, hard: 1024 }],
      oomScoreAdj: 100,
    });
    (c.mounts as unknown[]).push(
      { destination: "/data", type: "bind", source: "data", options: ["rbind", "ro"] },
      { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m", "mode=1777"] },
    );
  });
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

describe("--oci-bundle", () => {
  test(
    "the probe reports what config.json asked for",
    async () => {
      const before = leftovers(stateDir);
      const res = await runNspawn(["-q", `--oci-bundle=${bundle}`, "-M", scratch.name()], { stateDir }, scratch);
      expect(res.stderr).toBe("");
      expect(res.code).toBe(0);
      const r = parseProbe(res.stdout);
      expect(r.argv).toEqual(["/usr/bin/probe"]);
      expect(r.pid).toBe(1);
      expect(r.hostname).toBe("oci-box");
      expect(r.cwd).toBe("/tmp");
      expect(r.env.OCI_TEST).toBe("yes");
      expect(r.env.PATH).toBe("/usr/bin:/bin");
      expect([r.uid, r.euid, r.gid, r.egid]).toEqual([1000, 1000, 1001, 1001]);
      expect([...r.groups].sort((a, b) => a - b)).toEqual([10, 20]);
      expect(r.rlimits.NOFILE).toEqual({ soft: 512, hard: 1024 });
      expect(r.oomScoreAdj).toBe(100);
      expect(r.noNewPrivs).toBe(1);
      expect(r.caps.CapBnd).toBe(capHex(capMask(CAPS)));
      expect(r.caps.CapAmb).toBe(capHex(capMask(CAPS)));
      expect(r.caps.CapEff).toBe(capHex(capMask(CAPS)));
      expect(findMount(r, "/")?.options).toMatch(/(^|,)ro(,|$)/);
      expect(findMount(r, "/data")?.options).toMatch(/(^|,)ro(,|$)/);
      expect(findMount(r, "/scratch")?.fsType).toBe("tmpfs");
      // a network namespace in config.json: a private network (only lo)
      expect(r.namespaces.net).not.toBe(readlinkSync("/proc/self/ns/net"));
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    },
    T,
  );

  test(
    "command-line options override the bundle's",
    async () => {
      const res = await runNspawn(
        [
          "-q",
          `--oci-bundle=${bundle}`,
          "-M",
          scratch.name(),
          "--hostname=cli-box",
          "--chdir=/",
          "-u",
          "0",
          "/bin/sh",
          "-c",
          "echo from-cli; exec /usr/bin/probe",
        ],
        { stateDir },
        scratch,
      );
      expect(res.stderr).toBe("");
      expect(res.code).toBe(0);
      const r = parseProbe(res.stdout);
      expect(r.hostname).toBe("cli-box");
      expect(r.cwd).toBe("/");
      expect(res.stdout.split("\n")[0]).toBe("from-cli");
      expect([r.uid, r.gid]).toEqual([0, 0]);
      expect(r.env.OCI_TEST).toBe("yes");
    },
    T,
  );

  test(
    "linux.seccomp: SCMP_ACT_ERRNO names are denied with EPERM",
    async () => {
      const out: string[] = [];
      for (const seccomp of [
        undefined,
        { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["sethostname", "no_such_call"], action: "SCMP_ACT_ERRNO" }] },
      ]) {
        const dir = scratch.dir("oci-seccomp-");
        writeConfig(dir, (c) => {
          c.root = { path: `${bundle}/root`, readonly: true };
          Object.assign(c.process as Json, { terminal: false, args: ["/bin/sh", "-c", "hostname other 2>&1; echo rc=$?"] });
          (c.process as Json).capabilities = { bounding: ["CAP_SYS_ADMIN"], effective: ["CAP_SYS_ADMIN"], permitted: ["CAP_SYS_ADMIN"] };
          if (seccomp !== undefined) (c.linux as Json).seccomp = seccomp;
        });
        const res = await runNspawn(["-q", `--oci-bundle=${dir}`, "-M", scratch.name()], { stateDir }, scratch);
        expect(res.code).toBe(0);
        out.push(res.stdout.trim());
      }
      expect(out).toEqual(["rc=0", "hostname: sethostname: Operation not permitted\nrc=1"]);
    },
    T,
  );

  test(
    "what cannot be honoured is refused with one line naming the field, nothing left behind",
    async () => {
      const bad = scratch.dir("oci-bad-");
      writeConfig(bad, (c) => {
        c.root = { path: `${bundle}/root` };
        (c.linux as Json).sysctl = { "net.ipv4.ip_forward": "1" };
      });
      const before = leftovers(stateDir);
      const res = await runNspawn(["-q", `--oci-bundle=${bad}`, "-M", scratch.name()], { stateDir }, scratch);
      expect(res.code).toBe(1);
      expect(res.lines).toEqual([
        `machina-nspawn: ${bad}/config.json: linux.sysctl: setting sysctls (net.ipv4.ip_forward) is not supported by machina-nspawn (machina-oci sets them)`,
      ]);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
      const none = await runNspawn(["-q", `--oci-bundle=${bad}/nope`], { stateDir }, scratch);
      expect(none.code).toBe(1);
      expect(none.lines[0]).toBe(`machina-nspawn: --oci-bundle: no config.json in "${bad}/nope"`);
    },
    T,
  );
});
