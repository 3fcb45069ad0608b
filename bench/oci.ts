/**
 * Benchmark "machina-oci": the lifecycle a containerd shim drives — `create --pid-file`, `start`,
 * wait for the init (this process is the subreaper it is left to), `delete` — of `/bin/true` in
 * the busybox bundle, for machina-oci, runc and crun (through test/conformance/crun-hybrid, which
 * this hybrid-cgroup host needs), alternating in one run; and `podman run --rm … true` end to end
 * with each runtime. Target (issue 13): machina-oci at most 0.5× runc, and faster than crun.
 * machina-oci is the installed form, dist/bin/machina-oci (scripts/build runs first): its native
 * front end served by machinad (dist/bin/machinad, started by this benchmark on its default
 * socket unless one answers there), and the same without machinad (the front end runs the full
 * machina-oci, dist/libexec; under podman through a wrapper script that says so).
 *
 *   bun bench/oci.ts [--quick]     (rewrites the bench:oci block of BENCHMARKS.md)
 *
 * Root only. Every container, state directory and podman store is removed afterwards.
 */
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setChildSubreaper, waitpidBlocking } from "../src/host/libc.ts";
import { factsLine, median, REPO, versionLine, writeBlock, saveResult } from "./common.ts";

export interface OciBenchResult {
  n: number;
  lifecycle: Record<string, number[]>;
  /** per runtime, the medians of create, start, wait and delete */
  phases?: Record<string, number[]>;
  podman: Record<string, number[]>;
}

interface Runtime {
  argv: string[];
  env: Record<string, string>;
}

