/**
 * Containers of another architecture (docs/architectures.md): a Debian bookworm arm64 image made
 * by `machinactl bootstrap --arch=arm64` (test/fixtures/images.ts, cached), run and booted on
 * this x86-64 host under qemu-user through binfmt_misc. binfmt_misc is the host's: each test
 * checks that its entries are exactly as before once the container is gone, and removes an
 * entry of machina's that a failed test left.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "bun";
import { ensureArm64Image } from "../fixtures/images.ts";
import { baseEnv, REPO, runNspawn, Scratch, startNspawn, waitFor, waitForState } from "../helpers/machina.ts";
import { LinuxHost } from "../../src/host/linux.ts";
import { terminateMachine } from "../../src/machine/machines.ts";

const BINFMT = "/proc/sys/fs/binfmt_misc";
const OURS = "machina-qemu-aarch64";
const MACHINACTL = `${REPO}/bin/machinactl`;
const X86 = spawnSync(["uname", "-m"]).stdout.toString().trim() === "x86_64";

/** The names of binfmt_misc's entries (none when it is not mounted). */
const entries = () => (existsSync(`${BINFMT}/register`) ? readdirSync(BINFMT).filter((n) => n !== "register" && n !== "status") : []).sort();

/** An enabled entry of the host's own (not machina's) that runs arm64 programs in containers (flag F). */
function hostHandler(): string | undefined {
  return entries().find((n) => {
    if (n === OURS) return false;
    const text = readFileSync(`${BINFMT}/${n}`, "utf8");
    return /^enabled$/m.test(text) && /^flags: .*F/m.test(text) && /^magic 7f454c460201010000000000000000000200b700/m.test(text);
  });
}

