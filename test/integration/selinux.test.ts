/**
 * -Z/--selinux-context= and -L/--selinux-apifs-context= on this host, whose kernel is built
 * with SELinux but does not enable it (no selinuxfs): each is refused with one line naming the
 * flag, exit 1, nothing left behind — never silently ignored. The helper's side runs end to end
 * up to the write of the label (a spec planned as on an SELinux host: run and enter reach it and
 * fail with the kernel's EINVAL). What happens on an SELinux host is covered only by the unit
 * tests (the plan) and the helper's C tests; see docs/security.md. Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { commandSpec, machineConfinement, runEnter } from "../../src/machine/enter.ts";
import { getMachine } from "../../src/machine/machines.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { encodeSpec } from "../../src/spec/wire.ts";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import {
  NOTHING,
  REPO,
  Scratch,
  copyTree,
  haveSystemdNspawn,
  leftovers,
  newLeftovers,
  runNspawn,
  runSystemdNspawn,
  startNspawn,
  uniqueName,
  waitForState,
} from "../helpers/machina.ts";

const files = new Scratch();
const procs = new Scratch();
const HELPER = join(REPO, "native/build/machina-helper");
let image: string;
let stateDir: string;

const selinuxEnabled = (() => {
  const fs = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .find((l) => / - selinuxfs /.test(l))
    ?.split(" ")[4];
  return fs !== undefined && existsSync(`${fs}/enforce`);
})();

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
});
afterAll(async () => {
  await procs.cleanup();
  files.cleanup();
});

const LABEL = "system_u:system_r:container_t:s0:c1,c2";
const CASES: Array<[args: string[], line: string]> = [
  [["-Z", LABEL], "machina-nspawn: -Z requires SELinux, which is not enabled on this host"],
  [[`--selinux-context=${LABEL}`], "machina-nspawn: --selinux-context= requires SELinux, which is not enabled on this host"],
  [["-L", "system_u:object_r:container_file_t:s0"], "machina-nspawn: -L requires SELinux, which is not enabled on this host"],
  [
    ["--selinux-apifs-context=system_u:object_r:container_file_t:s0"],
    "machina-nspawn: --selinux-apifs-context= requires SELinux, which is not enabled on this host",
  ],
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
    const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", uniqueName("se"), "-Z", LABEL, "--selinux-context=", "-L", "", "/bin/true"], {
      stateDir,
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  }, 20_000);

  // systemd-nspawn 252 (built with +SELINUX) takes both flags here too, and fails only later:
  // setexeccon() and the tmpfs mount with context= get EINVAL. Same exit status, earlier and clearer.
  test.skipIf(!haveSystemdNspawn())(
    "systemd-nspawn 252 fails on this host as well (exit 1)",
    async () => {
      const name = files.name("sen");
      const root = `${files.dir()}/${name}`;
      copyTree(image, root);
      const z = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-Z", LABEL, "/bin/true"], name);
      expect(z.code).toBe(1);
      expect(z.lines[0]).toBe(`setexeccon("${LABEL}") failed: Invalid argument`);
      const l = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-L", "system_u:object_r:container_file_t:s0", "/bin/true"], name);
      expect(l.code).toBe(1);
      expect(l.lines[0]).toMatch(/^Failed to mount tmpfs \(type tmpfs\) on .*\/tmp .*,context="system_u:object_r:container_file_t:s0""\): Invalid argument$/);
    },
    60_000,
  );

  // The helper's side, end to end on this host: a spec planned as on an SELinux host (the host
  // fact set by the test) reaches the write of the label, which this kernel refuses.
  const KERNEL_REFUSAL = `failed to write the SELinux exec label "${LABEL}" to "/proc/thread-self/attr/exec": Invalid argument (EINVAL)`;

  // As root, and as a non-root user without capabilities (the open and write of attr/exec are
  // allowed to the process itself; the EINVAL comes from the kernel's LSM layer, past them).
  for (const extra of [[], ["-u", "1000", "--no-new-privileges=yes"]])
    test(`machina-helper run${extra.length ? " -u 1000" : ""}: selinux_context is written right before execve (here: EINVAL, exit 1, nothing left behind)`, async () => {
      const host = new LinuxHost();
      const before = leftovers(stateDir);
      const parsed = parseNspawnCommandLine(["-q", "--console=pipe", "-D", image, "-M", uniqueName("se"), ...extra, "-Z", LABEL, "/bin/true"], {});
      if (parsed.action !== "run") throw new Error("not a run");
      const facts = gatherHostFacts(host, stateDir);
      facts.selinux = { enabled: true, fs: "/sys/fs/selinux" };
      const spec = buildSpec(parsed.settings, gatherImageFacts(host, image, facts.timezone), facts, { prog: "machina-nspawn" });
      const file = join(files.dir(), "spec");
      writeFileSync(file, encodeSpec(spec));
      const r = spawnSync([HELPER, "run", "--spec", file], { stdin: "ignore" });
      expect(r.stderr.toString()).toBe(`machina-nspawn: ${KERNEL_REFUSAL}\n`);
      expect(r.exitCode).toBe(1);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    }, 30_000);

  test("machina-helper enter: a machine's label is applied to the entered command (here: EINVAL, exit 1)", async () => {
    const before = leftovers(stateDir);
    const name = procs.name("se");
    const bg = startNspawn(["-q", "--console=pipe", "-D", image, "-M", name, "/bin/sleep", "60"], { stateDir }, procs);
    await waitForState(stateDir, name, undefined, 10_000, bg);
    const host = new LinuxHost();
    const m = getMachine({ host, paths: { helper: HELPER, stateDir, pool: [] } }, name);
    expect(m.selinuxContext).toBeUndefined();
    const plain = await runEnter(host, HELPER, commandSpec(host, m, { console: "pipe", command: ["/bin/true"] }, machineConfinement(host, stateDir, m)));
    expect(plain.stderr).toBe("");
    expect(plain.status).toBe(0);
    const labelled = await runEnter(
      host,
      HELPER,
      commandSpec(host, { ...m, selinuxContext: LABEL }, { console: "pipe", command: ["/bin/true"] }, machineConfinement(host, stateDir, m)),
    );
    expect(labelled.stderr).toBe(`machinactl: ${KERNEL_REFUSAL}\n`);
    expect(labelled.status).toBe(1);
    bg.proc.kill("SIGTERM");
    await bg.exited;
    expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
  }, 30_000);

  test("a malformed label is refused as such, before the SELinux check", async () => {
    const r = await runNspawn(["-q", "--console=pipe", "-D", image, "-Z", 'a:b:c"d', "/bin/true"], { stateDir });
    expect(r.lines, r.stderr).toEqual([
      'machina-nspawn: invalid value "a:b:c\\"d" for -Z: expected an SELinux context such as system_u:system_r:container_t:s0 (no quotes, backslashes or spaces)',
    ]);
    expect(r.code).toBe(1);
  }, 20_000);
});
