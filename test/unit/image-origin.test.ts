/** Where an image came from (src/image/origin.ts) and the warning for one run without -U. Pure (fake host). */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { ORIGIN_XATTR, outsideImageWarning, readOrigin, recordOrigin } from "../../src/image/origin.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import { mergeSettings } from "../../src/settings/merge.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import type { Settings } from "../../src/settings/settings.ts";

const WARNING = 'warning: image "web" was imported from outside and runs without a user namespace (root in the container is root on the host); use -U';

function host(): FakeHost {
  const h = new FakeHost({ files: { "/pool/web/usr": { kind: "dir" }, "/pool/local/usr": { kind: "dir" }, "/pool/disk.raw": "x" } });
  recordOrigin(h, "/pool/web", { how: "pull-tar", source: "https://example.org/web.tar.xz", time: 1 });
  return h;
}

function settings(argv: string[], file?: { text: string; trusted: boolean }): Settings {
  const parsed = parseNspawnCommandLine(argv, {});
  if (parsed.action !== "run") throw new Error("not a run");
  if (file === undefined) return parsed.settings;
  return mergeSettings(parsed.settings, parseNspawnFile(file.text, "/x/web.nspawn", file.trusted), parsed.settings.settingsMode);
}

describe("origin", () => {
  test("recorded as JSON in trusted.machina.origin, read through the schema", () => {
    const h = host();
    expect(readOrigin(h, "/pool/web")).toEqual({ how: "pull-tar", source: "https://example.org/web.tar.xz", time: 1 });
    expect(readOrigin(h, "/pool/local")).toBeUndefined();
    h.setXattr("/pool/local", ORIGIN_XATTR, "{not json");
    expect(readOrigin(h, "/pool/local")).toBe("unknown"); // still marked: only the host's root writes it
    expect(recordOrigin(h, "/pool/missing", { how: "import-raw", source: "/a.raw", time: 2 })).toBe(false);
  });

  test("the warning: an image from outside, no user namespace, nothing said about it", () => {
    const h = host();
    expect(outsideImageWarning(h, settings(["-D", "/pool/web", "/bin/true"]))).toBe(WARNING);
    expect(outsideImageWarning(h, settings(["-M", "other", "-D", "/pool/web", "-b"]))).toBe(WARNING);
    expect(outsideImageWarning(h, settings(["-D", "/pool/local", "/bin/true"]))).toBeUndefined();
    h.setXattr("/pool/disk.raw", ORIGIN_XATTR, JSON.stringify({ how: "import-raw", source: "/d.raw", time: 3 }));
    expect(outsideImageWarning(h, settings(["-i", "/pool/disk.raw", "/bin/true"]))).toContain('image "disk" was imported from outside');
    // the --template base counts too
    expect(outsideImageWarning(h, settings(["--template=/pool/web", "-D", "/srv/new", "/bin/true"]))).toBe(WARNING);
  });

  test("silent with -q, -U, or PrivateUsers=no from a trusted setting; an untrusted file cannot silence it", () => {
    const h = host();
    expect(outsideImageWarning(h, settings(["-q", "-D", "/pool/web", "/bin/true"]))).toBeUndefined();
    expect(outsideImageWarning(h, settings(["-U", "-D", "/pool/web", "/bin/true"]))).toBeUndefined();
    expect(outsideImageWarning(h, settings(["--private-users=no", "-D", "/pool/web", "/bin/true"]))).toBeUndefined();
    const no = "[Exec]\nPrivateUsers=no\n";
    expect(outsideImageWarning(h, settings(["-D", "/pool/web", "/bin/true"], { text: no, trusted: true }))).toBeUndefined();
    expect(outsideImageWarning(h, settings(["-D", "/pool/web", "/bin/true"], { text: no, trusted: false }))).toBe(WARNING);
  });
});
