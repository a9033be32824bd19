#!/usr/bin/env python3
"""A wire with a delay, for kernels built without sch_netem.

Copies Ethernet frames between two interfaces of one network namespace with
AF_PACKET sockets, and holds the frames that arrive on the first one (the
host's side) for DELAY ms before sending them out of the second (the
switch's side): what `tc qdisc add dev eth0 root netem delay DELAY` does on
the host's interface. Frames the other way pass at once.

The sockets use PACKET_VNET_HDR, so checksum-offload and GSO metadata travel
with each frame as they do between veth ends, and PACKET_IGNORE_OUTGOING, so
the copies sent are not read back. A send that fails (the link is down, the
queue is full) drops the frame, as a wire would.

Usage: netns-delay.py HOST_IF SWITCH_IF CTL_FILE
CTL_FILE holds the delay in milliseconds (a number, 0 for none); it is read
at start and again on SIGHUP. Prints "ready" once both sockets are bound.
"""
import collections
import errno
import os
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 3
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
FRAME_MAX = 65536 + 64  # a GSO frame, its vnet header and room to spare
QUEUE_MAX = 100000  # frames held at most; more are dropped


def open_if(name):
    # Protocol 0 receives nothing until bind() names the interface.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def read_delay(path):
    try:
        with open(path) as f:
            return max(0.0, float(f.read().strip() or "0")) / 1000.0
    except (OSError, ValueError) as e:
        print(f"netns-delay: {path}: {e}; keeping the delay", file=sys.stderr, flush=True)
        return None


def send(s, frame, counters):
    try:
        s.send(frame)
        counters["sent"] += 1
    except OSError:
        counters["dropped"] += 1


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    host, switch, ctl = sys.argv[1:]
    delay = read_delay(ctl) or 0.0
    reload = False

    def on_hup(signum, frame):
        nonlocal reload
        reload = True

    def on_term(signum, frame):
        sys.exit(0)

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_term)
    hs, ss = open_if(host), open_if(switch)
    held = collections.deque()  # (due, frame), due in time.monotonic()
    counters = {"sent": 0, "dropped": 0}
    print(f"ready {host} -> {switch} delay_ms={delay * 1000:g}", flush=True)
    while True:
        if reload:
            reload = False
            d = read_delay(ctl)
            if d is not None:
                delay = d
                print(f"delay_ms={delay * 1000:g}", flush=True)
        timeout = None
        if held:
            timeout = max(0.0, held[0][0] - time.monotonic())
        try:
            ready, _, _ = select.select([hs, ss], [], [], timeout)
        except InterruptedError:
            continue
        for s in ready:
            for _ in range(64):
                try:
                    frame = s.recv(FRAME_MAX)
                except BlockingIOError:
                    break
                except OSError as e:  # ENETDOWN once when the link goes down
                    if e.errno not in (errno.ENETDOWN, errno.ENXIO):
                        raise
                    break
                if s is ss:
                    send(hs, frame, counters)
                elif delay <= 0.0 and not held:
                    send(ss, frame, counters)
                elif len(held) < QUEUE_MAX:
                    held.append((time.monotonic() + delay, frame))
                else:
                    counters["dropped"] += 1
        now = time.monotonic()
        while held and (held[0][0] <= now or delay <= 0.0):
            send(ss, held.popleft()[1], counters)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
