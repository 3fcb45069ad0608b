/**
 * Carries out a NetPlan on the host (ip, nft, dnsmasq through Host.run) and undoes it. Every
 * container's network is recorded in $STATE/net/NAME.json before anything is touched, so that
 * teardown (at exit, by the supervisor's on_exit command, or by the sweep at the next start after
 * a kill -9) finds every piece. All changes to shared pieces — leases, zone bridges, the nft
 * table, zone dnsmasq hosts — happen under one lock ($STATE/net/lock).
 */
import { machinaEnv } from "../config.ts";
import type { z } from "zod";
import { lazySchemas } from "../lazy-zod.ts";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { lockHeld, lockWaiting } from "../host/locks.ts";
import { writeAtomic } from "../host/write-atomic.ts";
import { machineLockPath, processRunning } from "../machine/registry.ts";
import { Reverter } from "../reverter.ts";
import { netExitMarkPath } from "../spec/network.ts";
import { formatCidr, netmask4, type Cidr } from "./cidr.ts";
import { allocateHost, allocateSubnet, IpamError, parseLeases, parseNetConfig, releaseHost, releaseSubnet, type Leases, type NetConfig } from "./ipam.ts";
import {
  addressing,
  containerBatch,
  dnsmasqArgv,
  dhcpHost,
  giveBackBatch,
  hostBatch,
  hostRemoveBatch,
  NFT_TABLE,
  nftBase,
  nftRuleset,
  type NetAddressing,
  type NetPlan,
  type NftMember,
  type NftPools,
  vethDhcpArgv,
  vethDhcpLines,
  vethDhcpTag,
} from "./plan.ts";

/** The schemas of this module, built on first use (src/lazy-zod.ts). */
const netSchemas = lazySchemas((z) => {
  const VethPlanSchema = z.object({ host: z.string(), inside: z.string(), hostMac: z.string(), containerMac: z.string() });
  const HostAddressesSchema = z.object({
    v4: z.string(),
    v4Prefix: z.number(),
    v4Mask: z.string(),
    v6: z.string().optional(),
    v6Prefix: z.number().optional(),
  });
  /** One container's network as recorded in $STATE/net/NAME.json, and read back. */
  const NetRecordSchema = z.object({
    version: z.literal(1),
    machine: z.string(),
    /** The process that owns this network: machina-nspawn, which becomes the supervisor (same pid). */
    pid: z.number().int(),
    startTime: z.string(),
    plan: z
      .object({
        machine: z.string(),
        netns: z.string(),
        veth: VethPlanSchema.optional(),
        bridge: z.string().optional(),
        zone: z.string().optional(),
        extras: z.array(VethPlanSchema).default([]),
        interfaces: z.array(z.object({ host: z.string(), inside: z.string() })).default([]),
        macvlans: z.array(z.object({ parent: z.string(), inside: z.string(), mac: z.string() })).default([]),
        ipvlans: z.array(z.object({ parent: z.string(), inside: z.string() })).default([]),
        ports: z.array(z.object({ protocol: z.enum(["tcp", "udp"]), hostPort: z.number().int(), containerPort: z.number().int() })).default([]),
        addressing: z.enum(["static", "dhcp", "none"]),
        prepared: z.boolean().default(false),
      })
      .transform((p): NetPlan => ({ ...p, veth: p.veth, bridge: p.bridge, zone: p.zone })),
    /** IPAM owner of the subnet ("veth:NAME" or "zone:ZONE") and this container's host number in it. */
    owner: z.string().optional(),
    hostNumber: z.number().int().optional(),
    addr: z
      .object({ subnet: z.object({ v4: z.string(), v6: z.string().optional() }), gateway: HostAddressesSchema, container: HostAddressesSchema })
      .optional(),
    /** Host interface that carries the subnet (ve-NAME or vz-ZONE). */
    hostIf: z.string().optional(),
    /** dnsmasq of this container's veth (zones have one per zone). */
    dnsmasqPid: z.string().optional(),
    /** Names this setup for its own teardown (`machina-net teardown --token`): a later start's record of the same machine is not its to undo. */
    token: z.string().optional(),
    /**
     * `nft -f FILE` for the helper's `prestart` (the table's base, applied in the background while
     * the container is set up); absent when the table was written here (forwarded ports).
     */
    nftPrestart: z.array(z.string()).optional(),
    /** [FAMILY, NAME]: the prestart is skipped when that table exists (the helper reads it over netlink): the base is the one applied last. */
    nftPrestartUnlessTable: z.tuple([z.string(), z.string()]).optional(),
    /** "setup" while being created, "up" once complete. */
    phase: z.enum(["setup", "up"]),
  });
  return { VethPlanSchema, HostAddressesSchema, NetRecordSchema };
});

