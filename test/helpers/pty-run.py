#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""pty-run.py STEPS_JSON CMD ARGS...: run CMD on a fresh pseudo terminal (as a user's shell
would: a session leader with the pty as controlling terminal, 24x80), follow a small script and
report what happened as one JSON line on stdout:

  {"code": N, "output": "...", "raw": [bool, ...], "sane_before": bool, "sane_after": bool,
   "timeout": bool}

STEPS is a JSON list of {"expect": "text"} (wait until the output contains it, after the previous
expect), {"send": "bytes"}, {"raw": true} (record whether the terminal is in raw mode: ICANON and
ECHO off) and {"sleep": seconds}. After the steps, waits for CMD to exit (10 s) and records whether
the terminal settings are back to what they were before (ICANON, ECHO, ISIG, OPOST, ICRNL)."""
import json, os, pty, select, signal, sys, termios, time, fcntl, struct

steps = json.loads(sys.argv[1])
cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)

fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
out = b""
pos = 0
timed_out = False


def attrs():
    a = termios.tcgetattr(fd)
    return {"icanon": bool(a[3] & termios.ICANON), "echo": bool(a[3] & termios.ECHO), "isig": bool(a[3] & termios.ISIG),
            "opost": bool(a[1] & termios.OPOST), "icrnl": bool(a[0] & termios.ICRNL)}


before = attrs()


def pump(t):
    global out
    r, _, _ = select.select([fd], [], [], t)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        out += data
    return True


raw = []
deadline_all = time.time() + 20
for s in steps:
    if "expect" in s:
        want = s["expect"].encode()
        end = time.time() + 10
        while want not in out[pos:] and time.time() < end:
            if not pump(0.05):
                break
        i = out.find(want, pos)
        if i < 0:
            timed_out = True
            break
        pos = i + len(want)
    elif "send" in s:
        os.write(fd, s["send"].encode("latin-1"))
    elif "raw" in s:
        a = attrs()
        raw.append(not a["icanon"] and not a["echo"])
    elif "sleep" in s:
        end = time.time() + s["sleep"]
        while time.time() < end:
            pump(max(0, min(0.05, end - time.time())))

code = None
end = time.time() + 10
while time.time() < end:
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid == pid:
        code = os.waitstatus_to_exitcode(st)
        code = 128 - code if code < 0 else code
        break
    pump(0.05)
if code is None:
    timed_out = True
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
while pump(0.01):
    pass
after = attrs()
print(json.dumps({"code": code, "output": out.decode("utf-8", "replace"), "raw": raw,
                  "before": before, "after": after, "restored": before == after, "timeout": timed_out}))
