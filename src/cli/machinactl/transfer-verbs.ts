/**
 * machinactl's image transfer verbs: import-tar, import-raw, import-fs, import-oci, export-tar,
 * export-raw, export-oci, pull-tar, pull-raw, list-transfers, cancel-transfer (and bootstrap). Transfers run in the
 * foreground of the command; each is recorded in $MACHINA_STATE_DIR/transfers/ID.json with its
 * pid, so list-transfers and cancel-transfer (SIGTERM: the transfer undoes everything) work
 * from other processes.
 */
import type { SingleBar } from "cli-progress";
import { MachinaError } from "../../errors.ts";
import {
  cancelTransfer,
  machinadOnly,
  listTransfers,
  registerTransfer,
  transferJson,
  unregisterTransfer,
  updateTransfer,
  type TransferRecord,
  type TransferType,
} from "../../image/transfer-registry.ts";
import type { Progress, TransferContext } from "../../image/transfer.ts";
import { formatBytes, json, table, warnIfNotMachineName } from "./format.ts";
import type { Verb, VerbContext } from "./verb.ts";

// The transfers' code (archives, registries, OCI, bootstrap, the progress bar) is loaded by the verb
// that runs one (dynamic imports), not by every machinactl command.
const imageTransfer = () => import("../../image/transfer.ts");
const ociTransfer = () => import("../../oci/transfer.ts");

/** --authfile, or the file podman would read (src/oci/auth.ts defaultAuthFile). */
async function authFileOption(ctx: VerbContext): Promise<{ authFile?: string }> {
  const { defaultAuthFile } = await import("../../oci/auth.ts");
  const authFile = ctx.options.authFile ?? defaultAuthFile(ctx.env, process.getuid?.() ?? 0, (p) => ctx.host.lstat(p) === "file");
  return authFile === undefined ? {} : { authFile };
}

/** Progress on stderr: a bar on a terminal (`Bar`: cli-progress's, loaded by the caller), plain lines otherwise, nothing with -q. */
function makeProgress(ctx: VerbContext, Bar: typeof SingleBar | undefined, onFraction: (f: number | null) => void): Progress {
  const quiet = ctx.options.quiet;
  const tty = Bar !== undefined;
  let bar: SingleBar | undefined;
  let total: number | undefined;
  let what = "";
  let lastLine = -1;
  let lastRecord = 0;
  return {
    start(w, t) {
      this.stop();
      what = w;
      total = t;
      lastLine = -1;
      if (quiet) return;
      if (tty) {
        bar = new Bar!({
          format: total !== undefined ? `${w} [{bar}] {percentage}% {done}/{all} {rate}/s ETA {eta_formatted}` : `${w} {done} {rate}/s`,
          barsize: 30,
          hideCursor: true,
          clearOnComplete: false,
          stream: process.stderr,
          fps: 5,
        });
        bar.start(total ?? 0, 0, { done: formatBytes(0), all: formatBytes(total ?? 0), rate: formatBytes(0) });
      }
    },
    update(done) {
      const now = Date.now();
      if (total !== undefined && total > 0 && now - lastRecord > 500) {
        lastRecord = now;
        onFraction(Math.min(1, done / total));
      }
      if (quiet) return;
      if (bar) {
        const secs = Math.max(0.001, (now - (bar as unknown as { startTime: number }).startTime) / 1000);
        bar.update(total !== undefined ? Math.min(done, total) : done, {
          done: formatBytes(done),
          all: formatBytes(total ?? 0),
          rate: formatBytes(Math.round(done / secs)),
        });
      } else if (total !== undefined && total > 0) {
        const pct = Math.floor((100 * Math.min(done, total)) / total / 10) * 10;
        if (pct > lastLine) {
          lastLine = pct;
          ctx.err(`${what}: ${pct}% (${formatBytes(done)} of ${formatBytes(total)})\n`);
        }
      }
    },
    stop() {
      if (bar) {
        bar.stop();
        bar = undefined;
      }
    },
  };
}

