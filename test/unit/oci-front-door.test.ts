/**
 * machina-oci's front end and machinad's planner: the wire (src/oci-runtime/front-door.ts), what
 * the planner refuses to run in its own process (NeedsOwnProcess, before any effect), relative
 * paths from the caller's directory, and the planner on a real socket with a front end written
 * here (a request answered with output and an exit code; other namespaces and garbage refused).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main, NeedsOwnProcess, type OciIo } from "../../src/cli/oci/main.ts";
import { serveOciDoor } from "../../src/daemon/oci-door.ts";
import { FakeHost } from "../../src/host/fake.ts";
import { processIdentity } from "../../src/host/identity.ts";
import { decodeRequest, encodeFdWrite, encodeFrame, encodeRequest, encodeSpawn, type Frame, FrameReader, MAX_FRAME } from "../../src/oci-runtime/front-door.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("the wire", () => {
  test("frames survive any chunking", () => {
    const bytes = new Uint8Array([...encodeFrame("O", "hello"), ...encodeFrame("X", "0"), ...encodeFrame("S", new Uint8Array(0))]);
    for (const size of [1, 2, 5, 7, bytes.length]) {
      const r = new FrameReader();
      const got: Frame[] = [];
      for (let i = 0; i < bytes.length; i += size) got.push(...r.push(bytes.slice(i, i + size)));
      expect(got.map((f) => [f.type, text(f.payload)])).toEqual([
        ["O", "hello"],
        ["X", "0"],
        ["S", ""],
      ]);
    }
  });

  test("a write for another fd (machina-nspawn's status fd): the fd's number, NUL, the bytes", () => {
    expect(text(encodeFdWrite(3, '{"stage":"main"}\n'))).toBe('3\0{"stage":"main"}\n');
    expect(text(encodeFdWrite(17, ""))).toBe("17\0");
  });

  test("a frame larger than the limit is refused", () => {
    const h = new Uint8Array(5);
    h[0] = "R".charCodeAt(0);
    new DataView(h.buffer).setUint32(1, MAX_FRAME + 1, true);
    expect(() => new FrameReader().push(h)).toThrow("at most");
  });

  test("a request: version, an absolute cwd, identity, argv and env; anything else is not one", () => {
    const r = {
      cwd: "/b",
      identity: "mnt:[1] root:1:2",
      pid: 4242,
      ttys: [false, true, false] as [boolean, boolean, boolean],
      argv: ["--root", "/r", "state", "a b"],
      env: { PATH: "/bin", X: "a=b" },
    };
    const frame = new FrameReader().push(encodeRequest(r))[0]!;
    expect(frame.type).toBe("R");
    expect(decodeRequest(frame.payload)).toEqual(r);
    const raw = (fields: string[]) => new TextEncoder().encode(fields.map((f) => `${f}\0`).join(""));
    expect(decodeRequest(raw(["1", "/b", "id", "7", "000", "0", "0"]))).toMatchObject({ pid: 7, argv: [], env: {} });
    expect(decodeRequest(raw(["2", "/b", "id", "7", "000", "0", "0"]))).toBeUndefined(); // another version
    expect(decodeRequest(raw(["1", "b", "id", "7", "000", "0", "0"]))).toBeUndefined(); // relative cwd
    expect(decodeRequest(raw(["1", "/b", "id", "0", "000", "0", "0"]))).toBeUndefined(); // no pid
    expect(decodeRequest(raw(["1", "/b", "id", "7", "01", "0", "0"]))).toBeUndefined(); // ttys
    expect(decodeRequest(raw(["1", "/b", "id", "7", "000", "5", "state"]))).toBeUndefined(); // argc beyond the fields
    expect(decodeRequest(raw(["1", "/b", "id", "7", "000", "x"]))).toBeUndefined();
  });

  test("a spawn: argv and env as NUL-terminated fields with their counts, then the spec bytes", () => {
    const p = encodeSpawn(["/h", "run", "--spec-fd", "3"], { PATH: "/bin" }, new Uint8Array([1, 2, 0, 3]));
    expect(text(p.slice(0, -4)).split("\0")).toEqual(["4", "/h", "run", "--spec-fd", "3", "1", "PATH=/bin", ""]);
    expect([...p.slice(-4)]).toEqual([1, 2, 0, 3]);
  });
});

function capture(cwd: string): OciIo & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    cwd,
    resident: true,
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
  };
  return io;
}

const STATE = (hooks: { poststart?: unknown[]; poststop?: unknown[] }, startHooks?: boolean) =>
  JSON.stringify({
    ociVersion: "1.2.0",
    id: "c1",
    pid: 4242,
    pidStart: "1",
    bundle: "/b",
    rootfs: "/b/rootfs",
    created: "2026-01-01T00:00:00Z",
    annotations: {},
    cgroups: [],
    machine: "c1",
    confinement: {},
    hooks: { poststart: hooks.poststart ?? [], poststop: hooks.poststop ?? [] },
    ...(startHooks ? { startHooks } : {}),
  });

describe("in the planner", () => {
  test("run, exec, update and spec need their own process: refused before anything is read or written", async () => {
    for (const argv of [["run", "x"], ["exec", "x", "true"], ["update", "x"], ["spec"], ["_run-hooks", "x", "1"]]) {
      const host = new FakeHost();
      await expect(main(["--root", "/r", ...argv], host, capture("/"))).rejects.toBeInstanceOf(NeedsOwnProcess);
      expect(host.lstat("/r")).toBeUndefined();
      expect(host.commands).toEqual([]);
    }
  });

  test("start with start hooks and delete with poststop hooks go to the full machina-oci; without, the planner runs them", async () => {
    const hook = { path: "/bin/true" };
    const cases: [string, string, boolean][] = [
      ["start", STATE({ poststart: [hook] }), true],
      ["start", STATE({}, true), true],
      ["delete", STATE({ poststop: [hook] }), true],
      ["start", STATE({ poststop: [hook] }), false],
      ["delete", STATE({ poststart: [hook] }), false],
    ];
    for (const [verb, state, refused] of cases) {
      const host = new FakeHost({ files: { "/r/c1/state.json": state } });
      const run = main(["--root", "/r", verb, "c1"], host, capture("/"));
      if (refused) await expect(run).rejects.toBeInstanceOf(NeedsOwnProcess);
      else await run; // the fake init is not alive: start fails with a message, delete removes it
    }
  });

  test("relative --root, --bundle and --pid-file start at the caller's directory", async () => {
    const host = new FakeHost();
    const io = capture("/home/u/work");
    expect(await main(["--root", "state", "list", "--format", "json"], host, io)).toBe(0);
    expect(io.stdout).toBe("[]\n");
    const out = { ...capture("/home/u/work"), resident: false };
    expect(await main(["spec", "--bundle", "b"], host, out)).toBe(0);
    expect(host.readFile("/home/u/work/b/config.json")).toContain('"ociVersion"');
  });
});

describe("the planner on its socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "oci-door-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** One front end's conversation: every frame machinad sent until it closed. */
  async function converse(path: string, request: Uint8Array): Promise<Frame[]> {
    const sock = connect(path);
    const reader = new FrameReader();
    const frames: Frame[] = [];
    sock.on("data", (chunk: Buffer) => frames.push(...reader.push(chunk)));
    sock.write(request);
    await new Promise((resolve) => sock.on("close", resolve));
    // machinad's first frame, before it reads the request: taken
    expect(frames[0]).toEqual({ type: "a", payload: new Uint8Array(0) });
    return frames.slice(1);
  }

  test("a request is answered with its output and exit code; another identity gets F; garbage is hung up on", async () => {
    const path = join(dir, "oci.sock");
    const logged: string[] = [];
    const server = await serveOciDoor(path, (event) => logged.push(event));
    try {
      const base = {
        cwd: dir,
        identity: processIdentity(),
        pid: process.pid,
        ttys: [false, false, false] as [boolean, boolean, boolean],
        env: { PATH: "/usr/bin:/bin" },
      };
      const missing = await converse(path, encodeRequest({ ...base, argv: ["--root", join(dir, "root"), "state", "nope"] }));
      expect(missing.map((f) => [f.type, text(f.payload)])).toEqual([
        ["E", 'machina-oci: container "nope" does not exist\n'],
        ["X", "1"],
      ]);
      const list = await converse(path, encodeRequest({ ...base, argv: ["--root", "rel", "list", "--quiet"] }));
      expect(list.map((f) => [f.type, text(f.payload)])).toEqual([["X", "0"]]);
      const run = await converse(path, encodeRequest({ ...base, argv: ["run", "x"] }));
      expect(run.map((f) => f.type)).toEqual(["F"]);
      const other = await converse(path, encodeRequest({ ...base, identity: "mnt:[1] root:0:0", argv: ["state", "x"] }));
      expect(other.map((f) => [f.type, text(f.payload)])).toEqual([["F", "machina-oci runs in other namespaces or another root than machinad"]]);
      expect(await converse(path, encodeFrame("O", "hello"))).toEqual([]);
      expect(logged).toEqual([]);
    } finally {
      server.close();
    }
  });
});

