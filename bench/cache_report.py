#!/usr/bin/env python3
"""Turns bench/cache.sh's raw outputs into the Step 3 (cache) tables.

Usage: cache_report.py RAW_DIR META_FILE [--doc docs/benchmarks.md]

RAW_DIR holds TARGET.TEST.REP.txt: wrk outputs (TEST = hit, lat) and the
replication delay lines (repl.repl.REP.txt, "key=value"), plus
fulcrum.stats.json. META_FILE holds "key=value" lines. Each value is the
median over the repeats; a ratio is the median of the per-repeat ratios.
Prints the markdown block and, with --doc, writes it into that file between
the cache markers (appending the section when they are missing), keeping
everything else.
"""
import argparse
import json
import os
import re
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import parse_kv, parse_wrk  # noqa: E402  (the same wrk parser as Step 2)

TARGETS = ["fulcrum", "nginx", "varnish", "nginx-2w", "varnish-2cpu"]
NAMES = {
    "fulcrum": "fulcrum-cache (1 thread)",
    "nginx": "nginx proxy_cache (1 worker)",
    "varnish": "Varnish (1 CPU)",
    "nginx-2w": "nginx proxy_cache (2 workers)",
    "varnish-2cpu": "Varnish (2 CPUs)",
}
SHORT = {"nginx": "nginx", "varnish": "Varnish", "nginx-2w": "nginx 2w",
         "varnish-2cpu": "Varnish 2 CPUs"}
REFS = ["nginx", "varnish", "nginx-2w", "varnish-2cpu"]
SECTION = "## Step 3: cache hits and replication"
BEGIN = "<!-- bench/cache.sh: begin (generated, do not edit by hand) -->"
END = "<!-- bench/cache.sh: end -->"
REPL_TARGET_US = 5000.0


def load(raw):
    data = {}  # (target, test) -> list of dicts
    for name in sorted(os.listdir(raw)):
        m = re.fullmatch(r"(.+)\.(hit|lat|repl)\.(\d+)\.txt", name)
        if not m:
            continue
        with open(os.path.join(raw, name)) as f:
            text = f.read()
        if m.group(2) == "repl":
            rec = parse_kv(text)
        else:
            rec = parse_wrk(text)
            o = re.search(r"# origin_requests=(\d+)", text)
            if o:
                rec["origin_requests"] = int(o.group(1))
        rec["rep"] = int(m.group(3))
        data.setdefault((m.group(1), m.group(2)), []).append(rec)
    return data


def med(data, target, test, key):
    vals = [float(r[key]) for r in data.get((target, test), []) if key in r]
    return statistics.median(vals) if vals else None


def paired(data, ours, ref, test, key):
    """Median over repeats of ours/ref measured in the same repeat."""
    by = {r["rep"]: float(r[key]) for r in data.get((ref, test), []) if key in r}
    rs = [float(r[key]) / by[r["rep"]] for r in data.get((ours, test), [])
          if key in r and by.get(r["rep"], 0) > 0]
    return statistics.median(rs) if rs else None


def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "rps":
        return f"{v:,.0f}"
    if kind == "us":
        return f"{v:,.0f}"
    if kind == "us1":
        return f"{v:.1f}"
    if kind == "pct":
        return f"{v:.0f}%"
    return str(v)


