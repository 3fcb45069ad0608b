import { describe, expect, test } from "bun:test";
import { MachinaError } from "../../src/errors.ts";
import { nspawnHelp } from "../../src/cli/nspawn-help.ts";

const NSPAWN_HELP = nspawnHelp();
import { parseNspawnCommandLine } from "../../src/settings/nspawn-cli.ts";
import { NSPAWN_OPTIONS } from "../../src/settings/nspawn-options.ts";
import type { Settings } from "../../src/settings/settings.ts";

function settings(argv: string[], env: Record<string, string> = {}): Settings {
  const r = parseNspawnCommandLine(argv, env, "/work");
  if (r.action !== "run") throw new Error(`not a run: ${r.action}`);
  return r.settings;
}

describe("machina-nspawn command line", () => {
  test("help and version", () => {
    expect(parseNspawnCommandLine(["-h"], {}).action).toBe("help");
    expect(parseNspawnCommandLine(["-D", "/x", "--help"], {}).action).toBe("help");
    expect(parseNspawnCommandLine(["--version"], {}).action).toBe("version");
  });

  test("relative -D, --template and -i are the caller's directory (cwd given: planning may run in machinad), normalized as nspawn", () => {
    expect(settings(["-D", "."]).directory).toBe("/work");
    expect(settings(["-D", "./tree//x/."]).directory).toBe("/work/tree/x");
    expect(settings(["-D", "../t"]).directory).toBe("/work/../t"); // ".." kept, as nspawn's path_simplify
    expect(settings(["-D", "/abs/"]).directory).toBe("/abs");
    expect(settings(["-D", "/"]).directory).toBe("/");
    expect(settings(["--template=t/", "-D", "d"]).template).toBe("/work/t");
    expect(settings(["-i", "img.raw"]).image).toBe("/work/img.raw");
  });

  test("OPTION=help lists the choices of each option nspawn 252 answers help for", () => {
    const list = (arg: string) => {
      const r = parseNspawnCommandLine(["-D", "/x", arg, "--timezone=nope"], {});
      if (r.action !== "list") throw new Error(`not a list: ${r.action}`);
      return r.lines;
    };
    expect(list("--timezone=help")).toEqual(["off", "copy", "bind", "symlink", "delete", "auto"]);
    expect(list("--resolv-conf=help")).toContain("bind-host");
    expect(list("--console=help")).toEqual(["autopipe", "interactive", "passive", "pipe", "read-only"]);
    expect(list("--volatile=help")).toEqual(["no", "yes", "state", "overlay"]);
    expect(list("--private-users-ownership=help")).toEqual(["off", "chown", "map", "auto"]);
    expect(list("--rlimit=help")).toHaveLength(16);
    const sigs = list("--kill-signal=help");
    expect([sigs.length, sigs[0], sigs[1], sigs[31], sigs[32], sigs[34], sigs[64]]).toEqual([65, "0", "HUP", "SYS", "32", "RTMIN+0", "RTMIN+30"]);
    for (const o of ["--capability=help", "--drop-capability=help", "--ambient-capability=help"]) expect(list(o)[0]).toBe("cap_chown");
    // options nspawn does not answer help for still parse "help" as a value
    expect(() => parseNspawnCommandLine(["-D", "/x", "--link-journal=help"], {})).toThrow(/--link-journal/);
  });

  test("--help documents every option systemd-nspawn has", () => {
    // --private-users-chown is a deprecated spelling nspawn also leaves out of its help.
    for (const def of NSPAWN_OPTIONS.filter((d) => d.long !== "private-users-chown")) {
      if (def.long) expect(NSPAWN_HELP).toContain(`--${def.long}`);
      if (def.short) expect(NSPAWN_HELP).toMatch(new RegExp(`(^|\\s)-${def.short}[\\s]`, "m"));
    }
  });

  test("each option lands in its setting, with provenance", () => {
    const s = settings([
      "-bqD",
      "/srv/x",
      "-M",
      "m1",
      "--hostname=h",
      "--uuid=0123456789abcdef0123456789abcdef",
      "-E",
      "A=1",
      "--chdir=/tmp",
      "--kill-signal=RTMIN+4",
      "--notify-ready=yes",
      "--console=passive",
      "--read-only",
      "--capability=CAP_NET_ADMIN,CAP_SYS_TIME",
      "--drop-capability=CAP_MKNOD",
      "--ambient-capability=CAP_CHOWN",
      "--no-new-privileges=1",
      "--rlimit=NOFILE=8",
      "--resolv-conf=bind-host",
      "--timezone=copy",
      "-j",
      "--settings=override",
      "--register=no",
      "--keep-unit",
      "--private-network",
      "--bind=/a:/b:norbind",
      "--bind-ro=+/c",
      "--tmpfs=/t:size=1m",
      "--overlay=/l:/u:/d",
      "--overlay-ro=/l1:/l2:/d2",
      "--inaccessible=/secret",
      "--bind-user=alice",
      "--system-call-filter=@clock",
      "--system-call-filter=~reboot",
      "--private-users=100000:65536",
      "--private-users-ownership=map",
      "--oom-score-adjust=-500",
      "--cpu-affinity=0-1,3",
      "--property=MemoryMax=1G",
      "-S",
      "web",
      "--personality=x86",
      "--suppress-sync=yes",
      "--set-credential=token:a\\nb",
      "--load-credential=key:/etc/key",
      "--pivot-root=/sysroot:/oldroot",
      "--volatile=state",
      "-p",
      "udp:53",
      "--port=8080:80",
    ]);
    expect(s).toMatchObject({
      boot: true,
      quiet: true,
      directory: "/srv/x",
      machine: "m1",
      hostname: "h",
      uuid: "01234567-89ab-cdef-0123-456789abcdef",
      environment: ["A=1"],
      chdir: "/tmp",
      killSignal: 38,
      notifyReady: true,
      console: "passive",
      readOnly: true,
      capabilities: ["CAP_NET_ADMIN", "CAP_SYS_TIME"],
      dropCapabilities: ["CAP_MKNOD"],
      ambientCapabilities: ["CAP_CHOWN"],
      noNewPrivileges: true,
      resolvConf: "bind-host",
      timezone: "copy",
      linkJournal: "try-guest",
      settingsMode: "override",
      register: false,
      keepUnit: true,
      privateNetwork: true,
      inaccessible: ["/secret"],
      bindUsers: ["alice"],
      systemCallFilter: { allow: ["@clock"], deny: ["reboot"] },
      privateUsers: { mode: "range", base: 100000, count: 65536 },
      privateUsersOwnership: "map",
      oomScoreAdjust: -500,
      cpuAffinity: [0, 1, 3],
      properties: [{ name: "MemoryMax", value: "1G" }],
      slice: "web.slice",
      personality: "x86",
      suppressSync: true,
      pivotRoot: { newRoot: "/sysroot", oldRoot: "/oldroot" },
      volatile: "state",
      ports: [
        { protocol: "udp", hostPort: 53, containerPort: 53 },
        { protocol: "tcp", hostPort: 8080, containerPort: 80 },
      ],
    });
    expect(s.rlimits).toEqual([{ resource: 7, name: "NOFILE", soft: 8n, hard: 8n }]);
    expect(s.binds).toEqual([
      { source: "/a", sourceInImage: false, destination: "/b", readOnly: false, recursive: false, idmap: "noidmap" },
      { source: "/c", sourceInImage: true, destination: "/c", readOnly: true, recursive: true, idmap: "noidmap" },
    ]);
    expect(s.tmpfs).toEqual([{ destination: "/t", options: "size=1m" }]);
    expect(s.overlays).toEqual([
      { lower: [{ path: "/l", inImage: false }], upper: { path: "/u", inImage: false }, destination: "/d", readOnly: false },
      {
        lower: [
          { path: "/l1", inImage: false },
          { path: "/l2", inImage: false },
        ],
        upper: undefined,
        destination: "/d2",
        readOnly: true,
      },
    ]);
    expect(s.credentials).toEqual([
      { id: "token", value: { kind: "literal", data: "a\nb" } },
      { id: "key", value: { kind: "path", path: "/etc/key" } },
    ]);
    expect(s.provenance.get("machine")).toEqual({ kind: "cli", flag: "-M" });
    expect(s.provenance.get("binds")).toEqual({ kind: "cli", flag: "--bind-ro" });
  });

  test("operands after the first non-option are the command, untouched", () => {
    const s = settings(["-D", "/x", "/bin/sh", "-c", "echo -b --boot"]);
    expect(s.command).toEqual(["/bin/sh", "-c", "echo -b --boot"]);
    expect(s.boot).toBe(false);
  });

  test("-U, -P, -n and network options imply a private network", () => {
    expect(settings(["-U"])).toMatchObject({ privateUsers: { mode: "pick" }, privateUsersOwnership: "auto" });
    expect(settings(["-P"]).console).toBe("pipe");
    expect(settings(["-n"])).toMatchObject({ networkVeth: true, privateNetwork: true });
    expect(settings(["--network-zone=web"])).toMatchObject({ networkZone: "web", privateNetwork: true });
    expect(settings(["--private-users"]).privateUsers).toEqual({ mode: "yes" });
    expect(settings(["--volatile"]).volatile).toBe("yes");
    expect(settings(["--volatile=no"]).volatile).toBe("no");
  });

  test("-E NAME passes the caller's value; relative bind sources are relative to the working directory", () => {
    expect(settings(["-E", "LANG"], { LANG: "de_DE.UTF-8" }).environment).toEqual(["LANG=de_DE.UTF-8"]);
    expect(settings(["--bind=data:/data"]).binds[0]!.source).toBe("/work/data");
  });

  // Every option rejects empty and garbage values with one clear line naming the option.
  test.each([
    ["--machine=", "for --machine"],
    ["-M", "requires an argument"],
    ["--machine=a b", "expected a machine name"],
    ["--hostname=-x", "expected a valid hostname"],
    ["--uuid=", "expected a UUID"],
    ["--uuid=xyz", "expected a UUID"],
    ["--setenv=", "NAME=VALUE"],
    ["--setenv==x", "NAME=VALUE"],
    ["--chdir=", "an absolute path"],
    ["--chdir=rel", "an absolute path"],
    ["--user=", "invalid user name"],
    ["--kill-signal=", "expected a signal"],
    ["--kill-signal=NOPE", "expected a signal"],
    ["--notify-ready=", "expected a boolean"],
    ["--notify-ready=maybe", "expected a boolean"],
    ["--console=", "expected one of interactive"],
    ["--console=tty", "expected one of interactive"],
    ["--register=x", "expected a boolean"],
    ["--settings=sometimes", "expected a boolean"],
    ["--capability=", "capability name"],
    ["--capability=CAP_FLY", "capability name"],
    ["--capability=all", "not allowed"],
    ["--drop-capability=x", "capability name"],
    ["--ambient-capability=", "capability name"],
    ["--no-new-privileges=", "expected a boolean"],
    ["--rlimit=", "NAME=SOFT"],
    ["--rlimit=NOFILE=x", "NAME=SOFT"],
    ["--resolv-conf=", "expected one of off"],
    ["--resolv-conf=copy", "expected one of off"],
    ["--timezone=utc", "expected one of off"],
    ["--link-journal=yes", "expected one of no"],
    ["--bind=", "SOURCE[:DESTINATION"],
    ["--bind=/a:/b:/c:/d", "SOURCE[:DESTINATION"],
    ["--bind=/a:/b:bogus", "SOURCE[:DESTINATION"],
    ["--bind=:", "a destination"],
    ["--bind-ro=/a:rel", "an absolute path"],
    ["--tmpfs=", "an absolute path"],
    ["--tmpfs=rel", "an absolute path"],
    ["--overlay=/a", "LOWER"],
    ["--overlay-ro=", "LOWER"],
    ["--inaccessible=", "an absolute path"],
    ["--bind-user=", "a user name"],
    ["--bind-user=a:b", "a user name"],
    ["--system-call-filter=", "system call names"],
    ["--system-call-filter=~", "system call names"],
    ["--system-call-filter=Foo!", "system call names"],
    ["--private-users=", "no, yes, pick"],
    ["--private-users=1:0", "no, yes, pick"],
    ["--private-users=x", "no, yes, pick"],
    ["--private-users-ownership=", "expected one of off"],
    ["--oom-score-adjust=", "-1000 to 1000"],
    ["--oom-score-adjust=1001", "-1000 to 1000"],
    ["--cpu-affinity=", "CPU list"],
    ["--cpu-affinity=3-1", "CPU list"],
    ["--property=", "NAME=VALUE"],
    ["--property=memorymax=1", "NAME=VALUE"],
    ["--slice=", "slice name"],
    ["--slice=a/b", "slice name"],
    ["--personality=", "architecture"],
    ["--personality=vax", "architecture"],
    ["--suppress-sync=", "expected a boolean"],
    ["--set-credential=", "ID:VALUE"],
    ["--set-credential=a/b:x", "ID:VALUE"],
    ["--load-credential=id:", "ID:PATH"],
    ["--pivot-root=", "an absolute path"],
    ["--pivot-root=/a:/b:/c", "NEWROOT"],
    ["--volatile=maybe", "expected one of no"],
    ["--port=", "HOSTPORT"],
    ["--port=0", "HOSTPORT"],
    ["--port=sctp:1", "HOSTPORT"],
    ["--port=70000", "HOSTPORT"],
    ["--network-veth-extra=", "network interface name"],
    ["--network-bridge=", "network interface name"],
    ["--network-bridge=waytoolonginterfacename", "network interface name"],
    ["--network-zone=", "invalid zone name"],
    ["--network-interface=", "network interface name"],
    ["--network-macvlan=a:b:c", "IF[:NAME]"],
    ["--network-ipvlan=", "network interface name"],
    ["--network-namespace-path=", "an absolute path"],
    ["--template=", "needs a path"],
    ["--image=", "needs a path"],
    ["--directory=", "needs a directory"],
  ])("%s is refused (%s)", (arg, message) => {
    let error: unknown;
    try {
      settings([arg]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MachinaError);
    const m = (error as MachinaError).message;
    expect(m).toContain(message);
    expect(m.split("\n").length).toBe(1);
  });

  test.each([
    [["-b", "-a"], "--boot and --as-pid2 may not be combined"],
    [["--network-bridge=br0", "--network-zone=z"], "may not be combined"],
    [["--network-namespace-path=/run/netns/x", "-n"], "may not be combined"],
    [["-x", "--template=/t"], "may not be combined"],
    [["-D", "/a", "-i", "/b.raw"], "may not be combined"],
  ])("conflicting options %p are refused", (argv, message) => {
    expect(() => settings(argv)).toThrow(message);
  });
});
