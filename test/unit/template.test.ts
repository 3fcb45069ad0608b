/** --template (src/image/template.ts) with the fake host: a `.#` temporary renamed into place, once. */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { populateFromTemplate } from "../../src/image/template.ts";

function fixture(fsTypes: Record<string, string> = {}) {
  const host: FakeHost = new FakeHost({
    files: { "/tpl/etc/hostname": "tpl\n", "/srv": { kind: "dir" } },
    fsTypes,
    onRun: (argv) => {
      host.add(argv[argv.length - 1]!, { kind: "dir" }); // cp / btrfs snapshot make the target
      return undefined;
    },
  });
  return host;
}

describe("--template", () => {
  test("a missing directory is copied to a .# temporary and renamed into place; then left alone", () => {
    const host = fixture();
    expect(populateFromTemplate(host, "/run/m", "/tpl", "/srv/c")).toBe(true);
    expect(host.commands).toEqual([["cp", "-a", "--reflink=auto", "--", "/tpl", "/srv/.#c-abababab"]]);
    expect(host.readdir("/srv")).toEqual(["c"]);
    host.add("/srv/c/etc/hostname", "c\n");
    expect(populateFromTemplate(host, "/run/m", "/tpl", "/srv/c")).toBe(false);
    expect(host.commands.length).toBe(1);
  });

  test("an empty directory is replaced; a btrfs subvolume template is snapshotted", () => {
    const host = fixture({ "/srv": "btrfs", "/tpl": "btrfs" });
    host.stats.set("/tpl", { ino: 256 });
    host.add("/srv/c", { kind: "dir" });
    expect(populateFromTemplate(host, "/run/m", "/tpl", "/srv/c")).toBe(true);
    expect(host.commands).toEqual([["btrfs", "subvolume", "snapshot", "/tpl", "/srv/.#c-abababab"]]);
    expect(host.readdir("/srv")).toEqual(["c"]);
  });

  test("errors: not a directory, missing template, missing parent; a failed copy leaves nothing", () => {
    const host = fixture();
    host.add("/srv/file", "x");
    expect(() => populateFromTemplate(host, "/run/m", "/tpl", "/srv/file")).toThrow("exists and is not a directory");
    expect(() => populateFromTemplate(host, "/run/m", "/nope", "/srv/c")).toThrow('template "/nope" is not a directory');
    expect(() => populateFromTemplate(host, "/run/m", "/tpl", "/missing/c")).toThrow('directory "/missing" does not exist');
    const failing: FakeHost = new FakeHost({
      files: { "/tpl/x": "1", "/srv": { kind: "dir" } },
      onRun: (argv) => {
        failing.add(argv[argv.length - 1]!, { kind: "dir" });
        return { status: 1, stdout: "", stderr: "cp: no space left" };
      },
    });
    expect(() => populateFromTemplate(failing, "/run/m", "/tpl", "/srv/c")).toThrow("no space left");
    expect(failing.readdir("/srv")).toEqual([]);
  });
});