/** What $STATE/net/NAME.json records of one container's network (NetRecordSchema). */
export type NetRecord = z.infer<ReturnType<typeof netSchemas>["NetRecordSchema"]>;

export interface NetDirs {
  /** machina's state directory (STATE) */
  stateDir: string;
  dir: string;
  lock: string;
  leases: string;
  netnsDir: string;
  record(machine: string): string;
  /** the supervisor's exit mark (spec/network.ts netExitMarkPath) */
  exitMark(machine: string): string;
}

export function netDirs(stateDir: string): NetDirs {
  const dir = `${stateDir}/net`;
  return {
    stateDir,
    dir,
    lock: `${dir}/lock`,
    leases: `${dir}/leases.json`,
    netnsDir: `${stateDir}/netns`,
    record: (m) => `${dir}/${m}.json`,
    exitMark: (m) => netExitMarkPath(stateDir, m),
  };
}

const netError = (message: string, hint?: string) => new MachinaError("E_SYSTEM", message, {}, hint);

/** Blocking exclusive lock (flock, polled): the network lock is held for milliseconds. */
function lockNet(host: Host, d: NetDirs): { release(): void } {
  return lockWaiting(host, d.lock, "network");
}

function readRecord(host: Host, d: NetDirs, machine: string): NetRecord | undefined {
  const text = host.readFile(d.record(machine));
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = netSchemas().NetRecordSchema.safeParse(raw);
  return r.success && r.data.machine === machine ? r.data : undefined;
}

/** Every container's network record (phase setup or up), for readers outside this module. */
export function networkRecords(host: Host, stateDir: string): NetRecord[] {
  const d = netDirs(stateDir);
  return host.lstat(d.dir) === "dir" ? allRecords(host, d) : [];
}

/**
 * Read (and so compile the schemas of) a record and the lease table before taking the network
 * lock: the first parse in a process takes milliseconds, and a hundred containers starting or
 * stopping at once queue on that lock (bench/density.ts). Everything is read again under the
 * lock; nothing is decided here.
 */
function warmSchemas(host: Host, d: NetDirs, machine?: string): void {
  try {
    const any = machine ?? recordNames(host, d)[0];
    if (any !== undefined) readRecord(host, d, any);
    parseLeases(host.readFile(d.leases), d.leases);
  } catch {
    // a bad table is reported under the lock, where it is used
  }
}

/** The machines with a network record (their files' names; nothing is read). */
function recordNames(host: Host, d: NetDirs): string[] {
  return host
    .readdir(d.dir)
    .filter((f) => f.endsWith(".json") && f !== "leases.json")
    .map((f) => f.slice(0, -5));
}

function allRecords(host: Host, d: NetDirs): NetRecord[] {
  const out: NetRecord[] = [];
  for (const m of recordNames(host, d)) {
    const r = readRecord(host, d, m);
    if (r !== undefined) out.push(r);
  }
  return out;
}

export function loadConfig(host: Host): NetConfig {
  const env = host.env();
  const path = machinaEnv(env, "MACHINA_NETWORK_CONF") ?? "/etc/machina/network.conf";
  try {
    return parseNetConfig(host.readFile(path), env);
  } catch (e) {
    throw new MachinaError("E_INVALID", `${path}: ${(e as Error).message}`, { path });
  }
}

interface Runner {
  ip(lines: string[], opts?: { netns?: string; unshare?: string; force?: boolean }): void;
  nft(text: string): void;
}

function runner(host: Host): Runner {
  const check = (what: string, r: { status: number; stderr: string }, input: string) => {
    if (r.status !== 0)
      throw netError(`${what} failed: ${r.stderr.trim() || `exit status ${r.status}`}`, input.trim().split("\n").length < 12 ? `input:\n${input}` : undefined);
  };
  return {
    ip(lines, opts = {}) {
      if (lines.length === 0) return;
      const input = lines.join("\n") + "\n";
      const argv = [
        ...(opts.netns ? ["nsenter", `--net=${opts.netns}`] : opts.unshare ? ["unshare", `--net=${opts.unshare}`] : []),
        "ip",
        ...(opts.force ? ["-force"] : []),
        "-batch",
        "-",
      ];
      const r = host.run(argv, { input });
      if (!opts.force) check("ip -batch", r, input);
    },
    nft(text) {
      check("nft -f", host.run(["nft", "-f", "-"], { input: text }), text);
    },
  };
}

function writeSysctl(host: Host, key: string, value: string): void {
  const path = `/proc/sys/${key.replaceAll(".", "/")}`;
  if (host.readFile(path)?.trim() !== value) host.writeFile(path, value + "\n");
}

