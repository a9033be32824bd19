#!/usr/bin/env bash
# test_netns_loss.sh BUILD_DIR - probe loss and reordering on a virtual network.
#
# The cluster of scripts/netns-cluster.sh (three cache hosts, a balancer host
# with fulcrum-balancer and fulcrum-monitor), probe interval 1 s, HTTP load
# through the balancer all along. Then:
#
#  1. 10 % of the probe-path datagrams (UDP to or from the group's port) the
#     balancer's host sends are lost and 10 % reordered (held and sent after
#     the next one), for NCL_LOSS_ROUNDS rounds (30): at most one in a row per
#     flow, so every loss is a single lost round. Asserted: no node is ever
#     down, in any round of fulcrum-monitor's JSON lines or in the balancer
#     (its log has no "N of 3 nodes in rotation" line below 3, its
#     /status.json, polled, never shows a node down); some rounds were lost
#     (nodes suspect in the monitor's lines), so the loss was felt;
#  2. the opposite: every probe-path datagram from cache-c is lost. cache-c
#     is down in the monitor and the balancer within miss-down (3) rounds
#     and a few more; back up once the loss stops;
#  3. over 1-2, no HTTP request through the balancer failed.
#
# Loss is netem on the balancer host's eth0 when the kernel has sch_netem,
# else scripts/netns-delay.py on its cable (NCL_LOSS_HOST=lb). The figures
# (rounds, probes lost, reordered, late, suspect rounds, flaps) are printed.
#
# Exit 0 pass, 1 fail, 77 skip (no network namespaces here). Everything made
# (namespaces, bridge, processes, the temporary directory) is deleted on any
# exit; a watchdog stops the test with SIGTERM before ctest's timeout so that
# the cleanup runs. FULCRUM_NETNS_KEEP=1 keeps the directory and says where.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:?usage: test_netns_loss.sh BUILD_DIR}
ROUNDS=${NCL_LOSS_ROUNDS:-30}
LOSS=${NCL_LOSS_PCT:-10}
REORDER=${NCL_REORDER_PCT:-10}
MISS_DOWN=3
export NCL_INTERVAL=${NCL_INTERVAL:-1}
export NCL_LOSS_HOST=lb
export NCL_MONITOR_ARGS="--json ${NCL_MONITOR_ARGS:-}"

say() { ncl_test_say "$@"; }
fail() { ncl_test_fail "$@"; }

# shellcheck source-path=SCRIPTDIR/../.. source=scripts/netns-cluster.sh
source "$SRC/scripts/netns-cluster.sh"
# skip or check, RUN, the cleanup trap and the watchdog (FULCRUM_NETNS_GUARD s)
ncl_test_begin test_netns_loss "$BUILD"
POLL_PID=""
LOAD_PID=""
NCL_TEST_JOBS=(POLL_PID LOAD_PID)
NCL_TEST_TAILS=()
NCL_TEST_KEPT="logs, status.txt: the monitor's JSON lines, states.txt"

# ---- helpers -------------------------------------------------------------

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
phase() { say "[$(elapsed)s, monitor round $(mon_round)] $*"; }

