/**
 * machinad's TCP transport (--listen): the pure parts of its authentication. Every request needs
 * the token (`Authorization: Bearer TOKEN`) or a session cookie that a one-time login link
 * (`GET /login?token=TOKEN`) set; a state-changing request authenticated by the cookie must come
 * from the server's own origin (CSRF). The Unix socket does not go through this: the file system
 * guards it (main.ts).
 */
import { timingSafeEqual, randomBytes } from "node:crypto";
import type * as S from "../api/schemas.ts";
import { MachinaError } from "../errors.ts";

export const SESSION_COOKIE = "machina_session";
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** `--listen=ADDR:PORT`: an IPv4 address or a bracketed IPv6 one, and a port 1-65535. */
export function parseListen(value: string): { hostname: string; port: number } {
  const bad = () =>
    new MachinaError(
      "E_INVALID",
      `invalid --listen="${value}": expected ADDR:PORT, an IPv4 address or [IPv6] and a port 1-65535 (e.g. 127.0.0.1:8080, [::1]:8080)`,
      {
        flag: "--listen",
        value,
      },
    );
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(value);
  if (!m) throw bad();
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw bad();
  const v6 = m[1];
  if (v6 !== undefined) {
    if (!v6.includes(":") || !URL.canParse(`http://[${v6}]/`)) throw bad();
    return { hostname: v6, port };
  }
  const v4 = m[2]!;
  if (v4.split(".").some((o) => Number(o) > 255)) throw bad();
  return { hostname: v4, port };
}

/** Constant-time comparison of a presented token with the real one (lengths differ: false, still comparing). */
export function tokenMatches(presented: string, token: string): boolean {
  const a = Buffer.from(presented, "utf8");
  const b = Buffer.from(token, "utf8");
  if (a.length !== b.length) {
    timingSafeEqual(b, b);
    return false;
  }
  return token.length > 0 && timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer TOKEN` header, if there is one. */
export function bearerToken(header: string | null): string | undefined {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? "");
  return m?.[1];
}

/** A Cookie header's name=value pairs (the first of a repeated name wins). */
export function parseCookies(header: string | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (name !== "" && !out.has(name)) out.set(name, value);
  }
  return out;
}

/** A cookie-authenticated request may change state only with an Origin (or, without one, a Referer) of the server's own origin. */
export function sameOrigin(origin: string | null, referer: string | null, own: string): boolean {
  const from = origin ?? referer;
  if (from === null || from === "" || from === "null") return false;
  try {
    return new URL(from).origin === own;
  } catch {
    return false;
  }
}

/** Login sessions: random ids in memory, each valid for SESSION_TTL_MS. */
export class Sessions {
  private readonly expiry = new Map<string, number>();
  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlMs = SESSION_TTL_MS,
  ) {}
  create(): string {
    this.prune();
    const id = randomBytes(32).toString("hex");
    this.expiry.set(id, this.now() + this.ttlMs);
    return id;
  }
  valid(id: string | undefined): boolean {
    if (id === undefined) return false;
    const until = this.expiry.get(id);
    if (until === undefined) return false;
    if (until <= this.now()) {
      this.expiry.delete(id);
      return false;
    }
    return true;
  }
  clear(): void {
    this.expiry.clear();
  }
  private prune(): void {
    const now = this.now();
    for (const [id, until] of this.expiry) if (until <= now) this.expiry.delete(id);
  }
}

export interface WebAuth {
  /** The current token (read on each request: `machinad --new-token` takes effect at once). */
  token(): string;
  sessions: Sessions;
  /** The server's own origin, e.g. `https://127.0.0.1:8443`. */
  origin: string;
  secure: boolean;
}

function refuse(status: 401 | 403, error: S.ApiError): Response {
  return Response.json(error, { status, headers: status === 401 ? { "www-authenticate": 'Bearer realm="machinad"' } : {} });
}

/**
 * Guard a fetch handler: answers /login itself, refuses what is not authenticated (401) or a
 * cookie-authenticated state change from another origin (403), passes the rest on.
 */
export function guard<E>(auth: WebAuth, next: (req: Request, env: E) => Response | Promise<Response>): (req: Request, env: E) => Response | Promise<Response> {
  // An unreadable or damaged token file lets nothing in (and does not turn into a 500).
  const token = (): string | undefined => {
    try {
      return auth.token();
    } catch {
      return undefined;
    }
  };
  const matches = (presented: string) => {
    const t = token();
    return t !== undefined && tokenMatches(presented, t);
  };
  return (req, env) => {
    const url = new URL(req.url);
    if (url.pathname === "/login" && req.method === "GET") {
      const presented = url.searchParams.get("token") ?? "";
      if (!matches(presented)) return refuse(401, { code: "E_UNAUTHORIZED", message: "invalid login token" });
      const cookie = [`${SESSION_COOKIE}=${auth.sessions.create()}`, "HttpOnly", "SameSite=Strict", "Path=/", `Max-Age=${SESSION_TTL_MS / 1000}`];
      if (auth.secure) cookie.push("Secure");
      return new Response(null, { status: 303, headers: { location: "/", "set-cookie": cookie.join("; "), "cache-control": "no-store" } });
    }
    const bearer = bearerToken(req.headers.get("authorization"));
    if (bearer !== undefined) {
      if (matches(bearer)) return next(req, env);
      return refuse(401, { code: "E_UNAUTHORIZED", message: "invalid token" });
    }
    if (auth.sessions.valid(parseCookies(req.headers.get("cookie")).get(SESSION_COOKIE))) {
      // a WebSocket is a GET that opens a channel both ways: from the server's own pages only
      const upgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
      if (((req.method === "GET" || req.method === "HEAD") && !upgrade) || sameOrigin(req.headers.get("origin"), req.headers.get("referer"), auth.origin))
        return next(req, env);
      return refuse(403, { code: "E_FORBIDDEN", message: `a ${req.method} request with the session cookie needs Origin: ${auth.origin}` });
    }
    return refuse(401, {
      code: "E_UNAUTHORIZED",
      message: "authentication required: Authorization: Bearer TOKEN (the token in machinad's web.token), or the login link",
    });
  };
}
