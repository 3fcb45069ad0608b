/**
 * The machina-nspawn flags of a *managed* machine: one started by `machinactl start`,
 * `enable --now`, machinad (API start, autostart at boot, restarts) or the systemd unit template
 * (machina-nspawn@.service). The one list every managed start path uses, so that they cannot
 * drift apart: the flags of systemd-nspawn@.service (systemd 252):
 *
 *   --quiet --keep-unit --boot --link-journal=try-guest --network-veth -U --settings=override --machine=NAME
 *
 * -U is `--private-users=pick --private-users-ownership=auto`: the container gets a 65536-id
 * range of its own, and the image's ownership is matched by an ID-mapped root mount where its
 * file system allows it (nothing on disk changes), else by a one-time chown of the tree into the
 * range (systemd's default for the unit; chosen over `map`, which would refuse to start on such
 * file systems and so push administrators to PrivateUsers=no, i.e. real root on the host).
 * --network-veth gives it a veth (host0 inside, ve-NAME outside) with an address from src/net/.
 *
 * --settings=override lets the machine's .nspawn file win over these flags, but only a trusted
 * file (/etc/systemd/nspawn, /run/systemd/nspawn) may set PrivateUsers= or [Network] keys
 * (settings/trust.ts): `PrivateUsers=no` or `VirtualEthernet=no` there turns them off; the same
 * lines in an untrusted file next to the image are ignored with a warning.
 */

export interface ManagedArgsOptions {
  /** Run as part of the caller's unit (the systemd unit template). */
  keepUnit?: boolean;
}

/** machina-nspawn's arguments for managed machine `machine` (`%i` in the unit template). */
export function managedNspawnArgs(machine: string, options: ManagedArgsOptions = {}): string[] {
  return [
    "--quiet",
    ...(options.keepUnit ? ["--keep-unit"] : []),
    "--boot",
    "--link-journal=try-guest",
    "--network-veth",
    "-U",
    "--settings=override",
    `--machine=${machine}`,
  ];
}
