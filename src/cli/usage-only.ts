/**
 * Entry point for commands whose verbs are not built yet (machinactl, machinad): they answer
 * --help/--version and refuse every verb with one clear line, never pretending to work.
 */
import { err, out } from "./output.ts";
import { VERSION } from "../paths.ts";

export function usageOnlyMain(prog: string, usage: string, argv: string[]): number {
  const first = argv[0];
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    out(usage);
    return first === undefined ? 1 : 0;
  }
  if (first === "--version") {
    out(`${prog} ${VERSION}\n`);
    return 0;
  }
  err(`${prog}: "${first}" is not implemented yet in this version of machina (see ${prog} --help)\n`);
  return 1;
}
