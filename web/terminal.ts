/**
 * The dashboard's terminal (loaded only when opened: dist/web/terminal.js, with xterm.js): a
 * machine's shell over machinad's WebSocket (GET /v1/machines/{name}/shell): binary frames both
 * ways, a resize message when the window changes, the exit status at the end.
 */
import { Terminal } from "@xterm/xterm";

export interface OpenTerminal {
  close(): void;
}

/** Columns and rows that fit `el` (xterm's cell of the default font is about 9×17 pixels). */
function fit(el: HTMLElement): { cols: number; rows: number } {
  return { cols: Math.max(20, Math.min(300, Math.floor((el.clientWidth - 12) / 9))), rows: 24 };
}

export function openTerminal(el: HTMLElement, shellPath: string, extraQuery: string, onEnd: (text: string) => void): OpenTerminal {
  if (document.querySelector('link[href="/assets/xterm.css"]') === null) {
    const css = Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/assets/xterm.css" });
    document.head.append(css);
  }
  const size = fit(el);
  const term = new Terminal({ cols: size.cols, rows: size.rows, convertEol: false, cursorBlink: true, fontSize: 14 });
  term.open(el);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}${shellPath}?rows=${size.rows}&cols=${size.cols}${extraQuery !== "" ? `&${extraQuery}` : ""}`);
  ws.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") {
      term.write(new Uint8Array(e.data as ArrayBuffer));
      return;
    }
    const m = JSON.parse(e.data) as { type: string; status?: number; message?: string };
    if (m.type === "exit") onEnd(`The shell ended with status ${m.status}.`);
    if (m.type === "error") onEnd(`The shell could not start: ${m.message}`);
  };
  ws.onclose = (e) => {
    if (e.code !== 1000) onEnd(`The terminal's connection closed (${e.code}${e.reason ? `: ${e.reason}` : ""}).`);
  };
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
  const onResize = () => {
    const s = fit(el);
    if (s.cols === term.cols) return;
    term.resize(s.cols, s.rows);
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", rows: s.rows, cols: s.cols }));
  };
  window.addEventListener("resize", onResize);
  term.focus();
  return {
    close() {
      window.removeEventListener("resize", onResize);
      ws.close();
      term.dispose();
    },
  };
}
