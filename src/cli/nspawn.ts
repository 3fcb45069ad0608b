/** machina-nspawn: parse, plan, then replace this process by the helper that runs the container. */
import { err, out } from "./output.ts";
import { MachinaError, renderError } from "../errors.ts";
import { gatherHostFacts, gatherImageFacts } from "../host/facts.ts";
import { LinuxHost } from "../host/linux.ts";
import { gatherUsernsFacts } from "../host/userns-facts.ts";
import type { Host } from "../host/host.ts";
import { addSweepHook, sweepStale } from "../machine/registry.ts";
import { helperNetOps, planNetwork } from "../net/plan.ts";
import { setupNetwork, sweepNetworks, teardownNetwork } from "../net/setup.ts";
import { wantsManagedNetwork } from "../spec/network.ts";
import { findImage } from "../image/pool.ts";
import { setupRawRoot, sweepRawMounts, type RawRoot } from "../image/raw.ts";
import { populateFromTemplate } from "../image/template.ts";
import { paths, REPO_ROOT } from "../paths.ts";
import { loadSettingsFile, lookupMachineName } from "../settings/lookup.ts";
import { parseNspawnCommandLine } from "../settings/nspawn-cli.ts";
import type { Settings } from "../settings/settings.ts";
import { buildSpec, DEFAULT_PATH } from "../spec/build.ts";
import { encodeSpec, specRecords } from "../spec/wire.ts";
import { NSPAWN_HELP, NSPAWN_VERSION_TEXT } from "./nspawn-help.ts";

const PROG = "machina-nspawn";

/** The host's machine id (nspawn derives the MACs from it). */
function hostMachineId(host: Host): string {
  const id = host.readFile("/etc/machine-id")?.trim() ?? "";
  if (!/^[0-9a-f]{32}$/.test(id))
    throw new MachinaError("E_NOT_FOUND", "the host has no machine id (/etc/machine-id): cannot derive stable MAC addresses", { path: "/etc/machine-id" }, "systemd-machine-id-setup");
  return id;
}

/**
 * -D or -i, else the image named by -M in the pool (a directory or subvolume, or NAME.raw, as
 * nspawn), else the current directory.
 */
function chooseRoot(settings: Settings, host: Host, pool: string[]): { directory: string } | { image: string } {
  if (settings.image !== undefined) return { image: settings.image };
  if (settings.directory !== undefined) return { directory: settings.directory };
  if (settings.machine !== undefined) {
    const found = findImage(host, pool, settings.machine);
    if (found !== undefined) return found.type === "raw" ? { image: found.path } : { directory: found.path };
    throw new MachinaError("E_NOT_FOUND", `no image "${settings.machine}" in ${pool.join(", ")}`, { machine: settings.machine }, "use -D DIRECTORY or -i IMAGE");
  }
  return { directory: process.cwd() };
}

