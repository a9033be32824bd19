#!/usr/bin/env bash
# The Fulcrum demo, on loopback: installs what is missing, builds, starts
# three stand-in cache nodes (HTTP servers) with a fulcrum-agent each, and a
# fulcrum-monitor that prints the live status table every round. Along the
# way it takes one node's service down, stops one agent (bye) and starts it
# again (hello), so the table shows every state change.
#
# Environment: DEMO_ROUNDS (default 14), DEMO_INTERVAL seconds (default 2),
# DEMO_GROUP (default 239.255.77.77:7777), DEMO_PORT first HTTP port (18081).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${DEMO_ROUNDS:-14}
interval=${DEMO_INTERVAL:-2}
group=${DEMO_GROUP:-239.255.77.77:7777}
port0=${DEMO_PORT:-18081}
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

echo "==> monitor: probing $group every ${interval}s for $rounds rounds (table also in $run/status.txt)"
"$bin/monitor/fulcrum-monitor" --group "$group" --key "$run/cluster.key" \
  --interval "$interval" --rounds "$rounds" --status-file "$run/status.json" \
  2>"$run/monitor.log" | tee "$run/status.txt" &
pid[monitor]=$!
wait_log "$run/monitor.log" "replies on port"

i=0
for n in a b c; do
  start_agent $n $((port0 + i))
  wait_log "$run/agent-$n.log" "ready name=cache-$n"
  i=$((i + 1))
done

# The scripted events, a few rounds apart, while the table scrolls.
(
  sleep "$(awk "BEGIN { print $interval * 4.5 }")"
  echo "==> stopping cache-c's HTTP server: its agent reports the service down" >&2
  kill "${pid[backend-c]}"
  sleep "$(awk "BEGIN { print $interval * 3 }")"
  echo "==> SIGTERM to cache-b's agent: it says bye and leaves the table at once" >&2
  kill "${pid[agent-b]}"
  sleep "$(awk "BEGIN { print $interval * 3 }")"
  echo "==> restarting cache-b's agent: hello puts it back at once" >&2
  "$bin/agent/fulcrum-agent" --name cache-b --service "127.0.0.1:$((port0 + 1))" \
    --group "$group" --key "$run/cluster.key" >>"$run/agent-b2.log" 2>&1 &
  echo $! >"$run/agent-b2.pid"
) &
pid[events]=$!

wait "${pid[monitor]}" || true
unset 'pid[monitor]'
[ -f "$run/agent-b2.pid" ] && pid[agent-b2]=$(cat "$run/agent-b2.pid")
echo "==> done: logs in $run/, last table (JSON) in $run/status.json"
