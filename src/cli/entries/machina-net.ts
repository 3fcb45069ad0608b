// Entry point of the compiled `machina-net` (scripts/build: bun build --compile, dist/libexec/):
// the supervisor's at-exit command starts in a few milliseconds instead of loading the sources
// through bin/machina-net, which matters when many containers stop at once (bench/density.ts).
import { main } from "../net.ts";

process.exit(main(process.argv.slice(2)));
