/**
 * .nspawn settings files, end to end (root): a file next to a copy of the busybox image, and
 * one in a trusted settings directory (MACHINA_SETTINGS_DIRS, temporary, so the host's
 * /etc/systemd/nspawn is never read). Checked from inside the container.
 * Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { NSPAWN_DEFAULT_CAP_NAMES, Scratch, copyTree, expectedCapBnd, runNspawn } from "../helpers/machina.ts";

const T = 30_000;
const files = new Scratch();
const scratch = new Scratch();
let work: string;
let copy: string;
let name: string;
let besideFile: string;
let trustedDir: string;
let stateDir: string;

const SCRIPT = 'echo "FOO=$FOO"; hostname; grep CapBnd /proc/self/status';

beforeAll(async () => {
  const image = await ensureBusyboxImage();
  work = files.dir();
  name = files.name("nsf");
  copy = `${work}/${name}`;
  copyTree(image, copy);
  besideFile = `${work}/${name}.nspawn`;
  trustedDir = files.dir("machina-settings-");
  stateDir = files.dir("machina-state-");
});
afterEach(async () => {
  rmSync(besideFile, { force: true });
  rmSync(`${trustedDir}/${name}.nspawn`, { force: true });
  await scratch.cleanup();
});
afterAll(() => files.cleanup());

function run(extra: string[] = []) {
  return runNspawn(
    ["-q", "--console=pipe", "-D", copy, ...extra, "/bin/sh", "-c", SCRIPT],
    {
      stateDir,
      env: { MACHINA_SETTINGS_DIRS: `${trustedDir}:${files.dir("machina-settings-run-")}` },
    },
    scratch,
  );
}

describe(".nspawn files", () => {
  test(
    "a file next to the image sets Environment= and Hostname=; its Capability= is ignored with a warning (untrusted), even with -q",
    async () => {
      writeFileSync(besideFile, "[Exec]\nEnvironment=FOO=from-file\nHostname=filehost\nCapability=CAP_SYS_TIME\n");
      const r = await run();
      expect(r.code).toBe(0);
      const [foo, host, capbnd] = r.stdout.trim().split("\n");
      expect(foo).toBe("FOO=from-file");
      expect(host).toBe("filehost");
      expect(capbnd).toBe(`CapBnd:\t${expectedCapBnd(NSPAWN_DEFAULT_CAP_NAMES)}`);
      expect(r.lines).toContain(`machina-nspawn: ${besideFile}:4: ignoring Capability=: the settings file is not trusted (see docs/trust.md)`);
    },
    T,
  );

  test(
    "a file in a trusted directory wins over the one next to the image, and its Capability= applies",
    async () => {
      writeFileSync(besideFile, "[Exec]\nHostname=beside\n");
      writeFileSync(`${trustedDir}/${name}.nspawn`, "[Exec]\nHostname=trusted\nCapability=CAP_SYS_TIME\n");
      const r = await run();
      expect(r.code).toBe(0);
      const [, host, capbnd] = r.stdout.trim().split("\n");
      expect(host).toBe("trusted");
      expect(capbnd).toBe(`CapBnd:\t${expectedCapBnd([...NSPAWN_DEFAULT_CAP_NAMES, "CAP_SYS_TIME"])}`);
      expect(r.lines.filter((l) => l.includes("ignoring"))).toEqual([]);
    },
    T,
  );

  test(
    "the command line wins; --settings=override reverses that; --settings=no reads nothing",
    async () => {
      writeFileSync(besideFile, "[Exec]\nHostname=filehost\nEnvironment=FOO=file\n");
      const cliWins = await run(["--hostname=clihost"]);
      expect(cliWins.stdout.trim().split("\n").slice(0, 2)).toEqual(["FOO=file", "clihost"]);
      const override = await run(["--hostname=clihost", "--settings=override"]);
      expect(override.stdout.trim().split("\n")[1]).toBe("filehost");
      const none = await run(["--settings=no"]);
      expect(none.stdout.trim().split("\n").slice(0, 2)).toEqual(["FOO=", name]);
    },
    T,
  );

  test(
    "a bad value stops the start with FILE:LINE",
    async () => {
      writeFileSync(besideFile, "[Exec]\n\nHostname=bad_name\n");
      const r = await run();
      expect(r.code).toBe(1);
      expect(r.lines).toContain(
        `machina-nspawn: ${besideFile}:3: invalid value "bad_name" for Hostname=: expected a valid hostname (labels of letters, digits and '-', at most 64 characters)`,
      );
    },
    T,
  );
});
