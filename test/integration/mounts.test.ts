/**
 * Mounts from inside a busybox container (root): --bind/--bind-ro (rbind vs norbind, '+',
 * temporary source), --tmpfs, --overlay/--overlay-ro, --inaccessible, --volatile, --pivot-root,
 * --link-journal, -x (also after SIGKILL of the payload and of the supervisor), --template;
 * and side by side with systemd-nspawn 252 for binds, tmpfs, overlays and volatile modes.
 * Every test removes what it made (mounts, temporary directories) even when it fails.
 * Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import {
  NOTHING,
  Scratch,
  copyTree,
  findMount,
  haveSystemdNspawn,
  leftovers,
  mountFlags,
  newLeftovers,
  parseProbe,
  runNspawn,
  runSystemdNspawn,
  startNspawn,
  waitFor,
  waitForState,
  type ProbeReport,
} from "../helpers/machina.ts";

const T = 60_000;
const files = new Scratch();
const scratch = new Scratch();
let image: string; // shared cached tree: read-only use
let stateDir: string;

beforeAll(async () => {
  image = await ensureBusyboxImage();
  stateDir = files.dir("machina-state-");
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

/** A writable copy of the busybox tree; its directory name is a unique machine name. */
function copy(prefix = "mnt"): { dir: string; name: string } {
  const name = scratch.name(prefix);
  const dir = `${scratch.dir()}/${name}`;
  copyTree(image, dir);
  return { dir, name };
}

/** The same tree with /bin, /sbin merged into /usr (what --volatile=yes needs). */
function mergedUsrCopy(): { dir: string; name: string } {
  const c = copy("mu");
  for (const d of ["bin", "sbin"]) {
    for (const e of readdirSync(`${c.dir}/${d}`)) if (!existsSync(`${c.dir}/usr/${d}/${e}`)) renameSync(`${c.dir}/${d}/${e}`, `${c.dir}/usr/${d}/${e}`);
    rmSync(`${c.dir}/${d}`, { recursive: true });
    symlinkSync(`usr/${d}`, `${c.dir}/${d}`);
  }
  return c;
}

function varTmp(): string[] {
  return readdirSync("/var/tmp").filter((e) => e.startsWith("machina-temp-"));
}

/** Remove our temporary directories in /var/tmp that a failing test may have left. */
function cleanVarTmp(before: string[]): void {
  for (const e of varTmp()) if (!before.includes(e)) rmSync(`/var/tmp/${e}`, { recursive: true, force: true });
}

async function probeIn(dir: string, name: string, args: string[]): Promise<ProbeReport> {
  const r = await runNspawn(["-q", "--console=pipe", "-D", dir, "-M", name, ...args, "/usr/bin/probe"], { stateDir }, scratch);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return parseProbe(r.stdout);
}

async function sh(dir: string, name: string, args: string[], script: string, env: Record<string, string> = {}) {
  return runNspawn(["-q", "--console=pipe", "-D", dir, "-M", name, ...args, "/bin/sh", "-c", script], { stateDir, env }, scratch);
}

describe("--bind, --bind-ro", () => {
  test(
    "rbind shows a submount of the source, norbind does not; --bind-ro refuses writes (submounts too)",
    async () => {
      const c = copy();
      const src = scratch.dir("machina-bindsrc-");
      mkdirSync(`${src}/sub`);
      Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", `${src}/sub`]);
      writeFileSync(`${src}/sub/marker`, "x");
      const r = await sh(
        c.dir,
        c.name,
        [`--bind=${src}:/r`, `--bind=${src}:/n:norbind`, `--bind-ro=${src}:/ro`],
        "cat /r/sub/marker; echo; ls /n/sub | wc -l; touch /ro/f 2>/dev/null && echo w1; touch /ro/sub/f 2>/dev/null && echo w2; touch /r/ok && echo rw",
      );
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n").slice(0, 3)).toEqual(["x", "0", "rw"]);
      expect(existsSync(`${src}/ok`)).toBe(true);
    },
    T,
  );

  test(
    "'+' source is taken inside the image, and a symlink in the image cannot lead out of it",
    async () => {
      const c = copy();
      mkdirSync(`${c.dir}/srv/data`, { recursive: true });
      writeFileSync(`${c.dir}/srv/data/f`, "inside\n");
      symlinkSync("/etc", `${c.dir}/escape`); // inside the image: its own /etc, not the host's
      const r = await sh(
        c.dir,
        c.name,
        ["--bind=+/srv/data:/d", "--bind-ro=+/escape:/e"],
        "cat /d/f; test -e /e/os-release && echo image-etc; test -e /e/hostname-of-host || echo not-host",
      );
      expect(r.stdout).toBe("inside\nimage-etc\nnot-host\n");
    },
    T,
  );

  test(
    "empty source: a fresh directory below /var/tmp, removed after the container exits",
    async () => {
      const before = varTmp();
      try {
        const c = copy();
        const r = await sh(
          c.dir,
          c.name,
          ["--bind=:/scratch"],
          "touch /scratch/f && ls -ld /scratch | cut -c1-10 && grep ' /scratch ' /proc/self/mountinfo | cut -d' ' -f4",
        );
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/^drwxr-xr-x\n\/var\/tmp\/machina-temp-[0-9a-f]+\/src\n$/);
        expect(varTmp()).toEqual(before);
      } finally {
        cleanVarTmp(before);
      }
    },
    T,
  );
});

