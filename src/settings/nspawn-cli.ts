/**
 * `machina-nspawn` command line -> Settings. Pure: the caller passes argv and the environment.
 * What each option does is its row of the option table (nspawn-table.ts); this file walks
 * argv and checks the combinations.
 */
import { usageError } from "../errors.ts";
import { getopt } from "./getopt.ts";
import { NSPAWN_OPTIONS } from "./nspawn-options.ts";
import { NSPAWN_ROWS, helpListOf, type CliState, type NspawnAction } from "./nspawn-table.ts";
import { defaultSettings, type Settings } from "./settings.ts";

export { parseVolatile, type NspawnAction } from "./nspawn-table.ts";

export function parseNspawnCommandLine(argv: readonly string[], hostEnv: Readonly<Record<string, string | undefined>>, cwd = "/"): NspawnAction {
  const { options, operands } = getopt(argv, NSPAWN_OPTIONS);
  const s = defaultSettings();
  for (const { id, value, spelling } of options) {
    const row = NSPAWN_ROWS.get(id);
    const apply = row?.cli;
    if (row === undefined || apply === undefined) {
      // Known to systemd-nspawn, but not offered by machina: refused at run time, clearly.
      s.unsupported.push(spelling);
      continue;
    }
    const list = value === "help" ? helpListOf(row) : undefined;
    if (list !== undefined) return { action: "list", lines: [...list] };
    const state: CliState = {
      s,
      value,
      v: value ?? "",
      spelling,
      ctx: { flag: spelling },
      hostEnv,
      cwd,
      set: (key, v) => {
        s[key] = v;
        s.provenance.set(key, { kind: "cli", flag: spelling });
      },
    };
    const action = apply(state);
    if (action !== undefined) return action;
  }
  return checkCombinations(s, operands);
}

/** The rules across options (nspawn's parse_argv tail), then the operands. */
function checkCombinations(s: Settings, operands: string[]): NspawnAction {
  if (s.networkBridge !== undefined && s.networkZone !== undefined)
    throw usageError("--network-bridge= and --network-zone= may not be combined", { flag: "--network-zone" });
  // --private-network may go with it (nspawn accepts the pair: the namespace is joined)
  if (
    s.networkNamespacePath !== undefined &&
    (s.networkVeth ||
      s.networkVethExtra.length > 0 ||
      s.networkBridge !== undefined ||
      s.networkZone !== undefined ||
      s.networkInterfaces.length > 0 ||
      s.networkMacvlan.length > 0 ||
      s.networkIpvlan.length > 0)
  )
    throw usageError("--network-namespace-path= may not be combined with other network options", { flag: "--network-namespace-path" });
  if (s.ephemeral && s.template !== undefined) throw usageError("--ephemeral and --template= may not be combined", { flag: "--ephemeral" });
  if (s.directory !== undefined && s.image !== undefined) throw usageError("--directory= and --image= may not be combined", { flag: "--image" });
  if (s.boot && s.asPid2) throw usageError("--boot and --as-pid2 may not be combined", { flag: "--boot" });
  // Networking options imply a private network, as in nspawn.
  if (
    s.networkVeth ||
    s.networkVethExtra.length > 0 ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkInterfaces.length > 0 ||
    s.networkMacvlan.length > 0 ||
    s.networkIpvlan.length > 0
  )
    s.privateNetwork = true;
  s.command = operands;
  if (operands.length > 0) s.provenance.set("command", { kind: "cli", flag: "COMMAND" });
  return { action: "run", settings: s };
}
