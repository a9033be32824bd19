#!/usr/bin/env python3
"""Turns bench/run.sh's raw outputs into the Step 2 table.

Usage: report.py RAW_DIR META_FILE [--doc docs/benchmarks.md]

RAW_DIR holds TARGET.TEST.REP.txt: wrk outputs (TEST = ka, close, big, lat)
and idle-connection records (TEST = rss, "key=value" lines). META_FILE holds
"key=value" lines (date, machine, versions, command, settings). Each value is
the median over the repeats. Prints the markdown block and, with --doc,
writes it into that file between the Step 2 markers (or as the Step 2
section), keeping everything else.
"""
import argparse
import os
import re
import statistics
import sys

TARGETS = ["direct", "haproxy", "nginx", "fulcrum-leastconn", "fulcrum-weighted"]
NAMES = {
    "direct": "direct",
    "haproxy": "HAProxy",
    "nginx": "nginx stream",
    "fulcrum-leastconn": "fulcrum leastconn",
    "fulcrum-weighted": "fulcrum weighted",
}
OURS = ["fulcrum-leastconn", "fulcrum-weighted"]
SECTION = "## Step 2: balancer data path"
BEGIN = "<!-- bench/run.sh step2: begin (generated, do not edit by hand) -->"
END = "<!-- bench/run.sh step2: end -->"

