/**
 * The enter plan (src/machine/enter.ts) and the confinement record it reads
 * (src/spec/confinement.ts): a command entered from the host gets exactly the records the
 * container's payload was started with — the same seccomp records and cache, bounding and
 * ambient sets, no_new_privs and rlimits. No root, FakeHost.
 */
import { describe, expect, test } from "bun:test";
import { FakeHost } from "../../src/host/fake.ts";
import { gatherHostFacts, gatherImageFacts } from "../../src/host/facts.ts";
import { gatherUsernsFacts } from "../../src/host/userns-facts.ts";
import { commandSpec, machineConfinement, parseLimits } from "../../src/machine/enter.ts";
import type { Machine } from "../../src/machine/machines.ts";
import { readState } from "../../src/machine/registry.ts";
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { buildSpec } from "../../src/spec/build.ts";
import { type Confinement, confinementOf, confinementSchemaOf, parseConfinement } from "../../src/spec/confinement.ts";
import type { RunSpec } from "../../src/spec/types.ts";
import { specRecords } from "../../src/spec/wire.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96368                96368                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96368                96368                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
`;

function imageHost() {
  return new FakeHost({
    files: {
      "/etc/resolv.conf": "nameserver 127.0.0.1\n",
      "/srv/box/usr/bin/sh": "",
      "/srv/box/etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
      "/srv/box/etc/os-release": "ID=busybox\nVERSION_ID=1.35\n",
    },
    env: {},
  });
}

function build(argv: string[]): RunSpec {
  const host = imageHost();
  const parsed = parseNspawnCommandLine(argv, host.env());
  if (parsed.action !== "run") throw new Error("not a run");
  const facts = gatherHostFacts(host, "/run/machina");
  const image = gatherImageFacts(host, parsed.settings.directory!, facts.timezone);
  if (parsed.settings.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(host, image.root, facts.stateDir);
  return buildSpec(parsed.settings, image, facts, { prog: "machina-nspawn" });
}

const recorded = (s: RunSpec): unknown => (JSON.parse(`{${s.stateJson}}`) as { confinement: unknown }).confinement;
const seccompWire = (s: RunSpec) => specRecords(s).filter(([name]) => name.startsWith("seccomp_"));

describe("the recorded confinement (state.json)", () => {
  test("is the final spec's: bounding and ambient sets, no_new_privs, rlimits, the seccomp records and cache in wire order", () => {
    const s = build([
      "-D",
      "/srv/box",
      "--drop-capability=CAP_NET_RAW",
      "--rlimit=RLIMIT_NOFILE=512:4096",
      "--no-new-privileges=yes",
      "--system-call-filter=~keyctl",
      "/bin/true",
    ]);
    const c = confinementSchemaOf().parse(recorded(s));
    expect(c).toEqual(confinementOf(s));
    expect(c.caps_bounding).toBe(s.capsBounding);
    expect(c.caps_ambient).toBe(s.capsAmbient);
    expect(c.no_new_privs).toBe(true);
    expect(c.rlimits).toEqual([[7, "512", "4096"]]);
    // the very records the supervisor compiles (and caches): same names, same order
    expect(c.seccomp).toEqual(seccompWire(s) as Confinement["seccomp"]);
    expect(c.seccomp.at(-1)).toEqual(["seccomp_cache", ["/run/machina/seccomp"]]);
    expect(c.seccomp.some(([n, a]) => n === "seccomp_deny" && a.includes("keyctl"))).toBe(true);
  });

  test("with -U too (the user namespace changes namespaces and ops, never the confinement)", () => {
    const plain = build(["-D", "/srv/box", "/bin/true"]);
    const s = build(["-D", "/srv/box", "-U", "/bin/true"]);
    expect(s.userns).toBeDefined();
    expect(s.namespaces).toContain("user");
    expect(recorded(s)).toEqual(recorded(plain));
  });

  test("a malformed or missing record is no confinement", () => {
    const c = confinementOf(build(["-D", "/srv/box", "/bin/true"]));
    expect(parseConfinement(c)).toEqual(c);
    expect(parseConfinement(undefined)).toBeUndefined();
    expect(parseConfinement({ ...c, version: 2 })).toBeUndefined();
    expect(parseConfinement({ ...c, caps_bounding: "0x1" })).toBeUndefined();
    expect(parseConfinement({ ...c, seccomp: [["personality", ["8"]]] })).toBeUndefined();
    expect(parseConfinement({ ...c, rlimits: [[16, "1", "1"]] })).toBeUndefined();
    expect(parseConfinement({ ...c, extra: 1 })).toBeUndefined();
  });
});

describe("parseLimits", () => {
  test("one row per resource, in order; unlimited = infinity", () => {
    const l = parseLimits(LIMITS);
    expect(l).toHaveLength(16);
    expect(l[3]).toEqual([3, "8388608", "infinity"]);
    expect(l[7]).toEqual([7, "1024", "524288"]);
    expect(l[13]).toEqual([13, "0", "0"]);
    expect(parseLimits("")).toEqual([]);
  });
});

describe("commandSpec", () => {
  const container = build(["-D", "/srv/box", "--rlimit=RLIMIT_NOFILE=512:4096", "/bin/true"]);
  const machine = { name: "web", leader: 200, root: "/srv/box", cgroupDir: "", controlGroup: "", cgroups: [] } as unknown as Machine;

  function host(withConfinement = true) {
    const state = JSON.parse(`{${container.stateJson}}`) as Record<string, unknown>;
    if (!withConfinement) delete state["confinement"];
    return new FakeHost({
      files: {
        "/run/m/machines/web/state.json": JSON.stringify({ leader: 200, supervisor: 100, ...state, name: "web" }),
        "/proc/self/ns/mnt": { kind: "symlink", target: "mnt:[1]" },
        "/proc/200/ns/mnt": { kind: "symlink", target: "mnt:[9]" },
        "/proc/200/limits": LIMITS,
        "/proc/200/cgroup": "0::/machine.slice/machine-web.scope\n",
        "/proc/200/environ": "container=machina\0",
        "/proc/200/root/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
      },
    });
  }

  test("the container's records, verbatim, before the command; rlimits it did not set are its leader's", () => {
    const h = host();
    const c = machineConfinement(h, "/run/m", machine);
    expect(c).toEqual(readState(h, "/run/m", "web")!.confinement!);
    const spec = commandSpec(h, machine, { console: "pipe", command: ["/bin/true"] }, c);
    const names = spec.map(([n]) => n);
    expect(spec).toContainEqual(["caps_bounding", [container.capsBounding]]);
    expect(spec).toContainEqual(["caps_ambient", [container.capsAmbient]]);
    expect(spec).toContainEqual(["no_new_privs", ["0"]]);
    // the seccomp records are the container's, in the same order (so the same cache file)
    expect(spec.filter(([n]) => n.startsWith("seccomp_"))).toEqual(seccompWire(container));
    // rlimits: the leader's for every resource but NOFILE, which the container set
    const rl = spec.filter(([n]) => n === "rlimit").map(([, a]) => a);
    expect(rl).toHaveLength(16);
    expect(rl.filter(([res]) => res === "7")).toEqual([["7", "512", "4096"]]);
    expect(rl).toContainEqual(["3", "8388608", "infinity"]);
    // confinement before the command, the command last
    expect(names.indexOf("seccomp_filter")).toBeLessThan(names.indexOf("exec"));
    expect(spec.at(-1)).toEqual(["args", []]);
  });

  test("another user: the same confinement, and the user record", () => {
    const h = host();
    const spec = commandSpec(h, machine, { console: "pipe", user: "user", command: ["id"] }, machineConfinement(h, "/run/m", machine));
    expect(spec).toContainEqual(["user", ["1000", "1000", "1000"]]);
    expect(spec.filter(([n]) => n.startsWith("seccomp_"))).toEqual(seccompWire(container));
  });

  test("login: root's ids (login changes user itself; with -U no unmapped host id is left)", () => {
    const h = host();
    const spec = commandSpec(h, machine, { console: "pty", login: true }, machineConfinement(h, "/run/m", machine));
    expect(spec).toContainEqual(["user", ["0", "0", "0"]]);
    expect(spec.filter(([n]) => n === "exec").map(([, a]) => a[1])).toEqual(["login", "login", "login", "login"]);
  });

  test("a machine without a recorded confinement cannot be entered", () => {
    expect(() => machineConfinement(host(false), "/run/m", machine)).toThrow('machine "web" has no recorded confinement');
  });

  test("class oci: the confinement machina-oci recorded for the container whose init is the leader", () => {
    const c = confinementOf(container);
    const ociState = (pid: number, confinement: unknown) =>
      JSON.stringify({
        ociVersion: "1.2.0",
        id: "c1",
        pid,
        pidStart: "1",
        bundle: "/b",
        rootfs: "/b/rootfs",
        created: "2026-01-01T00:00:00Z",
        annotations: {},
        cgroups: [],
        machine: "web",
        confinement,
        hooks: { poststart: [], poststop: [] },
      });
    const oci = { ...machine, class: "oci" } as Machine;
    const h = (text: string) => new FakeHost({ files: { "/run/machina-oci/c1/state.json": text }, env: { MACHINA_OCI_ROOT: "/run/machina-oci" } });
    expect(machineConfinement(h(ociState(200, c)), "/run/m", oci)).toEqual(c);
    // another init (a reused name) or no valid record: refused, never entered unconfined
    expect(() => machineConfinement(h(ociState(201, c)), "/run/m", oci)).toThrow('machine "web" has no valid confinement in machina-oci\'s state');
    expect(() => machineConfinement(h(ociState(200, { ...c, version: 2 })), "/run/m", oci)).toThrow("no valid confinement");
  });
});
