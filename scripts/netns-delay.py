#!/usr/bin/env python3
"""A wire with a delay, loss and reordering, for kernels without sch_netem.

Copies Ethernet frames between two interfaces of one network namespace with
AF_PACKET sockets, and holds the frames that arrive on the first one (the
host's side) for DELAY ms before sending them out of the second (the
switch's side): what `tc qdisc add dev eth0 root netem delay DELAY` does on
the host's interface. Frames the other way pass at once.

It can also lose and reorder UDP datagrams of one port (the probe path:
--port 7777 matches a datagram whose source or destination port is 7777),
what `netem loss PCT reorder PCT` on a filtered class would do:
  loss PCT      each matching datagram is dropped with this probability
  reorder PCT   each matching datagram is held with this probability and
                sent right after the next matching one in the same direction
                (or after HOLD_MAX ms if none comes)
  max_burst N   at most N datagrams in a row of one flow (addresses and
                ports) are lost or held; 0: no limit. 1 makes every loss a
                single lost probe round.
  dir D         out (what the host sends, as netem on its eth0), in, both
  blackhole IP  every matching datagram from or to IP is dropped (100 % loss
                for one host); "-" for none
Other frames (TCP, other ports, ARP) are never lost or reordered.

The sockets use PACKET_VNET_HDR, so checksum-offload and GSO metadata travel
with each frame as they do between veth ends, and PACKET_IGNORE_OUTGOING, so
the copies sent are not read back. A send that fails (the link is down, the
queue is full) drops the frame, as a wire would.

Usage: netns-delay.py HOST_IF SWITCH_IF CTL_FILE [--loss PCT] [--reorder PCT]
                      [--port N] [--max-burst N] [--dir out|in|both]
                      [--blackhole IP] [--hold-max-ms MS] [--seed N]
CTL_FILE holds the delay in milliseconds (a number, 0 for none), or
space-separated KEY=VALUE settings (delay, loss, reorder, port, max_burst,
dir, blackhole); it is read at start and again on SIGHUP, and overrides the
flags for the keys it names. Prints "ready" once both sockets are bound,
the settings after each SIGHUP, and a "stats" line of its counters on
SIGUSR1 and at exit.
"""
import argparse
import collections
import errno
import random
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
VNET_HDR_LEN = 10  # struct virtio_net_hdr before the Ethernet header
FLOWS_MAX = 4096  # flows whose burst is tracked; the table is reset past it
OUT, IN = 0, 1
DIRS = {"out": (OUT,), "in": (IN,), "both": (OUT, IN)}
COUNTERS = ("sent", "dropped", "matched", "lost", "reordered", "hold_expired",
            "blackholed", "burst_capped")


def open_if(name):
    # Protocol 0 receives nothing until bind() names the interface.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def udp_flow(frame):
    """(src ip, src port, dst ip, dst port) of an unfragmented IPv4 UDP
    datagram (addresses as 4-byte strings), else None."""
    eth = VNET_HDR_LEN
    if len(frame) < eth + 14 + 20 + 8 or frame[eth + 12:eth + 14] != b"\x08\x00":
        return None
    ip = eth + 14
    ihl = (frame[ip] & 0x0F) * 4
    if frame[ip] >> 4 != 4 or frame[ip + 9] != 17 or ihl < 20:
        return None
    if int.from_bytes(frame[ip + 6:ip + 8], "big") & 0x3FFF:  # MF or an offset
        return None
    udp = ip + ihl
    if len(frame) < udp + 8:
        return None
    return (frame[ip + 12:ip + 16], int.from_bytes(frame[udp:udp + 2], "big"),
            frame[ip + 16:ip + 20], int.from_bytes(frame[udp + 2:udp + 4], "big"))


def parse_ctl(text, cfg):
    """Applies CTL_FILE's text to cfg (a dict); raises ValueError."""
    words = text.split()
    if len(words) == 1 and "=" not in words[0]:
        words = ["delay=" + words[0]]
    new = dict(cfg)
    for w in words:
        key, sep, val = w.partition("=")
        if not sep or key not in new:
            raise ValueError(f"unknown setting '{w}'")
        if key == "dir":
            if val not in DIRS:
                raise ValueError(f"dir must be out, in or both, not '{val}'")
            new[key] = val
        elif key == "blackhole":
            new[key] = None if val in ("", "-") else socket.inet_aton(val)
        elif key in ("port", "max_burst"):
            new[key] = int(val)
        else:
            new[key] = float(val)
            if not 0.0 <= new[key] <= (100.0 if key != "delay" else 1e6):
                raise ValueError(f"{key}={val} out of range")
    return new


def read_ctl(path, cfg):
    try:
        with open(path) as f:
            return parse_ctl(f.read(), cfg)
    except (OSError, ValueError) as e:
        print(f"netns-delay: {path}: {e}; keeping the settings", file=sys.stderr, flush=True)
        return cfg


def show(cfg):
    bh = socket.inet_ntoa(cfg["blackhole"]) if cfg["blackhole"] else "-"
    return (f"delay_ms={cfg['delay']:g} loss={cfg['loss']:g} reorder={cfg['reorder']:g} "
            f"port={cfg['port']} max_burst={cfg['max_burst']} dir={cfg['dir']} blackhole={bh}")


