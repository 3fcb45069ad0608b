// Shared by the commands in bin/: run the bundled build of a command (dist/NAME.js, made by
// scripts/build) when it is at least as new as every source file, else the TypeScript
// sources themselves. The bundle (with Bun bytecode) starts several milliseconds faster,
// and a stale bundle can never run: editing a source file makes the sources win again.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");

function newestSource(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${entry.name}`;
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

module.exports = function launch(name, source) {
  const bundle = `${root}/dist/${name}.js`;
  let useBundle = false;
  try {
    useBundle = fs.statSync(bundle).mtimeMs >= newestSource(`${root}/src`);
  } catch {
    useBundle = false;
  }
  const mod = require(useBundle ? bundle : `${root}/${source}`);
  const status = mod.main(process.argv.slice(2));
  if (typeof status === "number") process.exit(status);
  status.then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${name}: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
};
