#!/usr/bin/env bash
# The Fulcrum demo, on loopback: installs what is missing, builds, starts an
# origin (a small Python HTTP server), three fulcrum-cache nodes replicating
# to each other with a fulcrum-agent each, the balancer with its embedded
# monitor in front of them, and a fulcrum-monitor that prints the live status
# table every round. It sends HTTP load through the balancer (wrk), stops one
# cache node under load, stops one agent (bye) and starts it again (hello),
# and ends with the balancer's status page and each node's cache counters.
#
# Environment: DEMO_INTERVAL seconds between rounds (default 2),
# DEMO_GROUP (default 239.255.77.77:7777), DEMO_PORT first HTTP port (18081),
# DEMO_LB_PORT (18080), DEMO_ADMIN_PORT (18090), DEMO_ORIGIN_PORT (18079),
# DEMO_PEER_PORT first replication port (18281).
set -euo pipefail
cd "$(dirname "$0")/.."

interval=${DEMO_INTERVAL:-2}
group=${DEMO_GROUP:-239.255.77.77:7777}
port0=${DEMO_PORT:-18081}
lb_port=${DEMO_LB_PORT:-18080}
admin_port=${DEMO_ADMIN_PORT:-18090}
origin_port=${DEMO_ORIGIN_PORT:-18079}
peer0=${DEMO_PEER_PORT:-18281}
run=run/demo
bin=build/release

scripts/deps.sh demo
echo "==> building (Release) into $bin"
cmake -S . -B "$bin" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF >/dev/null
cmake --build "$bin" -j"$(nproc)" >/dev/null

rm -rf "$run" && mkdir -p "$run/www"
head -c 32 /dev/urandom >"$run/cluster.key"
chmod 600 "$run/cluster.key"
echo "hello from the Fulcrum demo origin" >"$run/www/index.html"
# 2,000 pages the load picks at random: the first load misses each page once
# somewhere, replication copies it to the other nodes, and the hit ratio
# climbs from one load to the next.
pages=2000
python3 - "$run/www" "$pages" <<'PY'
import sys
for i in range(int(sys.argv[2])):
    with open(f"{sys.argv[1]}/page-{i}.html", "w") as f:
        f.write(f"page {i} from the Fulcrum demo origin\n")
PY
cat >"$run/pages.lua" <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/page-" .. math.random(0, $pages - 1) .. ".html")
end
LUA

