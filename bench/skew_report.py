#!/usr/bin/env python3
"""bench/skew_report.py - tables and plots of bench/skew.sh.

Usage: skew_report.py RAW_DIR META_FILE [--doc docs/benchmarks.md --img-dir docs/img]

Reads the loadgen outputs (RAW_DIR/*.txt: key=value lines and "node NAME
COUNT SHARE" lines; *.series.tsv; *.trace.tsv, one line per measured
request; *.weights.tsv from the balancer's admin port), prints the markdown
tables, and with --doc writes PNG plots (gnuplot) into --img-dir and the
generated block between the skew markers of the doc (the whole section is
appended when the markers are missing).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

BEGIN = "<!-- bench/skew.sh: begin (generated, do not edit by hand) -->"
END = "<!-- bench/skew.sh: end -->"
NODES = ["node-A", "node-B", "node-C"]
REF = "haproxy-leastconn"
WL_TITLE = {
    "hits-close": "1 KiB hits, a new connection per request",
    "heavy-close": "half 1 KiB hits, half PASS to the origin, a new connection per request",
    "hits-ka": "1 KiB hits over a keep-alive pool",
}


def read_kv(path):
    kv, nodes = {}, {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("node "):
                _, name, count, share = line.split()
                nodes[name] = (int(count), float(share))
            elif "=" in line:
                k, v = line.split("=", 1)
                kv[k] = v
    kv["nodes"] = nodes
    return kv


def read_tsv(path):
    if not os.path.exists(path):
        return [], []
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return head, rows


def num(kv, k, default=0.0):
    try:
        return float(kv.get(k, default))
    except ValueError:
        return default


def ms(us):
    return f"{us / 1000:.2f}" if us < 100000 else f"{us / 1000:.0f}"


def shares(kv):
    total = sum(c for c, _ in kv["nodes"].values()) or 1
    return [100.0 * kv["nodes"].get(n, (0, 0))[0] / total for n in NODES]


def series_shares(path):
    """[(t, share_A, share_B, share_C, p99_us, errors)] from a series TSV."""
    head, rows = read_tsv(path)
    out = []
    for r in rows:
        row = dict(zip(head, r))
        counts = [int(row.get(n, 0)) for n in NODES]
        tot = sum(counts)
        if tot == 0:
            continue
        out.append((float(row["t_s"]), *[100.0 * c / tot for c in counts],
                    int(row["p99_us"]), int(row["errors"])))
    return out


def capacity_table(raw, meta, wls):
    lines = ["| workload | closed loop (req/s) | CPU per request A / B / C (us) | capacity A / B / C (req/s) | C / A | capacity (req/s) | offered (req/s) |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for w in wls:
        p = os.path.join(raw, f"cap.{w}.txt")
        if not os.path.exists(p):
            continue
        kv = read_kv(p)
        cost = [num(kv, f"cost_us_{x}") for x in "ABC"]
        cap = [num(kv, f"cap_{x}") for x in "ABC"]
        ca = cap[2] / cap[0] if cap[0] else 0
        lines.append(f"| {w} | {num(kv, 'throughput_rps'):.0f} | {cost[0]:.0f} / {cost[1]:.0f} / {cost[2]:.0f} | "
                     f"{cap[0]:.0f} / {cap[1]:.0f} / {cap[2]:.0f} | {ca:.2f} | {num(kv, 'capacity_rps'):.0f} | "
                     f"{kv.get('offered_rate', '?')} |")
    return lines


def run_table(raw, w, targets):
    rows, ref = [], None
    p = os.path.join(raw, f"{w}.{REF}.txt")
    if os.path.exists(p):
        ref = read_kv(p)
    lines = [f"**{w}** — {WL_TITLE.get(w, w)}",
             "",
             "| config | offered | throughput | p50 ms | p99 ms | p99.9 ms | errors | share A / B / C % | C's CPU / quota | p99 / HAProxy lc | thr. / HAProxy lc | foreign CPU (cores) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for t in targets:
        p = os.path.join(raw, f"{w}.{t}.txt")
        if not os.path.exists(p):
            continue
        kv = read_kv(p)
        rows.append((t, kv))
        sh = shares(kv)
        cuse = 100 * num(kv, "cpu_C_cores") / (num(kv, "quota_C_cores") or 1)
        r99 = rthr = "—"
        if ref is not None and num(ref, "lat_p99_us") > 0:
            r99 = f"{num(kv, 'lat_p99_us') / num(ref, 'lat_p99_us'):.2f}"
        if ref is not None and num(ref, "throughput_rps") > 0:
            rthr = f"{num(kv, 'throughput_rps') / num(ref, 'throughput_rps'):.3f}"
        lines.append(
            f"| {t} | {num(kv, 'offered_rps'):.0f} | {num(kv, 'throughput_rps'):.0f} | "
            f"{ms(num(kv, 'lat_p50_us'))} | {ms(num(kv, 'lat_p99_us'))} | {ms(num(kv, 'lat_p999_us'))} | "
            f"{int(num(kv, 'errors'))} | {sh[0]:.1f} / {sh[1]:.1f} / {sh[2]:.1f} | {cuse:.0f} % | "
            f"{r99} | {rthr} | {num(kv, 'foreign_cores'):.2f} |")
    return lines, rows, ref


def pct(sorted_v, p):
    return sorted_v[min(len(sorted_v) - 1, int(p * len(sorted_v)))] if sorted_v else 0


STALL_US = 10000  # a request this slow waited out a throttled CFS period (or worse)


def tail_table(raw, w, targets):
    """Where each config's tail comes from, from its trace: every node's own
    p99 and p99.9, and the requests slower than STALL_US by node, as a share
    of all requests. Over 1 % there, they set the config's p99."""
    lines = [f"Where the tail of **{w}** is, by node (from every measured request):",
             "",
             "| config | p99 A / B / C ms | p99.9 A / B / C ms | over 10 ms on A / B / C, % of all requests |",
             "| --- | --- | --- | --- |"]
    found = False
    for t in targets:
        p = os.path.join(raw, f"{w}.{t}.trace.tsv")
        if not os.path.exists(p):
            continue
        by = {n: [] for n in NODES}
        total = 0
        with open(p) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) < 3:
                    continue
                total += 1
                if parts[2] in by:
                    by[parts[2]].append(int(parts[1]))
        if not total:
            continue
        found = True
        for v in by.values():
            v.sort()
        stall = [100.0 * sum(1 for x in by[n] if x > STALL_US) / total for n in NODES]
        lines.append(f"| {t} | {' / '.join(ms(pct(by[n], 0.99)) for n in NODES)} | "
                     f"{' / '.join(ms(pct(by[n], 0.999)) for n in NODES)} | "
                     f"{' / '.join(f'{s:.2f}' for s in stall)} |")
    return lines if found else []


