/**
 * What a payload sees inside a machina-nspawn container (busybox image, the probe as payload):
 * pid, hostname, environment, mounts, /dev, /run/host, capabilities, fds, and the execution
 * flags (--chdir, -u, --read-only, --capability, --drop-capability, --no-new-privileges,
 * --rlimit, -E, --uuid). Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import {
  MACHINA_NSPAWN,
  NSPAWN_DEFAULT_CAP_NAMES,
  NOTHING,
  Scratch,
  copyTree,
  expectedCapBnd,
  findMount,
  leftovers,
  newLeftovers,
  parseProbe,
  runNspawn,
  type ProbeReport,
} from "../helpers/machina.ts";

const T = 30_000;
const files = new Scratch(); // per file: the writable copy, the state dir
const scratch = new Scratch(); // per test
let image: string; // the shared cached tree: read-only use only
let copy: string; // our writable copy; its directory name is a unique machine name
let copyName: string;
let stateDir: string;

beforeAll(async () => {
  image = await ensureBusyboxImage();
  const work = files.dir();
  copyName = files.name("bb");
  copy = `${work}/${copyName}`;
  copyTree(image, copy);
  stateDir = files.dir("machina-state-");
});
afterEach(() => scratch.cleanup());
afterAll(() => files.cleanup());

/** Run the probe (or `cmd`) in the read-only shared image under a unique -M name. */
async function probe(args: string[] = [], cmd: string[] = ["/usr/bin/probe"]): Promise<{ r: ProbeReport; name: string }> {
  const name = scratch.name();
  const res = await runNspawn(["-q", "--console=pipe", "-D", image, "-M", name, ...args, ...cmd], { stateDir }, scratch);
  if (res.code !== 0) throw new Error(`exit ${res.code}: ${res.stderr}`);
  return { r: parseProbe(res.stdout), name };
}

function hostOsRelease(): Record<string, string> {
  let text = "";
  for (const p of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      text = readFileSync(p, "utf8");
      break;
    } catch {
      // next
    }
  }
  const out: Record<string, string> = {};
  for (const l of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(l);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return out;
}