declare -A pid
cleanup() {
  for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_log() {  # wait_log FILE TEXT: the daemon's readiness line, 10 s at most
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "demo: '$2' never appeared in $1:" >&2; cat "$1" >&2; exit 1
}

start_cache() {  # start_cache NAME PORT PEER_PORT [PEER_PORT_TO_JOIN...]
  local name=$1 port=$2 pport=$3 peers=()
  shift 3
  for p in "$@"; do peers+=(--peer "127.0.0.1:$p"); done
  "$bin/cache/fulcrum-cache" --name "cache-$name" --listen "127.0.0.1:$port" \
    --origin "http://127.0.0.1:$origin_port" --key "$run/cluster.key" \
    --peer-listen "127.0.0.1:$pport" "${peers[@]}" >"$run/cache-$name.log" 2>&1 &
  pid[cache-$name]=$!
  wait_log "$run/cache-$name.log" "ready listen="
}

start_agent() {  # start_agent NAME PORT
  "$bin/agent/fulcrum-agent" --name "cache-$1" --service "127.0.0.1:$2" --group "$group" \
    --key "$run/cluster.key" --check-interval 0.5 >>"$run/agent-$1.log" 2>&1 &
  pid[agent-$1]=$!
}

# Python's file server, speaking HTTP/1.1 so that the caches keep their
# origin connections open and reuse them (origin_conns_reused in their
# counters), with TCP_NODELAY: it writes the head and the body apart, and
# Nagle then held each body back for the cache's delayed ACK (40 ms a fetch).
python3 - "$origin_port" "$run/www" >"$run/origin.log" 2>&1 <<'EOF' &
import functools, http.server, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

http.server.ThreadingHTTPServer(
    ("127.0.0.1", int(sys.argv[1])), functools.partial(Handler, directory=sys.argv[2])
).serve_forever()
EOF
pid[origin]=$!
echo "==> origin on 127.0.0.1:$origin_port; three fulcrum-cache nodes replicating to each other"
start_cache a "$port0" "$peer0"
start_cache b $((port0 + 1)) $((peer0 + 1)) "$peer0"
start_cache c $((port0 + 2)) $((peer0 + 2)) "$peer0" $((peer0 + 1))

"$bin/balancer/fulcrum-balancer" --listen "127.0.0.1:$lb_port" --admin "127.0.0.1:$admin_port" \
  --key "$run/cluster.key" --group "$group" --interval "$interval" --log-conns=no \
  2>"$run/balancer.log" &
pid[balancer]=$!
wait_log "$run/balancer.log" "ready listen="
echo "==> balancer on 127.0.0.1:$lb_port (admin 127.0.0.1:$admin_port), learning nodes from agents"

echo "==> monitor: probing $group every ${interval}s (table also in $run/status.txt)"
"$bin/monitor/fulcrum-monitor" --group "$group" --key "$run/cluster.key" \
  --interval "$interval" --status-file "$run/status.json" \
  2>"$run/monitor.log" > >(tee "$run/status.txt") &
pid[monitor]=$!
wait_log "$run/monitor.log" "replies on port"

i=0
for n in a b c; do
  start_agent $n $((port0 + i))
  wait_log "$run/agent-$n.log" "ready name=cache-$n"
  i=$((i + 1))
done

# The cluster's hit ratio since the previous call, from each live node's
# /_fulcrum/stats (a stopped node's counters are left out).
hit_ratio() {
  python3 - "$run/hits.prev" "$port0" <<'PY' >&2
import json, os, socket, sys
prev_file, port0 = sys.argv[1], int(sys.argv[2])
prev = json.load(open(prev_file)) if os.path.exists(prev_file) else {}
now, hits, misses, repl = {}, 0, 0, 0
for i, n in enumerate("abc"):
    try:
        s = socket.create_connection(("127.0.0.1", port0 + i), timeout=2)
    except OSError:
        continue
    s.sendall(b"GET /_fulcrum/stats HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    st = json.loads(data.split(b"\r\n\r\n", 1)[1])
    now[n] = {k: st.get(k, 0) for k in ("hits", "misses", "replicated_in")}
    p = prev.get(n, {"hits": 0, "misses": 0, "replicated_in": 0})
    hits += now[n]["hits"] - p["hits"]
    misses += now[n]["misses"] - p["misses"]
    repl += now[n]["replicated_in"] - p["replicated_in"]
json.dump(now, open(prev_file, "w"))
total = hits + misses
print(f"    cluster hit ratio of this load: {100 * hits / total:.1f} % "
      f"({hits} hits, {misses} misses; {repl} objects replicated in)" if total else
      "    no cache lookups in this load")
PY
}

load() {  # load SECONDS: HTTP through the balancer, wrk's summary on stderr
  echo "==> $1 s of HTTP load through the balancer (wrk, 16 connections, a new one per request, $pages pages at random):" >&2
  wrk -t2 -c16 -d"$1"s -H "Connection: close" -s "$run/pages.lua" "http://127.0.0.1:$lb_port/" 2>&1 |
    grep -E "Requests/sec|requests in|Non-2xx|Socket errors|Latency " | sed 's/^/    /' >&2
  hit_ratio
}

# The scripted events, a few rounds apart, while the table scrolls.
pause() { sleep "$(awk "BEGIN { print $interval * $1 }")"; }
pause 2.5
hit_ratio >/dev/null 2>&1 # the baseline: the start-up checks' lookups
load 1
load 2
echo "==> stopping the cache-c node: its agent reports the service down" >&2
kill "${pid[cache-c]}"
unset 'pid[cache-c]'
pause 1.5
load 3
pause 1
echo "==> SIGTERM to cache-b's agent: it says bye and leaves the table at once" >&2
kill "${pid[agent-b]}"
unset 'pid[agent-b]'
pause 3
echo "==> restarting cache-b's agent: hello puts it back at once" >&2
start_agent b $((port0 + 1))
pause 3
load 3
pause 1
kill "${pid[monitor]}"
wait "${pid[monitor]}" 2>/dev/null || true
unset 'pid[monitor]'
echo "==> the balancer's view (GET /status on its admin port):"
exec 3<>"/dev/tcp/127.0.0.1/$admin_port"
printf 'GET /status HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n' >&3
sed '1,/^\r$/d' <&3
exec 3<&-
echo "==> the same through the runtime API (fulcrumctl nodes; the live page is http://127.0.0.1:$admin_port/):"
"$bin/ctl/fulcrumctl" --admin "127.0.0.1:$admin_port" nodes
for n in a b; do
  echo "==> cache-$n counters (GET /_fulcrum/stats):"
  exec 3<>"/dev/tcp/127.0.0.1/$((port0 + $([ $n = a ] && echo 0 || echo 1)))"
  printf 'GET /_fulcrum/stats HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n' >&3
  sed '1,/^\r$/d' <&3
  echo
  exec 3<&-
done
echo "==> done: logs in $run/, last table (JSON) in $run/status.json"
