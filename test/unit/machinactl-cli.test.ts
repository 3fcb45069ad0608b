/** machinactl's options (--machine=, --output=), `show` without NAME and `shell .host` (FakeHost). */
import { describe, expect, test } from "bun:test";
import { hostShellPlan } from "../../src/cli/machinactl/host-shell.ts";
import { ENTER_VERBS } from "../../src/cli/machinactl/enter-verbs.ts";
import { MACHINE_VERBS } from "../../src/cli/machinactl/machine-verbs.ts";
import { defaultMachinactlOptions, OUTPUT_MODES, parseMachinactlCommandLine, type MachinactlOptions } from "../../src/cli/machinactl/options.ts";
import { FakeHost } from "../../src/host/fake.ts";

const PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\n";

async function run(
  verbs: typeof MACHINE_VERBS,
  host: FakeHost,
  name: string,
  args: string[],
  opts: Partial<MachinactlOptions> = {},
  env: Record<string, string> = {},
) {
  let stdout = "";
  const verb = verbs.find((v) => v.name === name)!;
  const status = await verb.run(
    {
      options: { ...defaultMachinactlOptions(), ...opts },
      host,
      paths: { helper: "", stateDir: "/run/m", pool: ["/var/lib/machines"] },
      env,
      out: (t) => void (stdout += t),
      err: () => {},
    },
    args,
  );
  return { status, stdout };
}

describe("machinactl options", () => {
  test("--output= takes journalctl's modes; help lists them", () => {
    expect(parseMachinactlCommandLine(["-o", "json-pretty", "logs", "x"], {}).options.output).toBe("json-pretty");
    expect(parseMachinactlCommandLine(["--output=help", "list"], {}).list).toEqual([...OUTPUT_MODES]);
    expect(parseMachinactlCommandLine(["-s", "help"], {}).list?.slice(0, 3)).toEqual(["0", "HUP", "INT"]);
    expect(parseMachinactlCommandLine(["--verify=help"], {}).list).toEqual(["no", "checksum", "signature"]);
    expect(OUTPUT_MODES).toContain("short-iso");
    expect(() => parseMachinactlCommandLine(["--output=bogus", "status", "x"], {})).toThrow('invalid value "bogus" for --output');
  });
  test("--machine= takes .host ([USER@]); other names are refused, invalid ones named as invalid", () => {
    for (const v of [".host", "root@.host", "alice@"]) expect(parseMachinactlCommandLine([`--machine=${v}`, "show"], {}).options.machine).toBe(v);
    expect(() => parseMachinactlCommandLine(["--machine=", "show"], {})).toThrow('invalid value "" for --machine');
    expect(() => parseMachinactlCommandLine(["-M", "a b", "status", "x"], {})).toThrow('invalid value "a b" for -M');
    expect(() => parseMachinactlCommandLine(["-M", "web", "status", "x"], {})).toThrow('-M "web" is not supported');
  });
});

describe("show without NAME", () => {
  test("machined's manager properties: PoolPath, PoolUsage, PoolLimit; --value prints the bare value", async () => {
    const host = new FakeHost({ files: { "/var/lib/machines": { kind: "dir" } } });
    expect((await run(MACHINE_VERBS, host, "show", [], { properties: ["PoolPath"], value: true })).stdout).toBe("/var/lib/machines\n");
    expect((await run(MACHINE_VERBS, host, "show", [])).stdout).toStartWith("PoolPath=/var/lib/machines\nPoolUsage=");
  });
});

describe("shell .host", () => {
  test("the user's login shell on the host, through setpriv, in the home directory", () => {
    const host = new FakeHost({ files: { "/etc/passwd": PASSWD, "/usr/bin/setpriv": "" } });
    expect(hostShellPlan(host, undefined, [], [], "xterm")).toEqual({
      path: "/usr/bin/setpriv",
      argv: ["setpriv", "--reuid=0", "--regid=0", "--init-groups", "--", "/bin/bash", "-l"],
      env: {
        PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        HOME: "/root",
        USER: "root",
        LOGNAME: "root",
        SHELL: "/bin/bash",
        TERM: "xterm",
      },
      cwd: "/root",
    });
    const a = hostShellPlan(host, "alice", ["id", "-u"], ["FOO=bar"], undefined);
    expect([a.argv, a.env["FOO"], a.env["HOME"], a.cwd]).toEqual([
      ["setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "--", "id", "-u"],
      "bar",
      "/home/alice",
      "/home/alice",
    ]);
    expect(hostShellPlan(host, "4242", [], [], undefined).argv).toContain("--clear-groups");
    expect(() => hostShellPlan(host, "bob", [], [], undefined)).toThrow('no user "bob" in the host\'s /etc/passwd');
  });
  test("`shell`, `shell .host` and `shell alice@.host` replace machinactl by it; containers go the enter path", async () => {
    const host = new FakeHost({ files: { "/etc/passwd": PASSWD, "/usr/bin/setpriv": "" } });
    await run(ENTER_VERBS, host, "shell", []);
    await run(ENTER_VERBS, host, "shell", ["alice@.host", "/bin/true"]);
    expect(host.programExecs.map((e) => e.argv.slice(1, 2).concat(e.argv.slice(5)))).toEqual([
      ["--reuid=0", "/bin/bash", "-l"],
      ["--reuid=1000", "/bin/true"],
    ]);
    expect(host.execs).toEqual([]);
  });
});
