/**
 * Registry authentication: WWW-Authenticate challenges, credentials from a containers auth.json
 * (the file read here), and the token server's answer.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { MachinaError } from "../errors.ts";
import { type CredentialHelperRunner, runCredentialHelper } from "../host/credential-helper.ts";
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
  /** docker's: one helper for all registries */
  credsStore: z.string().optional(),
  /** docker's: a helper per registry host */
  credHelpers: z.record(z.string(), z.string()).optional(),
});

/** What a credential helper prints for `get`. */
const helperAnswerSchema = z.object({ ServerURL: z.string().optional(), Username: z.string(), Secret: z.string() });

/** A helper name is the end of a program name: no path, nothing odd. */
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Docker Hub's server URL, as docker login and the helpers name it. */
const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";

/** The username a helper gives for an identity (refresh) token instead of a password. */
export const IDENTITY_TOKEN_USER = "<token>";

export interface Credentials {
  /** IDENTITY_TOKEN_USER: `password` is an identity token, exchanged at the token server (OAuth2 refresh_token) */
  username: string;
  password: string;
}

/**
 * Credentials for REGISTRY/REPOSITORY from a containers auth.json (or docker's config.json): the
 * longest matching "registry/namespace" key of `auths`, then "registry", then docker.io's legacy
 * spellings; when none has credentials, the registry's helper from `credHelpers`, else the
 * `credsStore` helper (`docker-credential-NAME get`), as docker and podman ask them.
 */
export function credentialsFromAuthFile(path: string, ref: ImageReference, runHelper: CredentialHelperRunner = runCredentialHelper): Credentials | undefined {
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
  const helpers = parsed.data.credHelpers ?? {};
  const helper =
    [ref.registry, ...(ref.registry === "docker.io" ? [DOCKER_HUB_SERVER, "index.docker.io", "registry-1.docker.io"] : [])]
      .map((k) => helpers[k])
      .find((h) => h !== undefined) ?? parsed.data.credsStore;
  if (helper === undefined || helper === "") return undefined;
  return credentialsFromHelper(path, helper, ref.registry === "docker.io" ? DOCKER_HUB_SERVER : ref.registry, runHelper);
}

/** `docker-credential-HELPER get` for SERVER: its credentials, or undefined when it has none for it. */
function credentialsFromHelper(path: string, helper: string, server: string, runHelper: CredentialHelperRunner): Credentials | undefined {
  if (!HELPER_NAME.test(helper))
    throw invalid(`--authfile ${path}: credential helper ${JSON.stringify(helper)} is not a helper name (letters, digits, "_", ".", "-")`, helper);
  const program = `docker-credential-${helper}`;
  const r = runHelper(helper, server);
  if (r === "missing") {
    throw new MachinaError(
      "E_NOT_FOUND",
      `--authfile ${path}: credential helper ${program} is not installed (not on $PATH)`,
      { value: program },
      'install it, or put the credentials in the file\'s "auths"',
    );
  }
  // docker-credential-helpers say so (exit 1) when they hold nothing for the server.
  if (r.code !== 0 && /credentials not found/i.test(r.stdout + r.stderr)) return undefined;
  const firstLine = (r.stderr.trim() || r.stdout.trim()).split("\n")[0] ?? "";
  if (r.code !== 0) throw new MachinaError("E_SYSTEM", `${program} get ${server}: exit ${r.code}${firstLine ? `: ${firstLine}` : ""}`, { value: program });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw invalid(`${program} get ${server}: the answer is not JSON; allowed is {"Username":"…","Secret":"…"}`, program);
  }
  const answer = helperAnswerSchema.safeParse(json);
  if (!answer.success) throw invalid(`${program} get ${server}: ${zodLine(answer.error)}; allowed is {"Username":"…","Secret":"…"}`, program);
  if (answer.data.Username === "" && answer.data.Secret === "") return undefined;
  return { username: answer.data.Username, password: answer.data.Secret };
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