/** Run one transfer in this process: record, progress, SIGTERM/SIGINT -> cancel (undo everything). */
async function runTransfer(ctx: VerbContext, type: TransferType, remote: string, local: string, body: (t: TransferContext) => Promise<void>): Promise<number> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  let rec: TransferRecord | undefined;
  try {
    rec = registerTransfer(ctx.host, ctx.paths.stateDir, { type, remote, local });
    const r = rec;
    const tty = !ctx.options.quiet && ctx.host.isatty(2) && ctx.env["TERM"] !== "dumb";
    const Bar = tty ? (await import("cli-progress")).SingleBar : undefined;
    const progress = makeProgress(ctx, Bar, (f) => updateTransfer(ctx.host, ctx.paths.stateDir, r, f));
    await body({
      host: ctx.host,
      paths: ctx.paths,
      env: ctx.env,
      progress,
      signal: controller.signal,
      log: (line) => {
        if (!ctx.options.quiet) ctx.err(line + "\n");
      },
    });
    return 0;
  } catch (e) {
    if (controller.signal.aborted) throw new MachinaError("E_SYSTEM", `transfer ${rec?.id ?? ""} cancelled`.replace("  ", " "));
    throw e;
  } finally {
    if (rec) unregisterTransfer(ctx.host, ctx.paths.stateDir, rec.id);
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

const importOpts = (ctx: VerbContext) => ({ force: ctx.options.force, readOnly: ctx.options.readOnly });

const done = (ctx: VerbContext, text: string) => {
  if (!ctx.options.quiet) ctx.err(text + "\n");
};

/**
 * A finished transfer: with --json its result on stdout (as the image verbs do), else the line on
 * stderr; `made`: the new image, whose name is checked as a machine name.
 */
const finished = (ctx: VerbContext, text: string, value: Record<string, unknown>, made?: string) => {
  if (made !== undefined) warnIfNotMachineName(ctx.err, made);
  if (ctx.options.json !== "off") ctx.out(json(value, ctx.options));
  else done(ctx, text);
};

/** import-tar, import-raw, import-fs: SOURCE [NAME] into the pool, as a transfer. */
function importVerb(name: "import-tar" | "import-raw" | "import-fs", usage: string, summary: string, importer: "importTar" | "importRaw" | "importFs"): Verb {
  return {
    name,
    options: ["force", "read-only"],
    usage,
    summary,
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [source, image]) =>
      runTransfer(ctx, name, source!, image ?? "", async (t) => {
        const made = await (await imageTransfer())[importer](t, source!, image, importOpts(ctx));
        finished(ctx, `Imported "${source}" as image "${made}".`, { image: made, from: source! }, made);
      }),
  };
}

/** pull-tar and pull-raw: machinectl's verbs, one shape. */
function pullVerb(kind: "tar" | "raw", summary: string): Verb {
  const name = `pull-${kind}` as const;
  return {
    name,
    options: ["verify", "force", "read-only"],
    usage: `${name} URL [NAME]`,
    summary,
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [url, image]) =>
      runTransfer(ctx, name, url!, image ?? "", async (t) => {
        const made = await (await imageTransfer()).pullImage(t, kind, url!, image, { ...importOpts(ctx), verify: ctx.options.verify ?? "signature" });
        finished(ctx, `Downloaded "${url}" as image "${made}".`, { image: made, from: url! }, made);
      }),
  };
}

/** --platform, when given (import-oci, pull-oci). */
const platformOption = (ctx: VerbContext) => (ctx.options.platform !== undefined ? { platform: ctx.options.platform } : {});

/** The last line of import-oci and pull-oci: what was made, from which digest and platform. */
function ociFinished(
  ctx: VerbContext,
  what: string,
  from: string,
  r: { image: string; digest: string; platform: string; reference?: string | undefined; upToDate?: boolean },
): void {
  finished(
    ctx,
    r.upToDate === true
      ? `Image "${r.image}" is up to date with "${r.reference ?? from}" (${r.digest}, ${r.platform}).`
      : `${what} (${r.digest}, ${r.platform}) as image "${r.image}".`,
    { image: r.image, from, digest: r.digest, platform: r.platform, reference: r.reference ?? null, upToDate: r.upToDate === true },
    r.image,
  );
}

