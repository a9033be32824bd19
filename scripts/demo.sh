#!/usr/bin/env bash
# The Fulcrum demo, on loopback: installs what is missing, builds, starts
# three stand-in cache nodes (HTTP servers) with a fulcrum-agent each, the
# balancer with its embedded monitor in front of them, and a fulcrum-monitor
# that prints the live status table every round. It sends HTTP load through
# the balancer (wrk), takes one node's service down under load, stops one
# agent (bye) and starts it again (hello), and ends with the balancer's own
# status page.
#
# Environment: DEMO_INTERVAL seconds between rounds (default 2),
# DEMO_GROUP (default 239.255.77.77:7777), DEMO_PORT first HTTP port (18081),
# DEMO_LB_PORT (18080), DEMO_ADMIN_PORT (18090).
set -euo pipefail
cd "$(dirname "$0")/.."

interval=${DEMO_INTERVAL:-2}
group=${DEMO_GROUP:-239.255.77.77:7777}
port0=${DEMO_PORT:-18081}
lb_port=${DEMO_LB_PORT:-18080}
admin_port=${DEMO_ADMIN_PORT:-18090}
run=run/demo
bin=build/release

scripts/deps.sh demo
echo "==> building (Release) into $bin"
cmake -S . -B "$bin" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF >/dev/null
cmake --build "$bin" -j"$(nproc)" >/dev/null

rm -rf "$run" && mkdir -p "$run/www"
head -c 32 /dev/urandom >"$run/cluster.key"
chmod 600 "$run/cluster.key"
echo "hello from a Fulcrum demo node" >"$run/www/index.html"

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

start_backend() {  # start_backend NAME PORT
  python3 -m http.server "$2" --bind 127.0.0.1 --directory "$run/www" \
    >"$run/backend-$1.log" 2>&1 &
  pid[backend-$1]=$!
}

start_agent() {  # start_agent NAME PORT
  "$bin/agent/fulcrum-agent" --name "cache-$1" --service "127.0.0.1:$2" --group "$group" \
    --key "$run/cluster.key" --check-interval 0.5 >>"$run/agent-$1.log" 2>&1 &
  pid[agent-$1]=$!
}

i=0
for n in a b c; do
  start_backend $n $((port0 + i))
  i=$((i + 1))
done

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

load() {  # load SECONDS: HTTP through the balancer, wrk's summary on stderr
  echo "==> $1 s of HTTP load through the balancer (wrk, 16 connections, a new one per request):" >&2
  wrk -t2 -c16 -d"$1"s -H "Connection: close" "http://127.0.0.1:$lb_port/index.html" 2>&1 |
    grep -E "Requests/sec|requests in|Non-2xx|Socket errors|Latency " | sed 's/^/    /' >&2
}

# The scripted events, a few rounds apart, while the table scrolls.
pause() { sleep "$(awk "BEGIN { print $interval * $1 }")"; }
pause 2.5
load 3
echo "==> stopping cache-c's HTTP server: its agent reports the service down" >&2
kill "${pid[backend-c]}"
unset 'pid[backend-c]'
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
echo "==> done: logs in $run/, last table (JSON) in $run/status.json"
