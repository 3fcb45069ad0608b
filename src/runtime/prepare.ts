/**
 * Everything between "the user asked for this container" and "the helper may run it", shared
 * by `machina-nspawn` (which then execs the helper) and background starts (`machinactl start`,
 * machinad, which spawn it): choosing the root, --template, the .nspawn file, -i raw images,
 * host and image facts, the spec, removing stale entries, and the network. Whatever this sets
 * up before the helper takes over is registered in a Reverter (src/reverter.ts): undone when a
 * later step fails, or by `abandon()` when the start does not happen.
 */
import { requireHelper } from "./helper.ts";
import { lockHeld } from "../host/locks.ts";
import { machineLockPath } from "../machine/registry.ts";
import { MachinaError } from "../errors.ts";
import { gatherHostFacts, gatherImageFacts } from "../host/facts.ts";
import type { Host } from "../host/host.ts";
import { gatherUsernsFacts } from "../host/userns-facts.ts";
import { planImageLocks } from "../image/in-use.ts";
import { outsideImageWarning } from "../image/origin.ts";
import { findImage } from "../image/pool.ts";
import { setupRawRoot, sweepRawMounts, type RawRoot } from "../image/raw.ts";
import { populateFromTemplate, templateWanted } from "../image/template.ts";
import { helperNetOps, planNetwork } from "../net/plan.ts";
import { setupNetwork, teardownNetwork } from "../net/setup.ts";
import { sweepLeftovers } from "./sweep.ts";
import { ownCommand, type Paths } from "../paths.ts";
import { loadSettingsFile, lookupMachineName } from "../settings/lookup.ts";
import { mergeSettings } from "../settings/merge.ts";
import { mapOciConfig } from "../settings/oci-config.ts";
import { Reverter } from "../reverter.ts";
import type { Settings } from "../settings/settings.ts";
import { buildSpec, DEFAULT_PATH, foreignImage, machineName } from "../spec/build.ts";
import { provideBinfmt, releaseBinfmt } from "./binfmt.ts";
import { machinaEnv } from "../config.ts";
import { wantsManagedNetwork } from "../spec/network.ts";
import type { RunSpec } from "../spec/types.ts";

export interface PrepareOptions {
  prog: string;
  statusFd?: number;
  /** The helper will not be this process (a spawned supervisor): its start time is unknown. */
  detached?: boolean;
  /** Only plan: set up nothing that would need undoing (MACHINA_PRINT_SPEC). */
  planOnly?: boolean;
  /**
   * Planned in a long-lived process for another's (machinad's planner for machina-nspawn's front
   * end): a --template copy, which can take minutes, is not made here but asked for
   * (CopyTemplateFirst, thrown before anything is done); the caller makes it without blocking and
   * plans again.
   */
  resident?: boolean;
  /** Warnings: the .nspawn file's, as soon as it is read (nspawn shows them even with -q), and an image from outside run without -U (not with -q). */
  onWarning?: (warning: string) => void;
}

export interface Prepared {
  spec: RunSpec;
  settings: Settings;
  /**
   * Undo what was set up for the helper, when it will not run after all (newest first, every
   * step even when one fails). Throws an UndoError listing the steps that could not be undone.
   */
  abandon(): void;
  /** abandon() because of `cause`: returns the error to throw — `cause`, with any undo failures added. */
  abandonAfter(cause: unknown): unknown;
}

/** PrepareOptions.resident: the --template copy to make before planning again (nothing was done). */
export class CopyTemplateFirst extends Error {
  constructor(
    readonly template: string,
    readonly directory: string,
    readonly stateDir: string,
  ) {
    super(`--template: "${directory}" is to be copied from "${template}" first`);
  }
}

/** The host's machine id (nspawn derives the MACs from it). */
function hostMachineId(host: Host): string {
  const id = host.readFile("/etc/machine-id")?.trim() ?? "";
  if (!/^[0-9a-f]{32}$/.test(id))
    throw new MachinaError(
      "E_NOT_FOUND",
      "the host has no machine id (/etc/machine-id): cannot derive stable MAC addresses",
      { path: "/etc/machine-id" },
      "systemd-machine-id-setup",
    );
  return id;
}

