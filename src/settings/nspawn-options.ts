/**
 * systemd-nspawn 252's command-line options as a getopt table, derived from the option table
 * (nspawn-table.ts). Every option nspawn knows is listed, so that a known option is never
 * reported as "unrecognized".
 */
import type { OptionDef } from "./getopt.ts";
import { NSPAWN_TABLE } from "./nspawn-table.ts";

export const NSPAWN_OPTIONS: readonly OptionDef[] = NSPAWN_TABLE.filter((r) => r.long !== undefined || r.short !== undefined).map((r) => ({
  id: r.id,
  ...(r.long !== undefined ? { long: r.long } : {}),
  ...(r.short !== undefined ? { short: r.short } : {}),
  arg: r.arg,
}));