function machinactl(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync([MACHINACTL, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe.skipIf(!X86)("an arm64 image on this x86-64 host, under qemu-user", () => {
  const scratch = new Scratch();
  let image: string;
  let stateDir: string;
  let before: string[];
  beforeAll(async () => {
    image = await ensureArm64Image();
    stateDir = scratch.dir("machina-arch-state-");
    before = entries().filter((n) => n !== OURS);
    scratch.defer(() => {
      // a failed test may leave machina's entry: remove it (and its record) when it was not there before
      if (!before.includes(OURS) && existsSync(`${BINFMT}/${OURS}`)) writeFileSync(`${BINFMT}/${OURS}`, "-1");
      spawnSync(["rm", "-rf", `/run/machina/binfmt/${OURS}.added`, `/run/machina/binfmt/${OURS}.claims`]);
    });
  }, 900_000);
  afterAll(() => scratch.cleanup());
  const binfmtAsBefore = () => waitFor("binfmt_misc's entries as before", () => JSON.stringify(entries()) === JSON.stringify(before) || undefined, 15_000, 50);

  test("a command: uname -m says aarch64, with no qemu in the image; machina's binfmt entry is gone afterwards", async () => {
    const name = scratch.name("arm");
    const r = await runNspawn(
      ["-q", "-x", "-D", image, "-M", name, "/bin/sh", "-c", "uname -m; ls /usr/bin | grep -c qemu || true"],
      { stateDir, timeoutMs: 60_000 },
      scratch,
    );
    expect(r.lines).toEqual([]);
    expect(r.stdout).toBe("aarch64\n0\n");
    expect(r.code).toBe(0);
    expect(entries()).toEqual(before);
  });

  test.skipIf(hostHandler() !== undefined)("no qemu-user-static (MACHINA_QEMU_DIR empty): one line naming the package; nothing left behind", async () => {
    const name = scratch.name("arm");
    const empty = scratch.dir("machina-noqemu-");
    const r = await runNspawn(["-x", "-D", image, "-M", name, "uname", "-m"], { stateDir, env: { MACHINA_QEMU_DIR: empty } }, scratch);
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      `machina-nspawn: machine "${name}" (/usr/lib/systemd/systemd) is arm64 (aarch64): this x86_64 host runs its programs only through qemu-user, and has neither a binfmt_misc handler for them nor qemu-aarch64-static`,
      "machina-nspawn: hint: apt-get install qemu-user-static",
    ]);
    expect(r.stdout).toBe("");
    expect(entries()).toEqual(before);
    expect(existsSync(`/run/machina/binfmt/${OURS}.claims`)).toBe(false);
    expect(readdirSync(stateDir).filter((d) => d === "machines" && readdirSync(`${stateDir}/machines`).length > 0)).toEqual([]);
  });

  test("SIGTERM to machina-nspawn -b halts the emulated systemd (its SIGRTMIN+3, through qemu's shifted real-time signals): exit 0, not rescue mode", async () => {
    const name = scratch.name("arm");
    const bg = startNspawn(["-q", "-x", "-b", "-D", image, "-M", name, "--console=pipe"], { stateDir }, scratch);
    const st = await waitForState(stateDir, name, undefined, 60_000, bg);
    await waitFor(
      `${name}'s systemd up`,
      () => {
        const out = spawnSync(["nsenter", "-t", String(st.leader), "-a", "/bin/systemctl", "is-system-running"])
          .stdout.toString()
          .trim();
        return out === "running" || out === "degraded" ? out : undefined;
      },
      180_000,
      500,
    );
    bg.proc.kill("SIGTERM");
    // before: SIGRTMIN+3 arrived as SIGRTMIN+1 — rescue mode, and the container stayed
    expect(await Promise.race([bg.exited, Bun.sleep(90_000).then(() => "still running")])).toBe(0);
    await binfmtAsBefore();
  }, 300_000);

  test("machinactl start boots it to running; shell, list, status and image-status; poweroff; binfmt as before", async () => {
    const name = scratch.name("arm");
    const pool = scratch.dir("machina-arch-pool-");
    mkdirSync(`${pool}/p`);
    expect(spawnSync(["cp", "-a", "--reflink=auto", image, `${pool}/p/${name}`]).exitCode).toBe(0);
    const env = baseEnv({ MACHINA_POOL: `${pool}/p`, MACHINA_STATE_DIR: stateDir, MACHINA_NO_DAEMON: "1" });
    scratch.defer(() => void machinactl(env, "terminate", name));
    const started = machinactl(env, "start", name);
    expect(started.stderr).toBe("");
    expect(started.code).toBe(0);
    expect(entries()).toContain(hostHandler() ?? OURS);

    // systemd answers once its manager is up (emulated, that takes a few seconds)
    const state = await waitFor(
      `${name}'s systemd`,
      () => machinactl(env, "shell", name, "/bin/systemctl", "is-system-running", "--wait").stdout.trim() || undefined,
      120_000,
      500,
    );
    expect(state).toBe("running");
    expect(machinactl(env, "shell", name, "/bin/sh", "-c", "uname -m; systemctl --failed --no-legend | wc -l").stdout).toBe("aarch64\n0\n");

    const list = machinactl(env, "list").stdout;
    expect(list).toMatch(/^MACHINE +CLASS +SERVICE +OS +VERSION +ARCH +ADDRESSES$/m);
    // its veth is addressed from outside (networkd cannot run under qemu-user)
    expect(list).toMatch(new RegExp(`^${name} +container +machina-nspawn +debian +12 +arm64 +10\\.\\d+\\.\\d+\\.\\d+`, "m"));
    expect(machinactl(env, "status", name).stdout).toContain("    Architecture: arm64 (emulated: qemu-user)\n");
    expect(machinactl(env, "image-status", name).stdout).toContain("\t    Arch: arm64\n");
    expect(JSON.parse(machinactl(env, "list", "--json=short").stdout)).toContainEqual(expect.objectContaining({ machine: name, architecture: "arm64" }));

    // poweroff: SIGRTMIN+4 reaches the emulated init as SIGRTMIN+4 (sent from inside), not emergency mode
    const off = machinactl(env, "poweroff", name);
    expect(off.code).toBe(0);
    await waitFor(`${name} to power off`, () => !machinactl(env, "list").stdout.includes(name) || undefined, 60_000, 200);
    // the supervisor's at-exit command releases the entry; the registry entry may go a moment before it ends
    await binfmtAsBefore();

    // terminate: a booted init halts (SIGRTMIN+3 from inside) instead of being killed after the timeout
    expect(machinactl(env, "start", name).code).toBe(0);
    await waitFor(
      `${name}'s systemd again`,
      () => machinactl(env, "shell", name, "/bin/systemctl", "is-system-running", "--wait").stdout.trim() || undefined,
      120_000,
      500,
    );
    const ctx = { host: new LinuxHost(), paths: { helper: `${REPO}/native/build/machina-helper`, stateDir, pool: [`${pool}/p`] } };
    expect(await terminateMachine(ctx, name, { timeoutMs: 30_000 })).toBe("stopped");
    await binfmtAsBefore();
  }, 300_000);
});