describe("inside a container (busybox, --console=pipe)", () => {
  let r: ProbeReport;
  let name: string;
  beforeAll(async () => {
    const before = leftovers(stateDir);
    ({ r, name } = await probe());
    expect(newLeftovers(before, leftovers(stateDir))).toEqual(NOTHING);
  });

  test("the payload is PID 1 of a new pid namespace, in new mnt/uts/ipc/cgroup namespaces", () => {
    expect(r.pid).toBe(1);
    expect(r.ppid).toBe(0);
    const self = (ns: string) => {
      try {
        return readlinkSync(`/proc/self/ns/${ns}`);
      } catch {
        return undefined;
      }
    };
    for (const ns of ["pid", "mnt", "uts", "ipc", "cgroup"]) expect(r.namespaces[ns]).not.toBe(self(ns));
    // no --private-network: the host's network namespace
    expect(r.namespaces.net).toBe(self("net"));
  });

  test("hostname is the -M name", () => {
    expect(r.hostname).toBe(name);
  });

  test("environment: exactly nspawn's variables", () => {
    const os = hostOsRelease();
    expect(r.env.container).toBe("systemd-nspawn");
    expect(r.env.container_uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(r.env.container_host_id).toBe(os.ID!);
    if (os.VERSION_ID) expect(r.env.container_host_version_id).toBe(os.VERSION_ID);
    expect(r.env.NOTIFY_SOCKET).toBe("/run/host/notify");
    expect(r.env.PATH).toBe("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect(r.env.HOME).toBe("/root");
    expect(r.env.USER).toBe("root");
    expect(r.env.LOGNAME).toBe("root");
    expect(r.env.TERM).toBe("xterm"); // the caller's TERM (helpers pass TERM=xterm)
    expect(r.env.LANG).toBe("C.UTF-8");
    const allowed = new Set([
      "container",
      "container_uuid",
      "container_host_id",
      "container_host_version_id",
      "container_host_build_id",
      "container_host_variant_id",
      "NOTIFY_SOCKET",
      "PATH",
      "HOME",
      "USER",
      "LOGNAME",
      "TERM",
      "LANG",
    ]);
    expect(Object.keys(r.env).filter((k) => !allowed.has(k))).toEqual([]);
    // nothing of the caller's environment leaks in
    expect(r.env.MACHINA_STATE_DIR).toBeUndefined();
  });

  test("/dev has exactly the nspawn device set (no console with --console=pipe)", () => {
    const dev = Object.fromEntries(r.dev!.map((e) => [e.name, e]));
    expect(Object.keys(dev).sort()).toEqual(
      ["char", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"].sort(),
    );
    const nodes: Record<string, [number, number]> = { null: [1, 3], zero: [1, 5], full: [1, 7], random: [1, 8], urandom: [1, 9], tty: [5, 0] };
    for (const [n, [maj, min]] of Object.entries(nodes)) {
      expect(dev[n]!.type).toBe("char");
      expect([dev[n]!.major, dev[n]!.minor]).toEqual([maj, min]);
      expect(dev[n]!.mode).toBe(0o666);
    }
    expect(dev.ptmx!.type).toBe("symlink");
    expect(dev.ptmx!.target).toBe("pts/ptmx");
    expect(dev.fd!.target).toBe("/proc/self/fd");
    expect(dev.stdin!.target).toBe("/proc/self/fd/0");
    expect(dev.stdout!.target).toBe("/proc/self/fd/1");
    expect(dev.stderr!.target).toBe("/proc/self/fd/2");
    for (const d of ["pts", "shm", "mqueue", "char"]) expect(dev[d]!.type).toBe("dir");
    expect(r.devPts!.map((e) => e.name)).toEqual(["ptmx"]); // a new devpts instance: no host ptys
    expect(findMount(r, "/dev")!.fsType).toBe("tmpfs");
    expect(findMount(r, "/dev/pts")!.fsType).toBe("devpts");
    expect(findMount(r, "/dev/shm")!.fsType).toBe("tmpfs");
    expect(findMount(r, "/dev/mqueue")!.fsType).toBe("mqueue");
  });

  test("/proc is mounted, /proc/sys read-only, kernel files masked", () => {
    expect(findMount(r, "/proc")!.fsType).toBe("proc");
    expect(findMount(r, "/proc")!.options.split(",")).toContain("rw");
    expect(findMount(r, "/proc/sys")!.options.split(",")).toContain("ro");
    for (const p of ["kallsyms", "keys", "timer_list", "kcore", "sysrq-trigger"]) {
      if (!existsSync(`/proc/${p}`)) continue; // not in this kernel: nothing to mask
      const m = findMount(r, `/proc/${p}`);
      expect(m, `/proc/${p} masked`).toBeDefined();
      expect(m!.options.split(",")).toContain("ro");
    }
  });

  test("/sys is read-only sysfs; cgroup2 (namespaced) at /sys/fs/cgroup", () => {
    const sys = findMount(r, "/sys")!;
    expect(sys.fsType).toBe("sysfs");
    expect(sys.options.split(",")).toContain("ro");
    const cg = findMount(r, "/sys/fs/cgroup")!;
    expect(cg.fsType).toBe("cgroup2");
    expect(cg.root).toBe("/"); // rooted at the container's own cgroup
    expect(r.cgroup).toContain("0::/");
  });

  test("/run is a tmpfs and /run/host has nspawn's files", () => {
    expect(findMount(r, "/run")!.fsType).toBe("tmpfs");
    expect(findMount(r, "/tmp")!.fsType).toBe("tmpfs");
    const host = Object.fromEntries(r.runHost!.map((e) => [e.name, e.type]));
    expect(host).toEqual({
      "container-manager": "file",
      "container-uuid": "file",
      inaccessible: "dir",
      incoming: "dir",
      notify: "socket",
      "os-release": "file",
    });
    expect(findMount(r, "/run/host")!.options.split(",")).toContain("ro");
  });

  test("capabilities: nspawn's default retained set (limited by the host's bounding set)", () => {
    const want = expectedCapBnd(NSPAWN_DEFAULT_CAP_NAMES);
    expect(r.caps.CapBnd).toBe(want);
    expect(r.caps.CapEff).toBe(want);
    expect(r.caps.CapPrm).toBe(want);
    expect(r.caps.CapAmb).toBe("0000000000000000");
    expect(r.noNewPrivs).toBe(0);
  });

  test("no file descriptors beyond 0, 1, 2", () => {
    expect(Object.keys(r.fds).sort()).toEqual(["0", "1", "2"]);
    expect(r.fds["0"]).toBe("/dev/null"); // our stdin
    expect(r.fds["1"]).toMatch(/^(pipe|socket):/); // what the test runner gave us
  });

  test("working directory / and uid 0", () => {
    expect(r.cwd).toBe("/");
    expect([r.uid, r.gid, r.euid, r.egid]).toEqual([0, 0, 0, 0]);
  });
});

describe("identity flags", () => {
  test(
    "hostname and machine name default to the directory's name",
    async () => {
      const res = await runNspawn(["-q", "--console=pipe", "-D", copy, "/usr/bin/probe"], { stateDir }, scratch);
      expect(res.code).toBe(0);
      expect(parseProbe(res.stdout).hostname).toBe(copyName);
    },
    T,
  );

  test(
    "--hostname overrides the -M name",
    async () => {
      const { r } = await probe(["--hostname=other-host"]);
      expect(r.hostname).toBe("other-host");
    },
    T,
  );

  test(
    "--uuid sets container_uuid",
    async () => {
      const { r } = await probe(["--uuid=0123456789abcdef0123456789abcdef"]);
      expect(r.env.container_uuid).toBe("01234567-89ab-cdef-0123-456789abcdef");
    },
    T,
  );

  test(
    "-E adds and overrides variables",
    async () => {
      const { r } = await probe(["-E", "FOO=bar baz", "--setenv=EMPTY=", "-E", "PATH=/bin"]);
      expect(r.env.FOO).toBe("bar baz");
      expect(r.env.EMPTY).toBe("");
      expect(r.env.PATH).toBe("/bin");
    },
    T,
  );
});

describe("execution flags", () => {
  test(
    "--chdir",
    async () => {
      const { r } = await probe(["--chdir=/home/user"]);
      expect(r.cwd).toBe("/home/user");
    },
    T,
  );

  test(
    "-u user: uid/gid/groups from the image's passwd and group, HOME/USER/LOGNAME, no effective caps",
    async () => {
      const { r } = await probe(["-u", "user"]);
      expect([r.uid, r.euid, r.gid, r.egid]).toEqual([1000, 1000, 1000, 1000]);
      expect(r.env.HOME).toBe("/home/user");
      expect(r.env.USER).toBe("user");
      expect(r.env.LOGNAME).toBe("user");
      expect(r.caps.CapEff).toBe("0000000000000000");
      expect(r.caps.CapPrm).toBe("0000000000000000");
      expect(r.caps.CapBnd).toBe(expectedCapBnd(NSPAWN_DEFAULT_CAP_NAMES));
    },
    T,
  );

  test(
    "--read-only: the root is mounted read-only and writes fail with EROFS",
    async () => {
      const name = scratch.name();
      const res = await runNspawn(["-q", "--console=pipe", "-D", copy, "-M", name, "--read-only", "/usr/bin/probe", "touch", "/root/x"], { stateDir }, scratch);
      expect(res.code).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({ ok: false, errno: 30, error: "Read-only file system" });
      // without it, the same write works
      const rw = await runNspawn(["-q", "--console=pipe", "-D", copy, "-M", name, "/usr/bin/probe", "touch", "/root/x"], { stateDir }, scratch);
      expect(JSON.parse(rw.stdout).ok).toBe(true);
    },
    T,
  );

  test(
    "--capability adds, --drop-capability removes",
    async () => {
      const { r } = await probe(["--capability=CAP_NET_ADMIN,CAP_IPC_LOCK", "--drop-capability=CAP_SYS_ADMIN"]);
      const names = [...NSPAWN_DEFAULT_CAP_NAMES.filter((c) => c !== "SYS_ADMIN"), "NET_ADMIN", "IPC_LOCK"];
      expect(r.caps.CapBnd).toBe(expectedCapBnd(names));
      expect(r.caps.CapEff).toBe(expectedCapBnd(names));
    },
    T,
  );

  test(
    "--drop-capability=all leaves nothing",
    async () => {
      const { r } = await probe(["--drop-capability=all"]);
      expect(r.caps.CapBnd).toBe("0000000000000000");
      expect(r.caps.CapEff).toBe("0000000000000000");
    },
    T,
  );

  test(
    "--no-new-privileges",
    async () => {
      expect((await probe(["--no-new-privileges=yes"])).r.noNewPrivs).toBe(1);
      expect((await probe(["--no-new-privileges=no"])).r.noNewPrivs).toBe(0);
    },
    T,
  );

  test(
    "--rlimit sets soft and hard limits",
    async () => {
      const { r } = await probe(["--rlimit=NOFILE=512:1024", "--rlimit=CORE=infinity", "--rlimit=NPROC=77"]);
      expect(r.rlimits.NOFILE).toEqual({ soft: 512, hard: 1024 });
      expect(r.rlimits.CORE).toEqual({ soft: "infinity", hard: "infinity" });
      expect(r.rlimits.NPROC).toEqual({ soft: 77, hard: 77 });
    },
    T,
  );
});

describe("MACHINA_STATUS_FD", () => {
  test("machina-nspawn's own stages, then the helper's status lines, in order, each with its time", () => {
    const out = `${files.dir("machina-status-")}/status`;
    const before = Date.now() * 1000;
    const r = Bun.spawnSync(
      ["sh", "-c", `exec "$@" 3>${out}`, "sh", MACHINA_NSPAWN, "-q", "--console=pipe", "--register=no", "-D", image, "-M", scratch.name(), "/bin/true"],
      { env: { ...process.env, MACHINA_STATE_DIR: stateDir, MACHINA_STATUS_FD: "3" }, stderr: "pipe" },
    );
    const after = Date.now() * 1000 + 1000;
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { stage?: string; event?: string; t: number });
    expect(lines.map((l) => l.stage ?? l.event)).toEqual([
      "bun",
      "modules",
      "main",
      "planned",
      "spec",
      "namespaces",
      "mounts",
      "pivot",
      "exec",
      "started",
      "ready",
      "exited",
    ]);
    // µs since the epoch, in this run's window, in order up to the payload's start (the last three are the supervisor's)
    for (const l of lines) expect(Number.isInteger(l.t) && l.t >= before - 1_000_000 && l.t <= after).toBe(true);
    const upToExec = lines.slice(0, 9).map((l) => l.t);
    expect(upToExec).toEqual([...upToExec].sort((a, b) => a - b));
  });
});
