/**
 * machinactl's machine inspection and control verbs: list, status, show, ps, kill, poweroff,
 * reboot, terminate. Thin: the work is in src/machine/machines.ts.
 */
import { requireHelper } from "../../runtime/helper.ts";
import { type CgroupNode, machineProcesses, type MachineContext, type MachineStatus, formatTimestampUsec } from "../../machine/machines.ts";
import { machineLogTail } from "../../machine/logs.ts";
import { isPermissionError } from "../../host/host.ts";
import { copyMachineFiles, type CopyDirection } from "../../machine/copy.ts";
import { getMachine } from "../../machine/machines.ts";
import type { MachineService } from "../../api/service.ts";
import { formatBytes, json, properties, table } from "./format.ts";
import { showManager } from "./image-verbs.ts";
import { namesVerb, type Verb, type VerbContext } from "./verb.ts";

/** machinad's API when a daemon answers, else the core in this process (src/client/select.ts). */
async function service(ctx: VerbContext): Promise<MachineService> {
  return (await import("../../client/select.ts")).selectMachineService(ctx.host, ctx.paths, ctx.env);
}

export function machineContext(ctx: VerbContext): MachineContext {
  return { host: ctx.host, paths: ctx.paths };
}

/** "5min 3s", "1h 2min", "12ms" — systemd's format_timespan, to the given accuracy. */
export function formatTimespan(usec: number, accuracyUsec = 1_000_000): string {
  if (usec <= 0) return "0";
  const units: Array<[string, number]> = [
    ["y", 31_557_600_000_000],
    ["month", 2_629_800_000_000],
    ["w", 604_800_000_000],
    ["d", 86_400_000_000],
    ["h", 3_600_000_000],
    ["min", 60_000_000],
    ["s", 1_000_000],
    ["ms", 1000],
    ["us", 1],
  ];
  const parts: string[] = [];
  let rest = usec;
  for (const [name, size] of units) {
    if (rest < accuracyUsec && parts.length > 0) break;
    if (size < accuracyUsec && parts.length > 0) break;
    if (rest >= size) {
      const n = Math.floor(rest / size);
      parts.push(`${n}${name}`);
      rest -= n * size;
    }
  }
  return parts.length > 0 ? parts.join(" ") : `${Math.round(usec / 1000)}ms`;
}

/** systemd's CPU line: "1.234s", "56ms". */
function formatCpu(usec: number): string {
  if (usec >= 60_000_000) return formatTimespan(usec, 1000);
  if (usec >= 1_000_000) return `${(usec / 1_000_000).toFixed(3).replace(/\.?0+$/, "")}s`;
  return `${Math.round(usec / 1000)}ms`;
}

export function renderCgroupTree(node: CgroupNode, prefix: string, full: boolean, width = 120): string[] {
  const items: Array<{ label: string; child?: CgroupNode }> = [
    ...node.processes.map((p) => ({ label: `${p.pid} ${p.cmdline}` })),
    ...node.children.map((c) => ({ label: c.path.split("/").pop()!, child: c })),
  ];
  const lines: string[] = [];
  items.forEach((item, i) => {
    const last = i === items.length - 1;
    let line = `${prefix}${last ? "└─" : "├─"}${item.label}`;
    if (!full && line.length > width) line = `${line.slice(0, width - 1)}…`;
    lines.push(line);
    if (item.child) lines.push(...renderCgroupTree(item.child, `${prefix}${last ? "  " : "│ "}`, full, width));
  });
  return lines;
}

