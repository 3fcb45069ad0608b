/**
 * The dashboard (web/, served by machinad at /) in a real browser: Debian's chromium, headless,
 * driven by puppeteer-core. Nothing without the login link (401); the link logs in; an image of
 * the pool is started from the page and its row appears; its details show its log; it is
 * terminated from the keyboard and its row goes; a narrow window has no horizontal scrolling.
 * Screenshots go to $MACHINA_TEST_ARTIFACTS (default /tmp/machina-test-artifacts). Root only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { API } from "../../src/api/routes.ts";
import { MachinaClient } from "../../src/client/client.ts";
import { addImage, daemonSuite, freePort, machinactl, startDaemon, webToken } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/machina.ts";

const CHROMIUM = "/usr/bin/chromium";
const isRoot = process.getuid?.() === 0;
const ARTIFACTS = process.env.MACHINA_TEST_ARTIFACTS ?? "/tmp/machina-test-artifacts";
const { t, scratch } = daemonSuite();
let browser: Browser | undefined;

beforeAll(async () => {
  if (!isRoot) return;
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/install-deps --test installs chromium (scripts/deps.txt)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const puppeteer = (await import("puppeteer-core")).default;
  // root: chromium's own sandbox needs an unprivileged user; the test's page is ours
  browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
});
afterAll(async () => {
  await browser?.close();
});

async function rowText(page: Page, id: string): Promise<string | undefined> {
  return page.evaluate((sel) => document.getElementById(sel)?.textContent ?? undefined, id);
}

describe.skipIf(!isRoot)("the dashboard in chromium", () => {
  test("log in with the link, start a machine from the pool, follow its log, terminate it from the keyboard", async () => {
    const port = freePort();
    await startDaemon(t, scratch, [`--listen=127.0.0.1:${port}`]);
    const name = `dash${process.pid % 10000}`;
    addImage(t, name);
    const base = `http://127.0.0.1:${port}`;
    const page = await browser!.newPage();
    await page.setViewport({ width: 1100, height: 700 });
    try {
      // nothing without the token
      const denied = await page.goto(`${base}/`);
      expect(denied?.status()).toBe(401);
      expect(await page.evaluate(() => document.body.textContent)).toContain("E_UNAUTHORIZED");
      const asset = await page.goto(`${base}/assets/app.js`);
      expect(asset?.status()).toBe(401);

      // the login link: a session cookie, then the page
      const landed = await page.goto(`${base}/login?token=${webToken(t)}`);
      expect(landed?.status()).toBe(200);
      expect(page.url()).toBe(`${base}/`);
      expect(await page.title()).toBe("machina");
      await page.waitForSelector(`#image-${name}`);

      // a machine started by the test (through the API) appears; terminated through the API, it goes
      const other = `${name}b`;
      addImage(t, other);
      await new MachinaClient(t.socket).start(other);
      await page.waitForFunction((id) => document.getElementById(id)?.textContent?.includes("running"), { timeout: 20_000 }, `machine-${other}`);
      await new MachinaClient(t.socket).terminate(other);
      await page.waitForFunction((id) => document.getElementById(id) === null, { timeout: 20_000 }, `machine-${other}`);

      // start it from its image's row: its machine row appears, running
      await page.click(`button[aria-label="Start ${name}"]`);
      await page.waitForFunction((id) => document.getElementById(id)?.textContent?.includes("running"), { timeout: 20_000 }, `machine-${name}`);
      expect((await machinactl(t, ["list"])).stdout).toContain(name);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png") });

      // its details: facts and the log as it grows
      await page.click(`#machine-${name} a`);
      await page.waitForFunction(() => document.getElementById("detail-log")?.textContent?.includes("init: up"), { timeout: 20_000 });
      const facts = await page.evaluate(() => document.getElementById("detail-facts")?.textContent ?? "");
      expect(facts).toContain("Tasks");
      expect(facts).toContain("Architectureamd64"); // the busybox image's own, not emulated
      // machinad's samples: the live columns and the graphs (a sample every 2 s)
      await page.waitForFunction(
        (id) => /^[0-9]+$/.test(document.querySelector(`#${id} td[data-label="Tasks"]`)?.textContent ?? ""),
        { timeout: 20_000 },
        `machine-${name}`,
      );
      await page.waitForFunction(() => document.querySelectorAll("#detail-graphs figure polyline").length === 3, { timeout: 20_000 });
      expect(await page.evaluate(() => [...document.querySelectorAll("#detail-graphs figcaption")].map((f) => f.textContent?.split(":")[0]))).toEqual([
        "CPU",
        "Memory",
        "Network",
      ]);
      // two samples give the CPU use (cpu.stat's usage_usec exists in every cgroup2 directory)
      await page.waitForFunction(() => /^CPU: [0-9.]+ %$/.test(document.querySelector("#detail-graphs figcaption")?.textContent ?? ""), { timeout: 20_000 });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-detail.png") });

      // a file uploaded into it from the page, and one downloaded (the browser's download)
      const note = join(scratch.dir("machina-dash-file-"), "note.txt");
      await Bun.write(note, "written from the browser\n");
      await (await page.$("#file-put input[type=file]"))!.uploadFile(note);
      await page.type("#file-put input[name=path]", "/tmp/note.txt");
      await page.click("#file-put button[type=submit]");
      await page.waitForFunction(() => document.getElementById("file-status")?.textContent === "Uploaded to /tmp/note.txt.", { timeout: 20_000 });
      expect((await new MachinaClient(t.socket).exec(name, { argv: ["cat", "/tmp/note.txt"] })).stdout).toBe("written from the browser\n");
      await page.type("#file-get input[name=path]", "/tmp/note.txt");
      await page.click("#file-get button[type=submit]");
      await page.waitForFunction(() => document.getElementById("file-status")?.textContent === "Downloaded /tmp/note.txt.", { timeout: 20_000 });
      await page.type("#file-get input[name=path]", "/no/such/file");
      await page.click("#file-get button[type=submit]");
      await page.waitForFunction(() => document.getElementById("file-status")?.textContent?.startsWith("Download failed: "), { timeout: 20_000 });

      // its terminal: xterm.js over the WebSocket, a command typed and its output seen
      await page.click("#terminal-button");
      await page.waitForSelector("#terminal .xterm-helper-textarea");
      await page.waitForFunction(() => document.getElementById("terminal-status")?.textContent?.startsWith("Connected to "));
      await page.waitForFunction(() => document.querySelector("#terminal .xterm-rows")?.textContent?.includes("#"), { timeout: 20_000 });
      await page.focus("#terminal .xterm-helper-textarea");
      await page.keyboard.type("echo term-$((6*7)) $(tty)\n");
      await page.waitForFunction(() => /term-42 \/dev\/pts\/\d+/.test(document.querySelector("#terminal .xterm-rows")?.textContent ?? ""), { timeout: 20_000 });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-terminal.png"), fullPage: true });
      await page.keyboard.type("exit 5\n");
      await page.waitForFunction(() => document.getElementById("terminal-status")?.textContent === "The shell ended with status 5.", { timeout: 20_000 });
      await page.click("#terminal-button"); // closed
      expect(await page.evaluate(() => document.getElementById("terminal")?.hidden)).toBe(true);
      // a login prompt (login(1), as machinactl login): root logs in without a password in the test image
      await page.click("#login-button");
      await page.waitForFunction((n) => document.querySelector("#terminal .xterm-rows")?.textContent?.includes(`${n} login:`), { timeout: 20_000 }, name);
      await page.focus("#terminal .xterm-helper-textarea");
      await page.keyboard.type("root\n");
      await page.waitForFunction(() => (document.querySelector("#terminal .xterm-rows")?.textContent ?? "").includes("built-in shell"), { timeout: 20_000 });
      await page.keyboard.type("exit\n");
      await page.waitForFunction(() => document.getElementById("terminal-status")?.textContent === "The shell ended with status 0.", { timeout: 20_000 });
      await page.click("#terminal-button"); // closed

      // terminate from the keyboard: Tab to the button, Enter
      const target = `Terminate ${name}`;
      let focused = "";
      for (let i = 0; i < 60 && focused !== target; i++) {
        await page.keyboard.press("Tab");
        focused = await page.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? "");
      }
      expect(focused).toBe(target);
      await page.keyboard.press("Enter");
      await page.waitForFunction((id) => document.getElementById(id) === null, { timeout: 20_000 }, `machine-${name}`);
      await waitFor("the machine to be gone", async () => !(await machinactl(t, ["list"])).stdout.includes(name) || undefined, 10_000);
      expect(await page.evaluate(() => document.getElementById("status")?.textContent ?? "")).toBe(`Terminate: ${name}: done`);

      // a narrow window: rows stack, nothing scrolls sideways
      await page.setViewport({ width: 360, height: 700 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-narrow.png") });
      expect(await rowText(page, `image-${name}`)).toContain(name);
    } finally {
      await page.close();
    }
  }, 90_000);

  test("pull an image from a local server: the progress bar reaches its end, the image appears in the pool", async () => {
    const port = freePort();
    await startDaemon(t, scratch, [`--listen=127.0.0.1:${port}`]);
    // a tar of the test image, served with its length (the bar knows the total)
    const dir = scratch.dir("machina-dash-pull-");
    const tar = join(dir, "pulled.tar");
    expect(Bun.spawnSync(["tar", "-C", t.image, "--numeric-owner", "-cf", tar, "."]).exitCode).toBe(0);
    // /images/slow.tar: the same bytes, a little at a time (a pull to cancel while it runs)
    const slow = (): Response => {
      const bytes = readFileSync(tar);
      let off = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await Bun.sleep(200);
          if (off >= bytes.length) return c.close();
          c.enqueue(bytes.subarray(off, off + 65536));
          off += 65536;
        },
      });
      return new Response(body, { headers: { "content-length": String(bytes.length) } });
    };
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/images/pulled.tar") return new Response(Bun.file(tar));
        if (path === "/images/slow.tar") return slow();
        return new Response("no", { status: 404 });
      },
    });
    const name = `pulled${process.pid % 10000}`;
    const base = `http://127.0.0.1:${port}`;
    const page = await browser!.newPage();
    await page.setViewport({ width: 1100, height: 900 });
    try {
      await page.goto(`${base}/login?token=${webToken(t)}`);
      await page.type("#pull input[name=url]", `http://127.0.0.1:${server.port}/images/pulled.tar`);
      await page.type("#pull input[name=name]", name);
      await page.select("#pull select[name=verify]", "no");
      await page.click("#pull button[type=submit]");
      await page.waitForFunction((n) => document.getElementById("pull-status")?.textContent === `Pulled as image ${n}.`, { timeout: 30_000 }, name);
      const bar = await page.evaluate(() => {
        const p = document.getElementById("pull-progress") as HTMLProgressElement;
        return { hidden: p.hidden, value: p.value, max: p.max };
      });
      expect(bar).toEqual({ hidden: false, value: 1, max: 1 });
      await page.waitForSelector(`#image-${name}`);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-pull.png") });
      expect(existsSync(join(t.pool, name, "bin/busybox"))).toBe(true);
      // the job's events carried the download's bytes: the last one all of them
      const { jobs } = await new MachinaClient(t.socket).call(API.listJobs, {});
      const job = jobs.find((j) => j.kind === "pull" && j.machine === name)!;
      const sized = job.events.filter((e) => e.total !== undefined);
      expect(sized.at(-1)).toMatchObject({ done: statSync(tar).size, total: statSync(tar).size });
      // its details: where it came from, its settings; cloned from the page (the name asked in a dialog)
      await page.click(`#image-${name} a`);
      await page.waitForFunction(() => document.getElementById("image-facts")?.textContent?.includes("pull-tar"), { timeout: 20_000 });
      expect(await page.evaluate(() => document.getElementById("image-settings")?.textContent)).toBe("No settings file: the defaults apply.");
      page.once("dialog", (d) => void d.accept(`${name}-copy`));
      await page.click(`button[aria-label="Clone ${name}"]`);
      await page.waitForFunction(() => /^Clone: .*[^…]$/.test(document.getElementById("status")?.textContent ?? ""), { timeout: 20_000 });
      expect(await page.evaluate(() => document.getElementById("status")?.textContent)).toBe(`Clone: ${name}: done`);
      await page.waitForSelector(`#image-${name}-copy`, { timeout: 20_000 });
      expect(existsSync(join(t.pool, `${name}-copy`, "bin/busybox"))).toBe(true);
      // its download links, and an upload of the same tar as another image
      await page.waitForSelector("#image-actions a.download");
      const links = await page.evaluate(() => [...document.querySelectorAll("#image-actions a.download")].map((a) => a.getAttribute("href")));
      expect(links).toEqual([`/v1/images/${name}/archive?kind=tar&compression=gzip`, `/v1/images/${name}/archive?kind=oci`]);
      const downloaded = await page.evaluate(async (href) => (await fetch(href!)).headers.get("x-file-size"), links[0]);
      expect(Number(downloaded)).toBeGreaterThan(1000);
      const input = await page.$("#upload input[type=file]");
      await input!.uploadFile(tar);
      await page.type("#upload input[name=name]", `${name}-up`);
      await page.click("#upload button[type=submit]");
      await page.waitForFunction((n) => document.getElementById("upload-status")?.textContent === `Imported as image ${n}.`, { timeout: 30_000 }, `${name}-up`);
      expect(await page.evaluate(() => (document.getElementById("upload-progress") as HTMLProgressElement).value)).toBe(statSync(tar).size);
      await page.waitForFunction(
        (n) => document.querySelector(`#image-${n} td.origin`)?.textContent === "import-tar upload",
        { timeout: 20_000 },
        `${name}-up`,
      );
      expect(existsSync(join(t.pool, `${name}-up`, "bin/busybox"))).toBe(true);
      // a URL that answers 404: the job fails, the page says why, nothing is left in the pool
      await page.type("#pull input[name=url]", `http://127.0.0.1:${server.port}/images/missing.tar`);
      await page.select("#pull select[name=verify]", "no");
      await page.click("#pull button[type=submit]");
      await page.waitForFunction(() => document.getElementById("pull-status")?.textContent?.startsWith("Pull failed: "), { timeout: 30_000 });
      expect(existsSync(join(t.pool, "missing"))).toBe(false);
      // a slow pull: it shows among the jobs; cancelled from there, it fails saying so and leaves nothing
      await page.$eval("#pull", (f) => (f as HTMLFormElement).reset()); // the failed pull's values stay in the form
      await page.type("#pull input[name=url]", `http://127.0.0.1:${server.port}/images/slow.tar`);
      await page.type("#pull input[name=name]", `${name}-slow`);
      await page.select("#pull select[name=verify]", "no");
      await page.click("#pull button[type=submit]");
      await page.waitForSelector(`#transfers button[aria-label="Cancel pull of ${name}-slow"]`, { timeout: 20_000 });
      // the job is a transfer too (machinactl list-transfers sees it): once its record is there and
      // the page has refreshed, it is still one row, the job's
      const transfers = join(t.stateDir, "transfers");
      await waitFor(
        "the pull's transfer record",
        () => (existsSync(transfers) && readdirSync(transfers).some((n) => n.endsWith(".json"))) || undefined,
        20_000,
      );
      await Bun.sleep(2500); // one refresh of the page (REFRESH_MS) after it
      expect(await page.$$eval("#transfers tbody tr", (rows) => rows.map((r) => r.id))).toEqual([expect.stringMatching(/^job-/)]);
      await page.click(`#transfers button[aria-label="Cancel pull of ${name}-slow"]`);
      await page.waitForFunction(() => /^Pull failed: .*cancelled/.test(document.getElementById("pull-status")?.textContent ?? ""), { timeout: 20_000 });
      expect(readdirSync(t.pool).filter((n) => n.includes(`${name}-slow`))).toEqual([]);
      await page.waitForFunction(() => document.getElementById("transfers-section")?.hidden === true, { timeout: 20_000 });
      // bootstrap from the form, against a mirror on the loopback that has nothing: the build tool's
      // failure is the page's answer, and the pool has no trace of it
      const boot = `boot${process.pid % 10000}`;
      await page.type("#bootstrap input[name=name]", boot);
      await page.type("#bootstrap input[name=mirror]", `http://127.0.0.1:${server.port}/debian`);
      await page.click("#bootstrap button[type=submit]");
      await page.waitForFunction(() => document.getElementById("bootstrap-status")?.textContent?.startsWith("Bootstrap failed: "), { timeout: 60_000 });
      expect(readdirSync(t.pool).filter((n) => n.includes(boot))).toEqual([]);
      expect(await page.evaluate(() => document.getElementById("bootstrap-status")?.textContent)).toMatch(/^Bootstrap failed: .*(debootstrap|mmdebstrap)/);
    } finally {
      await page.close();
      server.stop(true);
    }
  }, 90_000);
});