/** Run and check; stderr is ours (a created container keeps the stdio it inherits: a pipe would stay open). */
function must(argv: string[], cwd: string, env: Record<string, string> = process.env as Record<string, string>): void {
  const r = Bun.spawnSync(argv, { cwd, env, stdin: "ignore", stdout: "ignore", stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}`);
}

/** One shim-like lifecycle: ms for create, start, wait, delete. */
function lifecycle(rt: Runtime, root: string, bundle: string, id: string): number[] {
  const pidFile = join(bundle, `${id}.pid`);
  const t = [performance.now()];
  must([...rt.argv, "--root", root, "create", "--bundle", bundle, "--pid-file", pidFile, id], bundle, rt.env);
  t.push(performance.now());
  must([...rt.argv, "--root", root, "start", id], bundle, rt.env);
  t.push(performance.now());
  const status = waitpidBlocking(Number(readFileSync(pidFile, "utf8")));
  t.push(performance.now());
  must([...rt.argv, "--root", root, "delete", id], bundle, rt.env);
  t.push(performance.now());
  if (status !== 0) throw new Error(`${rt.argv.join(" ")}: /bin/true exited ${status}`);
  return t.slice(1).map((x, i) => x - t[i]!);
}

/**
 * machinad (the installed form) where machina-oci finds it without any setting: its default
 * socket (/run/machina/api.sock, oci.sock beside it), since podman runs the runtime with an
 * environment of its own. Its state directory is this run's. An answering machinad is used as it is.
 */
async function startMachinad(work: string): Promise<{ stop: () => Promise<void> }> {
  const { MachinaClient } = await import("../src/client/client.ts");
  const { apiSocketPath, ociSocketPath } = await import("../src/client/socket-path.ts");
  const socket = apiSocketPath({});
  if (await new MachinaClient(socket).ping(1000)) return { stop: async () => undefined };
  const log = join(work, "machinad.log");
  const proc = Bun.spawn([join(REPO, "dist/bin/machinad"), "--no-autostart"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", MACHINA_STATE_DIR: join(work, "machinad-state") },
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(log),
  });
  for (let i = 0; !(await new MachinaClient(socket).ping(100)) || !existsSync(ociSocketPath(socket, {})); i++) {
    if (proc.exitCode !== null || i > 100) throw new Error(`machinad did not start: ${readFileSync(log, "utf8")}`);
    await Bun.sleep(20);
  }
  return {
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export async function benchOci(o: { n: number; podmanN: number; work: string }): Promise<OciBenchResult> {
  const { ensureBusyboxImage } = await import("../test/fixtures/images.ts");
  const bundle = await mkdtemp(join(o.work, "bundle-"));
  await cp(await ensureBusyboxImage(), join(bundle, "rootfs"), { recursive: true, verbatimSymlinks: true });
  must([join(REPO, "bin/machina-oci"), "spec", "--bundle", bundle], bundle);
  const config = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as { process: Record<string, unknown>; root: Record<string, unknown> };
  Object.assign(config.process, { terminal: false, args: ["/bin/true"] });
  config.root = { path: "rootfs", readonly: true };
  (config as Record<string, unknown>).ociVersion = "1.0.2"; // what crun 1.8 and runc 1.1 take
  await writeFile(join(bundle, "config.json"), JSON.stringify(config));
  setChildSubreaper();

  // the installed form (scripts/setup links it into /usr/local/bin): the compiled commands
  must([join(REPO, "scripts/build")], REPO);
  const machinad = await startMachinad(o.work);
  const env = process.env as Record<string, string>;
  const runtimes: Record<string, Runtime> = {
    "machina-oci": { argv: [join(REPO, "dist/bin/machina-oci")], env },
    "machina-oci without machinad": { argv: [join(REPO, "dist/bin/machina-oci")], env: { ...env, MACHINA_OCI_SOCKET: join(o.work, "none.sock") } },
    runc: { argv: ["runc"], env },
    crun: { argv: [join(REPO, "test/conformance/crun-hybrid")], env },
  };
  const names = Object.keys(runtimes);
  const lc: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const each: Record<string, number[][]> = Object.fromEntries(names.map((n) => [n, []]));
  const root = await mkdtemp(join(o.work, "state-"));
  try {
    for (let i = 0; i < o.n + 3; i++) {
      const order = i % 2 ? [...names].reverse() : names;
      for (const name of order) {
        const phases = lifecycle(runtimes[name]!, join(root, name), bundle, `b${i}`);
        if (i < 3) continue; // 3 warm-up rounds
        lc[name]!.push(phases.reduce((a, b) => a + b, 0));
        each[name]!.push(phases);
      }
    }
  } catch (e) {
    await machinad.stop();
    throw e;
  }
  const phases = Object.fromEntries(names.map((n) => [n, [0, 1, 2, 3].map((k) => median(each[n]!.map((p) => p[k]!)))]));

  // podman run --rm, each runtime (an isolated podman store per runtime; the image imported once each)
  const { Podman } = await import("../test/helpers/podman.ts");
  const pm: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  // podman runs the runtime with an environment of its own: "without machinad" through a wrapper
  const withoutMachinad = join(o.work, "machina-oci-without-machinad");
  await writeFile(withoutMachinad, `#!/bin/sh\nMACHINA_OCI_SOCKET=${join(o.work, "none.sock")} exec ${join(REPO, "dist/bin/machina-oci")} "$@"\n`, {
    mode: 0o755,
  });
  const podmen = Object.fromEntries(names.map((n) => [n, new Podman(n === "machina-oci without machinad" ? withoutMachinad : runtimes[n]!.argv[0]!)]));
  try {
    for (const name of names) await podmen[name]!.importRootfs(join(bundle, "rootfs"), "localhost/bench-busybox:latest");
    for (let i = 0; i < o.podmanN + 1; i++) {
      const order = i % 2 ? [...names].reverse() : names;
      for (const name of order) {
        const t = performance.now();
        const r = await podmen[name]!.run(["run", "--rm", "--network=none", "localhost/bench-busybox:latest", "/bin/true"]);
        const ms = performance.now() - t;
        if (r.code !== 0) throw new Error(`podman run with ${name}: exit ${r.code}: ${r.stderr}`);
        if (i > 0) pm[name]!.push(ms);
      }
    }
  } finally {
    for (const p of Object.values(podmen)) await p.cleanup();
    await machinad.stop();
    await rm(root, { recursive: true, force: true });
    await rm(bundle, { recursive: true, force: true });
  }
  return { n: o.n, lifecycle: lc, phases, podman: pm };
}