# The monitor's last completed round (its last JSON line).
mon_round() { tail -n 1 "$RUN/status.txt" 2>/dev/null | jq -r '.round // 0' 2>/dev/null || echo 0; }
mon_round_at_least() { (($(mon_round) >= $1)); }
# mon_stat ROUND KEY: a counter of the monitor's line of ROUND.
mon_stat() { jq -r --argjson r "$1" "select(.round == \$r) | .stats.$2" "$RUN/status.txt"; }
# lb_stat JSON KEY: a counter of the balancer's embedded monitor in /status.json.
lb_stat() { jq -r ".monitor.$2" <<<"$1"; }
# mon_lines FROM TO: the monitor's JSON lines of rounds FROM..TO.
mon_lines() { jq -c --argjson a "$1" --argjson b "$2" 'select(.round >= $a and .round <= $b)' "$RUN/status.txt"; }
# mon_count FROM TO STATE: node-rounds in STATE over rounds FROM..TO.
mon_count() {
  mon_lines "$1" "$2" | jq --arg s "$3" '[.nodes[] | select(.state == $s)] | length' |
    awk '{ n += $1 } END { print n + 0 }'
}
mon_state() { tail -n 1 "$RUN/status.txt" | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .state'; }
mon_c_is() { [ "$(mon_state cache-c)" = "$1" ]; }
lb_state() { ncl_status | jq -r --arg n "$1" '.nodes[] | select(.name == $n) | .state'; }
lb_c_is() { [ "$(lb_state cache-c)" = "$1" ]; }
load_done_at_least() { [ "$(cat "$RUN/$1.json.progress" 2>/dev/null || echo 0)" -ge "$2" ]; }
# First round of the balancer's log, after line $1, with fewer than 3 nodes in rotation.
lb_first_short_round() {
  tail -n +"$(($1 + 1))" "$RUN/balancer.log" |
    sed -n 's/.* round \([0-9]*\): \([0-9]*\) of 3 nodes in rotation.*/\1 \2/p' |
    awk '$2 < 3 { print $1; exit }'
}

# Every 0.2 s, the balancer's round and each node's state, to states.txt:
# the balancer's history, one line per change.
poll_states() {
  local last="" cur
  while :; do
    cur=$(ncl_status | jq -r '[.round] + [.nodes[] | "\(.name)=\(.state)"] | join(" ")' 2>/dev/null)
    if [ -n "$cur" ] && [ "${cur#* }" != "${last#* }" ]; then echo "$cur" >>"$RUN/states.txt"; fi
    [ -n "$cur" ] && last=$cur
    sleep 0.2
  done
}

# ---- up ------------------------------------------------------------------

say "building the cluster in namespaces $NCL_ID-{sw,lb,a,b,c}, run dir $RUN"
ncl_up
rc=$?
if [ "$rc" = 77 ]; then
  say "SKIP: network namespaces cannot be made here (needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN)"
  exit 77
fi
[ "$rc" = 0 ] || fail "the cluster did not start"
say "loss by $NCL_DELAY; probe interval ${NCL_INTERVAL}s; $LOSS % lost, $REORDER % reordered for $ROUNDS rounds"
ncl_wait 30 "three nodes up on the balancer" ncl_all_up || fail "not every node came up"
ncl_wait 30 "three nodes up in fulcrum-monitor" ncl_monitor_all_up || fail "the monitor lacks nodes"
ncl_wait 15 "a monitor round with cache-c up" mon_c_is up ||
  fail "fulcrum-monitor's lines do not show cache-c up"
log_lines=$(wc -l <"$RUN/balancer.log")
poll_states &
# shellcheck disable=SC2034 # stopped by ncl_test_end (NCL_TEST_JOBS)
POLL_PID=$!
PATHS=$(seq -f "/obj-%g.html" 1 20 | paste -sd,)
ncl_exec lb python3 "$SRC/tests/integration/netns_load.py" "$NCL_LB_IP:$NCL_LB_PORT" \
  "$RUN/load.json" --paths "$PATHS" --threads 2 --stop-file "$RUN/stop" &
LOAD_PID=$!
ncl_wait 30 "load to run" load_done_at_least load 50 || fail "the load client is not running"
phase "all three nodes up; load running"

# ---- 1. loss and reordering on the probe path ------------------------------

m0=$(mon_round)
lb0=$(ncl_status) || fail "no /status.json"
ncl_probe_loss lb "$LOSS" "$REORDER" || fail "cannot set loss on the balancer host's wire"
phase "1. $LOSS % loss and $REORDER % reordering on the probe path from round $((m0 + 1))"
ncl_wait $((ROUNDS * 3 + 30)) "$ROUNDS rounds under loss" mon_round_at_least $((m0 + ROUNDS + 1)) ||
  fail "the monitor is at round $(mon_round), not $((m0 + ROUNDS + 1))"
m1=$(mon_round)
lb1=$(ncl_status) || fail "no /status.json"
ncl_probe_loss lb 0 0 || fail "cannot remove the loss"
# Rounds m0+1 .. m1 were probed under loss (the change took effect during
# m0+1); a lost response is one of three the round's probe did not get.
rounds=$((m1 - m0))
probes=$(($(mon_stat "$m1" probes_sent) - $(mon_stat "$m0" probes_sent)))
lost=$((3 * probes - ($(mon_stat "$m1" responses) - $(mon_stat "$m0" responses))))
late=$(($(mon_stat "$m1" late) - $(mon_stat "$m0" late)))
lb_probes=$(($(lb_stat "$lb1" probes_sent) - $(lb_stat "$lb0" probes_sent)))
lb_lost=$((3 * lb_probes - ($(lb_stat "$lb1" responses) - $(lb_stat "$lb0" responses))))
lb_late=$(($(lb_stat "$lb1" late) - $(lb_stat "$lb0" late)))
suspect=$(mon_count $((m0 + 1)) "$m1" suspect)
down=$(mon_count $((m0 + 1)) "$m1" down)
relay=""
[ "$NCL_DELAY" = relay ] && relay=$(ncl_relay_stats lb)
phase "1. loss off after round $m1"
say "monitor: $rounds rounds, $probes probes, $lost of $((3 * probes)) responses lost ($late of them late), $suspect node-rounds suspect, $down down"
[ -n "$relay" ] && say "relay on the balancer host's cable: $relay"
short=$(lb_first_short_round "$log_lines")
flaps=$(grep -c '=down' "$RUN/states.txt" 2>/dev/null)
say "balancer's monitor: $lb_probes probes, $lb_lost of $((3 * lb_probes)) responses lost ($lb_late late)"
say "balancer: $(wc -l <"$RUN/states.txt") state changes polled, $flaps with a node down; first round below 3 in rotation: ${short:-none}"
((down == 0)) || fail "a node went down in fulcrum-monitor under $LOSS % loss: $(mon_lines $((m0 + 1)) "$m1" | grep -m1 '"down"')"
[ -z "$short" ] || fail "the balancer had fewer than 3 nodes in rotation at round $short"
((flaps == 0)) || fail "the balancer showed a node down: $(grep -m1 '=down' "$RUN/states.txt")"
((lost + lb_lost > 0)) || fail "no response was lost: the loss was not felt"
((lost == 0 || suspect > 0)) || fail "$lost responses lost but no node suspect in fulcrum-monitor's lines"

# ---- 2. the opposite: all of cache-c's probe path lost -----------------------

ncl_wait 15 "cache-c up again in the monitor" mon_c_is up || fail "cache-c is $(mon_state cache-c)"
mc=$(mon_round)
ncl_blackhole c on || fail "cannot black-hole cache-c"
phase "2. every probe-path datagram from cache-c lost (after round $mc)"
ncl_wait $((MISS_DOWN * 3 + 20)) "cache-c down in the monitor" mon_c_is down ||
  fail "cache-c is $(mon_state cache-c) in the monitor, not down"
md=$(mon_round)
ncl_wait 20 "cache-c down in the balancer" lb_c_is down || fail "cache-c is $(lb_state cache-c) in the balancer"
short=$(lb_first_short_round "$log_lines")
phase "2. cache-c down: monitor round $md ($((md - mc)) after the cut), balancer round ${short:-?}"
((md - mc <= MISS_DOWN + 2)) || fail "cache-c went down $((md - mc)) rounds after the cut, not within $((MISS_DOWN + 2))"
ncl_blackhole c off || fail "cannot end the black hole"
ncl_wait 20 "cache-c up in the monitor" mon_c_is up || fail "cache-c is $(mon_state cache-c) in the monitor"
ncl_wait 20 "cache-c up in the balancer" lb_c_is up || fail "cache-c is $(lb_state cache-c) in the balancer"
phase "2. cache-c up again"

# ---- 3. no HTTP request failed ---------------------------------------------

touch "$RUN/stop"
wait "$LOAD_PID" || fail "load client"
LOAD_PID=""
say "load through 1 and 2: $(jq -c '{requests, ok, failed, max_ms, over_1s, by_node}' "$RUN/load.json")"
jq -e '.failed == 0 and .ok > 0' "$RUN/load.json" >/dev/null ||
  fail "requests failed: $(jq -c .errors "$RUN/load.json")"
say "PASS in $(elapsed)s: $rounds rounds under loss; responses lost: fulcrum-monitor $lost ($late late), balancer $lb_lost ($lb_late late); flaps 0"
