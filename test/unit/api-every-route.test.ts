/**
 * Bad input on every route of the table (src/api/routes.ts), derived from it: a traversal or
 * invalid name in each path parameter, a value each query parameter's schema refuses, and for
 * each JSON body an unknown field, a wrong type, malformed JSON and an oversized body — each
 * answered with its documented status and code before anything reaches the core. Over TCP
 * (src/daemon/web-auth.ts guard): no credentials and a wrong token get 401, a cookie-authenticated
 * state change from another origin 403, on every route.
 */
import { describe, expect, test } from "bun:test";
import type { ImageService } from "../../src/api/image-service.ts";
import { MAX_BODY_BYTES, PATH_PARAMS, ROUTES, type Route } from "../../src/api/routes.ts";
import type { MachineService } from "../../src/api/service.ts";
import { createApp } from "../../src/daemon/app.ts";
import { guard, Sessions, SESSION_COOKIE } from "../../src/daemon/web-auth.ts";

/** A core that records each call: none may happen on bad input. */
function recorder<T extends object>(calls: string[]): T {
  return new Proxy({} as T, {
    get: (_t, prop) => {
      if (prop === "then") return undefined;
      return (..._args: unknown[]) => {
        calls.push(String(prop));
        throw new Error(`the core was reached: ${String(prop)}`);
      };
    },
  });
}

const VALID: Record<keyof typeof PATH_PARAMS, string> = { name: "web", image: "web", id: "x", transfer: "1" };
const pathWith = (r: Route, override: Partial<Record<string, string>> = {}) =>
  r.path.replace(/\{(\w+)\}/g, (_, k: string) => override[k] ?? VALID[k as keyof typeof PATH_PARAMS]);

function setup() {
  const calls: string[] = [];
  const { app } = createApp({ service: recorder<MachineService>(calls), images: recorder<ImageService>(calls) });
  const send = async (r: Route, path: string, body?: string, headers: Record<string, string> = {}) => {
    const res = await app.fetch(
      new Request(`http://localhost${path}`, {
        method: r.method.toUpperCase(),
        ...(body !== undefined ? { body } : {}),
        headers: { "content-type": "application/json", ...headers },
      }),
    );
    const json = (await res.json()) as { code: string; message: string };
    return { status: res.status, code: json.code, message: json.message };
  };
  return { calls, send };
}

describe("every route refuses bad input before the core", () => {
  for (const r of ROUTES) {
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const checkedParams = params.filter((p) => PATH_PARAMS[p as keyof typeof PATH_PARAMS].errors.length > 0);
    const query = Object.entries(r.query ?? {}).filter(([, q]) => !q.schema.safeParse("!!\u0001").success);
    if (checkedParams.length === 0 && query.length === 0 && r.body === undefined) continue;
    test(`${r.method.toUpperCase()} ${r.path}`, async () => {
      const s = setup();
      for (const p of checkedParams)
        for (const bad of ["..%2Fetc", "a%2Fb", "%00", "x".repeat(300)]) {
          const res = await s.send(r, pathWith(r, { [p]: bad }), r.body ? "{}" : undefined);
          expect(`${p}=${bad}: ${res.status} ${res.code}`).toBe(`${p}=${bad}: 400 E_INVALID`);
        }
      for (const [name] of query) {
        const res = await s.send(r, `${pathWith(r)}?${name}=${encodeURIComponent("!!\u0001")}`, r.body ? "{}" : undefined);
        expect(`${name}: ${res.status} ${res.code}`).toBe(`${name}: 400 E_INVALID`);
      }
      if (r.body) {
        for (const [what, body] of [
          ["unknown field", JSON.stringify({ bogusField: 1 })],
          ["wrong type", "[1,2]"],
          ["malformed", "{"],
        ] as const) {
          const res = await s.send(r, pathWith(r), body);
          expect(`${what}: ${res.status} ${res.code}`).toBe(`${what}: 400 E_INVALID`);
        }
        const big = await s.send(r, pathWith(r), JSON.stringify({ pad: "x".repeat(MAX_BODY_BYTES) }));
        expect(`oversized: ${big.status} ${big.code}`).toBe("oversized: 413 E_TOO_LARGE");
      }
      expect(s.calls).toEqual([]);
    });
  }
});

describe("over TCP every route needs the token; a cookie's state change needs the same origin", () => {
  const origin = "http://127.0.0.1:8080";
  const sessions = new Sessions();
  const cookie = `${SESSION_COOKIE}=${sessions.create()}`;
  const reached: string[] = [];
  const g = guard({ token: () => "right-token", sessions, origin, secure: false }, (req: Request) => {
    reached.push(new URL(req.url).pathname);
    return new Response("{}");
  });
  for (const r of ROUTES)
    test(`${r.method.toUpperCase()} ${r.path}`, async () => {
      const url = `${origin}${pathWith(r)}`;
      const method = r.method.toUpperCase();
      const none = await g(new Request(url, { method }), undefined);
      expect([none.status, ((await none.json()) as { code: string }).code]).toEqual([401, "E_UNAUTHORIZED"]);
      const wrong = await g(new Request(url, { method, headers: { authorization: "Bearer wrong-token" } }), undefined);
      expect(wrong.status).toBe(401);
      if (method !== "GET") {
        const cross = await g(new Request(url, { method, headers: { cookie, origin: "http://evil.example" } }), undefined);
        expect([cross.status, ((await cross.json()) as { code: string }).code]).toEqual([403, "E_FORBIDDEN"]);
        const noOrigin = await g(new Request(url, { method, headers: { cookie } }), undefined);
        expect(noOrigin.status).toBe(403);
      }
      expect(reached).toEqual([]);
      const ok = await g(new Request(url, { method, headers: { authorization: "Bearer right-token" } }), undefined);
      expect(ok.status).toBe(200);
      reached.length = 0;
    });
});
