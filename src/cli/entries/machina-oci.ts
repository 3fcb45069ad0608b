// Entry point of the compiled `machina-oci` (scripts/build: bun build --compile); bin/machina-oci runs the sources.
import { main } from "../oci/main.ts";

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (e: unknown) => {
    process.stderr.write(`machina-oci: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
