/**
 * `bun src/cli/docs/generate.ts DIR`: write the man pages (DIR/man/) and the bash completion
 * (DIR/completion/machina) generated from the option and verb tables. Run by scripts/build;
 * scripts/setup installs the results.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { bashCompletion } from "./completion.ts";
import { readFileSync } from "node:fs";
import { OPTIONS_BEGIN, OPTIONS_END, manPages, optionsMarkdown } from "./man.ts";

if (process.argv[2] === "--options-md") {
  // Rewrite the generated part of docs/options.md in place.
  const path = new URL("../../../docs/options.md", import.meta.url).pathname;
  const text = readFileSync(path, "utf8");
  const begin = text.indexOf(OPTIONS_BEGIN.slice(0, 22));
  const end = text.indexOf(OPTIONS_END);
  const next =
    begin >= 0 && end > begin
      ? text.slice(0, begin) + optionsMarkdown() + text.slice(end + OPTIONS_END.length)
      : `${text.trimEnd()}\n\n## Every option\n\n${optionsMarkdown()}\n`;
  writeFileSync(path, next);
  process.exit(0);
}
const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write("usage: generate.ts DIR\n");
  process.exit(2);
}
mkdirSync(`${dir}/man`, { recursive: true });
mkdirSync(`${dir}/completion`, { recursive: true });
for (const [name, text] of Object.entries(manPages())) writeFileSync(`${dir}/man/${name}`, text);
writeFileSync(`${dir}/completion/machina`, bashCompletion());
