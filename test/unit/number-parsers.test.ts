/**
 * Property tests of the number parsers of the command line and .nspawn files: every value in
 * range is read as itself (no implicit unit, no rounding), every value out of range is refused
 * with the flag named. Sizes: size.test.ts.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parseCpuSet, parsePort, parsePrivateUsers } from "../../src/settings/compound-values.ts";
import { parseOomScoreAdjust, parseSignal } from "../../src/settings/values.ts";

const ctx = { flag: "--x" };
const big = fc.bigInt({ min: 0n, max: 10n ** 30n });

describe("number parsers", () => {
  test("ports 1..65535 as themselves; 0 and above refused", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (a, b) => {
        expect(parsePort(`${a}:${b}`, ctx)).toEqual({ protocol: "tcp", hostPort: a, containerPort: b });
      }),
    );
    fc.assert(
      fc.property(
        big.filter((n) => n === 0n || n > 65535n),
        (n) => {
          expect(() => parsePort(String(n), ctx)).toThrow("--x");
        },
      ),
    );
  });

  test("--oom-score-adjust -1000..1000; outside refused", () => {
    fc.assert(fc.property(fc.integer({ min: -1000, max: 1000 }), (n) => parseOomScoreAdjust(String(n), ctx) === n));
    fc.assert(
      fc.property(
        big.filter((n) => n > 1000n),
        (n) => {
          expect(() => parseOomScoreAdjust(String(n), ctx)).toThrow("--x");
          expect(() => parseOomScoreAdjust(`-${n}`, ctx)).toThrow("--x");
        },
      ),
    );
  });

  test("signals 1..64 except 32, 33 by number; others refused", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }).filter((n) => n !== 32 && n !== 33),
        (n) => parseSignal(String(n), ctx) === n,
      ),
    );
    fc.assert(
      fc.property(
        big.filter((n) => n === 0n || n === 32n || n === 33n || n > 64n),
        (n) => {
          expect(() => parseSignal(String(n), ctx)).toThrow("--x");
        },
      ),
    );
  });

  test("CPU sets: 0..8191 as themselves; above refused", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8191 }), fc.integer({ min: 0, max: 50 }), (a, w) => {
        const b = Math.min(8191, a + w);
        expect(parseCpuSet(`${a}-${b}`, ctx)).toEqual(Array.from({ length: b - a + 1 }, (_, i) => a + i));
      }),
    );
    fc.assert(
      fc.property(
        big.filter((n) => n > 8191n),
        (n) => {
          expect(() => parseCpuSet(String(n), ctx)).toThrow("--x");
        },
      ),
    );
  });

  test("--private-users=BASE[:COUNT] within 0..4294967294; beyond refused", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xfffffffe }), fc.integer({ min: 1, max: 65536 }), (base, count) => {
        const ok = base + count - 1 <= 0xfffffffe;
        if (ok) expect(parsePrivateUsers(`${base}:${count}`, ctx)).toEqual({ mode: "range", base, count });
        else expect(() => parsePrivateUsers(`${base}:${count}`, ctx)).toThrow("--x");
      }),
    );
    fc.assert(
      fc.property(
        big.filter((n) => n > 0xfffffffen),
        (n) => {
          expect(() => parsePrivateUsers(String(n), ctx)).toThrow("--x");
        },
      ),
    );
  });
});