BIN = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
TIME = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(text):
    r = {"errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)([KMGT]?B) read", text)
    if m:
        secs = float(m.group(2)) * TIME[m.group(3)] / 1e6
        r["requests"] = int(m.group(1))
        r["bps"] = float(m.group(4)) * BIN[m.group(5)] / secs
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
        if m:
            r["p" + pct] = float(m.group(1)) * TIME[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
        r["socket_errors"] = m.group(0)
    m = re.search(r"# cpu: (.*)", text)
    if m:
        for k, v in parse_kv(m.group(1)).items():
            r[k] = float(v)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["errors"] += int(m.group(1))
        r["non2xx"] = int(m.group(1))
    return r


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                out[k] = v
    return out


def load(raw):
    data = {}  # (target, test) -> list of dicts
    for name in sorted(os.listdir(raw)):
        m = re.fullmatch(r"(.+)\.(ka|close|big|lat|rss)\.(\d+)\.txt", name)
        if not m:
            continue
        with open(os.path.join(raw, name)) as f:
            text = f.read()
        rec = parse_kv(text) if m.group(2) == "rss" else parse_wrk(text)
        rec["rep"] = int(m.group(3))
        data.setdefault((m.group(1), m.group(2)), []).append(rec)
    return data


def med(data, target, test, key):
    vals = [r[key] for r in data.get((target, test), []) if key in r]
    vals = [float(v) for v in vals]
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
    if kind == "gbps":
        return f"{v:.2f}"
    if kind == "us":
        return f"{v:+.0f}"
    if kind == "mib":
        return f"{v:.1f}"
    return str(v)


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return None
    return a / b


def added_lat(data, t, test, p):
    """Per repeat: the target's percentile minus direct's; median of those."""
    d = {r["rep"]: r[p] for r in data.get(("direct", test), []) if p in r}
    xs = [r[p] - d[r["rep"]] for r in data.get((t, test), []) if p in r and r["rep"] in d]
    return statistics.median(xs) if xs else None


def build(data, meta):
    def vals(test, key, scale=1.0):
        out = {}
        for t in TARGETS:
            v = med(data, t, test, key)
            out[t] = None if v is None else v * scale
        return out

    idle = meta.get("idle_conns", "5000")
    # (label, values, kind, test, key, target text, reference, factor)
    rows = [
        ("(a) 1 KiB keep-alive, requests/s", vals("ka", "rps"), "rps", "ka", "rps",
         "≥ 1.10 × HAProxy", "haproxy", 1.10),
        ("(b) new connections/s (Connection: close)", vals("close", "rps"), "rps", "close", "rps",
         "≥ 1.10 × HAProxy", "haproxy", 1.10),
        ("(c) 1 MiB transfers, GB/s", vals("big", "bps", 1e-9), "gbps", "big", "bps",
         "≥ 0.85 × direct", "direct", 0.85),
    ]
    absdirect = {}
    for test, conns in (("lat", meta.get("lat_conns", "?")), ("ka", meta.get("ka_conns", "?"))):
        for p in ("p50", "p99"):
            label = f"(d) {p} added over direct, µs ({conns} conns)"
            v = {t: (None if t == "direct" else added_lat(data, t, test, p)) for t in TARGETS}
            absdirect[label] = med(data, "direct", test, p)
            rows.append((label, v, "us", test, p, "≤ HAProxy", "haproxy", 1.0))
    rss = {}
    for t in TARGETS:
        v = med(data, t, "rss", "rss_kb")
        rss[t] = None if v is None else v / 1024.0
    rows.append((f"(e) RSS at {idle} idle connections, MiB", rss, "mib", "rss", "rss_kb",
                 "≤ HAProxy", "haproxy", 1.0))

    head = ["metric"] + [NAMES[t] for t in TARGETS]
    head += [f"{NAMES[o].split()[1]} / HAProxy" for o in OURS]
    head += [f"{NAMES[o].split()[1]} / direct" for o in OURS]
    head += ["target", "met (leastconn, weighted)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    verdicts = []
    for label, v, kind, test, key, ttext, ref, factor in rows:
        cells = [label]
        for t in TARGETS:
            if kind == "us" and t == "direct":
                d = absdirect[label]
                cells.append("0 (abs " + (f"{d:.0f}" if d is not None else "n/a") + ")")
            else:
                cells.append(fmt(v[t], kind))
        rat = {}
        for o in OURS:
            for r in ("haproxy", "direct"):
                if kind in ("rps", "gbps"):
                    rat[(o, r)] = paired(data, o, r, test, key)
                elif kind == "us":  # a ratio of added latencies only when both are > 0
                    x, y = v[o], v[r]
                    rat[(o, r)] = x / y if x is not None and y is not None and x > 0 and y > 0 else None
                else:
                    rat[(o, r)] = ratio(v[o], v[r])
        for r in ("haproxy", "direct"):
            for o in OURS:
                x = rat[(o, r)]
                prec = 3 if kind in ("rps", "gbps") else 2  # the met column uses the exact ratio
                cells.append(("n/a" if kind in ("rps", "gbps") else "—") if x is None else f"{x:.{prec}f}")
        cells.append(ttext)
        met = []
        for o in OURS:
            if kind in ("rps", "gbps"):
                x = rat[(o, ref)]
                met.append("n/a" if x is None else ("yes" if x >= factor else "no"))
            else:  # ours no larger than HAProxy's
                x, y = v[o], v[ref]
                met.append("n/a" if x is None or y is None else ("yes" if x <= y else "no"))
        verdicts.append((label, met))
        cells.append(", ".join(met))
        lines.append("| " + " | ".join(cells) + " |")

    # CPU taken by processes other than the benchmark's during the wrk runs.
    cpu_cells = []
    for t in TARGETS:
        xs = [r["foreign_pct"] for test in ("ka", "close", "big", "lat")
              for r in data.get((t, test), []) if "foreign_pct" in r]
        cpu_cells.append(f"{statistics.median(xs):.0f}% (max {max(xs):.0f}%)" if xs else "n/a")
    cpu_line = ("| other processes' share of the 2 cores during the wrk runs, median | "
                + " | ".join(cpu_cells) + " |" + " |" * (len(head) - 1 - len(TARGETS)))
    lines.append(cpu_line)
    for test, what in (("ka", "(a)"), ("close", "(b)")):
        xs = {t: med(data, t, test, "proxy_us_per_req") for t in TARGETS}
        cells = ["—" if t == "direct" or xs[t] is None else f"{xs[t]:.1f}" for t in TARGETS]
        rat = []
        for o in OURS:
            x = ratio(xs[o], xs["haproxy"])
            rat.append("n/a" if x is None else f"{x:.2f}")
        lines.append(f"| proxy CPU per request in {what}, µs (info) | " + " | ".join(cells) + " | "
                     + " | ".join(rat) + " |" + " |" * (len(head) - 1 - len(TARGETS) - len(OURS)))

    # wrk errors and idle-connection bookkeeping, per target.
    err_lines = []
    for t in TARGETS:
        parts = []
        for test in ("ka", "close", "big", "lat"):
            n = sum(r.get("errors", 0) for r in data.get((t, test), []))
            missing = [i for i, r in enumerate(data.get((t, test), [])) if "rps" not in r]
            if n or missing:
                detail = "; ".join(
                    r.get("socket_errors", "") + (f" non-2xx {r['non2xx']}" if r.get("non2xx") else "")
                    for r in data.get((t, test), []) if r.get("errors"))
                parts.append(f"{test}: {n} errors" + (f" ({detail})" if detail else "")
                             + (f", {len(missing)} run(s) without a result" if missing else ""))
        err_lines.append(f"- {NAMES[t]}: " + ("; ".join(parts) if parts else "no wrk errors"))
    idle_lines = []
    for t in TARGETS[1:]:
        recs = data.get((t, "rss"), [])
        if not recs:
            idle_lines.append(f"- {NAMES[t]}: not measured")
            continue
        r = recs[len(recs) // 2]
        base = r.get("base_kb")
        idle_lines.append(
            f"- {NAMES[t]}: opened {r.get('opened', '?')}, upstream established "
            f"{r.get('upstream', '?')}, still open at the end {r.get('alive', '?')}; "
            f"RSS before {int(base) / 1024:.1f} MiB" if base else f"- {NAMES[t]}: {r}")
    return lines, err_lines, idle_lines, verdicts


def render(data, meta):
    lines, err_lines, idle_lines, verdicts = build(data, meta)
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
    out += lines
    out.append("")
    out.append("Values: medians over the repeats. Ratios in (a)-(c): median of the per-repeat "
               "ratios fulcrum / reference (so they need not equal the ratio of the medians). "
               "(d): per repeat, the target's percentile minus direct's (`abs`: direct's own, µs); "
               "the median of those. The last rows are for information: the share of the two "
               "cores taken by processes other than the benchmark's, and the proxy's CPU time "
               "per request.")
    out.append("")
    out.append("wrk errors (socket errors + non-2xx, summed over repeats):")
    out.append("")
    out += err_lines
    out.append("")
    out.append(f"Idle connections (e), one representative repeat:")
    out.append("")
    out += idle_lines
    out.append("")
    out.append(END)
    return "\n".join(out) + "\n", verdicts


def write_doc(path, block):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if BEGIN in text and END in text:
        pre, rest = text.split(BEGIN, 1)
        post = rest.split(END, 1)[1]
        text = pre + block.rstrip("\n") + post
    elif SECTION in text:
        pre, rest = text.split(SECTION, 1)
        m = re.search(r"^## ", rest, re.M)
        post = rest[m.start():] if m else ""
        text = pre + SECTION + "\n\n" + block + ("\n" + post if post else "")
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
    with open(a.meta) as f:
        meta = {}
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    data = load(a.raw)
    block, verdicts = render(data, meta)
    print(block)
    if a.doc:
        write_doc(a.doc, block)
        print(f"report.py: wrote {a.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
