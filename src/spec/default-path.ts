/** The PATH a container's PID 1 (and commands entered into it) get: systemd-nspawn's. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
