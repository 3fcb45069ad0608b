/**
 * machinad's planner for machina-oci's native front end (native/front.c; the wire is
 * src/oci-runtime/front-door.ts, the socket src/daemon/front-end.ts). The front end hands over its
 * command line, working directory and environment; the planner runs the very same machina-oci
 * code (src/cli/oci/main.ts) with that environment, its output sent back, and the helper spawned
 * by the front end (so that the init gets the caller's stdio and parent). Commands or containers
 * that need their own process (run, exec, update, hooks run by start/delete) are answered with
 * 'F': the front end runs the full machina-oci instead. A front end in other namespaces or
 * another root gets 'F' too.
 */
import type { Server } from "node:net";
import { main, NeedsOwnProcess, type OciIo } from "../cli/oci/main.ts";
import { HandOver } from "../host/hand-over.ts";
import { encodeFrame } from "../oci-runtime/front-door.ts";
import { type FrontConnection, type Log, reportInternalError, serveFrontDoor } from "./front-end.ts";

async function plan(c: FrontConnection, log: Log): Promise<void> {
  const { request, host, send } = c;
  const io: OciIo = {
    out: (text) => text !== "" && send(encodeFrame("O", text)),
    err: (text) => text !== "" && send(encodeFrame("E", text)),
    cwd: request.cwd,
    resident: true,
  };
  try {
    const code = await main(request.argv, host, io);
    send(encodeFrame("X", String(code)));
  } catch (e) {
    // (an exec is never machinad's: its host hands it over — the full machina-oci does it in its own process)
    if (e instanceof NeedsOwnProcess || e instanceof HandOver) send(encodeFrame("F", e.message));
    else reportInternalError(c, log, "oci-door-failed", "machina-oci", e);
  }
}

/** Listen on PATH (created 0600); returns the server, closed by machinad's shutdown. */
export function serveOciDoor(path: string, log: Log, fd?: number): Promise<Server> {
  return serveFrontDoor(path, "machina-oci", (c) => plan(c, log), fd);
}