export function renderOci(r: OciBenchResult, factsLine: string): string {
  const f1 = (x: number) => x.toFixed(1);
  const f2 = (x: number) => x.toFixed(2);
  const m = (xs: number[]) => median(xs);
  const lc = r.lifecycle;
  const ratioRunc = m(lc["machina-oci"]!) / m(lc.runc!);
  const ratioCrun = m(lc["machina-oci"]!) / m(lc.crun!);
  return [
    factsLine,
    "",
    `machina-oci is \`dist/bin/machina-oci\` as scripts/setup installs it: the native front end (native/front.c) served by machinad's planner (\`dist/bin/machinad\` on its default socket, started by this benchmark with a state directory of its own); *without machinad* the same front end runs the full Bun program (\`dist/libexec/machina-oci\`; under podman through a one-line \`sh\` wrapper that sets \`MACHINA_OCI_SOCKET\` to a missing socket, as podman runs the runtime with an environment of its own). \`create --pid-file\`, \`start\`, wait for the init (the benchmark is its subreaper, as a containerd shim is), \`delete\` of \`/bin/true\` in the busybox bundle (read-only root, \`runc spec\`'s defaults otherwise). N = ${r.n} each (after 3 warm-up rounds), alternating; medians in ms. crun runs through \`test/conformance/crun-hybrid\` (its own mount namespace to hide the hybrid host's cgroup2 controllers; that \`unshare\` costs crun ~2 ms).`,
    "",
    "| runtime | create+start+wait+delete | create | start | wait | delete |",
    "|---|---:|---:|---:|---:|---:|",
    ...Object.entries(lc).map(([k, v]) => `| ${k} | ${f1(m(v))} | ${(r.phases?.[k] ?? []).map(f1).join(" | ")} |`),
    `| **ratio machina-oci/runc** | **${f2(ratioRunc)}** | | | | |`,
    `| **ratio machina-oci/crun** | **${f2(ratioCrun)}** | | | | |`,
    "",
    `\`podman run --rm --network=none IMAGE /bin/true\` (podman 4.3, cgroupfs, an image imported from the busybox rootfs), N = ${r.podman["machina-oci"]!.length} each, alternating; medians in ms:`,
    "",
    "| runtime | podman run --rm, ms |",
    "|---|---:|",
    ...Object.entries(r.podman).map(([k, v]) => `| ${k} | ${f1(m(v))} |`),
    "",
    `Targets: ≤ 0.5× runc: **${ratioRunc <= 0.5 ? "PASS" : "FAIL"}** (${f2(ratioRunc)}); faster than crun: **${ratioCrun < 1 ? "PASS" : "FAIL"}** (${f2(ratioCrun)}).`,
  ].join("\n");
}

if (import.meta.main) {
  const quick = process.argv.includes("--quick");
  await mkdir("/var/tmp", { recursive: true });
  const work = await mkdtemp("/var/tmp/machina-bench-oci-");
  try {
    const r = await benchOci({ n: quick ? 10 : 30, podmanN: quick ? 3 : 10, work });
    const facts = await factsLine(`bun bench/oci.ts${quick ? " --quick" : ""}`, [versionLine(["runc", "--version"]), versionLine(["crun", "--version"])]);
    const body = renderOci(r, facts);
    console.log(body);
    await writeBlock(join(REPO, "BENCHMARKS.md"), "oci", body, "machina-oci against runc and crun (target: ≤ 0.5× runc, faster than crun)");
    saveResult("oci", r);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
