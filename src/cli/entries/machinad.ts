// Entry point of the compiled `machinad` (scripts/build: bun build --compile); bin/machinad runs the sources.
import { main } from "../../daemon/main.ts";

Promise.resolve(main(process.argv.slice(2))).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`machinad: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
