/** machinad --listen's authentication (src/daemon/web-auth.ts, no server) and its token file (src/daemon/token-file.ts, in a temporary directory). */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newToken, readToken, tokenPath } from "../../src/daemon/token-file.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { MachinaError } from "../../src/errors.ts";
import { bearerToken, guard, parseCookies, parseListen, sameOrigin, Sessions, tokenMatches } from "../../src/daemon/web-auth.ts";

const TOKEN = "ab".repeat(32);

describe("parseListen", () => {
  test("IPv4 and bracketed IPv6 with a port", () => {
    expect(parseListen("127.0.0.1:8080")).toEqual({ hostname: "127.0.0.1", port: 8080 });
    expect(parseListen("0.0.0.0:1")).toEqual({ hostname: "0.0.0.0", port: 1 });
    expect(parseListen("[::1]:8080")).toEqual({ hostname: "::1", port: 8080 });
    expect(parseListen("[fe80::1:2]:65535")).toEqual({ hostname: "fe80::1:2", port: 65535 });
  });
  test("anything else: E_INVALID naming --listen", () => {
    for (const v of [
      "",
      "127.0.0.1",
      "127.0.0.1:",
      ":80",
      "localhost:80",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "256.1.1.1:80",
      "::1:80",
      "[::1]",
      "[zz::1]:80",
      "[:::::]:80",
      "[1.2.3.4]:80",
      "127.0.0.1:80x",
    ]) {
      let e: unknown;
      try {
        parseListen(v);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(MachinaError);
      expect((e as MachinaError).code).toBe("E_INVALID");
      expect((e as MachinaError).message).toContain("--listen");
    }
  });
});

describe("token and headers", () => {
  test("tokenMatches: equal only", () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN.slice(1) + "c", TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN.slice(1), TOKEN)).toBe(false);
    expect(tokenMatches("", TOKEN)).toBe(false);
    expect(tokenMatches("", "")).toBe(false);
  });
  test("bearerToken", () => {
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`Basic ${TOKEN}`)).toBeUndefined();
    expect(bearerToken("Bearer")).toBeUndefined();
    expect(bearerToken(null)).toBeUndefined();
  });
  test("parseCookies", () => {
    const c = parseCookies('a=1; machina_session=xyz ; b="q"; a=2; junk; =v');
    expect(c.get("a")).toBe("1");
    expect(c.get("machina_session")).toBe("xyz");
    expect(c.get("b")).toBe("q");
    expect(c.size).toBe(3);
    expect(parseCookies(null).size).toBe(0);
  });
  test("sameOrigin: Origin, else Referer, of our scheme, host and port", () => {
    const own = "http://127.0.0.1:8080";
    expect(sameOrigin(own, null, own)).toBe(true);
    expect(sameOrigin(null, `${own}/page?x=1`, own)).toBe(true);
    expect(sameOrigin("https://127.0.0.1:8080", null, own)).toBe(false);
    expect(sameOrigin("http://127.0.0.1:8081", null, own)).toBe(false);
    expect(sameOrigin("http://evil.example", `${own}/`, own)).toBe(false); // Origin wins
    expect(sameOrigin("null", null, own)).toBe(false);
    expect(sameOrigin(null, null, own)).toBe(false);
    expect(sameOrigin("not a url", null, own)).toBe(false);
  });
});

describe("Sessions", () => {
  test("random ids that expire", () => {
    let now = 1000;
    const s = new Sessions(() => now, 100);
    const a = s.create();
    const b = s.create();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(s.valid(a)).toBe(true);
    expect(s.valid("x")).toBe(false);
    expect(s.valid(undefined)).toBe(false);
    now = 1100;
    expect(s.valid(a)).toBe(false);
  });
});

describe("guard", () => {
  const own = "http://127.0.0.1:8080";
  const make = () => {
    const sessions = new Sessions();
    const g = guard({ token: () => TOKEN, sessions, origin: own, secure: false }, () => new Response("passed"));
    return { g, sessions };
  };
  const req = (path: string, init: RequestInit = {}) => new Request(own + path, init);
  test("401 without a credential, with a wrong one; Bearer passes", async () => {
    const { g } = make();
    for (const r of [req("/v1/machines"), req("/v1/machines", { headers: { authorization: "Bearer nope" } }), req("/x", { method: "POST" })]) {
      const res = await g(r, undefined);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ code: "E_UNAUTHORIZED" });
    }
    expect(await (await g(req("/v1/machines", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } }), undefined)).text()).toBe("passed");
  });
  test("login sets a session cookie, not the token; CSRF on the cookie", async () => {
    const { g } = make();
    const login = await g(req(`/login?token=${TOKEN}`), undefined);
    expect(login.status).toBe(303);
    expect(login.headers.get("location")).toBe("/");
    const set = login.headers.get("set-cookie")!;
    expect(set).toContain("HttpOnly");
    expect(set).toContain("SameSite=Strict");
    expect(set).not.toContain("Secure");
    expect(set).not.toContain(TOKEN);
    const cookie = set.split(";")[0]!;
    expect((await g(req("/v1/machines", { headers: { cookie } }), undefined)).status).toBe(200);
    expect((await g(req("/v1/x", { method: "DELETE", headers: { cookie } }), undefined)).status).toBe(403);
    expect((await g(req("/v1/x", { method: "POST", headers: { cookie, origin: "http://other:8080" } }), undefined)).status).toBe(403);
    expect((await g(req("/v1/x", { method: "POST", headers: { cookie, origin: own } }), undefined)).status).toBe(200);
    // a WebSocket (the shell) is a GET that opens a channel both ways: only from machinad's own pages
    const ws = { upgrade: "websocket", connection: "Upgrade" };
    expect((await g(req("/v1/machines/web/shell", { headers: { cookie, ...ws } }), undefined)).status).toBe(403);
    expect((await g(req("/v1/machines/web/shell", { headers: { cookie, ...ws, origin: "http://evil:8080" } }), undefined)).status).toBe(403);
    expect((await g(req("/v1/machines/web/shell", { headers: { cookie, ...ws, origin: own } }), undefined)).status).toBe(200);
    expect((await g(req("/login?token=bad"), undefined)).status).toBe(401);
  });
});

describe("the token file", () => {
  test("made 0600 when missing, kept, replaced by newToken, a damaged one refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "machina-token-"));
    try {
      const host = new LinuxHost();
      const path = tokenPath(join(dir, "run"));
      const a = readToken(host, path);
      expect(a).toMatch(/^[0-9a-f]{64}$/);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      // its directory is the state directory, made 0755 as every command makes it (the file is 0600)
      expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o755);
      expect(readToken(host, path)).toBe(a);
      const b = newToken(host, path);
      expect(b).not.toBe(a);
      expect(readToken(host, path)).toBe(b);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(readdirSync(join(dir, "run"))).toEqual(["web.token"]);
      writeFileSync(path, "short\n");
      expect(() => readToken(host, path)).toThrow(/64 hex digits/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("guard: a token that cannot be read lets nothing in", async () => {
    const g = guard(
      {
        token: () => {
          throw new Error("damaged");
        },
        sessions: new Sessions(),
        origin: "http://127.0.0.1:1",
        secure: false,
      },
      () => new Response("passed"),
    );
    expect((await g(new Request("http://127.0.0.1:1/v1/machines", { headers: { authorization: `Bearer ${TOKEN}` } }), undefined)).status).toBe(401);
    expect((await g(new Request(`http://127.0.0.1:1/login?token=${TOKEN}`), undefined)).status).toBe(401);
  });
});