def verdict(w, rows, ref):
    d = dict(rows)
    wt = d.get("fulcrum-weighted")
    if wt is None or ref is None:
        return []
    r99 = num(wt, "lat_p99_us") / (num(ref, "lat_p99_us") or 1)
    rthr = num(wt, "throughput_rps") / (num(ref, "throughput_rps") or 1)
    errs = int(num(wt, "errors"))
    ok = r99 <= 0.8 and rthr >= 0.995 and errs == 0
    return [f"- {w}: fulcrum weighted p99 / HAProxy leastconn p99 = **{r99:.2f}** (target ≤ 0.80), "
            f"throughput ratio {rthr:.3f} (target ≥ 1, measured to 0.5 %), errors {errs} "
            f"(HAProxy leastconn {int(num(ref, 'errors'))}): **{'met' if ok else 'not met'}**."]


def slow_analysis(raw, t, meta):
    kv = read_kv(os.path.join(raw, f"slow.{t}.txt"))
    ser = series_shares(os.path.join(raw, f"slow.{t}.series.tsv"))
    hog = float(kv.get("hog_at_s", meta.get("slow_before", 15)))
    end = max((s[0] for s in ser), default=0)
    bucket = ser[1][0] - ser[0][0] if len(ser) > 1 else 0.25
    pre = [s[1] for s in ser if hog - 10 <= s[0] < hog]
    post = [s[1] for s in ser if s[0] >= end - 10]
    res = {"t": t, "kv": kv, "ser": ser, "hog": hog}
    res["pre"] = sum(pre) / len(pre) if pre else 0
    res["post"] = sum(post) / len(post) if post else 0
    res["drop"] = None
    if res["pre"] - res["post"] >= 2.0:
        thr = res["pre"] - 0.5 * (res["pre"] - res["post"])
        after = [s for s in ser if s[0] >= hog]
        need = max(1, int(round(1.0 / bucket)))
        for i in range(len(after) - need + 1):
            if all(after[i + k][1] <= thr for k in range(need)):
                res["drop"] = after[i][0] + bucket - hog
                break
    p99_pre = [s[4] for s in ser if hog - 10 <= s[0] < hog]
    p99_post = [s[4] for s in ser if s[0] >= hog]
    res["p99_pre"] = max(p99_pre) if p99_pre else 0
    res["p99_post"] = max(p99_post) if p99_post else 0
    res["errors"] = sum(s[5] for s in ser)
    # fulcrum: when A's balancer weight moved halfway to its final level
    res["wdrop"] = None
    head, rows = read_tsv(os.path.join(raw, f"slow.{t}.weights.tsv"))
    t0 = num(kv, "t0_unix")
    if rows and t0 > 0:
        wa = [(float(r[0]) - t0, float(r[4])) for r in rows if r[1] == "node-A" and r[4] not in ("None", "")]
        wpre = [v for x, v in wa if hog - 10 <= x < hog]
        wpost = [v for x, v in wa if x >= end - 10]
        res["w_pre"] = sum(wpre) / len(wpre) if wpre else 0
        res["w_post"] = sum(wpost) / len(wpost) if wpost else 0
        if wpre and wpost and res["w_pre"] - res["w_post"] > 1:
            half = res["w_pre"] - 0.5 * (res["w_pre"] - res["w_post"])
            for x, v in wa:
                if x >= hog and v <= half:
                    res["wdrop"] = x - hog
                    break
    return res