/**
 * -D or -i, else the image named by -M in the pool (a directory or subvolume, or NAME.raw, as
 * nspawn), else the current directory.
 */
export function chooseRoot(settings: Settings, host: Host, pool: string[], cwd: string): { directory: string } | { image: string } {
  if (settings.image !== undefined) return { image: settings.image };
  if (settings.directory !== undefined) return { directory: settings.directory };
  if (settings.machine !== undefined) {
    const found = findImage(host, pool, settings.machine);
    if (found !== undefined) return found.type === "raw" ? { image: found.path } : { directory: found.path };
    throw new MachinaError(
      "E_NOT_FOUND",
      `no image "${settings.machine}" in ${pool.join(", ")}`,
      { machine: settings.machine },
      "use -D DIRECTORY or -i IMAGE",
    );
  }
  return { directory: cwd };
}

/**
 * --oci-bundle=DIR: read DIR/config.json and merge its settings under the command line (as
 * nspawn: command-line options win; --settings=override lets the bundle win). The bundle is
 * trusted, and no .nspawn file is read for it (as nspawn).
 */
export function loadOciBundle(host: Host, cli: Settings): { settings: Settings; warnings: string[] } {
  const bundle = cli.ociBundle!;
  const path = `${bundle}/config.json`;
  const text = host.readFile(path);
  if (text === undefined)
    throw new MachinaError(
      "E_NOT_FOUND",
      `--oci-bundle: no config.json in "${bundle}"`,
      { flag: "--oci-bundle", path },
      "an OCI bundle is a directory with config.json and the root file system (runc spec makes a config.json)",
    );
  const mapped = mapOciConfig(text, bundle);
  const merged = mergeSettings(cli, mapped, cli.settingsMode === "override" ? "override" : "yes");
  return { settings: merged, warnings: mapped.warnings.map((w) => `${bundle}/${w}`) };
}

