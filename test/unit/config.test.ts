/**
 * MACHINA_* variables: declared once (src/config.ts), read only through machinaEnv, listed in
 * docs/options.md from the table. No root.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Glob } from "bun";
import { MACHINA_VARIABLES, machinaEnv, variablesMarkdown } from "../../src/config.ts";

const ROOT = join(import.meta.dir, "../..");
const sources = [...new Glob("src/**/*.ts").scanSync(ROOT)].filter((f) => f !== "src/config.ts");

describe("MACHINA_* variables", () => {
  test("every MACHINA_* name the code mentions is declared; none is read from env directly", () => {
    const undeclared: string[] = [];
    const direct: string[] = [];
    for (const f of sources) {
      const text = readFileSync(join(ROOT, f), "utf8");
      for (const m of text.matchAll(/MACHINA_[A-Z0-9_]+/g)) if (!(m[0] in MACHINA_VARIABLES)) undeclared.push(`${f}: ${m[0]}`);
      for (const m of text.matchAll(/env(?:\(\))?\[\s*["'`]MACHINA_[A-Z0-9_]+/g)) direct.push(`${f}: ${m[0]}`);
    }
    expect(undeclared).toEqual([]);
    expect(direct).toEqual([]);
  });

  test("docs/options.md lists them, generated from the table", () => {
    const docs = readFileSync(join(ROOT, "docs/options.md"), "utf8");
    const between = docs.slice(docs.indexOf("<!-- variables:begin -->") + "<!-- variables:begin -->".length, docs.indexOf("<!-- variables:end -->")).trim();
    expect(between).toBe(variablesMarkdown());
  });

  test("typed values: lists, flags, numbers (a malformed strict one names the variable), bounded numbers fall back", () => {
    expect(machinaEnv({ MACHINA_POOL: "/a::/b" }, "MACHINA_POOL")).toEqual(["/a", "/b"]);
    expect(machinaEnv({}, "MACHINA_POOL")).toBeUndefined();
    expect(machinaEnv({ MACHINA_NO_DAEMON: "1" }, "MACHINA_NO_DAEMON")).toBe(true);
    expect(machinaEnv({ MACHINA_NO_DAEMON: "yes" }, "MACHINA_NO_DAEMON")).toBe(false);
    expect(machinaEnv({ MACHINA_SYSTEMD: "0" }, "MACHINA_SYSTEMD")).toBe(false);
    expect(machinaEnv({ MACHINA_PULL_MAX_BYTES: "1024" }, "MACHINA_PULL_MAX_BYTES")).toBe(1024);
    expect(() => machinaEnv({ MACHINA_PULL_MAX_BYTES: "1k" }, "MACHINA_PULL_MAX_BYTES")).toThrow('invalid MACHINA_PULL_MAX_BYTES="1k": expected a number');
    expect(machinaEnv({ MACHINA_CONSOLE_LOG_KEEP: "500" }, "MACHINA_CONSOLE_LOG_KEEP")).toBeUndefined();
    expect(machinaEnv({ MACHINA_CONSOLE_LOG_KEEP: "5" }, "MACHINA_CONSOLE_LOG_KEEP")).toBe(5);
  });
});
