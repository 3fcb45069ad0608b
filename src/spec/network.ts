/** What the spec needs to know about networking (src/net/ carries it out). Pure. */
import type { Settings } from "../settings/settings.ts";

/** Does this container need a network namespace prepared by machina (src/net/)? */
export function wantsManagedNetwork(s: Settings): boolean {
  return (
    s.networkVeth ||
    s.networkVethExtra.length > 0 ||
    s.networkBridge !== undefined ||
    s.networkZone !== undefined ||
    s.networkInterfaces.length > 0 ||
    s.networkMacvlan.length > 0 ||
    s.networkIpvlan.length > 0 ||
    s.ports.length > 0
  );
}

/**
 * Must src/net/ prepare the network namespace before the start (links moved or created into it:
 * --network-interface, --network-veth-extra, --network-ipvlan)? Otherwise the container gets a
 * namespace of its own from the clone (owned by its user namespace with -U, as with
 * systemd-nspawn) and the helper creates the main veth and the macvlans in it (net_* records).
 * Macvlans alone need no prepared namespace: made in the container's, they go with it.
 */
export function wantsPreparedNetns(s: Settings): boolean {
  return s.networkVethExtra.length > 0 || s.networkInterfaces.length > 0 || s.networkIpvlan.length > 0;
}

/** Does machina give the container an address and a route to the outside (veth or zone, not an administrator's bridge)? */
export function routedNetwork(s: Settings): boolean {
  return (s.networkVeth || s.networkZone !== undefined) && s.networkBridge === undefined;
}

/** The nsfs bind mount of a machine's network namespace. */
export function netnsPath(stateDir: string, machine: string): string {
  return `${stateDir}/netns/${machine}`;
}

/**
 * The file the supervisor creates when its container is gone, before it starts the network's
 * teardown in the background (`exit_mark`): a record with this mark belongs to a machine that
 * has ended, so a start of the same name right after may tear it down itself (net/setup.ts).
 */
export function netExitMarkPath(stateDir: string, machine: string): string {
  return `${stateDir}/net/${machine}.exited`;
}
