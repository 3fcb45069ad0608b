#!/usr/bin/env python3
"""sd_notify receiver for the benchmarks: binds one datagram socket DIR/NAME per NAME, prints
"NAME" on a line as soon as that socket receives READY=1 (each name once), exits when every
name has, or when stdin closes. The container managers forward their guest's READY=1 to their
own $NOTIFY_SOCKET (machina-nspawn and systemd-nspawn with --notify-ready=yes), so a boot is
seen finished without polling inside the guests (which costs the CPU the boots need)."""
import os
import select
import socket
import sys

directory, names = sys.argv[1], sys.argv[2:]
socks = {}
for name in names:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(os.path.join(directory, name))
    socks[s.fileno()] = (s, name)
waiting = set(names)
print("listening", flush=True)
poller = select.poll()
for fd in socks:
    poller.register(fd, select.POLLIN)
poller.register(sys.stdin.fileno(), select.POLLIN | select.POLLHUP)
while waiting:
    for fd, _ in poller.poll():
        if fd == sys.stdin.fileno():
            if not os.read(fd, 4096):
                sys.exit(1)
            continue
        s, name = socks[fd]
        data = s.recv(4096)
        if name in waiting and b"READY=1" in data.split(b"\n"):
            waiting.discard(name)
            print(name, flush=True)