def hit_table(data, meta, present):
    ka, lat = meta.get("ka_conns", "?"), meta.get("lat_conns", "?")
    # (label, test, key, kind, target text, factor: ours/nginx >= factor; None: info)
    rows = [
        (f"(h) cache hits, requests/s ({ka} conns)", "hit", "rps", "rps",
         "≥ 1.0 × nginx proxy_cache", 1.0),
        (f"(h) p50 latency, µs ({ka} conns)", "hit", "p50", "us", "info", None),
        (f"(h) p99 latency, µs ({ka} conns)", "hit", "p99", "us", "info", None),
        (f"(l) p50 latency, µs ({lat} conns)", "lat", "p50", "us", "info", None),
        (f"(l) p99 latency, µs ({lat} conns)", "lat", "p99", "us", "info", None),
        (f"cache CPU time per hit in (h), µs", "hit", "target_us_per_req", "us1", "info", None),
        (f"cache CPU use in (h), % of the 2 cores", "hit", "target_pct", "pct", "info", None),
    ]
    cols = [t for t in TARGETS if t in present]
    refs = [r for r in REFS if r in present]
    head = ["metric"] + [NAMES[t] for t in cols]
    head += [f"fulcrum / {SHORT[r]}" for r in refs] + ["target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for label, test, key, kind, ttext, factor in rows:
        cells = [label] + [fmt(med(data, t, test, key), kind) for t in cols]
        for r in refs:
            x = paired(data, "fulcrum", r, test, key)
            cells.append("n/a" if x is None else f"{x:.3f}" if kind == "rps" else f"{x:.2f}")
        cells.append(ttext)
        if factor is None:
            cells.append("")
        else:
            x = paired(data, "fulcrum", "nginx", test, key)
            met = "n/a" if x is None else ("yes" if x >= factor else "no")
            verdicts.append((label, met))
            cells.append(met)
        lines.append("| " + " | ".join(cells) + " |")
    cells = []
    for t in cols:
        xs = [r["foreign_pct"] for test in ("hit", "lat") for r in data.get((t, test), [])
              if "foreign_pct" in r]
        cells.append(f"{statistics.median(xs):.0f}% (max {max(xs):.0f}%)" if xs else "n/a")
    lines.append("| other processes' share of the 2 cores during the runs, median | "
                 + " | ".join(cells) + " |" + " |" * (len(head) - 1 - len(cols)))
    return lines, verdicts


def repl_table(data, meta):
    recs = data.get(("repl", "repl"), [])
    if not recs:
        return ["Replication delay: not measured (BENCH_REPL_URLS=0 or no result)."], []

    def m(key):
        vals = [float(r[key]) for r in recs if key in r]
        return statistics.median(vals) if vals else None

    def mx(key):
        vals = [float(r[key]) for r in recs if key in r]
        return max(vals) if vals else None

    p99s = [float(r["p99_us"]) for r in recs if "p99_us" in r]
    worst = max(p99s) if p99s else None
    met = "n/a" if worst is None else ("yes" if worst < REPL_TARGET_US else "no")
    n = sum(int(r.get("n", 0)) for r in recs)
    tmo = sum(int(r.get("timeouts", 0)) for r in recs)
    orig = sum(int(r.get("origin_requests", 0)) for r in recs)
    urls = int(meta.get("repl_urls", "0") or 0) * len(recs)
    lines = [
        "| replication delay, A's origin fetch until B serves a HIT | value | target | met |",
        "|---|---|---|---|",
        f"| p50, µs (median over repeats) | {fmt(m('p50_us'), 'us')} | | |",
        f"| p90, µs (median over repeats) | {fmt(m('p90_us'), 'us')} | | |",
        f"| p99, µs (median over repeats; worst repeat {fmt(worst, 'us')}) | "
        f"{fmt(m('p99_us'), 'us')} | < 5,000 µs (every repeat) | {met} |",
        f"| max, µs (all repeats) | {fmt(mx('max_us'), 'us')} | | |",
        f"| delays over 1 ms / over 5 ms (all repeats) | "
        f"{sum(int(r.get('over_1ms', 0)) for r in recs)} / "
        f"{sum(int(r.get('over_5ms', 0)) for r in recs)} of {n} | | |",
        f"| polls of B per URL, mean | {m('polls_mean') if m('polls_mean') is not None else 'n/a'} | | |",
        f"| A's MISS round trip (origin fetch), p50 / p99, µs | {fmt(m('fetch_p50_us'), 'us')} / "
        f"{fmt(m('fetch_p99_us'), 'us')} | | |",
        f"| URLs that became HITs on B / timed out (1 s) | {n} / {tmo} | | |",
        f"| origin requests for {urls} URLs (B must fetch none) | {orig} | {urls} | "
        f"{'yes' if orig == urls else 'no'} |",
    ]
    return lines, [("replication p99 < 5 ms", met)]


def err_lines(data, present):
    out = []
    for t in [t for t in TARGETS if t in present]:
        parts = []
        for test in ("hit", "lat"):
            recs = data.get((t, test), [])
            n = sum(r.get("errors", 0) for r in recs)
            o = sum(r.get("origin_requests", 0) for r in recs)
            missing = sum(1 for r in recs if "rps" not in r)
            if n or o or missing:
                parts.append(f"{test}: {n} wrk errors, {o} origin requests"
                             + (f", {missing} run(s) without a result" if missing else ""))
        out.append(f"- {NAMES[t]}: " + ("; ".join(parts) if parts else
                                        "no wrk errors, no origin request during the hit runs"))
    return out


def stats_line(raw, data):
    path = os.path.join(raw, "fulcrum.stats.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return "fulcrum-cache stats: unreadable"
    req = sum(r.get("requests", 0) for test in ("hit", "lat") for r in data.get(("fulcrum", test), []))
    return (f"fulcrum-cache's own counters after the runs: hits {st.get('hits')}, misses "
            f"{st.get('misses')}, stale {st.get('stale')}, passed {st.get('passed')} "
            f"(the measured wrk runs made {req:,} requests; the rest is the check and warm-up).")


def render(raw, data, meta):
    present = {t for t in TARGETS if (t, "hit") in data or (t, "lat") in data}
    hl, hv = hit_table(data, meta, present)
    rl, rv = repl_table(data, meta)
    out = [BEGIN, ""]
    out.append(f"Run: {meta.get('date', '?')} — `{meta.get('command', '?')}`")
    out.append("")
    out.append(f"Machine: {meta.get('machine', '?')}. Versions: {meta.get('versions', '?')}. "
               f"Fulcrum commit: {meta.get('commit', '?')}.")
    out.append("")
    out.append(f"Settings: {meta.get('settings', '?')}.")
    out.append("")
    out.append(f"CPU contention: {meta.get('load', '?')} (the benchmark itself keeps it near 2).")
    out.append("")
    out += hl
    out.append("")
    out.append("Values: medians over the repeats. Ratios: median of the per-repeat ratios "
               "fulcrum / reference (for latencies and CPU, lower is better). The main "
               "comparison is with the one-CPU references (nginx 1 worker, Varnish confined "
               "to one CPU); the 2-worker / 2-CPU columns are for information.")
    out.append("")
    out += rl
    out.append("")
    out.append("wrk errors and origin requests during the hit runs (summed over repeats):")
    out.append("")
    out += err_lines(data, present)
    s = stats_line(raw, data)
    if s:
        out.append("")
        out.append(s)
    out.append("")
    out.append(END)
    return "\n".join(out) + "\n", hv + rv


def write_doc(path, block):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + block.rstrip("\n") + post
    elif SECTION in text:
        pre, rest = text.split(SECTION, 1)
        m = re.search(r"^## ", rest, re.M)
        mid, post = (rest[:m.start()], rest[m.start():]) if m else (rest, "")
        text = pre + SECTION + mid.rstrip("\n") + "\n\n" + block + ("\n" + post if post else "")
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION + "\n\n" + block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("meta")
    ap.add_argument("--doc")
    a = ap.parse_args()
    meta = {}
    with open(a.meta) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    data = load(a.raw)
    block, verdicts = render(a.raw, data, meta)
    print(block)
    for label, met in verdicts:
        print(f"cache_report.py: {label}: target met: {met}", file=sys.stderr)
    if a.doc:
        write_doc(a.doc, block)
        print(f"cache_report.py: wrote {a.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
