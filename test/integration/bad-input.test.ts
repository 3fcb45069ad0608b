/**
 * Bad flags and values: each gives exactly one clear line naming what is wrong, exit status 1,
 * and leaves nothing behind (no state entry, no cgroup, no mount). Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { NOTHING, Scratch, baseEnv, leftovers, machinactlSync, newLeftovers, runNspawn, shOk, uniqueName } from "../helpers/machina.ts";

const files = new Scratch();
let image: string;
let stateDir: string;
let noUsr: string;
let noOsRelease: string;

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
  const work = files.dir();
  noUsr = `${work}/no-usr`;
  mkdirSync(`${noUsr}/etc`, { recursive: true });
  mkdirSync(`${noUsr}/bin`, { recursive: true });
  noOsRelease = `${work}/no-os-release`;
  mkdirSync(`${noOsRelease}/usr/lib`, { recursive: true });
  mkdirSync(`${noOsRelease}/sbin`, { recursive: true });
  writeFileSync(`${noOsRelease}/sbin/init`, "#!/bin/sh\n", { mode: 0o755 });
});
afterAll(() => files.cleanup());

type Case = [what: string, args: () => string[], message: RegExp];

const NAME = uniqueName("bad");
const D = () => ["-q", "--console=pipe", "-D", image, "-M", NAME];
const CASES: Case[] = [
  ["unknown option", () => [...D(), "--frobnicate", "/bin/true"], /unrecognized option '--frobnicate'/],
  ["unknown short option", () => [...D(), "-Y", "/bin/true"], /invalid option -- 'Y'/],
  ["missing argument (short)", () => ["-q", "-D", image, "-M"], /option requires an argument -- 'M'/],
  ["missing argument (long)", () => ["-q", "-D", image, "--machine"], /option '--machine' requires an argument/],
  ["-b with -a", () => [...D(), "-b", "-a"], /--boot.*--as-pid2|--as-pid2.*--boot/],
  ["bad -M", () => ["-q", "-D", image, "-M", "bad name!", "/bin/true"], /"bad name!".*-M|-M.*"bad name!"/],
  ["-M too long", () => ["-q", "-D", image, "-M", "x".repeat(65), "/bin/true"], /-M/],
  ["bad --uuid", () => [...D(), "--uuid=xyz", "/bin/true"], /"xyz".*--uuid/],
  ["all-zero --uuid", () => [...D(), "--uuid=00000000000000000000000000000000", "/bin/true"], /--uuid/],
  ["bad --kill-signal", () => [...D(), "--kill-signal=FOO", "/bin/true"], /"FOO".*--kill-signal/],
  ["bad --console", () => [...D(), "--console=foo", "/bin/true"], /"foo".*--console/],
  ["bad --rlimit name", () => [...D(), "--rlimit=FOO=1", "/bin/true"], /"FOO=1".*--rlimit/],
  ["bad --rlimit value", () => [...D(), "--rlimit=NOFILE=abc", "/bin/true"], /"NOFILE=abc".*--rlimit/],
  ["bad --capability", () => [...D(), "--capability=CAP_FOO", "/bin/true"], /CAP_FOO/],
  ["bad --no-new-privileges", () => [...D(), "--no-new-privileges=maybe", "/bin/true"], /"maybe".*--no-new-privileges/],
  ["bad --notify-ready", () => [...D(), "--notify-ready=maybe", "/bin/true"], /"maybe".*--notify-ready/],
  ["missing directory", () => ["-q", "-D", "/nonexistent/machina-dir", "/bin/true"], /"\/nonexistent\/machina-dir".*(does not exist|No such file)/],
  ["a tree without /usr", () => ["-q", "-D", noUsr, "/bin/true"], /\/usr.*missing|doesn't look like an OS tree/],
  ["-b on a tree without os-release", () => ["-q", "-D", noOsRelease, "-b"], /os-release/],
  ["unknown -u user", () => [...D(), "-u", "nosuchuser", "/bin/true"], /"nosuchuser"/],
  // the host's interfaces are checked before anything is set up (not the helper's record or `ip -batch`'s text)
  [
    "--network-bridge that does not exist",
    () => [...D(), "--network-bridge=nosuchbr0", "/bin/true"],
    /^machina-nspawn: --network-bridge=nosuchbr0: no bridge "nosuchbr0" on the host/,
  ],
  ["--network-bridge that is not a bridge", () => [...D(), "--network-bridge=lo", "/bin/true"], /--network-bridge=lo: "lo" is .*not a bridge/],
  [
    "--network-interface that does not exist",
    () => [...D(), "--network-interface=nosuch0", "/bin/true"],
    /^machina-nspawn: --network-interface=nosuch0: no network interface "nosuch0"/,
  ],
  [
    "--network-macvlan parent that does not exist",
    () => [...D(), "--network-macvlan=nosuch0", "/bin/true"],
    /--network-macvlan=nosuch0: no network interface "nosuch0"/,
  ],
  [
    "--network-ipvlan parent that does not exist",
    () => [...D(), "--network-ipvlan=nosuch0", "/bin/true"],
    /--network-ipvlan=nosuch0: no network interface "nosuch0"/,
  ],
  [
    "--network-interface=lo",
    () => [...D(), "--network-interface=lo", "/bin/true"],
    /^machina-nspawn: --network-interface=lo: the loopback interface cannot be moved/,
  ],
  [
    "--network-macvlan on lo",
    () => [...D(), "--network-macvlan=lo", "/bin/true"],
    /^machina-nspawn: --network-macvlan=lo: the loopback interface cannot be the parent/,
  ],
  [
    "--network-veth-extra whose host name exists",
    () => [...D(), "--network-veth-extra=lo", "/bin/true"],
    /^machina-nspawn: --network-veth-extra=lo: a network interface "lo" already exists on the host$/,
  ],
  [
    "--network-veth-extra named host0 with -n",
    () => [...D(), "-n", "--network-veth-extra=vx-bad0:host0", "/bin/true"],
    /^machina-nspawn: --network-veth-extra=vx-bad0:host0: the container already gets an interface "host0" \(from --network-veth\)$/,
  ],
];

describe("bad input: one clear line, exit 1, nothing left behind", () => {
  for (const [what, args, message] of CASES) {
    test(what, async () => {
      const before = leftovers(stateDir);
      const r = await runNspawn(args(), { stateDir });
      expect(r.stdout).toBe("");
      expect(r.lines, r.stderr).toHaveLength(1);
      expect(r.lines[0]).toMatch(/^machina-nspawn: /);
      expect(r.lines[0]).toMatch(message);
      expect(r.code).toBe(1);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
    }, 20_000);
  }
});

/** machinactl's bad input: the same rules, and no pool temporary (`.#…`), export file or transfer record left. */
describe("machinactl bad input: one line naming the value, exit 1, nothing left behind", () => {
  let env: Record<string, string>;
  let pool: string;
  let mstate: string;
  let work: string;
  beforeAll(() => {
    work = files.dir();
    pool = `${work}/pool`;
    mstate = `${work}/state`;
    mkdirSync(pool);
    mkdirSync(mstate);
    shOk(`cp -a '${image}' '${pool}/bb'`);
    env = baseEnv({ MACHINA_POOL: pool, MACHINA_STATE_DIR: mstate, MACHINA_NO_DAEMON: "1" });
    // an archive cut off in the middle, plain and compressed
    shOk(`tar -C '${image}' -cf '${work}/bb.tar' . && head -c 200000 '${work}/bb.tar' > '${work}/cut.tar'`);
    writeFileSync(`${work}/text`, "not an archive\n".repeat(400));
    for (const [ext, cmd] of [
      ["zst", "zstd -q -c"],
      ["xz", "xz -c"],
      ["gz", "gzip -c"],
      ["bz2", "bzip2 -c"],
    ])
      shOk(`${cmd} '${work}/bb.tar' | head -c 100000 > '${work}/cut.tar.${ext}'`);
  });
  const snapshot = () => ({
    pool: readdirSync(pool).sort(),
    work: readdirSync(work).sort(),
    transfers: (() => {
      try {
        return readdirSync(`${mstate}/transfers`);
      } catch {
        return [];
      }
    })(),
  });
  const CTL: Array<[what: string, args: () => string[], message: RegExp]> = [
    [
      "export-tar into a missing directory",
      () => ["export-tar", "bb", "/nonexistent/machina-dir/x.tar"],
      /^machinactl: cannot write "\/nonexistent\/machina-dir\/x\.tar": the directory "\/nonexistent\/machina-dir" does not exist$/,
    ],
    [
      "logs -n too large",
      () => ["logs", "-n", "99999999999999999999", "bb"],
      /^machinactl: invalid value "99999999999999999999" for -n: expected a whole number from 0 to 4294967295$/,
    ],
    ["logs -n not a number", () => ["logs", "--lines=ten", "bb"], /"ten" for --lines: expected a whole number/],
    ["logs -o unknown", () => ["logs", "-o", "bogus", "bb"], /^machinactl: invalid value "bogus" for -o: expected one of short, .*json.*cat/],
    ["start an image that does not exist", () => ["start", "nosuchimage"], /^machinactl: no image "nosuchimage" in /],
    ["export-tar into a directory", () => ["export-tar", "bb", `${work}/`], /^machinactl: "[^"]+\/" is a directory: give the name of the file to write$/],
    ["start with an invalid machine name", () => ["start", "a_b"], /^machinactl: invalid machine name "a_b": expected letters, digits, '-' and '\.'/],
    ["read-only with a bad BOOL", () => ["read-only", "bb", "maybe"], /^machinactl: invalid value "maybe" for read-only's BOOL: expected a boolean/],
    [
      "import-tar of a file that is not a tar",
      () => ["import-tar", `${work}/text`, "nottar"],
      /^machinactl: "[^"]+\/text": .*not a valid tar archive \(a block is not a tar header\)$/,
    ],
    ["import-raw of a file that is not a disk image", () => ["-q", "import-raw", `${work}/text`, "notraw"], /^machinactl: "[^"]+\/text": not a raw disk image/],
    ...(["tar", "tar.zst", "tar.xz", "tar.gz", "tar.bz2"] as const).map((ext): [string, () => string[], RegExp] => [
      `import-tar of a truncated .${ext}`,
      () => ["import-tar", `${work}/cut.${ext}`, "cut"],
      new RegExp(`^machinactl: "/[^"]*/cut\\.${ext.replace(".", "\\.")}": the archive is truncated \\(`),
    ]),
  ];
  for (const [what, args, message] of CTL) {
    test(what, () => {
      const before = snapshot();
      const r = machinactlSync(env, ...args());
      const lines = r.stderr.split("\n").filter((l) => l !== "");
      expect(r.stdout).toBe("");
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(r.status).toBe(1);
      expect(snapshot()).toEqual(before);
    }, 30_000);
  }
  test("import-tar/import-fs under a name that is not a machine name: imported, with one warning line", () => {
    for (const args of [
      ["import-fs", `${pool}/bb`, "x y"],
      ["import-tar", `${work}/bb.tar`, "x_z"],
    ]) {
      const r = machinactlSync(env, "-q", ...args);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe(
        `machinactl: warning: image name "${args[2]}" is not a valid machine name (letters, digits, '-' and '.', at most 64 characters, no leading '-' or '.'): it cannot be started\n`,
      );
      expect(readdirSync(pool)).toContain(args[2]!);
      expect(machinactlSync(env, "remove", args[2]!).status).toBe(0);
    }
  }, 30_000);
  test("start NAME does not suggest machina-nspawn's -D/-i", () => {
    expect(machinactlSync(env, "start", "nosuchimage").stderr).not.toMatch(/(^|\s)-D( |$)|-i IMAGE|use -D/);
  });
});
