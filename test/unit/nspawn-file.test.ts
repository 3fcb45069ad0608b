import { describe, expect, test } from "bun:test";
import { CAPABILITIES } from "../../src/settings/capabilities.ts";
import { fieldOfKey, NSPAWN_KEYS, NSPAWN_SCHEMA, parseNspawnFile } from "../../src/settings/nspawn-file.ts";
import { RLIMITS } from "../../src/settings/rlimits.ts";
import type { Settings } from "../../src/settings/settings.ts";
import { PRIVILEGED_KEYS } from "../../src/settings/trust.ts";

const F = "/etc/systemd/nspawn/box.nspawn";
const parse = (section: string, body: string, trusted = true) => parseNspawnFile(`[${section}]\n${body}\n`, F, trusted);

/** [section, key, good value, expected fields of Settings]. One row per key of systemd.nspawn(5) (252). */
const GOOD: Array<[string, string, string, Partial<Settings>]> = [
  ["Exec", "Boot", "yes", { boot: true }],
  ["Exec", "Ephemeral", "yes", { ephemeral: true }],
  ["Exec", "ProcessTwo", "yes", { asPid2: true }],
  ["Exec", "Parameters", `/bin/sh -c "echo a  b" 'x y'`, { command: ["/bin/sh", "-c", "echo a  b", "x y"] }],
  ["Exec", "Environment", `FOO=1 "BAR=a b"`, { environment: ["FOO=1", "BAR=a b"] }],
  ["Exec", "User", "nobody", { user: "nobody" }],
  ["Exec", "WorkingDirectory", "/srv//x/", { chdir: "/srv/x" }],
  ["Exec", "PivotRoot", "/sysroot:/oldroot", { pivotRoot: { newRoot: "/sysroot", oldRoot: "/oldroot" } }],
  ["Exec", "Capability", "CAP_NET_ADMIN sys_time", { capabilities: ["CAP_NET_ADMIN", "CAP_SYS_TIME"] }],
  ["Exec", "DropCapability", "CAP_MKNOD CAP_SYS_BOOT", { dropCapabilities: ["CAP_MKNOD", "CAP_SYS_BOOT"] }],
  ["Exec", "AmbientCapability", "CAP_CHOWN", { ambientCapabilities: ["CAP_CHOWN"] }],
  ["Exec", "NoNewPrivileges", "true", { noNewPrivileges: true }],
  ["Exec", "KillSignal", "SIGINT", { killSignal: 2 }],
  ["Exec", "Personality", "x86", { personality: "x86" }],
  ["Exec", "MachineID", "0123456789ABCDEF0123456789abcdef", { uuid: "01234567-89ab-cdef-0123-456789abcdef" }],
  ["Exec", "PrivateUsers", "65536:65536", { privateUsers: { mode: "range", base: 65536, count: 65536 } }],
  ["Exec", "NotifyReady", "yes", { notifyReady: true }],
  ["Exec", "SystemCallFilter", "@mount keyctl", { systemCallFilter: { allow: ["@mount", "keyctl"], deny: [] } }],
  ...Object.entries(RLIMITS).map(([name, resource]): [string, string, string, Partial<Settings>] => [
    "Exec",
    `Limit${name}`,
    name === "NICE" ? "10:infinity" : "100:infinity",
    { rlimits: [{ resource, name, soft: name === "NICE" ? 10n : 100n, hard: "infinity" }] },
  ]),
  ["Exec", "OOMScoreAdjust", "-500", { oomScoreAdjust: -500 }],
  ["Exec", "CPUAffinity", "0-2,5", { cpuAffinity: [0, 1, 2, 5] }],
  ["Exec", "Hostname", "web.example", { hostname: "web.example" }],
  ["Exec", "ResolvConf", "copy-host", { resolvConf: "copy-host" }],
  ["Exec", "Timezone", "symlink", { timezone: "symlink" }],
  ["Exec", "LinkJournal", "try-guest", { linkJournal: "try-guest" }],
  ["Exec", "SuppressSync", "on", { suppressSync: true }],
  ["Files", "ReadOnly", "yes", { readOnly: true }],
  ["Files", "Volatile", "state", { volatile: "state" }],
  [
    "Files",
    "Bind",
    "/srv/data:/data:norbind",
    { binds: [{ source: "/srv/data", sourceInImage: false, destination: "/data", readOnly: false, recursive: false, idmap: "noidmap" }] },
  ],
  [
    "Files",
    "BindReadOnly",
    "/etc/resolv.conf",
    { binds: [{ source: "/etc/resolv.conf", sourceInImage: false, destination: "/etc/resolv.conf", readOnly: true, recursive: true, idmap: "noidmap" }] },
  ],
  ["Files", "BindUser", "alice", { bindUsers: ["alice"] }],
  ["Files", "TemporaryFileSystem", "/run/x:mode=0700", { tmpfs: [{ destination: "/run/x", options: "mode=0700" }] }],
  ["Files", "Inaccessible", "/secret", { inaccessible: ["/secret"] }],
  [
    "Files",
    "Overlay",
    "/lower:/upper:/data",
    { overlays: [{ lower: [{ path: "/lower", inImage: false }], upper: { path: "/upper", inImage: false }, destination: "/data", readOnly: false }] },
  ],
  [
    "Files",
    "OverlayReadOnly",
    "/lower:/data",
    { overlays: [{ lower: [{ path: "/lower", inImage: false }], upper: undefined, destination: "/data", readOnly: true }] },
  ],
  ["Files", "PrivateUsersOwnership", "map", { privateUsersOwnership: "map" }],
  ["Files", "PrivateUsersChown", "yes", { privateUsersOwnership: "chown" }],
  ["Network", "Private", "yes", { privateNetwork: true }],
  ["Network", "VirtualEthernet", "yes", { networkVeth: true, privateNetwork: true }],
  ["Network", "VirtualEthernetExtra", "vx0:host1", { networkVethExtra: ["vx0:host1"], privateNetwork: true }],
  ["Network", "Interface", "eth1 eth2:inner", { networkInterfaces: ["eth1", "eth2:inner"], privateNetwork: true }],
  ["Network", "MACVLAN", "eth3", { networkMacvlan: ["eth3"], privateNetwork: true }],
  ["Network", "IPVLAN", "eth4", { networkIpvlan: ["eth4"], privateNetwork: true }],
  ["Network", "Bridge", "br0", { networkBridge: "br0", privateNetwork: true }],
  ["Network", "Zone", "web", { networkZone: "web", privateNetwork: true }],
  ["Network", "Port", "udp:53:5353", { ports: [{ protocol: "udp", hostPort: 53, containerPort: 5353 }], privateNetwork: undefined }],
];

