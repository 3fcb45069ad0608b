/**
 * The registration of a container with systemd-machined, as the command the helper runs with
 * the leader's pid once it sits in its cgroups and before it goes on (`on_leader`, native/SPEC.md)
 * — the moment systemd-nspawn registers too. Pure.
 *
 * - `register` (--keep-unit): RegisterMachine(name, id, service, class, leader, root). machined
 *   attaches the machine to the unit the leader's cgroup belongs to (machina-nspawn@NAME.service)
 *   and forgets it when that unit stops.
 * - `create`: CreateMachine(…, scope_properties): machined asks systemd for the transient scope
 *   `machine-NAME.scope` (in machine.slice, or Slice= from --slice) holding the leader, and answers
 *   once it exists; the machine goes away when the scope empties.
 *
 * Both are retried for up to 2 s while machined still knows an earlier machine of that name
 * (after a reboot inside the container the old scope is stopped asynchronously). With
 * --keep-unit the supervisor unregisters the machine when it exits (`on_exit`, as systemd-nspawn
 * calls UnregisterMachine), since the unit itself stays active across a restart (exit 133).
 */
import { MACHINED_DEVICE_PROPERTIES } from "./devices.ts";
import { HOOK_LEADER_ARG } from "./types.ts";

export interface MachinedRegistration {
  how: "register" | "create";
  name: string;
  /** 32 hex digits, dashes allowed. */
  uuid: string;
  root: string;
  busctl: string;
  service?: string;
  slice?: string | undefined;
  /** The leader's pid; default: the helper's placeholder. */
  leader?: string;
}

export const MACHINED_SERVICE = "machina-nspawn";

/** busctl's arguments after the program: `call --quiet org.freedesktop.machine1 … METHOD SIG ARGS…`. */
export function machinedCallArgs(r: Omit<MachinedRegistration, "busctl">): string[] {
  const hex = r.uuid.replace(/-/g, "");
  const bytes = /^[0-9a-fA-F]{32}$/.test(hex) ? (hex.match(/../g) ?? []).map((b) => String(parseInt(b, 16))) : [];
  const common = [r.name, String(bytes.length), ...bytes, r.service ?? MACHINED_SERVICE, "container", r.leader ?? HOOK_LEADER_ARG, r.root];
  const head = ["call", "--quiet", "org.freedesktop.machine1", "/org/freedesktop/machine1", "org.freedesktop.machine1.Manager"];
  if (r.how === "register") return [...head, "RegisterMachine", "sayssus", ...common];
  // systemd applies the device policy to the scope it creates (as for systemd-nspawn)
  const items = [...(r.slice !== undefined ? [["Slice", "s", r.slice]] : []), ...MACHINED_DEVICE_PROPERTIES];
  return [...head, "CreateMachine", "sayssusa(sv)", ...common, String(items.length), ...items.flat()];
}

/** The helper's on_leader ARGV. */
export function machinedRegisterCommand(r: MachinedRegistration): string[] {
  const call = [r.busctl, ...machinedCallArgs(r)];
  const retry = 'i=0; until "$@" 2>/dev/null; do i=$((i+1)); if [ $i -ge 40 ]; then exec "$@"; fi; sleep 0.05; done';
  return ["/bin/sh", "-c", retry, "machina-register", ...call];
}

/** UnregisterMachine(name): busctl's ARGV. Its failure (already gone) does not matter. */
export function machinedUnregisterCommand(busctl: string, name: string): string[] {
  return [
    busctl,
    "call",
    "--quiet",
    "org.freedesktop.machine1",
    "/org/freedesktop/machine1",
    "org.freedesktop.machine1.Manager",
    "UnregisterMachine",
    "s",
    name,
  ];
}

/**
 * One on_exit ARGV that runs `first` (if any) and then `then`: the helper has one on_exit
 * command. Arguments of `then` must be shell-safe words (absolute paths, machine names).
 */
export function chainOnExit(first: string[] | undefined, then: string[]): string[] {
  if (first === undefined || first.length === 0) return then;
  if (!then.every((a) => /^[A-Za-z0-9_./@:=+-]+$/.test(a))) throw new Error(`chainOnExit: not shell-safe: ${then.join(" ")}`);
  return ["/bin/sh", "-c", `"$@"; ${then.join(" ")}`, "machina-on-exit", ...first];
}
