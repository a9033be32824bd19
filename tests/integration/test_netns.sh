#!/usr/bin/env bash
# test_netns.sh BUILD_DIR - the cluster on a virtual network.
#
# scripts/netns-cluster.sh builds three cache hosts (fulcrum-cache and
# fulcrum-agent each) and a balancer host (origin, fulcrum-balancer with its
# embedded monitor, fulcrum-monitor) as network namespaces on a bridge; the
# probes, hellos and byes are real multicast across it. Then:
#
#  1. the balancer and the monitor see the three nodes up, at their own
#     addresses; HTTP through the balancer works;
#  2. 20 ms more on everything cache-c sends: its RTT in /status.json
#     reaches 20 ms, its weight falls below cache-a's and cache-b's, and a
#     load run (8 clients, a new connection per request) gives it fewer new
#     connections than each of them;
#  3. under load that runs through 3 and 4, cache-c's cable is pulled: it
#     is down by the end of the third round that began after the cut, and
#     no client request fails, not even a burst of 24 new connections fired
#     as the cable goes (the balancer retries their connects elsewhere);
#     an object first fetched now is stored by the others only;
#  4. the cable is plugged back: cache-c rejoins, resyncs from a peer (its
#     peer_syncs and replicated_in grow, and it serves the new object as a
#     HIT while the origin saw one request for it), and takes new
#     connections again, ramping up (slow start).
#
# Exit 0 pass, 1 fail, 77 skip (no network namespaces here: not root, no
# CAP_NET_ADMIN, or no bridge/veth support). Everything made (namespaces,
# bridge, processes, the temporary directory) is deleted on any exit; a
# watchdog stops the test with SIGTERM before ctest's timeout so that the
# cleanup runs. FULCRUM_NETNS_KEEP=1 keeps the directory (logs, status.txt)
# and says where.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:?usage: test_netns.sh BUILD_DIR}
export NCL_INTERVAL=${NCL_INTERVAL:-0.5}
export NCL_SLOWSTART=${NCL_SLOWSTART:-10}

say() { ncl_test_say "$@"; }
fail() { ncl_test_fail "$@"; }

# shellcheck source-path=SCRIPTDIR/../.. source=scripts/netns-cluster.sh
source "$SRC/scripts/netns-cluster.sh"
# skip or check, RUN, the cleanup trap and the watchdog (FULCRUM_NETNS_GUARD s)
ncl_test_begin test_netns "$BUILD"
LOAD_PID=""
BURST_PID=""
NCL_TEST_JOBS=(LOAD_PID BURST_PID)
NCL_TEST_TAILS=(status.txt)
NCL_TEST_KEPT="logs, status.txt, phases.txt"

# ---- helpers -------------------------------------------------------------

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# phase TEXT: a headline, also written with the round to phases.txt so the
# table in status.txt can be read against the scenario.
phase() {
  local r
  r=$(ncl_status | jq .round 2>/dev/null)
  say "[$(elapsed)s, round ${r:-?}] $*"
  echo "$(date -u +%H:%M:%S) round ${r:-?}: $*" >>"$RUN/phases.txt"
}

# snap: the balancer's /status.json into $SNAP.
snap() { SNAP=$(ncl_status) && [ -n "$SNAP" ]; }
# field NODE KEY [JSON]: a node's field in $SNAP (or in JSON).
field() { jq -r --arg n "$1" ".nodes[] | select(.name == \$n) | .$2" <<<"${3:-$SNAP}"; }
# num EXPR: evaluates a comparison with awk (floats), true or false.
num() { awk "BEGIN { exit !($*) }"; }

