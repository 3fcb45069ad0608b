/**
 * --template=DIR: populate a missing or empty container directory from a template tree, once.
 * The copy is made under a temporary sibling `.#NAME-XXXXXXXX` (pool.ts's temporaries: the
 * `.#` prefix is reserved for them, and a guard lock lets a later sweep remove one left by a
 * killed process) and renamed into place, so an interrupted copy never leaves a half-populated
 * container. The copy is `machinactl clone`'s (ops.ts copyTree): on btrfs, when the template is
 * a subvolume, a snapshot; elsewhere `cp -a --reflink=auto` (copy-on-write where the file
 * system can). Every effect goes through the Host.
 */
import { basename, dirname } from "node:path";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { Reverter } from "../reverter.ts";
import { copyTreeSteps, runSteps, runStepsAsync, type Steps } from "./ops.ts";
import { beginTemporary } from "./pool.ts";

/** Would populateFromTemplate copy? (the directory is missing or empty; it throws for anything else) */
export function templateWanted(host: Host, directory: string): boolean {
  const k = host.lstat(directory);
  return k === undefined || (k === "dir" && host.readdir(directory).length === 0);
}

/** Returns true when the directory was populated, false when it already had content. */
export function populateFromTemplate(host: Host, stateDir: string, template: string, directory: string): boolean {
  return runSteps(host, populateSteps(host, stateDir, template, directory));
}

/** populateFromTemplate, the copy not blocking this process (machinad's planner for machina-nspawn's front end). */
export function populateFromTemplateAsync(host: Host, stateDir: string, template: string, directory: string): Promise<boolean> {
  return runStepsAsync(host, populateSteps(host, stateDir, template, directory));
}

function* populateSteps(host: Host, stateDir: string, template: string, directory: string): Steps<boolean> {
  const k = host.lstat(directory);
  if (k !== undefined && k !== "dir") throw new MachinaError("E_INVALID", `"${directory}" exists and is not a directory`, { path: directory });
  if (k === "dir" && host.readdir(directory).length > 0) return false;
  if (host.lstat(template) !== "dir")
    throw new MachinaError("E_NOT_FOUND", `template "${template}" is not a directory`, { flag: "--template", path: template });
  const parent = dirname(directory);
  if (host.lstat(parent) !== "dir") throw new MachinaError("E_NOT_FOUND", `directory "${parent}" does not exist`, { path: parent });
  const tmp = beginTemporary(host, stateDir, parent, basename(directory));
  const r = new Reverter();
  r.add("discard the temporary copy", () => tmp.discard());
  try {
    yield* copyTreeSteps(host, template, tmp.path, { fds: [tmp.lock.fd], what: "copy the template" });
    if (k === "dir") host.removeDirTree(directory); // empty: replaced by the copy
    tmp.commit(directory);
    r.commit();
    tmp.release();
  } catch (e) {
    throw r.fail(e);
  }
  return true;
}
