/**
 * Byte sizes as systemd's parse_size(t, 1024) reads them — the one size parser for --property=
 * Memory*, Limit*= / --rlimit= sizes and `machinactl set-limit`. Pure.
 *
 * A sum of components NUMBER[.FRACTION][ ]SUFFIX with SUFFIX one of E P T G M K (powers of 1024),
 * B or nothing (bytes), each later component with a smaller suffix than the one before
 * ("1G512M"; "1G 512M"); a bare number is bytes. Fractions are rounded down to whole bytes.
 * Suffixes are case-sensitive. Anything else, a minus sign, and sums above 2^64-1 are refused.
 */

export const U64_MAX = 0xffffffffffffffffn;

const SUFFIXES: ReadonlyArray<[string, bigint]> = [
  ["E", 1n << 60n],
  ["P", 1n << 50n],
  ["T", 1n << 40n],
  ["G", 1n << 30n],
  ["M", 1n << 20n],
  ["K", 1n << 10n],
  ["B", 1n],
  ["", 1n],
];

/** Bytes, or undefined when `text` is not a size (or above 2^64-1). */
export function parseSize(text: string): bigint | undefined {
  const r = readSize(text);
  return typeof r === "bigint" ? r : undefined;
}

/** Bytes, "invalid" (not a size) or "range" (a size above 2^64-1), as parse_size's EINVAL/ERANGE. */
export function readSize(text: string): bigint | "invalid" | "range" {
  let rest = text;
  let total = 0n;
  let start = 0;
  do {
    rest = rest.replace(/^\s+/, "");
    const m = /^([0-9]+)(?:\.([0-9]*))?\s*/.exec(rest);
    if (m === null) return "invalid";
    rest = rest.slice(m[0].length);
    let i = start;
    while (i < SUFFIXES.length && !rest.startsWith(SUFFIXES[i]![0])) i++;
    if (i >= SUFFIXES.length) return "invalid";
    const [suffix, factor] = SUFFIXES[i]!;
    const frac = m[2] ?? "";
    total += BigInt(m[1]!) * factor + (frac === "" ? 0n : (BigInt(frac) * factor) / 10n ** BigInt(frac.length));
    if (total > U64_MAX) return "range";
    rest = rest.slice(suffix.length);
    start = i + 1;
  } while (rest.length > 0);
  return total;
}

/** What parseSize takes, for error messages. */
export const SIZE_SYNTAX = "bytes with an optional K, M, G, T, P or E suffix (base 1024; a bare number is bytes)";
