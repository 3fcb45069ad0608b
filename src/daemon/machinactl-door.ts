/**
 * machinad's side of machinactl's native front end (native/front.c built with -DFRONT_MACHINACTL;
 * the wire is src/oci-runtime/front-door.ts, the socket src/daemon/front-end.ts): the verbs that
 * only read the registry or enter a machine — list, status, show, shell, exec — run here, warm,
 * for the front end's process, with machinactl's own code (src/cli/machinactl/main.ts) on the
 * core (never machinad's API, which is this process). shell and exec end with 'x': the front end
 * becomes `machina-helper enter` from machinad's sealed copy, as machinactl does itself. Every
 * other verb, a shell on the host (.host) and a command line machinactl would refuse get 'F': the
 * full machinactl runs them in the front end's process, with its own messages.
 */
import type { Server } from "node:net";
import { main } from "../cli/machinactl/main.ts";
import { type MachinactlCommandLine, parseMachinactlCommandLine } from "../cli/machinactl/options.ts";
import { HandOver } from "../host/hand-over.ts";
import { encodeFrame } from "../oci-runtime/front-door.ts";
import { becomeHelper, type FrontConnection, type Log, reportInternalError, serveFrontDoor } from "./front-end.ts";

const PROG = "machinactl";

/** The verbs served here: they read the registry, or enter a machine (the helper runs in the front end). */
export const SERVED_VERBS: ReadonlySet<string> = new Set(["list", "status", "show", "shell", "exec"]);

/** The command line parsed, when it is served here; else why it is the full machinactl's. */
export function servedHere(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): { parsed: MachinactlCommandLine } | { why: string } {
  let parsed: MachinactlCommandLine;
  try {
    parsed = parseMachinactlCommandLine(argv, env);
  } catch {
    return { why: "a command line machinactl refuses (its message is its own)" };
  }
  if (parsed.list !== undefined || parsed.options.help || parsed.options.version) return { parsed }; // text only
  const verb = parsed.verb ?? "list";
  if (!SERVED_VERBS.has(verb)) return { why: `the verb "${verb}"` };
  if (verb === "shell" && ["", ".host"].includes((parsed.args[0] ?? ".host").replace(/^.*@/, ""))) return { why: "a shell on the host" };
  return { parsed };
}

async function run(c: FrontConnection, log: Log): Promise<void> {
  const { request, host, send } = c;
  // the core in this process: machinad's API is machinad
  const env = { ...request.env, MACHINA_NO_DAEMON: "1" };
  const served = servedHere(request.argv, env);
  if ("why" in served) {
    send(encodeFrame("F", served.why));
    return;
  }
  request.env = env;
  const io = {
    out: (text: string) => void (text !== "" && send(encodeFrame("O", text))),
    err: (text: string) => void (text !== "" && send(encodeFrame("E", text))),
  };
  try {
    send(encodeFrame("X", String(await main(request.argv, host, io, served.parsed))));
  } catch (e) {
    if (!(e instanceof HandOver)) reportInternalError(c, log, "machinactl-door-failed", PROG, e);
    else if (e.to.kind === "full-program") send(encodeFrame("F", e.to.reason));
    // nothing was set up for it: an exec that fails is the front end's to report ('N')
    else await becomeHelper(c, e.to.path, e.to.argv, e.to.spec);
  }
}

/** Listen on PATH (created 0600); returns the server, closed by machinad's shutdown. */
export function serveMachinactlDoor(path: string, log: Log, fd?: number): Promise<Server> {
  return serveFrontDoor(path, PROG, (c) => run(c, log), fd);
}
