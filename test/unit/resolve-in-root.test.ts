/** Paths of an image resolved inside its root (src/host/resolve-in-root.ts). Pure (fake host). */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { chaseInRoot, resolveInRoot } from "../../src/host/resolve-in-root.ts";

function host(): FakeHost {
  return new FakeHost({
    files: {
      "/r/etc/os-release": "ID=x\n",
      "/r/usr/lib": { kind: "dir" },
      "/r/lib": { kind: "symlink", target: "usr/lib" },
      "/r/escape": { kind: "symlink", target: "../../../etc" },
      "/r/abs": { kind: "symlink", target: "/etc" },
      "/r/loop": { kind: "symlink", target: "loop" },
    },
  });
}

describe("resolveInRoot / chaseInRoot", () => {
  test("symlinks are followed and never leave the root", () => {
    const h = host();
    expect(resolveInRoot(h, "/r", "/lib")).toBe("/r/usr/lib");
    expect(resolveInRoot(h, "/r", "/escape/os-release")).toBe("/r/etc/os-release");
    expect(resolveInRoot(h, "/r", "abs/./os-release")).toBe("/r/etc/os-release");
    expect(resolveInRoot(h, "/r", "/")).toBe("/r");
    expect(chaseInRoot(h, "/r", "/escape/os-release")).toEqual({ path: "/etc/os-release", kind: "file", parentIsDir: true });
  });

  test("a missing component: undefined to resolve, kept unresolved when chased", () => {
    const h = host();
    expect(resolveInRoot(h, "/r", "/lib/nope/x")).toBeUndefined();
    expect(chaseInRoot(h, "/r", "/lib/nope/./x")).toEqual({ path: "/usr/lib/nope/x", kind: undefined, parentIsDir: false });
    expect(chaseInRoot(h, "/r", "/lib/new")).toEqual({ path: "/usr/lib/new", kind: undefined, parentIsDir: true });
  });

  test("a symlink loop runs out of budget", () => {
    const h = host();
    expect(resolveInRoot(h, "/r", "/loop")).toBeUndefined();
    expect(chaseInRoot(h, "/r", "/loop")).toBeUndefined();
  });
});
