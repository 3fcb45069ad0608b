/**
 * machinad's planner for machina-nspawn's native front end (native/front.c; the wire is
 * src/oci-runtime/front-door.ts, the socket src/daemon/front-end.ts): the front end hands over its
 * command line, working directory, environment and terminals; the planner runs machina-nspawn's
 * own planning (src/cli/nspawn.ts planRun) for the front end's process, already loaded and warm,
 * and answers with the output and either an exit code or 'x': the front end becomes the helper,
 * as machina-nspawn does itself (same pid, stdio, cgroup and parent), from machinad's sealed copy.
 * What the planning set up (a network, a raw image's mount, a binfmt claim) is undone here when
 * the front end goes away before it acknowledges the exec ('A'), or says that the exec failed ('N'). A --template copy is made first
 * with its commands run without blocking machinad; should one still be wanted when the planning
 * runs, the answer is 'F' (the front end runs the full machina-nspawn) rather than machinad held up.
 */
import type { Server } from "node:net";
import { type NspawnIo, planRun } from "../cli/nspawn.ts";
import { machinaEnv } from "../config.ts";
import { renderError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { populateFromTemplateAsync, templateWanted } from "../image/template.ts";
import { paths } from "../paths.ts";
import { chooseRoot } from "../runtime/prepare.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import { encodeFdWrite, encodeFrame, encodeSpawn } from "../oci-runtime/front-door.ts";
import { type FrontConnection, type Log, serveFrontDoor } from "./front-end.ts";

const PROG = "machina-nspawn";

/**
 * --template with a copy to make: made first, its commands not blocking machinad (the planning
 * then finds the directory populated). Anything unusual is left to planRun, which reports it
 * (or answers NeedsOwnProcess when the copy is still to be made).
 */
async function templateFirst(host: Host, argv: string[], cwd: string): Promise<void> {
  let parsed: ReturnType<typeof parseNspawnCommandLine>;
  try {
    parsed = parseNspawnCommandLine(argv, host.env(), cwd);
  } catch {
    return;
  }
  if (parsed.action !== "run") return;
  const s = parsed.settings;
  if (s.template === undefined || s.ociBundle !== undefined || machinaEnv(host.env(), "MACHINA_PRINT_SPEC")) return;
  const p = paths(host.env());
  let chosen: ReturnType<typeof chooseRoot>;
  try {
    chosen = chooseRoot(s, host, p.pool, cwd);
  } catch {
    return;
  }
  if ("directory" in chosen && templateWanted(host, chosen.directory)) await populateFromTemplateAsync(host, p.stateDir, s.template, chosen.directory);
}

async function run({ request, host, sealed, send, nextFrame }: FrontConnection, log: Log): Promise<void> {
  const io: NspawnIo = {
    out: (text) => text !== "" && send(encodeFrame("O", text)),
    err: (text) => text !== "" && send(encodeFrame("E", text)),
    toFd: (fd, text) => send(encodeFrame("W", encodeFdWrite(fd, text))),
    cwd: request.cwd,
    ownStages: false,
    resident: true,
  };
  try {
    await templateFirst(host, request.argv, request.cwd);
  } catch (e) {
    io.err(`${renderError(PROG, e)}\n`);
    send(encodeFrame("X", "1"));
    return;
  }
  let outcome: ReturnType<typeof planRun>;
  try {
    outcome = planRun(request.argv, host, io);
  } catch (e) {
    // planRun reports what it expects; this is a bug
    log("nspawn-door-failed", { argv: request.argv, error: e instanceof Error ? e.message : String(e) });
    io.err(`${PROG}: internal error in machinad: ${e instanceof Error ? e.message : String(e)}\n`);
    send(encodeFrame("X", "1"));
    return;
  }
  if ("exit" in outcome) {
    send(encodeFrame("X", String(outcome.exit)));
    return;
  }
  if ("ownProcess" in outcome) {
    send(encodeFrame("F", outcome.ownProcess));
    return;
  }
  const { helper, argv, spec } = outcome.exec;
  // the helper from machinad's sealed copy (no copy per start, no second exec); the helper's
  // environment is empty, as when machina-nspawn executes it
  send(encodeFrame("x", encodeSpawn([sealed.pathFor(helper), ...argv], {}, spec)));
  const ack = await nextFrame();
  // after 'A' the socket closes with the front end's exec (close-on-exec); 'N': the exec failed
  const failed = ack?.type === "A" ? (await nextFrame())?.type === "N" : true;
  if (!failed) return;
  const cause = new Error(
    ack?.type === "A" ? `the front end (pid ${request.pid}) could not run the helper` : `the front end (pid ${request.pid}) went away before it ran the helper`,
  );
  const result = outcome.abandonAfter(cause);
  log("nspawn-door-abandoned", { argv: request.argv, pid: request.pid, error: renderError(PROG, result) });
}

/** Listen on PATH (created 0600); returns the server, closed by machinad's shutdown. */
export function serveNspawnDoor(path: string, log: Log): Promise<Server> {
  return serveFrontDoor(path, PROG, (c) => run(c, log));
}
