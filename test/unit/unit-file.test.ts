import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { SplitError, parseUnitFile, splitQuoted } from "../../src/settings/unit-file.ts";

const F = "/etc/systemd/nspawn/m.nspawn";
const kv = (text: string, schema?: Parameters<typeof parseUnitFile>[2]) =>
  parseUnitFile(text, F, schema).entries.map((e) => [e.section, e.key, e.value, e.line]);

describe("unit-file syntax", () => {
  test("sections, assignments, trimming, repeated keys in order, line numbers", () => {
    const text = "[Exec]\n  Boot = yes  \nEnvironment=A=1\n\n[Files]\nBind=/a\nBind=/b\n[Exec]\nEnvironment=B=2\n";
    expect(kv(text)).toEqual([
      ["Exec", "Boot", "yes", 2],
      ["Exec", "Environment", "A=1", 3],
      ["Files", "Bind", "/a", 6],
      ["Files", "Bind", "/b", 7],
      ["Exec", "Environment", "B=2", 9],
    ]);
  });

  test("comments with # and ; at line start (after white space); not in the middle", () => {
    expect(kv("# x\n; y\n[Exec]\n   # z\nHostname=a # not a comment\n;Hostname=b\n")).toEqual([["Exec", "Hostname", "a # not a comment", 5]]);
  });

  test("continuations: trailing backslash joins with a space; comments inside are skipped; line = first line", () => {
    expect(kv("[Exec]\nParameters=a \\\n  b\\\n# comment inside\nc\nHostname=h\n")).toEqual([
      ["Exec", "Parameters", "a    b c", 2],
      ["Exec", "Hostname", "h", 6],
    ]);
  });

  test("an escaped backslash at the end does not continue; a comment ending in a backslash does not continue", () => {
    expect(kv("[Exec]\nUser=a\\\\\nHostname=h\n# c \\\nHostname=i\n")).toEqual([
      ["Exec", "User", "a\\\\", 2],
      ["Exec", "Hostname", "h", 3],
      ["Exec", "Hostname", "i", 5],
    ]);
  });

  test("a continuation at the end of the file ends there", () => {
    expect(kv("[Exec]\nParameters=a \\")).toEqual([["Exec", "Parameters", "a", 2]]);
  });

  test("empty assignment is kept as the reset marker", () => {
    expect(kv("[Files]\nBind=/a\nBind=\nBind=  \n")).toEqual([
      ["Files", "Bind", "/a", 2],
      ["Files", "Bind", "", 3],
      ["Files", "Bind", "", 4],
    ]);
  });

  test("CRLF line endings, BOM", () => {
    expect(kv("\uFEFF[Exec]\r\nHostname=h\r\n")).toEqual([["Exec", "Hostname", "h", 2]]);
  });

  test("malformed lines are warnings with file:line, never errors", () => {
    const r = parseUnitFile("Hostname=x\n[Exec]\njunk\n=v\n[Broken\nHostname=y\n.include /x\n", F);
    expect(r.entries).toEqual([]);
    expect(r.warnings.map((w) => `${w.file}:${w.line}: ${w.message}`)).toEqual([
      `${F}:1: assignment outside of a section, ignoring`,
      `${F}:3: missing '=', ignoring line`,
      `${F}:4: missing key name before '=', ignoring line`,
      `${F}:5: invalid section header "[Broken", ignoring`,
      `${F}:7: .include directives are not supported, ignoring line`,
    ]);
  });

  test("unknown sections and keys are warnings (with a schema); X- ones are silent", () => {
    const schema = new Map([["Exec", new Set(["Boot"])]]);
    const r = parseUnitFile("[Exec]\nBoot=1\nBogus=2\nX-Mine=3\n[Other]\nA=1\nB=2\n[X-Vendor]\nC=1\n", F, schema);
    expect(r.entries.map((e) => e.key)).toEqual(["Boot"]);
    expect(r.warnings.map((w) => [w.line, w.message])).toEqual([
      [3, 'unknown key "Bogus" in section [Exec], ignoring'],
      [5, 'unknown section "Other", ignoring'],
    ]);
  });
});

describe("splitQuoted (extract_first_word)", () => {
  test("default = systemd's strv rules: quotes removed, escapes kept", () => {
    expect(splitQuoted("a b  c")).toEqual(["a", "b", "c"]);
    expect(splitQuoted(`a "b c" 'd e'`)).toEqual(["a", "b c", "d e"]);
    expect(splitQuoted(`x"y z"w`)).toEqual(["xy zw"]);
    expect(splitQuoted(`"it's"`)).toEqual(["it's"]);
    expect(splitQuoted(`a\\ b`)).toEqual(["a\\ b"]);
    expect(splitQuoted(`"a\\"b"`)).toEqual(['a\\"b']);
    expect(splitQuoted(`""`)).toEqual([""]);
    expect(splitQuoted("   ")).toEqual([]);
  });

  test("cunescape mode resolves C escapes", () => {
    const o = { cunescape: true };
    expect(splitQuoted(`a\\tb "c\\nd" \\x41 \\101 \\u00e9 \\s`, o)).toEqual(["a\tb", "c\nd", "A", "A", "é", " "]);
    expect(() => splitQuoted(`a\\ b`, o)).toThrow("unknown escape");
    expect(() => splitQuoted(`\\q`, o)).toThrow(SplitError);
    expect(() => splitQuoted(`\\x4`, o)).toThrow(SplitError);
    expect(() => splitQuoted(`\\x00`, o)).toThrow(SplitError);
  });

  test("unbalanced quotes and a trailing backslash are errors", () => {
    expect(() => splitQuoted(`"abc`)).toThrow("unbalanced");
    expect(() => splitQuoted(`'abc`)).toThrow("unbalanced");
    expect(() => splitQuoted(`abc\\`)).toThrow("trailing backslash");
  });

  test("property: quoting any word with '…' (no ' inside) round-trips", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string().filter((s) => !s.includes("'") && !s.includes("\\")),
          { maxLength: 6 },
        ),
        (ws) => {
          expect(splitQuoted(ws.map((w) => `'${w}'`).join(" "))).toEqual(ws);
        },
      ),
    );
  });

  test("property: never throws anything but SplitError", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("a", " ", "'", '"', "\\", "x", "0", "u", "\t") }), fc.boolean(), (s, c) => {
        try {
          splitQuoted(s, { cunescape: c, retainEscape: !c });
        } catch (e) {
          expect(e).toBeInstanceOf(SplitError);
        }
      }),
    );
  });
});

