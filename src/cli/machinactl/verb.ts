/** What a machinactl verb is: its name, arity, help line and implementation. */
import type { Host } from "../../host/host.ts";
import type { Paths } from "../../paths.ts";
import type { MachinactlOptions } from "./options.ts";

export interface VerbContext {
  options: MachinactlOptions;
  host: Host;
  paths: Paths;
  env: Readonly<Record<string, string | undefined>>;
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface Verb {
  name: string;
  /** Usage shown in --help, e.g. "clone NAME NAME". */
  usage: string;
  summary: string;
  /** Ids of the options (options.ts MACHINACTL_TABLE) this verb reads, besides the global ones: its --help. */
  options: readonly string[];
  section: "Machine" | "Image" | "Image transfer";
  minArgs: number;
  /** Infinity for "any number". */
  maxArgs: number;
  /** Returns the exit status. */
  run(ctx: VerbContext, args: string[]): number | Promise<number>;
}

/** A "Machine" verb on one or more NAMEs (usage `VERB NAME...`): `act` does the work; the exit status is 0. */
export function namesVerb(name: string, options: readonly string[], summary: string, act: (ctx: VerbContext, names: string[]) => Promise<unknown>): Verb {
  return {
    name,
    options,
    usage: `${name} NAME...`,
    summary,
    section: "Machine",
    minArgs: 1,
    maxArgs: Infinity,
    async run(ctx, args) {
      await act(ctx, args);
      return 0;
    },
  };
}
