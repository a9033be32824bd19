#!/usr/bin/env bash
# bench/control_plane.sh — the control plane at scale (Step 5): one
# fulcrum-monitor probing BENCH_AGENTS simulated agents (bench/agent_swarm.c:
# one process, a UDP socket and a name per agent, replies jittered like
# fulcrum-agent's) every BENCH_INTERVAL seconds for BENCH_ROUNDS rounds.
#
# Reports per round: agents answering, responses accepted, lost (agents
# minus accepted), the round's completion time (probe sent -> last reply
# accepted, the monitor's round_span_us gauge) and, over the run, the
# monitor's CPU time. In the same run and for the same wall time, HAProxy
# 2.6 checks the same number of simulated agents with agent-check at the
# same interval (the swarm answers "up N%" on a TCP port per agent): its CPU
# time is the reference, and the table gives the ratio.
#
# Environment (defaults):
#   BENCH_AGENTS=1000  BENCH_ROUNDS=12  BENCH_INTERVAL=5  BENCH_JITTER_MS=50
#   BENCH_PORT_BASE=21000   agent-check ports +0..+N-1, HAProxy's listener +N
#   BENCH_GROUP=239.255.79.1:27999
#   BENCH_BUILD=1           0: use the existing build/release binaries
#   BENCH_DOC=docs/benchmarks.md   (- to skip writing it)
# Needs: haproxy, python3, cmake (bench/deps.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
N=${BENCH_AGENTS:-1000}
ROUNDS=${BENCH_ROUNDS:-12}
INTERVAL=${BENCH_INTERVAL:-5}
JITTER=${BENCH_JITTER_MS:-50}
BASE=${BENCH_PORT_BASE:-21000}
GROUP=${BENCH_GROUP:-239.255.79.1:27999}
BUILD=${BENCH_BUILD:-1}
DOC=${BENCH_DOC:-$root/docs/benchmarks.md}

cmd="bench/control_plane.sh"
for v in BENCH_AGENTS BENCH_ROUNDS BENCH_INTERVAL BENCH_JITTER_MS BENCH_PORT_BASE BENCH_GROUP; do
  [ -n "${!v:-}" ] && cmd="$v='${!v}' $cmd"
done
die() { echo "bench/control_plane.sh: $*" >&2; exit 1; }
say() { echo "[control-plane $(date +%T)] $*" >&2; }
for n in "$N" "$ROUNDS" "$INTERVAL" "$BASE"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "numeric settings must be positive integers (got '$n')"
done
[ $((BASE + N)) -le 65534 ] || die "BENCH_PORT_BASE + BENCH_AGENTS must stay below 65536"
for c in haproxy python3 cmake pkg-config cc; do
  command -v "$c" >/dev/null || die "'$c' not found: run bench/deps.sh as root"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

build="$root/build/release"
if [ "$BUILD" = 1 ]; then
  say "building Release in $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target fulcrum-monitor fulcrum_common >/dev/null
fi
[ -x "$build/monitor/fulcrum-monitor" ] || die "no $build/monitor/fulcrum-monitor (BENCH_BUILD=1)"