/** [key, garbage value, expected-phrase]. Every key rejects garbage. */
const BAD: Record<string, string> = {
  Boot: "maybe",
  Ephemeral: "maybe",
  ProcessTwo: "perhaps",
  Parameters: `"unbalanced`,
  Environment: "1FOO=x",
  User: "a b",
  WorkingDirectory: "relative",
  PivotRoot: "/a:/b:/c",
  Capability: "CAP_NOPE",
  DropCapability: "CAP_NOPE",
  AmbientCapability: "all",
  NoNewPrivileges: "2",
  KillSignal: "SIGNOPE",
  Personality: "vax",
  MachineID: "xyz",
  PrivateUsers: "lots",
  NotifyReady: "sure",
  SystemCallFilter: "Bad!Name",
  OOMScoreAdjust: "1001",
  CPUAffinity: "3-1",
  Hostname: "a_b",
  ResolvConf: "sometimes",
  Timezone: "utc",
  LinkJournal: "maybe",
  SuppressSync: "x",
  ReadOnly: "x",
  Volatile: "sometimes",
  Bind: "/a:/b:/c:/d",
  BindReadOnly: "relative/path",
  BindUser: "bad user",
  TemporaryFileSystem: "relative",
  Inaccessible: "relative",
  Overlay: "/only",
  OverlayReadOnly: "relative:/x",
  PrivateUsersOwnership: "yes-please",
  PrivateUsersChown: "x",
  Private: "x",
  VirtualEthernet: "x",
  VirtualEthernetExtra: "a:b:c",
  Interface: "this-name-is-too-long",
  MACVLAN: "a/b",
  IPVLAN: "a:b:c",
  Bridge: "bad/name",
  Zone: "name-too-long-for-zone",
  Port: "70000",
  ...Object.fromEntries(Object.keys(RLIMITS).map((r) => [`Limit${r}`, "lots"])),
};

