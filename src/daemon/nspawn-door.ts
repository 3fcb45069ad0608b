/**
 * machinad's planner for machina-nspawn's native front end (native/front.c; the wire is
 * src/oci-runtime/front-door.ts, the socket src/daemon/front-end.ts): the front end hands over its
 * command line, working directory, environment and terminals; the planner runs machina-nspawn's
 * own planning (src/cli/nspawn.ts planRun) for the front end's process, already loaded and warm,
 * and answers with the output and either an exit code or 'x': the front end becomes the helper,
 * as machina-nspawn does itself (same pid, stdio, cgroup and parent), from machinad's sealed copy.
 * What the planning set up (a network, a raw image's mount, a binfmt claim) is undone here when
 * the front end goes away before it acknowledges the exec ('A'), or says that the exec failed
 * ('N'). A --template copy that the planning asks for (CopyTemplateFirst) is made with its commands
 * run without blocking machinad, then the run is planned again; should the copy be wanted still,
 * the answer is 'F' (the front end runs the full machina-nspawn) rather than machinad held up.
 */
import type { Server } from "node:net";
import { type NspawnIo, planRun } from "../cli/nspawn.ts";
import { renderError } from "../errors.ts";
import { populateFromTemplateAsync } from "../image/template.ts";
import { encodeFdWrite, encodeFrame, encodeSpawn } from "../oci-runtime/front-door.ts";
import { type FrontConnection, type Log, serveFrontDoor } from "./front-end.ts";

const PROG = "machina-nspawn";

async function run({ request, host, sealed, send, nextFrame }: FrontConnection, log: Log): Promise<void> {
  const io: NspawnIo = {
    out: (text) => text !== "" && send(encodeFrame("O", text)),
    err: (text) => text !== "" && send(encodeFrame("E", text)),
    toFd: (fd, text) => send(encodeFrame("W", encodeFdWrite(fd, text))),
    cwd: request.cwd,
    ownStages: false,
    resident: true,
  };
  const plan = (): ReturnType<typeof planRun> | undefined => {
    try {
      return planRun(request.argv, host, io);
    } catch (e) {
      // planRun reports what it expects; this is a bug
      log("nspawn-door-failed", { argv: request.argv, error: e instanceof Error ? e.message : String(e) });
      io.err(`${PROG}: internal error in machinad: ${e instanceof Error ? e.message : String(e)}\n`);
      send(encodeFrame("X", "1"));
      return undefined;
    }
  };
  let outcome = plan();
  if (outcome !== undefined && "copyTemplate" in outcome) {
    // the copy's commands run without blocking machinad; then the planning finds it made
    const { template, directory, stateDir } = outcome.copyTemplate;
    try {
      await populateFromTemplateAsync(host, stateDir, template, directory);
    } catch (e) {
      io.err(`${renderError(PROG, e)}\n`);
      send(encodeFrame("X", "1"));
      return;
    }
    outcome = plan();
  }
  if (outcome === undefined) return;
  if ("exit" in outcome) {
    send(encodeFrame("X", String(outcome.exit)));
    return;
  }
  if ("copyTemplate" in outcome) {
    // emptied again meanwhile: the full machina-nspawn makes it in its own process
    send(encodeFrame("F", outcome.copyTemplate.message));
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
