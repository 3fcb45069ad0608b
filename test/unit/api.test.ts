/**
 * API contract (no root): every route of machinad's app over a recording fake MachineService —
 * success, and each error class (bad name, unknown machine, malformed JSON, unknown fields,
 * oversized body, unknown route/method); a refused request never reaches the service. Also:
 * the committed OpenAPI document is the generated one, and lists every route.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERROR_CODES, MachinaError } from "../../src/errors.ts";
import { MachinaClient } from "../../src/client/client.ts";
import { openapiDocument } from "../../src/api/openapi.ts";
import { MAX_BODY_BYTES, ROUTES } from "../../src/api/routes.ts";
import * as S from "../../src/api/schemas.ts";
import type { ImageService } from "../../src/api/image-service.ts";
import type { KillOptions, LogsOptions, LongOperationOptions, MachineService, StopOptions } from "../../src/api/service.ts";
import { createApp } from "../../src/daemon/app.ts";
import type { MachineStatus } from "../../src/machine/machines.ts";

class FakeService implements MachineService {
  calls: string[] = [];
  running = new Map<string, S.MachineStatus>();
  images = new Set(["web", "db"]);
  enabled = new Set<string>();
  /** start waits for this when set (cancellation test) */
  gate: Promise<void> | undefined;

  private get(name: string): S.MachineStatus {
    const m = this.running.get(name);
    if (!m) throw new MachinaError("E_NOT_FOUND", `no machine "${name}" is running`, { machine: name });
    return m;
  }
  async list() {
    this.calls.push("list");
    return [...this.running.values()].map(({ name, class: c, service, os, version, architecture, network, state, timestampUsec }) => ({
      machine: name,
      class: c,
      service,
      os,
      version,
      architecture,
      addresses: network.addresses,
      state,
      timestampUsec,
    }));
  }
  async status(name: string) {
    this.calls.push(`status ${name}`);
    return this.get(name) as MachineStatus;
  }
  async show(name: string) {
    this.calls.push(`show ${name}`);
    const m = this.get(name);
    return [
      ["Name", m.name],
      ["Leader", String(m.leader)],
      ["State", "running"],
    ] as Array<[string, string]>;
  }
  async poweroff(name: string) {
    this.get(name);
    this.calls.push(`poweroff ${name}`);
  }
  async reboot(name: string) {
    this.get(name);
    this.calls.push(`reboot ${name}`);
  }
  async kill(name: string, o: KillOptions = {}) {
    this.get(name);
    this.calls.push(`kill ${name} ${o.whom} ${o.signal}`);
  }
  async terminate(name: string, o: StopOptions = {}) {
    this.get(name);
    this.calls.push(`terminate ${name} ${o.timeoutMs}`);
    o.onProgress?.({ time: Date.now(), event: "stopping" });
    this.running.delete(name);
    return "stopped" as const;
  }
  checkStart(name: string) {
    if (!this.images.has(name)) throw new MachinaError("E_NOT_FOUND", `no image "${name}"`, { machine: name });
    if (this.running.has(name)) throw new MachinaError("E_BUSY", `machine "${name}" is already running`, { machine: name });
  }
  async start(name: string, o: LongOperationOptions = {}) {
    this.calls.push(`start ${name}`);
    if (!this.images.has(name)) throw new MachinaError("E_NOT_FOUND", `no image "${name}"`, { machine: name });
    if (this.running.has(name)) throw new MachinaError("E_BUSY", `machine "${name}" is already running`, { machine: name });
    o.onProgress?.({ time: Date.now(), stage: "spec" });
    if (this.gate) {
      await Promise.race([
        this.gate,
        new Promise((_, reject) => o.signal?.addEventListener("abort", () => reject(new MachinaError("E_CANCELLED", "cancelled")))),
      ]);
    }
    o.onProgress?.({ time: Date.now(), event: "started", leader: 42 });
    const m: S.MachineStatus = {
      name,
      class: "container",
      service: "machina-nspawn",
      state: "running",
      leader: 42,
      supervisor: 41,
      root: `/pool/${name}`,
      uuid: "",
      boot: true,
      timestampUsec: 1,
      timestampMonotonicUsec: 1,
      cgroupDir: "/sys/fs/cgroup/x",
      controlGroup: "/x",
      unit: `machine-${name}.scope`,
      cgroups: [],
      os: "busybox",
      version: "1",
      architecture: "amd64",
      emulated: false,
      leaderComm: "init",
      osPrettyName: "BusyBox",
      network: { private: false, interfaces: [], addresses: [] },
      resources: { tasks: 1 },
    };
    this.running.set(name, m);
    return m as MachineStatus;
  }
  async enable(name: string, o: { now?: boolean } = {}) {
    this.calls.push(`enable ${name} ${o.now}`);
    this.enabled.add(name);
    return { changes: [{ type: "symlink" as const, path: `/wants/${name}`, source: "/t" }] };
  }
  async disable(name: string, o: { now?: boolean } = {}) {
    this.calls.push(`disable ${name} ${o.now}`);
    this.enabled.delete(name);
    return { changes: [] };
  }
  /** The console log of each machine; follow: each line pushed here reaches the followers. */
  log = ["init: up", "second"];
  followers = new Set<(line: string) => void>();
  checkLogs(name: string) {
    this.get(name);
  }
  async logs(name: string, o: LogsOptions) {
    this.calls.push(`logs ${name} ${o.lines} ${o.follow}`);
    this.get(name);
    for (const l of o.lines === undefined ? this.log : o.lines === 0 ? [] : this.log.slice(-o.lines)) o.onLine(l);
    if (!o.follow) return 0;
    await new Promise<void>((resolve) => {
      this.followers.add(o.onLine);
      o.signal?.addEventListener("abort", () => {
        this.followers.delete(o.onLine);
        resolve();
      });
    });
    return 0;
  }
  async bind(name: string, r: S.BindRequest) {
    this.calls.push(`bind ${name} ${JSON.stringify(r)}`);
    this.get(name);
  }
  files = new Map<string, Uint8Array>();
  async putFile(name: string, path: string, data: ReadableStream<Uint8Array>, options: { force?: boolean } = {}) {
    this.get(name);
    const key = `${name}:${path}`;
    if (this.files.has(key) && !options.force) throw new MachinaError("E_BUSY", `"${path}" exists`);
    this.files.set(key, new Uint8Array(await new Response(data).arrayBuffer()));
    this.calls.push(`putFile ${name} ${path} ${this.files.get(key)!.length}`);
  }
  async getFile(name: string, path: string) {
    this.get(name);
    const bytes = this.files.get(`${name}:${path}`);
    if (bytes === undefined) throw new MachinaError("E_NOT_FOUND", `"${path}" does not exist`);
    return { stream: new Blob([bytes as Uint8Array<ArrayBuffer>]).stream(), size: bytes.length };
  }
  async networks() {
    this.calls.push("networks");
    return {
      machines: [
        {
          machine: "web",
          kind: "zone" as const,
          hostInterface: "vz-lab",
          zone: "lab",
          addressing: "static" as const,
          addresses: ["10.0.0.2/28"],
          gateway: ["10.0.0.1"],
          subnet: ["10.0.0.0/28"],
          ports: [{ protocol: "tcp" as const, hostPort: 8080, containerPort: 80 }],
          moved: [],
          macvlans: [],
          ipvlans: [],
        },
      ],
      zones: [{ name: "lab", hostInterface: "vz-lab", subnet: ["10.0.0.0/28"], machines: ["web"] }],
      bridges: [],
    };
  }
  async exec(name: string, r: S.ExecRequest) {
    this.calls.push(`exec ${name} ${JSON.stringify(r)}`);
    this.get(name);
    return { exitStatus: r.argv[0] === "false" ? 1 : 0, stdout: r.argv.slice(1).join(" "), stderr: "", stdoutTruncated: false, stderrTruncated: false };
  }
}

