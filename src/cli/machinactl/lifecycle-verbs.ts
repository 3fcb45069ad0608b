/**
 * machinactl start, enable, disable (--now) and logs. start boots the image in the background
 * (src/runtime/launch.ts: machina-nspawn with the managed-machine flags of settings/managed.ts —
 * those of systemd-nspawn@.service: -U, --network-veth, --settings=override — console to
 * $STATE_DIR/logs/NAME.log) and returns once it runs; enable/disable are src/machine/enable.ts;
 * logs is src/machine/logs.ts. On a systemd host with machina-nspawn@.service installed (and the
 * default pool), start and disable --now go through systemd: `systemctl start/stop
 * machina-nspawn@NAME.service`, as machinectl does with systemd-nspawn@.service.
 */
import { machinaEnv } from "../../config.ts";
import { MachinaError } from "../../errors.ts";
import { disableMachine, enableMachine, requireImages } from "../../machine/enable.ts";
import { showLogs } from "../../machine/logs.ts";
import { getMachine, terminateMachine, type Machine } from "../../machine/machines.ts";
import { systemctl, systemdAvailable, unitInstalled, unitName } from "../../machine/systemd.ts";
import { isValidMachineName, MACHINE_NAME_RULE } from "../../settings/values.ts";
import { machineContext } from "./machine-verbs.ts";
import { requireImage } from "../../image/pool.ts";
import { namesVerb, type Verb, type VerbContext } from "./verb.ts";

function checkName(name: string): void {
  if (!isValidMachineName(name)) throw new MachinaError("E_INVALID", `invalid machine name "${name}": expected ${MACHINE_NAME_RULE}`, { machine: name });
}

async function start(ctx: VerbContext, name: string): Promise<void> {
  checkName(name);
  const mctx = machineContext(ctx);
  try {
    getMachine(mctx, name, { all: true });
    throw new MachinaError("E_BUSY", `machine "${name}" is already running`, { machine: name });
  } catch (e) {
    if (!(e instanceof MachinaError) || e.code !== "E_NOT_FOUND") throw e;
  }
  // the launcher (planning, spec, network) is loaded only by the verbs that start a machine
  requireImage(ctx.host, ctx.paths.pool, name);
  const { launchDetached } = await import("../../runtime/launch.ts");
  if (throughSystemd(ctx)) await systemctl(ctx.host, ["start", unitName(name)]);
  else await launchDetached(ctx.host, ctx.paths, { name });
}

/** The unit template is installed on a systemd host, and the pool is the one the unit uses. */
function throughSystemd(ctx: VerbContext): boolean {
  return systemdAvailable(ctx.host, ctx.env) && unitInstalled(ctx.host, ctx.env) && machinaEnv(ctx.env, "MACHINA_POOL") === undefined;
}

const startVerb = namesVerb("start", [], "Start container as a service (booted in the background)", (ctx, names) =>
  Promise.all(names.map((name) => start(ctx, name))),
);

/** enable / disable: the boot-time links of each NAME (src/machine/enable.ts), then with --now start or stop it. */
const enable = namesVerb("enable", ["now"], "Enable automatic container start at boot", async (ctx, args) => {
  for (const name of args) checkName(name);
  requireImages(ctx.host, ctx.paths.pool, args); // all or nothing
  for (const name of args) {
    const r = await enableMachine(ctx.host, ctx.env, ctx.paths.pool, name);
    if (!ctx.options.quiet) for (const c of r.changes) ctx.err(`Created symlink ${c.path} → ${c.source}.\n`);
  }
  if (ctx.options.now)
    await Promise.all(
      args.map((name) =>
        start(ctx, name).catch((e) => {
          if (!(e instanceof MachinaError && e.code === "E_BUSY")) throw e;
        }),
      ),
    );
});

const disable = namesVerb("disable", ["now"], "Disable automatic container start at boot", async (ctx, args) => {
  for (const name of args) {
    checkName(name);
    const r = await disableMachine(ctx.host, ctx.env, name);
    if (!ctx.options.quiet) for (const c of r.changes) ctx.err(`Removed ${c.path}.\n`);
  }
  if (ctx.options.now) {
    if (throughSystemd(ctx)) await systemctl(ctx.host, ["stop", ...args.map(unitName)]);
    const mctx = machineContext(ctx);
    await Promise.all(
      args.map(async (name) => {
        try {
          await terminateMachine(mctx, name);
        } catch (e) {
          if (!(e instanceof MachinaError && e.code === "E_NOT_FOUND")) throw e;
        }
      }),
    );
  }
});

const logs: Verb = {
  name: "logs",
  options: ["lines", "follow", "output"],
  usage: "logs NAME",
  summary: "Show the machine's journal, else its console output (-n N, -f, -o MODE, --json)",
  section: "Machine",
  minArgs: 1,
  maxArgs: 1,
  run(ctx, args) {
    const name = args[0]!;
    const mctx = machineContext(ctx);
    let m: Machine | undefined;
    try {
      m = getMachine(mctx, name, { all: true });
    } catch (e) {
      if (!(e instanceof MachinaError && e.code === "E_NOT_FOUND")) throw e;
    }
    // --json (any mode): journalctl -o json, one object per line (a log is a stream; -o json-pretty for the indented form).
    const output = ctx.options.json === "off" ? ctx.options.output : "json";
    return showLogs(mctx, name, m, {
      ...(ctx.options.lines !== undefined ? { lines: ctx.options.lines } : {}),
      follow: ctx.options.follow,
      ...(output !== undefined ? { output } : {}),
      write: ctx.out,
    });
  },
};

export const LIFECYCLE_VERBS: Verb[] = [startVerb, enable, disable, logs];
