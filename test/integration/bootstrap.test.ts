/**
 * machinactl bootstrap with a real tree but no network: a stand-in `debootstrap` on PATH copies
 * the cached debootstrap tree of test/fixtures/images.ts into the temporary (the real tool
 * would download from a mirror, and tests reach only 127.0.0.1). Skipped, saying so, when that
 * cache does not exist. The plan itself is unit-tested (test/unit/transfer.test.ts).
 * Root only.
 */
import { afterAll, expect, test } from "bun:test";
import { spawn } from "bun";
import * as fs from "node:fs";
import { join } from "node:path";
import { fixtureCacheDir } from "../fixtures/images.ts";

const REPO = join(import.meta.dir, "../..");
const cached = fs.existsSync(fixtureCacheDir()) ? fs.readdirSync(fixtureCacheDir()).find((n) => /^debootstrap-bookworm-[0-9a-f]+$/.test(n)) : undefined;
const root = fs.mkdtempSync("/tmp/machina-bootstrap-");
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

test.skipIf(cached === undefined)(
  `bootstrap debian: build into .#, set up for boot, rename (${cached === undefined ? "SKIPPED: no cached debootstrap tree in " + fixtureCacheDir() + "; run a boot test first" : "stand-in debootstrap copies the cached tree"})`,
  () => {
    const bin = join(root, "bin");
    fs.mkdirSync(bin);
    // debootstrap --variant=minbase --include=… RELEASE TARGET MIRROR
    fs.writeFileSync(
      join(bin, "debootstrap"),
      `#!/bin/sh\n[ "$3" = bookworm ] || exit 3\necho "I: stand-in debootstrap"\nexec cp -a --reflink=auto ${join(fixtureCacheDir(), cached!)}/. "$4"\n`,
      { mode: 0o755 },
    );
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, MACHINA_POOL: join(root, "pool"), MACHINA_STATE_DIR: join(root, "state") };
    const r = Bun.spawnSync([join(REPO, "bin/machinactl"), "bootstrap", "deb", "debian", "bookworm"], { env, stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toContain('Bootstrapped image "deb"');
    expect(r.exitCode).toBe(0);
    const img = join(root, "pool/deb");
    expect(fs.readFileSync(join(img, "etc/machine-id"), "utf8")).toBe("");
    expect(fs.statSync(join(img, "etc/machine-id")).mode & 0o777).toBe(0o444);
    expect(fs.existsSync(join(img, "etc/hostname"))).toBe(false);
    expect(/^root::/m.test(fs.readFileSync(join(img, "etc/shadow"), "utf8"))).toBe(true);
    // The network units are enabled, as systemctl enable would (a -n guest gets its address at boot).
    const sys = join(img, "etc/systemd/system");
    expect(fs.readlinkSync(join(sys, "multi-user.target.wants/systemd-networkd.service"))).toMatch(
      /^(\/usr)?\/lib\/systemd\/system\/systemd-networkd\.service$/,
    );
    expect(fs.readlinkSync(join(sys, "sockets.target.wants/systemd-networkd.socket"))).toMatch(/\/systemd-networkd\.socket$/);
    expect(fs.readlinkSync(join(sys, "dbus-org.freedesktop.network1.service"))).toMatch(/\/systemd-networkd\.service$/);
    const resolved = ["usr/lib", "lib"].some((d) => fs.existsSync(join(img, d, "systemd/system/systemd-resolved.service")));
    expect(fs.existsSync(join(sys, "multi-user.target.wants/systemd-resolved.service"))).toBe(resolved);
    // The build tool's lines are the progress.
    expect(r.stderr.toString()).toContain("I: stand-in debootstrap");
    expect(fs.readdirSync(join(root, "pool")).filter((n) => n.startsWith(".#"))).toEqual([]);
    // Again without --force: refused, nothing new.
    const again = Bun.spawnSync([join(REPO, "bin/machinactl"), "bootstrap", "deb", "debian"], { env, stderr: "pipe" });
    expect(again.exitCode).toBe(1);
    expect(again.stderr.toString()).toContain("already exists");
  },
  120_000,
);

test("bootstrap is a transfer: list-transfers shows it, cancel-transfer stops the tool and leaves nothing", async () => {
  const dir = join(root, "cancel");
  const bin = join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  // a stand-in that starts filling the target, then waits (until killed)
  fs.writeFileSync(join(bin, "debootstrap"), `#!/bin/sh\nmkdir -p "$4/etc"\necho "I: Retrieving Packages"\nexec sleep 60\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, MACHINA_POOL: join(dir, "pool"), MACHINA_STATE_DIR: join(dir, "state") };
  const ctl = (...args: string[]) => Bun.spawnSync([join(REPO, "bin/machinactl"), ...args], { env, stdout: "pipe", stderr: "pipe" });
  const p = spawn([join(REPO, "bin/machinactl"), "bootstrap", "slow", "debian", "bookworm"], { env, stdout: "pipe", stderr: "pipe" });
  try {
    let rows: Array<{ id: number; type: string; local: string; remote: string }> = [];
    for (let i = 0; i < 200 && rows.length === 0; i++) {
      await Bun.sleep(50);
      rows = JSON.parse(ctl("list-transfers", "--json=short").stdout.toString() || "[]");
    }
    expect(rows).toEqual([expect.objectContaining({ type: "bootstrap", local: "slow", remote: "debian bookworm" })]);
    expect(ctl("cancel-transfer", String(rows[0]!.id)).exitCode).toBe(0);
    expect(await p.exited).toBe(1);
    expect(await new Response(p.stderr).text()).toContain("cancelled");
    expect(fs.readdirSync(join(dir, "pool"))).toEqual([]);
    expect(JSON.parse(ctl("list-transfers", "--json=short").stdout.toString())).toEqual([]);
  } finally {
    p.kill("SIGKILL");
  }
}, 60_000);

test("machinad: bootstrap as a job (the tool's lines its events; cancelled, nothing left); machinactl's transfers listed and cancelled through the API", async () => {
  const dir = join(root, "api");
  const bin = join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(join(dir, "run"), { mode: 0o700 });
  // a stand-in: for the release "quick" the busybox test image as the tree; otherwise it waits (until killed)
  const { ensureBusyboxImage } = await import("../fixtures/images.ts");
  const busybox = await ensureBusyboxImage();
  fs.writeFileSync(
    join(bin, "debootstrap"),
    `#!/bin/sh\necho "I: stand-in for $3"\nif [ "$3" = quick ]; then exec cp -a ${busybox}/. "$4"; fi\nmkdir -p "$4/etc"\nexec sleep 60\n`,
    { mode: 0o755 },
  );
  const socket = join(dir, "run/api.sock");
  const env = {
    ...(process.env as Record<string, string>),
    PATH: `${bin}:${process.env.PATH}`,
    MACHINA_POOL: join(dir, "pool"),
    MACHINA_STATE_DIR: join(dir, "state"),
    MACHINA_API_SOCKET: socket,
  };
  fs.mkdirSync(join(dir, "pool"));
  const daemon = spawn([join(REPO, "bin/machinad"), "--no-autostart"], { env, stdout: "ignore", stderr: "ignore" });
  const { MachinaClient } = await import("../../src/client/client.ts");
  const client = new MachinaClient(socket);
  let cli: ReturnType<typeof spawn> | undefined;
  try {
    for (let i = 0; !(await client.ping(200)); i++) {
      if (i > 100) throw new Error("machinad did not start");
      await Bun.sleep(50);
    }
    // a job that ends: the image made, the tool's line among the events
    const events: string[] = [];
    expect(
      await client.bootstrap({ name: "quick", distro: "debian", release: "quick" }, { onProgress: (e) => e.message !== undefined && events.push(e.message) }),
    ).toEqual({
      image: "quick",
      from: "debian quick",
    });
    expect(events).toContain("I: stand-in for quick");
    expect(fs.existsSync(join(dir, "pool/quick/bin/busybox"))).toBe(true);
    // a job cancelled while the tool runs: nothing of it stays
    const ac = new AbortController();
    const slow = client.bootstrap(
      { name: "slow", distro: "debian", release: "slow" },
      { signal: ac.signal, onProgress: (e) => e.message?.includes("stand-in") && ac.abort() },
    );
    expect(slow).rejects.toMatchObject({ code: "E_CANCELLED" });
    await slow.catch(() => undefined);
    expect(fs.readdirSync(join(dir, "pool")).filter((n) => n.includes("slow"))).toEqual([]);
    // machinactl's own transfer: listed by the API, cancelled through it
    cli = spawn([join(REPO, "bin/machinactl"), "bootstrap", "cli", "debian", "wait"], { env, stdout: "ignore", stderr: "ignore" });
    let transfers: Awaited<ReturnType<typeof client.transfers>> = [];
    for (let i = 0; i < 200 && transfers.length === 0; i++) {
      await Bun.sleep(50);
      transfers = await client.transfers();
    }
    expect(transfers).toEqual([expect.objectContaining({ type: "bootstrap", local: "cli", remote: "debian wait" })]);
    await client.cancelTransfer(transfers[0]!.id);
    expect(await cli.exited).toBe(1);
    expect(await client.transfers()).toEqual([]);
    expect(client.cancelTransfer(transfers[0]!.id)).rejects.toMatchObject({ code: "E_NOT_FOUND" });
    expect(fs.readdirSync(join(dir, "pool")).filter((n) => n.includes("cli"))).toEqual([]);

    // machinad's own job (a bootstrap through the API, as the dashboard starts it): machinactl
    // list-transfers shows it (machinad's pid, its job), cancel-transfer cancels the job through
    // machinad — not a SIGTERM to machinad's pid — and nothing of it stays
    const ctl = (...args: string[]) => Bun.spawnSync([join(REPO, "bin/machinactl"), ...args], { env, stdout: "pipe", stderr: "pipe" });
    // its outcome taken at once: it rejects (cancelled) while this test is still checking other things
    const job = client.bootstrap({ name: "byjob", distro: "debian", release: "wait" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    let rows: Array<{ id: number; type: string; local: string; remote: string; pid: number; job?: string }> = [];
    for (let i = 0; i < 200 && rows.length === 0; i++) {
      await Bun.sleep(50);
      rows = JSON.parse(ctl("list-transfers", "--json=short").stdout.toString() || "[]");
    }
    expect(rows).toEqual([expect.objectContaining({ type: "bootstrap", local: "byjob", remote: "debian wait", pid: daemon.pid, job: expect.any(String) })]);
    expect(ctl("list-transfers", "--no-legend").stdout.toString()).toMatch(new RegExp(`^${rows[0]!.id}\\s+n/a\\s+bootstrap\\s+byjob\\s+debian wait\\s*$`, "m"));
    // without machinad to ask (MACHINA_NO_DAEMON=1): one line, nothing signalled
    const alone = Bun.spawnSync([join(REPO, "bin/machinactl"), "cancel-transfer", String(rows[0]!.id)], {
      env: { ...env, MACHINA_NO_DAEMON: "1" },
      stderr: "pipe",
    });
    expect([alone.exitCode, alone.stderr.toString()]).toEqual([
      1,
      `machinactl: transfer ${rows[0]!.id} runs in machinad (job ${rows[0]!.job}), which does not answer: it is cancelled through machinad only\nmachinactl: hint: machinactl cancel-transfer ${rows[0]!.id} once machinad answers (or DELETE /v1/jobs/${rows[0]!.job} on its API)\n`,
    ]);
    const cancel = ctl("cancel-transfer", String(rows[0]!.id));
    expect([cancel.exitCode, cancel.stderr.toString()]).toEqual([0, ""]);
    expect(await job).toMatchObject({ code: "E_CANCELLED" });
    expect(JSON.parse(ctl("list-transfers", "--json=short").stdout.toString())).toEqual([]);
    expect(fs.readdirSync(join(dir, "pool")).filter((n) => n.includes("byjob"))).toEqual([]);
    expect(await client.ping(1000)).toBe(true); // machinad itself is untouched
  } finally {
    cli?.kill("SIGKILL");
    daemon.kill("SIGTERM");
    await daemon.exited;
  }
}, 90_000);
