// Entry point of the compiled `machina-nspawn` (scripts/build: bun build --compile); bin/machina-nspawn runs the sources.
import "../start-clock.ts"; // first: the moment module loading begins
import { main } from "../nspawn.ts";

Promise.resolve(main(process.argv.slice(2))).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`machina-nspawn: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
