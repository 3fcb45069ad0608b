/**
 * Parsers for the value syntaxes systemd uses on command lines and in .nspawn files.
 * Each returns the parsed value or throws an E_INVALID error naming what is allowed.
 * Pure: no I/O.
 */
import { invalidError, type ErrorContext } from "../errors.ts";

const TRUE_WORDS = new Set(["1", "yes", "y", "true", "t", "on"]);
const FALSE_WORDS = new Set(["0", "no", "n", "false", "f", "off"]);

export function parseBoolean(value: string, ctx: ErrorContext): boolean {
  const v = value.toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  throw invalid(ctx, value, "a boolean (yes/no, true/false, on/off, 1/0)");
}

export function invalid(ctx: ErrorContext, value: string, allowed: string) {
  const where = ctx.file ? `${ctx.file}:${ctx.line ?? 0}: ` : "";
  const what = ctx.flag ?? "value";
  return invalidError(`${where}invalid value ${JSON.stringify(value)} for ${what}: expected ${allowed}`, {
    ...ctx,
    value,
  });
}

export function parseChoice<T extends string>(value: string, choices: readonly T[], ctx: ErrorContext): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw invalid(ctx, value, `one of ${choices.join(", ")}`);
}

/** Machine names follow hostname rules: letters, digits, '-', '.', at most 64 characters. */
export function isValidMachineName(name: string): boolean {
  if (name.length === 0 || name.length > 64) return false;
  if (!/^[A-Za-z0-9.-]+$/.test(name)) return false;
  if (name.startsWith(".") || name.endsWith(".") || name.includes("..")) return false;
  if (name.startsWith("-")) return false;
  return name !== "." && name !== "..";
}

/** isValidMachineName's rule, for messages. */
export const MACHINE_NAME_RULE = "letters, digits, '-' and '.', at most 64 characters, no leading '-' or '.'";

export function parseMachineName(value: string, ctx: ErrorContext): string {
  if (isValidMachineName(value)) return value;
  throw invalid(ctx, value, `a machine name (${MACHINE_NAME_RULE})`);
}

/** Hostnames: same character rules, each label 1..63 characters. */
export function parseHostname(value: string, ctx: ErrorContext): string {
  const ok =
    value.length > 0 && value.length <= 64 && value.split(".").every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l) || /^[A-Za-z0-9]$/.test(l));
  if (ok) return value;
  throw invalid(ctx, value, "a valid hostname (labels of letters, digits and '-', at most 64 characters)");
}

/** A 128-bit id: 32 hex digits, with or without the RFC 4122 dashes; returned lower-case, dashed. */
export function parseUuid(value: string, ctx: ErrorContext): string {
  const hex = value.toLowerCase();
  const plain = /^[0-9a-f]{32}$/.test(hex)
    ? hex
    : /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(hex)
      ? hex.replaceAll("-", "")
      : undefined;
  if (!plain || /^0+$/.test(plain)) throw invalid(ctx, value, "a UUID (32 hexadecimal digits, optionally with dashes; not all zero)");
  return uuidFromHex(plain);
}

export function uuidFromHex(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function isValidEnvName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}

/** `NAME=VALUE`, or `NAME` alone to pass the caller's value of NAME (dropped when unset). */
export function parseEnvAssignment(value: string, hostEnv: Readonly<Record<string, string | undefined>>, ctx: ErrorContext): string | undefined {
  const eq = value.indexOf("=");
  const name = eq === -1 ? value : value.slice(0, eq);
  if (!isValidEnvName(name) || /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) throw invalid(ctx, value, "NAME=VALUE or NAME, where NAME is a valid variable name");
  if (eq !== -1) return value;
  const inherited = hostEnv[name];
  return inherited === undefined ? undefined : `${name}=${inherited}`;
}

export const SIGNALS: Readonly<Record<string, number>> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

export function signalName(n: number): string {
  for (const [name, num] of Object.entries(SIGNALS)) if (num === n && name !== "IOT" && name !== "POLL") return `SIG${name}`;
  if (n >= SIGRTMIN && n <= SIGRTMAX) return n === SIGRTMIN ? "SIGRTMIN" : `SIGRTMIN+${n - SIGRTMIN}`;
  return String(n);
}

/** Every signal number 0…64 by systemd's name for it (what `--kill-signal=help`, `-s help` print). */
export function signalTable(): string[] {
  return Array.from({ length: SIGRTMAX + 1 }, (_, n) => {
    if (n >= SIGRTMIN) return `RTMIN+${n - SIGRTMIN}`;
    return Object.entries(SIGNALS).find(([, num]) => num === n)?.[0] ?? String(n);
  });
}