function nftMembers(records: NetRecord[]): NftMember[] {
  return records.flatMap((r) =>
    r.addr !== undefined && r.hostIf !== undefined ? [{ machine: r.machine, container: r.addr.container, ports: r.plan.ports }] : [],
  );
}

function nftPools(cfg: NetConfig): NftPools {
  return { pool4: formatCidr(cfg.pool4), ...(cfg.pool6 !== undefined ? { pool6: formatCidr(cfg.pool6) } : {}) };
}

/** nft's absolute path, for the helper's `prestart` (it execs without a PATH search). */
function nftBinary(host: Host): string | undefined {
  return ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"].find((p) => host.lstat(p) !== undefined);
}

/** The table's base (plan.ts nftBase), written for the helper to apply in the background. */
const baseFile = (d: NetDirs) => `${d.dir}/base.nft`;

/** No addressed container left: delete the table (and the base file). */
function removeTable(host: Host, d: NetDirs): void {
  host.unlink(baseFile(d));
  runner(host).nft(nftRuleset([], { pool4: "" }));
}

/** Routes on the host that the pool must not collide with (from /proc: no command to run). */
function hostRoutes(host: Host): Cidr[] {
  const out: Cidr[] = [];
  const ours = (dev: string) => dev.startsWith("ve-") || dev.startsWith("vz-") || dev === "lo";
  // /proc/net/route: Iface Destination(hex, little endian) Gateway Flags RefCnt Use Metric Mask …
  for (const line of (host.readFile("/proc/net/route") ?? "").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || ours(f[0]!)) continue;
    const le = (h: string) => BigInt(`0x${h.match(/../g)!.reverse().join("")}`);
    const mask = le(f[7]!);
    const prefix = mask.toString(2).replace(/0/g, "").length;
    if (prefix > 0) out.push({ family: 4, base: le(f[1]!) & mask, prefix });
  }
  // /proc/net/ipv6_route: dest(32 hex) prefix(hex) src srcprefix nexthop metric ref use flags iface
  for (const line of (host.readFile("/proc/net/ipv6_route") ?? "").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || ours(f[9]!)) continue;
    const prefix = parseInt(f[1]!, 16);
    if (prefix > 0 && prefix < 128 && !f[0]!.startsWith("fe80")) out.push({ family: 6, base: BigInt(`0x${f[0]}`), prefix });
  }
  return out;
}

function processAlive(host: Host, pid: number, startTime: string): boolean {
  return startTime !== "" && processRunning(host, pid, startTime);
}

/** The machine's supervisor runs: it holds the machine's registry lock (machine/registry.ts). */
function machineRunning(host: Host, stateDir: string, machine: string): boolean {
  return lockHeld(host, machineLockPath(stateDir, machine));
}

/**
 * Whether the sweep has anything to look at, decided without the network lock and without
 * reading a record: a record whose machine does not run (gone, or still starting), or a
 * namespace without a record. With every machine running — the common case, at every start —
 * this is a lock test per machine, so a start does not wait for the others' records.
 */
function maybeStale(host: Host, stateDir: string, d: NetDirs): boolean {
  const machines = recordNames(host, d);
  if (machines.some((m) => !machineRunning(host, stateDir, m))) return true;
  const known = new Set(machines);
  return host.readdir(d.netnsDir).some((n) => !known.has(n));
}

/**
 * Whether the network of record `r` still has its owner: the process that set it up (the
 * supervisor itself when machina-nspawn exec'd into the helper), or the machine's supervisor,
 * which holds its registry lock — a background start (machinactl start, machinad) sets the
 * network up in a process that exits (or restarts) while the machine runs on.
 */
function networkOwned(host: Host, stateDir: string, r: NetRecord): boolean {
  return processAlive(host, r.pid, r.startTime) || machineRunning(host, stateDir, r.machine);
}

const zoneFile = (d: NetDirs, zone: string, ext: string) => `${d.dir}/zone-${zone}.${ext}`;

/** The veth dnsmasq's files (plan.ts vethDhcpArgv): one set per state directory. */
const vethDhcpFiles = (d: NetDirs) => ({
  pidFile: `${d.dir}/veth-dhcp.pid`,
  hostsFile: `${d.dir}/veth-dhcp.hosts`,
  optsFile: `${d.dir}/veth-dhcp.opts`,
  leaseFile: `${d.dir}/veth-dhcp.leases`,
});

/**
 * dnsmasq re-reads its hosts and options files in STATE/net as "nobody" (a zone's, the veths'):
 * the state directory and STATE/net — machina's own — must let others search them. One made 0700
 * (by an older machinad, or by the first command that made a 0700 directory below it) gets search
 * for group and others here, not listing; the directories above the state directory are not
 * machina's to change (searchableByAll says whether they let dnsmasq through).
 */
