import { describe, expect, test } from "bun:test";
import { SERVED_VERBS, servedHere } from "../../src/daemon/machinactl-door.ts";

/** Why a command line is not served here (undefined: served, and then parsed). */
function notServed(argv: string[], env: Record<string, string>): string | undefined {
  const s = servedHere(argv, env);
  if ("why" in s) return s.why;
  expect(s.parsed.args).toEqual(
    argv
      .filter((a) => !a.startsWith("-"))
      .slice(1)
      .filter((a) => !["Leader"].includes(a)),
  );
  return undefined;
}

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
    // served: the door hands its parse to machinactl's main, which does not parse again
    const s = servedHere(["-q", "exec", "web", "/bin/true"], {});
    expect("parsed" in s && { verb: s.parsed.verb, args: s.parsed.args, quiet: s.parsed.options.quiet }).toEqual({
      verb: "exec",
      args: ["web", "/bin/true"],
      quiet: true,
    });
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