/** `SIGTERM`, `TERM`, `15`, `RTMIN+3`, `SIGRTMIN+3`, `RTMAX-1`. */
export function parseSignal(value: string, ctx: ErrorContext): number {
  const v = value.toUpperCase().replace(/^SIG/, "");
  let n: number | undefined;
  if (/^[0-9]+$/.test(v)) n = Number(v);
  else if (v in SIGNALS) n = SIGNALS[v];
  else {
    const m = /^RT(MIN|MAX)(?:([+-])([0-9]+))?$/.exec(v);
    if (m) {
      const base = m[1] === "MIN" ? SIGRTMIN : SIGRTMAX;
      const off = m[3] ? Number(m[3]) * (m[2] === "-" ? -1 : 1) : 0;
      n = base + off;
    }
  }
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > SIGRTMAX || n === 32 || n === 33)
    throw invalid(ctx, value, "a signal name or number (e.g. SIGTERM, RTMIN+3, 15)");
  return n;
}

/** Absolute path, normalised (no `.`/`..` components, no duplicate slashes). */
export function parseAbsolutePath(value: string, ctx: ErrorContext): string {
  if (!value.startsWith("/") || value.includes("\0")) throw invalid(ctx, value, "an absolute path");
  const parts: string[] = [];
  for (const part of value.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw invalid(ctx, value, "an absolute path without '..' components");
    parts.push(part);
  }
  return "/" + parts.join("/");
}

export const PERSONALITIES = ["x86", "x86-64", "arm", "arm64", "ppc", "ppc64", "ppc64-le", "s390", "s390x"] as const;

export function parsePersonality(value: string, ctx: ErrorContext): string {
  if ((PERSONALITIES as readonly string[]).includes(value)) return value;
  throw invalid(ctx, value, `an architecture name (${PERSONALITIES.join(", ")})`);
}

/** A slice unit name; ".slice" is appended when missing. */
export function parseSlice(value: string, ctx: ErrorContext): string {
  const name = value.endsWith(".slice") ? value : `${value}.slice`;
  if (!/^[A-Za-z0-9:_.\\-]+\.slice$/.test(name) || name.length > 255 || name.startsWith("-"))
    throw invalid(ctx, value, "a slice name such as machine-web.slice");
  return name;
}

/** `Name=Value` for --property. */
export function parseProperty(value: string, ctx: ErrorContext): { name: string; value: string } {
  const eq = value.indexOf("=");
  const name = eq === -1 ? "" : value.slice(0, eq);
  if (!/^[A-Z][A-Za-z0-9]*$/.test(name)) throw invalid(ctx, value, "NAME=VALUE, e.g. MemoryMax=512M");
  return { name, value: value.slice(eq + 1) };
}

/** Space-separated syscall names and @groups; a leading '~' makes the whole list a deny list. */
export function parseSyscallFilter(value: string, ctx: ErrorContext): { deny: boolean; names: string[] } {
  const trimmed = value.trim();
  const deny = trimmed.startsWith("~");
  const names = (deny ? trimmed.slice(1) : trimmed).split(/\s+/).filter((s) => s.length > 0);
  if (names.length === 0 || !names.every((n) => /^@?[a-z0-9_-]+$/.test(n)))
    throw invalid(ctx, value, "a space-separated list of system call names and @groups, optionally starting with '~'");
  return { deny, names };
}

/** Network interface names: 1..15 bytes, no '/', ':' or white space, not "." or "..". */
export function parseInterfaceName(value: string, ctx: ErrorContext): string {
  if (value.length === 0 || value.length > 15 || /[/:\s\0]/.test(value) || value === "." || value === "..")
    throw invalid(ctx, value, "a network interface name (1-15 characters, no '/', ':' or spaces)");
  return value;
}

/** `HOSTIF[:CONTAINERIF]`. */
export function parseVethExtra(value: string, ctx: ErrorContext): string {
  const [host = "", container, extra] = value.split(":");
  if (extra !== undefined) throw invalid(ctx, value, "HOSTIF[:CONTAINERIF]");
  parseInterfaceName(host, ctx);
  if (container !== undefined) parseInterfaceName(container, ctx);
  return value;
}

export function parseOomScoreAdjust(value: string, ctx: ErrorContext): number {
  if (!/^-?[0-9]+$/.test(value) || Number(value) < -1000 || Number(value) > 1000) throw invalid(ctx, value, "an integer from -1000 to 1000");
  return Number(value);
}

/** `PATH[:PATH]`, both absolute. */
export function parsePivotRoot(value: string, ctx: ErrorContext): { newRoot: string; oldRoot: string | undefined } {
  const parts = value.split(":");
  if (parts.length > 2) throw invalid(ctx, value, "NEWROOT[:OLDROOT] with absolute paths");
  const newRoot = parseAbsolutePath(parts[0]!, ctx);
  return { newRoot, oldRoot: parts[1] === undefined ? undefined : parseAbsolutePath(parts[1], ctx) };
}

/** User names as accepted by systemd ("relaxed" rules, no ':' or '/'). */
export function parseUserName(value: string, ctx: ErrorContext): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(value)) throw invalid(ctx, value, "a user name");
  return value;
}
