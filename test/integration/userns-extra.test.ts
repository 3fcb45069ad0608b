/**
 * The rest of issue 3's user-namespace work, checked from inside containers and side by side
 * with systemd-nspawn 252: --bind=…:idmap/:rootidmap, --bind-user on the Debian fixture,
 * --load-credential from a socket, Limit suffixes. Busybox and Debian COPIES only (never the
 * shared cache); every test removes what it made (scratch dirs, the host user, mounts). Root only.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { chownSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { debianCopy } from "../helpers/debian.ts";
import { NSPAWN_PROPAGATE_NOISE, Scratch, copyTree, haveSystemdNspawn, runNspawn, runSystemdNspawn } from "../helpers/machina.ts";

const T = 90_000;
const scratch = new Scratch();
afterEach(() => scratch.cleanup());
const REF = haveSystemdNspawn();

async function bbCopy(name: string): Promise<string> {
  const root = `${scratch.dir("machina-usx-")}/${name}`;
  copyTree(await ensureBusyboxImage(), root);
  return root;
}
const clean = (s: string) =>
  s
    .split("\n")
    .filter((l) => !NSPAWN_PROPAGATE_NOISE.test(l))
    .join("\n");
async function both(root: string, name: string, args: string[], cmd: string[], stateDir: string) {
  const m = await runNspawn(["-q", "--console=pipe", "-D", root, "-M", name, ...args, ...cmd], { stateDir }, scratch);
  if (m.code !== 0 || m.stderr !== "") throw new Error(`machina-nspawn exit ${m.code}: ${m.stderr}`);
  return m.stdout;
}
async function ref(root: string, name: string, args: string[], cmd: string[]) {
  const r = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-M", name, ...args, ...cmd], name);
  expect(r.code).toBe(0);
  return clean(r.stdout);
}
const owner = (p: string) => `${statSync(p).uid}:${statSync(p).gid}`;

/** A bind source owned by 1234 with a file of 1000 in it. */
function source(): string {
  const src = `${scratch.dir("machina-usx-src-")}/src`;
  mkdirSync(src);
  writeFileSync(`${src}/f`, "f");
  chownSync(`${src}/f`, 1000, 1000);
  chownSync(src, 1234, 1234);
  return src;
}
const LS = ["/bin/sh", "-c", "ls -lnd /tmp/m /tmp/m/f | awk '{print $1, $3, $4, $NF}'; touch /tmp/m/new && ls -ln /tmp/m/new | awk '{print $3, $4}'"];

describe("--bind=…:idmap / :rootidmap", () => {
  for (const [opt, args, inside, ondisk] of [
    ["idmap", ["--private-users=1048576"], "drwxr-xr-x 1234 1234 /tmp/m\n-rw-r--r-- 1000 1000 /tmp/m/f\n0 0\n", "0:0"],
    ["rootidmap", ["--private-users=1048576"], "drwxr-xr-x 0 0 /tmp/m\n-rw-r--r-- 65534 65534 /tmp/m/f\n0 0\n", "1234:1234"],
    ["rootidmap", [], "drwxr-xr-x 0 0 /tmp/m\n-rw-r--r-- 65534 65534 /tmp/m/f\n0 0\n", "1234:1234"],
  ] as Array<[string, string[], string, string]>) {
    test(
      `${opt} ${args.join(" ") || "(no user namespace)"}: owners inside, files made inside on disk — same as systemd-nspawn`,
      async () => {
        const name = scratch.name("ux");
        const root = await bbCopy(name);
        const src = source();
        const out = await both(root, name, [...args, `--bind=${src}:/tmp/m:${opt}`], LS, scratch.dir("machina-state-"));
        expect(out).toBe(inside);
        expect(owner(`${src}/new`)).toBe(ondisk);
        expect(owner(src)).toBe("1234:1234"); // nothing changed on disk
        if (REF) {
          Bun.spawnSync(["rm", "-f", `${src}/new`]);
          expect(await ref(root, name, [...args, `--bind=${src}:/tmp/m:${opt}`], LS)).toBe(inside);
          expect(owner(`${src}/new`)).toBe(ondisk);
        }
      },
      T,
    );
  }

  test(
    "idmap without a user namespace is a plain bind (systemd-nspawn 252 fails: documented difference); --bind-ro stays read-only",
    async () => {
      const name = scratch.name("ux");
      const root = await bbCopy(name);
      const src = source();
      const out = await both(
        root,
        name,
        [`--bind-ro=${src}:/tmp/m:idmap`],
        ["/bin/sh", "-c", "ls -ln /tmp/m/f | awk '{print $3}'; touch /tmp/m/x 2>/dev/null || echo ro"],
        scratch.dir("machina-state-"),
      );
      expect(out).toBe("1000\nro\n");
      if (REF) {
        const r = await runSystemdNspawn(["-q", "--console=pipe", "-D", root, "-M", name, `--bind=${src}:/tmp/m:idmap`, "/bin/true"], name);
        expect(r.code).not.toBe(0);
      }
    },
    T,
  );
});

