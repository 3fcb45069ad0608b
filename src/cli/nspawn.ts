/** machina-nspawn: parse, plan, then replace this process by the helper that runs the container. */
import { machinaEnv } from "../config.ts";
import { err, out, toFd } from "./output.ts";
import { MODULES_START_MS } from "./start-clock.ts";
import { renderError } from "../errors.ts";
import { LinuxHost } from "../host/linux.ts";
import type { Host } from "../host/host.ts";
import { paths } from "../paths.ts";
import { prepareContainer } from "../runtime/prepare.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import { encodeSpec, specRecords } from "../spec/wire.ts";
import { NSPAWN_VERSION_TEXT, nspawnHelp } from "./nspawn-help.ts";

const PROG = "machina-nspawn";

/** ms since the epoch, on performance.timeOrigin's clock */
const nowMs = () => performance.timeOrigin + performance.now();

/**
 * The Bun side's stages on the status fd, as the helper's lines ("t": µs since the epoch): the
 * runtime's start, module loading, the start of main, the plan done (bench/whole.ts splits a run by them).
 */
function stageLines(stamps: ReadonlyArray<readonly [string, number]>): string {
  return stamps.map(([stage, ms]) => `${JSON.stringify({ stage, t: Math.round(ms * 1000) })}\n`).join("");
}

export function main(argv: string[], host: Host = new LinuxHost()): number {
  const mainAt = nowMs();
  try {
    const parsed = parseNspawnCommandLine(argv, host.env(), process.cwd());
    if (parsed.action === "help") {
      out(nspawnHelp());
      return 0;
    }
    if (parsed.action === "list") {
      out(parsed.lines.map((l) => `${l}\n`).join(""));
      return 0;
    }
    if (parsed.action === "version") {
      out(NSPAWN_VERSION_TEXT);
      return 0;
    }
    const env = host.env();
    const p = paths(env);
    const statusFd = machinaEnv(env, "MACHINA_STATUS_FD");
    const planOnly = machinaEnv(env, "MACHINA_PRINT_SPEC");
    const prepared = prepareContainer(host, p, parsed.settings, process.cwd(), {
      prog: PROG,
      ...(statusFd !== undefined ? { statusFd } : {}),
      planOnly,
      onWarning: (w) => err(`${PROG}: ${w}\n`),
    });
    const { spec } = prepared;
    if (planOnly) {
      // Debugging aid: show the plan instead of running it.
      out(
        specRecords(spec)
          .map(([name, args]) => JSON.stringify([name, ...args]))
          .join("\n") + "\n",
      );
      prepared.abandon();
      return 0;
    }
    if (!prepared.settings.quiet) {
      err(`Spawning container ${spec.machine} on ${spec.root}.\n`);
      if (spec.console === "interactive") err("Press ^] three times within 1s to kill container.\n");
    }
    try {
      const bytes = encodeSpec(spec);
      if (statusFd !== undefined)
        toFd(
          statusFd,
          stageLines([
            ["bun", performance.timeOrigin],
            ["modules", MODULES_START_MS],
            ["main", mainAt],
            ["planned", nowMs()],
          ]),
        );
      return host.execWithSpec(p.helper, ["machina-helper", "run", "--spec-fd"], bytes);
    } catch (e) {
      throw prepared.abandonAfter(e);
    }
  } catch (error) {
    err(renderError(PROG, error) + "\n");
    return 1;
  }
}
