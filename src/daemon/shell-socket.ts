/**
 * The shell route's WebSocket (GET /v1/machines/{name}/shell): a machine's shell on a host
 * pseudo-terminal (MachineService.shell, the helper's `enter` confined as machinactl shell),
 * relayed both ways. Binary frames: the terminal's output to the client, keystrokes from it.
 * Text frames from the client: {"type":"resize","rows":R,"cols":C} (or {"type":"input","data":S}).
 * The last frame to the client: {"type":"exit","status":N}, then the socket closes. A client
 * that goes away hangs the shell up (SIGHUP to its session), as a closed terminal does.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { PtyChild } from "../host/host.ts";

export interface ShellSocketData {
  /** made when the socket opens (the upgrade already checked the machine) */
  start: () => PtyChild;
  pty?: PtyChild;
  closed?: boolean;
}

const SIGHUP = 1;
const SIGKILL = 9;
/** the terminal's size limits (rows, columns) */
const MAX_SIZE = 999;

type Control = { type: "resize"; rows: number; cols: number } | { type: "input"; data: string };

function parseControl(text: string): Control | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const size = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 1 && x <= MAX_SIZE;
  if (o.type === "resize" && size(o.rows) && size(o.cols)) return { type: "resize", rows: o.rows as number, cols: o.cols as number };
  if (o.type === "input" && typeof o.data === "string") return { type: "input", data: o.data };
  return undefined;
}

export function shellWebSocket(log: (event: string, fields: Record<string, unknown>) => void): WebSocketHandler<ShellSocketData> {
  return {
    open(ws: ServerWebSocket<ShellSocketData>) {
      let pty: PtyChild;
      try {
        pty = ws.data.start();
      } catch (e) {
        ws.send(JSON.stringify({ type: "error", message: e instanceof Error ? e.message : String(e) }));
        ws.close(1011, "the shell could not start");
        return;
      }
      ws.data.pty = pty;
      pty.onData((chunk) => {
        if (ws.data.closed) return;
        // backpressure: stop reading the terminal until the socket drained
        if (ws.send(chunk) === -1) pty.pause();
      });
      void pty.exited.then((status) => {
        if (ws.data.closed) return;
        ws.send(JSON.stringify({ type: "exit", status }));
        ws.close(1000, "the shell ended");
      });
    },
    message(ws, message) {
      const pty = ws.data.pty;
      if (pty === undefined) return;
      if (typeof message !== "string") {
        pty.write(new Uint8Array(message));
        return;
      }
      const c = parseControl(message);
      if (c === undefined) {
        ws.close(1003, "a text frame is a resize or input message");
        return;
      }
      if (c.type === "resize") pty.resize(c.rows, c.cols);
      else pty.write(new TextEncoder().encode(c.data));
    },
    drain(ws) {
      ws.data.pty?.resume();
    },
    close(ws) {
      ws.data.closed = true;
      const pty = ws.data.pty;
      if (pty === undefined) return;
      pty.resume(); // read to the end, so that it can be reaped
      pty.kill(SIGHUP);
      const t = setTimeout(() => pty.kill(SIGKILL), 5000);
      void pty.exited.then(() => clearTimeout(t));
      log("shell-closed", { pid: pty.pid });
    },
  };
}
