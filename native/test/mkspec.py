#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Write a RunSpec (wire format v1, see ../SPEC.md) for a simple rootfs, for hand testing.

  mkspec.py --root /tmp/bbroot [options] -- /bin/sh -c 'echo hi' > /tmp/spec
  native/build/machina-helper run --spec /tmp/spec

The mount list mirrors what systemd-nspawn 252 sets up for a non-boot container.
"""
import argparse
import sys

MS = dict(ro=1, nosuid=2, nodev=4, noexec=8, bind=4096, rec=16384, strictatime=1 << 24)


def flags(s):
    v = 0
    for f in filter(None, s.split(",")):
        v |= MS[f]
    return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--machine", default="bbtest")
    ap.add_argument("--hostname")
    ap.add_argument("--console", default="pipe", choices=["interactive", "read-only", "passive", "pipe"])
    ap.add_argument("--opost", default="1")
    ap.add_argument("--quiet", choices=["0", "1"], help="quiet record (absent = helper default 1)")
    ap.add_argument("--as-pid2", action="store_true")
    ap.add_argument("--boot", action="store_true")
    ap.add_argument("--on-reboot", default="restart")
    ap.add_argument("--kill-signal", type=int, default=9)
    ap.add_argument("--status-fd", type=int)
    ap.add_argument("--registry")
    ap.add_argument("--cgroup", action="append", default=[])
    ap.add_argument("--cgroupns", action="store_true")
    ap.add_argument("--private-network", action="store_true")
    ap.add_argument("--read-only", action="store_true")
    ap.add_argument("--notify-forward")
    ap.add_argument("--notify-ready", default="0")
    ap.add_argument("--bind", action="append", default=[], help="HOST:CONTAINER")
    ap.add_argument("--user", help="UID:GID")
    ap.add_argument("--caps", default="0x%x" % (
        # nspawn's default retained set (nspawn-facts.md)
        sum(1 << c for c in (30, 29, 0, 1, 2, 3, 4, 15, 5, 28, 9, 27, 10, 11, 13, 31, 6, 8, 7, 21, 22, 18, 23, 19, 24, 26))))
    ap.add_argument("--no-caps", action="store_true")
    ap.add_argument("--rlimit", action="append", default=[], help="RES:SOFT:HARD")
    ap.add_argument("--raw-record", action="append", default=[], nargs="+", help="NAME ARGS...: append any setup record (the count is added)")
    ap.add_argument("--userns", help="BASE[:COUNT]: user namespace mapping 0..COUNT-1 to BASE..")
    ap.add_argument("--idmap-root", action="store_true", help="with --userns: idmapped root (idmap_root BASE COUNT)")
    ap.add_argument("--chown-root", action="store_true", help="with --userns: chown_root BASE 65536")
    ap.add_argument("--userns-lock", help="HPATH of the UID range lock")
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()

    recs = []

    def rec(name, *args):
        recs.append((name, list(args)))

    rec("prog", "machina-nspawn")
    rec("machine", a.machine)
    rec("root", a.root)
    rec("read_only", "1" if a.read_only else "0")
    ns = ["mnt", "pid", "uts", "ipc"] + (["net"] if a.private_network else []) + (["cgroup"] if a.cgroupns else [])
    ubase, ucount = (int(x) for x in (a.userns + ":65536").split(":")[:2]) if a.userns else (None, None)
    if a.userns:
        ns.append("user")
    rec("namespaces", *ns)
    rec("hostname", a.hostname or a.machine)
    if a.status_fd is not None:
        rec("status_fd", str(a.status_fd))
    if a.registry:
        rec("registry", a.registry)
        rec("state_json", '"name":"%s","root":"%s"' % (a.machine, a.root))
    for cg in a.cgroup:
        rec("cgroup", cg)
    rec("kill_signal", str(a.kill_signal))
    rec("boot", "1" if a.boot else "0")
    rec("on_reboot", a.on_reboot)
    rec("notify_ready", a.notify_ready)
    if a.notify_forward:
        rec("notify_forward", a.notify_forward)
    rec("console", a.console)
    rec("console_opost", a.opost)
    if a.userns:
        rec("uid_map", "0", str(ubase), str(ucount))
        rec("gid_map", "0", str(ubase), str(ucount))
        rec("cgroup_owner", str(ubase), str(ubase))
        if a.idmap_root:
            rec("idmap_root", str(ubase), str(ucount))
        if a.chown_root:
            rec("chown_root", str(ubase), "65536")
        if a.userns_lock:
            rec("userns_lock", a.userns_lock)
    if a.quiet is not None:
        rec("quiet", a.quiet)

    # --- setup ops ---
    rec("mount", "proc", "/proc", "proc", flags("nosuid,nodev,noexec"), "", "dir")
    for p in ("/proc/sys",):
        rec("rebind", p, flags("ro,nosuid,nodev,noexec"), "1")
    for p in ("acpi", "apm", "asound", "bus", "fs", "irq", "scsi"):
        rec("rebind", "/proc/" + p, flags("ro,nosuid,nodev,noexec"), "1")
    if a.userns and not a.private_network:
        rec("fsmount", "sysfs", "/sys", flags("ro,nosuid,nodev,noexec"), "")
    else:
        rec("mount", "sysfs", "/sys", "sysfs", flags("ro,nosuid,nodev,noexec"), "", "dir")
    rec("mount", "tmpfs", "/dev", "tmpfs", flags("nosuid,strictatime"), "mode=755,size=4m", "dir")
    for name, maj, mnr in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                           ("urandom", 1, 9), ("tty", 5, 0)):
        if a.userns:  # no mknod in a user namespace: the host's nodes are bound
            rec("mount", "/dev/" + name, "/dev/" + name, "", flags("bind"), "", "file")
        else:
            rec("mknod", "/dev/" + name, "020666", str(maj), str(mnr))
    rec("mount", "devpts", "/dev/pts", "devpts", flags("nosuid,noexec"),
        "newinstance,ptmxmode=0666,mode=620,gid=5", "dir")
    rec("symlink", "pts/ptmx", "/dev/ptmx")
    rec("symlink", "/proc/self/fd", "/dev/fd")
    for i, n in enumerate(("stdin", "stdout", "stderr")):
        rec("symlink", "/proc/self/fd/%d" % i, "/dev/" + n)
    rec("mount", "tmpfs", "/dev/shm", "tmpfs", flags("nosuid,nodev,strictatime"), "mode=1777", "dir")
    rec("mount", "tmpfs", "/run", "tmpfs", flags("nosuid,nodev,strictatime"), "mode=755", "dir")
    rec("mount", "tmpfs", "/tmp", "tmpfs", flags("nosuid,nodev,strictatime"), "mode=1777", "dir")
    rec("mkdir", "/run/host/inaccessible", "0755")
    rec("mknod", "/run/host/inaccessible/reg", "0100000", "0", "0")
    rec("mkdir", "/run/host/inaccessible/dir", "0000")
    rec("mknod", "/run/host/inaccessible/chr", "020000", "0", "0")
    if not a.userns:  # a block node cannot be made in a user namespace
        rec("mknod", "/run/host/inaccessible/blk", "060000", "0", "0")
    rec("mknod", "/run/host/inaccessible/fifo", "010000", "0", "0")
    rec("mknod", "/run/host/inaccessible/sock", "0140000", "0", "0")
    rec("write", "/run/host/container-manager", "0444", "machina\n")
    for p in ("kallsyms", "kcore", "keys", "sysrq-trigger", "timer_list"):
        rec("mask", "/proc/" + p)
    for b in a.bind:
        h, c = b.split(":", 1)
        rec("mount", h, c, "", flags("bind,rec"), "", "dir")
    if a.cgroupns:
        rec("cgroupns")
    rec("notify", "/run/host/notify")
    for r in a.raw_record:
        rec(r[0], *r[1:])

    # --- payload ---
    rec("env", "container=machina", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root", "TERM=xterm", "NOTIFY_SOCKET=/run/host/notify")
    rec("chdir", "/")
    if not a.no_caps:
        rec("caps_bounding", a.caps)
    for r in a.rlimit:
        rec("rlimit", *r.split(":"))
    if a.user:
        u, g = a.user.split(":")
        rec("user", u, g)
    rec("as_pid2", "1" if a.as_pid2 else "0")
    rec("exec", a.cmd[0], a.cmd[0].rsplit("/", 1)[-1])
    rec("args", *a.cmd[1:])

    out = bytearray(b"MACHINA-SPEC\0" b"1\0")
    for name, args in recs:
        out += name.encode() + b"\0" + str(len(args)).encode() + b"\0"
        for x in args:
            out += x.encode() + b"\0"
    out += b"end\0" b"0\0"
    sys.stdout.buffer.write(out)


if __name__ == "__main__":
    main()