export function renderStatus(s: MachineStatus, logLines: string[], full: boolean, nowUsec: number): string {
  const pad = (k: string) => k.padStart(16);
  const lines = [`${s.name}${s.uuid ? `(${s.uuid.replace(/-/g, "")})` : ""}`];
  if (s.timestampUsec) lines.push(`${pad("Since")}: ${formatTimestampUsec(s.timestampUsec)}; ${formatTimespan(nowUsec - s.timestampUsec)} ago`);
  lines.push(`${pad("Leader")}: ${s.leader}${s.leaderComm ? ` (${s.leaderComm})` : ""}`);
  lines.push(`${pad("Service")}: ${s.service}; class ${s.class}`);
  if (s.root) lines.push(`${pad("Root")}: ${s.root}`);
  if (s.network.interfaces.length > 0) lines.push(`${pad("Iface")}: ${s.network.interfaces.map((i) => i.name).join(" ")}`);
  for (const [i, a] of s.network.addresses.entries()) lines.push(`${i === 0 ? `${pad("Address")}: ` : " ".repeat(18)}${a}`);
  if (s.osPrettyName) lines.push(`${pad("OS")}: ${s.osPrettyName}`);
  if (s.architecture) lines.push(`${pad("Architecture")}: ${s.architecture}${s.emulated ? " (emulated: qemu-user)" : ""}`);
  if (s.state !== "running") lines.push(`${pad("State")}: ${s.state}`);
  lines.push(`${pad("Tasks")}: ${s.resources.tasks}`);
  if (s.resources.memoryBytes !== undefined) lines.push(`${pad("Memory")}: ${formatBytes(s.resources.memoryBytes)}`);
  if (s.resources.cpuUsec !== undefined) lines.push(`${pad("CPU")}: ${formatCpu(s.resources.cpuUsec)}`);
  if (s.unit) lines.push(`${pad("Unit")}: ${s.unit}`);
  if (s.cgroupTree) lines.push(...renderCgroupTree(s.cgroupTree, " ".repeat(18), full));
  if (logLines.length > 0) lines.push("", ...logLines);
  return lines.join("\n") + "\n";
}

const list: Verb = {
  name: "list",
  options: ["all", "full", "max-addresses", "no-legend"],
  usage: "list",
  summary: "List running machines",
  section: "Machine",
  minArgs: 0,
  maxArgs: 0,
  async run(ctx) {
    const rows = await (await service(ctx)).list({
      all: ctx.options.all,
      ...(ctx.options.maxAddresses !== undefined ? { maxAddresses: ctx.options.maxAddresses } : {}),
    });
    if (ctx.options.json !== "off") {
      ctx.out(
        json(
          rows.map(({ state, timestampUsec: _start, ...r }) => (ctx.options.all ? { ...r, state } : r)),
          ctx.options,
        ),
      );
      return 0;
    }
    const dash = (v: string) => (v === "" ? "-" : v);
    const max = ctx.options.maxAddresses ?? (ctx.options.full ? Infinity : 1);
    const addr = (a: string[]) => (a.length === 0 ? "-" : a.slice(0, max).join("\n") + (a.length > max ? "…" : ""));
    ctx.out(
      table(
        rows,
        [
          { header: "MACHINE", value: (r) => r.machine },
          { header: "CLASS", value: (r) => r.class },
          { header: "SERVICE", value: (r) => r.service },
          { header: "OS", value: (r) => dash(r.os) },
          { header: "VERSION", value: (r) => dash(r.version) },
          { header: "ARCH", value: (r) => dash(r.architecture) },
          { header: "ADDRESSES", value: (r) => addr(r.addresses).split("\n").join(" ") },
          ...(ctx.options.all ? [{ header: "STATE", value: (r: (typeof rows)[number]) => r.state }] : []),
        ],
        ctx.options,
        ["machine", "machines"],
      ),
    );
    return 0;
  },
};

const status: Verb = {
  name: "status",
  options: ["full", "lines"],
  usage: "status NAME...",
  summary: "Show VM/container details",
  section: "Machine",
  minArgs: 1,
  maxArgs: Infinity,
  async run(ctx, args) {
    const mctx = machineContext(ctx);
    const svc = await service(ctx);
    const results: Array<{ status: MachineStatus; log: string[] }> = [];
    for (const name of args) {
      const s = await svc.status(name);
      const log = await machineLogTail(mctx, s, ctx.options.lines ?? 10).catch((e: unknown) => {
        // another user than root may not read the machine's journal or console log: the status without it
        if (isPermissionError(e)) return [];
        throw e;
      });
      results.push({ status: s, log });
    }
    if (ctx.options.json !== "off") {
      const objs = results.map((r) => ({ ...r.status, log: r.log }));
      ctx.out(json(objs.length === 1 ? objs[0] : objs, ctx.options));
      return 0;
    }
    const nowUsec = Number(ctx.host.nowUsec());
    ctx.out(results.map((r) => renderStatus(r.status, r.log, ctx.options.full, nowUsec)).join("\n"));
    return 0;
  },
};