/** An image pool in memory, recording each call that reached it. */
class FakeImages implements ImageService {
  transferList: S.Transfer[] = [
    { id: 3, type: "pull-tar", remote: "https://example.invalid/a.tar", local: "a", pid: 4242, progress: 0.5, started: "2026-01-01T00:00:00Z" },
  ];
  async transfers() {
    return this.transferList;
  }
  async cancelTransfer(id: number) {
    this.calls.push(`cancelTransfer ${id}`);
    if (!this.transferList.some((t) => t.id === id)) throw new MachinaError("E_NOT_FOUND", `no transfer with id ${id}`);
    this.transferList = this.transferList.filter((t) => t.id !== id);
  }
  archives = new Map<string, Uint8Array>();
  async importArchive(name: string, kind: "tar" | "raw" | "oci", data: ReadableStream<Uint8Array>, options: { force?: boolean; readOnly?: boolean } = {}) {
    const bytes = new Uint8Array(await new Response(data).arrayBuffer());
    if (this.pool_.has(name) && !options.force) throw new MachinaError("E_BUSY", `image "${name}" already exists`);
    this.calls.push(`importArchive ${name} ${kind} ${bytes.length} ${options.readOnly === true}`);
    this.archives.set(name, bytes);
    this.pool_.set(name, { readOnly: options.readOnly === true, busy: false });
    return { image: name, from: "upload" };
  }
  async exportArchive(name: string, kind: "tar" | "raw" | "oci", compression?: string) {
    this.calls.push(`exportArchive ${name} ${kind} ${compression ?? "-"}`);
    const bytes = this.archives.get(name);
    if (bytes === undefined) throw new MachinaError("E_NOT_FOUND", `no image "${name}"`);
    return { stream: new Blob([bytes as Uint8Array<ArrayBuffer>]).stream(), size: bytes.length };
  }
  checkBootstrap(request: S.BootstrapSpec) {
    if (request.distro === "fedora") throw new MachinaError("E_NOT_FOUND", "dnf is missing");
  }
  async bootstrap(request: S.BootstrapSpec, options: { onProgress?: (e: S.JobEvent) => void } = {}) {
    this.calls.push(`bootstrap ${JSON.stringify(request)}`);
    for (const line of ["I: Retrieving InRelease", "I: Base system installed successfully."])
      options.onProgress?.({ time: 1, stage: "bootstrap", message: line });
    return { image: request.name, from: `${request.distro} ${request.release ?? "bookworm"}` };
  }
  async settings(name: string) {
    this.calls.push(`settings ${name}`);
    if (!this.pool_.has(name)) throw new MachinaError("E_NOT_FOUND", `no image "${name}"`);
    return name === "web" ? { file: "/pool/web.nspawn", text: "[Exec]\nBoot=yes\n" } : { file: null, text: null };
  }
  async pull(request: S.PullSpec, options: { onProgress?: (e: S.JobEvent) => void; signal?: AbortSignal } = {}) {
    this.calls.push(`pull ${JSON.stringify(request)}`);
    const from = request.kind === "oci" ? request.ref : request.url;
    for (const done of [0, 50, 100]) options.onProgress?.({ time: 1, stage: "download", message: `Downloading ${from}`, done, total: 100 });
    if (from.includes("fail")) throw new MachinaError("E_NOT_FOUND", `${from}: 404`);
    return { image: request.name ?? "pulled", from };
  }
  calls: string[] = [];
  pool_ = new Map<string, { readOnly: boolean; busy: boolean }>([
    ["web", { readOnly: false, busy: true }],
    ["base", { readOnly: false, busy: false }],
  ]);
  private get(name: string) {
    const i = this.pool_.get(name);
    if (!i) throw new MachinaError("E_NOT_FOUND", `no image "${name}" in /pool`, { value: name });
    return i;
  }
  private info(name: string): S.ImageInfo {
    const i = this.get(name);
    return {
      name,
      type: "directory",
      path: `/pool/${name}`,
      readOnly: i.readOnly,
      hidden: false,
      creationTimestamp: null,
      modificationTimestamp: 5,
      usage: null,
      limit: null,
      settingsFile: null,
    };
  }
  private free(name: string, what: string) {
    if (this.get(name).busy)
      throw new MachinaError("E_BUSY", `cannot ${what} image "${name}": it is in use by the running machine "${name}"`, { machine: name });
  }
  async listImages(o: { all?: boolean } = {}) {
    this.calls.push(`listImages ${o.all ?? false}`);
    return [...this.pool_.keys()].map((name) => ({ name, type: "directory" as const, ro: this.get(name).readOnly, usage: null, created: null, modified: 5 }));
  }
  async imageStatus(name: string) {
    this.calls.push(`imageStatus ${name}`);
    return { ...this.info(name), os: "BusyBox", architecture: "amd64", origin: null };
  }
  async showImage(name: string) {
    this.calls.push(`showImage ${name}`);
    return this.info(name);
  }
  async pool() {
    this.calls.push("pool");
    return { poolPath: "/pool", poolUsage: null, poolLimit: null, pools: ["/pool"] };
  }
  async clone(from: string, to: string, o: { readOnly?: boolean } = {}) {
    this.calls.push(`clone ${from} ${to} ${o.readOnly}`);
    this.get(from);
    this.pool_.set(to, { readOnly: o.readOnly ?? false, busy: false });
    return { name: to, from, type: "directory" as const, method: "copy" as const, readOnly: o.readOnly ?? false, path: `/pool/${to}` };
  }
  async rename(from: string, to: string) {
    this.calls.push(`rename ${from} ${to}`);
    this.free(from, "rename");
    this.pool_.set(to, this.get(from));
    this.pool_.delete(from);
    return { name: to, from, path: `/pool/${to}` };
  }
  async setReadOnly(name: string, readOnly: boolean) {
    this.calls.push(`setReadOnly ${name} ${readOnly}`);
    this.free(name, "change the read-only flag of");
    this.get(name).readOnly = readOnly;
    return { name, readOnly };
  }
  async remove(name: string) {
    this.calls.push(`remove ${name}`);
    this.free(name, "remove");
    this.pool_.delete(name);
    return { removed: [name] };
  }
  async setLimit(name: string | undefined, limit: number | undefined): Promise<S.LimitResult> {
    this.calls.push(`setLimit ${name} ${limit}`);
    if (name !== undefined) this.get(name);
    throw new MachinaError("E_UNSUPPORTED", "size limits need btrfs quotas", { path: "/pool" });
  }
  async clean(o: { all?: boolean } = {}) {
    this.calls.push(`clean ${o.all}`);
    return { removed: [], skipped: [{ name: "web", reason: "in use" }], temporaries: [], ociCache: { removed: 0, freed: 0 } };
  }
}

