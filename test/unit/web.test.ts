/**
 * The dashboard's side of machinad: the API paths web/app.ts uses are the route table's
 * (src/api/routes.ts), the built files keep to their size budget, and machinad serves only the
 * files it read at start, with headers that forbid inline code, framing and sniffing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { API, type RouteId } from "../../src/api/routes.ts";
import { WebAssets } from "../../src/daemon/web-assets.ts";
import { formatBytes, formatDuration, PATHS } from "../../web/app.ts";

const REPO = join(import.meta.dir, "../..");

/** The size budget of the dashboard as served (HTML, script, style sheet), docs/dashboard.md. */
export const BUDGET_BYTES = 48 * 1024;
/** The terminal's files, loaded only when a terminal is opened. */
export const TERMINAL_BUDGET_BYTES = 400 * 1024;

describe("the dashboard's API paths", () => {
  test("each is the path of the route of the same id", () => {
    for (const [id, path] of Object.entries(PATHS)) expect(`${id} ${API[id as RouteId]?.path}`).toBe(`${id} ${path}`);
  });
});

describe("what it shows", () => {
  test("sizes and durations", () => {
    expect([formatBytes(null), formatBytes(512), formatBytes(1536), formatBytes(5 * 1024 ** 3)]).toEqual(["-", "512 B", "1.5 KiB", "5.0 GiB"]);
    expect([formatDuration(5), formatDuration(125), formatDuration(3 * 3600 + 120), formatDuration(2 * 86400 + 3600)]).toEqual([
      "5 s",
      "2 min",
      "3 h 2 min",
      "2 d 1 h",
    ]);
  });
});

describe("machinad's web assets", () => {
  const dir = mkdtempSync(join(tmpdir(), "web-assets-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("the built dashboard (scripts/build: dist/web) keeps to its budget", () => {
    const web = new WebAssets(join(REPO, "dist/web"));
    if (!web.built) return; // scripts/test builds it first; a bare `bun test` may not have
    const sizes = web.sizes();
    expect(Object.keys(sizes).sort()).toEqual(["app.css", "app.js", "index.html", "terminal.js", "xterm.css"]);
    // the first page: what every visit loads
    expect(sizes["index.html"]! + sizes["app.js"]! + sizes["app.css"]!).toBeLessThanOrEqual(BUDGET_BYTES);
    // the terminal, loaded when one is opened (xterm.js)
    expect(sizes["terminal.js"]! + sizes["xterm.css"]!).toBeLessThanOrEqual(TERMINAL_BUDGET_BYTES);
  });

  test("only the files read at start, with their types and guarding headers", async () => {
    writeFileSync(join(dir, "index.html"), "<!doctype html><title>x</title>");
    writeFileSync(join(dir, "app.js"), "1");
    writeFileSync(join(dir, "notes.txt"), "not served");
    writeFileSync(join(dir, "Bad.js"), "not served");
    const web = new WebAssets(dir);
    expect(web.built).toBe(true);
    const page = web.response("index.html")!;
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await web.response("app.js")!.text()).toBe("1");
    for (const name of ["notes.txt", "Bad.js", "../index.html", "missing.js"]) expect(web.response(name)).toBeUndefined();
    writeFileSync(join(dir, "late.js"), "2");
    expect(web.response("late.js")).toBeUndefined(); // read at start only
    expect(new WebAssets(join(dir, "none")).built).toBe(false);
  });
});
