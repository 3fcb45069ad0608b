/**
 * Integration with a systemd host: detection, machina's unit template
 * (`machina-nspawn@.service`, modelled on systemd-nspawn@.service of systemd 252), machinad's
 * units (machinad.socket, machinad.service), systemctl,
 * and registration of a running container with systemd-machined over D-Bus (busctl), so the
 * host's own `machinectl list`, `systemctl -M`, `journalctl -M` and `ps -eo machine` see it.
 *
 * Environment overrides (tests): MACHINA_SYSTEMD=0|1 (force detection), MACHINA_UNIT_DIR
 * (where the template is installed, default /etc/systemd/system).
 */
import { machinaEnv } from "../config.ts";
import { MachinaError } from "../errors.ts";
import type { Host } from "../host/host.ts";
import { writeAtomic } from "../host/write-atomic.ts";
import { REPO_ROOT } from "../paths.ts";
import { managedNspawnArgs } from "../settings/managed.ts";
import { machinedCallArgs } from "../spec/register.ts";
import { DEFAULT_SOCKET, machinactlSocketPath, nspawnSocketPath, ociSocketPath } from "../client/socket-path.ts";

export const TEMPLATE_NAME = "machina-nspawn@.service";

type Env = Readonly<Record<string, string | undefined>>;

/** systemd is PID 1 (sd_booted(): /run/systemd/system exists). */
export function systemdAvailable(host: Host, env: Env = host.env()): boolean {
  const forced = machinaEnv(env, "MACHINA_SYSTEMD");
  if (forced !== undefined) return forced;
  return host.stat("/run/systemd/system", true) !== undefined;
}

export function unitDir(env: Env): string {
  return machinaEnv(env, "MACHINA_UNIT_DIR") ?? "/etc/systemd/system";
}

export function unitInstalled(host: Host, env: Env = host.env()): boolean {
  return host.stat(`${unitDir(env)}/${TEMPLATE_NAME}`, true) !== undefined;
}

export function unitName(machine: string): string {
  return `machina-nspawn@${machine}.service`;
}

/**
 * The unit template. `bin` is the directory holding machina-nspawn and machinad. Flags as
 * systemd-nspawn@.service (v252), from the one list of managed-machine flags
 * (settings/managed.ts); no WatchdogSec= (machina does not send WATCHDOG=1).
 * machina-nspawn registers the container with systemd-machined itself (RegisterMachine from the
 * helper's on_leader, spec/register.ts) and, with --keep-unit, lives in the unit's delegated
 * cgroup: supervisor/ and payload/ (spec/resources.ts).
 */
export function unitTemplate(bin: string): string {
  return `# machina's counterpart of systemd-nspawn@.service (installed by machina's scripts/setup)
[Unit]
Description=Container %i (machina)
Documentation=man:systemd-nspawn(1)
PartOf=machines.target
Before=machines.target
After=network.target
RequiresMountsFor=/var/lib/machines/%i

[Service]
ExecStart=${bin}/machina-nspawn ${managedNspawnArgs("%i", { keepUnit: true }).join(" ")}
KillMode=mixed
Type=notify
RestartForceExitStatus=133
SuccessExitStatus=133
Slice=machine.slice
Delegate=yes
TasksMax=16384
DevicePolicy=closed
DeviceAllow=/dev/net/tun rwm
DeviceAllow=char-pts rw
DeviceAllow=/dev/loop-control rw
DeviceAllow=block-loop rw
DeviceAllow=block-blkext rw
DeviceAllow=/dev/mapper/control rw
DeviceAllow=block-device-mapper rw

[Install]
WantedBy=machines.target
`;
}

/** machinad as a systemd service, and the socket that starts it (socket activation, src/daemon/activation.ts). */
export const DAEMON_SERVICE = "machinad.service";
export const DAEMON_SOCKET = "machinad.socket";

/**
 * machinad.socket and machinad.service. The socket unit binds the front ends' sockets
 * (machina-nspawn's, machinactl's and machina-oci's, at their default paths) and starts machinad
 * at the first connection: enabled, every run is served warm from the first one, with no daemon
 * running until something needs it. machinad binds its API socket itself (Bun serves it on a
 * path, not on a passed fd). Type=notify: machinad sends READY=1 once it serves
 * (src/host/notify.ts). KillMode=process: the containers machinad started (outside
 * machina-nspawn@.service, e.g. from another pool) are not its own, and stopping it leaves them
 * running, as without systemd.
 */
