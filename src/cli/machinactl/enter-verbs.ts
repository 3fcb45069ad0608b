/**
 * machinactl verbs that enter a running machine through `machina-helper enter`: shell, login,
 * exec (a command, its exit status returned) and bind. Thin: the plan is src/machine/enter.ts.
 */
import { MachinaError } from "../../errors.ts";
import { bindSpec, commandSpec, encodeEnterSpec, type EnterCommand, machineConfinement, runEnter } from "../../machine/enter.ts";
import { getMachine } from "../../machine/machines.ts";
import { hostShellPlan } from "./host-shell.ts";
import { machineContext } from "./machine-verbs.ts";
import type { Verb, VerbContext } from "./verb.ts";
import { requireHelper } from "../../runtime/helper.ts";

const HELPER_ARGV = ["machina-helper", "enter", "--spec-fd"];

function needHelper(ctx: VerbContext): void {
  requireHelper(ctx.host, ctx.paths.helper);
}

/** Replace this process by the helper running `cmd` in machine `name`: its exit status is ours. */
function enter(ctx: VerbContext, name: string, cmd: Omit<EnterCommand, "console" | "term">, banner: boolean): number {
  needHelper(ctx);
  const m = getMachine(machineContext(ctx), name);
  const tty = ctx.host.isatty(0) && ctx.host.isatty(1);
  const spec = commandSpec(
    ctx.host,
    m,
    { ...cmd, console: tty || cmd.login ? "pty" : "pipe", term: ctx.env["TERM"] ?? "" },
    machineConfinement(ctx.host, ctx.paths.stateDir, m),
  );
  if (banner && tty && !ctx.options.quiet) ctx.err(`Connected to machine ${name}. Press ^] three times within 1s to exit session.\n`);
  return ctx.host.execWithSpec(ctx.paths.helper, HELPER_ARGV, encodeEnterSpec(spec));
}

/** [USER@]NAME */
function splitUserAt(arg: string): { user: string | undefined; name: string } {
  const at = arg.lastIndexOf("@");
  return at < 0 ? { user: undefined, name: arg } : { user: arg.slice(0, at) || undefined, name: arg.slice(at + 1) };
}

const shell: Verb = {
  name: "shell",
  options: ["uid", "setenv", "quiet"],
  usage: "shell [[USER@]NAME [COMMAND...]]",
  summary: "Open a shell (or run a command) in a container, or on the host with .host; returns its exit status",
  section: "Machine",
  minArgs: 0,
  maxArgs: Infinity,
  run(ctx, args) {
    const { user, name } = splitUserAt(args[0] ?? ".host"); // no NAME: the local host, as machinectl
    if (user !== undefined && ctx.options.uid !== undefined) throw new MachinaError("E_USAGE", "user given twice (USER@ and --uid)");
    if (name === ".host" || name === "") {
      // machinectl: the host itself (an empty NAME, as in "alice@", means .host too)
      const plan = hostShellPlan(ctx.host, user ?? ctx.options.uid, args.slice(1), ctx.options.setenv, ctx.env["TERM"]);
      const tty = ctx.host.isatty(0) && ctx.host.isatty(1);
      if (tty && !ctx.options.quiet) ctx.err("Connected to the local host. Press ^] three times within 1s to exit session.\n");
      return ctx.host.execProgram(plan.path, plan.argv, plan.env, plan.cwd);
    }
    return enter(
      ctx,
      name,
      { ...((user ?? ctx.options.uid) ? { user: (user ?? ctx.options.uid)! } : {}), command: args.slice(1), setenv: ctx.options.setenv },
      true,
    );
  },
};

const login: Verb = {
  name: "login",
  options: [],
  usage: "login NAME",
  summary: "Get a login prompt in a container",
  section: "Machine",
  minArgs: 1,
  maxArgs: 1,
  run(ctx, args) {
    return enter(ctx, args[0]!, { login: true }, true);
  },
};

const exec: Verb = {
  name: "exec",
  options: ["uid", "setenv", "quiet"],
  usage: "exec NAME [--] COMMAND...",
  summary: "Run a command in a container as root (like systemctl -M); returns its exit status",
  section: "Machine",
  minArgs: 2,
  maxArgs: Infinity,
  run(ctx, args) {
    const command = args[1] === "--" ? args.slice(2) : args.slice(1);
    if (command.length === 0) throw new MachinaError("E_USAGE", "exec needs a command: machinactl exec NAME -- COMMAND...");
    return enter(ctx, args[0]!, { ...(ctx.options.uid ? { user: ctx.options.uid } : {}), command, setenv: ctx.options.setenv }, false);
  },
};

const bind: Verb = {
  name: "bind",
  options: ["read-only", "mkdir"],
  usage: "bind NAME PATH [PATH]",
  summary: "Bind mount a path from the host into a container",
  section: "Machine",
  minArgs: 2,
  maxArgs: 3,
  async run(ctx, args) {
    needHelper(ctx);
    const [name, src, dst] = [args[0]!, args[1]!, args[2] ?? args[1]!];
    for (const p of [src, dst]) if (!p.startsWith("/")) throw new MachinaError("E_INVALID", `path "${p}" is not absolute`, { path: p });
    const mctx = machineContext(ctx);
    const spec = bindSpec(ctx.host, getMachine(mctx, name), src, dst, { readOnly: ctx.options.readOnly, mkdir: ctx.options.mkdir });
    const r = await runEnter(ctx.host, ctx.paths.helper, spec);
    if (r.status !== 0) ctx.err(r.stderr);
    return r.status === 0 ? 0 : 1;
  },
};

export const ENTER_VERBS: Verb[] = [shell, login, exec, bind];
