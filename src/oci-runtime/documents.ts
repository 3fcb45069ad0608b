/**
 * The JSON documents machina-oci prints: `features` (runc's format, from the tables machina's
 * mapping uses: what it says is what settings/oci-config.ts accepts) and `spec` (a default
 * config.json as `runc spec` writes it).
 */
import { CAPABILITIES } from "../settings/capabilities.ts";
import { ociSeccompFeatures } from "../settings/oci-seccomp.ts";
import { OCI_VERSION } from "./state.ts";
import { DEFAULT_PATH } from "../spec/default-path.ts";

const DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

export function features(): Record<string, unknown> {
  return {
    ociVersionMin: "1.0.0",
    ociVersionMax: OCI_VERSION,
    hooks: ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
    mountOptions: ["bind", "rbind", "ro", "rw", "private", "rprivate"],
    linux: {
      namespaces: ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
      capabilities: [...CAPABILITIES],
      cgroup: { v1: false, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: { enabled: true, ...ociSeccompFeatures() },
      apparmor: { enabled: false },
      selinux: { enabled: true },
      intelRdt: { enabled: false },
    },
    annotations: { "org.opencontainers.runc.version": "machina-oci", "io.github.machina.engine": "machina-helper" },
  };
}

export function defaultSpec(): Record<string, unknown> {
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: [`PATH=${DEFAULT_PATH}`, "TERM=xterm"],
      cwd: "/",
      capabilities: { bounding: DEFAULT_CAPS, effective: DEFAULT_CAPS, permitted: DEFAULT_CAPS, ambient: DEFAULT_CAPS },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "machina",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}