function setup() {
  const service = new FakeService();
  const images = new FakeImages();
  const { app } = createApp({ service, images });
  const call = async (method: string, path: string, body?: string | object, headers: Record<string, string> = {}) => {
    const res = await app.fetch(
      new Request(`http://localhost${path}`, {
        method,
        ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
        headers: { "content-type": "application/json", ...headers },
      }),
    );
    expect(res.headers.get("content-type") ?? "").toMatch(/application\/(json|x-ndjson)/);
    const text = await res.text();
    const json = (res.headers.get("content-type") ?? "").startsWith("application/json") && (text.startsWith("{") || text.startsWith("["));
    return { status: res.status, text, json: json ? JSON.parse(text) : undefined };
  };
  return { service, images, app, call };
}

async function started(s: ReturnType<typeof setup>, name = "web") {
  const r = await s.call("POST", `/v1/machines/${name}/start`, { wait: true });
  expect(r.status).toBe(200);
  s.service.calls = [];
}

const expectError = (r: { status: number; json: unknown }, status: number, code: string) => {
  expect(r.status).toBe(status);
  const e = S.ApiError.parse(r.json);
  expect(e.code).toBe(code as S.ErrorCode);
  expect(e.message.length).toBeGreaterThan(0);
};

describe("machines", () => {
  test("list, status, properties", async () => {
    const s = setup();
    expect((await s.call("GET", "/v1/machines")).json).toEqual({ machines: [] });
    await started(s);
    const list = await s.call("GET", "/v1/machines");
    expect(S.MachineList.parse(list.json).machines.map((m) => m.machine)).toEqual(["web"]);
    const st = await s.call("GET", "/v1/machines/web");
    expect(S.MachineStatus.parse(st.json).leader).toBe(42);
    const props = await s.call("GET", "/v1/machines/web/properties");
    expect(JSON.parse(props.text)).toEqual([
      ["Name", "web"],
      ["Leader", "42"],
      ["State", "running"],
    ]);
  });

  test("start: 202 with a job, then done; wait: true gives the finished job", async () => {
    const s = setup();
    const r = await s.call("POST", "/v1/machines/web/start");
    expect(r.status).toBe(202);
    const job = S.Job.parse(r.json);
    const done = await s.call("GET", `/v1/jobs/${job.id}?wait=1`);
    expect(S.Job.parse(done.json)).toMatchObject({ state: "done", kind: "start", machine: "web", result: { leader: 42 } });
    expect(S.Job.parse(done.json).events.map((e) => e.stage ?? e.event)).toEqual(["spec", "started"]);
    expectError(await s.call("POST", "/v1/machines/web/start", { wait: true }), 409, "E_BUSY");
  });

  test("stop, poweroff, reboot, kill, enable, disable", async () => {
    const s = setup();
    await started(s);
    expect((await s.call("POST", "/v1/machines/web/poweroff")).json).toEqual({ ok: true });
    expect((await s.call("POST", "/v1/machines/web/reboot", "")).json).toEqual({ ok: true });
    expect((await s.call("POST", "/v1/machines/web/kill", { whom: "leader", signal: 9 })).json).toEqual({ ok: true });
    expect((await s.call("POST", "/v1/machines/web/kill")).json).toEqual({ ok: true });
    expect(S.EnableResult.parse((await s.call("POST", "/v1/machines/db/enable", { now: false })).json).changes).toHaveLength(1);
    expect((await s.call("POST", "/v1/machines/db/disable")).status).toBe(200);
    const stop = await s.call("POST", "/v1/machines/web/stop", { wait: true, timeoutMs: 500 });
    expect(S.Job.parse(stop.json)).toMatchObject({ state: "done", kind: "stop", outcome: "stopped" });
    expect(s.service.calls).toEqual([
      "poweroff web",
      "reboot web",
      "kill web leader 9",
      "kill web all 15",
      "enable db false",
      "disable db false",
      "status web",
      "terminate web 500",
    ]);
    expect(s.service.running.size).toBe(0);
  });

  test("job events stream (NDJSON) and cancellation", async () => {
    const s = setup();
    let open!: () => void;
    s.service.gate = new Promise((r) => (open = r));
    const job = S.Job.parse((await s.call("POST", "/v1/machines/web/start")).json);
    const events = s.app.fetch(new Request(`http://localhost/v1/jobs/${job.id}/events`));
    const cancelled = await s.call("DELETE", `/v1/jobs/${job.id}`);
    expect(S.Job.parse(cancelled.json)).toMatchObject({ state: "cancelled", error: { code: "E_CANCELLED" } });
    const lines = (await (await events).text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ stage: "spec" });
    expect(lines.at(-1).job.state).toBe("cancelled");
    expect(s.service.running.size).toBe(0);
    open();
    // a finished job's stream: all events, then the job
    s.service.gate = undefined;
    const j2 = S.Job.parse((await s.call("POST", "/v1/machines/web/start", { wait: true })).json);
    const text = await (await s.app.fetch(new Request(`http://localhost/v1/jobs/${j2.id}/events`))).text();
    expect(
      text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l))
        .at(-1).job.state,
    ).toBe("done");
    expect(S.JobList.parse((await s.call("GET", "/v1/jobs")).json).jobs).toHaveLength(2);
  });
});

