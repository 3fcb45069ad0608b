/**
 * A getopt_long-compatible argument parser, as systemd's tools use it ("+" mode: option
 * parsing stops at the first operand). Rules matched:
 *  - short options bundle (`-bq`), a short option's argument may be attached (`-Dfoo`) or be
 *    the next word (`-D foo`), also inside a bundle (`-bD foo`);
 *  - long options take `--name=value` or `--name value` (required arguments only), and may be
 *    abbreviated to any unambiguous prefix (`--direc=foo`);
 *  - optional arguments are only taken in the attached form (`--volatile=yes`, `-Ufoo`);
 *  - `--` ends the options; a lone `-` is an operand; the first operand ends option parsing.
 */
import { usageError } from "../errors.ts";

export type ArgKind = "none" | "required" | "optional";

export interface OptionDef {
  /** Stable identifier the caller switches on. */
  id: string;
  long?: string;
  short?: string;
  arg: ArgKind;
}

/** One row of an option table: `option("directory", "directory", "D", "required")`. */
export function option(id: string, long: string | undefined, short: string | undefined, arg: ArgKind): OptionDef {
  return { id, ...(long ? { long } : {}), ...(short ? { short } : {}), arg };
}

export interface ParsedOption {
  id: string;
  /** The argument, if any. */
  value: string | undefined;
  /** How the user wrote the option (`-D`, `--directory`), for messages. */
  spelling: string;
}

export interface GetoptResult {
  options: ParsedOption[];
  /** Everything from the first operand on, verbatim. */
  operands: string[];
}

export interface GetoptMode {
  /**
   * GNU permutation (machinectl, systemctl): options may follow operands. `stopWhen` is asked
   * after each operand; when it returns true the rest of argv is taken verbatim (as
   * machinectl does for `shell NAME COMMAND...`).
   */
  permute?: boolean;
  stopWhen?: (operands: readonly string[]) => boolean;
}

export function getopt(argv: readonly string[], defs: readonly OptionDef[], mode: GetoptMode = {}): GetoptResult {
  const byShort = new Map<string, OptionDef>();
  const longs: OptionDef[] = [];
  for (const def of defs) {
    if (def.short) byShort.set(def.short, def);
    if (def.long) longs.push(def);
  }

  const options: ParsedOption[] = [];
  const operands: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const word = argv[i]!;
    if (word === "--") {
      i++;
      break;
    }
    if (!word.startsWith("-") || word === "-") {
      if (!mode.permute) break;
      operands.push(word);
      i++;
      if (mode.stopWhen?.(operands)) break;
      continue;
    }

    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      const name = eq === -1 ? word.slice(2) : word.slice(2, eq);
      const attached = eq === -1 ? undefined : word.slice(eq + 1);
      const def = findLong(name, longs);
      const spelling = `--${def.long}`;
      i++;
      if (def.arg === "none") {
        if (attached !== undefined) throw usageError(`option '${spelling}' doesn't allow an argument`, { flag: spelling });
        options.push({ id: def.id, value: undefined, spelling });
      } else if (def.arg === "optional") {
        options.push({ id: def.id, value: attached, spelling });
      } else if (attached !== undefined) {
        options.push({ id: def.id, value: attached, spelling });
      } else {
        if (i >= argv.length) throw usageError(`option '${spelling}' requires an argument`, { flag: spelling });
        options.push({ id: def.id, value: argv[i]!, spelling });
        i++;
      }
      continue;
    }

    // A bundle of short options.
    i++;
    for (let j = 1; j < word.length; j++) {
      const ch = word[j]!;
      const def = byShort.get(ch);
      const spelling = `-${ch}`;
      if (!def) throw usageError(`invalid option -- '${ch}'`, { flag: spelling });
      if (def.arg === "none") {
        options.push({ id: def.id, value: undefined, spelling });
        continue;
      }
      const rest = word.slice(j + 1);
      if (rest.length > 0) {
        options.push({ id: def.id, value: rest, spelling });
      } else if (def.arg === "optional") {
        options.push({ id: def.id, value: undefined, spelling });
      } else {
        if (i >= argv.length) throw usageError(`option requires an argument -- '${ch}'`, { flag: spelling });
        options.push({ id: def.id, value: argv[i]!, spelling });
        i++;
      }
      break;
    }
  }
  return { options, operands: [...operands, ...argv.slice(i)] };
}

function findLong(name: string, longs: readonly OptionDef[]): OptionDef {
  const exact = longs.find((d) => d.long === name);
  if (exact) return exact;
  const candidates = name.length > 0 ? longs.filter((d) => d.long!.startsWith(name)) : [];
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length === 0) throw usageError(`unrecognized option '--${name}'`, { flag: `--${name}` });
  // Prefixes of several options are ambiguous unless they all mean the same option.
  const ids = new Set(candidates.map((d) => d.id));
  if (ids.size === 1) return candidates[0]!;
  const list = candidates.map((d) => `'--${d.long}'`).join(" ");
  throw usageError(`option '--${name}' is ambiguous; possibilities: ${list}`, { flag: `--${name}` });
}
