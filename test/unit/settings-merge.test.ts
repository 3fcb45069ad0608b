import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { findSettingsFile, loadSettingsFile, settingsFileCandidates } from "../../src/settings/lookup.ts";
import { mergeSettings } from "../../src/settings/merge.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import type { Settings } from "../../src/settings/settings.ts";

function cli(...argv: string[]): Settings {
  const r = parseNspawnCommandLine(argv, {}, "/");
  if (r.action !== "run") throw new Error("not a run");
  return r.settings;
}
const F = "/etc/systemd/nspawn/box.nspawn";
const file = (text: string, trusted = true) => parseNspawnFile(text, F, trusted);

describe("merge: command line over file (mode yes/trusted)", () => {
  test("file values fill in what the command line did not give, with file provenance", () => {
    const m = mergeSettings(cli("-D", "/m/box"), file("[Exec]\nHostname=fromfile\nEnvironment=A=1\n"), "yes");
    expect(m.hostname).toBe("fromfile");
    expect(m.environment).toEqual(["A=1"]);
    expect(m.provenance.get("hostname")).toEqual({ kind: "file", file: F, line: 2, trusted: true });
    expect(m.provenance.get("directory")).toEqual({ kind: "cli", flag: "-D" });
  });

  test("a setting given on the command line masks the file's", () => {
    const m = mergeSettings(cli("-D", "/m/box", "--hostname=cli", "--setenv=B=2"), file("[Exec]\nHostname=fromfile\nEnvironment=A=1\n"), "yes");
    expect(m.hostname).toBe("cli");
    expect(m.environment).toEqual(["B=2"]);
    expect(m.provenance.get("hostname")).toEqual({ kind: "cli", flag: "--hostname" });
  });

  test("lists: a command-line list replaces the file's list (whole mount group)", () => {
    const f = file("[Files]\nBind=/a\nTemporaryFileSystem=/t\nInaccessible=/i\n");
    const m = mergeSettings(cli("-D", "/m/box", "--bind=/b"), f, "yes");
    expect(m.binds.map((b) => b.source)).toEqual(["/b"]);
    expect(m.tmpfs).toEqual([]);
    expect(m.inaccessible).toEqual([]);
    const n = mergeSettings(cli("-D", "/m/box"), f, "yes");
    expect(n.binds.map((b) => b.source)).toEqual(["/a"]);
    expect(n.tmpfs.map((t) => t.destination)).toEqual(["/t"]);
  });

  test("a command (or --boot) masks Boot=, ProcessTwo= and Parameters=", () => {
    const f = file("[Exec]\nBoot=yes\nParameters=--log-level=debug\n");
    const m = mergeSettings(cli("-D", "/m/box", "/bin/true"), f, "yes");
    expect([m.boot, m.command]).toEqual([false, ["/bin/true"]]);
    const n = mergeSettings(cli("-D", "/m/box"), f, "yes");
    expect([n.boot, n.command]).toEqual([true, ["--log-level=debug"]]);
    expect(n.provenance.get("command")).toMatchObject({ kind: "file", line: 3 });
  });

  test("capabilities: --capability or --drop-capability masks both keys", () => {
    const f = file("[Exec]\nCapability=CAP_NET_ADMIN\nDropCapability=CAP_MKNOD\n");
    const m = mergeSettings(cli("-D", "/m/box", "--drop-capability=CAP_KILL"), f, "yes");
    expect([m.capabilities, m.dropCapabilities]).toEqual([[], ["CAP_KILL"]]);
  });

  test("network keys form one group and imply a private network", () => {
    const f = file("[Network]\nVirtualEthernet=yes\nPort=8080:80\n");
    const m = mergeSettings(cli("-D", "/m/box"), f, "yes");
    expect([m.networkVeth, m.privateNetwork, m.ports.length]).toEqual([true, true, 1]);
    const n = mergeSettings(cli("-D", "/m/box", "--private-network"), f, "yes");
    expect([n.networkVeth, n.privateNetwork]).toEqual([false, true]);
    expect(n.ports).toHaveLength(1); // Port= is its own mask in nspawn
  });

  test("rlimits are masked per resource", () => {
    const f = file("[Exec]\nLimitNOFILE=10\nLimitCORE=0\n");
    const m = mergeSettings(cli("-D", "/m/box", "--rlimit=NOFILE=99"), f, "yes");
    expect(m.rlimits.map((l) => [l.name, l.soft]).sort()).toEqual([
      ["CORE", 0n],
      ["NOFILE", 99n],
    ]);
  });

  test("trusted mode changes trust, not precedence", () => {
    const m = mergeSettings(cli("-D", "/m/box", "--hostname=cli"), file("[Exec]\nHostname=f\n"), "trusted");
    expect(m.hostname).toBe("cli");
  });

  test("conflicts across the two sources are refused, naming both", () => {
    expect(() => mergeSettings(cli("-D", "/m/box", "--template=/t"), file("[Exec]\nEphemeral=yes\n"), "yes")).toThrow(
      `--ephemeral (${F}:2) and --template= may not be combined`,
    );
  });
});

