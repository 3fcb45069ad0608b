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
