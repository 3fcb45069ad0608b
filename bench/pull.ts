import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as net from "node:net";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { factsLine, median, REPO, versionLine, writeBlock, saveResult } from "./common.ts";

export interface PullBenchResult {
  n: number;
  imageBytes: number;
  machinaS: number[];
  podmanS: number[];
  skopeoS: number[];
  /** skopeo copy, then umoci unpack of what it wrote */
  skopeoUmociS: number[];
  /** machina: a pull into a new name with every blob already in the cache (unpack only) */
  warmCacheS: number[];
  /** a pull of an image already present at the registry's digest: machina (up to date), podman */
  presentMachinaS: number[];
  presentPodmanS: number[];
  ratio: number;
}

async function run(cmd: string[], env?: Record<string, string>): Promise<number> {
  const t = performance.now();
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: env ?? (process.env as Record<string, string>) });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err.trim()}`);
  return (performance.now() - t) / 1000;
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => ok(port));
    });
  });
}

async function startRegistry(dir: string): Promise<{ addr: string; proc: Subprocess }> {
  const port = await freePort();
  const config = join(dir, "registry.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${dir}/registry`,
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "",
    ].join("\n"),
  );
  const proc = Bun.spawn(["docker-registry", "serve", config], { stdout: "ignore", stderr: "ignore" });
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(`http://127.0.0.1:${port}/v2/`).then(
        () => true,
        () => false,
      )
    )
      return { addr: `127.0.0.1:${port}`, proc };
    await Bun.sleep(100);
  }
  proc.kill();
  throw new Error("docker-registry did not start");
}

