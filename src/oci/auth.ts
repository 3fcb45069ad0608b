/**
 * Registry authentication: WWW-Authenticate challenges, credentials from a containers auth.json
 * (the file read here), and the token server's answer.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { MachinaError } from "../errors.ts";
import { zodLine } from "./manifest.ts";
import type { ImageReference } from "./reference.ts";

const invalid = (message: string, value: string) => new MachinaError("E_INVALID", message, { value });

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** A WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` (the first challenge). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = header.match(/^\s*([A-Za-z]+)\s*(.*)$/s);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gy;
  const rest = m[2] ?? "";
  re.lastIndex = 0;
  let pm: RegExpExecArray | null = re.exec(rest);
  while (pm) {
    params[(pm[1] as string).toLowerCase()] = pm[2] !== undefined ? pm[2].replace(/\\(.)/g, "$1") : (pm[3] ?? "");
    if (re.lastIndex >= rest.length) break;
    pm = re.exec(rest);
  }
  return { scheme: (m[1] as string).toLowerCase(), params };
}

const authFileSchema = z.object({
  auths: z.record(z.string(), z.object({ auth: z.string().optional(), username: z.string().optional(), password: z.string().optional() })).optional(),
});

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Credentials for REGISTRY/REPOSITORY from a containers auth.json: the longest matching
 * "registry/namespace" key, then "registry", then docker.io's legacy spellings.
 */
export function credentialsFromAuthFile(path: string, ref: ImageReference): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new MachinaError("E_NOT_FOUND", `--authfile ${path}: cannot read it (${(e as Error).message})`, { file: path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid(`--authfile ${path}: not JSON; allowed is the containers auth.json format {"auths":{"HOST":{"auth":"base64(user:password)"}}}`, path);
  }
  const parsed = authFileSchema.safeParse(json);
  if (!parsed.success) throw invalid(`--authfile ${path}: ${zodLine(parsed.error)}; allowed is {"auths":{"HOST":{"auth":"base64(user:password)"}}}`, path);
  const auths = parsed.data.auths ?? {};
  const keys: string[] = [];
  const parts = ref.repository.split("/");
  for (let i = parts.length; i >= 1; i--) keys.push(`${ref.registry}/${parts.slice(0, i).join("/")}`);
  keys.push(ref.registry);
  if (ref.registry === "docker.io") keys.push("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io");
  for (const key of keys) {
    const entry = auths[key];
    if (!entry) continue;
    if (entry.auth !== undefined && entry.auth !== "") {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) throw invalid(`--authfile ${path}: the "auth" of ${key} is not base64 of user:password`, path);
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  }
  return undefined;
}

/** A token server's answer. */
export const tokenSchema = z.object({ token: z.string().optional(), access_token: z.string().optional() });

/**
 * The auth file a pull reads when `--authfile` is not given, as podman and skopeo choose it:
 * $REGISTRY_AUTH_FILE, else the first that exists of /run/containers/UID/auth.json (or
 * $XDG_RUNTIME_DIR/containers/auth.json when not root) and $HOME/.docker/config.json.
 */
export function defaultAuthFile(env: Readonly<Record<string, string | undefined>>, uid: number, exists: (path: string) => boolean): string | undefined {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  const runtime = uid !== 0 && env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/containers/auth.json` : `/run/containers/${uid}/auth.json`;
  const candidates = [runtime, ...(env.HOME ? [`${env.HOME}/.docker/config.json`] : [])];
  return candidates.find(exists);
}