describe("--tmpfs, --inaccessible", () => {
  test(
    "tmpfs with default and given options; inaccessible file and directory",
    async () => {
      const c = copy();
      const r = await probeIn(c.dir, c.name, ["--tmpfs=/t1", "--tmpfs=/t2:mode=0700,size=1m", "--inaccessible=/etc/passwd", "--inaccessible=/home"]);
      const t1 = findMount(r, "/t1")!;
      const t2 = findMount(r, "/t2")!;
      expect([t1.fsType, mountFlags(t1.options), t1.superOptions]).toEqual(["tmpfs", "rw,nodev", "rw,mode=755"]);
      expect([t2.fsType, mountFlags(t2.options), t2.superOptions]).toEqual(["tmpfs", "rw,nodev", "rw,size=1024k,mode=700"]);
      expect(mountFlags(findMount(r, "/etc/passwd")!.options)).toMatch(/^ro/);
      expect(findMount(r, "/home")!.fsType).toBe("tmpfs");
      const s = await sh(
        c.dir,
        c.name,
        ["--inaccessible=/etc/passwd", "--inaccessible=/home"],
        "cat /etc/passwd | wc -c; ls /home 2>&1 | head -c 0; touch /etc/passwd 2>/dev/null || echo ro",
      );
      expect(s.stdout).toBe("0\nro\n");
    },
    T,
  );
});

