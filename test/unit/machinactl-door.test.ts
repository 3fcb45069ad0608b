import { describe, expect, test } from "bun:test";
import { notServed, SERVED_VERBS } from "../../src/daemon/machinactl-door.ts";

describe("machinactl's door: what machinad serves for the front end", () => {
  test("the reading and entering verbs, --help, --version and the lists; no verb is list", () => {
    for (const argv of [
      [],
      ["list"],
      ["status", "web"],
      ["show", "web", "-p", "Leader"],
      ["shell", "web", "/bin/true"],
      ["shell", "root@web"],
      ["exec", "web", "/bin/true"],
      ["--version"],
      ["--help"],
      ["shell", "--help"],
      ["--output=help"],
    ])
      expect({ argv, why: notServed(argv, {}) }).toEqual({ argv, why: undefined });
    expect([...SERVED_VERBS].sort()).toEqual(["exec", "list", "shell", "show", "status"]);
  });
  test("the full machinactl: other verbs, a shell on the host, a command line it refuses", () => {
    expect(notServed(["start", "web"], {})).toBe('the verb "start"');
    expect(notServed(["terminate", "web"], {})).toBe('the verb "terminate"');
    expect(notServed(["pull-tar", "http://x/y.tar", "y"], {})).toBe('the verb "pull-tar"');
    for (const argv of [["shell"], ["shell", ".host"], ["shell", "alice@.host"], ["shell", "alice@"], ["shell", ".host", "/bin/true"]])
      expect(notServed(argv, {})).toBe("a shell on the host");
    expect(notServed(["--no-such-option"], {})).toBe("a command line machinactl refuses (its message is its own)");
  });
});
