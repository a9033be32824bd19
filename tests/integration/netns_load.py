#!/usr/bin/env python3
"""HTTP load for tests/integration/test_netns.sh: THREADS clients, each
sending GETs one after the other, every request on a new TCP connection
(Connection: close), so each one is a new choice for the balancer.

Usage: netns_load.py HOST:PORT OUT.json [--threads N] [--count N]
                     [--stop-file F] [--start-file F] [--paths P,P...]
                     [--timeout SEC]

Stops after --count requests in all, or once --stop-file exists (checked
before each request), whichever comes first. With --start-file the threads
are started and connect only once that file exists (a burst the caller
fires at the moment it chooses, free of Python's start-up). A request fails when it does
not complete within --timeout, or its status is not 200, or its body is
empty. Writes OUT.json at the end, and OUT.json.progress (the number of
requests done) about every 0.2 s while it runs:

  {"requests": N, "ok": N, "failed": N, "errors": ["...", ...first 20],
   "by_node": {"cache-a": N, ...}, "by_xcache": {"HIT": N, ...},
   "max_ms": F, "over_1s": N}

by_node and by_xcache come from the X-Cache header ("HIT from cache-a").
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.started = self.requests = self.ok = self.failed = self.over_1s = 0
        self.max_ms = 0.0
        self.errors = []
        self.by_node = {}
        self.by_xcache = {}

    def claim(self, count):
        """True if one more request may start (count 0: no limit)."""
        with self.lock:
            if count and self.started >= count:
                return False
            self.started += 1
            return True

    def add(self, ok, ms, xcache, err):
        with self.lock:
            self.requests += 1
            self.max_ms = max(self.max_ms, ms)
            self.over_1s += ms > 1000.0
            if ok:
                self.ok += 1
                verdict, _, node = xcache.partition(" from ")
                self.by_xcache[verdict] = self.by_xcache.get(verdict, 0) + 1
                self.by_node[node] = self.by_node.get(node, 0) + 1
            else:
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(f"{time.strftime('%H:%M:%S')} {err}")
            return self.requests

    def as_dict(self):
        with self.lock:
            return {"requests": self.requests, "ok": self.ok, "failed": self.failed,
                    "errors": self.errors, "by_node": self.by_node,
                    "by_xcache": self.by_xcache, "max_ms": round(self.max_ms, 1),
                    "over_1s": self.over_1s}


def one(host, port, path, timeout):
    """One GET on a new connection: (ok, X-Cache, error text)."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or not body:
            return False, "", f"{path}: status {r.status}, {len(body)} bytes"
        return True, r.getheader("X-Cache", "- from -"), ""
    except (OSError, http.client.HTTPException) as e:
        return False, "", f"{path}: {type(e).__name__}: {e}"
    finally:
        c.close()


def worker(n, args, totals, stop):
    i = n
    while args.start_file and not os.path.exists(args.start_file):
        time.sleep(0.005)
    while not stop.is_set():
        if args.stop_file and os.path.exists(args.stop_file) or not totals.claim(args.count):
            stop.set()
            break
        path = args.paths[i % len(args.paths)]
        i += 1
        t0 = time.monotonic()
        ok, xcache, err = one(args.host, args.port, path, args.timeout)
        totals.add(ok, (time.monotonic() - t0) * 1000.0, xcache, err)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--stop-file")
    p.add_argument("--start-file")
    p.add_argument("--paths", default="/index.html")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    args.host, _, port = args.target.rpartition(":")
    args.port = int(port)
    args.paths = args.paths.split(",")
    if not args.count and not args.stop_file:
        p.error("give --count or --stop-file")
    totals, stop = Totals(), threading.Event()
    threads = [threading.Thread(target=worker, args=(n, args, totals, stop), daemon=True)
               for n in range(args.threads)]
    for t in threads:
        t.start()
    # The first progress file says every thread is started (and, with
    # --start-file, waiting for it).
    while any(t.is_alive() for t in threads):
        with open(args.out + ".progress.tmp", "w") as f:
            f.write(f"{totals.as_dict()['requests']}\n")
        os.replace(args.out + ".progress.tmp", args.out + ".progress")
        time.sleep(0.2)
    with open(args.out + ".tmp", "w") as f:
        json.dump(totals.as_dict(), f)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