describe("logs and exec", () => {
  test("logs: NDJSON {line}s, the last N; follow streams new lines until the client disconnects", async () => {
    const s = setup();
    await started(s);
    const all = await s.call("GET", "/v1/machines/web/logs");
    expect(all.status).toBe(200);
    expect(all.text).toBe('{"line":"init: up"}\n{"line":"second"}\n');
    expect((await s.call("GET", "/v1/machines/web/logs?lines=1")).text).toBe('{"line":"second"}\n');
    const abort = new AbortController();
    const res = await s.app.fetch(new Request("http://localhost/v1/machines/web/logs?follow=1&lines=0", { signal: abort.signal }));
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = res.body!.getReader();
    await Bun.sleep(10);
    expect(s.service.followers.size).toBe(1);
    for (const f of s.service.followers) f("later");
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('{"line":"later"}\n');
    await reader.cancel();
    expect(s.service.followers.size).toBe(0);
    expect(s.service.calls).toEqual(["logs web undefined false", "logs web 1 false", "logs web 0 true"]);
  });

  test("exec: the service's result; argv, env, cwd, user passed on", async () => {
    const s = setup();
    await started(s);
    const r = await s.call("POST", "/v1/machines/web/exec", { argv: ["echo", "hi"], env: { A_1: "x=y" }, cwd: "/tmp", user: "1000" });
    expect(r.status).toBe(200);
    expect(S.ExecResult.parse(r.json)).toEqual({ exitStatus: 0, stdout: "hi", stderr: "", stdoutTruncated: false, stderrTruncated: false });
    expect((await s.call("POST", "/v1/machines/web/exec", { argv: ["false"] })).json.exitStatus).toBe(1);
    expect(s.service.calls).toEqual(['exec web {"argv":["echo","hi"],"env":{"A_1":"x=y"},"cwd":"/tmp","user":"1000"}', 'exec web {"argv":["false"]}']);
  });

  test("bind: source and target passed on (defaults applied); relative or NUL paths and unknown fields refused before the service", async () => {
    const s = setup();
    await started(s);
    expect((await s.call("POST", "/v1/machines/web/bind", { source: "/srv/data", target: "/data", readOnly: true })).status).toBe(200);
    expect((await s.call("POST", "/v1/machines/web/bind", { source: "/srv" })).json).toEqual({ ok: true });
    const before = [...s.service.calls];
    for (const body of [{ source: "srv" }, { source: "/srv", target: "data" }, { source: "/s\u0000x" }, { source: "/srv", mode: 1 }, { source: "" }, {}])
      expectError(await s.call("POST", "/v1/machines/web/bind", body), 400, "E_INVALID");
    expect(s.service.calls).toEqual(before);
    expectError(await s.call("POST", "/v1/machines/nope/bind", { source: "/srv" }), 404, "E_NOT_FOUND");
    expect(before.filter((c) => c.startsWith("bind"))).toEqual([
      'bind web {"source":"/srv/data","target":"/data","readOnly":true,"mkdir":false}',
      'bind web {"source":"/srv","readOnly":false,"mkdir":false}',
    ]);
  });

  test("files: PUT bytes in, GET them back; path required and absolute; replacing needs force; a JSON body is still capped as it streams", async () => {
    const s = setup();
    await started(s);
    const bytes = new Uint8Array(300_000).map((_, i) => i % 251);
    const put = (path: string, body: BodyInit) =>
      s.app.fetch(new Request(`http://localhost/v1/machines/web/files?path=${encodeURIComponent(path)}`, { method: "PUT", body }));
    expect((await put("/srv/blob", new Blob([bytes]))).status).toBe(200);
    const got = await s.app.fetch(new Request("http://localhost/v1/machines/web/files?path=/srv/blob"));
    expect([got.status, got.headers.get("content-type"), got.headers.get("x-file-size")]).toEqual([200, "application/octet-stream", "300000"]);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
    expect((await put("/srv/blob", new Blob(["x"]))).status).toBe(409);
    expect((await s.app.fetch(new Request("http://localhost/v1/machines/web/files?path=/srv/blob&force=1", { method: "PUT", body: "x" }))).status).toBe(200);
    expectError(await s.call("GET", "/v1/machines/web/files?path=/srv/none"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/machines/web/files"), 400, "E_USAGE");
    expectError(await s.call("GET", "/v1/machines/web/files?path=srv/blob"), 400, "E_INVALID");
    expectError(await s.call("PUT", "/v1/machines/nope/files?path=/x", "x"), 404, "E_NOT_FOUND");
    expect(s.service.calls).toEqual(["putFile web /srv/blob 300000", "putFile web /srv/blob 1"]);
    // a JSON body without a length, larger than the limit: 413 once the limit is passed
    const big = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(new TextEncoder().encode(`{"argv":["${"a".repeat(40_000)}"]}`));
        c.close();
      },
    });
    const r = await s.app.fetch(
      new Request("http://localhost/v1/machines/web/exec", { method: "POST", body: new Blob([await new Response(big).arrayBuffer(), new Uint8Array(40_000)]) }),
    );
    expect(r.status).toBe(413);
  });

  test("shell: a WebSocket only; login with a user refused; bad sizes refused; without terminals 501", async () => {
    const s = setup();
    await started(s);
    expectError(await s.call("GET", "/v1/machines/web/shell"), 400, "E_USAGE");
    const ws = { upgrade: "websocket", connection: "Upgrade" };
    expectError(await s.call("GET", "/v1/machines/web/shell?login=1&user=root", undefined, ws), 400, "E_USAGE");
    expectError(await s.call("GET", "/v1/machines/web/shell?rows=5000", undefined, ws), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/machines/web/shell?user=a%20b", undefined, ws), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/machines/web/shell?login=1", undefined, ws), 501, "E_UNSUPPORTED"); // the fake has no terminals
  });

  test("bad input: 400 E_INVALID, never reaching the service; unknown machine 404", async () => {
    const s = setup();
    await started(s);
    const exec = (body: unknown, name = "web") => s.call("POST", `/v1/machines/${name}/exec`, body as object);
    for (const body of [
      {},
      { argv: [] },
      { argv: [""] },
      { argv: "echo" },
      { argv: [1] },
      { argv: ["a\0b"] },
      { argv: ["true"], bogus: 1 },
      { argv: ["true"], env: { "A-B": "x" } },
      { argv: ["true"], env: { A: 1 } },
      { argv: ["true"], env: ["A=1"] },
      { argv: ["true"], cwd: "relative" },
      { argv: ["true"], cwd: 5 },
      { argv: ["true"], user: "../root" },
      { argv: ["true"], user: "" },
    ])
      expectError(await exec(body), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/machines/web/exec", "{"), 400, "E_INVALID");
    for (const bad of ["a..b", "a%2Fb", "a%2F..%2Fb", "-x", ".x", "x".repeat(65)]) {
      expectError(await exec({ argv: ["true"] }, bad), 400, "E_INVALID");
      expectError(await s.call("GET", `/v1/machines/${bad}/logs`), 400, "E_INVALID");
    }
    // ".." is resolved by URL parsing: /v1/machines/../exec is no endpoint
    for (const bad of ["..", "%2E%2E"]) {
      expectError(await exec({ argv: ["true"] }, bad), 404, "E_NOT_FOUND");
      expectError(await s.call("GET", `/v1/machines/${bad}/logs`), 404, "E_NOT_FOUND");
    }
    for (const q of ["lines=-1", "lines=x", "follow=yes", "lines=99999999"]) expectError(await s.call("GET", `/v1/machines/web/logs?${q}`), 400, "E_INVALID");
    expect(s.service.calls).toEqual([]);
    expectError(await exec({ argv: ["true"] }, "nope"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/machines/nope/logs"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/machines/nope/logs?follow=1"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/machines/web/exec"), 405, "E_USAGE");
  });

  test("exec output is capped at EXEC_OUTPUT_CAP bytes of UTF-8, flagged", async () => {
    const { capOutput } = await import("../../src/api/local-service.ts");
    expect(capOutput("abc", 3)).toEqual({ text: "abc", truncated: false });
    expect(capOutput("abcd", 3)).toEqual({ text: "abc", truncated: true });
    expect(capOutput("aé", 2)).toEqual({ text: "a", truncated: true }); // é is 2 bytes: not split
    expect(capOutput("x".repeat(S.EXEC_OUTPUT_CAP + 1)).text.length).toBe(S.EXEC_OUTPUT_CAP);
  });
});

describe("errors: JSON {code, message}, and nothing changes", () => {
  const MUTATING = ["start", "stop", "poweroff", "reboot", "kill", "enable", "disable"];

  test("bad names: 400 on every machine route", async () => {
    const s = setup();
    await started(s);
    for (const bad of ["-x", "a..b", "x.", "a%20b", "a%2Fb", ".x", "a_b", "x".repeat(65)]) {
      expectError(await s.call("GET", `/v1/machines/${bad}`), 400, "E_INVALID");
      expectError(await s.call("GET", `/v1/machines/${bad}/properties`), 400, "E_INVALID");
      for (const verb of MUTATING) expectError(await s.call("POST", `/v1/machines/${bad}/${verb}`, {}), 400, "E_INVALID");
    }
    expect(s.service.calls).toEqual([]);
  });

  test("unknown machine: 404", async () => {
    const s = setup();
    await started(s);
    expectError(await s.call("GET", "/v1/machines/nope"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/machines/nope/properties"), 404, "E_NOT_FOUND");
    for (const verb of ["stop", "poweroff", "reboot", "kill"]) expectError(await s.call("POST", `/v1/machines/nope/${verb}`), 404, "E_NOT_FOUND");
    // a start that cannot succeed is answered at once, without a job (with and without wait)
    for (const wait of [true, false]) {
      expectError(await s.call("POST", "/v1/machines/nope/start", { wait }), 404, "E_NOT_FOUND");
      expectError(await s.call("POST", "/v1/machines/web/start", { wait }), 409, "E_BUSY");
    }
    expect(s.service.calls.filter((c) => c.startsWith("start"))).toEqual([]);
    expect((await s.call("GET", "/v1/jobs")).json).toMatchObject({ jobs: [expect.objectContaining({ state: "done" })] });
    expect([...s.service.running.keys()]).toEqual(["web"]);
    expectError(await s.call("GET", "/v1/jobs/nope"), 404, "E_NOT_FOUND");
    expectError(await s.call("DELETE", "/v1/jobs/nope"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/jobs/nope/events"), 404, "E_NOT_FOUND");
  });

  test("malformed JSON, wrong types, unknown fields: 400", async () => {
    const s = setup();
    await started(s);
    for (const verb of MUTATING) {
      expectError(await s.call("POST", `/v1/machines/web/${verb}`, "{"), 400, "E_INVALID");
      expectError(await s.call("POST", `/v1/machines/web/${verb}`, "[1]"), 400, "E_INVALID");
      expectError(await s.call("POST", `/v1/machines/web/${verb}`, { bogus: 1 }), 400, "E_INVALID");
    }
    expectError(await s.call("POST", "/v1/machines/web/kill", { signal: 0 }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/machines/web/kill", { signal: "KILL" }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/machines/web/kill", { whom: "nobody" }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/machines/web/stop", { timeoutMs: -1 }), 400, "E_INVALID");
    expect(s.service.calls).toEqual([]);
    expect([...s.service.running.keys()]).toEqual(["web"]);
  });

  test("oversized bodies: 413 (declared or not)", async () => {
    const s = setup();
    await started(s);
    const big = JSON.stringify({ pad: "x".repeat(MAX_BODY_BYTES) });
    for (const verb of MUTATING) expectError(await s.call("POST", `/v1/machines/web/${verb}`, big), 413, "E_TOO_LARGE");
    // chunked (no content-length): counted while reading
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res = await s.app.fetch(new Request("http://localhost/v1/machines/web/kill", { method: "POST", body: stream, duplex: "half" } as RequestInit));
    expect(res.status).toBe(413);
    expect(s.service.calls).toEqual([]);
  });

  test("unknown routes 404, wrong methods 405, both JSON", async () => {
    const s = setup();
    expectError(await s.call("GET", "/v1/machines?all=yes"), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/nothing"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/"), 404, "E_NOT_FOUND");
    expectError(await s.call("PUT", "/v1/machines/web"), 405, "E_USAGE");
    expectError(await s.call("DELETE", "/v1/machines"), 405, "E_USAGE");
    expectError(await s.call("GET", "/v1/machines/web/start"), 405, "E_USAGE");
    expect(s.service.calls).toEqual([]);
  });

  test("a service failure is a 500 with the error's code and context", async () => {
    const s = setup();
    await started(s);
    s.service.poweroff = async () => {
      throw new MachinaError("E_SYSTEM", "failed to send signal", { machine: "web", syscall: "kill" });
    };
    const r = await s.call("POST", "/v1/machines/web/poweroff");
    expectError(r, 500, "E_SYSTEM");
    expect(r.json.details).toEqual({ machine: "web", syscall: "kill" });
  });
});

describe("images", () => {
  test("list, status, properties, pool", async () => {
    const s = setup();
    const list = S.ImageList.parse((await s.call("GET", "/v1/images?all=1")).json);
    expect(list.images.map((i) => i.name)).toEqual(["web", "base"]);
    expect(S.ImageStatus.parse((await s.call("GET", "/v1/images/base")).json).os).toBe("BusyBox");
    expect(S.ImageInfo.parse((await s.call("GET", "/v1/images/base/properties")).json).path).toBe("/pool/base");
    expect(S.PoolInfo.parse((await s.call("GET", "/v1/pool")).json).poolPath).toBe("/pool");
    // names that are images but not machine names are fine here
    expect((await s.call("GET", "/v1/images/a%20b_c")).status).toBe(404);
    expect(s.images.calls).toEqual(["listImages true", "imageStatus base", "showImage base", "pool", "imageStatus a b_c"]);
  });

  test("pull: a job whose events carry bytes done and total, its result the image; a bad URL or kind is a 400 at once", async () => {
    const s = setup();
    const done = await s.call("POST", "/v1/images/pull", { kind: "tar", url: "http://127.0.0.1:9/images/web.tar.gz", name: "web2", verify: "no", wait: true });
    expect(done.status).toBe(200);
    const job = S.Job.parse(done.json);
    expect([job.kind, job.machine, job.state, job.result]).toEqual(["pull", "web2", "done", { image: "web2", from: "http://127.0.0.1:9/images/web.tar.gz" }]);
    expect(job.events.map((e) => [e.done, e.total])).toEqual([
      [0, 100],
      [50, 100],
      [100, 100],
    ]);
    // an image name that is not a machine name ("_"): the job still parses as the client parses it
    const odd = await s.call("POST", "/v1/images/pull", { kind: "tar", url: "http://127.0.0.1:9/x.tar", name: "with_underscore", verify: "no", wait: true });
    expect(S.Job.parse(odd.json).machine).toBe("with_underscore");
    // the default name comes from the URL, as machinactl's
    const bg = await s.call("POST", "/v1/images/pull", { kind: "raw", url: "http://127.0.0.1:9/x/disk.raw.xz", verify: "checksum" });
    expect(bg.status).toBe(202);
    expect(S.Job.parse(bg.json).machine).toBe("disk");
    // an OCI image from a registry: the default name from the reference, as pull-oci's
    const oci = S.Job.parse(
      (await s.call("POST", "/v1/images/pull", { kind: "oci", ref: "127.0.0.1:5000/tools/busybox:1.36", tlsVerify: false, wait: true })).json,
    );
    expect([oci.state, oci.machine, oci.result]).toEqual(["done", "busybox", { image: "pulled", from: "127.0.0.1:5000/tools/busybox:1.36" }]);
    expect(s.images.calls.at(-1)).toBe('pull {"kind":"oci","ref":"127.0.0.1:5000/tools/busybox:1.36","tlsVerify":false,"force":false,"readOnly":false}');
    const failed = S.Job.parse((await s.call("POST", "/v1/images/pull", { kind: "tar", url: "http://127.0.0.1:9/fail.tar", wait: true })).json);
    expect([failed.state, failed.error?.code]).toEqual(["failed", "E_NOT_FOUND"]);
    const before = s.images.calls.length;
    for (const body of [
      { kind: "tar", url: "file:///etc/passwd" },
      { kind: "tar", url: "not a url" },
      { kind: "zip", url: "http://127.0.0.1:9/a.tar" },
      { kind: "tar", url: "http://127.0.0.1:9/a.tar", name: "../x" },
      { kind: "tar", url: "http://127.0.0.1:9/a.tar", extra: 1 },
      { kind: "oci", ref: "UPPER/Case:tag" },
      { kind: "oci", url: "http://127.0.0.1:9/a.tar" },
      { kind: "tar", ref: "busybox" },
    ])
      expectError(await s.call("POST", "/v1/images/pull", body), 400, "E_INVALID");
    expect(s.images.calls.length).toBe(before);
  });

  test("bootstrap: a job whose events are the build tool's lines; refusals at once (a missing tool, bad input)", async () => {
    const s = setup();
    const done = S.Job.parse((await s.call("POST", "/v1/images/bootstrap", { name: "deb", distro: "debian", release: "bookworm", wait: true })).json);
    expect([done.kind, done.machine, done.state, done.result]).toEqual(["bootstrap", "deb", "done", { image: "deb", from: "debian bookworm" }]);
    expect(done.events.map((e) => e.message)).toEqual(["I: Retrieving InRelease", "I: Base system installed successfully."]);
    expect(s.images.calls.at(-1)).toBe('bootstrap {"name":"deb","distro":"debian","release":"bookworm","force":false}');
    expectError(await s.call("POST", "/v1/images/bootstrap", { name: "f", distro: "fedora" }), 404, "E_NOT_FOUND");
    const before = s.images.calls.length;
    for (const body of [
      { name: "x", distro: "arch" },
      { name: "../x", distro: "debian" },
      { name: "x", distro: "debian", release: "-rf" },
      { name: "x", distro: "debian", mirror: "not a url" },
      { name: "x", distro: "debian", extra: true },
    ])
      expectError(await s.call("POST", "/v1/images/bootstrap", body), 400, "E_INVALID");
    expect(s.images.calls.length).toBe(before);
  });

  test("archives: an upload becomes an image, a download gives it back; kinds and compressions checked; an existing image needs force", async () => {
    const s = setup();
    const bytes = new Uint8Array(200_000).map((_, i) => i % 253);
    const put = (path: string, body: BodyInit) => s.app.fetch(new Request(`http://localhost${path}`, { method: "PUT", body }));
    const made = await put("/v1/images/up/archive?kind=raw&readOnly=1", new Blob([bytes]));
    expect([made.status, await made.json()]).toEqual([200, { image: "up", from: "upload" }]);
    const got = await s.app.fetch(new Request("http://localhost/v1/images/up/archive?kind=tar&compression=zstd"));
    expect([got.status, got.headers.get("x-file-size")]).toEqual([200, "200000"]);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
    expect((await put("/v1/images/up/archive", new Blob(["x"]))).status).toBe(409);
    expect((await put("/v1/images/up/archive?force=1", new Blob(["x"]))).status).toBe(200);
    expectError(await s.call("PUT", "/v1/images/up/archive?kind=zip", "x"), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/images/up/archive?compression=lz4"), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/images/none/archive"), 404, "E_NOT_FOUND");
    expectError(await s.call("PUT", "/v1/images/..%2Fx/archive", "x"), 400, "E_INVALID");
    expect(s.images.calls.filter((c) => c.includes("Archive"))).toEqual([
      "importArchive up raw 200000 true",
      "exportArchive up tar zstd",
      "importArchive up tar 1 false",
      "exportArchive none tar -",
    ]);
  });

  test("transfers: machinactl's, listed; cancel one; an unknown or malformed id", async () => {
    const s = setup();
    expect((await s.call("GET", "/v1/transfers")).json).toEqual({ transfers: s.images.transferList });
    expect((await s.call("DELETE", "/v1/transfers/3")).json).toEqual({ ok: true });
    expect((await s.call("GET", "/v1/transfers")).json).toEqual({ transfers: [] });
    expectError(await s.call("DELETE", "/v1/transfers/3"), 404, "E_NOT_FOUND");
    expectError(await s.call("DELETE", "/v1/transfers/x"), 400, "E_INVALID");
    expect(s.images.calls.filter((c) => c.startsWith("cancelTransfer"))).toEqual(["cancelTransfer 3", "cancelTransfer 3"]);
  });

  test("settings: the .nspawn file and its text; none; an unknown image 404", async () => {
    const s = setup();
    expect((await s.call("GET", "/v1/images/web/settings")).json).toEqual({ file: "/pool/web.nspawn", text: "[Exec]\nBoot=yes\n" });
    expect((await s.call("GET", "/v1/images/base/settings")).json).toEqual({ file: null, text: null });
    expectError(await s.call("GET", "/v1/images/nope/settings"), 404, "E_NOT_FOUND");
    expectError(await s.call("GET", "/v1/images/..%2Fetc/settings"), 400, "E_INVALID");
  });

  test("clone, rename, read-only, remove, clean; set-limit carries E_UNSUPPORTED as 501", async () => {
    const s = setup();
    expect(S.CloneResult.parse((await s.call("POST", "/v1/images/base/clone", { to: "copy", readOnly: true })).json).readOnly).toBe(true);
    expect((await s.call("POST", "/v1/images/copy/rename", { to: "moved" })).json).toEqual({ name: "moved", from: "copy", path: "/pool/moved" });
    expect((await s.call("POST", "/v1/images/moved/read-only", {})).json).toEqual({ name: "moved", readOnly: true });
    expect((await s.call("POST", "/v1/images/moved/read-only", { readOnly: false })).json).toEqual({ name: "moved", readOnly: false });
    expect((await s.call("DELETE", "/v1/images/moved")).json).toEqual({ removed: ["moved"] });
    expect(S.CleanResult.parse((await s.call("POST", "/v1/pool/clean", { all: true })).json).skipped).toHaveLength(1);
    expectError(await s.call("POST", "/v1/images/base/limit", { limit: 1024 }), 501, "E_UNSUPPORTED");
    expectError(await s.call("POST", "/v1/pool/limit", { limit: null }), 501, "E_UNSUPPORTED");
    expect(s.images.calls).toEqual([
      "clone base copy true",
      "rename copy moved",
      "setReadOnly moved true",
      "setReadOnly moved false",
      "remove moved",
      "clean true",
      "setLimit base 1024",
      "setLimit undefined undefined",
    ]);
  });

  test("a busy image: 409 E_BUSY, nothing changed; an unknown one: 404", async () => {
    const s = setup();
    expectError(await s.call("POST", "/v1/images/web/rename", { to: "x" }), 409, "E_BUSY");
    expectError(await s.call("POST", "/v1/images/web/read-only", {}), 409, "E_BUSY");
    expectError(await s.call("DELETE", "/v1/images/web"), 409, "E_BUSY");
    for (const [method, path] of [
      ["GET", "/v1/images/nope"],
      ["GET", "/v1/images/nope/properties"],
      ["DELETE", "/v1/images/nope"],
      ["POST", "/v1/images/nope/read-only"],
    ] as const)
      expectError(await s.call(method, path), 404, "E_NOT_FOUND");
    expectError(await s.call("POST", "/v1/images/nope/clone", { to: "y" }), 404, "E_NOT_FOUND");
    expect([...s.images.pool_.entries()]).toEqual([
      ["web", { readOnly: false, busy: true }],
      ["base", { readOnly: false, busy: false }],
    ]);
  });

  test("bad input: traversal and invalid names, wrong types, unknown fields → 400 E_INVALID, never reaching the pool", async () => {
    const s = setup();
    // "%2F" is decoded before the check; ".." (also as "%2E%2E") is resolved by URL parsing: another path, no such endpoint
    for (const method of ["GET", "DELETE"]) expectError(await s.call(method, "/v1/images/%2E%2E"), 404, "E_NOT_FOUND");
    for (const bad of ["..%2F..%2Fetc", "a%2Fb", "%2Fetc", ".%23tmp", "disk.raw", ".host", "a%00b", "x".repeat(252)]) {
      expectError(await s.call("GET", `/v1/images/${bad}`), 400, "E_INVALID");
      expectError(await s.call("GET", `/v1/images/${bad}/properties`), 400, "E_INVALID");
      expectError(await s.call("DELETE", `/v1/images/${bad}`), 400, "E_INVALID");
      for (const [verb, body] of [
        ["clone", { to: "ok" }],
        ["rename", { to: "ok" }],
        ["read-only", {}],
        ["limit", { limit: 1 }],
      ] as const)
        expectError(await s.call("POST", `/v1/images/${bad}/${verb}`, body), 400, "E_INVALID");
    }
    for (const to of ["..", "../escape", "a/b", ".#x", "x.raw", ".host", "", "x".repeat(252)]) {
      expectError(await s.call("POST", "/v1/images/base/clone", { to }), 400, "E_INVALID");
      expectError(await s.call("POST", "/v1/images/base/rename", { to }), 400, "E_INVALID");
    }
    const bodies: Array<[string, unknown]> = [
      ["clone", {}],
      ["clone", { to: 5 }],
      ["clone", { to: "ok", readOnly: "yes" }],
      ["clone", { to: "ok", bogus: 1 }],
      ["rename", { to: ["x"] }],
      ["rename", { to: "ok", force: true }],
      ["read-only", { readOnly: 1 }],
      ["read-only", { ro: true }],
      ["limit", {}],
      ["limit", { limit: -1 }],
      ["limit", { limit: 1.5 }],
      ["limit", { limit: "1G" }],
      ["limit", { limit: 1, extra: 0 }],
    ];
    for (const [verb, body] of bodies) expectError(await s.call("POST", `/v1/images/base/${verb}`, body as object), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/pool/clean", { all: "yes" }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/pool/clean", { everything: true }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/pool/limit", { limit: "none" }), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/images/base/clone", "{"), 400, "E_INVALID");
    expectError(await s.call("GET", "/v1/images?all=yes"), 400, "E_INVALID");
    expectError(await s.call("POST", "/v1/images/base/clone", JSON.stringify({ to: "x".repeat(MAX_BODY_BYTES) })), 413, "E_TOO_LARGE");
    expectError(await s.call("PUT", "/v1/images/base"), 405, "E_USAGE");
    expectError(await s.call("GET", "/v1/images/base/clone"), 405, "E_USAGE");
    expect(s.images.calls).toEqual([]);
    expect([...s.images.pool_.keys()]).toEqual(["web", "base"]);
  });

  test("without an image service: 501", async () => {
    const { app } = createApp({ service: new FakeService() });
    const res = await app.fetch(new Request("http://localhost/v1/images"));
    expect(res.status).toBe(501);
    expect(((await res.json()) as S.ApiError).code).toBe("E_UNSUPPORTED");
  });
});

describe("the dashboard's files", () => {
  test("/ is the page, /assets/NAME a file read at start; anything else, or no build, a JSON 404", async () => {
    const { WebAssets } = await import("../../src/daemon/web-assets.ts");
    const dir = mkdtempSync(join(tmpdir(), "machina-web-"));
    try {
      writeFileSync(join(dir, "index.html"), "<!doctype html><title>machina</title>");
      writeFileSync(join(dir, "app.js"), "void 0");
      const { app } = createApp({ service: new FakeService(), web: new WebAssets(dir) });
      const page = await app.fetch(new Request("http://localhost/"));
      expect([page.status, page.headers.get("content-type"), await page.text()]).toEqual([
        200,
        "text/html; charset=utf-8",
        "<!doctype html><title>machina</title>",
      ]);
      expect((await app.fetch(new Request("http://localhost/assets/app.js"))).status).toBe(200);
      for (const path of ["/assets/index.html", "/assets/missing.js", "/assets/..%2Findex.html", "/assets/%2e%2e/etc/passwd"]) {
        const r = await app.fetch(new Request(`http://localhost${path}`));
        expect(`${path} ${r.status}`).toBe(`${path} 404`);
        expect(((await r.json()) as S.ApiError).code).toBe("E_NOT_FOUND");
      }
      const none = await createApp({ service: new FakeService() }).app.fetch(new Request("http://localhost/"));
      expect(none.status).toBe(404);
      expect(((await none.json()) as S.ApiError).message).toContain("scripts/build");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("typed client", () => {
  test("every error code of the API comes back as the same MachinaError code (E_INTERNAL as E_SYSTEM)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "machina-client-"));
    let answer: S.ApiError = { code: "E_BUSY", message: "x" };
    const server = Bun.serve({ unix: `${dir}/api.sock`, fetch: () => Response.json(answer, { status: 409 }) });
    try {
      const client = new MachinaClient(`${dir}/api.sock`);
      for (const code of [...ERROR_CODES, "E_INTERNAL"] as const) {
        answer = { code, message: `m ${code}`, details: { machine: "web", hint: "h" } };
        const e = await client.status("web").catch((x: unknown) => x);
        expect(e).toBeInstanceOf(MachinaError);
        expect([(e as MachinaError).code, (e as MachinaError).message, (e as MachinaError).context.machine, (e as MachinaError).hint]).toEqual([
          code === "E_INTERNAL" ? "E_SYSTEM" : code,
          `m ${code}`,
          "web",
          "h",
        ]);
      }
    } finally {
      server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test("calls every route of the app (over a socket): the service's results, progress, cancellation", async () => {
    const dir = mkdtempSync(join(tmpdir(), "machina-client-"));
    const service = new FakeService();
    const images = new FakeImages();
    const { app } = createApp({ service, images });
    const server = Bun.serve({ unix: `${dir}/api.sock`, fetch: app.fetch });
    try {
      const client = new MachinaClient(`${dir}/api.sock`);
      expect(await client.ping()).toBe(true);
      expect((await client.version()).name).toBe("machinad");
      const events: string[] = [];
      expect((await client.start("web", { onProgress: (e) => events.push(e.stage ?? e.event ?? "") })).leader).toBe(42);
      expect(events).toEqual(["spec", "started"]);
      expect((await client.start("db")).name).toBe("db");
      expect((await client.list({ all: true, maxAddresses: 2 })).map((m) => m.machine)).toEqual(["web", "db"]);
      expect((await client.status("web")).leader).toBe(42);
      expect(await client.show("web")).toEqual([
        ["Name", "web"],
        ["Leader", "42"],
        ["State", "running"],
      ]);
      await client.poweroff("web");
      await client.reboot("web");
      await client.kill("web", { whom: "leader", signal: 9 });
      await client.kill("web");
      const lines: string[] = [];
      await client.logs("web", { lines: 1, onLine: (l) => lines.push(l) });
      expect(lines).toEqual(["second"]);
      const stop = new AbortController();
      const following = client.logs("web", { follow: true, lines: 0, signal: stop.signal, onLine: (l) => lines.push(l) });
      while (service.followers.size === 0) await Bun.sleep(5);
      for (const f of service.followers) f("later");
      while (lines.length < 2) await Bun.sleep(5);
      stop.abort();
      expect(await following).toBe(0);
      while (service.followers.size > 0) await Bun.sleep(5);
      expect(lines).toEqual(["second", "later"]);
      expect(await client.exec("web", { argv: ["echo", "a"] })).toMatchObject({ exitStatus: 0, stdout: "a" });
      expect(((await client.exec("nope", { argv: ["true"] }).catch((x: unknown) => x)) as MachinaError).code).toBe("E_NOT_FOUND");
      expect((await client.enable("db", { now: false })).changes).toHaveLength(1);
      expect((await client.disable("db")).changes).toEqual([]);
      expect(await client.terminate("db", { timeoutMs: 500 })).toBe("stopped");
      service.gate = new Promise(() => {});
      const abort = new AbortController();
      const cancelled = await client.start("db", { signal: abort.signal, onProgress: (e) => e.stage === "spec" && abort.abort() }).catch((x: unknown) => x);
      expect((cancelled as MachinaError).code).toBe("E_CANCELLED");
      expect(service.calls).toEqual([
        "start web",
        "start db",
        "list",
        "status web",
        "show web",
        "poweroff web",
        "reboot web",
        "kill web leader 9",
        "kill web all 15",
        "logs web 1 false",
        "logs web 0 true",
        'exec web {"argv":["echo","a"]}',
        'exec nope {"argv":["true"]}',
        "enable db false",
        "disable db false",
        "status db",
        "terminate db 500",
        "start db",
      ]);
      expect([...service.running.keys()]).toEqual(["web"]);

      // images: each client method reaches its core method with its arguments; errors keep their codes
      expect((await client.listImages({ all: true })).map((i) => i.name)).toEqual(["web", "base"]);
      expect((await client.imageStatus("base")).os).toBe("BusyBox");
      expect((await client.showImage("base")).name).toBe("base");
      expect((await client.pool()).pools).toEqual(["/pool"]);
      expect((await client.clone("base", "a b", { readOnly: true })).name).toBe("a b");
      expect((await client.rename("a b", "c")).path).toBe("/pool/c");
      expect(await client.setReadOnly("c", false)).toEqual({ name: "c", readOnly: false });
      expect(await client.remove("c")).toEqual({ removed: ["c"] });
      expect((await client.clean()).skipped).toEqual([{ name: "web", reason: "in use" }]);
      expect(((await client.remove("web").catch((x: unknown) => x)) as MachinaError).code).toBe("E_BUSY");
      expect(((await client.setLimit("base", 5).catch((x: unknown) => x)) as MachinaError).code).toBe("E_UNSUPPORTED");
      expect(((await client.setLimit(undefined, undefined).catch((x: unknown) => x)) as MachinaError).code).toBe("E_UNSUPPORTED");
      expect(((await client.showImage("nope").catch((x: unknown) => x)) as MachinaError).code).toBe("E_NOT_FOUND");
      expect(images.calls).toEqual([
        "listImages true",
        "imageStatus base",
        "showImage base",
        "pool",
        "clone base a b true",
        "rename a b c",
        "setReadOnly c false",
        "remove c",
        "clean false",
        "remove web",
        "setLimit base 5",
        "setLimit undefined undefined",
        "showImage nope",
      ]);
    } finally {
      server.stop(true);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("OpenAPI", () => {
  test("served, committed and current; every route documented", async () => {
    const s = setup();
    const served = await s.call("GET", "/openapi.json");
    const doc = openapiDocument();
    expect(served.json).toEqual(JSON.parse(JSON.stringify(doc)));
    const committed = JSON.parse(readFileSync(join(import.meta.dir, "../../docs/api/openapi.json"), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(doc)));
    expect(doc["openapi"]).toBe("3.1.0");
    const paths = doc["paths"] as Record<string, Record<string, { responses: Record<string, unknown> }>>;
    for (const r of ROUTES) {
      const op = paths[r.path]?.[r.method];
      expect(op).toBeDefined();
      for (const e of r.errors) expect(op!.responses[String(e)]).toBeDefined();
    }
    const schemas = (doc["components"] as { schemas: Record<string, unknown> }).schemas;
    for (const id of [
      "Error",
      "MachineStatus",
      "Job",
      "JobEvent",
      "KillRequest",
      "ImageName",
      "ImageStatus",
      "CloneRequest",
      "CleanResult",
      "ExecRequest",
      "ExecResult",
      "LogLine",
    ])
      expect(schemas[id]).toBeDefined();
  });
});
