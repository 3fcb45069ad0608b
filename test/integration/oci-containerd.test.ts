/**
 * An OCI runtime (machina-oci by default) under containerd 1.6 (Debian), through the shim every
 * containerd runtime handler of Kubernetes uses: `io.containerd.runc.v2` with BinaryName set to
 * the runtime (docs/kubernetes.md).
 *
 *   (a) ctr: run (output, exit code, a terminal), run -d + exec + kill + delete;
 *   (b) CRI (what the kubelet does, over containerd's CRI socket with a minimal runtime.v1 client,
 *       test/helpers/cri/): Version, RunPodSandbox with the `machina` runtime handler,
 *       CreateContainer, StartContainer, ExecSync, ContainerStatus (RUNNING, then EXITED with its
 *       exit code), two containers of one pod sharing the sandbox's network, IPC and UTS
 *       namespaces (one serves on 127.0.0.1 with busybox nc, the other connects),
 *       StopPodSandbox, RemovePodSandbox; the handler name selects the runtime as a RuntimeClass
 *       does (the default handler's pods never reach it; an unknown handler is refused).
 *
 * Every runtime call goes through a logging wrapper, so the tests also check the command lines
 * the shim runs (the interface a runc-compatible runtime must offer).
 *
 * MACHINA_OCI_TEST_CALLS=DIR copies the recorded calls (calls-machina.log, calls-runc.log) there.
 *
 * The runtime under test: $MACHINA_OCI_TEST_RUNTIME, else the repository's bin/machina-oci;
 * `MACHINA_OCI_TEST_RUNTIME=/usr/sbin/runc` proves the tests themselves against runc. A missing
 * runtime fails every test (it is not skipped); only a host without containerd (scripts/deps.txt)
 * or a non-root run skips. A private containerd (test/helpers/containerd.ts) with its own
 * directories, cgroups and CNI bridge is started for the file and removed afterwards.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { accessSync, constants, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { ContainerConfig, CriClient, NamespaceOption, PodSandboxConfig } from "../helpers/cri/client.ts";
import {
  BUSYBOX_REF,
  buildTestImages,
  callCommand,
  cgroupExists,
  HANDLER,
  haveContainerd,
  memoryLimit,
  type PrivateContainerd,
  readCalls,
  runCmd,
  startContainerd,
} from "../helpers/containerd.ts";
import { REPO, Scratch, waitFor } from "../helpers/machina.ts";

const T = 120_000;
const RUNTIME = process.env.MACHINA_OCI_TEST_RUNTIME ?? join(REPO, "bin/machina-oci");
const isRoot = process.getuid?.() === 0;
const PTY_RUN = join(import.meta.dir, "../helpers/pty-run.py");

function runtimeProblem(): string | undefined {
  try {
    accessSync(RUNTIME, constants.X_OK);
    return undefined;
  } catch (e) {
    return `the OCI runtime under test ${RUNTIME} is not an executable (${(e as Error).message}); set MACHINA_OCI_TEST_RUNTIME to another (e.g. /usr/sbin/runc)`;
  }
}

const scratch = new Scratch();
let ctd: PrivateContainerd;
let cri: CriClient;

/**
 * The error a promise rejects with. (Not `expect(p).rejects`: in bun 1.4 that waits for the
 * promise without serving the gRPC client's socket, so a CRI error answer is only seen at the
 * call's deadline.)
 */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected the call to fail, it succeeded");
}

/** Everything below needs the runtime: without it each test fails with this line first. */
function requireRuntime(): void {
  const p = runtimeProblem();
  if (p) throw new Error(p);
}