class Wire:
    def __init__(self, hs, ss, cfg, args):
        self.hs, self.ss, self.cfg = hs, ss, cfg
        self.rng = random.Random(args.seed)
        self.hold_max = args.hold_max_ms / 1000.0
        self.delayed = collections.deque()  # (due, frame) on their way out
        self.held = [None, None]  # per direction: (deadline, frame) reordered
        self.burst = {}  # flow -> datagrams in a row lost or held
        self.n = dict.fromkeys(COUNTERS, 0)

    def send(self, s, frame):
        try:
            s.send(frame)
            self.n["sent"] += 1
        except OSError:
            self.n["dropped"] += 1

    def forward(self, d, frame):
        """Out of the wire in direction d, through the delay when out."""
        delay = self.cfg["delay"] / 1000.0
        if d == IN:
            self.send(self.hs, frame)
        elif delay <= 0.0 and not self.delayed:
            self.send(self.ss, frame)
        elif len(self.delayed) < QUEUE_MAX:
            self.delayed.append((time.monotonic() + delay, frame))
        else:
            self.n["dropped"] += 1

    def may_miss(self, flow):
        cap = self.cfg["max_burst"]
        if cap and self.burst.get(flow, 0) >= cap:
            self.n["burst_capped"] += 1
            return False
        return True

    def missed(self, flow, yes):
        if len(self.burst) >= FLOWS_MAX:
            self.burst.clear()
        self.burst[flow] = self.burst.get(flow, 0) + 1 if yes else 0

    def frame_in(self, d, frame):
        """A frame read in direction d: lose, hold or forward it."""
        cfg = self.cfg
        flow = udp_flow(frame) if cfg["port"] else None
        if not flow or cfg["port"] not in (flow[1], flow[3]):
            self.forward(d, frame)
            return
        self.n["matched"] += 1
        if cfg["blackhole"] in (flow[0], flow[2]):
            self.n["blackholed"] += 1
            return
        if d in DIRS[cfg["dir"]] and self.may_miss(flow):
            if self.rng.random() * 100.0 < cfg["loss"]:
                self.n["lost"] += 1
                self.missed(flow, True)
                return
            if self.held[d] is None and self.rng.random() * 100.0 < cfg["reorder"]:
                self.n["reordered"] += 1
                self.held[d] = (time.monotonic() + self.hold_max, frame)
                self.missed(flow, True)
                return
        self.missed(flow, False)
        self.forward(d, frame)
        if self.held[d] is not None:  # the held one goes right after this one
            self.forward(d, self.held[d][1])
            self.held[d] = None

    def timers(self):
        """Sends what is due; returns the seconds until the next due frame."""
        now = time.monotonic()
        for d in (OUT, IN):
            if self.held[d] is not None and self.held[d][0] <= now:
                self.n["hold_expired"] += 1
                self.forward(d, self.held[d][1])
                self.held[d] = None
        while self.delayed and (self.delayed[0][0] <= now or self.cfg["delay"] <= 0.0):
            self.send(self.ss, self.delayed.popleft()[1])
        due = [t for t, _ in filter(None, self.held)]
        if self.delayed:
            due.append(self.delayed[0][0])
        return max(0.0, min(due) - now) if due else None

    def stats(self):
        return "stats " + " ".join(f"{k}={self.n[k]}" for k in COUNTERS)


def options():
    p = argparse.ArgumentParser(usage=__doc__.split("Usage: ")[1].split("CTL_FILE holds")[0])
    p.add_argument("host_if")
    p.add_argument("switch_if")
    p.add_argument("ctl")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-burst", type=int, default=0)
    p.add_argument("--dir", choices=sorted(DIRS), default="out")
    p.add_argument("--blackhole", default="-")
    p.add_argument("--hold-max-ms", type=float, default=1000.0)
    p.add_argument("--seed", type=int, default=None)
    return p.parse_args()


def main():
    args = options()
    cfg = parse_ctl(f"delay=0 loss={args.loss} reorder={args.reorder} port={args.port} "
                    f"max_burst={args.max_burst} dir={args.dir} blackhole={args.blackhole}",
                    {k: None for k in ("delay", "loss", "reorder", "port", "max_burst", "dir",
                                       "blackhole")})
    cfg = read_ctl(args.ctl, cfg)
    flags = {"reload": False, "stats": False}

    def on_signal(signum, frame):
        flags["reload" if signum == signal.SIGHUP else "stats"] = True

    def on_term(signum, frame):
        sys.exit(0)

    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGTERM, on_term)
    w = Wire(open_if(args.host_if), open_if(args.switch_if), cfg, args)
    print(f"ready {args.host_if} -> {args.switch_if} {show(cfg)}", flush=True)
    try:
        run(w, args.ctl, flags)
    finally:
        print(w.stats(), flush=True)


def run(w, ctl, flags):
    while True:
        if flags["reload"]:
            flags["reload"] = False
            w.cfg = read_ctl(ctl, w.cfg)
            print(show(w.cfg), flush=True)
        if flags["stats"]:
            flags["stats"] = False
            print(w.stats(), flush=True)
        try:
            ready, _, _ = select.select([w.hs, w.ss], [], [], w.timers())
        except InterruptedError:
            continue
        for s in ready:
            d = OUT if s is w.hs else IN
            for _ in range(64):
                try:
                    frame = s.recv(FRAME_MAX)
                except BlockingIOError:
                    break
                except OSError as e:  # ENETDOWN once when the link goes down
                    if e.errno not in (errno.ENETDOWN, errno.ENXIO):
                        raise
                    break
                w.frame_in(d, frame)
        w.timers()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