function letDnsmasqSearch(host: Host, d: NetDirs): void {
  for (const dir of [d.stateDir, d.dir]) {
    const st = host.stat(dir, true);
    if (st !== undefined && (st.mode & 0o001) === 0) host.chmod(dir, st.mode | 0o011);
  }
}

/** Whether every directory from `dir` up to / lets others search it (dnsmasq's "nobody" re-reads files there). */
function searchableByAll(host: Host, dir: string): boolean {
  for (let p = dir; p !== "/" && p !== ""; p = p.slice(0, p.lastIndexOf("/")) || "/") {
    const st = host.stat(p, true);
    if (st === undefined || (st.mode & 0o001) === 0) return false;
  }
  return true;
}

/** A file of lines without the ones starting with `prefix`, plus `add`. */
function replaceLines(host: Host, path: string, prefix: string, add: string[]): string[] {
  const kept = (host.readFile(path) ?? "").split("\n").filter((l) => l !== "" && !l.startsWith(prefix));
  const lines = [...kept, ...add];
  writeAtomic(host, path, lines.map((l) => `${l}\n`).join(""));
  return lines;
}

/**
 * A booted container's veth served by the host's veth dnsmasq: its lines added (those of an earlier
 * link of the same name replaced), then the dnsmasq told to re-read them — or started, or restarted
 * when the pools it was started for have changed.
 */
function serveVethDhcp(host: Host, d: NetDirs, cfg: NetConfig, hostIf: string, mac: string, addr: NetAddressing): void {
  const f = vethDhcpFiles(d);
  const lines = vethDhcpLines(hostIf, mac, addr);
  replaceLines(host, f.hostsFile, vethDhcpTag(hostIf), lines.hosts);
  replaceLines(host, f.optsFile, vethDhcpTag(hostIf), lines.opts);
  const argv = vethDhcpArgv({ pool4: formatCidr(cfg.pool4), pool4Mask: netmask4(cfg.pool4.prefix), ipv6: cfg.pool6 !== undefined, ...f });
  const running = dnsmasqOf(host, f.pidFile);
  if (running?.cmdline === `${argv.join("\0")}\0`) {
    host.kill(running.pid, 1);
    return;
  }
  if (running !== undefined) stopDnsmasq(host, f.pidFile);
  startDnsmasq(host, argv);
}

/** A container's veth no longer served: its lines removed; the veth dnsmasq stopped with the last. */
function releaseVethDhcp(host: Host, d: NetDirs, hostIf: string): void {
  const f = vethDhcpFiles(d);
  if (host.lstat(f.hostsFile) === undefined && dnsmasqRunning(host, f.pidFile) === undefined) return;
  const left = replaceLines(host, f.hostsFile, vethDhcpTag(hostIf), []);
  replaceLines(host, f.optsFile, vethDhcpTag(hostIf), []);
  if (left.length === 0) stopDnsmasq(host, f.pidFile, f.hostsFile, f.optsFile, f.leaseFile);
  else {
    const pid = dnsmasqRunning(host, f.pidFile);
    if (pid !== undefined) host.kill(pid, 1);
  }
}

