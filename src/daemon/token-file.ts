/**
 * machinad's web token: STATE_DIR/web.token (default /run/machina/web.token), 32 random bytes in
 * hex, mode 0600, made when missing; `machinad --new-token` replaces it atomically (a new file
 * renamed over the old one).
 */
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { MachinaError } from "../errors.ts";

export const TOKEN_FILE = "web.token";

export function tokenPath(stateDir: string): string {
  return join(stateDir, TOKEN_FILE);
}

/** Write a fresh token to PATH atomically (0600 from creation), and return it. */
export function newToken(path: string): string {
  const token = randomBytes(32).toString("hex");
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, token + "\n");
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
  return token;
}

/** The token in PATH; a new one when the file is missing. */
export function readToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return newToken(path);
    throw new MachinaError("E_SYSTEM", `cannot read the token file "${path}": ${(e as Error).message}`, { path });
  }
  const token = text.trim();
  if (!/^[0-9a-f]{64}$/.test(token))
    throw new MachinaError("E_INVALID", `token file "${path}" does not hold 64 hex digits; make a new one with machinad --new-token`, { path });
  return token;
}