describe.skipIf(!isRoot || !haveContainerd())(`containerd 1.6 + io.containerd.runc.v2 with BinaryName=${RUNTIME}`, () => {
  beforeAll(async () => {
    if (runtimeProblem()) return; // each test reports it
    const images = await buildTestImages(scratch);
    ctd = await startContainerd(scratch, { runtime: RUNTIME });
    await ctd.importImages(images);
    cri = ctd.cri();
  }, T);
  afterAll(async () => {
    try {
      cri?.close();
      // MACHINA_OCI_TEST_CALLS=DIR keeps the runtime command lines the shim ran (one call a line)
      const keep = process.env.MACHINA_OCI_TEST_CALLS;
      if (keep && ctd) {
        mkdirSync(keep, { recursive: true });
        for (const log of Object.values(ctd.callLogs)) if (existsSync(log)) copyFileSync(log, join(keep, basename(log)));
      }
    } finally {
      await scratch.cleanup();
    }
  }, T);

  test("the runtime under test exists", () => {
    expect(runtimeProblem()).toBeUndefined();
  });

  describe("ctr", () => {
    test(
      "run: the command's output and exit code; the shim ran create, start, delete with the runtime's --root",
      async () => {
        requireRuntime();
        const r = await ctd.ctr(["run", "--rm", ...ctd.runtimeFlags(), BUSYBOX_REF, "ctr-run", "sh", "-c", "echo hello from $(cat /proc/1/comm); exit 3"]);
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe("hello from sh\n");
        expect(r.code).toBe(3);
        const calls = readCalls(ctd.callLogs.machina).filter((c) => c.at(-1) === "ctr-run");
        expect(calls.map(callCommand)).toEqual(["create", "start", "delete", "delete"]);
        for (const c of calls)
          expect(c.slice(0, 6)).toEqual([
            "--root",
            `${ctd.runtimeRoots.ctr}/${ctd.ctrNamespace}`,
            "--log",
            expect.stringMatching(/\/log\.json$/),
            "--log-format",
            "json",
          ]);
        expect(calls[0]).toContain("--bundle");
        expect(calls[0]).toContain("--pid-file");
        expect(calls[3]).toContain("--force");
      },
      T,
    );

    test(
      "run -t: the process has a terminal (the shim passes --console-socket)",
      async () => {
        requireRuntime();
        const argv = [
          "ctr",
          "--address",
          ctd.socket,
          "--namespace",
          ctd.ctrNamespace,
          "run",
          "--rm",
          "-t",
          ...ctd.runtimeFlags(),
          BUSYBOX_REF,
          "ctr-tty",
          "sh",
          "-c",
          "tty; exit 4",
        ];
        const r = await runCmd(["python3", PTY_RUN, "[]", ...argv]);
        const report = JSON.parse(r.stdout) as { code: number; output: string };
        expect(report.output).toContain("/dev/pts/0");
        expect(report.code).toBe(4);
        const create = readCalls(ctd.callLogs.machina).find((c) => c.at(-1) === "ctr-tty" && callCommand(c) === "create");
        expect(create).toContain("--console-socket");
      },
      T,
    );

    test(
      "run -d, exec (output, exit code, same container), kill, delete",
      async () => {
        requireRuntime();
        const id = "ctr-detached";
        const run = await ctd.ctr(["run", "-d", ...ctd.runtimeFlags(), BUSYBOX_REF, id, "sleep", "1000"]);
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        const tasks = async (): Promise<string> => (await ctd.ctr(["task", "ls"])).stdout;
        expect(await tasks()).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, "m"));

        const ex = await ctd.ctr([
          "task",
          "exec",
          "--exec-id",
          "e1",
          "--fifo-dir",
          `${ctd.dir}/fifo`,
          id,
          "sh",
          "-c",
          "echo exec beside $(cat /proc/1/comm); exit 5",
        ]);
        expect(ex.stdout).toBe("exec beside sleep\n");
        expect(ex.code).toBe(5);

        const kill = await ctd.ctr(["task", "kill", "--signal", "SIGKILL", id]);
        expect(kill.code).toBe(0);
        await waitFor(
          "the killed task to stop",
          async () => ((await tasks()).match(new RegExp(`^${id}\\s+\\d+\\s+STOPPED$`, "m")) ? true : undefined),
          20_000,
          100,
        );
        expect((await ctd.ctr(["task", "delete", id])).code).toBe(0);
        expect((await ctd.ctr(["container", "delete", id])).code).toBe(0);
        expect(await tasks()).not.toContain(id);
        expect((await ctd.ctr(["containers", "ls", "-q"])).stdout).not.toContain(id);

        const calls = readCalls(ctd.callLogs.machina).filter((c) => c.at(-1) === id || c.at(-2) === id);
        expect(calls.map(callCommand)).toEqual(["create", "start", "exec", "kill", "delete", "delete"]);
        const exec = calls[2]!;
        expect(exec).toContain("--process");
        expect(exec).toContain("--detach");
        expect(exec).toContain("--pid-file");
        expect(calls[3]!.slice(-2)).toEqual([id, "9"]);
        expect(cgroupExists(`${ctd.ctrNamespace}/${id}`)).toBe(false);
      },
      T,
    );
  });

  describe("CRI (the kubelet's path)", () => {
    let uidCounter = 0;
    const podConfig = (name: string): PodSandboxConfig => ({
      metadata: { name, uid: `uid-${name}-${++uidCounter}`, namespace: "machina-test" },
      hostname: name,
      logDirectory: `${ctd.dir}/pods/${name}`,
      labels: { app: name },
      linux: { cgroupParent: ctd.criCgroupParent, securityContext: { namespaceOptions: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
    });
    // the kubelet asks for a PID namespace per container (v1.PodSpec's default)
    const containerNs: NamespaceOption = { network: "POD", pid: "CONTAINER", ipc: "POD" };
    const container = (name: string, command: string[]): ContainerConfig => ({
      metadata: { name },
      image: { image: BUSYBOX_REF },
      command,
      logPath: `${name}.log`,
      linux: { securityContext: { namespaceOptions: containerNs } },
    });
    const sandboxCalls = (log: string, sandboxId: string): string[][] => readCalls(log).filter((c) => c.includes(sandboxId));

    test("Version, Status and ImageStatus answer", async () => {
      requireRuntime();
      const v = await cri.version();
      expect(v.runtimeName).toBe("containerd");
      expect(v.runtimeApiVersion).toBe("v1");
      const s = await cri.status();
      expect(s.status.conditions.filter((c) => c.status).map((c) => c.type)).toEqual(["RuntimeReady", "NetworkReady"]);
      expect((await cri.imageStatus(BUSYBOX_REF))?.repoTags).toEqual([BUSYBOX_REF]);
    });

    test(
      "a pod of two containers with the machina handler: run, exec, status, shared namespaces, stop, remove",
      async () => {
        requireRuntime();
        const sb = podConfig("pod-a");
        const podId = await cri.runPodSandbox(sb, HANDLER);
        const ps = await cri.podSandboxStatus(podId);
        expect(ps.status.state).toBe("SANDBOX_READY");
        expect(ps.status.runtimeHandler).toBe(HANDLER);
        expect(ps.status.network?.ip).toMatch(/^10\.213\.0\.\d+$/);

        // the server: busybox nc in the pod's network namespace, answering every connection
        const server = await cri.createContainer(podId, container("server", ["nc", "-ll", "-p", "7777", "-e", "echo", "pong"]), sb);
        expect((await cri.containerStatus(server)).status.state).toBe("CONTAINER_CREATED");
        await cri.startContainer(server);
        const st = (await cri.containerStatus(server)).status;
        expect(st.state).toBe("CONTAINER_RUNNING");
        expect(BigInt(st.startedAt)).toBeGreaterThan(0n);

        // ExecSync: stdout, stderr and the exit code
        const ex = await cri.execSync(server, ["sh", "-c", "echo out $(hostname); echo err >&2; exit 6"]);
        expect(ex).toEqual({ stdout: "out pod-a\n", stderr: "err\n", exitCode: 6 });

        // the client: another container of the pod reaches the server on 127.0.0.1
        const client = await cri.createContainer(podId, container("client", ["sleep", "1000"]), sb);
        await cri.startContainer(client);
        expect((await cri.containerStatus(client)).status.state).toBe("CONTAINER_RUNNING");
        const reply = await waitFor(
          "the server container's nc to answer on 127.0.0.1:7777",
          async () => {
            const r = await cri.execSync(client, ["nc", "127.0.0.1", "7777"], 10);
            return r.exitCode === 0 && r.stdout !== "" ? r.stdout : undefined;
          },
          20_000,
          200,
        );
        expect(reply).toBe("pong\n");
        const ns = async (id: string): Promise<Record<string, string>> => {
          const r = await cri.execSync(id, ["sh", "-c", "for n in net ipc uts pid mnt; do echo $n $(readlink /proc/self/ns/$n); done"]);
          expect(r.exitCode).toBe(0);
          return Object.fromEntries(
            r.stdout
              .trim()
              .split("\n")
              .map((l) => l.split(" ") as [string, string]),
          );
        };
        const [a, b] = [await ns(server), await ns(client)];
        for (const n of ["net", "ipc", "uts"]) expect(a[n]).toBe(b[n]!);
        for (const n of ["pid", "mnt"]) expect(a[n]).not.toBe(b[n]!);

        // UpdateContainerResources: the runtime's `update` changes the container's cgroup
        const cg = `${ctd.criCgroupParent}/${client}`; // cgroupfs: CGROUP_PARENT/ID
        await cri.updateContainerResources(client, { memoryLimitInBytes: String(64 << 20) });
        expect(memoryLimit(cg)).toBe(64 << 20);
        const update = readCalls(ctd.callLogs.machina).find((c) => c.at(-1) === client && callCommand(c) === "update");
        expect(update?.some((a) => a.startsWith("--resources"))).toBe(true);

        // a container that exits: EXITED with its exit code, its output in the CRI log file
        const short = await cri.createContainer(podId, container("short", ["sh", "-c", "echo bye; exit 7"]), sb);
        await cri.startContainer(short);
        const exited = await waitFor(
          "the short container to exit",
          async () => {
            const s = (await cri.containerStatus(short)).status;
            return s.state === "CONTAINER_EXITED" ? s : undefined;
          },
          20_000,
          100,
        );
        expect(exited.exitCode).toBe(7);
        expect(exited.reason).toBe("Error");
        expect(readFileSync(exited.logPath, "utf8")).toMatch(/^\S+ stdout F bye$/m);

        // a container with a terminal (tty: true): the shim passes --console-socket
        const tty = await cri.createContainer(podId, { ...container("tty", ["tty"]), tty: true }, sb);
        await cri.startContainer(tty);
        const ttyExit = await waitFor(
          "the tty container to exit",
          async () => {
            const s = (await cri.containerStatus(tty)).status;
            return s.state === "CONTAINER_EXITED" ? s : undefined;
          },
          20_000,
          100,
        );
        expect(ttyExit.exitCode).toBe(0);
        expect(readFileSync(ttyExit.logPath, "utf8")).toMatch(/^\S+ stdout F \/dev\/pts\/0\r?$/m);
        expect(readCalls(ctd.callLogs.machina).find((c) => c.at(-1) === tty && callCommand(c) === "create")).toContain("--console-socket");

        // StopContainer: the server is killed (SIGTERM ignored by nc as PID 1, then SIGKILL)
        await cri.stopContainer(server, 1);
        const stopped = (await cri.containerStatus(server)).status;
        expect(stopped.state).toBe("CONTAINER_EXITED");
        expect(stopped.exitCode).toBe(137);

        await cri.stopPodSandbox(podId);
        expect((await cri.podSandboxStatus(podId)).status.state).toBe("SANDBOX_NOTREADY");
        expect((await cri.containerStatus(client)).status.state).toBe("CONTAINER_EXITED");
        await cri.removePodSandbox(podId);
        expect((await failure(cri.podSandboxStatus(podId))).message).toMatch(/NOT_FOUND/);
        expect((await cri.listPodSandbox()).map((p) => p.id)).not.toContain(podId);

        // every runtime call of the pod went to the machina handler's runtime, none to the default
        const calls = sandboxCalls(ctd.callLogs.machina, podId);
        expect(calls.map(callCommand)).toContain("create");
        expect(sandboxCalls(ctd.callLogs.runc, podId)).toEqual([]);
        for (const id of [server, client, short, tty]) {
          const cmds = readCalls(ctd.callLogs.machina)
            .filter((c) => c.includes(id))
            .map(callCommand);
          expect(cmds.slice(0, 2)).toEqual(["create", "start"]);
          expect(cmds).toContain("delete");
        }
        // nothing left: the pod's cgroups, its netns file, its shim
        expect(cgroupExists(`${ctd.criCgroupParent}/${podId}`)).toBe(false);
        expect(readdirSync(`${ctd.dir}/state/io.containerd.grpc.v1.cri/netns`)).toEqual([]);
        await waitFor("the pod's shim to exit", () => (ctd.shims().length === 0 ? true : undefined), 10_000, 100);
      },
      T,
    );

    test(
      "the runtime handler selects the runtime, as a RuntimeClass does: the default handler's pod never calls it; an unknown handler is refused",
      async () => {
        requireRuntime();
        const sb = podConfig("pod-default");
        const podId = await cri.runPodSandbox(sb, "");
        expect((await cri.podSandboxStatus(podId)).status.runtimeHandler).toBe("");
        const c = await cri.createContainer(podId, container("c", ["sleep", "1000"]), sb);
        await cri.startContainer(c);
        expect((await cri.execSync(c, ["echo", "default"])).stdout).toBe("default\n");
        await cri.stopPodSandbox(podId);
        await cri.removePodSandbox(podId);
        expect(sandboxCalls(ctd.callLogs.runc, podId).map(callCommand)).toContain("create");
        expect(sandboxCalls(ctd.callLogs.machina, podId)).toEqual([]);
        expect(readCalls(ctd.callLogs.machina).filter((call) => call.includes(c))).toEqual([]);

        expect((await failure(cri.runPodSandbox(podConfig("pod-unknown"), "no-such-handler"))).message).toMatch(/no runtime for "no-such-handler"/);
      },
      T,
    );
  });
});
