/**
 * Resource limits (`--rlimit=NAME=SOFT[:HARD]`, `LimitNAME=` in .nspawn files), parsed as
 * systemd's rlimit_parse() does for both: byte sizes with K/M/G/T/P/E (base 1024), CPU in
 * seconds with time units (rounded up), RTTIME in microseconds with time units, NICE as a
 * +N/-N nice level or a raw 0..40 limit, the others plain numbers. Pure.
 */
import { parseSize } from "./size.ts";
import { invalid } from "./values.ts";
import type { ErrorContext } from "../errors.ts";

export const RLIMITS: Readonly<Record<string, number>> = {
  CPU: 0,
  FSIZE: 1,
  DATA: 2,
  STACK: 3,
  CORE: 4,
  RSS: 5,
  NPROC: 6,
  NOFILE: 7,
  MEMLOCK: 8,
  AS: 9,
  LOCKS: 10,
  SIGPENDING: 11,
  MSGQUEUE: 12,
  NICE: 13,
  RTPRIO: 14,
  RTTIME: 15,
};

export type LimitValue = bigint | "infinity";

export interface Rlimit {
  resource: number;
  name: string;
  soft: LimitValue;
  hard: LimitValue;
}

const ALLOWED =
  "NAME=SOFT[:HARD] with numbers or 'infinity' (e.g. NOFILE=1024:4096; sizes take K, M, G, T, P, E (base 1024), CPU and RTTIME time units, NICE a +N/-N nice level)";
const U64_MAX = 0xffffffffffffffffn;

/** Resources whose values are byte sizes (systemd's rlimit_parse_size). */
const SIZE_LIMITS = new Set(["FSIZE", "DATA", "STACK", "CORE", "RSS", "MEMLOCK", "AS", "MSGQUEUE"]);
/** systemd's time units (time-util.c), in microseconds. */
const USEC: Record<string, bigint> = (() => {
  const s = 1_000_000n,
    min = 60n * s,
    h = 60n * min,
    d = 24n * h;
  const t: Record<string, bigint> = {};
  const add = (names: string[], v: bigint) => {
    for (const n of names) t[n] = v;
  };
  add(["seconds", "second", "sec", "s"], s);
  add(["minutes", "minute", "min", "m"], min);
  add(["months", "month", "M"], 2629800n * s);
  add(["msec", "ms"], 1000n);
  add(["hours", "hour", "hr", "h"], h);
  add(["days", "day", "d"], d);
  add(["weeks", "week", "w"], 7n * d);
  add(["years", "year", "y"], 31557600n * s);
  add(["usec", "us", "\u03bcs", "\u00b5s"], 1n);
  return t;
})();

/**
 * "2min 30s", "1.5h": a sum of NUMBER[.FRACTION][ ]UNIT components, as systemd's parse_time()
 * (fractions rounded down to microseconds). undefined = malformed. Sizes: settings/size.ts.
 */
function parseTime(v: string, defaultUnit: bigint): bigint | undefined {
  let rest = v.trim();
  if (rest === "") return undefined;
  let total = 0n;
  while (rest.length > 0) {
    const m = /^([0-9]+)(?:\.([0-9]*))?\s*([^\s0-9.]*)/.exec(rest);
    if (m === null) return undefined;
    const unitName = m[3]!;
    const unit = unitName === "" ? defaultUnit : USEC[unitName];
    if (unit === undefined) return undefined;
    const frac = m[2] ?? "";
    total += BigInt(m[1]!) * unit + (frac === "" ? 0n : (BigInt(frac) * unit) / 10n ** BigInt(frac.length));
    rest = rest.slice(m[0].length).trimStart();
  }
  return total;
}

/** One value of resource NAME, as systemd's rlimit_parse_one(). */
function parseLimitValue(name: string, v: string, ctx: ErrorContext, whole: string): LimitValue {
  if (v === "infinity") return "infinity";
  let n: bigint | undefined;
  if (SIZE_LIMITS.has(name)) n = parseSize(v);
  else if (name === "CPU") {
    const usec = parseTime(v, 1_000_000n);
    n = usec === undefined ? undefined : (usec + 999_999n) / 1_000_000n; // rounded up to whole seconds
  } else if (name === "RTTIME") n = parseTime(v, 1n);
  else if (name === "NICE" && /^[+-][0-9]+$/.test(v)) {
    const nice = Number(v);
    if (nice < -20 || nice > 19) throw invalid(ctx, whole, "a nice level from -20 to 19 (+N/-N) or a raw limit from 0 to 40");
    n = BigInt(20 - nice);
  } else if (/^[0-9]+$/.test(v)) {
    n = BigInt(v);
    if (name === "NICE" && n > 40n) throw invalid(ctx, whole, "a nice level from -20 to 19 (+N/-N) or a raw limit from 0 to 40");
  }
  if (n === undefined || (n > U64_MAX && !/^[0-9]+$/.test(v))) throw invalid(ctx, whole, ALLOWED);
  if (n >= U64_MAX) return "infinity";
  return n;
}

/** `NOFILE=1024:4096`, `RLIMIT_NOFILE=infinity`, `CORE=0`. */
export function parseRlimitAssignment(value: string, ctx: ErrorContext): Rlimit {
  const eq = value.indexOf("=");
  const rawName = (eq === -1 ? value : value.slice(0, eq)).toUpperCase().replace(/^RLIMIT_/, "");
  if (eq === -1 || !(rawName in RLIMITS)) throw invalid(ctx, value, `NAME=SOFT[:HARD] with NAME one of ${Object.keys(RLIMITS).join(", ")}`);
  return parseRlimitValue(rawName, value.slice(eq + 1), ctx, value);
}

export function parseRlimitValue(name: string, spec: string, ctx: ErrorContext, whole = spec): Rlimit {
  const colon = spec.indexOf(":");
  const soft = parseLimitValue(name, colon === -1 ? spec : spec.slice(0, colon), ctx, whole);
  const hard = colon === -1 ? soft : parseLimitValue(name, spec.slice(colon + 1), ctx, whole);
  if (hard !== "infinity" && (soft === "infinity" || soft > hard)) throw invalid(ctx, whole, "a soft limit no larger than the hard limit");
  return { resource: RLIMITS[name]!, name, soft, hard };
}
