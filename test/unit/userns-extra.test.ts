/**
 * The rest of issue 3's user-namespace work: PrivateUsers=pick in files, --bind …:idmap /
 * :rootidmap, --bind-user, --load-credential from sockets. Exact records, FakeHost, no root.
 */
import { describe, expect, test } from "bun:test";
import { mergeSettings } from "../../src/settings/merge.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import type { Settings } from "../../src/settings/settings.ts";

const F = "/etc/systemd/nspawn/box.nspawn";

function cli(...argv: string[]): Settings {
  const r = parseNspawnCommandLine(argv, {}, "/");
  if (r.action !== "run") throw new Error("not a run");
  return r.settings;
}

describe("PrivateUsers=pick in a .nspawn file", () => {
  test("implies PrivateUsersOwnership=auto (nspawn's loader), from the PrivateUsers= line", () => {
    const f = parseNspawnFile("[Exec]\n\nPrivateUsers=pick\n", F, true);
    expect(f.values.privateUsers).toEqual({ mode: "pick" });
    expect(f.values.privateUsersOwnership).toBe("auto");
    expect(f.provenance.get("privateUsersOwnership")).toMatchObject({ kind: "file", file: F, line: 3 });
  });
  test("an explicit PrivateUsersOwnership= wins, wherever it is in the file", () => {
    expect(parseNspawnFile("[Files]\nPrivateUsersOwnership=off\n[Exec]\nPrivateUsers=pick\n", F, true).values.privateUsersOwnership).toBe("off");
    expect(parseNspawnFile("[Exec]\nPrivateUsers=pick\n[Files]\nPrivateUsersChown=yes\n", F, true).values.privateUsersOwnership).toBe("chown");
  });
  test("other modes imply nothing", () => {
    for (const v of ["yes", "no", "identity", "65536"]) expect(parseNspawnFile(`[Exec]\nPrivateUsers=${v}\n`, F, true).values.privateUsersOwnership).toBeUndefined();
  });
  test("file PrivateUsers=pick and command line -U give the same settings", () => {
    const fromFile = mergeSettings(cli("-D", "/m/box"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "yes");
    const fromCli = cli("-D", "/m/box", "-U");
    expect([fromFile.privateUsers, fromFile.privateUsersOwnership]).toEqual([fromCli.privateUsers, fromCli.privateUsersOwnership]);
  });
  test("the command line masks the file's user namespace settings as a group", () => {
    const m = mergeSettings(cli("-D", "/m/box", "--private-users-ownership=chown"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "yes");
    expect([m.privateUsers, m.privateUsersOwnership]).toEqual([{ mode: "no" }, "chown"]);
    const o = mergeSettings(cli("-D", "/m/box", "--private-users=no"), parseNspawnFile("[Exec]\nPrivateUsers=pick\n", F, true), "override");
    expect([o.privateUsers, o.privateUsersOwnership]).toEqual([{ mode: "pick" }, "auto"]);
  });
  test("untrusted: ignored with a warning, nothing implied", () => {
    const f = parseNspawnFile("[Exec]\nPrivateUsers=pick\n", "/var/lib/machines/box.nspawn", false);
    expect(f.values.privateUsers).toBeUndefined();
    expect(f.values.privateUsersOwnership).toBeUndefined();
    expect(f.warnings.join("\n")).toContain("PrivateUsers");
  });
});
