/**
 * -Z/--selinux-context= and -L/--selinux-apifs-context= on this host, whose kernel is built
 * with SELinux but does not enable it (no selinuxfs): each is refused with one line naming the
 * flag, exit 1, nothing left behind — never silently ignored. What happens on an SELinux host is
 * covered by the unit tests (the plan) and the helper's C tests (the write of the exec label);
 * see docs/security.md. Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { NOTHING, Scratch, copyTree, haveSystemdNspawn, leftovers, newLeftovers, runNspawn, runSystemdNspawn, uniqueName } from "../helpers/machina.ts";

const files = new Scratch();
let image: string;
let stateDir: string;

const selinuxEnabled = (() => {
  const fs = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => / - selinuxfs /.test(l))?.split(" ")[4];
  return fs !== undefined && existsSync(`${fs}/enforce`);
})();

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
});
afterAll(() => files.cleanup());

const LABEL = "system_u:system_r:container_t:s0:c1,c2";
const CASES: Array<[args: string[], line: string]> = [
  [["-Z", LABEL], "machina-nspawn: -Z requires SELinux, which is not enabled on this host"],
  [[`--selinux-context=${LABEL}`], "machina-nspawn: --selinux-context= requires SELinux, which is not enabled on this host"],
  [["-L", "system_u:object_r:container_file_t:s0"], "machina-nspawn: -L requires SELinux, which is not enabled on this host"],
  [["--selinux-apifs-context=system_u:object_r:container_file_t:s0"], "machina-nspawn: --selinux-apifs-context= requires SELinux, which is not enabled on this host"],
];

describe.skipIf(selinuxEnabled)("SELinux options on a host without SELinux", () => {
  for (const [flags, line] of CASES) {
    test(`${flags[0]!.split("=")[0]} is refused: one line, exit 1, nothing left behind`, async () => {
      const before = leftovers(stateDir);
      const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", uniqueName("se"), ...flags, "/bin/true"], { stateDir });
      expect(r.stdout).toBe("");
      expect(r.lines, r.stderr).toEqual([line]);
      expect(r.code).toBe(1);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    }, 20_000);
  }

  test("an empty value resets the option: the container runs", async () => {
    const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", uniqueName("se"), "-Z", LABEL, "--selinux-context=", "-L", "", "/bin/true"], { stateDir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  }, 20_000);

  // systemd-nspawn 252 (built with +SELINUX) takes both flags here too, and fails only later:
  // setexeccon() and the tmpfs mount with context= get EINVAL. Same exit status, earlier and clearer.
  test.skipIf(!haveSystemdNspawn())("systemd-nspawn 252 fails on this host as well (exit 1)", async () => {
    const name = files.name("sen");
    const root = `${files.dir()}/${name}`;
    copyTree(image, root);
    const z = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-Z", LABEL, "/bin/true"], name);
    expect(z.code).toBe(1);
    expect(z.lines[0]).toBe(`setexeccon("${LABEL}") failed: Invalid argument`);
    const l = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-L", "system_u:object_r:container_file_t:s0", "/bin/true"], name);
    expect(l.code).toBe(1);
    expect(l.lines[0]).toMatch(/^Failed to mount tmpfs \(type tmpfs\) on .*\/tmp .*,context="system_u:object_r:container_file_t:s0"\"\): Invalid argument$/);
  }, 60_000);

  test("a malformed label is refused as such, before the SELinux check", async () => {
    const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-Z", 'a:b:c"d', "/bin/true"], { stateDir });
    expect(r.lines, r.stderr).toEqual(['machina-nspawn: invalid value "a:b:c\\"d" for -Z: expected an SELinux context such as system_u:system_r:container_t:s0 (no quotes, backslashes or spaces)']);
    expect(r.code).toBe(1);
  }, 20_000);
});