tmp=$(mktemp -d /tmp/fulcrum-cp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck disable=SC2046
cc -std=c11 -O2 -I"$root/common" -o "$tmp/agent_swarm" "$here/agent_swarm.c" \
  "$build/common/libfulcrum_common.a" $(pkg-config --cflags --libs libsodium libcjson) -lev -lm
head -c 32 /dev/urandom >"$tmp/key"
chmod 600 "$tmp/key"

say "starting $N simulated agents (jitter 0..$JITTER ms)"
"$tmp/agent_swarm" --key "$tmp/key" --count "$N" --group "$GROUP" --jitter-ms "$JITTER" \
  --tcp-base "$BASE" >"$tmp/swarm.out" 2>"$tmp/swarm.err" &
pids+=($!)
swarm=$!
for _ in $(seq 100); do
  grep -q '^ready' "$tmp/swarm.out" 2>/dev/null && break
  kill -0 "$swarm" 2>/dev/null || die "agent_swarm failed: $(cat "$tmp/swarm.err")"
  sleep 0.1
done
grep -q '^ready' "$tmp/swarm.out" || die "agent_swarm not ready"

# HAProxy checks the same agents: one backend, N servers, agent-check only.
{
  printf 'global\n  maxconn 4000\n  nbthread 1\n'
  printf 'defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n'
  printf 'frontend fe\n  bind 127.0.0.1:%d\n  default_backend agents\n' $((BASE + N))
  printf 'backend agents\n  balance leastconn\n'
  for i in $(seq 0 $((N - 1))); do
    printf '  server s%d 127.0.0.1:%d agent-check agent-port %d agent-inter %ds\n' \
      "$i" $((BASE + i)) $((BASE + i)) "$INTERVAL"
  done
} >"$tmp/haproxy.cfg"
haproxy -c -q -f "$tmp/haproxy.cfg" || die "haproxy rejected $tmp/haproxy.cfg"

say "monitor: $ROUNDS rounds every ${INTERVAL}s; HAProxy agent-check alongside"
python3 - "$build/monitor/fulcrum-monitor" "$tmp" "$N" "$ROUNDS" "$INTERVAL" "$GROUP" \
  "$JITTER" "$cmd" "$DOC" <<'EOF'
import json, os, re, resource, signal, statistics, subprocess, sys, time

mon, tmp, n, rounds, interval, group, jitter, cmd, doc = sys.argv[1:]
n, rounds, interval = int(n), int(rounds), float(interval)

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

hap = subprocess.Popen(["haproxy", "-db", "-f", f"{tmp}/haproxy.cfg"],
                       stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/haproxy.log", "w"))
t0 = time.monotonic()
m = subprocess.Popen([mon, "--key", f"{tmp}/key", "--group", group, "--json",
                      "--rounds", str(rounds), "--interval", str(interval)],
                     stdout=subprocess.PIPE, stderr=open(f"{tmp}/monitor.log", "w"), text=True)
rows = []
for line in m.stdout:
    d = json.loads(line)
    s = d["stats"]
    up = sum(1 for x in d["nodes"] if x["state"] == "up")
    rows.append((d["round"], up, s["round_replies"], s["round_span_us"] / 1000.0, s))
m.wait()
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
mon_cpu = ru.ru_utime + ru.ru_stime
hap_cpu = cpu(hap.pid)
hap.terminate()
hap.wait()
checks_line = ""
if m.returncode:
    sys.exit(f"fulcrum-monitor exited {m.returncode}: see {tmp}/monitor.log")
if len(rows) != rounds:
    sys.exit(f"got {len(rows)} rounds of {rounds}")

last = rows[-1][4]
lost = sum(n - r[2] for r in rows)
drops = sum(v for k, v in last.items() if k in (
    "oversize", "no_mac", "bad_mac", "malformed_json", "bad_version", "bad_type",
    "bad_field", "out_of_range", "unknown_nonce", "late", "replayed", "table_full"))
spans = [r[3] for r in rows]
out = []
out.append(f"Agents: {n} simulated (one UDP socket and name each, replies jittered 0..{jitter} ms), "
           f"{rounds} rounds every {interval:g} s; monitor and HAProxy ran for the same {wall:.1f} s.\n")
out.append("| round | agents up | responses accepted | lost | completion (ms) |")
out.append("|---:|---:|---:|---:|---:|")
for r in rows:
    out.append(f"| {r[0]} | {r[1]} | {r[2]} | {n - r[2]} | {r[3]:.1f} |")
out.append("")
out.append("| measure | value |")
out.append("|---|---:|")
out.append(f"| responses lost over the run | {lost} of {n * rounds} |")
out.append(f"| datagrams dropped (every reason) / late | {drops} / {last['late']} |")
out.append(f"| round completion p50 / max (ms) | {statistics.median(spans):.1f} / {max(spans):.1f} |")
out.append(f"| fulcrum-monitor CPU | {mon_cpu:.2f} s ({100 * mon_cpu / wall:.2f} % of a core) |")
out.append(f"| HAProxy 2.6 agent-check of the same {n} agents, same interval | {hap_cpu:.2f} s ({100 * hap_cpu / wall:.2f} % of a core) |")
ratio = mon_cpu / hap_cpu if hap_cpu > 0 else float("nan")
out.append(f"| **monitor CPU / HAProxy agent-check CPU** | **{ratio:.2f} ×** |")
out.append("")
out.append(f"Reproduce: `{cmd}` (commit {subprocess.run(['git', '-C', os.path.dirname(os.path.dirname(mon)), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip() or '?'}).")
text = "\n".join(out)
print(text)
if doc != "-":
    begin, end = "<!-- bench/control_plane.sh: begin (generated, do not edit by hand) -->", \
                 "<!-- bench/control_plane.sh: end -->"
    body = open(doc).read()
    if begin in body and end in body:
        pre, rest = body.split(begin, 1)
        post = rest.split(end, 1)[1]
        open(doc, "w").write(pre + begin + "\n" + text + "\n" + end + post)
    else:
        print(f"(markers not found in {doc}: not written)", file=sys.stderr)
EOF
kill -TERM "$swarm"
wait "$swarm" || true
say "swarm: $(tail -1 "$tmp/swarm.out")"