/** Keys whose empty assignment is an invalid value (systemd refuses "" for them). */
const EMPTY_INVALID = new Set([
  "Boot",
  "ProcessTwo",
  "PivotRoot",
  "MachineID",
  "PrivateUsers",
  "OOMScoreAdjust",
  "ResolvConf",
  "Timezone",
  "LinkJournal",
  "Volatile",
  "PrivateUsersOwnership",
  "PrivateUsersChown",
  ...Object.keys(RLIMITS).map((r) => `Limit${r}`),
]);

describe(".nspawn keys", () => {
  test("the tables cover exactly the keys of systemd.nspawn(5) (252)", () => {
    const all = NSPAWN_KEYS.map((k) => `${k.section}.${k.key}`).sort();
    expect(GOOD.map(([s, k]) => `${s}.${k}`).sort()).toEqual(all);
    expect(Object.keys(BAD).sort()).toEqual(NSPAWN_KEYS.map((k) => k.key).sort());
    expect(all.length).toBe(61);
    expect([...NSPAWN_SCHEMA.keys()].sort()).toEqual(["Exec", "Files", "Network"]);
  });

  for (const [section, key, value, effect] of GOOD) {
    test(`${key}=${value} sets ${Object.keys(effect).join(", ")} with FILE:LINE provenance`, () => {
      const r = parse(section, `# line 2\n${key}=${value}`);
      expect(r.warnings).toEqual([]);
      for (const [field, v] of Object.entries(effect)) {
        expect((r.values as Record<string, unknown>)[field]).toEqual(v);
        if (v !== undefined) expect(r.provenance.get(field as keyof Settings)).toEqual({ kind: "file", file: F, line: 3, trusted: true });
      }
    });
  }

  for (const [section, key] of GOOD) {
    const bad = BAD[key]!;
    test(`${key}=${bad} is an error naming FILE:LINE and the key`, () => {
      expect(() => parse(section, `\n${key}=${bad}`)).toThrow(`${F}:3: invalid value`);
      expect(() => parse(section, `\n${key}=${bad}`)).toThrow(` for ${key}=: expected `);
    });
    if (EMPTY_INVALID.has(key))
      test(`${key}= (empty) is an invalid value`, () => {
        expect(() => parse(section, `${key}=`)).toThrow(`${F}:2: invalid value "" for ${key}=: expected `);
      });
    else
      test(`${key}= (empty) resets what earlier ${key}= lines set`, () => {
        const good = GOOD.find(([, k]) => k === key)![2];
        const r = parse(section, `${key}=${good}\n${key}=`);
        expect(r.warnings).toEqual([]);
        const fields = Object.keys(GOOD.find(([, k]) => k === key)![3]).filter((f) => f !== "privateNetwork");
        for (const f of fields) {
          expect(f in r.values).toBe(false);
          expect(r.provenance.has(f as keyof Settings)).toBe(false);
        }
      });
  }
});

