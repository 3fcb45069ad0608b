/**
 * How machina's own commands are started: from the sources, Bun must not read the working
 * directory's .env or bunfig.toml (src/paths.ts BUN_NO_AUTOLOAD). No root.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BUN_NO_AUTOLOAD, ownCommand, REPO_ROOT } from "../../src/paths.ts";

describe("no .env, no bunfig.toml from the working directory", () => {
  test("every bin/ script's shebang passes BUN_NO_AUTOLOAD; so does ownCommand from the sources", () => {
    const scripts = readdirSync(join(REPO_ROOT, "bin")).filter((f) => !f.endsWith(".cjs"));
    expect(scripts.length).toBeGreaterThan(4);
    for (const f of scripts)
      expect({ f, line: readFileSync(join(REPO_ROOT, "bin", f), "utf8").split("\n")[0] }).toEqual({
        f,
        line: `#!/usr/bin/env -S bun ${BUN_NO_AUTOLOAD.join(" ")}`,
      });
    expect(ownCommand("machina-net").slice(1)).toEqual([...BUN_NO_AUTOLOAD, join(REPO_ROOT, "bin/machina-net")]);
  });

  test("scripts/build compiles every command without autoloading either", () => {
    const build = readFileSync(join(REPO_ROOT, "scripts/build"), "utf8");
    const compiles = build.split("\n").filter((l) => l.includes("--compile "));
    expect(compiles.length).toBeGreaterThanOrEqual(4);
    for (const l of compiles) expect(l).toContain('"${NO_AUTOLOAD[@]}"');
    expect(build).toContain("NO_AUTOLOAD=(--no-compile-autoload-dotenv --no-compile-autoload-bunfig)");
  });
});
