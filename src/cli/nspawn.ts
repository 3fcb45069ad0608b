/** machina-nspawn: parse, plan, then replace this process by the helper that runs the container. */
import { machinaEnv } from "../config.ts";
import { err, out, toFd } from "./output.ts";
import { MODULES_START_MS } from "./start-clock.ts";
import { renderError } from "../errors.ts";
import { LinuxHost } from "../host/linux.ts";
import type { Host } from "../host/host.ts";
import { paths } from "../paths.ts";
import { CopyTemplateFirst, prepareContainer } from "../runtime/prepare.ts";
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

/** Where a run's output goes and whose working directory it is: this process's, or a front end's (src/daemon/nspawn-door.ts). */
export interface NspawnIo {
  out(text: string): void;
  err(text: string): void;
  /** To an fd of the caller's (MACHINA_STATUS_FD). */
  toFd(fd: number, text: string): void;
  cwd: string;
  /** Stages before main on the status fd: this process's runtime start and module loading (not a served run's). */
  ownStages: boolean;
  /** Planned in machinad for a front end (PrepareOptions.resident). */
  resident?: boolean;
}

/** What a run comes to: an exit code, or the helper to exec with its spec (and the undo when it will not run). */
export type NspawnOutcome =
  | { exit: number }
  /** resident: make this --template copy, then plan again (nothing was done) */
  | { copyTemplate: CopyTemplateFirst }
  | {
      exec: { helper: string; argv: string[]; spec: Uint8Array };
      /** The helper will not run after all: undo what was set up for it; returns the error to report. */
      abandonAfter(cause: unknown): unknown;
    };

const HELPER_ARGV = ["machina-helper", "run", "--spec-fd"];

/** Parse, plan and set up what the helper needs; everything but the exec. */
export function planRun(argv: string[], host: Host, io: NspawnIo): NspawnOutcome {
  const mainAt = nowMs();
  try {
    const parsed = parseNspawnCommandLine(argv, host.env(), io.cwd);
    if (parsed.action === "help") {
      io.out(nspawnHelp());
      return { exit: 0 };
    }
    if (parsed.action === "list") {
      io.out(parsed.lines.map((l) => `${l}\n`).join(""));
      return { exit: 0 };
    }
    if (parsed.action === "version") {
      io.out(NSPAWN_VERSION_TEXT);
      return { exit: 0 };
    }
    const env = host.env();
    const p = paths(env);
    const statusFd = machinaEnv(env, "MACHINA_STATUS_FD");
    const planOnly = machinaEnv(env, "MACHINA_PRINT_SPEC");
    const prepared = prepareContainer(host, p, parsed.settings, io.cwd, {
      prog: PROG,
      ...(statusFd !== undefined ? { statusFd } : {}),
      planOnly,
      ...(io.resident ? { resident: true } : {}),
      onWarning: (w) => io.err(`${PROG}: ${w}\n`),
    });
    const { spec } = prepared;
    if (planOnly) {
      // Debugging aid: show the plan instead of running it.
      io.out(
        specRecords(spec)
          .map(([name, args]) => JSON.stringify([name, ...args]))
          .join("\n") + "\n",
      );
      prepared.abandon();
      return { exit: 0 };
    }
    try {
      if (!prepared.settings.quiet) {
        io.err(`Spawning container ${spec.machine} on ${spec.root}.\n`);
        if (spec.console === "interactive") io.err("Press ^] three times within 1s to kill container.\n");
      }
      const bytes = encodeSpec(spec);
      if (statusFd !== undefined) {
        const own: Array<readonly [string, number]> = io.ownStages
          ? [
              ["bun", performance.timeOrigin],
              ["modules", MODULES_START_MS],
            ]
          : [];
        io.toFd(statusFd, stageLines([...own, ["main", mainAt], ["planned", nowMs()]]));
      }
      return { exec: { helper: p.helper, argv: HELPER_ARGV, spec: bytes }, abandonAfter: (cause) => prepared.abandonAfter(cause) };
    } catch (e) {
      throw prepared.abandonAfter(e);
    }
  } catch (error) {
    if (error instanceof CopyTemplateFirst) return { copyTemplate: error };
    io.err(renderError(PROG, error) + "\n");
    return { exit: 1 };
  }
}

/** machina-nspawn in its own process: plan, then become the helper. */
export function main(argv: string[], host: Host = new LinuxHost()): number {
  const outcome = planRun(argv, host, { out, err, toFd, cwd: process.cwd(), ownStages: true });
  if ("exit" in outcome) return outcome.exit;
  if ("copyTemplate" in outcome) throw new Error(`internal: ${outcome.copyTemplate.message}`); // never without io.resident
  const { helper, argv: helperArgv, spec } = outcome.exec;
  try {
    return host.execWithSpec(helper, helperArgv, spec);
  } catch (e) {
    err(renderError(PROG, outcome.abandonAfter(e)) + "\n");
    return 1;
  }
}