describe(".nspawn semantics", () => {
  test("list keys accumulate; an empty assignment clears the earlier lines of that key only", () => {
    const r = parse("Files", "Bind=/a\nBindReadOnly=/b\nBind=\nBind=/c\nInaccessible=/x\nInaccessible=/y");
    expect(r.values.binds!.map((b) => [b.source, b.readOnly])).toEqual([
      ["/b", true],
      ["/c", false],
    ]);
    expect(r.values.inaccessible).toEqual(["/x", "/y"]);
    expect(r.provenance.get("binds")).toMatchObject({ line: 5 });
  });

  test("Environment= and Parameters= accumulate; later scalar assignments win", () => {
    const r = parse("Exec", "Environment=A=1\nEnvironment=B=2 C=3\nParameters=/bin/sh\nParameters=-c 'echo $A'\nHostname=a\nHostname=b");
    expect(r.values.environment).toEqual(["A=1", "B=2", "C=3"]);
    expect(r.values.command).toEqual(["/bin/sh", "-c", "echo $A"]);
    expect(r.values.hostname).toBe("b");
    expect(r.provenance.get("hostname")).toMatchObject({ line: 7 });
  });

  test("Parameters= keeps backslashes as systemd 252's strv parser does", () => {
    expect(parse("Exec", `Parameters=a\\ b "c\\"d"`).values.command).toEqual(["a\\ b", 'c\\"d']);
  });

  test("Capability=all and DropCapability=all", () => {
    expect(parse("Exec", "Capability=all").values.capabilities).toEqual([...CAPABILITIES]);
    expect(parse("Exec", "DropCapability=CAP_MKNOD\nDropCapability=all").values.dropCapabilities).toBe("all");
    expect(() => parse("Exec", "Capability=CAP_A,CAP_B")).toThrow("for Capability=");
  });

  test("SystemCallFilter= allow and deny lists accumulate; empty resets both", () => {
    expect(parse("Exec", "SystemCallFilter=@mount\nSystemCallFilter=~reboot kexec_load").values.systemCallFilter).toEqual({
      allow: ["@mount"],
      deny: ["reboot", "kexec_load"],
    });
    expect("systemCallFilter" in parse("Exec", "SystemCallFilter=@mount\nSystemCallFilter=").values).toBe(false);
  });

  test("Limit*= of the same resource: the last wins", () => {
    expect(parse("Exec", "LimitNOFILE=10\nLimitCORE=0\nLimitNOFILE=20:30").values.rlimits!.map((l) => [l.name, l.soft, l.hard])).toEqual([
      ["CORE", 0n, 0n],
      ["NOFILE", 20n, 30n],
    ]);
  });

  test("Boot=yes and ProcessTwo=yes may not be combined", () => {
    expect(() => parse("Exec", "Boot=yes\nProcessTwo=yes")).toThrow(`${F}:3: invalid value "yes" for ProcessTwo=`);
    expect(parse("Exec", "Boot=yes\nProcessTwo=no").values).toMatchObject({ boot: true, asPid2: false });
  });

  test("Bridge= and Zone= may not be combined", () => {
    expect(() => parse("Network", "Bridge=br0\nZone=web")).toThrow(`${F}:3: Bridge= and Zone= may not be combined`);
  });

  test("Bind= sources must be absolute (or '+' / empty)", () => {
    expect(parse("Files", "Bind=+/in/image:/x").values.binds![0]).toMatchObject({ source: "/in/image", sourceInImage: true });
    expect(parse("Files", "Bind=:/scratch").values.binds![0]).toMatchObject({ source: "", destination: "/scratch" });
  });

  test("unknown keys and sections warn with file:line; values elsewhere still apply", () => {
    const r = parseNspawnFile("[Exec]\nHostname=h\nFrobnicate=1\n[Service]\nExecStart=/x\n[Network]\nPort=80\n", F, true);
    expect(r.warnings).toEqual([`${F}:3: unknown key "Frobnicate" in section [Exec], ignoring`, `${F}:4: unknown section "Service", ignoring`]);
    expect(r.values.hostname).toBe("h");
    expect(r.values.ports).toHaveLength(1);
  });
});