export function main(argv: string[], host: Host = new LinuxHost()): number {
  try {
    const parsed = parseNspawnCommandLine(argv, host.env(), process.cwd());
    if (parsed.action === "help") {
      out(NSPAWN_HELP);
      return 0;
    }
    if (parsed.action === "list") {
      out(parsed.lines.map((l) => `${l}\n`).join(""));
      return 0;
    }
    if (parsed.action === "version") {
      out(NSPAWN_VERSION_TEXT);
      return 0;
    }
    const env = host.env();
    const p = paths(env);
    const chosen = chooseRoot(parsed.settings, host, p.pool);
    if ("image" in chosen) parsed.settings.image = chosen.image;
    else parsed.settings.directory = chosen.directory;
    if (parsed.settings.template !== undefined && "directory" in chosen) populateFromTemplate(host, p.stateDir, parsed.settings.template, chosen.directory);
    // The machine's .nspawn file (if any), merged under (or, with --settings=override, over)
    // the command line. Its warnings are shown even with -q, as systemd-nspawn's are.
    const loaded = loadSettingsFile(host, parsed.settings);
    for (const w of loaded.warnings) err(`${PROG}: ${w}\n`);
    const settings = loaded.settings;
    // -i: attach and mount the raw image (src/image/raw.ts); the helper detaches it at exit.
    let raw: RawRoot | undefined;
    if (settings.image !== undefined) {
      sweepRawMounts(host, p.stateDir, Date.now());
      settings.machine ??= lookupMachineName(settings);
      if (settings.machine === undefined) throw new MachinaError("E_INVALID", `cannot derive a machine name from "${settings.image}"`, { path: settings.image }, "use -M NAME");
      raw = setupRawRoot(host, p.stateDir, settings.image, settings.readOnly, settings.machine);
      settings.directory = raw.root;
    }
    try {
      const directory = settings.directory!;
      const hostFacts = gatherHostFacts(host, p.stateDir);
      const image = gatherImageFacts(host, directory, hostFacts.timezone);
      if (settings.privateUsers.mode !== "no") image.userns = gatherUsernsFacts(host, image.root, hostFacts.stateDir);
      const statusFd = env["MACHINA_STATUS_FD"] ? Number(env["MACHINA_STATUS_FD"]) : undefined;
      // The supervisor runs it with an empty environment: give it a PATH (ip, nft, umount, dnsmasq).
      const netTeardown = ["/usr/bin/env", `PATH=${DEFAULT_PATH}`, process.execPath, `${REPO_ROOT}/bin/machina-net`, "teardown", "--state-dir", p.stateDir];
      const spec = buildSpec(settings, image, hostFacts, {
        prog: PROG, netTeardown, ...(statusFd !== undefined ? { statusFd } : {}), ...(raw !== undefined ? { hostUmounts: raw.umounts } : {}),
      });
      if (env["MACHINA_PRINT_SPEC"] === "1") {
        // Debugging aid: show the plan instead of running it.
        out(specRecords(spec).map(([name, args]) => JSON.stringify([name, ...args])).join("\n") + "\n");
        raw?.release();
        return 0;
      }
      if (host.lstat(p.helper) === undefined)
        throw new MachinaError("E_NOT_FOUND", `helper "${p.helper}" not found`, { path: p.helper }, "build it with: make -C native");
      // Entries of supervisors that were killed outright: remove them (and their cgroups) now.
      addSweepHook(sweepNetworks);
      sweepStale(host, p.stateDir, Date.now());
      // The network (src/net/): prepared here, joined by the helper, undone by its on_exit command.
      let netUp = false;
      if (wantsManagedNetwork(settings)) {
        const lock = host.tryLock(`${p.stateDir}/machines/${spec.machine}/lock`);
        if (lock === undefined && host.lstat(`${p.stateDir}/machines/${spec.machine}/lock`) !== undefined)
          throw new MachinaError("E_BUSY", `machine "${spec.machine}" is already running`, { machine: spec.machine });
        lock?.release();
        const plan = planNetwork(settings, spec.machine, hostMachineId(host), p.stateDir);
        const rec = setupNetwork(host, p.stateDir, plan);
        netUp = true;
        // The main veth: made by the helper after the clone, in the container's own namespace.
        spec.netOps = helperNetOps(plan, rec.addr, plan.ports.length > 0 && plan.bridge === undefined);
        if (rec.nftPrestart !== undefined) spec.prestart = rec.nftPrestart;
      }
      if (!settings.quiet) {
        err(`Spawning container ${spec.machine} on ${spec.root}.\n`);
        if (spec.console === "interactive") err("Press ^] three times within 1s to kill container.\n");
      }
      try {
        return host.execWithSpec(p.helper, ["machina-helper", "run", "--spec-fd"], encodeSpec(spec));
      } catch (e) {
        if (netUp) teardownNetwork(host, p.stateDir, spec.machine);
        throw e;
      }
    } catch (e) {
      raw?.release(); // setup failed before the helper took the mounts over
      throw e;
    }
  } catch (error) {
    err(renderError(PROG, error) + "\n");
    return 1;
  }
}
