/** Resource limit names (`--rlimit=NAME=SOFT[:HARD]`, `LimitNAME=` in .nspawn files). Pure. */
import { invalid } from "./values.ts";
import type { ErrorContext } from "../errors.ts";

export const RLIMITS: Readonly<Record<string, number>> = {
  CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7, MEMLOCK: 8, AS: 9,
  LOCKS: 10, SIGPENDING: 11, MSGQUEUE: 12, NICE: 13, RTPRIO: 14, RTTIME: 15,
};

export type LimitValue = bigint | "infinity";

export interface Rlimit {
  resource: number;
  name: string;
  soft: LimitValue;
  hard: LimitValue;
}

function parseLimitValue(v: string, ctx: ErrorContext, whole: string): LimitValue {
  if (v === "infinity") return "infinity";
  if (!/^[0-9]+$/.test(v)) throw invalid(ctx, whole, "NAME=SOFT[:HARD] with numbers or 'infinity' (e.g. NOFILE=1024:4096)");
  const n = BigInt(v);
  if (n >= 0xffffffffffffffffn) return "infinity";
  return n;
}

/** `NOFILE=1024:4096`, `RLIMIT_NOFILE=infinity`, `CORE=0`. */
export function parseRlimitAssignment(value: string, ctx: ErrorContext): Rlimit {
  const eq = value.indexOf("=");
  const rawName = (eq === -1 ? value : value.slice(0, eq)).toUpperCase().replace(/^RLIMIT_/, "");
  if (eq === -1 || !(rawName in RLIMITS))
    throw invalid(ctx, value, `NAME=SOFT[:HARD] with NAME one of ${Object.keys(RLIMITS).join(", ")}`);
  return parseRlimitValue(rawName, value.slice(eq + 1), ctx, value);
}

export function parseRlimitValue(name: string, spec: string, ctx: ErrorContext, whole = spec): Rlimit {
  const colon = spec.indexOf(":");
  const soft = parseLimitValue(colon === -1 ? spec : spec.slice(0, colon), ctx, whole);
  const hard = colon === -1 ? soft : parseLimitValue(spec.slice(colon + 1), ctx, whole);
  if (hard !== "infinity" && (soft === "infinity" || soft > hard))
    throw invalid(ctx, whole, "a soft limit no larger than the hard limit");
  return { resource: RLIMITS[name]!, name, soft, hard };
}