describe("--overlay, --overlay-ro", () => {
  test(
    "writes land in the top layer; the work dir is a removed .# sibling; read-only overlay refuses writes",
    async () => {
      const c = copy();
      const d = scratch.dir("machina-ovl-");
      for (const x of ["low", "up"]) mkdirSync(`${d}/${x}`);
      writeFileSync(`${d}/low/base`, "low\n");
      const r = await sh(
        c.dir,
        c.name,
        [`--overlay=${d}/low:${d}/up:/o`, `--overlay-ro=${d}/low:${d}/up:/ro`],
        "cat /o/base; echo new > /o/new; rm /o/base; touch /ro/x 2>/dev/null || echo ro-refused; ls /ro",
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("low\nro-refused\nnew\n"); // the read-only view: up (new, base whited out) over low
      expect(readFileSync(`${d}/up/new`, "utf8")).toBe("new\n");
      expect(lstatSync(`${d}/up/base`).isCharacterDevice()).toBe(true); // the whiteout
      expect(readFileSync(`${d}/low/base`, "utf8")).toBe("low\n");
      expect(readdirSync(d).sort()).toEqual(["low", "up"]);
    },
    T,
  );

  test(
    "'+' lower with an empty upper: the image's directory made writable, the changes vanish",
    async () => {
      const before = varTmp();
      try {
        const c = copy();
        const r = await sh(c.dir, c.name, ["--overlay=+/etc::/etc"], "echo x > /etc/new && cat /etc/new");
        expect(r.stdout).toBe("x\n");
        expect(existsSync(`${c.dir}/etc/new`)).toBe(false);
        expect(varTmp()).toEqual(before);
      } finally {
        cleanVarTmp(before);
      }
    },
    T,
  );
});

describe("--volatile", () => {
  test(
    "yes: tmpfs root, /usr read-only from the image; writes to / vanish",
    async () => {
      const c = mergedUsrCopy();
      const r = await sh(
        c.dir,
        c.name,
        ["--volatile=yes"],
        'touch /x && echo root-rw; touch /usr/x 2>/dev/null || echo usr-ro; awk \'$5=="/" || $5=="/usr" {for (i = 7; i <= NF; i++) if ($i == "-") { print $5, $(i+1); break }}\' /proc/self/mountinfo',
      );
      expect(r.stdout).toBe("root-rw\nusr-ro\n/ tmpfs\n/usr ext4\n".replace("ext4", findFs(c.dir)));
      expect(existsSync(`${c.dir}/x`)).toBe(false);
    },
    T,
  );

  test(
    "state: read-only root, writable tmpfs /var",
    async () => {
      const c = copy();
      const r = await sh(c.dir, c.name, ["--volatile=state"], "touch /x 2>/dev/null || echo root-ro; touch /var/x && echo var-rw");
      expect(r.stdout).toBe("root-ro\nvar-rw\n");
      expect(existsSync(`${c.dir}/var/x`)).toBe(false);
    },
    T,
  );

  test(
    "overlay: everything writable, nothing reaches the image",
    async () => {
      const c = copy();
      const r = await sh(c.dir, c.name, ["--volatile=overlay"], "touch /x /usr/x /etc/x && echo ok");
      expect(r.stdout).toBe("ok\n");
      for (const p of ["x", "usr/x", "etc/x"]) expect(existsSync(`${c.dir}/${p}`)).toBe(false);
    },
    T,
  );
});

function findFs(dir: string): string {
  return Bun.spawnSync(["stat", "-f", "-c", "%T", dir]).stdout.toString().trim().replace("ext2/ext3", "ext4");
}

describe("--pivot-root", () => {
  test(
    "a directory of the image becomes /, the old root appears at the given path",
    async () => {
      const c = copy();
      const inner = `${c.dir}/deploy/a`;
      mkdirSync(`${c.dir}/deploy`);
      copyTree(image, inner);
      writeFileSync(`${inner}/which`, "inner\n");
      const r = await sh(c.dir, c.name, ["--pivot-root=/deploy/a:/sysroot"], "cat /which; test -d /sysroot/deploy/a && echo old-root");
      expect(r.stdout).toBe("inner\nold-root\n");
      const r2 = await sh(c.dir, c.name, ["--pivot-root=/deploy/a"], "cat /which; ls /sysroot 2>/dev/null | wc -l");
      expect(r2.stdout).toBe("inner\n0\n");
    },
    T,
  );
});

describe("--link-journal", () => {
  const ID = "0123456789abcdef0123456789abcdef";
  function setup() {
    const c = copy();
    writeFileSync(`${c.dir}/etc/machine-id`, `${ID}\n`);
    const j = scratch.dir("machina-journal-");
    return { ...c, j, env: { MACHINA_HOST_JOURNAL_DIR: j } };
  }
  test(
    "host: the host directory is created and bind-mounted; auto then binds it again",
    async () => {
      const s = setup();
      const r = await sh(s.dir, s.name, ["--link-journal=host"], `echo hi > /var/log/journal/${ID}/f`, s.env);
      expect(r.code).toBe(0);
      expect(readFileSync(`${s.j}/${ID}/f`, "utf8")).toBe("hi\n");
      const r2 = await sh(s.dir, s.name, [], `cat /var/log/journal/${ID}/f`, s.env);
      expect(r2.stdout).toBe("hi\n");
    },
    T,
  );
  test(
    "guest: the journal stays in the image, the host gets a symlink; try-host without a host dir is fine",
    async () => {
      const s = setup();
      const r = await sh(s.dir, s.name, ["--link-journal=guest"], `echo g > /var/log/journal/${ID}/f`, s.env);
      expect(r.code).toBe(0);
      expect(readlinkSync(`${s.j}/${ID}`)).toBe(`${s.dir}/var/log/journal/${ID}`);
      expect(readFileSync(`${s.j}/${ID}/f`, "utf8")).toBe("g\n");
      const r2 = await sh(s.dir, s.name, ["--link-journal=try-host"], "true", { MACHINA_HOST_JOURNAL_DIR: `${s.j}/missing` });
      expect(r2.code).toBe(0);
      const r3 = await sh(s.dir, s.name, ["--link-journal=host"], "true", { MACHINA_HOST_JOURNAL_DIR: `${s.j}/missing` });
      expect(r3.code).toBe(1);
    },
    T,
  );
});

describe("-x, --ephemeral", () => {
  test(
    "writes vanish; nothing left in /var/tmp, in the mount table or the state dir",
    async () => {
      const before = leftovers(stateDir);
      const tmpBefore = varTmp();
      const c = copy();
      const r = await sh(c.dir, c.name, ["-x"], "echo x > /etc/eph && cat /etc/eph");
      expect(r.stdout).toBe("x\n");
      expect(existsSync(`${c.dir}/etc/eph`)).toBe(false);
      expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
      expect(varTmp()).toEqual(tmpBefore);
    },
    T,
  );

  test(
    "SIGKILL of the payload, then of the supervisor: nothing stays, the next start works",
    async () => {
      const before = leftovers(stateDir);
      const c = copy();
      for (const victim of ["payload", "supervisor"] as const) {
        const bg = startNspawn(["-q", "--console=pipe", "-D", c.dir, "-M", c.name, "-x", "/bin/sh", "-c", "echo x > /eph; sleep 100"], { stateDir }, scratch);
        const st = await waitForState(stateDir, c.name, undefined, 10_000, bg);
        await waitFor("the payload's write", () => Bun.spawnSync(["sh", "-c", `cat /proc/${st.leader}/root/eph`]).stdout.toString() === "x\n" || undefined);
        process.kill(victim === "payload" ? st.leader : st.supervisor, "SIGKILL");
        await bg.exited;
        await waitFor("the container to be gone", () => (existsSync(`/proc/${st.leader}`) ? undefined : true));
        expect(existsSync(`${c.dir}/eph`)).toBe(false);
      }
      const r = await sh(c.dir, c.name, ["-x"], "test -e /eph || echo clean");
      expect(r.stdout).toBe("clean\n");
      const left = newLeftovers(before, leftovers(stateDir));
      expect(left.mounts).toEqual([]);
    },
    T,
  );

  test(
    "a temporary --bind source left by a SIGKILLed supervisor is removed at the next start",
    async () => {
      const before = varTmp();
      try {
        const c = copy();
        const bg = startNspawn(["-q", "--console=pipe", "-D", c.dir, "-M", c.name, "--bind=:/s", "/bin/sleep", "100"], { stateDir }, scratch);
        const st = await waitForState(stateDir, c.name, undefined, 10_000, bg);
        process.kill(st.supervisor, "SIGKILL");
        await bg.exited;
        await waitFor("the container to be gone", () => (existsSync(`/proc/${st.leader}`) ? undefined : true));
        expect(varTmp().filter((e) => !before.includes(e)).length).toBe(1); // what nspawn leaves too
        const r = await sh(c.dir, c.name, ["--bind=:/s"], "true");
        expect(r.code).toBe(0);
        expect(varTmp()).toEqual(before);
      } finally {
        cleanVarTmp(before);
      }
    },
    T,
  );
});

describe("--template", () => {
  test(
    "a missing directory is populated once, via a .# temporary; an existing one is left alone",
    async () => {
      const parent = scratch.dir("machina-tpl-");
      const name = scratch.name("tpl");
      const dir = `${parent}/${name}`;
      const r = await sh(dir, name, [`--template=${image}`], "echo made > /made");
      expect(r.code).toBe(0);
      expect(readFileSync(`${dir}/made`, "utf8")).toBe("made\n");
      expect(readdirSync(parent)).toEqual([name]);
      const r2 = await sh(dir, name, [`--template=${image}`], "cat /made");
      expect(r2.stdout).toBe("made\n");
    },
    T,
  );
});

describe.skipIf(!haveSystemdNspawn())("side by side with systemd-nspawn 252", () => {
  /** "MOUNTPOINT FSTYPE FLAGS" of the entries at the given paths, after the mount root. */
  function entries(r: ProbeReport, points: string[]): string[] {
    return points.map((p) => {
      const m = findMount(r, p);
      return m === undefined ? `${p} -` : `${p} ${m.fsType} ${mountFlags(m.options)} ${m.root === "/" ? "" : "bind"}`.trim();
    });
  }
  async function both(dir: string, name: string, args: string[], points: string[]): Promise<[string[], string[]]> {
    const ours = await probeIn(dir, name, args);
    const ref = await runSystemdNspawn(["-q", "--console=pipe", "-D", dir, "-M", name, ...args, "/usr/bin/probe"], name, { stateDir });
    expect(ref.code).toBe(0);
    return [entries(ours, points), entries(parseProbe(ref.stdout), points)];
  }

  test(
    "binds, tmpfs, overlays: the same mount entries",
    async () => {
      const before = varTmp();
      try {
        const c = copy();
        const d = scratch.dir("machina-sbs-");
        for (const x of ["src/sub", "low", "up"]) mkdirSync(`${d}/${x}`, { recursive: true });
        Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", `${d}/src/sub`]);
        const args = [
          `--bind=${d}/src:/b1`,
          `--bind=${d}/src:/b2:norbind`,
          `--bind-ro=${d}/src:/b3`,
          "--bind=:/b4",
          "--bind=+/etc:/b5",
          "--tmpfs=/t1",
          "--tmpfs=/t2:mode=0700,size=1m",
          `--overlay=${d}/low:${d}/up:/o1`,
          `--overlay-ro=${d}/low:${d}/up:/o2`,
          "--overlay=+/etc::/o3",
        ];
        const points = ["/b1", "/b1/sub", "/b2", "/b2/sub", "/b3", "/b3/sub", "/b4", "/b5", "/t1", "/t2", "/o1", "/o2", "/o3"];
        const [ours, ref] = await both(c.dir, c.name, args, points);
        expect(ours).toEqual(ref);
      } finally {
        cleanVarTmp(before);
      }
    },
    T,
  );

  test(
    "volatile modes: the same root, /usr and /var entries",
    async () => {
      const c = mergedUsrCopy();
      for (const mode of ["yes", "state", "overlay"]) {
        const [ours, ref] = await both(c.dir, c.name, [`--volatile=${mode}`], ["/", "/usr", "/var"]);
        expect(ours).toEqual(ref);
      }
    },
    T,
  );
});