const show: Verb = {
  name: "show",
  options: ["property", "P", "value", "all"],
  usage: "show [NAME...]",
  summary: "Show properties of one or more VMs/containers (of the manager without NAME)",
  section: "Machine",
  minArgs: 0,
  maxArgs: Infinity,
  async run(ctx, args) {
    // no NAME: the manager's properties (PoolPath, PoolUsage, PoolLimit), as machinectl
    if (args.length === 0) return showManager(ctx);
    const svc = await service(ctx);
    const all: Array<Array<[string, string]>> = [];
    for (const n of args) all.push(await svc.show(n));
    if (ctx.options.json !== "off") {
      const wanted = ctx.options.properties.length > 0 ? new Set(ctx.options.properties) : undefined;
      const objs = all.map((props) => Object.fromEntries(props.filter(([k, v]) => (wanted ? wanted.has(k) : v !== "" || ctx.options.all))));
      ctx.out(json(objs.length === 1 ? objs[0] : objs, ctx.options));
      return 0;
    }
    ctx.out(all.map((props) => properties(props, ctx.options)).join("\n"));
    return 0;
  },
};

const ps: Verb = {
  name: "ps",
  options: [],
  usage: "ps [NAME]",
  summary: "Show the host processes of machines, with the machine of each",
  section: "Machine",
  minArgs: 0,
  maxArgs: 1,
  run(ctx, args) {
    const procs = machineProcesses(machineContext(ctx), { ...(args[0] !== undefined ? { name: args[0] } : {}), all: ctx.options.all });
    if (ctx.options.json !== "off") {
      ctx.out(
        json(
          procs.map((p) => ({ pid: p.pid, ppid: p.ppid, machine: p.machine, comm: p.comm, command: p.cmdline })),
          ctx.options,
        ),
      );
      return 0;
    }
    const width = ctx.options.full ? Infinity : 100;
    ctx.out(
      table(
        procs,
        [
          { header: "PID", value: (p) => String(p.pid).padStart(7) },
          { header: "MACHINE", value: (p) => p.machine || "-" },
          { header: "COMMAND", value: (p) => (p.cmdline.length > width ? `${p.cmdline.slice(0, width - 1)}…` : p.cmdline) },
        ],
        ctx.options,
        ["process", "processes"],
      ),
    );
    return 0;
  },
};

const kill = namesVerb("kill", ["kill-whom", "signal"], "Send signal to processes of a VM/container", async (ctx, names) => {
  const svc = await service(ctx);
  for (const name of names)
    await svc.kill(name, { whom: ctx.options.killWhom ?? "all", ...(ctx.options.signal !== undefined ? { signal: ctx.options.signal } : {}) });
});

const poweroff = namesVerb("poweroff", [], "Power off one or more containers", async (ctx, names) => {
  const svc = await service(ctx);
  for (const name of names) await svc.poweroff(name);
});
const reboot = namesVerb("reboot", [], "Reboot one or more containers", async (ctx, names) => {
  const svc = await service(ctx);
  for (const name of names) await svc.reboot(name);
});
const terminate = namesVerb("terminate", [], "Terminate one or more VMs/containers", async (ctx, names) => {
  const svc = await service(ctx);
  await Promise.all(names.map((name) => svc.terminate(name)));
});

/** copy-to / copy-from (src/machine/copy.ts): through `machina-helper enter`, resolved in the container's root. */
function copyVerb(direction: CopyDirection): Verb {
  return {
    name: `copy-${direction}`,
    options: ["force"],
    usage: `copy-${direction} NAME PATH [PATH]`,
    summary: direction === "to" ? "Copy files from the host to a container" : "Copy files from a container to the host",
    section: "Machine",
    minArgs: 2,
    maxArgs: 3,
    async run(ctx, args) {
      requireHelper(ctx.host, ctx.paths.helper);
      const mctx = machineContext(ctx);
      const paths = (args.length === 3 ? [args[1]!, args[2]!] : [args[1]!]) as [string] | [string, string];
      await copyMachineFiles(ctx.host, ctx.paths.helper, getMachine(mctx, args[0]!), { direction, paths, force: ctx.options.force, cwd: process.cwd() });
      return 0;
    },
  };
}

export const MACHINE_VERBS: Verb[] = [list, status, show, ps, kill, poweroff, reboot, terminate, copyVerb("to"), copyVerb("from")];
