/**
 * machinad's web token: STATE_DIR/web.token (default /run/machina/web.token), 32 random bytes in
 * hex, mode 0600, made when missing; `machinad --new-token` replaces it atomically (a new file
 * renamed over the old one).
 */
import { dirname, join } from "node:path";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";

export const TOKEN_FILE = "web.token";

export function tokenPath(stateDir: string): string {
  return join(stateDir, TOKEN_FILE);
}

/** Write a fresh token to PATH atomically (0600 before it holds the token), and return it. */
export function newToken(host: Host, path: string): string {
  const token = host.randomHex(32);
  host.mkdirp(dirname(path), 0o755); // the state directory: the token file itself is 0600
  const tmp = `${path}.${host.randomHex(6)}.tmp`;
  host.writeFile(tmp, "", 0o600);
  try {
    host.chmod(tmp, 0o600);
    host.writeFile(tmp, token + "\n");
    host.rename(tmp, path, false);
  } catch (e) {
    host.unlink(tmp);
    throw e;
  }
  return token;
}

/** The token in PATH; a new one when the file is missing. */
export function readToken(host: Host, path: string): string {
  const text = host.readFile(path);
  if (text === undefined) return newToken(host, path);
  const token = text.trim();
  if (!/^[0-9a-f]{64}$/.test(token))
    throw new MachinaError("E_INVALID", `token file "${path}" does not hold 64 hex digits; make a new one with machinad --new-token`, { path });
  return token;
}
