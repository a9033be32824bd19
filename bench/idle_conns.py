#!/usr/bin/env python3
"""Opens N idle TCP connections to a balancer on loopback and holds them.

Usage: idle_conns.py HOST PORT N --upstream-ports P1,P2,... [--timeout SEC]
                     [--settle SEC] [--hold-max SEC]

1. connects N sockets (sends nothing);
2. waits until N balancer->backend connections are ESTABLISHED (counted in
   /proc/net/tcp by remote port in --upstream-ports), or --timeout passes;
3. waits --settle seconds, then prints one line
   "ready opened=N upstream=M" (the caller reads the balancer's RSS now);
4. on SIGTERM/SIGINT (or after --hold-max) checks how many of its sockets the
   balancer still holds open, prints "alive=K", closes them all and exits 0.

Only loopback addresses are accepted.
"""
import argparse
import errno
import ipaddress
import resource
import signal
import socket
import sys
import time


def count_upstream(ports):
    """ESTABLISHED sockets whose remote port is a backend's and local port is not."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] != "01":
                        continue
                    lport = int(parts[1].rsplit(":", 1)[1], 16)
                    rport = int(parts[2].rsplit(":", 1)[1], 16)
                    if rport in ports and lport not in ports:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--upstream-ports", default="")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--hold-max", type=float, default=300.0)
    a = ap.parse_args()

    if not ipaddress.ip_address(a.host).is_loopback:
        sys.exit("idle_conns.py: only loopback targets are allowed")
    ports = {int(p) for p in a.upstream_ports.split(",") if p}

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.count + 1024), hard))

    stop = {"now": False}

    def on_signal(_sig, _frm):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    socks = []
    deadline = time.monotonic() + a.timeout
    failed = 0
    while len(socks) < a.count and time.monotonic() < deadline and not stop["now"]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            s.connect((a.host, a.port))
        except OSError as e:
            s.close()
            failed += 1
            if failed > 100:
                print(f"error connect failed {failed} times, last: {e}", flush=True)
                return 1
            time.sleep(0.01)
            continue
        socks.append(s)

    up = count_upstream(ports) if ports else len(socks)
    while ports and up < len(socks) and time.monotonic() < deadline and not stop["now"]:
        time.sleep(0.2)
        up = count_upstream(ports)
    time.sleep(a.settle)
    up = count_upstream(ports) if ports else len(socks)
    print(f"ready opened={len(socks)} upstream={up}", flush=True)

    end = time.monotonic() + a.hold_max
    while not stop["now"] and time.monotonic() < end:
        time.sleep(0.1)

    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1, socket.MSG_PEEK)
            if data:
                alive += 1  # the peer sent something: still open
        except BlockingIOError:
            alive += 1  # nothing to read and no FIN: still open
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
    print(f"alive={alive}", flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
