#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Interactive console check: run `machina-helper run --spec SPEC` on a pty (the spec's payload
should trap WINCH and print `stty size`, e.g. mkspec.py --console interactive -- /bin/sh -c
'trap "stty size" WINCH; while :; do sleep 0.1; done'). Checks raw mode while running,
SIGWINCH -> TIOCSWINSZ, ^]^]^] -> SIGKILL (exit 137), and the terminal restored afterwards."""
import fcntl, os, pty, select, signal, struct, sys, termios, time

helper, spec = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", '"$0" run --spec "$1"; echo "rc=$?"; stty -a', helper, spec])


def drain(t):
    out, end = b"", time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


fails = 0


def check(cond, name):
    global fails
    print(("ok" if cond else "not ok") + " - " + name)
    fails += 0 if cond else 1


fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
time.sleep(0.6)
check(not (termios.tcgetattr(fd)[3] & termios.ICANON), "host terminal in raw mode while running")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
sup = os.popen("pgrep -P %d -x machina-sup" % pid).read().split()
for s in sup:
    os.kill(int(s), signal.SIGWINCH)
check(b"40 132" in drain(0.6), "SIGWINCH: new size reaches the container")
os.write(fd, b"\x1d\x1d\x1d")
out = drain(1.0)
check(b"rc=137" in out, "^]^]^] kills the container (exit 137)")
check(b" icanon" in out and b"-icanon" not in out, "terminal restored after exit")
os.waitpid(pid, 0)
sys.exit(1 if fails else 0)
