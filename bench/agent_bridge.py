#!/usr/bin/env python3
"""agent_bridge.py - HAProxy agent-check answers from a Fulcrum monitor's weights.

bench/skew.sh runs HAProxy `leastconn` with per-server weights fed from the
same agent metrics fulcrum-balancer uses, so that "metrics-weighted" is
compared with "metrics-weighted", not only with metric-blind balancing.

It starts the command after `--` (a `fulcrum-monitor ... --json`, which
probes the same agents with the same weight formula as the balancer's
embedded monitor), reads its JSON line per round, and keeps each node's
`weight` and `state`. HAProxy's agent check connects to --listen, sends the
server's name (`agent-send "node-A\\n"`), and gets one line back:

    N%      N = round(100 * weight / --cap), at least 1: HAProxy sets the
            server's effective weight to N % of the weight in its config
            (configure `weight --cap`, so that it equals the monitor's)
    drain   the monitor says the node is draining (weight 0 in HAProxy)
    down    the monitor says the node is down
    (none)  a name the monitor has not reported yet: HAProxy keeps the
            weight it has

Prints "ready" on stderr once every --expect name has a weight and has been
asked for it by HAProxy at least once, and a line per round with the
weights it serves. Stops (and stops the monitor) on SIGTERM.
"""
import argparse
import json
import signal
import socket
import socketserver
import subprocess
import sys
import threading

lock = threading.Lock()
nodes = {}  # name -> (weight, state)
asked = set()
ready_said = False
args = None


def reply_for(name):
    with lock:
        entry = nodes.get(name)
    if entry is None:
        return None
    weight, state = entry
    if state == "down":
        return "down\n"
    if state == "draining":
        return "drain\n"
    return "%d%%\n" % max(1, round(100.0 * weight / args.cap))


def note_ready():
    global ready_said
    if ready_said:
        return
    with lock:
        done = all(n in nodes and n in asked for n in args.expect)
    if done:
        ready_said = True
        print("agent_bridge: ready", file=sys.stderr, flush=True)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(1.0)
        data = b""
        try:
            while b"\n" not in data and len(data) < 256:
                chunk = self.request.recv(256)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return
        name = data.split(b"\n", 1)[0].strip().decode("ascii", "replace")
        line = reply_for(name)
        if line is None:
            return
        try:
            self.request.sendall(line.encode())
        except OSError:
            return
        with lock:
            asked.add(name)
        note_ready()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def read_monitor(proc):
    for raw in proc.stdout:
        try:
            doc = json.loads(raw)
        except ValueError:
            print("agent_bridge: not JSON from the monitor: %r" % raw[:120], file=sys.stderr)
            continue
        seen = {}
        for n in doc.get("nodes", []):
            name, weight = n.get("name"), n.get("weight")
            if name and isinstance(weight, (int, float)):
                seen[name] = (weight, n.get("state", "up"))
        with lock:
            nodes.update(seen)
        print("agent_bridge: round %s %s" % (doc.get("round"), " ".join(
            "%s=%g/%s" % (k, v[0], v[1]) for k, v in sorted(seen.items()))), file=sys.stderr, flush=True)
        note_ready()
    print("agent_bridge: the monitor's output ended", file=sys.stderr, flush=True)


def main():
    global args
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT for HAProxy's agent checks")
    ap.add_argument("--cap", type=float, default=256, help="the monitor's --weight-cap [256]")
    ap.add_argument("--expect", action="append", default=[], help="a node name (repeatable)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the monitor command")
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("the monitor command is missing (after --)")
    host, port = args.listen.rsplit(":", 1)
    server = Server((host, int(port)), Handler)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def stop(_sig, _frame):
        proc.terminate()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=read_monitor, args=(proc,), daemon=True).start()
    server.serve_forever()
    server.server_close()
    proc.wait()


if __name__ == "__main__":
    main()