c_rtt_at_least() { snap && num "$(field cache-c rtt_ms) >= $1"; }
monitor_c_rtt_at_least() { num "$(field cache-c rtt_ms "$(cat "$RUN/monitor.json")") >= $1"; }
c_lighter() {
  snap || return 1
  local a b c
  a=$(field cache-a weight) b=$(field cache-b weight) c=$(field cache-c weight)
  num "$c < $a && $c < $b"
}
c_state() { snap && [ "$(field cache-c state)" = "$1" ]; }
stat_of() { ncl_stats "$1" | jq -r ".$2"; }
round_after() { snap && [ "$(jq .round <<<"$SNAP")" -gt "$1" ]; }
c_peers_ready() { [ "$(stat_of c peers_ready)" = "$1" ]; }
c_resynced() { (($(stat_of c peer_syncs) > $1 && $(stat_of c replicated_in) > $2)); }
c_conns_at_least() { snap && (($(field cache-c conns_total) >= $1)); }
origin_count() { grep -c "\"GET $1 " "$RUN/origin.log"; }
load_done_at_least() { [ "$(cat "$RUN/$1.json.progress" 2>/dev/null || echo 0)" -ge "$2" ]; }

# load NAME ARGS...: the load client in the balancer's namespace.
load() {
  local name=$1
  shift
  ncl_exec lb python3 "$SRC/tests/integration/netns_load.py" "$NCL_LB_IP:$NCL_LB_PORT" \
    "$RUN/$name.json" --paths "$PATHS" "$@"
}
PATHS=$(seq -f "/obj-%g.html" 1 20 | paste -sd,)

# ---- 1. up ---------------------------------------------------------------

say "building the cluster in namespaces $NCL_ID-{sw,lb,a,b,c}, run dir $RUN"
ncl_up
rc=$?
if [ "$rc" = 77 ]; then
  say "SKIP: network namespaces cannot be made here (needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN)"
  exit 77
fi
[ "$rc" = 0 ] || fail "the cluster did not start"
say "delay by $NCL_DELAY; probe interval ${NCL_INTERVAL}s"

ncl_wait 30 "three nodes up on the balancer" ncl_all_up || fail "not every node came up"
ncl_wait 30 "three nodes up in fulcrum-monitor" ncl_monitor_all_up || fail "the monitor lacks nodes"
phase "1. all three nodes up"
snap || fail "no /status.json"
for h in a b c; do
  addr=$(field "cache-$h" addr)
  [ "$addr" = "${NCL_IP[$h]}:$NCL_CACHE_PORT" ] || fail "cache-$h is at $addr"
done
hellos=$(jq .monitor.hellos <<<"$SNAP")
[ "$hellos" -ge 3 ] || fail "the balancer heard $hellos hellos, not 3 (multicast across the bridge)"
load warm --threads 2 --count 40 || fail "load client"
jq -e '.failed == 0 and .ok == 40' "$RUN/warm.json" >/dev/null || fail "warm-up: $(cat "$RUN/warm.json")"
say "multicast crossed the bridge: $hellos hellos; 40 requests through the balancer: $(jq -c .by_xcache "$RUN/warm.json")"

# ---- 2. 20 ms more on cache-c --------------------------------------------

ncl_delay c 20 || fail "cannot delay cache-c"
phase "2. 20 ms more on everything cache-c sends"
ncl_wait 90 "cache-c's RTT to reach 20 ms" c_rtt_at_least 20 || fail "RTT of cache-c: $(field cache-c rtt_ms)"
say "cache-c's smoothed RTT is $(field cache-c rtt_ms) ms (cache-a $(field cache-a rtt_ms), cache-b $(field cache-b rtt_ms))"
ncl_wait 60 "fulcrum-monitor to show it" monitor_c_rtt_at_least 20 ||
  fail "fulcrum-monitor: RTT of cache-c $(field cache-c rtt_ms "$(cat "$RUN/monitor.json")")"
# Lighter than both for three rounds in a row.
for _ in 1 2 3; do
  r=$(jq .round <<<"$SNAP")
  ncl_wait 30 "cache-c lighter than cache-a and cache-b" c_lighter ||
    fail "weights: a=$(field cache-a weight) b=$(field cache-b weight) c=$(field cache-c weight)"
  ncl_wait 10 "the next round" round_after "$r" ||
    fail "rounds stopped"
