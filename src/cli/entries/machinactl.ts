// Entry point of the compiled `machinactl` (scripts/build: bun build --compile); bin/machinactl runs the sources.
import { main } from "../machinactl/main.ts";

Promise.resolve(main(process.argv.slice(2))).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`machinactl: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
