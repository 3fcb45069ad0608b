/**
 * The one size parser (src/settings/size.ts, systemd's parse_size with base 1024) and every
 * place that reads sizes through it: property tests over the whole 64-bit range.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parseSizeLimit } from "../../src/image/ops.ts";
import { parseRlimitAssignment } from "../../src/settings/rlimits.ts";
import { U64_MAX, parseSize, readSize } from "../../src/settings/size.ts";

const SUFFIX: Record<string, bigint> = { "": 1n, B: 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n, P: 1n << 50n, E: 1n << 60n };
const u64 = fc.bigInt({ min: 0n, max: U64_MAX });

describe("parseSize (systemd's parse_size, base 1024)", () => {
  test("a bare number is bytes, over the whole 64-bit range; one more is out of range", () => {
    fc.assert(fc.property(u64, (n) => parseSize(String(n)) === n));
    expect(readSize((U64_MAX + 1n).toString())).toBe("range");
  });

  test("N followed by a suffix is N times its power of 1024, or out of range", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 1n << 40n }), fc.constantFrom(...Object.keys(SUFFIX)), (n, s) => {
        const want = n * SUFFIX[s]!;
        expect(readSize(`${n}${s}`)).toBe(want > U64_MAX ? "range" : want);
      }),
    );
  });

  test("components sum in descending order only; fractions round down", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1023 }), fc.integer({ min: 0, max: 1023 }), (g, m) => {
        expect(parseSize(`${g}G${m}M`)).toBe(BigInt(g) * SUFFIX.G! + BigInt(m) * SUFFIX.M!);
        expect(parseSize(`${g}G ${m}M`)).toBe(BigInt(g) * SUFFIX.G! + BigInt(m) * SUFFIX.M!);
        expect(parseSize(`${m}M${g}G`)).toBeUndefined();
      }),
    );
    expect(parseSize("1.5K")).toBe(1536n);
    expect(parseSize("1.9")).toBe(1n);
    expect(parseSize("10.M")).toBe(10n << 20n);
  });

  test("never throws; anything else is invalid", () => {
    fc.assert(
      fc.property(fc.string(), (t) => {
        const r = readSize(t);
        return r === "invalid" || r === "range" || (typeof r === "bigint" && r >= 0n && r <= U64_MAX);
      }),
    );
    for (const t of ["", " ", "-1", "+1", "1k", "1KB", "1KiB", "1 2", "K", "1G ", "1.2.3", "0x10", "1e3"]) expect([t, readSize(t)]).toEqual([t, "invalid"]);
  });
});

describe("every size read through it", () => {
  test("--rlimit= / Limit*= sizes: bare numbers are bytes", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX - 1n }), (n) => {
        const r = parseRlimitAssignment(`FSIZE=${n}`, { flag: "--rlimit" });
        expect(r.soft).toBe(n);
      }),
    );
    expect(parseRlimitAssignment("FSIZE=18446744073709551615", { flag: "--rlimit" }).soft).toBe("infinity");
  });

  test("machinactl set-limit: bare numbers are bytes; -, none, infinity clear; out of range refused", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => parseSizeLimit(String(n)) === n));
    for (const t of ["-", "none", "infinity"]) expect(parseSizeLimit(t)).toBeUndefined();
    expect(() => parseSizeLimit("16E")).toThrow("at most 2^64-2 bytes");
    expect(() => parseSizeLimit("1g")).toThrow('invalid size "1g"');
  });
});
