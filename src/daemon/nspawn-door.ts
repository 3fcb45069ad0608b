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
import { encodeFdWrite, encodeFrame } from "../oci-runtime/front-door.ts";
import { becomeHelper, type FrontConnection, type Log, reportInternalError, serveFrontDoor } from "./front-end.ts";

const PROG = "machina-nspawn";

async function run(c: FrontConnection, log: Log): Promise<void> {
  const { request, host, send } = c;
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
      reportInternalError(c, log, "nspawn-door-failed", PROG, e);
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
  const failed = await becomeHelper(c, helper, argv, spec);
  if (failed === undefined) return;
  const cause = new Error(
    failed === "exec failed"
      ? `the front end (pid ${request.pid}) could not run the helper`
      : `the front end (pid ${request.pid}) went away before it ran the helper`,
  );
  const result = outcome.abandonAfter(cause);
  log("nspawn-door-abandoned", { argv: request.argv, pid: request.pid, error: renderError(PROG, result) });
}

/** Listen on PATH (created 0600); returns the server, closed by machinad's shutdown. */
export function serveNspawnDoor(path: string, log: Log, fd?: number): Promise<Server> {
  return serveFrontDoor(path, PROG, (c) => run(c, log), fd);
}
