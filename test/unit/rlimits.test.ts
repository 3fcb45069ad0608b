/**
 * Resource limit values as systemd's rlimit_parse() reads them for --rlimit= and Limit*=
 * (the expected values were checked against systemd-nspawn 252's /proc/self/limits).
 */
import { describe, expect, test } from "bun:test";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { parseRlimitAssignment } from "../../src/settings/rlimits.ts";

const one = (v: string) => {
  const r = parseRlimitAssignment(v, { flag: "--rlimit" });
  return r.soft === r.hard ? r.soft : [r.soft, r.hard];
};

describe("rlimit values (systemd's suffixes)", () => {
  test.each([
    // sizes: parse_size(), base 1024, case-sensitive, fractions rounded down
    ["FSIZE=1K", 1024n],
    ["FSIZE=1.5M", 1572864n],
    ["CORE=0.5K", 512n],
    ["AS=1G", 1n << 30n],
    ["MSGQUEUE=1T", 1n << 40n],
    ["DATA=1E", 1n << 60n],
    ["MEMLOCK=2P", 2n << 50n],
    ["RSS=1G512M", 1610612736n],
    ["STACK=100B", 100n],
    ["FSIZE=1.5", 1n],
    // CPU: seconds, time units, rounded up to whole seconds
    ["CPU=1", 1n],
    ["CPU=2min", 120n],
    ["CPU=1500ms", 2n],
    ["CPU=1.5", 2n],
    ["CPU=1h30min", 5400n],
    ["CPU=1h 30min", 5400n],
    ["CPU=1d", 86400n],
    ["CPU=1w", 604800n],
    ["CPU=2m", 120n],
    ["CPU=1us", 1n],
    // RTTIME: microseconds, time units
    ["RTTIME=100", 100n],
    ["RTTIME=1s", 1000000n],
    ["RTTIME=5ms", 5000n],
    ["RTTIME=1.5", 1n],
    // NICE: +N/-N is a nice level (20 - N), a plain number the raw limit
    ["NICE=-5", 25n],
    ["NICE=+5", 15n],
    ["NICE=19", 19n],
    ["NICE=0", 0n],
    ["NICE=40", 40n],
    // plain numbers elsewhere
    ["NOFILE=1024", 1024n],
    ["NPROC=100", 100n],
    ["CPU=infinity", "infinity"],
    ["FSIZE=infinity", "infinity"],
    ["NOFILE=18446744073709551615", "infinity"],
  ] as Array<[string, bigint | "infinity"]>)("%s", (v, want) => {
    expect(one(v)).toBe(want);
  });

  test("soft and hard separately", () => {
    expect(one("STACK=8M:16M")).toEqual([8388608n, 16777216n]);
    expect(one("CPU=1min:infinity")).toEqual([60n, "infinity"]);
  });

  test.each([
    "NOFILE=1K",
    "NPROC=1K",
    "FSIZE=1KB",
    "FSIZE=1k",
    "FSIZE=1Ki",
    "FSIZE=1KiB",
    "CPU=1x",
    "RTTIME=s",
    "NICE=41",
    "NICE=-21",
    "NICE=+20",
    "FSIZE=16E",
    "FSIZE=",
    "CPU=-1",
    "STACK=16M:8M",
  ])("%s is refused", (v) => {
    expect(() => parseRlimitAssignment(v, { flag: "--rlimit" })).toThrow(/--rlimit/);
  });

  test("--rlimit= and LimitCPU= read the same syntax", () => {
    const parsed = parseNspawnCommandLine(["-D", "/m/box", "--rlimit=CPU=2min", "--rlimit=FSIZE=1M:2M"], {});
    if (parsed.action !== "run") throw new Error("not a run");
    expect(parsed.settings.rlimits.map((l) => [l.name, l.soft, l.hard])).toEqual([
      ["CPU", 120n, 120n],
      ["FSIZE", 1048576n, 2097152n],
    ]);
    const f = parseNspawnFile("[Exec]\nLimitCPU=1h\nLimitRTTIME=10ms\nLimitMEMLOCK=64K:infinity\n", "/etc/systemd/nspawn/box.nspawn", true);
    expect(f.values.rlimits!.map((l) => [l.name, l.soft, l.hard])).toEqual([
      ["CPU", 3600n, 3600n],
      ["RTTIME", 10000n, 10000n],
      ["MEMLOCK", 65536n, "infinity"],
    ]);
  });

  test("a bad Limit*= value names file and line", () => {
    expect(() => parseNspawnFile("[Exec]\n\nLimitFSIZE=1KB\n", "/etc/systemd/nspawn/box.nspawn", true)).toThrow(/box\.nspawn:3/);
  });
});
