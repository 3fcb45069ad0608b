import { NSPAWN_COMPAT_VERSION, VERSION } from "../paths.ts";

export const NSPAWN_VERSION_TEXT = `machina-nspawn ${VERSION} (systemd-nspawn ${NSPAWN_COMPAT_VERSION} compatible)\n`;

export const NSPAWN_HELP = `machina-nspawn [OPTIONS...] [COMMAND [ARGUMENTS...]]

Run a command in, or boot, a light-weight container.

  -h --help                 Show this help and exit
     --version              Show the version and exit
  -q --quiet                Print no status messages
     --no-pager             Accepted for compatibility (machina never pages)
     --settings=MODE        Use .nspawn settings files: yes, no, override, trusted

Image:
  -D --directory=PATH       Directory to use as the container's root (default: the
                            image named by -M in /var/lib/machines, else the
                            current directory)
     --template=PATH        Populate a missing or empty root directory from PATH
  -x --ephemeral            Run on a throw-away copy of the root, removed on exit
  -i --image=PATH           Disk image (.raw) to use as the root
     --oci-bundle=PATH      OCI bundle (not supported by machina)
     --read-only            Mount the root read-only
     --volatile[=MODE]      Run with a volatile root: yes, state, overlay, no
     --root-hash=HASH       dm-verity root hash (not supported by machina)
     --root-hash-sig=SIG    dm-verity signature (not supported by machina)
     --verity-data=PATH     dm-verity data (not supported by machina)
     --pivot-root=PATH[:PATH]
                            Make PATH inside the image the root; optionally keep
                            the old root at the second PATH

Execution:
  -a --as-pid2              Run a minimal init as PID 1 and COMMAND as PID 2
  -b --boot                 Boot the image's init instead of running a command
     --chdir=PATH           Working directory inside the container
  -E --setenv=NAME[=VALUE]  Set a variable for PID 1 (NAME alone passes the
                            caller's value)
  -u --user=USER            Run COMMAND as USER (a name or UID of the container)
     --kill-signal=SIGNAL   Signal that asks PID 1 to stop (default: SIGRTMIN+3
                            with --boot, SIGKILL otherwise)
     --notify-ready=BOOL    Consider the container ready only when PID 1 sends
                            READY=1
     --suppress-sync=BOOL   Turn sync(), fsync() and friends into no-ops

System identity:
  -M --machine=NAME         Machine name (default: the directory's name); also the
                            hostname unless --hostname is given
     --hostname=NAME        Hostname inside the container
     --uuid=UUID            The container's UUID ($container_uuid)

Properties:
  -S --slice=SLICE          Put the container's cgroup under SLICE
     --property=NAME=VALUE  Resource control: MemoryMax, MemoryHigh, TasksMax,
                            CPUQuota, CPUWeight, IOWeight
     --register=BOOL        Register with the host's machine manager
     --keep-unit            Run as part of the caller's service: on reboot of the
                            container exit with 133 instead of restarting

User namespacing:
     --private-users=no     No user namespace (default)
     --private-users=yes|pick|identity
                            Use a user namespace; take the ID range from the
                            root's owner (yes), pick a free one (pick), or map
                            IDs to themselves (identity)
     --private-users=UIDBASE[:NUIDS]
                            Use the given host ID range (65536 IDs by default)
     --private-users-ownership=MODE
                            Make the tree's ownership fit the range: off, chown,
                            map (ID-mapped mount), auto
  -U                        Same as --private-users=pick
                            --private-users-ownership=auto

Networking:
     --private-network      Give the container only a loopback device
     --network-interface=INTERFACE[:NAME]
                            Move a host interface into the container
     --network-macvlan=INTERFACE[:NAME]
                            Give the container a MACVLAN interface on INTERFACE
     --network-ipvlan=INTERFACE[:NAME]
                            Give the container an IPVLAN interface on INTERFACE
  -n --network-veth         Connect host and container with a veth pair
     --network-veth-extra=HOSTIF[:CONTAINERIF]
                            Add another veth pair
     --network-bridge=INTERFACE
                            Attach the container's veth to an existing bridge
     --network-zone=NAME    Attach the container's veth to the bridge of a zone,
                            created when the first container joins it
     --network-namespace-path=PATH
                            Join the network namespace at PATH
  -p --port=[PROTOCOL:]HOSTPORT[:CONTAINERPORT]
                            Forward a host port to the container

Security:
     --capability=CAP       Keep CAP in addition to the default set
     --drop-capability=CAP  Drop CAP from the default set ('all' drops every one)
     --ambient-capability=CAP
                            Raise CAP as an ambient capability for COMMAND
     --no-new-privileges=BOOL
                            Set PR_SET_NO_NEW_PRIVS for the payload
     --system-call-filter=LIST|~LIST
                            Allow, or with '~' deny, system calls and @groups
  -Z --selinux-context=LABEL
                            Run the payload (and what machinactl shell enters)
                            with this SELinux label (needs SELinux enabled)
  -L --selinux-apifs-context=LABEL
                            SELinux context of the API file systems (tmpfs,
                            devpts) (needs SELinux enabled)

Resources:
     --rlimit=NAME=SOFT[:HARD]
                            Resource limit for the payload (e.g. NOFILE=1024:4096)
     --oom-score-adjust=VALUE
                            OOM score adjustment for the payload (-1000..1000)
     --cpu-affinity=CPUS    CPUs the container may run on (e.g. 0-1,3)
     --personality=ARCH     Report ARCH as the architecture (e.g. x86)

Integration:
     --resolv-conf=MODE     /etc/resolv.conf: off, copy-host, copy-static,
                            copy-uplink, copy-stub, replace-host, replace-static,
                            replace-uplink, replace-stub, bind-host, bind-static,
                            bind-uplink, bind-stub, delete, auto (default)
     --timezone=MODE        /etc/localtime: off, copy, bind, symlink, delete, auto
     --link-journal=MODE    Make the container's journal visible on the host: no,
                            auto, guest, host, try-guest, try-host
  -j                        Same as --link-journal=try-guest

Mounts:
     --bind=PATH[:PATH[:OPTIONS]]
                            Bind-mount a host path into the container ('+PATH' is
                            inside the image, an empty PATH a temporary directory;
                            OPTIONS: rbind, norbind, idmap, noidmap, rootidmap)
     --bind-ro=PATH[:PATH[:OPTIONS]]
                            The same, read-only
     --inaccessible=PATH    Hide PATH behind an inaccessible node
     --tmpfs=PATH[:OPTIONS] Mount a tmpfs at PATH
     --overlay=PATH[:PATH...]:PATH
                            Overlay mount: lower layers, the writable upper
                            layer, then the destination
     --overlay-ro=PATH[:PATH...]:PATH
                            Read-only overlay mount: layers, then the destination
     --bind-user=NAME       Make a host user and its home available inside

Input/Output:
     --console=MODE         interactive (a terminal), read-only (output only),
                            passive (nothing), pipe (stdio passed through) or
                            autopipe (interactive on a terminal, pipe otherwise)
  -P --pipe                 Same as --console=pipe

Credentials:
     --set-credential=ID:VALUE
                            Give the container credential ID with VALUE
     --load-credential=ID:PATH
                            Give the container credential ID read from PATH

Options that machina does not carry out are refused with a clear message, never
ignored. Documentation: README.md and docs/ in the machina sources.
`;
