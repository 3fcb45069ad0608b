/**
 * systemd's unit-file syntax (systemd.syntax(7)), as used by .nspawn files. Pure: text in,
 * entries and warnings out; never throws on any input.
 *
 * - `[Section]` headers; `Key=Value` assignments (key and value trimmed); `Key=` (empty) is
 *   kept, it is the "reset" marker for list settings.
 * - Lines starting with `#` or `;` (after white space) are comments.
 * - A line ending in a backslash continues on the next line; the backslash becomes a space.
 *   Comment lines inside a continuation are skipped, as systemd does.
 * - Repeated keys are kept, in file order; each entry carries its file and (first) line.
 * - Malformed lines (no `=`, assignment before any section, bad header) and, when a schema is
 *   given, unknown sections and keys are warnings with file:line, never errors. Sections and
 *   keys starting with `X-` are ignored silently (they are for extensions).
 *
 * Quoting is NOT resolved here: like systemd, each key's parser decides (see splitQuoted).
 */

export interface UnitEntry {
  section: string;
  key: string;
  /** Trimmed value; "" for an empty assignment (reset marker). */
  value: string;
  file: string;
  /** 1-based line where the (possibly continued) assignment starts. */
  line: number;
}

export interface UnitWarning {
  file: string;
  line: number;
  message: string;
}

export interface ParsedUnitFile {
  entries: UnitEntry[];
  warnings: UnitWarning[];
}

/** Known section -> known keys. Entries outside it are dropped with a warning. */
export type UnitSchema = ReadonlyMap<string, ReadonlySet<string>>;

const WHITESPACE = " \t\n\r";
const COMMENTS = "#;";
/** systemd refuses longer (logical) lines; so do we, with a warning. */
export const LONG_LINE_MAX = 1024 * 1024;

