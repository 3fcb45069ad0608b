/**
 * machina-net: what the supervisor undoes on the host when a container is gone (`on_exit`
 * record): its network, and its claim on a foreign architecture's binfmt_misc entry
 * (src/runtime/binfmt.ts); and a manual sweep. Not a user command (see docs/networking.md).
 *
 *   machina-net teardown [--state-dir DIR] [--token TOKEN] NAME
 *   machina-net sweep [--state-dir DIR]
 */
import { err } from "./output.ts";
import { renderError } from "../errors.ts";
import { LinuxHost } from "../host/linux.ts";
import type { Host } from "../host/host.ts";
import { paths } from "../paths.ts";
import { sweepNetworks, teardownNetwork } from "../net/setup.ts";
import { releaseBinfmt } from "../runtime/binfmt.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";

const PROG = "machina-net";

export function main(argv: string[], host: Host = new LinuxHost()): number {
  // The supervisor runs us with an empty environment.
  process.env["PATH"] ??= DEFAULT_PATH;
  try {
    const args = [...argv];
    const verb = args.shift();
    let stateDir = paths(host.env()).stateDir;
    if (args[0] === "--state-dir") {
      args.shift();
      stateDir = args.shift() ?? stateDir;
    }
    let token: string | undefined;
    if (verb === "teardown" && args[0] === "--token") {
      args.shift();
      token = args.shift();
    }
    if (verb === "teardown" && args.length === 1) {
      try {
        teardownNetwork(host, stateDir, args[0]!, token);
      } finally {
        releaseBinfmt(host, stateDir, args[0]!);
      }
      return 0;
    }
    if (verb === "sweep" && args.length === 0) {
      for (const name of sweepNetworks(host, stateDir)) err(`${PROG}: removed the stale network of "${name}"\n`);
      for (const entry of releaseBinfmt(host, stateDir, undefined)) err(`${PROG}: removed the unused binfmt_misc entry "${entry}"\n`);
      return 0;
    }
    err(`usage: ${PROG} teardown [--state-dir DIR] [--token TOKEN] NAME | sweep [--state-dir DIR]\n`);
    return 2;
  } catch (e) {
    err(renderError(PROG, e) + "\n");
    return 1;
  }
}
