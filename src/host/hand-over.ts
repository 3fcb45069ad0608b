/**
 * What a Host throws instead of replacing its process when that process is not the caller's:
 * machinad's FrontEndHost (src/daemon/front-end.ts) plans for a front end's process, so an exec
 * is handed to that front end ('x'), and a program it does not run for it sends the front end to
 * its full program ('F'). Commands rethrow it past their own error reporting.
 */
export class HandOver extends Error {
  constructor(readonly to: { kind: "helper"; path: string; argv: string[]; spec: Uint8Array } | { kind: "full-program"; reason: string }) {
    super(to.kind === "helper" ? `hand-over: exec ${to.path}` : `hand-over: ${to.reason}`);
  }
}