// ------------------------------------------------------------------ properties of the parser

const keyArb = fc.stringMatching(/^[A-Za-z][A-Za-z0-9]{0,12}$/).filter((k) => !k.startsWith("X-"));
const sectionArb = fc.constantFrom("Exec", "Files", "Network");
/** Values that survive trimming and are not continued: no newline, no edge white space, no trailing backslash. */
const valueArb = fc
  .string({ unit: fc.constantFrom("a", "b", "=", " ", "#", ";", "'", '"', "\\", "/", ":", "é", "[", "]") })
  .map((v) => v.replace(/[\s\\]+$/, "").trim());

describe("parser properties", () => {
  test("never throws on arbitrary input; warnings and entries point at real lines", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 400 }), (text) => {
        const r = parseUnitFile(text, F);
        const lines = text.split("\n").length;
        for (const e of r.entries) {
          expect(e.line).toBeGreaterThanOrEqual(1);
          expect(e.line).toBeLessThanOrEqual(lines);
          expect(e.key).toBe(e.key.trim());
          expect(e.value).toBe(e.value.trim());
        }
        for (const w of r.warnings) expect(w.line).toBeLessThanOrEqual(lines);
      }),
      { numRuns: 2000 },
    );
  });

  test("never throws on line-structured junk", () => {
    const lineArb = fc.oneof(
      fc.constantFrom("[Exec]", "[Files]", "[", "[]", "=", "\\", "#\\", "Key=\\", "  ", ""),
      fc.string({ unit: fc.constantFrom("[", "]", "=", "\\", "#", ";", " ", "a", "\r", "\t") }),
    );
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 30 }), (ls) => {
        parseUnitFile(ls.join("\n"), F);
      }),
      { numRuns: 2000 },
    );
  });

  test("round trip: a generated file parses back to its assignments", () => {
    const entryArb = fc.record({ section: sectionArb, key: keyArb, value: valueArb });
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 20 }), fc.boolean(), (entries, decorate) => {
        let text = "";
        let cur: string | undefined;
        const expected: Array<[string, string, string]> = [];
        for (const e of entries) {
          if (e.section !== cur) {
            text += `${decorate ? "\n# section\n" : ""}[${e.section}]\n`;
            cur = e.section;
          }
          text += decorate ? `  ${e.key} =  ${e.value}\t\n; note\n` : `${e.key}=${e.value}\n`;
          expected.push([e.section, e.key, e.value]);
        }
        const r = parseUnitFile(text, F);
        expect(r.warnings).toEqual([]);
        expect(r.entries.map((x) => [x.section, x.key, x.value])).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  test("continuation invariant: splitting a value over lines with '\\' = joining the pieces with spaces", () => {
    const pieceArb = fc
      .stringMatching(/^[a-z0-9=/ ]{0,10}$/)
      .map((p) => p.trim())
      .filter((p) => p.length > 0);
    fc.assert(
      fc.property(fc.array(pieceArb, { minLength: 1, maxLength: 6 }), fc.array(fc.boolean(), { maxLength: 6 }), (pieces, comments) => {
        let text = "[Exec]\nParameters=";
        pieces.forEach((p, i) => {
          text += p;
          if (i < pieces.length - 1) text += comments[i] ? "\\\n# inside\n" : "\\\n";
        });
        text += "\nHostname=after\n";
        const r = parseUnitFile(text, F);
        expect(r.entries[0]).toMatchObject({ key: "Parameters", line: 2, value: pieces.join(" ") });
        expect(r.entries[1]).toMatchObject({ key: "Hostname", value: "after" });
      }),
      { numRuns: 500 },
    );
  });

  test("comment invariant: inserting comment lines changes nothing but line numbers", () => {
    const entryArb = fc.record({ key: keyArb, value: valueArb });
    fc.assert(
      fc.property(
        fc.array(entryArb, { maxLength: 10 }),
        fc.constantFrom("#", ";", "  #", "\t;"),
        fc.string({ maxLength: 10 }).map((s) => s.replace(/[\r\n]/g, "")),
        (entries, mark, junk) => {
          const plain = "[Exec]\n" + entries.map((e) => `${e.key}=${e.value}\n`).join("");
          const commented = `${mark}${junk}\n[Exec]\n` + entries.map((e) => `${mark} ${junk}\n${e.key}=${e.value}\n`).join("");
          const a = parseUnitFile(plain, F).entries.map((e) => [e.key, e.value]);
          const b = parseUnitFile(commented, F).entries.map((e) => [e.key, e.value]);
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 500 },
    );
  });
});