describe("merge: --settings=override and no", () => {
  test("override: the file wins over the command line, group by group", () => {
    const f = file("[Exec]\nHostname=fromfile\n[Files]\nBind=/a\n");
    const m = mergeSettings(cli("-D", "/m/box", "--hostname=cli", "--bind=/b", "--tmpfs=/t", "--user=u"), f, "override");
    expect(m.hostname).toBe("fromfile");
    expect(m.binds.map((b) => b.source)).toEqual(["/a"]);
    expect(m.tmpfs).toEqual([]); // the whole mount group came from the file
    expect(m.user).toBe("u"); // not in the file: the command line stays
    expect(m.provenance.get("hostname")).toMatchObject({ kind: "file" });
    expect(m.provenance.has("tmpfs")).toBe(false);
  });

  test("override: per-resource limits from the file win", () => {
    const m = mergeSettings(cli("-D", "/m/box", "--rlimit=NOFILE=99"), file("[Exec]\nLimitNOFILE=10\n"), "override");
    expect(m.rlimits.map((l) => [l.name, l.soft])).toEqual([["NOFILE", 10n]]);
  });

  test("no: nothing from the file", () => {
    const m = mergeSettings(cli("-D", "/m/box"), file("[Exec]\nHostname=f\n"), "no");
    expect(m.hostname).toBeUndefined();
  });
});

describe("lookup", () => {
  const env = { MACHINA_SETTINGS_DIRS: "/cfg/etc:/cfg/run" };

  test("candidates: trusted dirs in order, then next to the root directory (untrusted)", () => {
    expect(settingsFileCandidates("box", { directory: "/srv/images/box" }, env)).toEqual([
      { path: "/cfg/etc/box.nspawn", trusted: true },
      { path: "/cfg/run/box.nspawn", trusted: true },
      { path: "/srv/images/box.nspawn", trusted: false },
    ]);
    expect(settingsFileCandidates("box", { directory: "/var/lib/machines/box/" }, {}).map((c) => c.path)).toEqual([
      "/etc/systemd/nspawn/box.nspawn",
      "/run/systemd/nspawn/box.nspawn",
      "/var/lib/machines/box.nspawn",
    ]);
    expect(settingsFileCandidates("web", { image: "/imgs/web.raw" }, env).at(-1)).toEqual({ path: "/imgs/web.nspawn", trusted: false });
    expect(settingsFileCandidates("top", { directory: "/top" }, env).at(-1)).toEqual({ path: "/top.nspawn", trusted: false });
  });

  const files = {
    "/cfg/etc/box.nspawn": "[Exec]\nHostname=etc\n",
    "/cfg/run/box.nspawn": "[Exec]\nHostname=run\n",
    "/srv/box.nspawn": "[Exec]\nHostname=beside\nCapability=CAP_SYS_TIME\n",
    "/srv/box/usr/bin/sh": "",
  };

  test("/etc first, then /run, then beside the image; only the first is read", () => {
    const all = new FakeHost({ files, env });
    expect(findSettingsFile(all, "box", { directory: "/srv/box" }, "yes")).toMatchObject({ path: "/cfg/etc/box.nspawn", trusted: true });
    const { "/cfg/etc/box.nspawn": _e, ...noEtc } = files;
    expect(findSettingsFile(new FakeHost({ files: noEtc, env }), "box", { directory: "/srv/box" }, "yes")).toMatchObject({
      path: "/cfg/run/box.nspawn",
      trusted: true,
    });
    const { "/cfg/run/box.nspawn": _r, ...beside } = noEtc;
    expect(findSettingsFile(new FakeHost({ files: beside, env }), "box", { directory: "/srv/box" }, "yes")).toMatchObject({
      path: "/srv/box.nspawn",
      trusted: false,
    });
    expect(findSettingsFile(new FakeHost({ files: beside, env }), "box", { directory: "/srv/box" }, "trusted")).toMatchObject({
      path: "/srv/box.nspawn",
      trusted: true,
    });
    expect(findSettingsFile(new FakeHost({ files: beside, env }), "box", { directory: "/srv/box" }, "no")).toBeUndefined();
    expect(
      findSettingsFile(new FakeHost({ files: { ...beside, "/cfg/etc/box.nspawn": { kind: "dir" } }, env }), "box", { directory: "/srv/box" }, "yes"),
    ).toMatchObject({ path: "/srv/box.nspawn" });
  });

  test("the machine name (-M) names the file", () => {
    const host = new FakeHost({ files: { ...files, "/cfg/etc/other.nspawn": "[Exec]\nHostname=other\n" }, env });
    expect(loadSettingsFile(host, cli("-D", "/srv/box", "-M", "other")).settings.hostname).toBe("other");
    expect(loadSettingsFile(host, cli("-D", "/srv/box")).settings.hostname).toBe("etc");
  });

  test("loadSettingsFile: an untrusted file beside the image is merged with its privileged keys ignored", () => {
    const { "/cfg/etc/box.nspawn": _e, "/cfg/run/box.nspawn": _r, ...beside } = files;
    const host = new FakeHost({ files: beside, env });
    const r = loadSettingsFile(host, cli("-D", "/srv/box"));
    expect(r.settings.hostname).toBe("beside");
    expect(r.settings.capabilities).toEqual([]);
    expect(r.warnings).toEqual(["/srv/box.nspawn:3: ignoring Capability=: the settings file is not trusted (see docs/trust.md)"]);
    const t = loadSettingsFile(host, cli("-D", "/srv/box", "--settings=trusted"));
    expect(t.settings.capabilities).toEqual(["CAP_SYS_TIME"]);
    expect(t.warnings).toEqual([]);
    expect(loadSettingsFile(host, cli("-D", "/srv/box", "--settings=no")).file).toBeUndefined();
  });

  test("no file: the command line unchanged", () => {
    const s = cli("-D", "/nowhere/box");
    expect(loadSettingsFile(new FakeHost({ env }), s).settings).toBe(s);
  });
});
