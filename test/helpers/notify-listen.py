#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""notify-listen.py PATH: bind an AF_UNIX datagram socket at PATH (a service manager's
NOTIFY_SOCKET) and print every datagram as a JSON line {"t": epoch_ms, "msg": "..."}, flushed,
until SIGTERM. The socket file exists once it is ready; it is removed at exit."""
import json, os, signal, socket, sys, time

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
signal.signal(signal.SIGTERM, lambda *_: (os.unlink(path), sys.exit(0)))
while True:
    data = s.recv(65536)
    print(json.dumps({"t": time.time() * 1000, "msg": data.decode("utf-8", "replace")}), flush=True)
