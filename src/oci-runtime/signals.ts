/** Signal names and numbers as `kill` takes them (runc: "KILL", "SIGKILL", "9"). */
import { constants } from "node:os";
import { MachinaError } from "../errors.ts";

export function parseSignal(text: string): number {
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = text.toUpperCase().startsWith("SIG") ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
    const n = (constants.signals as Record<string, number>)[name];
    if (n !== undefined) return n;
    const rt = /^SIGRTMIN(?:\+([0-9]+))?$/.exec(name);
    if (rt !== null && Number(rt[1] ?? 0) <= 30) return 34 + Number(rt[1] ?? 0);
  }
  throw new MachinaError("E_INVALID", `unknown signal "${text}": a name (TERM, SIGKILL, …) or a number 1-64`, { value: text });
}
