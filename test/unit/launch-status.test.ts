import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { parseStatusLine, readUntilReady, type StatusLine } from "../../src/runtime/launch.ts";

describe("the helper's status lines (background starts)", () => {
  test("parseStatusLine: JSON objects with fields of the right types; anything else is skipped", () => {
    expect(parseStatusLine('{"event":"started","leader":12,"supervisor":11,"extra":true}')).toEqual({
      event: "started",
      leader: 12,
      supervisor: 11,
      extra: true,
    });
    expect(parseStatusLine("machina-helper: not json")).toBeUndefined();
    expect(parseStatusLine('{"event":"started","leader":"12"}')).toBeUndefined();
    expect(parseStatusLine("[1]")).toBeUndefined();
  });

  test("readUntilReady through Host.spawnDetached: stops at ready, keeps the last error", async () => {
    const host = new FakeHost();
    host.onSpawnDetached = () => ({
      statusLines: [
        '{"stage":"spec"}',
        "garbage",
        '{"error":{"syscall":"mount","path":"/x","code":"EPERM","message":"failed to mount /x"}}',
        '{"event":"started","leader":101,"supervisor":100}',
        '{"event":"ready"}',
        '{"event":"exited","status":0}',
      ],
      status: 0,
    });
    const proc = host.spawnDetached(["/helper", "run", "--spec-fd"], { spec: new Uint8Array([1]), logPath: "/logs/web.log" });
    const seen: StatusLine[] = [];
    const said = await readUntilReady(proc, (l) => seen.push(l));
    expect(said).toEqual({
      started: true,
      leader: 101,
      supervisor: 100,
      failure: { syscall: "mount", path: "/x", code: "EPERM", message: "failed to mount /x" },
    });
    expect(seen.map((l) => l.event ?? l.stage ?? "error")).toEqual(["spec", "error", "started", "ready"]);
    expect(host.detachedSpawns.map((s) => [s.argv, s.logPath])).toEqual([[["/helper", "run", "--spec-fd"], "/logs/web.log"]]);
  });

  test("readUntilReady: EOF before started", async () => {
    const host = new FakeHost();
    host.onSpawnDetached = () => ({ statusLines: ['{"stage":"spec"}'], status: 1 });
    const proc = host.spawnDetached(["/helper"], { spec: new Uint8Array(), logPath: "/l" });
    expect(await readUntilReady(proc)).toEqual({ started: false, leader: 0, supervisor: proc.pid, failure: undefined });
    expect(await proc.exited).toBe(1);
  });
});