describe("sealed copies of the helper", () => {
  test("the same bytes at /proc/PID/fd/N, not writable, made again when the file changes, at most 4 kept", async () => {
    const { SealedExecutables } = await import("../../src/host/sealed-executables.ts");
    const { readFileSync, writeFileSync, utimesSync } = await import("node:fs");
    const dir = mkdtempSync(join(tmpdir(), "sealed-"));
    const sealed = new SealedExecutables();
    try {
      const file = join(dir, "prog");
      writeFileSync(file, "#!/bin/sh\necho one\n", { mode: 0o755 });
      const first = sealed.pathFor(file);
      expect(first).toStartWith(`/proc/${process.pid}/fd/`);
      expect(readFileSync(first, "utf8")).toBe("#!/bin/sh\necho one\n");
      expect(() => writeFileSync(first, "changed")).toThrow(); // F_SEAL_WRITE (and no shrinking)
      expect(sealed.pathFor(file)).toBe(first);
      writeFileSync(file, "#!/bin/sh\necho two\n");
      utimesSync(file, new Date(), new Date(Date.now() + 5000));
      const second = sealed.pathFor(file);
      expect(second).not.toBe(first);
      expect(readFileSync(second, "utf8")).toBe("#!/bin/sh\necho two\n");
      expect(readFileSync(first, "utf8")).toBe("#!/bin/sh\necho one\n"); // retired, still open for a while
      const paths = [1, 2, 3, 4, 5].map((i) => {
        writeFileSync(join(dir, `p${i}`), `${i}`);
        return sealed.pathFor(join(dir, `p${i}`));
      });
      expect(new Set(paths).size).toBe(5);
      expect(sealed.pathFor(join(dir, "p5"))).toBe(paths[4]!); // kept
      expect(sealed.pathFor(join(dir, "p1"))).not.toBe(paths[0]!); // the oldest was let go, made again
      expect(sealed.pathFor(join(dir, "missing"))).toBe(join(dir, "missing"));
    } finally {
      sealed.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