describe("--load-credential from an AF_UNIX socket", () => {
  test(
    "the credential is what the socket sends — same as systemd-nspawn",
    async () => {
      const name = scratch.name("uc");
      const root = await bbCopy(name);
      const sock = `${scratch.dir("machina-usx-sock-")}/cred.sock`;
      const server = Bun.listen({
        unix: sock,
        socket: {
          open: (s) => {
            s.write("from-the-socket\n");
            s.end();
          },
          data() {},
        },
      });
      scratch.defer(() => server.stop(true));
      const cmd = ["/bin/sh", "-c", "cat $CREDENTIALS_DIRECTORY/tok; ls -l $CREDENTIALS_DIRECTORY/tok | awk '{print $1}'"];
      const out = await both(root, name, [`--load-credential=tok:${sock}`], cmd, scratch.dir("machina-state-"));
      expect(out).toBe("from-the-socket\n-r--------\n");
      if (REF) expect(await ref(root, name, [`--load-credential=tok:${sock}`], cmd)).toBe(out);
    },
    T,
  );
});

describe("Limit*= and --rlimit= suffixes", () => {
  test(
    "FSIZE=1M, CPU=2min, RTTIME=5ms — the same limits as systemd-nspawn",
    async () => {
      const name = scratch.name("ul");
      const root = await bbCopy(name);
      const args = ["--rlimit=FSIZE=1M", "--rlimit=CPU=2min", "--rlimit=RTTIME=5ms:1s"];
      const cmd = ["/bin/sh", "-c", "grep -E 'Max (cpu time|file size|realtime timeout)' /proc/self/limits"];
      const out = await both(root, name, args, cmd, scratch.dir("machina-state-"));
      expect(out).toMatch(/Max cpu time\s+120\s+120/);
      expect(out).toMatch(/Max file size\s+1048576\s+1048576/);
      expect(out).toMatch(/Max realtime timeout\s+5000\s+1000000/);
      if (REF) expect(await ref(root, name, args, cmd)).toBe(out);
    },
    T,
  );
});

describe("--bind-user on the Debian fixture", () => {
  test("home at /run/host/home/NAME, the user mapped at 60514, records for nss-systemd — identical to systemd-nspawn", async () => {
    const user = `mbu${process.pid % 100000}`;
    const add = Bun.spawnSync(["useradd", "-m", "-s", "/bin/bash", user], { stderr: "pipe" });
    expect(add.exitCode).toBe(0);
    scratch.defer(() => void Bun.spawnSync(["userdel", "-r", user], { stderr: "ignore" }));
    writeFileSync(`/home/${user}/marker`, "hello\n");
    const root = await debianCopy(scratch);
    // the fixture has no nss-systemd: give the copy the host's (same systemd 252) so that getent can see the records
    copyTree("/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2", `${root}/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2`);
    Bun.spawnSync(["sed", "-i", "s/^passwd:.*/passwd: files systemd/; s/^group:.*/group: files systemd/", `${root}/etc/nsswitch.conf`]);
    const name = scratch.name("ub");
    const cmd = [
      "/bin/sh",
      "-c",
      `cat /proc/self/uid_map /proc/self/gid_map; cat /run/host/home/${user}/marker; stat -c '%u:%g %a' /run/host/home/${user}; ls -l /run/host/userdb | awk 'NR>1 {print $1, $3, $NF}'; cat /run/host/userdb/${user}.user /run/host/userdb/${user}.group; getent passwd ${user}; id ${user}`,
    ];
    const out = await both(root, name, ["-U", `--bind-user=${user}`], cmd, scratch.dir("machina-state-"));
    expect(out).toContain("60514       ");
    expect(out).toContain("hello\n60514:60514 755\n");
    expect(out).toContain(`${user}:x:60514:60514:${user}:/run/host/home/${user}:/bin/bash\n`);
    expect(out).toContain(`uid=60514(${user}) gid=60514(${user}) groups=60514(${user})`);
    expect(out).toContain(`-rw------- root ${user}.user-privileged`);
    if (REF) expect(await ref(root, name, ["-U", `--bind-user=${user}`], cmd)).toBe(out);
  }, 180_000);
});
