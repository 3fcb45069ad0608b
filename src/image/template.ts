/**
 * --template=DIR: populate a missing or empty container directory from a template tree, once.
 * The copy is made under a temporary sibling `.#NAME-XXXXXXXX` (the `.#` prefix is reserved
 * for temporaries in the image pool) and renamed into place, so an interrupted copy never
 * leaves a half-populated container. On btrfs, when the template is a subvolume, the copy is a
 * snapshot; elsewhere `cp -a --reflink=auto` (copy-on-write where the file system can).
 */
import * as fs from "node:fs";
import { basename, dirname } from "node:path";
import { MachinaError } from "../errors.ts";

function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

function kind(path: string): "dir" | "other" | undefined {
  try {
    return fs.lstatSync(path).isDirectory() ? "dir" : "other";
  } catch {
    return undefined;
  }
}

// Bun.spawnSync, not node:child_process: that module costs milliseconds to load on every start.
function run(argv: string[]): { ok: boolean; stderr: string } {
  const r = Bun.spawnSync(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  return { ok: r.exitCode === 0, stderr: r.stderr.toString().trim() };
}

function fsType(path: string): string {
  return Bun.spawnSync(["stat", "-f", "-c", "%T", path], { stdin: "ignore", stdout: "pipe", stderr: "ignore" }).stdout.toString().trim();
}

function isBtrfsSubvolume(path: string): boolean {
  if (fsType(path) !== "btrfs") return false;
  return fs.statSync(path).ino === 256; // the root of a subvolume
}

/** Returns true when the directory was populated, false when it already had content. */
export function populateFromTemplate(template: string, directory: string): boolean {
  const k = kind(directory);
  if (k === "other") throw new MachinaError("E_INVALID", `"${directory}" exists and is not a directory`, { path: directory });
  if (k === "dir" && fs.readdirSync(directory).length > 0) return false;
  if (kind(template) !== "dir")
    throw new MachinaError("E_NOT_FOUND", `template "${template}" is not a directory`, { flag: "--template", path: template });
  const parent = dirname(directory);
  if (kind(parent) !== "dir") throw new MachinaError("E_NOT_FOUND", `directory "${parent}" does not exist`, { path: parent });
  const tmp = `${parent}/.#${basename(directory)}-${randomHex(4)}`;
  try {
    const parentOnBtrfs = fsType(parent) === "btrfs";
    const r = parentOnBtrfs && isBtrfsSubvolume(template)
      ? run(["btrfs", "subvolume", "snapshot", template, tmp])
      : run(["cp", "-a", "--reflink=auto", "--", template, tmp]);
    if (!r.ok)
      throw new MachinaError("E_SYSTEM", `failed to copy the template "${template}" to "${tmp}": ${r.stderr || "copy failed"}`, { path: template });
    if (k === "dir") fs.rmdirSync(directory); // empty: replaced by the copy
    fs.renameSync(tmp, directory);
  } catch (e) {
    if (kind(tmp) !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return true;
}
