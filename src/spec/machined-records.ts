/**
 * systemd-machined's records of a machine, written by machina itself on a host where no
 * machined runs, so that the host's own tools find the container as they find one machined
 * knows (docs/machines.md, "The host's tools"). Pure.
 *
 * systemd 252's readers (the format is machined's, src/machine/machine.c machine_save):
 * - `/run/systemd/machines/unit:UNIT` → NAME, a symlink: sd_pid_get_machine_name() (procps'
 *   `ps -o machine`, `journalctl`'s _MACHINE fields …) takes a process's cgroup, its first unit
 *   below the slices (machine-NAME.scope) and reads that link.
 * - `/run/systemd/machines/NAME`, an env-style file: container_get_leader() (sd-bus's
 *   `x-machine-unix:`, so `systemctl -M NAME`, `busctl -M`, `loginctl -M` …) reads LEADER= and
 *   CLASS=container, then enters the leader's namespaces and talks to the bus inside;
 *   sd_journal_open_container() (`journalctl -M NAME`) reads ROOT= and CLASS= and opens
 *   ROOT/var/log/journal and ROOT/run/log/journal.
 *
 * ROOT= is `/proc/LEADER/root`, the container's root as its own mount namespace has it: the
 * image directory alone shows neither an ephemeral (-x) copy's files nor the container's /run.
 * machined would write the directory it was given; nothing else reads ROOT=.
 *
 * The supervisor writes the file and makes the link with every leader (`host_record`, "{leader}"
 * replaced; `host_record_link`) — a start that ends before its first leader leaves neither — and
 * removes both when it exits (`host_remove`); what a killed supervisor left is swept
 * (runtime/machined-records.ts). Never while
 * machined may run: there the registration with machined makes the same records.
 */
import type { HostFacts } from "../host/facts.ts";
import type { Settings } from "../settings/settings.ts";
import { MACHINED_SERVICE } from "./register.ts";
import { machinedRegistration } from "./resources.ts";
import { HOOK_LEADER_ARG } from "./types.ts";

/** Where systemd-machined keeps its records. */
export const MACHINED_RECORDS_DIR = "/run/systemd/machines";

/** What the supervisor writes, links and removes for one machine. */
export interface MachinedRecords {
  /** Created when missing, kept (machined's own directories: /run/systemd, /run/systemd/machines). */
  mkdirs: Array<{ path: string; mode: number }>;
  /** `unit:UNIT` → NAME. */
  symlink: { target: string; path: string };
  /** NAME, with "{leader}" where the leader's pid goes. */
  record: { path: string; body: string };
  /** Removed when the supervisor exits: the record, then the link. */
  removes: string[];
}

/**
 * Whether machina writes machined's records itself: the machine is to be registered
 * (--register= not "no", the UTS namespace not shared) and no systemd-machined can run — it
 * runs only under systemd, and where it is installed machina registers with it instead.
 */
export function writesMachinedRecords(settings: Settings, host: HostFacts): boolean {
  if (!settings.register || machinedRegistration(settings, host) !== undefined) return false;
  return !machinedMayRun(host.systemd);
}

/** systemd-machined may run (it is installed under a systemd PID 1): the records are then its own. */
export function machinedMayRun(sd: { booted: boolean; machined: boolean }): boolean {
  return sd.booted && sd.machined;
}

/**
 * The unit a process of the container belongs to, as systemd reads it from its cgroup (`rel`,
 * below the cgroup2 mount): the first component that is not a slice.
 */
export function unitOfCgroup(rel: string): string | undefined {
  return rel.split("/").find((c) => c !== "" && !c.endsWith(".slice"));
}

/** systemd's cescape(): backslash, quotes and control/non-ASCII bytes escaped, as machine_save writes values. */
export function cescape(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (c === "\\" || c === '"' || c === "'") out += `\\${c}`;
    else if (c === "\n") out += "\\n";
    else if (c === "\t") out += "\\t";
    else if (b < 0x20 || b >= 0x7f) out += `\\${b.toString(8).padStart(3, "0")}`;
    else out += c;
  }
  return out;
}

/** The file's text, field by field as machined's machine_save writes them ("{leader}" for LEADER=, and in ROOT=). */
export function machinedRecordBody(m: { name: string; unit: string; uuid: string }): string {
  const id = m.uuid.replace(/-/g, "").toLowerCase();
  return [
    "# This is private data. Do not parse.",
    `NAME=${m.name}`,
    `SCOPE=${cescape(m.unit)}`,
    `SERVICE=${MACHINED_SERVICE}`,
    `ROOT=/proc/${HOOK_LEADER_ARG}/root`,
    ...(/^[0-9a-f]{32}$/.test(id) && !/^0+$/.test(id) ? [`ID=${id}`] : []),
    `LEADER=${HOOK_LEADER_ARG}`,
    "CLASS=container",
    "",
  ].join("\n");
}

/** The records of machine `name` whose cgroup is `cgroupRel` (below the cgroup2 mount), or undefined when machina does not write them. */
export function machinedRecords(settings: Settings, host: HostFacts, m: { name: string; uuid: string; cgroupRel: string }): MachinedRecords | undefined {
  if (!writesMachinedRecords(settings, host)) return undefined;
  const unit = unitOfCgroup(m.cgroupRel);
  if (unit === undefined) return undefined; // a cgroup at the root (--cgroup-path=/…): no unit to name
  const record = `${MACHINED_RECORDS_DIR}/${m.name}`;
  const link = `${MACHINED_RECORDS_DIR}/unit:${unit}`;
  return {
    mkdirs: [
      { path: "/run/systemd", mode: 0o755 },
      { path: MACHINED_RECORDS_DIR, mode: 0o755 },
    ],
    symlink: { target: m.name, path: link },
    record: { path: record, body: machinedRecordBody({ name: m.name, unit, uuid: m.uuid }) },
    removes: [record, link],
  };
}

/** The fields of a record file, read as systemd's parse_env_file() reads an unquoted value: a backslash takes the next character literally. */
export function parseMachinedRecord(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/\\(.)/g, "$1");
  }
  return out;
}
