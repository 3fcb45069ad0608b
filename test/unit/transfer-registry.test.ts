/** The records of running transfers (src/image/transfer-registry.ts). Pure (fake host). */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { cancelTransfer, listTransfers, registerTransfer, transfersDir, unregisterTransfer, updateTransfer } from "../../src/image/transfer-registry.ts";

const STATE = "/state";

describe("transfer registry", () => {
  test("lowest free id, progress, unregister", () => {
    const h = new FakeHost({ pid: 77 });
    const a = registerTransfer(h, STATE, { type: "import-tar", remote: "/x.tar", local: "x" });
    const b = registerTransfer(h, STATE, { type: "pull-raw", remote: "http://h/d.raw", local: "d" });
    expect([a.id, b.id]).toEqual([1, 2]);
    expect(a).toMatchObject({ pid: 77, pidStart: "123456", progress: null });
    updateTransfer(h, STATE, b, 0.5);
    expect(listTransfers(h, STATE).map((r) => [r.id, r.type, r.local, r.progress])).toEqual([
      [1, "import-tar", "x", null],
      [2, "pull-raw", "d", 0.5],
    ]);
    unregisterTransfer(h, STATE, 1);
    expect(registerTransfer(h, STATE, { type: "export-tar", remote: "-", local: "y" }).id).toBe(1);
    expect(h.readdir(transfersDir(STATE)).sort()).toEqual(["1.json", "2.json"]); // no temporaries left
  });

  test("a record that does not parse is passed over; one of another process's start time is removed", () => {
    const h = new FakeHost();
    registerTransfer(h, STATE, { type: "import-fs", remote: "/d", local: "d" });
    h.add(`${STATE}/transfers/2.json`, "{not json");
    h.add(
      `${STATE}/transfers/3.json`,
      JSON.stringify({ id: 3, type: "no-such-type", remote: "", local: "", pid: 1, pidStart: "123456", progress: null, startedAt: "" }),
    );
    h.add(
      `${STATE}/transfers/4.json`,
      JSON.stringify({ id: 4, type: "import-tar", remote: "", local: "", pid: 9, pidStart: "999", progress: null, startedAt: "" }),
    );
    expect(listTransfers(h, STATE).map((r) => r.id)).toEqual([1]);
    expect(h.lstat(`${STATE}/transfers/4.json`)).toBeUndefined();
    expect(h.lstat(`${STATE}/transfers/2.json`)).toBe("file");
  });

  test("cancel: SIGTERM to the transfer's process, false for an unknown id", async () => {
    const h = new FakeHost({ pid: 55 });
    const rec = registerTransfer(h, STATE, { type: "import-tar", remote: "/x.tar", local: "x" });
    h.onKill = () => unregisterTransfer(h, STATE, rec.id);
    expect(await cancelTransfer(h, STATE, 7)).toBe(false);
    expect(await cancelTransfer(h, STATE, rec.id)).toBe(true);
    expect(h.kills).toEqual([[55, 15]]);
  });

  test("one of machinad's jobs: listed with its job, cancelled as that job and never by a signal (it would stop machinad)", async () => {
    const h = new FakeHost({ pid: 66 });
    const rec = registerTransfer(h, STATE, { type: "pull-oci", remote: "127.0.0.1:5000/bb:1", local: "bb", job: "mx1-2" });
    expect(listTransfers(h, STATE).map((r) => [r.id, r.pid, r.job])).toEqual([[1, 66, "mx1-2"]]);
    // without machinad to ask: one line, nothing signalled
    await expect(cancelTransfer(h, STATE, rec.id)).rejects.toThrow(
      "transfer 1 runs in machinad (job mx1-2), which does not answer: it is cancelled through machinad only",
    );
    const asked: string[] = [];
    const cancelJob = (job: string) => {
      asked.push(job);
      unregisterTransfer(h, STATE, rec.id); // the job undoes its work and removes its record
      return true;
    };
    expect(await cancelTransfer(h, STATE, rec.id, cancelJob)).toBe(true);
    expect(asked).toEqual(["mx1-2"]);
    expect(h.kills).toEqual([]);
    expect(listTransfers(h, STATE)).toEqual([]);
    // a plain transfer with the callback given: still its process's SIGTERM
    const plain = registerTransfer(h, STATE, { type: "import-tar", remote: "/x.tar", local: "x" });
    h.onKill = () => unregisterTransfer(h, STATE, plain.id);
    expect(await cancelTransfer(h, STATE, plain.id, cancelJob)).toBe(true);
    expect([asked, h.kills]).toEqual([["mx1-2"], [[66, 15]]]);
  });
});
