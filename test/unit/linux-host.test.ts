/**
 * LinuxHost's exit statuses: a child that a signal ended gives 128 + the signal's number, as a
 * shell reports it (its signal name comes from node:os, loaded only then: src/host/linux.ts).
 */
import { expect, test } from "bun:test";
import { LinuxHost } from "../../src/host/linux.ts";

const host = new LinuxHost();

test("runAsync: exit codes as they are, a signal as 128 + its number", async () => {
  expect((await host.runAsync(["sh", "-c", "exit 7"])).status).toBe(7);
  expect((await host.runAsync(["sh", "-c", "kill -TERM $$"])).status).toBe(128 + 15);
  expect((await host.runAsync(["sh", "-c", "kill -KILL $$"])).status).toBe(128 + 9);
  expect((await host.runAsync(["sh", "-c", "kill -USR1 $$"])).status).toBe(128 + 10);
});

test("run: a signal as 128 + its number too", () => {
  expect(host.run(["sh", "-c", "exit 3"]).status).toBe(3);
  expect(host.run(["sh", "-c", "kill -TERM $$"]).status).toBe(128 + 15);
});
