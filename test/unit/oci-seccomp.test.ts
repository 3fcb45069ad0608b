/**
 * mapOciSeccomp: runtime-spec linux.seccomp -> the exact filter (Settings.seccompProfile), its
 * wire records, its use by buildSpec instead of machina's default filter, and the refusals.
 * test/fixtures/oci/podman-seccomp.json is the linux.seccomp podman 4.3 (Debian 12) wrote into a
 * container's config.json on x86-64 (`podman run` with the default capabilities, captured from
 * the bundle runc got): /usr/share/containers/seccomp.json with its includes/excludes resolved.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FakeHost } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { mapOciConfig } from "../../src/settings/oci-config.ts";
import { mapOciSeccomp, type OciSeccomp } from "../../src/settings/oci-seccomp.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { seccompRecords } from "../../src/spec/seccomp.ts";
import { specRecords } from "../../src/spec/wire.ts";

const PODMAN = JSON.parse(readFileSync(join(import.meta.dir, "../fixtures/oci/podman-seccomp.json"), "utf8")) as OciSeccomp;
const RUNC = readFileSync(join(import.meta.dir, "../fixtures/oci/runc-spec.json"), "utf8");

const fail = (field: string, what: string): never => {
  throw new Error(`${field}: ${what}`);
};
const map = (s: OciSeccomp) => mapOciSeccomp(s, fail);
const refusal = (s: OciSeccomp) => {
  try {
    map(s);
    return "accepted";
  } catch (e) {
    return (e as Error).message;
  }
};

describe("podman's default profile", () => {
  const [f, ...more] = map(PODMAN);
  test("one filter: default ENOSYS, the native architecture and the listed ones", () => {
    expect(more).toEqual([]);
    expect(f!.defaultAction).toBe(38);
    expect(f!.architectures).toEqual(["native", "x86_64", "x86", "x32"]);
  });
  test("unconditional entries: allowed names, EPERM names; every name once", () => {
    expect(f!.allow).toContain("read");
    expect(f!.allow).toContain("execve");
    expect(f!.allow).not.toContain("personality");
    expect(f!.allow).toContain("socket");
    expect(f!.deny).toEqual([{ errno: 1, names: expect.arrayContaining(["kexec_load", "open_by_handle_at", "bpf", "acct"]) }]);
    const names = [...f!.allow, ...f!.deny.flatMap((d) => d.names)];
    expect(new Set(names).size).toBe(names.length);
    const total = new Set(PODMAN.syscalls!.filter((e) => !e.args?.length).flatMap((e) => e.names));
    expect(names.length).toBe(total.size);
    expect(f!.deny[0]!.names).not.toContain("setns"); // allowed first, denied later: the first stands
  });
  test("argument rules, in order", () => {
    expect(seccompRecords([f!]).filter(([n]) => n !== "seccomp_allow" && n !== "seccomp_deny")).toEqual([
      ["seccomp_filter", ["38"]],
      ["seccomp_arch", ["native", "x86_64", "x86", "x32"]],
      ["seccomp_rule", ["allow", "personality", "a0==0"]],
      ["seccomp_rule", ["allow", "personality", "a0==8"]],
      ["seccomp_rule", ["allow", "personality", "a0==131072"]],
      ["seccomp_rule", ["allow", "personality", "a0==131080"]],
      ["seccomp_rule", ["allow", "personality", "a0==4294967295"]],
    ]);
  });
});

describe("actions, comparisons, architectures", () => {
  test("every action machina honours", () => {
    const [f] = map({
      defaultAction: "SCMP_ACT_KILL_PROCESS",
      syscalls: [
        { names: ["a"], action: "SCMP_ACT_KILL" },
        { names: ["b"], action: "SCMP_ACT_KILL_THREAD" },
        { names: ["c"], action: "SCMP_ACT_TRAP" },
        { names: ["d"], action: "SCMP_ACT_LOG" },
        { names: ["e"], action: "SCMP_ACT_ERRNO" },
        { names: ["f"], action: "SCMP_ACT_ERRNO", errnoRet: 0 },
        { names: ["g"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    expect(seccompRecords([f!])).toEqual([
      ["seccomp_filter", ["kill_process"]],
      ["seccomp_arch", ["native"]],
      ["seccomp_allow", ["g"]],
      ["seccomp_deny", ["1", "e"]],
      ["seccomp_deny", ["0", "f"]],
      ["seccomp_rule", ["kill", "a"]],
      ["seccomp_rule", ["kill", "b"]],
      ["seccomp_rule", ["trap", "c"]],
      ["seccomp_rule", ["log", "d"]],
    ]);
    expect(map({ defaultAction: "SCMP_ACT_ERRNO" })[0]!.defaultAction).toBe(1);
    expect(map({ defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 38 })[0]!.defaultAction).toBe(38);
    expect(map({ defaultAction: "SCMP_ACT_ALLOW" })[0]!.defaultAction).toBe("allow");
    expect(map({ defaultAction: "SCMP_ACT_LOG" })[0]!.defaultAction).toBe("log");
  });

  test("every comparison; MASKED_EQ is (arg & value) == valueTwo; conditions sorted by argument, identical ones once", () => {
    const ops = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE"];
    const [f] = map({
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        ...ops.map((op, i) => ({ names: ["x"], action: "SCMP_ACT_ERRNO", errnoRet: 10 + i, args: [{ index: i, value: 7, op }] })),
        { names: ["clone"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 2114060288, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }] },
        {
          names: ["y", "z"],
          action: "SCMP_ACT_KILL_PROCESS",
          args: [
            { index: 3, value: 1, op: "SCMP_CMP_GE" },
            { index: 1, value: 6, valueTwo: 4, op: "SCMP_CMP_MASKED_EQ" },
            { index: 3, value: 1, op: "SCMP_CMP_GE" },
          ],
        },
      ],
    });
    expect(seccompRecords([f!]).slice(2)).toEqual([
      ["seccomp_rule", ["10", "x", "a0==7"]],
      ["seccomp_rule", ["11", "x", "a1!=7"]],
      ["seccomp_rule", ["12", "x", "a2<7"]],
      ["seccomp_rule", ["13", "x", "a3<=7"]],
      ["seccomp_rule", ["14", "x", "a4>7"]],
      ["seccomp_rule", ["15", "x", "a5>=7"]],
      ["seccomp_rule", ["1", "clone", "a0&2114060288==0"]],
      ["seccomp_rule", ["kill_process", "y", "a1&6==4", "a3>=1"]],
      ["seccomp_rule", ["kill_process", "z", "a1&6==4", "a3>=1"]],
    ]);
  });

  test("architectures: native always, the listed ones once, by libseccomp's names", () => {
    const a = map({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE"] });
    expect(a[0]!.architectures).toEqual(["native", "aarch64", "arm", "ppc64le"]);
  });

  test("two unconditional entries for a call: the first stands (libseccomp), as podman's setns", () => {
    const [f] = map({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["setns", "read"], action: "SCMP_ACT_ALLOW" },
        { names: ["setns", "mount"], action: "SCMP_ACT_ERRNO", errnoRet: 5 },
      ],
    });
    expect(f!.allow).toEqual(["setns", "read"]);
    expect(f!.deny).toEqual([{ errno: 5, names: ["mount"] }]);
    expect(map(PODMAN)[0]!.allow).toContain("setns");
  });

  test("an entry with the default action is skipped (as runc), so a later one for the call applies", () => {
    const [f] = map({
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 1,
      flags: ["SECCOMP_FILTER_FLAG_TSYNC"],
      syscalls: [
        { names: ["mount"], action: "SCMP_ACT_ERRNO" },
        {
          names: ["personality"],
          action: "SCMP_ACT_ERRNO",
          args: [
            { index: 0, value: 1, op: "SCMP_CMP_GE" },
            { index: 0, value: 5, op: "SCMP_CMP_LE" },
          ],
        },
        { names: ["mount"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    expect(f).toEqual({ defaultAction: 1, architectures: ["native"], allow: ["mount"], deny: [], rules: [] });
  });

  test("the same call with the same conditions and the same action: once", () => {
    const [f] = map({
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["read", "read"], action: "SCMP_ACT_ALLOW" },
        { names: ["read"], action: "SCMP_ACT_ALLOW" },
      ],
    });
    expect(f!.allow).toEqual(["read"]);
  });
});

describe("refusals name the field", () => {
  const A = "SCMP_ACT_ALLOW";
  const cases: Array<[string, OciSeccomp, string]> = [
    ["flags", { defaultAction: A, flags: ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] }, "linux.seccomp.flags: SECCOMP_FILTER_FLAG_SPEC_ALLOW cannot be honoured"],
    ["listener", { defaultAction: A, listenerPath: "/run/l.sock" }, "linux.seccomp.listenerPath: seccomp user notification is not supported"],
    [
      "notify",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_NOTIFY" }] },
      "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be honoured",
    ],
    [
      "trace",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_TRACE" }] },
      "linux.seccomp.syscalls[0].action: SCMP_ACT_TRACE cannot be honoured",
    ],
    ["unknown action", { defaultAction: "SCMP_ACT_NOPE" }, 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"'],
    ["defaultErrnoRet without ERRNO", { defaultAction: A, defaultErrnoRet: 1 }, "linux.seccomp.defaultErrnoRet: is only meaningful with SCMP_ACT_ERRNO"],
    [
      "errnoRet on ALLOW",
      { defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["x"], action: A, errnoRet: 1 }] },
      "linux.seccomp.syscalls[0].errnoRet: is only meaningful",
    ],
    [
      "errno too big",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", errnoRet: 5000 }] },
      "linux.seccomp.syscalls[0].errnoRet: 5000 is not an errno",
    ],
    [
      "unknown architecture",
      { defaultAction: A, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"] },
      'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"',
    ],
    [
      "unknown op",
      {
        defaultAction: A,
        syscalls: [
          { names: ["x"], action: "SCMP_ACT_ERRNO" },
          { names: ["y"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: "SCMP_CMP_IN" }] },
        ],
      },
      'linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_IN"',
    ],
    [
      "index",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [{ index: 6, value: 1, op: "SCMP_CMP_EQ" }] }] },
      "linux.seccomp.syscalls[0].args[0].index: 6 is not",
    ],
    [
      "negative",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: -1, op: "SCMP_CMP_EQ" }] }] },
      "linux.seccomp.syscalls[0].args[0].value: -1 is not an unsigned integer",
    ],
    [
      "beyond 2^53",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 2 ** 60, op: "SCMP_CMP_EQ" }] }] },
      "linux.seccomp.syscalls[0].args[0].value: 1152921504606847000 is beyond 2^53",
    ],
    [
      "valueTwo with EQ",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, valueTwo: 2, op: "SCMP_CMP_EQ" }] }] },
      "linux.seccomp.syscalls[0].args[0].valueTwo: is only meaningful with SCMP_CMP_MASKED_EQ",
    ],
    [
      "two conditions on one argument",
      {
        defaultAction: A,
        syscalls: [
          {
            names: ["x"],
            action: "SCMP_ACT_ERRNO",
            args: [
              { index: 0, value: 1, op: "SCMP_CMP_GE" },
              { index: 0, value: 5, op: "SCMP_CMP_LE" },
            ],
          },
        ],
      },
      "linux.seccomp.syscalls[0].args[1]: a second condition on argument 0 cannot be honoured",
    ],
    [
      "seven conditions",
      {
        defaultAction: A,
        syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: Array.from({ length: 7 }, (_, i) => ({ index: i % 6, value: 1, op: "SCMP_CMP_EQ" })) }],
      },
      "linux.seccomp.syscalls[0].args: 7 conditions: a rule takes at most 6",
    ],
    [
      "conflicting actions under the same conditions",
      {
        defaultAction: "SCMP_ACT_ERRNO",
        syscalls: [
          { names: ["read", "write"], action: A, args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] },
          { names: ["write"], action: "SCMP_ACT_ERRNO", errnoRet: 5, args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] },
        ],
      },
      'linux.seccomp.syscalls[1].names[0]: "write" has the same conditions as in linux.seccomp.syscalls[0] with another action (errno 5, not allow): libseccomp refuses that',
    ],
    [
      "bad name",
      { defaultAction: A, syscalls: [{ names: ["Read"], action: "SCMP_ACT_ERRNO" }] },
      'linux.seccomp.syscalls[0].names[0]: "Read" is not a system call name',
    ],
    [
      "not an object",
      { defaultAction: A, syscalls: [{ names: ["x"], action: "SCMP_ACT_ERRNO", args: [3] }] },
      "linux.seccomp.syscalls[0].args[0]: is not an object",
    ],
  ];
  for (const [name, s, needle] of cases) test(name, () => expect(refusal(s)).toStartWith(needle));
});

describe("config.json and the spec", () => {
  const config = (seccomp: unknown) => {
    const c = JSON.parse(RUNC) as { linux: Record<string, unknown> };
    c.linux.seccomp = seccomp;
    return JSON.stringify(c);
  };
  test("both modes set seccompProfile; a refusal names config.json and the field", () => {
    for (const mode of ["runtime", "nspawn"] as const) {
      const m = mapOciConfig(config(PODMAN), "/srv/bundle", mode);
      expect(m.values.seccompProfile).toEqual(map(PODMAN));
      expect(m.values.systemCallFilter).toBeUndefined();
    }
    expect(() => mapOciConfig(config({ defaultAction: "SCMP_ACT_NOTIFY" }), "/srv/bundle", "runtime")).toThrow(
      "/srv/bundle/config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be honoured",
    );
  });

  test("buildSpec loads the profile instead of machina's default filter (and --system-call-filter)", () => {
    const h = new FakeHost({
      files: {
        "/usr/lib/os-release": "ID=debian\n",
        "/proc/sys/kernel/arch": "x86_64\n",
        "/proc/meminfo": "MemTotal:       1048576 kB\n",
        "/proc/self/cgroup": "0::/\n",
        "/srv/box/usr/bin/sh": "",
        "/srv/box/etc/os-release": "ID=busybox\n",
      },
    });
    const parsed = parseNspawnCommandLine(["-D", "/srv/box", "--system-call-filter=~read", "x"], h.env());
    if (parsed.action !== "run") throw new Error("not a run");
    const facts = gatherHostFacts(h, "/run/machina");
    const image = gatherImageFacts(h, "/srv/box", facts.timezone);
    const profile = map(PODMAN);
    const withProfile = buildSpec({ ...parsed.settings, seccompProfile: profile }, image, facts, { prog: "machina-nspawn" });
    expect(withProfile.seccomp).toEqual(profile);
    const recs = specRecords(withProfile).filter(([n]) => n.startsWith("seccomp_") && n !== "seccomp_cache");
    expect(recs).toEqual(seccompRecords(profile));
    const without = buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn" });
    expect(without.seccomp.length).toBe(2);
    expect(without.seccomp[1]!.deny[0]!.names).toContain("read");
  });
});
