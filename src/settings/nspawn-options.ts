/**
 * systemd-nspawn 252's command-line options, as a getopt table. Every option nspawn knows is
 * listed, so that a known option is never reported as "unrecognized".
 */
import { option as o, type OptionDef } from "./getopt.ts";

export const NSPAWN_OPTIONS: readonly OptionDef[] = [
  o("help", "help", "h", "none"),
  o("version", "version", undefined, "none"),
  o("quiet", "quiet", "q", "none"),
  o("no-pager", "no-pager", undefined, "none"),
  o("settings", "settings", undefined, "required"),
  // Image
  o("directory", "directory", "D", "required"),
  o("template", "template", undefined, "required"),
  o("ephemeral", "ephemeral", "x", "none"),
  o("image", "image", "i", "required"),
  o("oci-bundle", "oci-bundle", undefined, "required"),
  o("read-only", "read-only", undefined, "none"),
  o("volatile", "volatile", undefined, "optional"),
  o("root-hash", "root-hash", undefined, "required"),
  o("root-hash-sig", "root-hash-sig", undefined, "required"),
  o("verity-data", "verity-data", undefined, "required"),
  o("pivot-root", "pivot-root", undefined, "required"),
  // Execution
  o("as-pid2", "as-pid2", "a", "none"),
  o("boot", "boot", "b", "none"),
  o("chdir", "chdir", undefined, "required"),
  o("setenv", "setenv", "E", "required"),
  o("user", "user", "u", "required"),
  o("kill-signal", "kill-signal", undefined, "required"),
  o("notify-ready", "notify-ready", undefined, "required"),
  o("suppress-sync", "suppress-sync", undefined, "required"),
  // System identity
  o("machine", "machine", "M", "required"),
  o("hostname", "hostname", undefined, "required"),
  o("uuid", "uuid", undefined, "required"),
  // Properties
  o("slice", "slice", "S", "required"),
  o("property", "property", undefined, "required"),
  o("register", "register", undefined, "required"),
  o("keep-unit", "keep-unit", undefined, "none"),
  // User namespacing
  o("private-users", "private-users", undefined, "optional"),
  o("private-users-ownership", "private-users-ownership", undefined, "required"),
  o("private-users-chown", "private-users-chown", undefined, "none"),
  o("U", undefined, "U", "none"),
  // Networking
  o("private-network", "private-network", undefined, "none"),
  o("network-interface", "network-interface", undefined, "required"),
  o("network-macvlan", "network-macvlan", undefined, "required"),
  o("network-ipvlan", "network-ipvlan", undefined, "required"),
  o("network-veth", "network-veth", "n", "none"),
  o("network-veth-extra", "network-veth-extra", undefined, "required"),
  o("network-bridge", "network-bridge", undefined, "required"),
  o("network-zone", "network-zone", undefined, "required"),
  o("network-namespace-path", "network-namespace-path", undefined, "required"),
  o("port", "port", "p", "required"),
  // Security
  o("capability", "capability", undefined, "required"),
  o("drop-capability", "drop-capability", undefined, "required"),
  o("ambient-capability", "ambient-capability", undefined, "required"),
  o("no-new-privileges", "no-new-privileges", undefined, "required"),
  o("system-call-filter", "system-call-filter", undefined, "required"),
  o("selinux-context", "selinux-context", "Z", "required"),
  o("selinux-apifs-context", "selinux-apifs-context", "L", "required"),
  // Resources
  o("rlimit", "rlimit", undefined, "required"),
  o("oom-score-adjust", "oom-score-adjust", undefined, "required"),
  o("cpu-affinity", "cpu-affinity", undefined, "required"),
  o("personality", "personality", undefined, "required"),
  // Integration
  o("resolv-conf", "resolv-conf", undefined, "required"),
  o("timezone", "timezone", undefined, "required"),
  o("link-journal", "link-journal", undefined, "required"),
  o("j", undefined, "j", "none"),
  // Mounts
  o("bind", "bind", undefined, "required"),
  o("bind-ro", "bind-ro", undefined, "required"),
  o("inaccessible", "inaccessible", undefined, "required"),
  o("tmpfs", "tmpfs", undefined, "required"),
  o("overlay", "overlay", undefined, "required"),
  o("overlay-ro", "overlay-ro", undefined, "required"),
  o("bind-user", "bind-user", undefined, "required"),
  // Input/output
  o("console", "console", undefined, "required"),
  o("pipe", "pipe", "P", "none"),
  // Credentials
  o("set-credential", "set-credential", undefined, "required"),
  o("load-credential", "load-credential", undefined, "required"),
];