export function daemonUnits(bin: string): Record<typeof DAEMON_SERVICE | typeof DAEMON_SOCKET, string> {
  const listen = [ociSocketPath(DEFAULT_SOCKET, {}), nspawnSocketPath(DEFAULT_SOCKET, {}), machinactlSocketPath(DEFAULT_SOCKET, {})];
  return {
    [DAEMON_SOCKET]: `# machina's front ends' sockets, served by machinad (installed by machina's scripts/setup)
[Unit]
Description=machina front ends' sockets (machina-nspawn, machinactl, machina-oci)
Documentation=man:machinad(8)

[Socket]
${listen.map((path) => `ListenStream=${path}`).join("\n")}
SocketMode=0600
DirectoryMode=0755
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
`,
    [DAEMON_SERVICE]: `# machina's daemon (installed by machina's scripts/setup)
[Unit]
Description=machina daemon (API, front ends served warm, autostart of enabled machines)
Documentation=man:machinad(8)
Requires=${DAEMON_SOCKET}
After=${DAEMON_SOCKET} network.target

[Service]
Type=notify
ExecStart=${bin}/machinad
KillMode=process
Restart=on-failure

[Install]
WantedBy=multi-user.target
Also=${DAEMON_SOCKET}
`,
  };
}

/** Write machinad.socket and machinad.service (and reload systemd when it runs). Returns the paths written. */
export async function installDaemonUnits(host: Host, bin: string, env: Env = host.env()): Promise<string[]> {
  const dir = unitDir(env);
  host.mkdirp(dir, 0o755);
  const written: string[] = [];
  for (const [name, text] of Object.entries(daemonUnits(bin))) {
    writeAtomic(host, `${dir}/${name}`, text);
    written.push(`${dir}/${name}`);
  }
  if (systemdAvailable(host, env)) await systemctl(host, ["daemon-reload"]);
  return written;
}

/** Where the template's ExecStart finds machina-nspawn: /usr/local/bin after scripts/setup, else this checkout's bin/. */
export function unitBinDir(host: Host): string {
  return host.lstat("/usr/local/bin/machina-nspawn") !== undefined ? "/usr/local/bin" : `${REPO_ROOT}/bin`;
}

/** Write the template (and reload systemd when it runs). Returns the path written. */
export async function installUnit(host: Host, bin: string, env: Env = host.env()): Promise<string> {
  const dir = unitDir(env);
  host.mkdirp(dir, 0o755);
  const path = `${dir}/${TEMPLATE_NAME}`;
  writeAtomic(host, path, unitTemplate(bin));
  if (systemdAvailable(host, env)) await systemctl(host, ["daemon-reload"]);
  return path;
}

export async function systemctl(host: Host, args: string[]): Promise<string> {
  const r = await host.runAsync(["systemctl", ...args]);
  if (r.status !== 0) throw new MachinaError("E_SYSTEM", `systemctl ${args.join(" ")} failed: ${r.stderr.trim() || `exit ${r.status}`}`);
  return r.stdout;
}

export interface Registration {
  name: string;
  /** 32 hex digits (dashes allowed). */
  uuid: string;
  leader: number;
  root: string;
  service?: string;
}

/**
 * RegisterMachine(name, id, service, class, leader, root) on org.freedesktop.machine1, as
 * systemd-nspawn --keep-unit does: machined attaches the machine to the unit the leader's
 * cgroup belongs to, and forgets it when that unit stops. machina-nspawn does this itself when
 * the container starts (spec/register.ts); this is for `machinad register NAME` (by hand, e.g.
 * for a container started with --register=no).
 */
export function registerMachineArgs(r: Registration): string[] {
  return [
    "busctl",
    ...machinedCallArgs({ how: "register", name: r.name, uuid: r.uuid, root: r.root, leader: String(r.leader), ...(r.service ? { service: r.service } : {}) }),
  ];
}

export async function registerWithMachined(host: Host, r: Registration): Promise<void> {
  const res = await host.runAsync(registerMachineArgs(r));
  if (res.status !== 0) throw new MachinaError("E_SYSTEM", `registering "${r.name}" with systemd-machined failed: ${res.stderr.trim()}`, { machine: r.name });
}
