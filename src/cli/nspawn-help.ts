import { NSPAWN_COMPAT_VERSION, VERSION } from "../paths.ts";

export const NSPAWN_VERSION_TEXT = `machina-nspawn ${VERSION} (systemd-nspawn ${NSPAWN_COMPAT_VERSION} compatible)\n`;

export const NSPAWN_HELP = `machina-nspawn [OPTIONS...] [-D PATH] [COMMAND [ARGUMENTS...]]

Run a command in, or boot, a light-weight container.

  -h --help                 Show this help and exit
     --version              Show the version and exit
  -q --quiet                Print no status messages
     --settings=MODE        Use .nspawn settings files (yes, no, override, trusted)

Image:
  -D --directory=PATH       Directory to use as the container's root; without it,
                            -M NAME picks NAME from the image pool, else the
                            current directory is used
     --read-only            Mount the root directory read-only

Execution:
  -a --as-pid2              Run a minimal init as PID 1 and COMMAND as PID 2
  -b --boot                 Boot the image's init (systemd) instead of a command
     --chdir=PATH           Working directory inside the container
  -E --setenv=NAME[=VALUE]  Set an environment variable for PID 1 (NAME alone
                            passes the caller's value)
  -u --user=USER            Run COMMAND as USER (a name or a UID) of the container
     --kill-signal=SIGNAL   Signal that asks PID 1 to stop (default: SIGRTMIN+3
                            with --boot, SIGKILL otherwise)
     --notify-ready=BOOL    Report readiness only when PID 1 sends READY=1

System identity:
  -M --machine=NAME         Machine name (default: the directory's name); also
                            the hostname unless --hostname is given
     --hostname=NAME        Hostname inside the container
     --uuid=UUID            The container's UUID ($container_uuid)

Properties:
     --register=BOOL        Register the machine (always in machina's registry)
     --keep-unit            Run inside the caller's service: on reboot of the
                            container, exit with status 133 instead of restarting

Networking:
     --private-network      Give the container only a loopback device

Security:
     --capability=CAP       Keep CAP in addition to the default set
     --drop-capability=CAP  Drop CAP from the default set ('all' drops every one)
     --ambient-capability=CAP
                            Raise CAP as an ambient capability for COMMAND
     --no-new-privileges=BOOL
                            Set PR_SET_NO_NEW_PRIVS for the payload

Resources:
     --rlimit=NAME=SOFT[:HARD]
                            Resource limit for the payload (e.g. NOFILE=1024:4096)

Integration:
     --resolv-conf=MODE     How /etc/resolv.conf is set up: off, copy-host,
                            copy-static, copy-uplink, copy-stub, replace-…,
                            bind-…, delete, auto (default)
     --timezone=MODE        How /etc/localtime is set up: off, copy, bind,
                            symlink, delete, auto (default)

Input/Output:
     --console=MODE         interactive (a terminal), read-only (output only),
                            passive (nothing), pipe (stdin/stdout/stderr passed
                            through) or autopipe (interactive on a terminal,
                            pipe otherwise)
  -P --pipe                 Same as --console=pipe

Other systemd-nspawn options are recognised; those not yet carried out are
refused with a clear message rather than ignored. See README.md.
`;