export async function benchPull(o: { machinactl: string; debian: string; workDir: string; n: number }): Promise<PullBenchResult> {
  const dir = await mkdtemp(join(o.workDir, "pull-"));
  let registry: Subprocess | undefined;
  try {
    // the image: the Debian fixture, exported as OCI and pushed with gzip layers
    const pool = join(dir, "pool");
    await mkdir(pool);
    const base = { ...(process.env as Record<string, string>), MACHINA_POOL: pool, MACHINA_STATE_DIR: join(dir, "state") };
    await run(["cp", "-a", "--reflink=auto", o.debian, join(pool, "debian")]);
    await run([o.machinactl, "-q", "export-oci", "debian", join(dir, "layout")], base);
    await rm(join(pool, "debian"), { recursive: true, force: true });
    const policy = join(dir, "policy.json");
    await writeFile(policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
    const r = await startRegistry(dir);
    registry = r.proc;
    const ref = `${r.addr}/bench/debian:1`;
    await run([
      "skopeo",
      "--policy",
      policy,
      "copy",
      "--quiet",
      "--dest-tls-verify=false",
      "--dest-compress",
      `oci:${join(dir, "layout")}:latest`,
      `docker://${ref}`,
    ]);
    const res = await fetch(`http://${r.addr}/v2/bench/debian/manifests/1`, {
      headers: { Accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" },
    });
    const manifest = (await res.json()) as { layers: Array<{ size: number }> };
    const imageBytes = manifest.layers.reduce((n, l) => n + l.size, 0);

    const machinaS: number[] = [];
    const podmanS: number[] = [];
    const skopeoS: number[] = [];
    const skopeoUmociS: number[] = [];
    for (let i = 0; i < o.n + 1; i++) {
      const steps: Array<() => Promise<void>> = [
        async () => {
          const cache = join(dir, "oci-cache");
          const env = { ...base, MACHINA_OCI_CACHE: cache };
          const s = await run([o.machinactl, "-q", "pull-oci", "--tls-verify=no", ref, `img${i}`], env);
          if (i > 0) machinaS.push(s);
          await rm(join(pool, `img${i}`), { recursive: true, force: true });
          await rm(join(pool, `img${i}.nspawn`), { force: true });
          await rm(cache, { recursive: true, force: true });
        },
        async () => {
          const root = join(dir, "podman");
          // podman refuses a runroot longer than 50 characters
          const runroot = await mkdtemp("/run/mbp-");
          const podman = ["podman", "--root", join(root, "root"), "--runroot", runroot, "--storage-driver", "overlay"];
          const s = await run([...podman, "pull", "-q", "--tls-verify=false", ref]);
          if (i > 0) podmanS.push(s);
          await run([...podman, "rmi", "-a", "-f"]);
          await run([...podman, "system", "reset", "-f"]).catch(() => 0);
          await rm(root, { recursive: true, force: true });
          await rm(runroot, { recursive: true, force: true });
        },
        async () => {
          const target = join(dir, "skopeo-out");
          const bundle = join(dir, "umoci-bundle");
          const s = await run(["skopeo", "--policy", policy, "copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${target}:latest`]);
          const u = await run(["umoci", "--log=error", "unpack", "--image", `${target}:latest`, bundle]);
          if (i > 0) {
            skopeoS.push(s);
            skopeoUmociS.push(s + u);
          }
          await rm(target, { recursive: true, force: true });
          await rm(bundle, { recursive: true, force: true });
        },
      ];
      if (i % 2) steps.reverse();
      for (const s of steps) await s(); // i = 0 is the warm-up round
      Bun.spawnSync(["sync"]);
    }

    // Warm: one image pulled by each, kept; blobs kept in machina's cache.
    const warmCache = join(dir, "warm-cache");
    const warmEnv = { ...base, MACHINA_OCI_CACHE: warmCache };
    await run([o.machinactl, "-q", "pull-oci", "--tls-verify=no", ref, "present"], warmEnv);
    const runroot = await mkdtemp("/run/mbp-");
    const podman = ["podman", "--root", join(dir, "podman-warm"), "--runroot", runroot, "--storage-driver", "overlay"];
    await run([...podman, "pull", "-q", "--tls-verify=false", ref]);
    const warmCacheS: number[] = [];
    const presentMachinaS: number[] = [];
    const presentPodmanS: number[] = [];
    try {
      for (let i = 0; i < o.n + 1; i++) {
        const steps: Array<() => Promise<void>> = [
          async () => {
            const s = await run([o.machinactl, "-q", "pull-oci", "--tls-verify=no", ref, "present"], warmEnv);
            if (i > 0) presentMachinaS.push(s);
          },
          async () => {
            const s = await run([...podman, "pull", "-q", "--tls-verify=false", ref]);
            if (i > 0) presentPodmanS.push(s);
          },
          async () => {
            const s = await run([o.machinactl, "-q", "pull-oci", "--tls-verify=no", ref, `warm${i}`], warmEnv);
            if (i > 0) warmCacheS.push(s);
            await rm(join(pool, `warm${i}`), { recursive: true, force: true });
            await rm(join(pool, `warm${i}.nspawn`), { force: true });
            Bun.spawnSync(["sync"]);
          },
        ];
        if (i % 2) steps.reverse();
        for (const s of steps) await s();
      }
    } finally {
      await run([...podman, "rmi", "-a", "-f"]).catch(() => 0);
      await run([...podman, "system", "reset", "-f"]).catch(() => 0);
      await rm(runroot, { recursive: true, force: true });
    }
    return {
      n: o.n,
      imageBytes,
      machinaS,
      podmanS,
      skopeoS,
      skopeoUmociS,
      warmCacheS,
      presentMachinaS,
      presentPodmanS,
      ratio: median(machinaS) / median(podmanS),
    };
  } finally {
    registry?.kill();
    await registry?.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderPull(r: PullBenchResult, factsLine: string): string {
  const f2 = (x: number) => x.toFixed(2);
  const ok = r.ratio <= 1.0;
  return [
    factsLine,
    "",
    `The Debian fixture image as one gzip layer of ${(r.imageBytes / 1024 / 1024).toFixed(0)} MiB in a local docker-registry (127.0.0.1, HTTP). N = ${r.n} cold pulls each (after 1 warm-up), alternating; medians of wall time.`,
    "",
    "| command | does | s |",
    "|---|---|---:|",
    `| \`machinactl pull-oci\` | download, verify, unpack into the pool, \`.nspawn\` from the config | ${f2(median(r.machinaS))} |`,
    `| \`podman pull\` | download, verify, unpack into containers/storage (overlay) | ${f2(median(r.podmanS))} |`,
    `| \`skopeo copy docker://… oci:…\` | download and verify only | ${f2(median(r.skopeoS))} |`,
    `| \`skopeo copy\` + \`umoci unpack\` | download, verify, unpack into a bundle | ${f2(median(r.skopeoUmociS))} |`,
    `| **ratio machina/podman time** | | **${f2(r.ratio)}** |`,
    "",
    `Target ≤ 1.00: **${ok ? "PASS" : "FAIL"}**.`,
    "",
    `Warm, N = ${r.n} each (after 1 warm-up), alternating:`,
    "",
    "| command | does | s |",
    "|---|---|---:|",
    `| \`machinactl pull-oci REF NEW\`, blobs cached | unpack only (no blob downloaded) | ${f2(median(r.warmCacheS))} |`,
    `| \`machinactl pull-oci REF NAME\`, NAME present | manifests only: "up to date" | ${f2(median(r.presentMachinaS))} |`,
    `| \`podman pull REF\`, image present | manifests only | ${f2(median(r.presentPodmanS))} |`,
    `| **ratio machina/podman time, image present** | | **${f2(median(r.presentMachinaS) / median(r.presentPodmanS))}** |`,
    "",
    `A pull of an image already present in well under a second: **${median(r.presentMachinaS) < 0.5 ? "PASS" : "FAIL"}** (${f2(median(r.presentMachinaS))} s).`,
  ].join("\n");
}

if (import.meta.main) {
  const { ensureDebianImage } = await import("../test/fixtures/images.ts");
  const quick = process.argv.includes("--quick");
  const debian = await ensureDebianImage();
  const work = await mkdtemp("/var/tmp/machina-bench-pull-");
  try {
    const r = await benchPull({ machinactl: join(REPO, "bin/machinactl"), debian, workDir: work, n: quick ? 3 : 7 });
    const facts = await factsLine(`bun bench/pull.ts${quick ? " --quick" : ""}`, [versionLine(["podman", "--version"])]);
    const body = renderPull(r, facts);
    console.log(body);
    await writeBlock(join(REPO, "BENCHMARKS.md"), "pull", body, "pull-oci from a registry (target: ≤ 1.0× podman pull)");
    saveResult("pull", r);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
