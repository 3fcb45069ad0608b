#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""subreaper.py CMD ARGS...: run CMD as a child of a PR_SET_CHILD_SUBREAPER process, reap every
descendant that gets reparented to us (this host's PID 1 does not reap), and exit with CMD's
status (128+N if it was killed by signal N) once no descendant is left. Used by tests that
SIGKILL the supervisor, so its orphaned container does not stay a zombie."""
import ctypes, os, sys

PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
status = 1
while True:
    try:
        pid, st = os.wait()
    except ChildProcessError:
        break
    if pid == child:
        status = os.waitstatus_to_exitcode(st)
        status = 128 - status if status < 0 else status
sys.exit(status)
