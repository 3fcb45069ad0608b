/**
 * machinad's logs, exec and bind routes, for real (root): exec through the API runs confined exactly as
 * `machinactl exec` (same namespaces as the leader, the same Seccomp/NoNewPrivs/capability lines),
 * its exit status and output come back; logs gives the console's lines, follow streams a line the
 * container writes after the request started, and a client that disconnects stops the follower
 * (machinad's fd count returns). Root only.
 */
import { describe, expect, test } from "bun:test";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MachinaClient } from "../../src/client/client.ts";
import { addImage, daemonSuite, fdCount, initUp, machinactl, startDaemon } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/machina.ts";

const { t, scratch } = daemonSuite();

/** The confinement lines of /proc/self/status. */
function confinement(status: string): string[] {
  return status.split("\n").filter((l) => /^(Seccomp|Seccomp_filters|NoNewPrivs|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Uid|Gid):/.test(l));
}

describe("machinad: logs and exec", () => {
  test("exec: exit status, output, confined as machinactl exec", async () => {
    await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const a = scratch.name("mx");
    addImage(t, a);
    const { leader } = await client.start(a);
    await initUp(t, a);

    expect(await client.exec(a, { argv: ["echo", "hello", "world"] })).toEqual({
      exitStatus: 0,
      stdout: "hello world\n",
      stderr: "",
      stdoutTruncated: false,
      stderrTruncated: false,
    });
    const three = await client.exec(a, { argv: ["sh", "-c", "echo out; echo err >&2; exit 3"] });
    expect([three.exitStatus, three.stdout, three.stderr]).toEqual([3, "out\n", "err\n"]);
    const env = await client.exec(a, { argv: ["sh", "-c", 'echo "$FOO $(pwd)"'], env: { FOO: "bar" }, cwd: "/tmp" });
    expect(env.stdout).toBe("bar /tmp\n");
    const user = await client.exec(a, { argv: ["id", "-u"], user: "65534" });
    expect(user.stdout.trim()).toBe("65534");

    // the same namespaces as the leader
    for (const ns of ["pid", "mnt", "uts", "ipc", "net"]) {
      const r = await client.exec(a, { argv: ["readlink", `/proc/self/ns/${ns}`] });
      expect(r.stdout.trim()).toBe(readlinkSync(`/proc/${leader}/ns/${ns}`));
    }
    // the same confinement as machinactl exec gives
    const viaApi = await client.exec(a, { argv: ["cat", "/proc/self/status"] });
    const viaCli = await machinactl(t, ["exec", a, "--", "cat", "/proc/self/status"]);
    expect(viaCli.code).toBe(0);
    expect(confinement(viaApi.stdout)).toEqual(confinement(viaCli.stdout));
    expect(confinement(viaApi.stdout).find((l) => l.startsWith("Seccomp:"))).toBe("Seccomp:\t2");

    // a command that does not exist: the helper's failure, not a 500
    const missing = await client.exec(a, { argv: ["/no/such/program"] });
    expect(missing.exitStatus).not.toBe(0);
    expect(client.exec("nope", { argv: ["true"] })).rejects.toMatchObject({ code: "E_NOT_FOUND" });
    // output beyond the cap: cut, flagged, and machinad's memory was never asked for all of it
    const big = await client.exec(a, { argv: ["sh", "-c", "yes 0123456789abcdef | head -c 8000000; echo done >&2"] });
    expect([big.exitStatus, big.stdout.length, big.stdoutTruncated, big.stderr, big.stderrTruncated]).toEqual([0, 1024 * 1024, true, "done\n", false]);
    // a client that goes away: the command gets SIGTERM (its trap writes a file in the machine)
    const ac = new AbortController();
    const pending = client.exec(
      a,
      { argv: ["sh", "-c", "trap 'echo term > /tmp/got-term; exit 0' TERM; echo started > /tmp/started; while :; do sleep 0.1; done"] },
      { signal: ac.signal },
    );
    await waitFor("the command to start", async () => (await client.exec(a, { argv: ["cat", "/tmp/started"] })).stdout === "started\n" || undefined);
    ac.abort();
    expect(pending).rejects.toThrow();
    await waitFor("the command to get SIGTERM", async () => (await client.exec(a, { argv: ["cat", "/tmp/got-term"] })).stdout === "term\n" || undefined);
    await client.terminate(a);
  }, 120_000);

  test("bind: a host directory appears in the machine (read-only refuses writes); a relative path or an unknown machine is refused", async () => {
    await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const a = scratch.name("mb");
    addImage(t, a);
    await client.start(a);
    await initUp(t, a);
    const dir = scratch.dir("machina-bind-");
    chmodSync(dir, 0o777);
    writeFileSync(join(dir, "hello"), "from the host\n", { mode: 0o644 });
    await client.bind(a, { source: dir, target: "/mnt/shared", mkdir: true });
    expect((await client.exec(a, { argv: ["cat", "/mnt/shared/hello"] })).stdout).toBe("from the host\n");
    // written through (the container's root is an unprivileged host user: the directory lets everyone write)
    expect((await client.exec(a, { argv: ["sh", "-c", "echo back > /mnt/shared/reply"] })).exitStatus).toBe(0);
    expect(readFileSync(join(dir, "reply"), "utf8")).toBe("back\n");
    await client.bind(a, { source: dir, target: "/mnt/ro", mkdir: true, readOnly: true });
    const write = await client.exec(a, { argv: ["sh", "-c", "echo x > /mnt/ro/new"] });
    expect(write.exitStatus).not.toBe(0);
    expect(write.stderr).toContain("Read-only file system");
    expect(existsSync(join(dir, "new"))).toBe(false);
    expect(client.bind(a, { source: "relative", target: "/x" })).rejects.toMatchObject({ code: "E_INVALID" });
    expect(client.bind("nope", { source: dir })).rejects.toMatchObject({ code: "E_NOT_FOUND" });
    expect(client.bind(a, { source: join(dir, "missing"), target: "/mnt/m", mkdir: true })).rejects.toMatchObject({ code: "E_SYSTEM" });
    await client.terminate(a);
  }, 60_000);

  test("files: an upload lands in the machine (copied in by the helper), a download gives it back; directories and missing files refused", async () => {
    await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const a = scratch.name("mf");
    addImage(t, a);
    await client.start(a);
    await initUp(t, a);
    const bytes = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 7) % 256);
    await client.putFile(a, "/tmp/upload.bin", bytes);
    const sum = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    expect((await client.exec(a, { argv: ["sha256sum", "/tmp/upload.bin"] })).stdout).toStartWith(sum);
    const back = await client.getFile(a, "/tmp/upload.bin");
    expect(back.size).toBe(bytes.length);
    expect(new Uint8Array(await new Response(back.stream).arrayBuffer())).toEqual(bytes);
    expect(client.putFile(a, "/tmp/upload.bin", new Uint8Array([1]))).rejects.toThrow(); // exists: force needed
    await client.putFile(a, "/tmp/upload.bin", new Uint8Array([1, 2]), { force: true });
    expect((await client.exec(a, { argv: ["wc", "-c", "/tmp/upload.bin"] })).stdout.trim()).toStartWith("2 ");
    expect(client.getFile(a, "/etc")).rejects.toMatchObject({ code: "E_UNSUPPORTED" });
    expect(client.getFile(a, "/no/such/file")).rejects.toMatchObject({ code: "E_NOT_FOUND" });
    // a tree: a tar upload extracted (checked as an import) into a new directory, and a tar of it back
    const src = scratch.dir("machina-tree-");
    mkdirSync(join(src, "sub"));
    writeFileSync(join(src, "sub/f"), "in a tree\n");
    symlinkSync("sub/f", join(src, "link"));
    const tarFile = join(scratch.dir("machina-tar-"), "tree.tar");
    expect(Bun.spawnSync(["tar", "-C", src, "-cf", tarFile, "."]).exitCode).toBe(0);
    await client.putFile(a, "/tmp/tree", readFileSync(tarFile), { archive: "tar" });
    expect((await client.exec(a, { argv: ["cat", "/tmp/tree/sub/f", "/tmp/tree/link"] })).stdout).toBe("in a tree\nin a tree\n");
    const tree = await client.getFile(a, "/tmp/tree", { archive: "tar" });
    const listed = Bun.spawnSync(["tar", "-t"], { stdin: new Uint8Array(await new Response(tree.stream).arrayBuffer()) }).stdout.toString();
    expect(listed.split("\n").sort()).toEqual(expect.arrayContaining(["./", "./link", "./sub/", "./sub/f"]));
    // an archive that reaches out of its directory is refused, and nothing arrives
    const evil = join(scratch.dir("machina-evil-"), "evil.tar");
    expect(Bun.spawnSync(["tar", "-C", src, "-cf", evil, "--transform=s,^sub,../escape,", "sub"]).exitCode).toBe(0);
    expect(client.putFile(a, "/tmp/evil", readFileSync(evil), { archive: "tar" })).rejects.toMatchObject({ code: "E_INVALID" });
    expect((await client.exec(a, { argv: ["ls", "/tmp"] })).stdout).not.toContain("evil");
    expect(readdirSync(join(t.stateDir, "tmp"))).toEqual([]); // no temporaries left
    await client.terminate(a);
  }, 60_000);

  test("logs: the console's lines; follow streams a line the container writes; a disconnect stops the follower (no fd leak)", async () => {
    const d = await startDaemon(t, scratch);
    const client = new MachinaClient(t.socket);
    const a = scratch.name("ml");
    addImage(t, a);
    await client.start(a);
    await initUp(t, a);

    const lines: string[] = [];
    await client.logs(a, { onLine: (l) => lines.push(l) });
    expect(lines).toContain("init: up");
    const last: string[] = [];
    await client.logs(a, { lines: 1, onLine: (l) => last.push(l) });
    expect(last).toEqual([lines[lines.length - 1]!]);
    expect(client.logs("nope", { onLine: () => {} })).rejects.toMatchObject({ code: "E_NOT_FOUND" });

    /** Follow; `write` makes the container write a line after the request started; then disconnect. */
    const follow = async (write: () => Promise<void>, expected: string) => {
      const got: string[] = [];
      const stop = new AbortController();
      const following = client.logs(a, { follow: true, lines: 0, signal: stop.signal, onLine: (l) => got.push(l) });
      await Bun.sleep(300);
      await write();
      await waitFor(`"${expected}" in the follow`, () => got.includes(expected) || undefined, 10_000);
      stop.abort();
      expect(await following).toBe(0);
      expect(got[0]).toBe(expected);
    };
    // SIGINT: the container's init writes "init: SIGINT" on its console, then reboots (-f)
    await follow(async () => {
      expect((await client.exec(a, { argv: ["sh", "-c", "kill -INT 1"] })).exitStatus).toBe(0);
    }, "init: SIGINT");
    await initUp(t, a, 2);
    // keep-alive connections warmed up: after more follows and disconnects the count comes back
    await Bun.sleep(500);
    const before = fdCount(d.pid);
    for (let i = 1; i <= 3; i++)
      await follow(async () => {
        appendFileSync(join(t.stateDir, "logs", `${a}.log`), `later-${i}\n`);
      }, `later-${i}`);
    await waitFor("machinad's fds to return", () => fdCount(d.pid) <= before || undefined, 5_000);

    // a follow ends by itself when the machine is gone
    const tail: string[] = [];
    const following = client.logs(a, { follow: true, lines: 0, onLine: (l) => tail.push(l) });
    await Bun.sleep(300);
    await client.terminate(a);
    expect(await following).toBe(0);
    expect(tail.some((l) => /^init: SIGRTMIN\+[34]$/.test(l))).toBe(true);
  }, 120_000);
});