done
c_lighter || fail "weights: a=$(field cache-a weight) b=$(field cache-b weight) c=$(field cache-c weight)"
say "weights: cache-a $(field cache-a weight), cache-b $(field cache-b weight), cache-c $(field cache-c weight)"
phase "2. cache-c lighter; load run: 1500 requests, 8 clients"
before=$SNAP
load delayed --threads 8 --count 1500 || fail "load client"
snap || fail "no /status.json"
jq -e '.failed == 0' "$RUN/delayed.json" >/dev/null || fail "load run: $(cat "$RUN/delayed.json")"
declare -A new
for h in a b c; do
  new[$h]=$(($(field "cache-$h" conns_total) - $(field "cache-$h" conns_total "$before")))
done
say "new connections: cache-a ${new[a]}, cache-b ${new[b]}, cache-c ${new[c]} (client: $(jq -c .by_node "$RUN/delayed.json"))"
((new[c] < new[a] && new[c] < new[b])) || fail "cache-c did not get fewer new connections"

# ---- 3. cache-c's cable pulled, under load ----------------------------------

ncl_delay c 0 || fail "cannot remove the delay"
syncs0=$(stat_of c peer_syncs) || fail "cache-c stats"
repl0=$(stat_of c replicated_in) || fail "cache-c stats"
load through --threads 4 --stop-file "$RUN/stop" &
LOAD_PID=$!
ncl_wait 30 "load to run" load_done_at_least through 200 || fail "the load client is not running"
log_lines=$(wc -l <"$RUN/balancer.log")
# The steady load has 4 clients; when requests in flight on cache-c hang
# with its cable, least-connections rightly steers the next few away and
# it may get no new connect before it is down. A burst of 24 concurrent
# new connections, fired as the cable goes, gives it some whatever the
# timing: their connects must time out and be retried elsewhere.
load burst --threads 24 --count 24 --start-file "$RUN/go" &
BURST_PID=$!
# Its threads are up (and waiting for go) once it writes its progress file.
ncl_wait 30 "the burst client" test -f "$RUN/burst.json.progress" || fail "the burst client is not running"
ncl_link c down || fail "cannot pull the cable"
touch "$RUN/go"
snap || fail "no /status.json"
r_cut=$(jq .round <<<"$SNAP")
phase "3. cache-c's cable pulled (after round $r_cut)"
ncl_wait 30 "cache-c down" c_state down || fail "cache-c is $(field cache-c state)"
r_down=$(tail -n +"$((log_lines + 1))" "$RUN/balancer.log" |
  sed -n 's/.* round \([0-9]*\): 2 of 3 nodes in rotation.*/\1/p' | head -1)
[ -n "$r_down" ] || fail "no 'round N: 2 of 3 nodes in rotation' line after the cut"
phase "3. cache-c down at round $r_down, $((r_down - r_cut)) rounds after round $r_cut"
((r_down <= r_cut + 4)) || fail "cache-c went down at round $r_down, more than 3 rounds after the cut"
wait "$BURST_PID" || fail "burst client"
BURST_PID=""
say "burst of 24 new connections at the cut: $(jq -c '{ok, failed, max_ms, by_node}' "$RUN/burst.json")"
jq -e '.failed == 0 and .ok == 24' "$RUN/burst.json" >/dev/null ||
  fail "burst at the cut: $(jq -c .errors "$RUN/burst.json")"
# An object the cluster first sees now: cache-c cannot have it.
FRESH=/fresh-$$.html
echo "first fetched while cache-c was away" >"$RUN/www$FRESH"
x=$(ncl_exec lb curl -sf -o /dev/null -D - "http://$NCL_LB_IP:$NCL_LB_PORT$FRESH" |
  tr -d '\r' | sed -n 's/^X-Cache: //Ip')
case $x in
  "MISS from cache-a" | "MISS from cache-b") ;;
  *) fail "$FRESH through the balancer: X-Cache '$x'" ;;
esac
say "$FRESH: $x"
ncl_wait 30 "cache-c to lose its peers" c_peers_ready 0 ||
  fail "cache-c still has $(stat_of c peers_ready) peers"

# ---- 4. plugged back ---------------------------------------------------------

