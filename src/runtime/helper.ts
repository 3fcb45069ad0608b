/** The native helper must be there before anything is planned around it: one check, one message. */
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";

export function requireHelper(host: Host, helper: string): void {
  if (host.lstat(helper) === undefined)
    throw new MachinaError("E_NOT_FOUND", `helper "${helper}" not found`, { path: helper }, "build it with: make -C native");
}
