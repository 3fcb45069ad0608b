import { describe, expect, test } from "bun:test";
import { MachinaError } from "../../src/errors.ts";
import { Reverter, UndoError } from "../../src/reverter.ts";

describe("Reverter", () => {
  test("undoes newest first, runs every undo even when one throws, and reports the failed ones", () => {
    const log: string[] = [];
    const r = new Reverter();
    r.add("a", () => void log.push("a"));
    r.add("b", () => {
      throw new Error("boom");
    });
    r.add(() => void log.push("c"));
    const failed = r.revert();
    expect(log).toEqual(["c", "a"]);
    expect(failed).toBeInstanceOf(UndoError);
    expect(failed!.code).toBe("E_SYSTEM");
    expect(failed!.failures.map((e) => e.message)).toEqual(['undo "b" failed: boom']);
    expect(failed!.message).toBe('undoing failed: undo "b" failed: boom');
    expect(r.revert()).toBeUndefined(); // the steps ran once
  });

  test("commit forgets the steps", () => {
    const log: string[] = [];
    const r = new Reverter();
    r.add("d", () => void log.push("d"));
    r.commit();
    expect(r.size).toBe(0);
    expect(r.revert()).toBeUndefined();
    expect(log).toEqual([]);
  });

  test("an asynchronous undo in the synchronous revert() is reported, not dropped", () => {
    const r = new Reverter();
    r.add("later", async () => undefined);
    expect(r.revert()!.failures[0]!.message).toContain('undo "later" is asynchronous');
  });

  test("fail(cause) returns the cause itself when every undo succeeded", () => {
    const r = new Reverter();
    r.add("ok", () => undefined);
    const cause = new MachinaError("E_BUSY", "taken", { machine: "m" });
    expect(r.fail(cause)).toBe(cause);
  });

  test("fail(cause) keeps the cause's code, context and hint and names the undo failures", () => {
    const r = new Reverter();
    r.add("unmount /x", () => {
      throw new Error("EBUSY");
    });
    r.add("delete veth", () => {
      throw new Error("no such device");
    });
    const cause = new MachinaError("E_BUSY", "port taken", { machine: "m" }, "use another port");
    const e = r.fail(cause) as MachinaError;
    expect(e).toBeInstanceOf(MachinaError);
    expect(e.code).toBe("E_BUSY");
    expect(e.context).toEqual({ machine: "m" });
    expect(e.hint).toBe("use another port");
    expect(e.message).toBe('port taken (undoing it failed too: undo "delete veth" failed: no such device; undo "unmount /x" failed: EBUSY)');
    expect(e.cause).toBe(cause);
    // A plain Error becomes E_SYSTEM.
    const r2 = new Reverter();
    r2.add("x", () => {
      throw new Error("y");
    });
    expect((r2.fail(new Error("z")) as MachinaError).code).toBe("E_SYSTEM");
  });

  test("revertAsync awaits each undo, newest first", async () => {
    const log: string[] = [];
    const r = new Reverter();
    r.add("a", async () => {
      await Bun.sleep(5);
      log.push("a");
    });
    r.add("b", async () => {
      throw new Error("nope");
    });
    r.add("c", () => void log.push("c"));
    const failed = await r.revertAsync();
    expect(log).toEqual(["c", "a"]);
    expect(failed!.failures.map((e) => e.message)).toEqual(['undo "b" failed: nope']);
  });

  test("Reverter.run reverts on throw (reporting undo failures) and commits on success", async () => {
    const log: string[] = [];
    await expect(
      Reverter.run((r) => {
        r.add("x", () => void log.push("x"));
        throw new Error("fail");
      }),
    ).rejects.toThrow("fail");
    expect(log).toEqual(["x"]);
    expect(
      await Reverter.run((r) => {
        r.add("y", () => void log.push("y"));
        return 7;
      }),
    ).toBe(7);
    expect(log).toEqual(["x"]);
    await expect(
      Reverter.run((r) => {
        r.add("z", () => {
          throw new Error("stuck");
        });
        throw new Error("fail");
      }),
    ).rejects.toThrow('fail (undoing it failed too: undo "z" failed: stuck)');
  });

  test("Reverter.runSync", () => {
    const log: string[] = [];
    expect(() =>
      Reverter.runSync((r) => {
        r.add("x", () => void log.push("x"));
        throw new Error("fail");
      }),
    ).toThrow("fail");
    expect(
      Reverter.runSync((r) => {
        r.add("y", () => void log.push("y"));
        return 1;
      }),
    ).toBe(1);
    expect(log).toEqual(["x"]);
  });
});

describe("always", () => {
  test("done by commit on success (newest first, an error ignored), with the undos on failure, never twice", async () => {
    const log: string[] = [];
    const ok = await Reverter.run((r) => {
      r.add("undo a", () => void log.push("undo a"));
      r.always("unlock 1", () => void log.push("unlock 1"));
      r.always("unlock 2", () => {
        log.push("unlock 2");
        throw new Error("already closed");
      });
      return "made";
    });
    expect([ok, log]).toEqual(["made", ["unlock 2", "unlock 1"]]);
    log.length = 0;
    const failed = await Reverter.run((r) => {
      r.always("unlock", () => void log.push("unlock"));
      r.add("undo b", () => void log.push("undo b"));
      throw new Error("boom");
    }).catch((e: unknown) => (e as Error).message);
    expect([failed, log]).toEqual(["boom", ["undo b", "unlock"]]);
    const r = new Reverter();
    r.always("once", () => void log.push("once"));
    r.commit();
    r.commit();
    expect(log.filter((l) => l === "once")).toEqual(["once"]);
  });
});
