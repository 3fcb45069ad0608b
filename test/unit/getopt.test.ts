import { describe, expect, test } from "bun:test";
import { getopt, type OptionDef } from "../../src/settings/getopt.ts";
import { MachinaError } from "../../src/errors.ts";
import { NSPAWN_OPTIONS } from "../../src/settings/nspawn-options.ts";

const defs: OptionDef[] = [
  { id: "boot", long: "boot", short: "b", arg: "none" },
  { id: "dir", long: "directory", short: "D", arg: "required" },
  { id: "quiet", long: "quiet", short: "q", arg: "none" },
  { id: "vol", long: "volatile", arg: "optional" },
  { id: "net", long: "network-veth", short: "n", arg: "none" },
  { id: "netx", long: "network-veth-extra", arg: "required" },
  { id: "nb", long: "network-bridge", arg: "required" },
];

const ids = (argv: string[]) => getopt(argv, defs).options.map((o) => [o.id, o.value]);

describe("getopt (getopt_long '+' rules)", () => {
  test("short options bundle, and an argument may follow inside the bundle", () => {
    expect(ids(["-bqD", "/x"])).toEqual([
      ["boot", undefined],
      ["quiet", undefined],
      ["dir", "/x"],
    ]);
    expect(ids(["-bD/x"])).toEqual([
      ["boot", undefined],
      ["dir", "/x"],
    ]);
    expect(ids(["-D", "-b"])).toEqual([["dir", "-b"]]);
  });

  test("long options with = or a separate word", () => {
    expect(ids(["--directory=/a", "--directory", "/b"])).toEqual([
      ["dir", "/a"],
      ["dir", "/b"],
    ]);
    expect(ids(["--directory="])).toEqual([["dir", ""]]);
  });

  test("optional arguments only attach with =", () => {
    const r = getopt(["--volatile", "yes"], defs);
    expect(r.options).toEqual([{ id: "vol", value: undefined, spelling: "--volatile" }]);
    expect(r.operands).toEqual(["yes"]);
    expect(ids(["--volatile=state"])).toEqual([["vol", "state"]]);
  });

  test("parsing stops at the first operand and after --", () => {
    const r = getopt(["-b", "cmd", "-q", "--x"], defs);
    expect(r.options.length).toBe(1);
    expect(r.operands).toEqual(["cmd", "-q", "--x"]);
    expect(getopt(["--", "-b"], defs).operands).toEqual(["-b"]);
    expect(getopt(["-", "-b"], defs).operands).toEqual(["-", "-b"]);
  });

  test("unique prefixes abbreviate long options; an exact match wins", () => {
    expect(ids(["--dir=/x"])).toEqual([["dir", "/x"]]);
    expect(ids(["--network-veth"])).toEqual([["net", undefined]]);
    expect(() => getopt(["--network"], defs)).toThrow("ambiguous");
  });

  test.each([
    [["--bogus"], "unrecognized option '--bogus'"],
    [["-y"], "invalid option -- 'y'"],
    [["-D"], "option requires an argument -- 'D'"],
    [["--directory"], "option '--directory' requires an argument"],
    [["--boot=yes"], "option '--boot' doesn't allow an argument"],
  ])("%p is refused: %s", (argv, message) => {
    let error: unknown;
    try {
      getopt(argv as string[], defs);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MachinaError);
    expect((error as MachinaError).code).toBe("E_USAGE");
    expect((error as MachinaError).message).toBe(message);
  });

  test("the nspawn table has unique ids, long names and short letters", () => {
    const longs = NSPAWN_OPTIONS.flatMap((d) => (d.long ? [d.long] : []));
    const shorts = NSPAWN_OPTIONS.flatMap((d) => (d.short ? [d.short] : []));
    expect(new Set(longs).size).toBe(longs.length);
    expect(new Set(shorts).size).toBe(shorts.length);
    expect(new Set(NSPAWN_OPTIONS.map((d) => d.id)).size).toBe(NSPAWN_OPTIONS.length);
  });
});