def slow_table(slows):
    lines = ["| config | A's share before | A's share after | time until A's share drops | A's weight halfway down after | worst 250 ms p99 before / after (ms) | errors |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for r in slows:
        drop = f"{r['drop']:.2f} s" if r["drop"] is not None else "no drop of 2 points"
        wd = f"{r['wdrop']:.1f} s" if r.get("wdrop") is not None else "—"
        lines.append(f"| {r['t']} | {r['pre']:.1f} % | {r['post']:.1f} % | {drop} | {wd} | "
                     f"{ms(r['p99_pre'])} / {ms(r['p99_post'])} | {r['errors']} |")
    return lines


def gnuplot(script):
    with tempfile.NamedTemporaryFile("w", suffix=".gp", delete=False) as f:
        f.write(script)
        name = f.name
    try:
        subprocess.run(["gnuplot", name], check=True)
    finally:
        os.unlink(name)


def plot_latency(raw, wls, targets, img, tmpd):
    dat = os.path.join(tmpd, "lat.dat")
    panels = []
    with open(dat, "w") as f:
        for wi, w in enumerate(wls):
            f.write(f"# {w}\n")
            for t in targets:
                p = os.path.join(raw, f"{w}.{t}.txt")
                if os.path.exists(p):
                    kv = read_kv(p)
                    f.write(f"{t} {num(kv, 'lat_p50_us') / 1000} {num(kv, 'lat_p99_us') / 1000} "
                            f"{num(kv, 'lat_p999_us') / 1000}\n")
            f.write("\n\n")
            panels.append((wi, w))
    s = [f"set terminal pngcairo size 1100,{300 * len(panels)} font 'sans,10'",
         f"set output '{img}'",
         f"set multiplot layout {len(panels)},1",
         "set style data histogram", "set style histogram cluster gap 1",
         "set style fill solid 0.8 border -1", "set logscale y", "set ylabel 'latency (ms, log)'",
         "set grid ytics", "set key top left", "set xtics noenhanced"]
    for wi, w in panels:
        s.append(f"set title '{w}: latency from the scheduled start' noenhanced")
        s.append(f"plot '{dat}' index {wi} using 2:xtic(1) title 'p50', '' index {wi} using 3 title 'p99', "
                 f"'' index {wi} using 4 title 'p99.9'")
    s.append("unset multiplot")
    gnuplot("\n".join(s) + "\n")


def plot_share(raw, w, targets, img, tmpd):
    got = [(t, series_shares(os.path.join(raw, f"{w}.{t}.series.tsv"))) for t in targets]
    got = [(t, s) for t, s in got if s]
    if not got:
        return False
    cols = 2
    rows = (len(got) + cols - 1) // cols
    s = [f"set terminal pngcairo size 1100,{260 * rows} font 'sans,9'", f"set output '{img}'",
         f"set multiplot layout {rows},{cols}", "set yrange [0:100]", "set ylabel 'share %'",
         "set xlabel 'seconds (warm-up included)'", "set grid", "set key top right"]
    for i, (t, ser) in enumerate(got):
        dat = os.path.join(tmpd, f"share{i}.dat")
        with open(dat, "w") as f:
            for r in ser:
                f.write(f"{r[0]} {r[1]:.2f} {r[2]:.2f} {r[3]:.2f}\n")
        s.append(f"set title '{w}: {t}' noenhanced")
        s.append(f"plot '{dat}' using 1:2 with lines lw 2 title 'A', '' using 1:3 with lines lw 2 title 'B', "
                 f"'' using 1:4 with lines lw 2 title 'C'")
    s.append("unset multiplot")
    gnuplot("\n".join(s) + "\n")
    return True


def plot_slow(slows, raw, img, tmpd):
    if not slows:
        return False
    s = ["set terminal pngcairo size 1100,420 font 'sans,10'", f"set output '{img}'",
         "set yrange [0:100]", "set ylabel \"node A's share %\"", "set xlabel 'seconds'", "set grid",
         "set y2range [0:*]", "set y2label \"fulcrum's weight of node A\"", "set y2tics",
         "set key top right", f"set arrow from {slows[0]['hog']},0 to {slows[0]['hog']},100 nohead dt 2",
         "set title 'CPU hog started in node A''s cgroup at the dashed line'"]
    plots = []
    for i, r in enumerate(slows):
        dat = os.path.join(tmpd, f"slow{i}.dat")
        with open(dat, "w") as f:
            for x in r["ser"]:
                f.write(f"{x[0]} {x[1]:.2f}\n")
        plots.append(f"'{dat}' using 1:2 with lines lw 2 title '{r['t']}: share' noenhanced")
        head, rows = read_tsv(os.path.join(raw, f"slow.{r['t']}.weights.tsv"))
        t0 = num(r["kv"], "t0_unix")
        wa = [(float(x[0]) - t0, x[4]) for x in rows if x[1] == "node-A" and x[4] not in ("None", "")]
        if wa and t0 > 0:
            wdat = os.path.join(tmpd, f"slow{i}w.dat")
            with open(wdat, "w") as f:
                for x, v in wa:
                    f.write(f"{x:.3f} {v}\n")
            plots.append(f"'{wdat}' using 1:2 axes x1y2 with steps dt 3 lw 2 "
                         f"title '{r['t']}: weight (right axis)' noenhanced")
    s.append("plot " + ", ".join(plots))
    gnuplot("\n".join(s) + "\n")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("meta")
    ap.add_argument("--doc")
    ap.add_argument("--img-dir")
    a = ap.parse_args()
    meta = {}
    with open(a.meta) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    wls = meta.get("workloads", "").split()
    targets = meta.get("targets", "").split()
    out = [f"Run of {meta.get('date')} on {meta.get('machine')}; {meta.get('versions')}; "
           f"commit {meta.get('commit')}; cgroup {meta.get('cgroup')}. Load average "
           f"{meta.get('load')}.",
           "",
           f"Nodes A and B: {meta.get('quota_ab_cores')} cores each; node C: {meta.get('quota_c_cores')} "
           f"(period {meta.get('period_us')} us). Offered rate: {meta.get('load_pct')} % of the capacity "
           f"measured just before; {meta.get('settle', '0')} s at rest before each run starts its target; "
           f"{meta.get('warmup')} s warm-up, then {meta.get('seconds')} s measured; "
           f"probe interval {meta.get('interval')} s; {meta.get('workers')} balancer threads; "
           f"keep-alive pool {meta.get('ka_conns')}; PASS object {meta.get('pass_size')} bytes.",
           "",
           "```sh", meta.get("command", "bench/skew.sh"), "```", "",
           "Capacity, each node behind its own HAProxy relay: a closed loop at the three at once "
           f"({meta.get('cap_conns')} connections), then each node at half its closed-loop rate, "
           "open loop, for its CPU time per request; a node's capacity is its quota divided by "
           "that.", ""]
    out += capacity_table(a.raw, meta, wls)
    verdicts = []
    for w in wls:
        lines, rows, ref = run_table(a.raw, w, targets)
        out += [""] + lines
        tail = tail_table(a.raw, w, targets)
        out += [""] + tail if tail else []
        verdicts += verdict(w, rows, ref)
    if verdicts:
        out += ["", "Target (fulcrum `weighted` against HAProxy `leastconn`, same run):", ""] + verdicts
    slows = []
    for t in meta.get("slow_targets", "").split():
        if os.path.exists(os.path.join(a.raw, f"slow.{t}.txt")):
            slows.append(slow_analysis(a.raw, t, meta))
    if slows:
        out += ["", f"A node that slows: {meta.get('hogs')} busy loop(s) started in node A's cgroup "
                f"{meta.get('slow_before')} s into a {meta.get('slow_pct')} % load of 1 KiB hits "
                "(Connection: close); shares in 250 ms buckets. \"Drops\": A's share stays at or "
                "below halfway between its level before and its level over the last 10 s, for 1 s.",
                ""] + slow_table(slows)
    text = "\n".join(out) + "\n"
    print(text)
    if not a.doc:
        return 0
    img_dir = a.img_dir or os.path.join(os.path.dirname(a.doc), "img")
    os.makedirs(img_dir, exist_ok=True)
    rel = os.path.relpath(img_dir, os.path.dirname(os.path.abspath(a.doc)))
    pics = []
    with tempfile.TemporaryDirectory() as tmpd:
        plot_latency(a.raw, wls, targets, os.path.join(img_dir, "skew-latency.png"), tmpd)
        pics.append(("Latency percentiles per config", "skew-latency.png"))
        share_w = "hits-close" if "hits-close" in wls else (wls[0] if wls else None)
        if share_w and plot_share(a.raw, share_w, targets, os.path.join(img_dir, "skew-share.png"), tmpd):
            pics.append((f"Share of each node per second ({share_w})", "skew-share.png"))
        if plot_slow(slows, a.raw, os.path.join(img_dir, "skew-slow.png"), tmpd):
            pics.append(("Node A's share when a CPU hog starts in its cgroup", "skew-slow.png"))
    text += "\n" + "\n\n".join(f"![{t}]({rel}/{f})" for t, f in pics) + "\n"
    write_doc(a.doc, text)
    print(f"skew_report.py: wrote {a.doc} and {len(pics)} plots in {img_dir}", file=sys.stderr)
    return 0


def write_doc(path, text):
    with open(path) as f:
        doc = f.read()
    block = f"{BEGIN}\n{text}{END}"
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n## Step 5: skewed cluster\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    sys.exit(main())
