/**
 * machinad --listen (root): the API over TCP on 127.0.0.1 with the web token — 401 without it or
 * with a wrong one, Bearer accepted, the login link's session cookie (its CSRF rule: a POST
 * without our Origin is 403), --new-token revoking the old token, HTTPS with a self-signed
 * certificate, [::1], bad flags refused; the Unix socket still needs no token.
 */
import { describe, expect, test } from "bun:test";
import { statSync } from "node:fs";
import { join } from "node:path";
import { MachinaClient } from "../../src/client/client.ts";
import { daemonSuite, freePort, MACHINAD, startDaemon, webToken } from "../helpers/daemon.ts";

const T = 60_000;
const { t, scratch } = daemonSuite();

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const p = Bun.spawnSync([MACHINAD, ...args], { env: t.env, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("machinad --listen", () => {
  test(
    "token, login link, CSRF, --new-token; the socket needs no token",
    async () => {
      const port = freePort();
      const base = `http://127.0.0.1:${port}`;
      await startDaemon(t, scratch, [`--listen=127.0.0.1:${port}`]);
      const tokenFile = join(t.stateDir, "web.token");
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const token = webToken(t);
      expect(token).toMatch(/^[0-9a-f]{64}$/);

      for (const [method, path] of [
        ["GET", "/v1/machines"],
        ["GET", "/v1/version"],
        ["GET", "/openapi.json"],
        ["GET", "/nowhere"],
        ["POST", "/v1/machines/x/start"],
      ] as const) {
        const r = await fetch(base + path, { method });
        expect(r.status).toBe(401);
        expect(((await r.json()) as { code: string }).code).toBe("E_UNAUTHORIZED");
      }
      const wrong = await fetch(`${base}/v1/machines`, { headers: { authorization: `Bearer ${"0".repeat(64)}` } });
      expect(wrong.status).toBe(401);
      expect((await fetch(`${base}/login?token=nope`, { redirect: "manual" })).status).toBe(401);

      const ok = await fetch(`${base}/v1/machines`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ machines: [] });

      // The login link: a session cookie (not the token), then a redirect to /.
      const login = await fetch(`${base}/login?token=${token}`, { redirect: "manual" });
      expect(login.status).toBe(303);
      expect(login.headers.get("location")).toBe("/");
      const setCookie = login.headers.get("set-cookie") ?? "";
      expect(setCookie).toMatch(/^machina_session=[0-9a-f]{64}; /);
      expect(setCookie).toContain("HttpOnly");
      expect(setCookie).toContain("SameSite=Strict");
      expect(setCookie).toContain("Path=/");
      expect(setCookie).not.toContain(token);
      const cookie = setCookie.split(";")[0]!;
      expect((await fetch(`${base}/v1/machines`, { headers: { cookie } })).status).toBe(200);
      expect((await fetch(`${base}/v1/machines`, { headers: { cookie: "machina_session=" + "1".repeat(64) } })).status).toBe(401);

      // CSRF: a POST with the cookie needs our Origin; with Bearer it does not.
      const post = (headers: Record<string, string>) => fetch(`${base}/v1/machines/nosuch/poweroff`, { method: "POST", headers });
      const noOrigin = await post({ cookie });
      expect(noOrigin.status).toBe(403);
      expect(((await noOrigin.json()) as { code: string }).code).toBe("E_FORBIDDEN");
      expect((await post({ cookie, origin: "http://evil.example" })).status).toBe(403);
      expect((await post({ cookie, origin: base })).status).toBe(404); // accepted: the machine does not exist
      expect((await post({ cookie, referer: `${base}/ui` })).status).toBe(404);
      expect((await post({ authorization: `Bearer ${token}` })).status).toBe(404);

      // The socket: as before, no token.
      expect(await new MachinaClient(t.socket).list()).toEqual([]);

      // --new-token: the old token fails at once, the new one works.
      const rotated = run(["--new-token"]);
      expect(rotated.code).toBe(0);
      expect(rotated.stdout.trim()).toBe(tokenFile);
      const fresh = webToken(t);
      expect(fresh).not.toBe(token);
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      expect((await fetch(`${base}/v1/machines`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      expect((await fetch(`${base}/v1/machines`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
    },
    T,
  );

  test(
    "HTTPS with --tls-cert and --tls-key",
    async () => {
      const dir = scratch.dir("machina-tls-");
      const cert = join(dir, "cert.pem");
      const key = join(dir, "key.pem");
      const made = Bun.spawnSync(
        [
          "openssl",
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-keyout",
          key,
          "-out",
          cert,
        ],
        { stdout: "ignore", stderr: "pipe" },
      );
      expect(made.exitCode).toBe(0);
      const port = freePort();
      await startDaemon(t, scratch, [`--listen=127.0.0.1:${port}`, `--tls-cert=${cert}`, `--tls-key=${key}`]);
      const token = webToken(t);
      const tls = { ca: await Bun.file(cert).text() };
      const r = await fetch(`https://127.0.0.1:${port}/v1/machines`, { headers: { authorization: `Bearer ${token}` }, tls });
      expect(r.status).toBe(200);
      expect((await fetch(`https://127.0.0.1:${port}/v1/machines`, { tls })).status).toBe(401);
      const login = await fetch(`https://127.0.0.1:${port}/login?token=${token}`, { redirect: "manual", tls });
      expect(login.headers.get("set-cookie")).toContain("Secure");
    },
    T,
  );

  test(
    "IPv6: [::1]:PORT, its origin bracketed",
    async () => {
      const port = freePort();
      const base = `http://[::1]:${port}`;
      await startDaemon(t, scratch, [`--listen=[::1]:${port}`]);
      const token = webToken(t);
      expect((await fetch(`${base}/v1/machines`)).status).toBe(401);
      expect((await fetch(`${base}/v1/machines`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      const cookie = ((await fetch(`${base}/login?token=${token}`, { redirect: "manual" })).headers.get("set-cookie") ?? "").split(";")[0]!;
      const post = (origin: string) => fetch(`${base}/v1/machines/nosuch/poweroff`, { method: "POST", headers: { cookie, origin } });
      expect((await post(base)).status).toBe(404);
      expect((await post(`http://127.0.0.1:${port}`)).status).toBe(403);
    },
    T,
  );

  test("bad flags: one line naming the flag", () => {
    for (const [args, flag] of [
      [["--listen=localhost:80"], "--listen"],
      [["--listen=127.0.0.1"], "--listen"],
      [["--listen=127.0.0.1:0"], "--listen"],
      [["--listen=300.0.0.1:80"], "--listen"],
      [["--listen=::1:80"], "--listen"],
      [["--listen=127.0.0.1:8080", "--tls-cert=/x"], "--tls-"],
      [["--tls-key=/x", "--tls-cert=/y"], "--listen"],
    ] as const) {
      const r = run([...args]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(flag);
    }
  });
});