/** The dnsmasq that `pidFile` names, if it runs (its command line says so): its pid and command line. */
function dnsmasqOf(host: Host, pidFile: string): { pid: number; cmdline: string } | undefined {
  const pid = Number(host.readFile(pidFile)?.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cmdline = host.readFile(`/proc/${pid}/cmdline`);
  return cmdline?.startsWith("dnsmasq\0") && cmdline.includes(`--pid-file=${pidFile}\0`) ? { pid, cmdline } : undefined;
}

function dnsmasqRunning(host: Host, pidFile: string): number | undefined {
  return dnsmasqOf(host, pidFile)?.pid;
}

function stopDnsmasq(host: Host, pidFile: string, ...files: string[]): void {
  const pid = dnsmasqRunning(host, pidFile);
  if (pid !== undefined) {
    host.kill(pid, 15);
    // until it is gone — or a zombie: dnsmasq daemonizes, so its parent is the host's init, which
    // may be slow to reap it (or, on a host whose PID 1 reaps nothing, never): a zombie holds no
    // socket or file any more (waiting for /proc/PID to go made every booted container's stop 1 s)
    for (let i = 0; i < 200 && processRunning(host, pid); i++) Bun.sleepSync(5);
  }
  for (const f of [pidFile, ...files]) host.unlink(f);
}

function startDnsmasq(host: Host, argv: string[]): void {
  const r = host.run(argv);
  if (r.status !== 0) throw netError(`dnsmasq failed: ${r.stderr.trim() || `exit status ${r.status}`}`, "is dnsmasq (Debian: dnsmasq-base) installed?");
}

/** A zone's hosts file: its members' static leases. */
function dhcpHostsLines(records: NetRecord[], zone: string): string {
  return records
    .filter((r) => r.plan.veth && r.addr && r.plan.zone === zone)
    .map((r) => `${dhcpHost(r.plan.veth!.containerMac, r.addr!)}\n`)
    .join("");
}

/** Refuse a plan that collides with the recorded networks; returns those (the other containers'). */
/** Refuse a start that would clash; returns the other containers' records when `needOthers` (else none are read). */
function checkConflicts(host: Host, d: NetDirs, plan: NetPlan, needOthers: boolean): NetRecord[] {
  const previous = readRecord(host, d, plan.machine);
  if (previous !== undefined) {
    // The machine ended a moment ago (its supervisor left the exit mark and started the teardown
    // in the background): undo the old network here, now; its teardown will find nothing of its own.
    if (host.lstat(d.exitMark(plan.machine)) === "file") teardownLocked(host, d, plan.machine, previous);
    else throw new MachinaError("E_BUSY", `the network of machine "${plan.machine}" is still set up`, { machine: plan.machine }, "is the machine running?");
  }
  const others = needOthers ? allRecords(host, d) : [];
  for (const p of plan.ports)
    for (const o of others)
      if (o.plan.ports.some((x) => x.protocol === p.protocol && x.hostPort === p.hostPort))
        throw new MachinaError("E_BUSY", `host port ${p.protocol}:${p.hostPort} is already forwarded to machine "${o.machine}"`, { machine: plan.machine });
  if (plan.ports.length > 0 && plan.addressing === "none")
    throw new MachinaError("E_USAGE", "--port= needs --network-veth or --network-zone (machina must know the container's address)", { flag: "--port" });
  checkHostInterfaces(host, plan);
  return others;
}

/**
 * The container's subnet (its veth's, or its zone's) and host number in it, from the lease
 * table: filled into `record`; returns the new table (written by the caller, after the record).
 */
function allocateAddresses(host: Host, d: NetDirs, plan: NetPlan, record: NetRecord): Leases {
  const cfg = loadConfig(host);
  let leases = parseLeases(host.readFile(d.leases), d.leases);
  const owner = plan.zone !== undefined ? `zone:${plan.zone}` : `veth:${plan.machine}`;
  try {
    const avoid = leases.subnets[owner] === undefined ? hostRoutes(host) : [];
    const a = allocateSubnet(leases, cfg, owner, plan.zone !== undefined ? "zone" : "veth", avoid);
    leases = a.leases;
    let hostNumber = 2;
    if (plan.zone !== undefined) {
      const h = allocateHost(leases, owner, plan.machine);
      leases = h.leases;
      hostNumber = h.host;
    }
    record.owner = owner;
    record.hostNumber = hostNumber;
    record.addr = addressing(a.subnet, hostNumber);
    record.hostIf = plan.bridge ?? plan.veth!.host;
    return leases;
  } catch (e) {
    if (e instanceof IpamError) throw new MachinaError("E_BUSY", e.message, {}, "widen Pool4= in /etc/machina/network.conf");
    throw e;
  }
}

/**
 * The host's interfaces the plan uses (--network-bridge, --network-interface, the parents of
 * --network-macvlan/--network-ipvlan) must exist, and the bridge must be a bridge: checked before
 * anything is touched, so that the error names the option and nothing is left to undo.
 */
export function checkHostInterfaces(host: Host, plan: NetPlan): void {
  const missing = (flag: string, name: string, what = "network interface") =>
    new MachinaError("E_NOT_FOUND", `${flag}=${name}: no ${what} "${name}" on the host (see ip link)`, { flag, value: name });
  const refuse = (flag: string, name: string, why: string) => new MachinaError("E_INVALID", `${flag}=${name}: ${why}`, { flag, value: name });
  const exists = (name: string) => name !== "" && !name.includes("/") && host.lstat(`/sys/class/net/${name}`) !== undefined;
  // IFF_LOOPBACK: the loopback interface cannot move to another namespace nor carry a macvlan/ipvlan
  const loopback = (name: string) => (parseInt(host.readFile(`/sys/class/net/${name}/flags`)?.trim() ?? "0", 16) & 0x8) !== 0;
  if (plan.bridge !== undefined && plan.zone === undefined) {
    if (!exists(plan.bridge)) throw missing("--network-bridge", plan.bridge, "bridge");
    if (host.lstat(`/sys/class/net/${plan.bridge}/bridge`) === undefined)
      throw refuse("--network-bridge", plan.bridge, `"${plan.bridge}" is a network interface but not a bridge`);
  }
  for (const i of plan.interfaces) {
    if (!exists(i.host)) throw missing("--network-interface", i.host);
    if (loopback(i.host)) throw refuse("--network-interface", i.host, "the loopback interface cannot be moved into a container");
  }
  for (const [flag, links] of [
    ["--network-macvlan", plan.macvlans],
    ["--network-ipvlan", plan.ipvlans],
  ] as const)
    for (const m of links) {
      if (!exists(m.parent)) throw missing(flag, m.parent);
      if (loopback(m.parent)) throw refuse(flag, m.parent, "the loopback interface cannot be the parent of a macvlan/ipvlan");
    }
  for (const x of plan.extras) if (exists(x.host)) throw refuse("--network-veth-extra", x.host, `a network interface "${x.host}" already exists on the host`);
  // Names inside the container: each link gets its own.
  const inside = new Map<string, string>();
  const claim = (flag: string, outside: string, name: string) => {
    const other = inside.get(name);
    if (other !== undefined) throw refuse(flag, `${outside}:${name}`, `the container already gets an interface "${name}" (from ${other})`);
    inside.set(name, flag);
  };
  if (plan.veth !== undefined)
    claim(plan.zone !== undefined ? "--network-zone" : plan.bridge !== undefined ? "--network-bridge" : "--network-veth", plan.veth.host, plan.veth.inside);
  for (const x of plan.extras) claim("--network-veth-extra", x.host, x.inside);
  for (const i of plan.interfaces) claim("--network-interface", i.host, i.inside);
  for (const m of plan.macvlans) claim("--network-macvlan", m.parent, m.inside);
  for (const m of plan.ipvlans) claim("--network-ipvlan", m.parent, m.inside);
}

/**
 * Create the container's network namespace and everything in the plan. On failure everything
 * done so far is undone and the error is thrown.
 */
export function setupNetwork(host: Host, stateDir: string, plan: NetPlan, token?: string): NetRecord {
  const d = netDirs(stateDir);
  const run = runner(host);
  warmSchemas(host, d);
  const lock = lockNet(host, d);
  // One undo for the whole setup: the teardown, driven by the record (written before anything
  // else), removes whatever pieces were made — whichever step failed.
  const r = new Reverter();
  try {
    // the other containers' records matter to forwarded ports, a zone and a ruleset written here
    const needOthers = plan.ports.length > 0 || plan.zone !== undefined || nftBinary(host) === undefined;
    const others = checkConflicts(host, d, plan, needOthers);
    const pid = host.pid();
    const record: NetRecord = {
      version: 1,
      machine: plan.machine,
      pid,
      startTime: host.processStartTime(pid) ?? "",
      plan,
      phase: "setup",
      ...(token !== undefined ? { token } : {}),
    };
    r.add(`tear down the network of "${plan.machine}"`, () => teardownLocked(host, d, plan.machine));

    // Addresses: one subnet per veth, one per zone (+ a host number in it).
    let leases: Leases | undefined;
    let createZoneBridge = false;
    if (plan.addressing !== "none") {
      leases = allocateAddresses(host, d, plan, record);
      createZoneBridge = plan.zone !== undefined && host.lstat(`/sys/class/net/${plan.bridge}`) === undefined;
    }
    host.mkdirp(d.netnsDir, 0o755);
    if (plan.zone !== undefined || plan.addressing === "dhcp") letDnsmasqSearch(host, d);
    writeAtomic(host, d.record(plan.machine), JSON.stringify(record));
    host.unlink(d.exitMark(plan.machine)); // an earlier run's, whose teardown did not get to it
    if (leases !== undefined) writeAtomic(host, d.leases, JSON.stringify(leases));

    // A prepared namespace (an nsfs bind mount at $STATE/netns/NAME, created by the command that
    // sets its loopback up), then the host side: a new zone bridge, links moved or created into the
    // namespace. The main veth is the helper's, after the clone (helperNetOps).
    const addr = record.addr;
    if (plan.prepared) {
      host.writeFile(plan.netns, "", 0o444);
      run.ip(containerBatch(), { unshare: plan.netns });
    }
    run.ip(hostBatch(plan, addr, createZoneBridge));

    if (addr !== undefined && record.hostIf !== undefined) {
      writeSysctl(host, "net.ipv4.ip_forward", "1");
      const cfg = loadConfig(host);
      if (cfg.forward6 && addr.subnet.v6 !== undefined) writeSysctl(host, "net.ipv6.conf.all.forwarding", "1");
      // Forwarded ports answer on the host's own loopback too (see plan.ts nftRuleset); a veth
      // does not exist yet: the helper sets it (helperNetOps).
      if (plan.ports.length > 0 && plan.bridge !== undefined) writeSysctl(host, `net.ipv4.conf.${record.hostIf}.route_localnet`, "1");
      // The table: with forwarded ports rewritten here, under the lock (the DNAT rules depend on
      // every container); otherwise only its base is needed, the same for every container — the
      // helper applies it in the background while the container is being set up.
      const nft = plan.ports.length > 0 ? undefined : nftBinary(host);
      if (nft === undefined) run.nft(nftRuleset(nftMembers([...others, record]), nftPools(cfg)));
      else {
        const text = nftBase(nftPools(cfg));
        const changed = host.readFile(baseFile(d)) !== text;
        if (changed) writeAtomic(host, baseFile(d), text);
        // Applying the base again to a table that has it costs a transaction that flushes and
        // re-adds its rules (~15 ms of the kernel's time here, on the start's path): with the same
        // base as last written, the table's presence (a read, no transaction) is enough.
        // (the helper reads it over netlink: ~3 ms of CPU less per start than `nft list table` from a shell)
        record.nftPrestart = [nft, "-f", baseFile(d)];
        if (!changed) record.nftPrestartUnlessTable = ["inet", NFT_TABLE];
      }

      if (plan.zone !== undefined) {
        // One dnsmasq per zone (started with the bridge); each container's static lease in its hosts file.
        if (plan.addressing === "dhcp" && !searchableByAll(host, d.dir))
          throw netError(
            `--network-zone=${plan.zone}: the zone's dnsmasq reads its leases in ${d.dir} as "nobody", who cannot reach it (a directory above it is not searchable by others)`,
            "use a state directory (MACHINA_STATE_DIR) that others may search, as /run/machina",
          );
        const hostsFile = zoneFile(d, plan.zone, "hosts");
        host.writeFile(hostsFile, dhcpHostsLines([...others, record], plan.zone));
        const pidFile = zoneFile(d, plan.zone, "pid");
        const running = dnsmasqRunning(host, pidFile);
        if (running !== undefined) host.kill(running, 1);
        else
          startDnsmasq(
            host,
            dnsmasqArgv({ iface: plan.bridge!, subnet: addr.subnet, gateway: addr.gateway, pidFile, leaseFile: zoneFile(d, plan.zone, "leases"), hostsFile }),
          );
      } else if (plan.addressing === "dhcp" && plan.veth !== undefined) {
        if (searchableByAll(host, d.dir)) serveVethDhcp(host, d, cfg, plan.veth.host, plan.veth.containerMac, addr);
        else {
          // dnsmasq re-reads its files as "nobody", who cannot reach them here: one of its own, its host on the command line
          const pidFile = `${d.dir}/${plan.machine}.dnsmasq.pid`;
          const hosts = [dhcpHost(plan.veth.containerMac, addr)];
          startDnsmasq(
            host,
            dnsmasqArgv({ iface: plan.veth.host, subnet: addr.subnet, gateway: addr.gateway, pidFile, leaseFile: `${d.dir}/${plan.machine}.leases`, hosts }),
          );
          record.dnsmasqPid = pidFile;
        }
      }
    }
    record.phase = "up";
    writeAtomic(host, d.record(plan.machine), JSON.stringify(record));
    r.commit();
    return record;
  } catch (e) {
    // What the teardown could not remove is named in the error (the sweep at the next start retries).
    throw r.fail(e);
  } finally {
    lock.release();
  }
}

/**
 * Undo one container's network (idempotent: whatever is already gone is skipped). With `token`
 * (the supervisor's at-exit teardown), only the network that setup made: when a start of the
 * same machine has already taken over (its record has another token), nothing is done.
 */
export function teardownNetwork(host: Host, stateDir: string, machine: string, token?: string): void {
  const d = netDirs(stateDir);
  warmSchemas(host, d, machine);
  const lock = lockNet(host, d);
  try {
    const rec = readRecord(host, d, machine);
    if (token !== undefined && rec?.token !== undefined && rec.token !== token) return;
    teardownLocked(host, d, machine, rec);
  } finally {
    lock.release();
  }
}

/** `rec`: the machine's record, when the caller has read it under the lock already. */
function teardownLocked(host: Host, d: NetDirs, machine: string, rec: NetRecord | undefined = readRecord(host, d, machine)): void {
  const run = runner(host);
  const netns = `${d.netnsDir}/${machine}`;
  const mounted = host
    .mountinfo()
    .split("\n")
    .some((l) => l.split(" ")[4] === netns);
  const errors: string[] = [];
  const step = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      errors.push((e as Error).message);
    }
  };
  if (rec !== undefined) {
    const plan = rec.plan;
    // Moved interfaces go back first, while the namespace still exists.
    if (mounted && plan.interfaces.length > 0) step(() => run.ip(giveBackBatch(plan, `/proc/${host.pid()}/ns/net`), { netns, force: true }));
    // (the supervisor deletes the main veth itself when the container is gone: only after a kill -9 is it still here)
    step(() =>
      run.ip(
        hostRemoveBatch(plan).filter((l) => host.lstat(`/sys/class/net/${l.split(" ").pop()}`) !== undefined),
        { force: true },
      ),
    );
    // a dnsmasq of its own (a state directory "nobody" cannot search, or a record of an earlier version)
    if (rec.dnsmasqPid !== undefined)
      step(() => stopDnsmasq(host, `${d.dir}/${machine}.dnsmasq.pid`, `${d.dir}/${machine}.dhcp-hosts`, `${d.dir}/${machine}.leases`));
    else if (plan.addressing === "dhcp" && plan.zone === undefined && plan.veth !== undefined) step(() => releaseVethDhcp(host, d, plan.veth!.host));
  }
  if (mounted) {
    const r = host.run(["umount", "-l", netns]);
    if (r.status !== 0) errors.push(`umount "${netns}": ${r.stderr.trim()}`);
  }
  host.unlink(netns);
  if (rec !== undefined) {
    // the others' records are read only when they matter: the zone's members, the DNAT rules
    // of a container with ports; otherwise whether any is left decides (the table goes with the last)
    const otherNames = recordNames(host, d).filter((m) => m !== machine);
    const others = rec.plan.zone !== undefined || rec.plan.ports.length > 0 ? allRecords(host, d).filter((r) => r.machine !== machine) : [];
    if (rec.owner !== undefined) {
      let leases = parseLeases(host.readFile(d.leases), d.leases);
      const zone = rec.plan.zone;
      if (zone !== undefined) {
        leases = releaseHost(leases, rec.owner, machine);
        const left = others.filter((r) => r.plan.zone === zone);
        if (left.length === 0) {
          leases = releaseSubnet(leases, rec.owner);
          step(() => stopDnsmasq(host, zoneFile(d, zone, "pid"), zoneFile(d, zone, "hosts"), zoneFile(d, zone, "leases")));
          step(() => run.ip([`link delete ${rec.plan.bridge}`], { force: true }));
        } else {
          step(() => {
            host.writeFile(zoneFile(d, zone, "hosts"), dhcpHostsLines(others, zone));
            const pid = dnsmasqRunning(host, zoneFile(d, zone, "pid"));
            if (pid !== undefined) host.kill(pid, 1);
          });
        }
      } else leases = releaseSubnet(leases, rec.owner);
      // An empty table is no file: the next first start reads nothing (and loads no schema: ~3 ms)
      if (Object.keys(leases.subnets).length === 0 && Object.keys(leases.hosts).length === 0) host.unlink(d.leases);
      else writeAtomic(host, d.leases, JSON.stringify(leases));
    }
    // The table goes with the last addressed container; the DNAT rules with a container's ports.
    const members = nftMembers(others);
    if (otherNames.length === 0 || (others.length > 0 && members.length === 0)) step(() => removeTable(host, d));
    else if (rec.plan.ports.length > 0) step(() => run.nft(nftRuleset(members, nftPools(loadConfig(host)))));
    host.unlink(d.record(machine));
  }
  host.unlink(d.exitMark(machine));
  if (errors.length > 0) throw netError(`cleaning up the network of "${machine}": ${errors.join("; ")}`);
}