export const TRANSFER_VERBS: Verb[] = [
  importVerb("import-tar", "import-tar FILE [NAME]", "Import a local tar container image", "importTar"),
  importVerb("import-raw", "import-raw FILE [NAME]", "Import a local raw container or VM image", "importRaw"),
  importVerb("import-fs", "import-fs DIRECTORY [NAME]", "Import a local directory container image", "importFs"),
  {
    name: "import-oci",
    options: ["force", "read-only", "platform"],
    usage: "import-oci PATH[:REF] [NAME]",
    summary: "Import an OCI image layout (directory or tar) or a docker save archive",
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [path, name]) =>
      runTransfer(ctx, "import-oci", path!, name ?? "", async (t) => {
        const r = await (await ociTransfer()).importOci(t, path!, name, { ...importOpts(ctx), ...platformOption(ctx) });
        ociFinished(ctx, `Imported "${path}"`, path!, r);
      }),
  },
  {
    name: "pull-oci",
    options: ["force", "read-only", "platform", "tls-verify", "cert-dir", "authfile"],
    usage: "pull-oci REF [NAME]",
    summary: "Download an OCI image from a registry ([REGISTRY[:PORT]/]REPOSITORY[:TAG|@DIGEST])",
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [ref, name]) =>
      runTransfer(ctx, "pull-oci", ref!, name ?? "", async (t) => {
        const r = await (await ociTransfer()).pullOci(t, ref!, name, {
          ...importOpts(ctx),
          ...platformOption(ctx),
          tlsVerify: ctx.options.tlsVerify,
          ...(ctx.options.certDir !== undefined ? { certDir: ctx.options.certDir } : {}),
          ...(await authFileOption(ctx)),
          cacheDir: (await import("../../oci/blob-cache.ts")).ociCacheDir(ctx.env),
        });
        ociFinished(ctx, `Pulled "${r.reference ?? ref}"`, ref!, r);
      }),
  },
  {
    name: "export-tar",
    options: ["format", "force"],
    usage: "export-tar NAME [FILE]",
    summary: "Export a local container image as a tar file",
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [name, file]) =>
      runTransfer(ctx, "export-tar", file ?? "-", name!, async (t) => {
        await (await imageTransfer()).exportImage(t, "tar", name!, file, { format: ctx.options.format, force: ctx.options.force });
        if (file !== undefined) finished(ctx, `Exported image "${name}" to "${file}".`, { image: name!, file });
      }),
  },
  {
    name: "export-raw",
    options: ["format", "force"],
    usage: "export-raw NAME [FILE]",
    summary: "Export a local raw image",
    section: "Image transfer",
    minArgs: 1,
    maxArgs: 2,
    run: (ctx, [name, file]) =>
      runTransfer(ctx, "export-raw", file ?? "-", name!, async (t) => {
        await (await imageTransfer()).exportImage(t, "raw", name!, file, { format: ctx.options.format, force: ctx.options.force });
        if (file !== undefined) finished(ctx, `Exported image "${name}" to "${file}".`, { image: name!, file });
      }),
  },
  {
    name: "export-oci",
    options: ["force"],
    usage: "export-oci NAME PATH",
    summary: "Export a directory image as an OCI image layout (a directory, or a tar when PATH ends in .tar)",
    section: "Image transfer",
    minArgs: 2,
    maxArgs: 2,
    run: (ctx, [name, path]) =>
      runTransfer(ctx, "export-oci", path!, name!, async (t) => {
        await (await ociTransfer()).exportOci(t, name!, path!, { force: ctx.options.force });
        finished(ctx, `Exported image "${name}" to "${path}".`, { image: name!, path: path! });
      }),
  },
  pullVerb("tar", "Download a tar container image"),
  pullVerb("raw", "Download a raw container or VM image"),
  {
    name: "bootstrap",
    options: ["root-password", "mirror", "arch", "force"],
    usage: "bootstrap NAME DISTRO [RELEASE]",
    summary: "Build a new image with debootstrap/mmdebstrap or dnf (debian, ubuntu, fedora)",
    section: "Image transfer",
    minArgs: 2,
    maxArgs: 3,
    // A transfer like the imports (list-transfers, cancel-transfer); its progress is the build tool's own lines.
    run: (ctx, [name, distro, release]) =>
      runTransfer(ctx, "bootstrap", [distro!, release, ctx.options.mirror].filter((x) => x !== undefined).join(" "), name!, async (t) => {
        await (await import("../../image/bootstrap.ts")).bootstrap(
          { host: ctx.host, paths: ctx.paths, force: ctx.options.force, log: t.log, signal: t.signal },
          { name: name!, distro: distro!, release, mirror: ctx.options.mirror, arch: ctx.options.arch, rootPassword: ctx.options.rootPassword },
        );
        finished(ctx, `Bootstrapped image "${name}".`, { image: name!, distro: distro!, ...(release !== undefined ? { release } : {}) }, name!);
      }),
  },
  {
    name: "list-transfers",
    options: ["no-legend"],
    usage: "list-transfers",
    summary: "Show list of transfers in progress",
    section: "Image transfer",
    minArgs: 0,
    maxArgs: 0,
    run: (ctx) => {
      const rows = listTransfers(ctx.host, ctx.paths.stateDir);
      if (ctx.options.json !== "off") {
        ctx.out(json(rows.map(transferJson), ctx.options));
        return 0;
      }
      ctx.out(
        table(
          rows,
          [
            { header: "ID", value: (r) => String(r.id) },
            { header: "PERCENT", value: (r) => (r.progress === null ? "n/a" : `${Math.floor(r.progress * 100)}%`) },
            { header: "TYPE", value: (r) => r.type },
            { header: "LOCAL", value: (r) => r.local },
            { header: "REMOTE", value: (r) => r.remote },
          ],
          ctx.options,
          ["transfer", "transfers"],
        ),
      );
      return 0;
    },
  },
  {
    name: "cancel-transfer",
    options: [],
    usage: "cancel-transfer ID...",
    summary: "Cancel a transfer",
    section: "Image transfer",
    minArgs: 1,
    maxArgs: Infinity,
    run: async (ctx, ids) => {
      for (const id of ids) {
        if (!/^[0-9]+$/.test(id)) throw new MachinaError("E_INVALID", `invalid transfer id ${JSON.stringify(id)}`);
        // one of machinad's jobs (a pull or bootstrap through its API): machinad cancels it
        const found = await cancelTransfer(ctx.host, ctx.paths.stateDir, Number(id), async (job) => {
          const client = await (await import("../../client/select.ts")).daemonClient(ctx.host, ctx.env);
          if (client === undefined) throw machinadOnly(Number(id), job);
          await client.cancelTransfer(Number(id));
          return true;
        });
        if (!found) throw new MachinaError("E_NOT_FOUND", `no transfer with id ${id}`);
      }
      return 0;
    },
  },
];