ncl_link c up || fail "cannot plug the cable back"
phase "4. cache-c's cable plugged back"
ncl_wait 30 "cache-c up" c_state up || fail "cache-c is $(field cache-c state)"
# Slow start: the weight the workers pick by climbs from 1 to the full weight.
ramp=()
last=""
for _ in $(seq 300); do
  snap || fail "no /status.json"
  lw=$(field cache-c lb_weight) w=$(field cache-c weight)
  [ "$lw" = null ] && lw=0 # the balancer takes the row over at the next round
  [ "$last" = "$lw" ] || ramp+=("$lw")
  last=$lw
  [ "$lw" -ge "$w" ] && [ "$w" -gt 0 ] && break
  sleep 0.1
done
phase "4. cache-c up again; its lb_weight went ${ramp[*]} (weight $w)"
[ "$lw" -ge "$w" ] || fail "cache-c's lb_weight stayed at $lw of $w"
# Without a ramp it would go from 0 to the full weight in one step. The
# balancer's own samples (/history.json, one a second) show the ramp even
# when this poller is starved on a busy machine: after cache-c's last 0
# (down, or a new ring when it left), the first weight is at most half the
# full one and at least one lies strictly between 0 and it.
hist=$(ncl_status /history.json) || fail "no /history.json"
read -r first steps < <(jq -r --argjson w "$w" '
  (.nodes[] | select(.name == "cache-c") | .weight) as $a
  | ([range(0; $a | length) | select($a[.] == 0)] | last // -1) as $z
  | $a[$z + 1:] as $r
  | "\(($r[0] // 0)) \([$r[] | select(. > 0 and . < $w)] | length)"' <<<"$hist")
phase "4. cache-c's lb_weight per second after it came back (history.json): $(jq -c '.nodes[] | select(.name == "cache-c") | .weight[-15:]' <<<"$hist")"
((steps >= 1 && first > 0 && first <= w / 2)) ||
  fail "no slow start: history shows first $first, $steps steps below $w (polled: ${ramp[*]})"
ncl_wait 30 "cache-c to resync from a peer" c_resynced "$syncs0" "$repl0" ||
  fail "cache-c: peer_syncs $(stat_of c peer_syncs) (was $syncs0), replicated_in $(stat_of c replicated_in) (was $repl0)"
# Straight to cache-c, with the Host the balancer's clients send (part of the key).
x=$(ncl_exec lb curl -sf -o /dev/null -D - -H "Host: $NCL_LB_IP" "http://${NCL_IP[c]}:$NCL_CACHE_PORT$FRESH" |
  tr -d '\r' | sed -n 's/^X-Cache: //Ip')
[ "$x" = "HIT from cache-c" ] || fail "$FRESH on cache-c: X-Cache '$x'"
n=$(origin_count "$FRESH")
[ "$n" = 1 ] || fail "the origin served $FRESH $n times"
say "cache-c resynced: peer_syncs $syncs0 -> $(stat_of c peer_syncs), replicated_in $repl0 -> $(stat_of c replicated_in); $FRESH: $x, origin asked once"
conns_up=$(field cache-c conns_total)
ncl_wait 30 "new connections to cache-c" c_conns_at_least $((conns_up + 50)) ||
  fail "cache-c gets no new connections"
phase "4. cache-c takes new connections again"
touch "$RUN/stop"
wait "$LOAD_PID" || fail "load client"
LOAD_PID=""
snap || fail "no /status.json"
say "load through 3 and 4: $(jq -c '{requests, ok, failed, max_ms, over_1s, by_node}' "$RUN/through.json")"
say "balancer: retries $(jq .balancer.retries <<<"$SNAP"), connect failures to cache-c $(field cache-c connect_failures), ended $(jq -c .balancer.ended <<<"$SNAP")"
jq -e '.failed == 0 and .ok > 0' "$RUN/through.json" >/dev/null ||
  fail "requests failed: $(jq -c .errors "$RUN/through.json")"
# The cut was felt: connects to cache-c failed and were retried elsewhere.
(($(field cache-c connect_failures) > 0 && $(jq .balancer.retries <<<"$SNAP") > 0)) ||
  fail "no connect to cache-c failed during the cut: the retry path was not exercised"
say "PASS in $(elapsed)s"