/**
 * Sweep hook (machine/registry.ts): undo the networks whose owner is gone (supervisor killed,
 * or a start that died before the helper ran), and namespaces without a record.
 */
export function sweepNetworks(host: Host, stateDir: string): string[] {
  const d = netDirs(stateDir);
  if (host.lstat(d.dir) === undefined && host.lstat(d.netnsDir) === undefined) return [];
  if (!maybeStale(host, stateDir, d)) return [];
  const swept: string[] = [];
  const lock = lockNet(host, d);
  try {
    const records = allRecords(host, d);
    for (const r of records) {
      if (networkOwned(host, stateDir, r)) continue;
      try {
        teardownLocked(host, d, r.machine);
      } catch {
        /* reported pieces stay for the next sweep */
      }
      swept.push(r.machine);
    }
    const known = new Set(allRecords(host, d).map((r) => r.machine));
    for (const name of host.readdir(d.netnsDir))
      if (!known.has(name)) {
        try {
          teardownLocked(host, d, name);
        } catch {
          /* next time */
        }
        swept.push(name);
      }
    if (records.length > 0 && allRecords(host, d).length === 0) {
      // Nothing of machina's is running: no leases, no table, no veth dnsmasq.
      host.unlink(d.leases);
      const f = vethDhcpFiles(d);
      stopDnsmasq(host, f.pidFile, f.hostsFile, f.optsFile, f.leaseFile);
      try {
        removeTable(host, d);
      } catch {
        /* nft missing: nothing to remove */
      }
    }
  } finally {
    lock.release();
  }
  return swept;
}