describe("trust", () => {
  const privileged = new Set(PRIVILEGED_KEYS.map((p) => p.key));

  test("the privileged list is nspawn's plus the CVE-2026-40226 keys", () => {
    const expected = [
      "Capability",
      "AmbientCapability",
      "MachineID",
      "Bind",
      "BindReadOnly",
      "TemporaryFileSystem",
      "Inaccessible",
      "Overlay",
      "OverlayReadOnly",
      "Private",
      "VirtualEthernet",
      "VirtualEthernetExtra",
      "Interface",
      "MACVLAN",
      "IPVLAN",
      "Bridge",
      "Zone",
      "Port",
      "PrivateUsers",
      "PrivateUsersOwnership",
      "PrivateUsersChown",
      "BindUser",
      "SystemCallFilter",
      ...Object.keys(RLIMITS).map((r) => `Limit${r}`),
      "OOMScoreAdjust",
      "CPUAffinity",
      "LinkJournal",
      "PivotRoot",
      "Ephemeral",
    ];
    expect([...privileged].sort()).toEqual(expected.sort());
  });

  for (const [section, key, value, effect] of GOOD) {
    if (!privileged.has(key)) {
      test(`untrusted ${key}= applies`, () => {
        const r = parse(section, `${key}=${value}`, false);
        expect(r.warnings).toEqual([]);
        for (const [field, v] of Object.entries(effect)) expect((r.values as Record<string, unknown>)[field]).toEqual(v);
      });
      continue;
    }
    test(`untrusted ${key}= is ignored with a one-line warning; trusted it applies`, () => {
      const untrusted = parse(section, `# x\n${key}=${value}`, false);
      expect(untrusted.warnings).toHaveLength(1);
      expect(untrusted.warnings[0]).toStartWith(`${F}:3: ignoring ${key}=`);
      expect(untrusted.warnings[0]).toContain("not trusted");
      expect(untrusted.warnings[0]).not.toContain("\n");
      for (const field of Object.keys(effect)) expect(field in untrusted.values).toBe(false);
      const trusted = parse(section, `${key}=${value}`, true);
      expect(trusted.warnings).toEqual([]);
      for (const [field, v] of Object.entries(effect)) expect((trusted.values as Record<string, unknown>)[field]).toEqual(v);
    });
  }

  test("an ignored key's value is not even parsed (garbage in an untrusted Bind= is just ignored)", () => {
    expect(parse("Files", "Bind=not a path at all", false).warnings).toHaveLength(1);
  });

  test("SystemCallFilter=: an untrusted allow-list is ignored, a ~ deny list still applies", () => {
    const r = parse("Exec", "SystemCallFilter=@mount\nSystemCallFilter=~reboot", false);
    expect(r.values.systemCallFilter).toEqual({ allow: [], deny: ["reboot"] });
    expect(r.warnings).toEqual([`${F}:2: ignoring SystemCallFilter= allow-list: the settings file is not trusted (see docs/trust.md)`]);
  });

  test("CVE-2026-40226 regression: untrusted PivotRoot= and Ephemeral= are ignored", () => {
    const r = parseNspawnFile("[Exec]\nPivotRoot=/evil:/old\nEphemeral=yes\nHostname=ok\n", "/var/lib/machines/box.nspawn", false);
    expect(r.values.pivotRoot).toBeUndefined();
    expect(r.values.ephemeral).toBeUndefined();
    expect(r.values.hostname).toBe("ok");
    expect(r.warnings).toEqual([
      "/var/lib/machines/box.nspawn:2: ignoring PivotRoot=: the settings file is not trusted (see docs/trust.md)",
      "/var/lib/machines/box.nspawn:3: ignoring Ephemeral=: the settings file is not trusted (see docs/trust.md)",
    ]);
  });
});

describe("each key's Settings field (learnt from its sample value on first use)", () => {
  test("every key of the table has one; Key= resets each key that takes it", () => {
    for (const k of NSPAWN_KEYS) {
      expect({ key: k.key, field: fieldOfKey(k.section, k.key) }).toEqual({ key: k.key, field: expect.any(String) });
      if (k.emptyResets) parseNspawnFile(`[${k.section}]\n${k.key}=\n`, "reset.nspawn", true);
    }
    expect(fieldOfKey("Exec", "NoSuchKey")).toBeUndefined();
  });
});
