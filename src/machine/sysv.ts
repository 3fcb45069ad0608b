/**
 * machinad on a host whose init is sysvinit (or OpenRC on Debian, which runs the same scripts):
 * an LSB init script, /etc/init.d/machinad, as Debian's daemons ship one beside their systemd
 * units. It starts machinad in the background with start-stop-daemon and waits for its READY=1
 * (`--notify-await`: machinad speaks sd_notify, src/host/notify.ts), so `service machinad start`
 * returns when the front ends are served; `stop` signals machinad alone (its containers keep
 * running, as with the systemd unit's KillMode=process). At boot machinad starts every enabled
 * machine (`machinactl enable`). scripts/setup installs it on such hosts (update-rc.d). The
 * process is matched by its pid file and name, not by --exec: after an upgrade replaced the
 * binary, the running machinad's executable is the old file, and `restart` must still find it.
 */
import type { Host } from "../host/host.ts";
import { writeAtomic } from "../host/write-atomic.ts";

export const DAEMON_INIT_SCRIPT = "machinad";
/** machinad's log under the init script (start-stop-daemon --output) */
export const DAEMON_LOG = "/var/log/machinad.log";

export interface InitScriptPaths {
  /** machinad's path (scripts/setup: /usr/local/bin/machinad). */
  daemon: string;
  pidFile?: string;
  /** machinad's log (its stderr, one JSON object per line) */
  logFile?: string;
  /** sourced when readable: MACHINAD_OPTS (its options), and any variable to export to it */
  defaults?: string;
}

/** The script's text. */
export function daemonInitScript(p: InitScriptPaths): string {
  const pidFile = p.pidFile ?? "/run/machinad.pid";
  const logFile = p.logFile ?? DAEMON_LOG;
  const defaults = p.defaults ?? "/etc/default/machinad";
  return `#!/bin/sh
# machina's daemon (installed by machina's scripts/setup; src/machine/sysv.ts)
### BEGIN INIT INFO
# Provides:          machinad
# Required-Start:    $local_fs $remote_fs $network
# Required-Stop:     $local_fs $remote_fs $network
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: machina daemon
# Description:       machina's API, the front ends' planning served warm, and enabled machines at boot
### END INIT INFO

DAEMON=${p.daemon}
PIDFILE=${pidFile}
LOGFILE=${logFile}
MACHINAD_OPTS=
[ -r ${defaults} ] && . ${defaults}
[ -x "$DAEMON" ] || exit 0
. /lib/lsb/init-functions

case "$1" in
start)
	log_daemon_msg "Starting machina daemon" machinad
	# returns once machinad serves (its READY=1); one that cannot start says why at once (ERRNO=)
	start-stop-daemon --start --quiet --oknodo --background --make-pidfile --pidfile "$PIDFILE" --name machinad \\
		--startas "$DAEMON" --output "$LOGFILE" --notify-await --notify-timeout 60 -- $MACHINAD_OPTS
	rc=$?
	log_end_msg $rc
	if [ $rc -ne 0 ]; then
		rm -f "$PIDFILE"
		tail -n 1 "$LOGFILE" >&2
	fi
	exit $rc
	;;
stop)
	log_daemon_msg "Stopping machina daemon" machinad
	# machinad alone: the containers it started keep running
	start-stop-daemon --stop --quiet --oknodo --retry=TERM/30/KILL/5 --pidfile "$PIDFILE" --remove-pidfile --name machinad
	log_end_msg $?
	;;
restart|force-reload)
	"$0" stop && "$0" start
	;;
status)
	status_of_proc -p "$PIDFILE" "$DAEMON" machinad
	;;
*)
	echo "Usage: $0 {start|stop|restart|force-reload|status}" >&2
	exit 3
	;;
esac
`;
}

/**
 * logrotate's entry for machinad's log: start-stop-daemon opens it O_APPEND, so a copy and a
 * truncation in place (copytruncate) need no restart of machinad.
 */
export function daemonLogrotate(logFile = DAEMON_LOG): string {
  return `# machinad's log (installed by machina's scripts/setup; src/machine/sysv.ts)
${logFile} {
	weekly
	rotate 4
	compress
	delaycompress
	missingok
	notifempty
	copytruncate
}
`;
}

/**
 * Write /etc/init.d/machinad, 0755, and — where logrotate is installed (/etc/logrotate.d) — its
 * log's entry there. Returns the paths written.
 */
export function installDaemonInitScript(host: Host, daemon: string, dirs = { initd: "/etc/init.d", logrotate: "/etc/logrotate.d" }): string[] {
  host.mkdirp(dirs.initd, 0o755);
  const script = `${dirs.initd}/${DAEMON_INIT_SCRIPT}`;
  writeAtomic(host, script, daemonInitScript({ daemon }), 0o755);
  if (host.stat(dirs.logrotate, true) === undefined) return [script];
  const entry = `${dirs.logrotate}/${DAEMON_INIT_SCRIPT}`;
  writeAtomic(host, entry, daemonLogrotate());
  return [script, entry];
}
