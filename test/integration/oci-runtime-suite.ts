/**
 * machina-oci itself (runc's command line): the lifecycle of a bundle made by the test (the
 * busybox fixture as rootfs, a `runc spec`-like config.json): create leaves the init waiting,
 * start releases it, state/list/ps follow it, kill/pause/resume/update act on it, delete removes
 * its state and cgroup; run and exec with exit statuses; hooks with the state on stdin; sysctls
 * in the container's namespaces; bad input gets one line (and a JSON log line with --log).
 * Everything under a --root of the test's own; every container and cgroup is removed. Root only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ensureBusyboxImage } from "../fixtures/images.ts";
import { REPO, Scratch, baseEnv, copyTree, waitFor } from "../helpers/machina.ts";

/** Which machina-oci runs the suite: the Bun program itself, or the native front end with machinad (oci-front.test.ts). */
export interface OciVariant {
  label: string;
  command: string;
  /** the environment of every call (read after beforeAll) */
  env(): Record<string, string>;
}

/** The whole suite, for one variant (registered by the calling test file). */
export function ociRuntimeSuite(variant: OciVariant): void {
  const T = 30_000;
  const RUNC = readFileSync(join(import.meta.dir, "../fixtures/oci/runc-spec.json"), "utf8");
  const isRoot = process.getuid?.() === 0;
  const files = new Scratch();
  let bundle: string;
  let root: string;
  let work: string;
  const made: string[] = [];

  type Json = Record<string, unknown>;
  function writeConfig(edit: (c: Json) => void): void {
    const c = JSON.parse(RUNC) as Json;
    c.root = { path: "rootfs", readonly: true };
    Object.assign(c.process as Json, {
      terminal: false,
      args: ["sh", "-c", "sleep 1000"],
      env: ["PATH=/usr/bin:/bin"],
    });
    edit(c);
    writeFileSync(`${bundle}/config.json`, JSON.stringify(c, null, 2));
  }

  /**
   * machina-oci with the test's --root. Its stdout and stderr go to files: a created container keeps
   * the stdio it inherits (as runc's), so a pipe would stay open as long as the container runs.
   */
  let calls = 0;
  function oci(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
    const out = join(work, `out-${++calls}`);
    const err = join(work, `err-${calls}`);
    const fds = [openSync(out, "w"), openSync(err, "w")] as const;
    try {
      const r = Bun.spawnSync([variant.command, "--root", root, ...args], {
        env: variant.env(),
        cwd: bundle,
        stdin: input === undefined ? "ignore" : new TextEncoder().encode(input),
        stdout: fds[0],
        stderr: fds[1],
      });
      return {
        code: r.exitCode ?? 128,
        stdout: readFileSync(out, "utf8"),
        stderr: readFileSync(err, "utf8"),
      };
    } finally {
      for (const fd of fds) closeSync(fd);
      rmSync(out, { force: true });
      rmSync(err, { force: true });
    }
  }

  function id(prefix: string): string {
    const name = `${prefix}-${process.pid}-${made.length}`;
    made.push(name);
    return name;
  }
  const state = (name: string) =>
    JSON.parse(oci(["state", name]).stdout) as {
      status: string;
      pid: number;
      id: string;
      bundle: string;
    };

  beforeAll(async () => {
    if (!isRoot) return;
    const image = await ensureBusyboxImage();
    bundle = files.dir("oci-runtime-bundle-");
    root = files.dir("oci-runtime-root-");
    work = files.dir("oci-runtime-work-");
    copyTree(image, `${bundle}/rootfs`);
  });
  afterEach(() => {
    for (const name of made.splice(0)) oci(["delete", "--force", name]);
  });
  afterAll(() => {
    if (isRoot) expect(readdirSync(root)).toEqual([]);
    files.cleanup();
  });

  describe.skipIf(!isRoot)(variant.label, () => {
    test(
      "create leaves the init waiting, start runs it, state, list and ps follow it, kill stops it, delete removes state and cgroup",
      async () => {
        writeConfig((c) => {
          (c.process as Json).args = ["sh", "-c", 'echo started > /dev/null; trap "exit 5" TERM; while :; do sleep 0.1; done'];
          (c.linux as Json).cgroupsPath = `/machina-oci-test/${process.pid}`;
        });
        const name = id("life");
        const pidFile = join(work, "init.pid");
        const c = oci(["create", "--bundle", bundle, "--pid-file", pidFile, name]);
        expect(c.stderr).toBe("");
        expect(c.code).toBe(0);
        const s = state(name);
        expect(s).toMatchObject({ id: name, status: "created", bundle });
        expect(Number(readFileSync(pidFile, "utf8"))).toBe(s.pid);
        // the init waits at the fifo: not yet the command
        expect(readFileSync(`/proc/${s.pid}/cmdline`, "utf8")).not.toContain("trap");
        expect(oci(["list"]).stdout).toMatch(new RegExp(`^${name}\\s+${s.pid}\\s+created\\s+${bundle}`, "m"));
        expect(oci(["start", name]).code).toBe(0);
        await waitFor("the command", () => (readFileSync(`/proc/${s.pid}/cmdline`, "utf8").includes("trap") ? true : undefined));
        expect(state(name).status).toBe("running");
        const again = oci(["start", name]);
        expect(again.code).toBe(1);
        expect(again.stderr).toContain(`cannot start container "${name}" in state running`);
        const cgroup = `/sys/fs/cgroup/unified/machina-oci-test/${process.pid}`;
        expect(readFileSync(`${cgroup}/cgroup.procs`, "utf8")).toContain(String(s.pid));
        expect(JSON.parse(oci(["ps", "--format", "json", name]).stdout)).toContain(s.pid);
        const busy = oci(["delete", name]);
        expect(busy.code).toBe(1);
        expect(busy.stderr).toContain("that is not stopped: running");
        expect(oci(["kill", name, "TERM"]).code).toBe(0);
        await waitFor("the container to stop", () => (state(name).status === "stopped" ? true : undefined), 10_000);
        expect(state(name).pid).toBe(0);
        expect(oci(["delete", name]).code).toBe(0);
        expect(existsSync(cgroup)).toBe(false);
        expect(existsSync(join(root, name))).toBe(false);
        const gone = oci(["state", name]);
        expect(gone.code).toBe(1);
        expect(gone.stderr).toBe(`machina-oci: container "${name}" does not exist\n`);
      },
      T,
    );

    test(
      "run: stdout and the exit status; run -d; exec (a command, --process, --detach --pid-file)",
      async () => {
        writeConfig((c) => {
          (c.process as Json).args = ["sh", "-c", "echo hello from $(hostname); exit 3"];
          c.hostname = "oci-box";
        });
        const r = oci(["run", id("run")]);
        expect(r.stdout).toBe("hello from oci-box\n");
        expect(r.code).toBe(3);
        writeConfig(() => undefined);
        const name = id("exec");
        expect(oci(["run", "-d", name]).code).toBe(0);
        const e = oci(["exec", name, "sh", "-c", "echo $(cat /proc/1/cmdline | tr '\\0' ' ')| id -u; exit 4"]);
        expect(e.stdout).toBe("0\n");
        expect(e.code).toBe(4);
        const proc = join(work, "process.json");
        writeFileSync(
          proc,
          JSON.stringify({
            args: ["sh", "-c", "id -u; id -g; pwd; echo $GREETING"],
            cwd: "/tmp",
            env: ["PATH=/bin", "GREETING=hi"],
            user: { uid: 1000, gid: 1001 },
          }),
        );
        const p = oci(["exec", "--process", proc, name]);
        expect(p.stdout).toBe("1000\n1001\n/tmp\nhi\n");
        expect(p.code).toBe(0);
        const pidFile = join(work, "exec.pid");
        expect(oci(["exec", "--detach", "--pid-file", pidFile, name, "sleep", "30"]).code).toBe(0);
        const pid = Number(readFileSync(pidFile, "utf8"));
        expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\u000030\u0000");
        // in the container's cgroup and pid namespace
        expect(readFileSync(`/proc/${pid}/cgroup`, "utf8")).toBe(readFileSync(`/proc/${state(name).pid}/cgroup`, "utf8"));
        expect(readlinkSync(`/proc/${pid}/ns/pid`)).toBe(readlinkSync(`/proc/${state(name).pid}/ns/pid`));
        const bad = oci(["exec", name, "/nonexistent"]);
        expect(bad.code).toBe(127);
      },
      T,
    );

    test(
      "pause and resume freeze the cgroup; update sets limits; kill --all reaches every process",
      async () => {
        writeConfig(() => undefined);
        const name = id("freeze");
        expect(oci(["run", "-d", name]).code).toBe(0);
        expect(oci(["pause", name]).code).toBe(0);
        expect(state(name).status).toBe("paused");
        expect(oci(["exec", name, "true"]).stderr).toContain("is paused");
        expect(oci(["resume", name]).code).toBe(0);
        expect(state(name).status).toBe("running");
        expect(oci(["update", "--pids-limit", "50", name]).code).toBe(0);
        const limits = oci(["update", "--resources", "-", name], JSON.stringify({ pids: { limit: 60 } }));
        expect(limits.code).toBe(0);
        const pidsMax = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids"].map((m) => `${m}/machina-oci/${name}/pids.max`).find((f) => existsSync(f));
        expect(pidsMax).toBeDefined();
        expect(readFileSync(pidsMax!, "utf8").trim()).toBe("60");
        const badUpdate = oci(["update", "--resources", "-", name], JSON.stringify({ memory: { kernel: 1 } }));
        expect(badUpdate.stderr).toContain("memory.kernel: is not supported by machina");
        expect(oci(["exec", "-d", name, "sleep", "100"]).code).toBe(0);
        expect(oci(["kill", name, "--all", "KILL"]).code).toBe(0);
        await waitFor("the container to stop", () => (state(name).status === "stopped" ? true : undefined), 10_000);
      },
      T,
    );

    test(
      "linux.resources exactly as runc writes them: v1 cpu, cpuset and devices files at an absolute cgroupsPath (hybrid hosts), removed by delete",
      async () => {
        const path = `/machina-oci-res-${process.pid}`;
        const v1 = (c: string) => `/sys/fs/cgroup/${c}${path}`;
        writeConfig((c) => {
          (c.linux as Json).cgroupsPath = path;
          (c.linux as Json).resources = {
            devices: [
              { allow: false, access: "rwm" },
              { allow: true, type: "c", major: 10, minor: 229, access: "rwm" },
              { allow: true, type: "b", major: 8, minor: 20, access: "rw" },
            ],
            cpu: {
              shares: 2048,
              quota: 50000,
              period: 500000,
              cpus: "0",
              mems: "0",
            },
          };
        });
        const name = id("res");
        try {
          const c = oci(["create", "--bundle", bundle, name]);
          expect(c.stderr).toBe("");
          expect(c.code).toBe(0);
          const pid = state(name).pid;
          const read = (f: string) => readFileSync(f, "utf8").trim();
          if (existsSync("/sys/fs/cgroup/cpu/cpu.shares")) {
            expect(read(`${v1("cpu")}/cpu.shares`)).toBe("2048");
            expect(read(`${v1("cpu")}/cpu.cfs_period_us`)).toBe("500000");
            expect(read(`${v1("cpu")}/cpu.cfs_quota_us`)).toBe("50000");
            expect(read(`${v1("cpu")}/cgroup.procs`).split("\n")).toContain(String(pid));
          }
          if (existsSync("/sys/fs/cgroup/cpuset/cpuset.cpus")) {
            expect(read(`${v1("cpuset")}/cpuset.cpus`)).toBe("0");
            expect(read(`${v1("cpuset")}/cpuset.mems`)).toBe("0");
            expect(read(`${v1("cpuset")}/cgroup.procs`).split("\n")).toContain(String(pid));
          }
          if (existsSync("/sys/fs/cgroup/devices/devices.list")) {
            const list = read(`${v1("devices")}/devices.list`).split("\n");
            expect(list.slice(0, 3)).toEqual(["c 10:229 rwm", "b 8:20 rw", "c 1:3 rwm"]);
            expect(list).toContain("c 136:* rw");
          }
          expect(oci(["start", name]).code).toBe(0);
          // the container may open what the rules allow (the BPF program and v1 devices agree)
          expect(oci(["exec", name, "sh", "-c", "echo x > /dev/null"]).code).toBe(0);
          expect(oci(["delete", "--force", name]).code).toBe(0);
          for (const c of ["cpu", "cpuset", "devices", "unified"]) expect(existsSync(v1(c))).toBe(false);
          // relative: below our own cgroup; every new v1 cpuset on the way gets its parent's cpus and mems
          writeConfig((c) => {
            (c.linux as Json).cgroupsPath = `${path.slice(1)}/inner`;
            (c.linux as Json).resources = { cpu: { cpus: "0", mems: "0" } };
          });
          expect(oci(["create", "--bundle", bundle, name]).code).toBe(0);
          if (existsSync("/sys/fs/cgroup/cpuset/cpuset.cpus")) {
            const own = /^[0-9]+:(?:[^:]*,)?cpuset(?:,[^:]*)?:(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1] ?? "/";
            const inner = `/sys/fs/cgroup/cpuset${own === "/" ? "" : own}${path}/inner`;
            expect(readFileSync(`${inner}/cpuset.cpus`, "utf8").trim()).toBe("0");
            expect(readFileSync(`${inner}/../cpuset.mems`, "utf8").trim()).not.toBe("");
            expect(readFileSync(`${inner}/cgroup.procs`, "utf8")).toContain(String(state(name).pid));
          }
        } finally {
          oci(["delete", "--force", name]);
          const own = /^[0-9]+:(?:[^:]*,)?cpuset(?:,[^:]*)?:(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1] ?? "/";
          const dirs = ["cpu", "cpuset", "devices", "unified"].map(v1);
          dirs.unshift(`/sys/fs/cgroup/cpuset${own === "/" ? "" : own}${path}/inner`, `/sys/fs/cgroup/unified${path}/inner`);
          for (const d of dirs) if (existsSync(d)) rmdirSync(d); // cgroupfs: rmdir only
        }
      },
      T,
    );

    test(
      "hooks get the state on stdin (createRuntime/prestart before the start, poststart, poststop); sysctls land in the container",
      async () => {
        const hook = join(work, "hook.sh");
        writeFileSync(hook, `#!/bin/sh\ncat > "${work}/$1.json"\n`, {
          mode: 0o755,
        });
        writeConfig((c) => {
          c.hooks = {
            prestart: [{ path: hook, args: ["hook", "prestart"] }],
            poststart: [{ path: hook, args: ["hook", "poststart"] }],
            poststop: [{ path: hook, args: ["hook", "poststop"] }],
          };
          (c.linux as Json).sysctl = {
            "net.ipv4.ip_forward": "1",
            "kernel.shmmni": "2048",
          };
          (c.process as Json).args = ["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"];
        });
        const hostForward = readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8");
        const name = id("hooks");
        const r = oci(["run", name]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe("1\n2048\n");
        expect(readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8")).toBe(hostForward);
        const pre = JSON.parse(readFileSync(join(work, "prestart.json"), "utf8")) as Json;
        expect(pre).toMatchObject({ id: name, status: "created", bundle });
        expect(pre.pid).toBeGreaterThan(0);
        expect(JSON.parse(readFileSync(join(work, "poststart.json"), "utf8"))).toMatchObject({ id: name, status: "running" });
        expect(JSON.parse(readFileSync(join(work, "poststop.json"), "utf8"))).toMatchObject({ id: name, status: "stopped" });
        writeConfig((c) => {
          (c.linux as Json).sysctl = { "kernel.panic": "1" };
        });
        const refused = oci(["create", id("sysctl")]);
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain("linux.sysctl.kernel.panic: only sysctls of the container's own namespaces can be set");
      },
      T,
    );

    test(
      "createContainer runs in the container's mount namespace before the pivot, startContainer in its root once started; a failing one fails create or start",
      async () => {
        // createContainer: a host path; it sees the container's tmpfs at ROOTFS/cmnt (only the
        // container's mount namespace has it), its working directory is the new root
        const chook = join(work, "chook.sh");
        writeFileSync(
          chook,
          `#!/bin/sh\ncat > "${work}/create.json"\n{ pwd; grep " $(pwd)/cmnt " /proc/self/mountinfo | grep -c " - tmpfs "; echo "$1 $K"; } > "${work}/create.txt"\n`,
          { mode: 0o755 },
        );
        // startContainer: a path in the container (its /bin/sh); it writes into the container's /cmnt
        writeConfig((c) => {
          (c.mounts as unknown[]).push({
            destination: "/cmnt",
            type: "tmpfs",
            source: "tmpfs",
            options: ["nosuid"],
          });
          c.hooks = {
            createContainer: [
              {
                path: chook,
                args: ["chook", "one"],
                env: ["K=V"],
                timeout: 10,
              },
            ],
            startContainer: [
              {
                path: "/bin/sh",
                args: ["sh", "-c", "cat > /cmnt/start.json; echo $$ > /cmnt/start.pid"],
              },
            ],
          };
          (c.process as Json).args = ["sh", "-c", "cat /cmnt/start.json; echo; cat /cmnt/start.pid"];
        });
        const name = id("inhooks");
        const c = oci(["create", "--bundle", bundle, name]);
        expect(c.stderr).toBe("");
        expect(c.code).toBe(0);
        const created = JSON.parse(readFileSync(join(work, "create.json"), "utf8")) as Json;
        expect(created).toMatchObject({ id: name, status: "creating", bundle });
        expect(created.pid).toBe(1);
        expect(readFileSync(join(work, "create.txt"), "utf8")).toBe(`${bundle}/rootfs\n1\none V\n`);
        expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(`${bundle}/rootfs/cmnt`);
        expect(state(name).status).toBe("created");
        rmSync(join(work, "create.json"));
        // run: create + start, the command's output is the startContainer hook's state
        const r = oci(["run", id("inhooks-run")]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const [started, hookPid] = r.stdout.trim().split("\n");
        expect(JSON.parse(started!)).toMatchObject({
          status: "created",
          pid: 1,
          bundle,
        });
        expect(Number(hookPid)).toBeGreaterThan(1);
        expect(oci(["delete", "--force", name]).code).toBe(0);

        writeConfig((c) => {
          c.hooks = {
            createContainer: [{ path: "/bin/sh", args: ["sh", "-c", "exit 3"] }],
          };
        });
        const failing = id("inhooks-cfail");
        const cf = oci(["create", "--bundle", bundle, failing]);
        expect(cf.code).toBe(1);
        expect(cf.stderr).toContain('createContainer hook 0 ("/bin/sh") failed with exit status 3');
        expect(existsSync(join(root, failing))).toBe(false);

        writeConfig((c) => {
          c.hooks = {
            startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "echo no >&2; exit 4"] }],
          };
          (c.process as Json).args = ["sh", "-c", "echo payload ran"];
        });
        const sfail = id("inhooks-sfail");
        expect(oci(["create", "--bundle", bundle, sfail]).code).toBe(0);
        const pid = state(sfail).pid;
        const sf = oci(["start", sfail]);
        expect(sf.code).toBe(1);
        expect(sf.stderr).toContain("a startContainer hook failed");
        await waitFor("the init to end", () => (state(sfail).status === "stopped" ? true : undefined), 10_000);
        expect(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("payload")).toBe(false);
        expect(oci(["delete", sfail]).code).toBe(0);
        expect(existsSync(join(root, sfail))).toBe(false);
      },
      T,
    );

    test(
      "linux.uidMappings and gidMappings are the container's maps as given (different ranges, two lines); the rootfs is not chowned",
      () => {
        writeConfig((c) => {
          const l = c.linux as Json;
          (l.namespaces as unknown[]).push({ type: "user" });
          l.uidMappings = [
            { containerID: 0, hostID: 1000, size: 2000 },
            { containerID: 5000, hostID: 400000, size: 10 },
          ];
          l.gidMappings = [{ containerID: 0, hostID: 1000, size: 3000 }];
          (c.process as Json).args = ["sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; id -u"];
        });
        const before = statSync(`${bundle}/rootfs/bin`);
        const r = oci(["run", id("maps")]);
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        const lines = r.stdout
          .trim()
          .split("\n")
          .map((l) => l.trim().split(/\s+/).join(" "));
        expect(lines).toEqual(["0 1000 2000", "5000 400000 10", "--", "0 1000 3000", "0"]);
        const after = statSync(`${bundle}/rootfs/bin`);
        expect([after.uid, after.gid]).toEqual([before.uid, before.gid]);
      },
      T,
    );

    test(
      "linux.rootfsPropagation: shared exposes a later mount in a bind of /, private does not, unbindable refuses the bind (EINVAL)",
      () => {
        // runtime-tools' validateRootfsPropagation, in a shell
        const script = [
          "mkdir /pt /pm /ps && touch /ps/f",
          'if err=$(mount -o rbind / /pt 2>&1); then mount -o bind /ps /pm; if [ -e /pt/pm/f ]; then echo exposed; else echo hidden; fi; umount /pm; umount -l /pt; else echo "refused: $err"; fi',
          "rmdir /pt /pm; rm -r /ps",
        ].join("; ");
        const results: Record<string, string> = {};
        for (const p of ["shared", "private", "unbindable"]) {
          writeConfig((c) => {
            c.root = { path: "rootfs", readonly: false };
            const caps = (c.process as Json).capabilities as Record<string, string[]>;
            for (const set of ["bounding", "effective", "permitted"]) caps[set] = [...caps[set]!, "CAP_SYS_ADMIN"];
            (c.linux as Json).rootfsPropagation = p;
            (c.process as Json).args = ["sh", "-c", script];
          });
          const r = oci(["run", id(`prop-${p}`)]);
          expect(r.stderr).toBe("");
          results[p] = r.stdout.trim();
        }
        expect(results).toMatchObject({ shared: "exposed", private: "hidden" });
        expect(results.unbindable).toMatch(/^refused: .*Invalid argument/);
        for (const d of ["pt", "pm", "ps"]) expect(existsSync(`${bundle}/rootfs/${d}`)).toBe(false);
      },
      T,
    );

    test(
      "mount, PID and UTS namespaces joined by path: the container runs in those of another process (not as its PID 1), its hostname set there",
      async () => {
        const other = Bun.spawn(["unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child", "sleep", "1000"], { stdout: "ignore", stderr: "ignore" });
        try {
          const ns = (pid: number | string, n: string) => readlinkSync(`/proc/${pid}/ns/${n}`);
          await waitFor("unshare's namespaces", () =>
            ns(other.pid, "mnt") !== ns("self", "mnt") && ns(other.pid, "uts") !== ns("self", "uts") ? true : undefined,
          );
          writeConfig((c) => {
            const l = c.linux as Json;
            const paths: Record<string, string> = {
              mount: "mnt",
              pid: "pid_for_children",
              uts: "uts",
            };
            l.namespaces = (l.namespaces as Json[]).map((n) =>
              paths[n.type as string]
                ? {
                    ...n,
                    path: `/proc/${other.pid}/ns/${paths[n.type as string]}`,
                  }
                : n,
            );
            c.hostname = "joined";
            (c.process as Json).args = ["sh", "-c", "readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; hostname; [ $$ != 1 ] && echo not-init"];
          });
          const r = oci(["run", id("joined")]);
          expect(r.stderr).toBe("");
          expect(r.stdout.trim().split("\n")).toEqual([ns(other.pid, "mnt"), ns(other.pid, "pid_for_children"), "joined", "not-init"]);
          expect(readFileSync("/proc/sys/kernel/hostname", "utf8").trim()).not.toBe("joined");
          // the host's own UTS namespace by path: a hostname would rename the host, refused
          writeConfig((c) => {
            const l = c.linux as Json;
            l.namespaces = (l.namespaces as Json[]).map((n) => (n.type === "uts" ? { ...n, path: `/proc/${process.pid}/ns/uts` } : n));
            c.hostname = "joined";
          });
          const host = oci(["run", id("hostuts")]);
          expect(host.code).toBe(1);
          expect(host.stderr).toContain("is the host's: setting the hostname in it would rename the host");
        } finally {
          other.kill("SIGKILL");
          await other.exited;
        }
      },
      T,
    );

    test(
      "nosuid, nodev and noexec on bind mounts are set on them; a bind without them keeps exec",
      () => {
        const src = files.dir("oci-runtime-bindsrc-");
        writeFileSync(join(src, "run.sh"), "#!/bin/sh\necho ran\n", {
          mode: 0o755,
        });
        writeConfig((c) => {
          (c.mounts as Json[]).push(
            {
              destination: "/mnt/r",
              type: "bind",
              source: src,
              options: ["rbind", "nosuid", "nodev", "noexec"],
            },
            {
              destination: "/mnt/p",
              type: "bind",
              source: src,
              options: ["bind"],
            },
          );
          (c.process as Json).args = [
            "sh",
            "-c",
            "grep -E ' /mnt/(r|p) ' /proc/self/mountinfo | cut -d' ' -f5,6; /mnt/r/run.sh 2>/dev/null || echo refused; /mnt/p/run.sh",
          ];
        });
        const r = oci(["run", id("restrict")]);
        expect(r.stderr).toBe("");
        const lines = r.stdout.trim().split("\n");
        const opts = (m: string) => (lines.find((l) => l.startsWith(`${m} `)) ?? "").split(" ")[1]!.split(",");
        expect(opts("/mnt/r")).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
        expect(opts("/mnt/p")).not.toContain("noexec");
        expect(lines.slice(-2)).toEqual(["refused", "ran"]);
      },
      T,
    );

    test(
      "tmpcopyup: a tmpfs over /etc starts with the image's /etc (files, directories, symlinks not followed, modes, owners); writes stay in it",
      () => {
        const etc = `${bundle}/rootfs/etc`;
        const added = ["cu-file", "cu-dir", "cu-escape"];
        try {
          writeFileSync(`${etc}/cu-file`, "from the image\n", { mode: 0o640 });
          chownSync(`${etc}/cu-file`, 0, 8);
          mkdirSync(`${etc}/cu-dir/sub`, { recursive: true, mode: 0o710 });
          chmodSync(`${etc}/cu-dir`, 0o710);
          symlinkSync("/../../../../../../etc/hostname", `${etc}/cu-escape`);
          writeConfig((c) => {
            (c.mounts as Json[]).push({
              destination: "/etc",
              type: "tmpfs",
              source: "tmpfs",
              options: ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
            });
            (c.process as Json).args = [
              "sh",
              "-c",
              [
                "awk '$2 == \"/etc\" { print $3 }' /proc/mounts",
                "cat /etc/cu-file /etc/os-release | head -2",
                "stat -c '%a %u:%g' /etc/cu-file /etc/cu-dir",
                "ls /etc/cu-dir",
                "readlink /etc/cu-escape",
                "echo new > /etc/cu-new && echo changed > /etc/cu-file && cat /etc/cu-new /etc/cu-file",
              ].join("; "),
            ];
          });
          const r = oci(["run", id("copyup")]);
          expect(r.stderr).toBe("");
          const image = readFileSync(`${etc}/os-release`, "utf8").split("\n")[0];
          expect(r.stdout).toBe(`tmpfs\nfrom the image\n${image}\n640 0:8\n710 0:0\nsub\n/../../../../../../etc/hostname\nnew\nchanged\n`);
          expect(r.code).toBe(0);
          // the image is untouched
          expect(readFileSync(`${etc}/cu-file`, "utf8")).toBe("from the image\n");
          expect(existsSync(`${etc}/cu-new`)).toBe(false);
          // in a user namespace too (the helper copies as host root; owners stay the image's numeric ones)
          writeConfig((c) => {
            const l = c.linux as Json;
            (l.namespaces as unknown[]).push({ type: "user" });
            l.uidMappings = [{ containerID: 0, hostID: 1000, size: 2000 }];
            l.gidMappings = [{ containerID: 0, hostID: 1000, size: 2000 }];
            (c.mounts as Json[]).push({
              destination: "/etc",
              type: "tmpfs",
              source: "tmpfs",
              options: ["nosuid", "nodev", "mode=755", "tmpcopyup"],
            });
            (c.process as Json).args = [
              "sh",
              "-c",
              "awk '$2 == \"/etc\" { print $3 }' /proc/mounts; head -1 /etc/os-release; ls -d /etc/cu-dir; readlink /etc/cu-escape",
            ];
          });
          const u = oci(["run", id("copyup-userns")]);
          expect(u.stderr).toBe("");
          expect(u.stdout).toBe(`tmpfs\n${image}\n/etc/cu-dir\n/../../../../../../etc/hostname\n`);
          expect(u.code).toBe(0);
        } finally {
          for (const f of added) rmSync(`${etc}/${f}`, { recursive: true, force: true });
        }
      },
      T,
    );

    test(
      "no pid, IPC or UTS namespace in the config: the container shares the host's (podman --pid=host); a hostname there is refused",
      () => {
        writeConfig((c) => {
          const l = c.linux as Json;
          l.namespaces = (l.namespaces as Json[]).filter((n) => !["pid", "ipc", "uts"].includes(n.type as string));
          delete c.hostname;
          (c.process as Json).args = ["sh", "-c", "for n in pid ipc uts; do readlink /proc/self/ns/$n; done; [ $$ != 1 ] && echo not-init"];
        });
        const r = oci(["run", id("hostns")]);
        expect(r.stderr).toBe("");
        const ns = (n: string) => readlinkSync(`/proc/self/ns/${n}`);
        expect(r.stdout.trim().split("\n")).toEqual([ns("pid"), ns("ipc"), ns("uts"), "not-init"]);
        expect(r.code).toBe(0);
        writeConfig((c) => {
          const l = c.linux as Json;
          l.namespaces = (l.namespaces as Json[]).filter((n) => n.type !== "uts");
          c.hostname = "renamed";
        });
        const bad = oci(["run", id("hostuts2")]);
        expect(bad.code).toBe(1);
        expect(bad.stderr).toContain("is the host's: setting the hostname in it would rename the host");
        expect(readFileSync("/proc/sys/kernel/hostname", "utf8").trim()).not.toBe("renamed");
      },
      T,
    );

    test(
      "bad input: one line naming the id, flag or config.json field; --log gets a JSON line; nothing is left",
      () => {
        writeConfig((c) => {
          (c.linux as Json).seccomp = { defaultAction: "SCMP_ACT_BOGUS" };
        });
        const log = join(work, "log.json");
        const bad = oci(["--log", log, "--log-format", "json", "create", id("bad")]);
        expect(bad.code).toBe(1);
        expect(bad.stderr.trim().split("\n")).toHaveLength(1);
        expect(bad.stderr).toContain("linux.seccomp.defaultAction");
        const line = JSON.parse(readFileSync(log, "utf8").trim().split("\n").at(-1)!) as Json;
        expect(line).toMatchObject({ level: "error" });
        expect(String(line.msg)).toContain("linux.seccomp.defaultAction");
        expect(readdirSync(root)).toEqual([]);
        expect(oci(["create", "../escape"]).stderr).toContain('invalid container id "../escape"');
        expect(oci(["kill", "nope", "KILL"]).stderr).toContain('container "nope" does not exist');
        expect(oci(["kill", "nope", "NOTASIGNAL"]).stderr).toContain('invalid value "NOTASIGNAL" for SIGNAL: expected a signal name or number');
        expect(oci(["create", "--bogus", "x"]).stderr).toContain("flag provided but not defined: --bogus");
        expect(oci(["frobnicate"]).stderr).toContain("no such command: frobnicate");
        writeConfig(() => undefined);
        const name = id("dup");
        expect(oci(["create", name]).code).toBe(0);
        expect(oci(["create", name]).stderr).toContain(`container "${name}" already exists`);
      },
      T,
    );

    test(
      "machinactl lists the containers of machina-oci's state directory as class oci; status, shell, exec, kill and terminate work on them",
      async () => {
        writeConfig(() => undefined);
        const name = id("listed");
        expect(oci(["run", "-d", name]).code).toBe(0);
        const env = baseEnv({
          MACHINA_OCI_ROOT: root,
          MACHINA_STATE_DIR: files.dir("oci-machinactl-state-"),
          MACHINA_NO_DAEMON: "1",
        });
        const machinactl = (...args: string[]) => {
          const r = Bun.spawnSync([join(REPO, "bin/machinactl"), ...args], {
            env,
            stdout: "pipe",
            stderr: "pipe",
          });
          return {
            code: r.exitCode,
            stdout: r.stdout.toString(),
            stderr: r.stderr.toString(),
          };
        };
        const list = machinactl("--json=short", "list");
        expect(list.code).toBe(0);
        expect(JSON.parse(list.stdout)).toContainEqual(
          expect.objectContaining({
            machine: name,
            class: "oci",
            service: "machina-oci",
          }),
        );
        const status = machinactl("status", name);
        expect(status.stdout).toContain(`Leader: ${state(name).pid}`);
        // shell and exec enter it as machina-oci exec does: its namespaces, cgroup and recorded confinement
        const init = state(name).pid;
        const sh = machinactl("shell", name, "/bin/sh", "-c", "hostname; grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 6");
        expect(sh.stderr).toBe("");
        expect(sh.code).toBe(6);
        expect(sh.stdout.split("\n")[0]).toBe("runc");
        const field = (text: string, f: string) => new RegExp(`^${f}:\\s*(\\S+)`, "m").exec(text)?.[1];
        const initStatus = readFileSync(`/proc/${init}/status`, "utf8");
        for (const f of ["CapBnd", "CapEff", "NoNewPrivs", "Seccomp"]) expect([f, field(sh.stdout, f)]).toEqual([f, field(initStatus, f)]);
        const ex = machinactl(
          "exec",
          name,
          "/bin/sh",
          "-c",
          "readlink /proc/self/ns/pid; readlink /proc/self/ns/mnt; cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
        );
        expect(ex.code).toBe(0);
        const [nsLines, initCgroup] = ex.stdout.split("--\n");
        expect(nsLines).toStartWith(`${readlinkSync(`/proc/${init}/ns/pid`)}\n${readlinkSync(`/proc/${init}/ns/mnt`)}\n`);
        expect(nsLines!.split("\n").slice(2).join("\n")).toBe(initCgroup!); // the init's cgroups, as the container sees them
        expect(machinactl("kill", "--signal=SIGCONT", name).code).toBe(0);
        expect(machinactl("terminate", name).code).toBe(0);
        expect(state(name).status).toBe("stopped");
        expect(machinactl("list").stdout).not.toContain(name);
      },
      T,
    );

    test("spec writes a config.json machina-oci runs; features and --version answer", () => {
      const dir = files.dir("oci-spec-");
      expect(Bun.spawnSync([variant.command, "spec", "--bundle", dir], { env: variant.env() }).exitCode).toBe(0);
      const spec = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")) as Json;
      expect(spec).toMatchObject({
        ociVersion: "1.2.0",
        root: { path: "rootfs" },
      });
      expect(Bun.spawnSync([variant.command, "spec", "--bundle", dir], { env: variant.env() }).stderr.toString()).toContain("exists");
      const features = JSON.parse(Bun.spawnSync([variant.command, "features"], { env: variant.env() }).stdout.toString()) as Json;
      expect(features).toMatchObject({ ociVersionMin: "1.0.0" });
      expect(Bun.spawnSync([variant.command, "--version"], { env: variant.env() }).stdout.toString()).toMatch(/^machina-oci version \S+\nspec: 1\.2\.0\n/);
    });
  });
}