export function prepareContainer(host: Host, p: Paths, cliSettings: Settings, cwd: string, options: PrepareOptions): Prepared {
  if (cliSettings.ociBundle !== undefined) {
    const oci = loadOciBundle(host, cliSettings);
    for (const w of oci.warnings) options.onWarning?.(w);
    cliSettings = oci.settings;
  }
  const chosen = chooseRoot(cliSettings, host, p.pool, cwd);
  if ("image" in chosen) cliSettings.image = chosen.image;
  else cliSettings.directory = chosen.directory;
  if (cliSettings.template !== undefined && "directory" in chosen && !options.planOnly) {
    if (options.resident && templateWanted(host, chosen.directory)) throw new CopyTemplateFirst(cliSettings.template, chosen.directory, p.stateDir);
    populateFromTemplate(host, p.stateDir, cliSettings.template, chosen.directory);
  }
  // The machine's .nspawn file (if any), merged under (or, with --settings=override, over)
  // the command line.
  const loaded = cliSettings.ociBundle !== undefined ? { settings: cliSettings, warnings: [] } : loadSettingsFile(host, cliSettings);
  for (const w of loaded.warnings) options.onWarning?.(w);
  const settings = loaded.settings;
  // An image from outside (pulled, imported) as the host's root: say so once (origin.ts).
  const outside = options.planOnly ? undefined : outsideImageWarning(host, settings);
  if (outside !== undefined) options.onWarning?.(outside);

  const r = new Reverter();
  const done = (spec: RunSpec): Prepared => ({
    spec,
    settings,
    abandon: () => {
      const failed = r.revert();
      if (failed !== undefined) throw failed;
    },
    abandonAfter: (cause) => r.fail(cause),
  });
  try {
    // -i: attach and mount the raw image (src/image/raw.ts); the helper detaches it at exit.
    let raw: RawRoot | undefined;
    if (settings.image !== undefined) {
      sweepRawMounts(host, p.stateDir, Date.now());
      settings.machine ??= lookupMachineName(settings);
      if (settings.machine === undefined)
        throw new MachinaError("E_INVALID", `cannot derive a machine name from "${settings.image}"`, { path: settings.image }, "use -M NAME");
      raw = setupRawRoot(host, p.stateDir, settings.image, settings.readOnly, settings.machine);
      r.add(`release the raw image "${settings.image}"`, () => raw!.release());
      settings.directory = raw.root;
    }
    const hostFacts = gatherHostFacts(host, p.stateDir);
    if (options.detached) hostFacts.startTime = undefined;
    const image = gatherImageFacts(host, settings.directory!, hostFacts.timezone);
    if (settings.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(host, image.root, hostFacts.stateDir);
    // The supervisor runs it with an empty environment: give it a PATH (ip, nft, umount, dnsmasq).
    // The token names this start's network for it (a later start of the same name may take over: net/setup.ts).
    const netToken = host.randomHex(8);
    const netTeardown = ["/usr/bin/env", `PATH=${DEFAULT_PATH}`, ...ownCommand("machina-net"), "teardown", "--state-dir", p.stateDir, "--token", netToken];
    // The images it uses stay locked while it runs (src/image/in-use.ts): for -i the .raw file, not its mount.
    const imageLocks = options.planOnly ? [] : planImageLocks(host, p.stateDir, settings);
    // An image of another architecture: the host runs its programs through binfmt_misc and qemu-user
    // (runtime/binfmt.ts); a claim on machina's entry is released by the at-exit command.
    const foreign = foreignImage(image, hostFacts);
    let binfmtClaim = false;
    if (foreign !== undefined && image.program !== undefined && !options.planOnly) {
      const machine = machineName(settings, image);
      const use = provideBinfmt(
        host,
        p.stateDir,
        { arch: foreign, root: image.root, subject: `machine "${machine}" (${image.program.path})`, header: image.program.header },
        machine,
        hostFacts.arch ?? "this",
        machinaEnv(host.env(), "MACHINA_QEMU_DIR"),
      );
      if (use.kind === "machina") binfmtClaim = true;
      if (use.kind === "machina" && use.claimed) r.add(`release the binfmt_misc entry "${use.entry}"`, () => void releaseBinfmt(host, p.stateDir, machine));
    }
    const spec = buildSpec(settings, image, hostFacts, {
      prog: options.prog,
      netTeardown,
      binfmtClaim,
      ...(options.statusFd !== undefined ? { statusFd: options.statusFd } : {}),
      ...(raw !== undefined ? { hostUmounts: raw.umounts, hostRemoves: raw.removes } : {}),
      ...(imageLocks.length > 0 ? { imageLocks } : {}),
    });
    if (options.planOnly) return done(spec);
    requireHelper(host, p.helper);
    // Entries of supervisors that were killed outright: remove them (and their cgroups, networks) now.
    sweepLeftovers(host, p.stateDir, true);
    // The network (src/net/): prepared here, made and joined by the helper, undone by its on_exit command.
    if (wantsManagedNetwork(settings)) {
      if (lockHeld(host, machineLockPath(p.stateDir, spec.machine)))
        throw new MachinaError("E_BUSY", `machine "${spec.machine}" is already running`, { machine: spec.machine });
      const plan = planNetwork(settings, spec.machine, hostMachineId(host), p.stateDir, foreign !== undefined);
      const rec = setupNetwork(host, p.stateDir, plan, netToken);
      r.add(`tear down the network of "${spec.machine}"`, () => teardownNetwork(host, p.stateDir, spec.machine));
      // The main veth: made by the helper after the clone, in the container's own namespace.
      spec.netOps = helperNetOps(plan, rec.addr, plan.ports.length > 0 && plan.bridge === undefined);
      if (rec.nftPrestart !== undefined) spec.prestart = rec.nftPrestart;
      if (rec.nftPrestartUnlessTable !== undefined) spec.prestartUnlessTable = rec.nftPrestartUnlessTable;
    }
    return done(spec);
  } catch (e) {
    throw r.fail(e);
  }
}