function trim(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && WHITESPACE.includes(s[a]!)) a++;
  while (b > a && WHITESPACE.includes(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** Whether the line ends in a backslash that is not itself escaped ("\\" at the end is not a continuation). */
function endsWithContinuation(line: string): boolean {
  let n = 0;
  for (let i = line.length - 1; i >= 0 && line[i] === "\\"; i--) n++;
  return n % 2 === 1;
}

export function formatWarning(w: UnitWarning): string {
  return `${w.file}:${w.line}: ${w.message}`;
}

export function parseUnitFile(text: string, file: string, schema?: UnitSchema): ParsedUnitFile {
  const entries: UnitEntry[] = [];
  const warnings: UnitWarning[] = [];
  const warn = (line: number, message: string) => warnings.push({ file, line, message });

  if (text.startsWith("\uFEFF")) text = text.slice(1);
  // systemd reads lines split on \n; a trailing \r is white space and trimmed.
  const physical = text.split("\n");

  let section: string | undefined;
  /** Section known to the schema (or no schema)? Unknown sections are warned about once. */
  let sectionKnown = true;
  let sectionSilent = false;
  let continuation: string | undefined;
  let contStart = 0;

  const handle = (logical: string, lineNo: number) => {
    const l = trim(logical);
    if (l === "" || COMMENTS.includes(l[0]!)) return;
    if (l.length > LONG_LINE_MAX) {
      warn(lineNo, "line too long, ignoring");
      return;
    }
    if (l.startsWith(".include")) {
      warn(lineNo, ".include directives are not supported, ignoring line");
      return;
    }
    if (l[0] === "[") {
      if (!l.endsWith("]") || l.length < 3) {
        warn(lineNo, `invalid section header "${l}", ignoring`);
        // systemd ignores the following assignments too, until a valid header.
        section = undefined;
        sectionKnown = false;
        sectionSilent = true;
        return;
      }
      const name = l.slice(1, -1);
      section = name;
      sectionSilent = name.startsWith("X-");
      sectionKnown = sectionSilent ? false : schema === undefined || schema.has(name);
      if (!sectionKnown && !sectionSilent) warn(lineNo, `unknown section "${name}", ignoring`);
      return;
    }
    const eq = l.indexOf("=");
    if (eq === -1) {
      warn(lineNo, "missing '=', ignoring line");
      return;
    }
    if (section === undefined) {
      if (!sectionSilent) warn(lineNo, "assignment outside of a section, ignoring");
      return;
    }
    if (!sectionKnown) return;
    const key = trim(l.slice(0, eq));
    const value = trim(l.slice(eq + 1));
    if (key === "") {
      warn(lineNo, "missing key name before '=', ignoring line");
      return;
    }
    if (key.startsWith("X-")) return;
    if (schema !== undefined && !schema.get(section)!.has(key)) {
      warn(lineNo, `unknown key "${key}" in section [${section}], ignoring`);
      return;
    }
    entries.push({ section, key, value, file, line: lineNo });
  };

  for (let i = 0; i < physical.length; i++) {
    const raw = physical[i]!;
    const lineNo = i + 1;
    // Comment lines are skipped before anything else: one ending in a backslash does not
    // continue, and one inside a continued line does not end it (systemd ≥ 236).
    const t = trim(raw);
    if (t !== "" && COMMENTS.includes(t[0]!)) continue;
    const stripped = raw.replace(/[\s]+$/, "");
    if (endsWithContinuation(stripped)) {
      const piece = stripped.slice(0, -1) + " ";
      if (continuation === undefined) {
        continuation = piece;
        contStart = lineNo;
      } else continuation += piece;
      if (continuation.length > LONG_LINE_MAX) {
        warn(contStart, "line too long, ignoring");
        continuation = undefined;
      }
      continue;
    }
    if (continuation !== undefined) {
      const logical = continuation + raw;
      continuation = undefined;
      handle(logical, contStart);
    } else handle(raw, lineNo);
  }
  // A continuation at the end of the file ends there.
  if (continuation !== undefined) handle(continuation, contStart);
  return { entries, warnings };
}

// ------------------------------------------------------------------ word splitting

export class SplitError extends Error {}

export interface SplitOptions {
  /**
   * Resolve C escapes (\n, \t, \xHH, \ooo, \uHHHH, \s, …), as EXTRACT_CUNESCAPE; unknown
   * escapes are an error. Without it, a backslash only protects the next character, and
   * with `retainEscape` (systemd's strv setting) the backslash itself is kept.
   */
  cunescape?: boolean;
  retainEscape?: boolean;
}

/**
 * systemd's extract_first_word() loop with EXTRACT_UNQUOTE and white space as separators:
 * words split on white space; '…' and "…" group (quotes are removed, a quote may start in
 * the middle of a word: a"b c" = `ab c`); backslash escapes as per `options`. Unbalanced
 * quotes and a trailing lone backslash throw SplitError.
 *
 * The default is what .nspawn list keys (Parameters=, Environment=, Interface=…) get in
 * systemd 252: config_parse_strv uses EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE.
 */
export function splitQuoted(value: string, options: SplitOptions = { retainEscape: true }): string[] {
  const words: string[] = [];
  let i = 0;
  const n = value.length;
  const isSep = (c: string) => WHITESPACE.includes(c);
  for (;;) {
    while (i < n && isSep(value[i]!)) i++;
    if (i >= n) return words;
    let word = "";
    let quote: string | undefined;
    for (;;) {
      if (i >= n) {
        if (quote !== undefined) throw new SplitError(`unbalanced ${quote} quote`);
        break;
      }
      const c = value[i]!;
      if (c === "\\") {
        i++;
        if (i >= n) throw new SplitError("trailing backslash");
        if (options.cunescape) {
          const [s, len] = cunescapeOne(value, i);
          word += s;
          i += len;
        } else {
          if (options.retainEscape) word += "\\";
          word += value[i]!;
          i++;
        }
        continue;
      }
      if (quote !== undefined) {
        if (c === quote) quote = undefined;
        else word += c;
        i++;
        continue;
      }
      if (c === "'" || c === '"') {
        quote = c;
        i++;
        continue;
      }
      if (isSep(c)) break;
      word += c;
      i++;
    }
    words.push(word);
  }
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  '"': '"',
  "'": "'",
  s: " ",
};

/** One escape after a backslash at `value[i]`: [resolved text, characters consumed]. */
function cunescapeOne(value: string, i: number): [string, number] {
  const c = value[i]!;
  if (c in SIMPLE_ESCAPES) return [SIMPLE_ESCAPES[c]!, 1];
  const hex = (len: number, what: string): [string, number] => {
    const digits = value.slice(i + 1, i + 1 + len);
    if (digits.length !== len || !/^[0-9a-fA-F]+$/.test(digits)) throw new SplitError(`invalid \\${what} escape`);
    const code = parseInt(digits, 16);
    if (code === 0) throw new SplitError("\\0 is not allowed in a value");
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) throw new SplitError(`invalid \\${what} escape`);
    return [String.fromCodePoint(code), 1 + len];
  };
  if (c === "x") return hex(2, "x");
  if (c === "u") return hex(4, "u");
  if (c === "U") return hex(8, "U");
  if (/[0-7]/.test(c)) {
    const digits = value.slice(i, i + 3);
    if (!/^[0-7]{3}$/.test(digits)) throw new SplitError("invalid octal escape (\\ooo)");
    const code = parseInt(digits, 8);
    if (code === 0 || code > 0xff) throw new SplitError("invalid octal escape (\\ooo)");
    return [String.fromCharCode(code), 3];
  }
  throw new SplitError(`unknown escape \\${c}`);
}
