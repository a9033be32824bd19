#!/usr/bin/env bash
# Fulcrum on a virtual network: three cache hosts and a balancer host, each a
# network namespace with its own address on one bridge, with real multicast
# between them. Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN).
#
#   host  namespace   address      runs
#   lb    PREFIX-lb   10.77.0.1    origin (python3 http.server :8000), fulcrum-balancer
#                                  (:80, admin 127.0.0.1:9901, embedded monitor) and
#                                  fulcrum-monitor (table in RUN/status.txt)
#   a     PREFIX-a    10.77.0.11   fulcrum-cache cache-a (:8080, peers :8090) + fulcrum-agent
#   b     PREFIX-b    10.77.0.12   cache-b, replicating with a
#   c     PREFIX-c    10.77.0.13   cache-c, replicating with a and b
#   -     PREFIX-sw   -            the bridge br0 (IGMP snooping off), one port per host
#
# PREFIX is "fcl" and this shell's PID, so parallel runs never share a name;
# the namespaces of runs whose shell has died are deleted at the next start.
# Everything this script creates is deleted when it exits, however it exits
# (except SIGKILL: then the next run reaps it).
#
# Usage: scripts/netns-cluster.sh [--keep] [--build DIR] [--run DIR] [--interval SEC]
#   without --keep: start the cluster, wait for the three nodes, show the
#                   table and the balancer's status, then delete everything
#   --keep          leave it running until Ctrl-C, with the commands to try
#   --build DIR     where the daemons are built (default build/release; built
#                   there, Release, when missing)
#   --run DIR       logs, key and the table (default run/netns-PID)
#   --interval SEC  probe round of the balancer and the monitor (default 1)
#
# Sourced (as tests/integration/test_netns.sh does), it only defines the
# ncl_* functions below: ncl_init BUILD RUN, ncl_up, ncl_down, ncl_delay HOST MS,
# ncl_link HOST up|down, ncl_exec HOST CMD..., ncl_status, ncl_stats HOST, and
# for the tests ncl_test_begin NAME BUILD (skip, checks, RUN, cleanup trap,
# watchdog) with ncl_test_say and ncl_test_fail.
#
# Delay: `tc qdisc ... netem` on the host's eth0 when the kernel has sch_netem;
# otherwise (NCL_DELAY=relay forces it) the host that gets a delay (NCL_DELAY_HOST,
# default c) is wired to the bridge through scripts/netns-delay.py, a userspace
# wire that holds the host's outgoing frames for the delay.
#
# Probe loss and reordering: NCL_LOSS_HOST (default none; the loss test
# uses lb) is also wired through scripts/netns-delay.py when the kernel has
# no sch_netem. ncl_probe_loss HOST LOSS REORDER then loses and reorders the
# UDP datagrams of the group's port that HOST sends (as netem on its eth0),
# at most one in a row per flow, and ncl_blackhole HOST on|off loses every
# one of them from HOST (with netem: on HOST's eth0; without: on the relay
# of NCL_LOSS_HOST). Nothing else on the wire (HTTP, replication) is touched.
#
# Metrics: each agent reports against a cgroup directory of its own that
# nothing runs in (one CPU, 1 GiB, always idle: see ncl_fixed_cgroup), so the
# hosts' weights differ by RTT only; NCL_METRICS=host reports this machine's
# real CPU and RAM instead.
#
# Environment: NCL_NET (first three octets, default 10.77.0), NCL_GROUP
# (default 239.255.77.77:7777), NCL_SLOWSTART (default 6), NCL_DELAY
# (auto|netem|relay), NCL_DELAY_HOST, NCL_LOSS_HOST, NCL_METRICS (fixed|host), and extra
# flags for the daemons: NCL_BALANCER_ARGS, NCL_AGENT_ARGS, NCL_CACHE_ARGS,
# NCL_MONITOR_ARGS.

NCL_HOSTS=(a b c)
NCL_NET=${NCL_NET:-10.77.0}
NCL_GROUP=${NCL_GROUP:-239.255.77.77:7777}
NCL_INTERVAL=${NCL_INTERVAL:-1}
NCL_SLOWSTART=${NCL_SLOWSTART:-6}
NCL_DELAY=${NCL_DELAY:-auto}
NCL_DELAY_HOST=${NCL_DELAY_HOST:-c}
NCL_LOSS_HOST=${NCL_LOSS_HOST:-}
NCL_METRICS=${NCL_METRICS:-fixed}
NCL_LB_PORT=80
NCL_ADMIN=127.0.0.1:9901
NCL_ORIGIN_PORT=8000
NCL_CACHE_PORT=8080
NCL_PEER_PORT=8090
NCL_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ncl_log() { echo "netns-cluster: $*" >&2; }

# ncl_init BUILD_DIR RUN_DIR: names and addresses; creates nothing.
ncl_init() {
  NCL_BIN=$(cd "$1" && pwd)
  NCL_RUN=$2
  NCL_ID=fcl$$
  NCL_SW=$NCL_ID-sw
  NCL_LB=$NCL_ID-lb
  NCL_LB_IP=$NCL_NET.1
  declare -gA NCL_NS=() NCL_IP=() NCL_PID=()
  local i=11
  for h in "${NCL_HOSTS[@]}"; do
    NCL_NS[$h]=$NCL_ID-$h
    NCL_IP[$h]=$NCL_NET.$i
    i=$((i + 1))
  done
  NCL_NS[lb]=$NCL_LB
  NCL_IP[lb]=$NCL_LB_IP
  NCL_CREATED=()
  NCL_RELAY=""
}

# ncl_exec HOST CMD...: runs CMD in HOST's namespace (HOST: a, b, c, lb).
ncl_exec() {
  local h=$1
  shift
  ip netns exec "${NCL_NS[$h]}" "$@"
}

# ncl_spawn NAME HOST CMD...: starts CMD in the background in HOST's
# namespace, output to RUN/NAME.log; its PID goes into NCL_PID[NAME].
ncl_spawn() {
  local name=$1 ns=$2
  shift 2
  ip netns exec "$ns" "$@" >"$NCL_RUN/$name.log" 2>&1 &
  NCL_PID[$name]=$!
}

# ncl_wait SEC WHAT CMD...: polls CMD every 0.1 s until it succeeds; after
# SEC seconds says what it waited for and returns 1.
ncl_wait() {
  local tries=$(($1 * 10)) what=$2
  shift 2
  while ((tries-- > 0)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  ncl_log "timed out waiting for $what"
  return 1
}

ncl_log_has() { grep -q -- "$2" "$NCL_RUN/$1.log" 2>/dev/null; }

# Deletes the namespaces of earlier runs whose shell is gone (a run killed
# with SIGKILL cannot clean up), after killing what still runs in them.
ncl_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fcl[0-9]+-(sw|lb|[a-z])$'); do
    pid=${ns#fcl}
    pid=${pid%%-*}
    [ "$pid" = "$$" ] && continue
    kill -0 "$pid" 2>/dev/null && continue
    ncl_log "deleting $ns, left by dead run $pid"
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
}

ncl_netns_add() {
  ip netns add "$1" || return 1
  NCL_CREATED+=("$1")
  ip -n "$1" link set lo up &&
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1
}

# Does this kernel have sch_netem? Tried on a throwaway veth pair.
ncl_have_netem() {
  local ok=1
  ip -n "$NCL_SW" link add nt0 type veth peer name nt1 || return 1
  tc -n "$NCL_SW" qdisc add dev nt0 root netem delay 1ms 2>/dev/null && ok=0
  ip -n "$NCL_SW" link del nt0
  return $ok
}

# ncl_wire HOST: a veth pair from HOST's eth0 to port pHOST of the bridge;
# through the delay relay when HOST is the delayed host and netem is missing.
ncl_wire() {
  local h=$1 ns=${NCL_NS[$1]}
  if [ "$NCL_DELAY" = relay ] && { [ "$h" = "$NCL_DELAY_HOST" ] || [ "$h" = "$NCL_LOSS_HOST" ]; }; then
    # eth0 <-> h$h (relay) <-> r$h ... p$h (bridge port)
    ip -n "$NCL_SW" link add "h$h" type veth peer name eth0 netns "$ns" &&
      ip -n "$NCL_SW" link add "r$h" type veth peer name "p$h" &&
      ip -n "$NCL_SW" link set "r$h" up && ip -n "$NCL_SW" link set "h$h" up || return 1
    echo 0 >"$NCL_RUN/wire-$h.ctl"
    ncl_spawn "relay-$h" "$NCL_SW" python3 "$NCL_SRC/scripts/netns-delay.py" \
      "h$h" "r$h" "$NCL_RUN/wire-$h.ctl" --port "${NCL_GROUP##*:}"
    [ "$h" = "$NCL_DELAY_HOST" ] && NCL_RELAY=$h
    ncl_wait 10 "the relay of $h" ncl_log_has "relay-$h" "^ready" || return 1
  else
    ip -n "$NCL_SW" link add "h$h" type veth peer name eth0 netns "$ns" &&
      ip -n "$NCL_SW" link set "h$h" name "p$h" || return 1
  fi
  ip -n "$NCL_SW" link set "p$h" master br0 &&
    ip -n "$NCL_SW" link set "p$h" up &&
    ip -n "$ns" addr add "${NCL_IP[$h]}/24" dev eth0 &&
    ip -n "$ns" link set eth0 up
}

# Can we make what ncl_net_up makes? A namespace with a bridge and a veth
# pair, all up, deleted again. Fails without root (or CAP_SYS_ADMIN and
# CAP_NET_ADMIN), or without bridge or veth support in the kernel.
ncl_can_netns() {
  local ns=$NCL_ID-probe ok=1
  ip netns add "$ns" || return 1
  ip -n "$ns" link set lo up &&
    ip -n "$ns" link add br0 type bridge &&
    ip -n "$ns" link add vt0 type veth peer name vt1 &&
    ip -n "$ns" link set vt0 master br0 &&
    ip -n "$ns" link set vt0 up && ok=0
  ip netns del "$ns"
  return $ok
}

# The namespaces, the bridge and the links.
ncl_net_up() {
  local h
  ncl_reap_stale
  ncl_netns_add "$NCL_SW" &&
    ip -n "$NCL_SW" link add br0 type bridge mcast_snooping 0 &&
    ip -n "$NCL_SW" link set br0 up || return 1
  if [ "$NCL_DELAY" = auto ]; then
    if ncl_have_netem; then NCL_DELAY=netem; else NCL_DELAY=relay; fi
  fi
  ncl_log "delay by $NCL_DELAY$([ "$NCL_DELAY" = relay ] && echo " (this kernel has no sch_netem)")"
  for h in lb "${NCL_HOSTS[@]}"; do
    ncl_netns_add "${NCL_NS[$h]}" && ncl_wire "$h" || return 1
  done
}

# ncl_fixed_cgroup DIR: a directory laid out as a cgroup v2 with a quota of
# one CPU and 1 GiB that nothing runs in. An agent given it (--cgroup DIR)
# reports 100 % CPU idle and 1 GiB free, always. The three hosts share this
# machine's CPU and RAM; the agents would read the same figures at slightly
# different moments, and on a busy machine that noise is larger than what
# 20 ms of RTT takes off a weight (about 5 %). With these, only the RTT sets
# the weights apart. Write DIR/cpu.stat (usage_usec) to make a host busy.
ncl_fixed_cgroup() {
  mkdir -p "$1" &&
    : >"$1/cgroup.controllers" &&
    echo "100000 100000" >"$1/cpu.max" &&
    echo "usage_usec 0" >"$1/cpu.stat" &&
    echo 1073741824 >"$1/memory.max" &&
    echo 0 >"$1/memory.current" &&
    echo "inactive_file 0" >"$1/memory.stat"
}

ncl_daemons_up() {
  local h peers=() ip metrics
  head -c 32 /dev/urandom >"$NCL_RUN/cluster.key" && chmod 600 "$NCL_RUN/cluster.key"
  mkdir -p "$NCL_RUN/www"
  echo "hello from the Fulcrum netns origin" >"$NCL_RUN/www/index.html"
  for i in $(seq 1 20); do
    { echo "object $i"; head -c 2000 /dev/zero | tr '\0' o; } >"$NCL_RUN/www/obj-$i.html"
  done
  ncl_spawn origin "$NCL_LB" python3 -u -m http.server "$NCL_ORIGIN_PORT" --bind "$NCL_LB_IP" \
    --directory "$NCL_RUN/www"
  ncl_wait 10 "the origin" ncl_exec lb bash -c "exec 3<>/dev/tcp/$NCL_LB_IP/$NCL_ORIGIN_PORT" ||
    return 1
  for h in "${NCL_HOSTS[@]}"; do
    ip=${NCL_IP[$h]}
    # shellcheck disable=SC2086
    ncl_spawn "cache-$h" "${NCL_NS[$h]}" "$NCL_BIN/cache/fulcrum-cache" --name "cache-$h" \
      --listen "0.0.0.0:$NCL_CACHE_PORT" --origin "http://$NCL_LB_IP:$NCL_ORIGIN_PORT" \
      --default-ttl 600 --key "$NCL_RUN/cluster.key" --peer-listen "$ip:$NCL_PEER_PORT" \
      "${peers[@]}" ${NCL_CACHE_ARGS:-}
    ncl_wait 20 "cache-$h" ncl_log_has "cache-$h" "ready listen=" || return 1
    peers+=(--peer "$ip:$NCL_PEER_PORT")
  done
  # shellcheck disable=SC2086
  ncl_spawn balancer "$NCL_LB" "$NCL_BIN/balancer/fulcrum-balancer" \
    --listen "$NCL_LB_IP:$NCL_LB_PORT" --admin "$NCL_ADMIN" --key "$NCL_RUN/cluster.key" \
    --group "$NCL_GROUP" --mcast-if "$NCL_LB_IP" --interval "$NCL_INTERVAL" \
    --slowstart "$NCL_SLOWSTART" --timeout-connect 1 --grace 2 --log-conns=no ${NCL_BALANCER_ARGS:-}
  ncl_wait 10 "the balancer" ncl_log_has balancer "ready listen=" || return 1
  # The table as an operator follows it: fulcrum-monitor's stdout, in status.txt.
  # shellcheck disable=SC2086
  ip netns exec "$NCL_LB" "$NCL_BIN/monitor/fulcrum-monitor" --group "$NCL_GROUP" \
    --mcast-if "$NCL_LB_IP" --key "$NCL_RUN/cluster.key" --interval "$NCL_INTERVAL" \
    --status-file "$NCL_RUN/monitor.json" ${NCL_MONITOR_ARGS:-} \
    >"$NCL_RUN/status.txt" 2>"$NCL_RUN/monitor.log" &
  NCL_PID[monitor]=$!
  ncl_wait 10 "the monitor" ncl_log_has monitor "replies on port" || return 1
  for h in "${NCL_HOSTS[@]}"; do
    metrics=()
    if [ "$NCL_METRICS" = fixed ]; then
      ncl_fixed_cgroup "$NCL_RUN/cgroup-$h" || return 1
      metrics=(--cgroup "$NCL_RUN/cgroup-$h")
    fi
    # shellcheck disable=SC2086
    ncl_spawn "agent-$h" "${NCL_NS[$h]}" "$NCL_BIN/agent/fulcrum-agent" --name "cache-$h" \
      --service "${NCL_IP[$h]}:$NCL_CACHE_PORT" --mcast-if "${NCL_IP[$h]}" \
      --group "$NCL_GROUP" --key "$NCL_RUN/cluster.key" --check-interval 0.5 \
      "${metrics[@]}" ${NCL_AGENT_ARGS:-}
    ncl_wait 10 "agent-$h" ncl_log_has "agent-$h" "ready name=cache-$h" || return 1
  done
}

# ncl_up: everything, ready. Returns 1 with a message on failure (the
# caller's trap runs ncl_down); 77 when a virtual network cannot be made here.
ncl_up() {
  mkdir -p "$NCL_RUN" || return 1
  if ! ncl_can_netns 2>"$NCL_RUN/netns-probe.err"; then
    ncl_log "cannot make a virtual network here: $(tr '\n' ' ' <"$NCL_RUN/netns-probe.err")"
    return 77
  fi
  ncl_net_up || return $?
  ncl_daemons_up
}

# ncl_down: stops every process (TERM, then KILL after 5 s) and deletes the
# namespaces; safe to call twice, and on a half-built cluster.
ncl_down() {
  local name pid ns tries
  [ ${#NCL_CREATED[@]} -gt 0 ] && ncl_log "stopping the cluster, deleting ${NCL_CREATED[*]}"
  for name in "${!NCL_PID[@]}"; do kill -TERM "${NCL_PID[$name]}" 2>/dev/null; done
  for tries in $(seq 50); do
    pid=""
    for name in "${!NCL_PID[@]}"; do
      kill -0 "${NCL_PID[$name]}" 2>/dev/null && pid=${NCL_PID[$name]}
    done
    [ -z "$pid" ] && break
    sleep 0.1
  done
  for name in "${!NCL_PID[@]}"; do
    if kill -0 "${NCL_PID[$name]}" 2>/dev/null; then
      ncl_log "$name did not stop on TERM: killing it"
      kill -KILL "${NCL_PID[$name]}" 2>/dev/null
    fi
    wait "${NCL_PID[$name]}" 2>/dev/null
    unset "NCL_PID[$name]"
  done
  for ns in "${NCL_CREATED[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  NCL_CREATED=()
}

# ncl_delay HOST MS: MS ms more on everything HOST sends (0: none).
ncl_delay() {
  local h=$1 ms=$2
  if [ "$NCL_DELAY" = netem ]; then
    if [ "$ms" = 0 ]; then
      tc -n "${NCL_NS[$h]}" qdisc del dev eth0 root 2>/dev/null || true
    else
      tc -n "${NCL_NS[$h]}" qdisc replace dev eth0 root netem delay "${ms}ms"
    fi
  elif [ "$h" = "$NCL_RELAY" ]; then
    ncl_wire_set "$h" "delay=$ms"
  else
    ncl_log "no sch_netem: only host $NCL_RELAY can be delayed (NCL_DELAY_HOST)"
    return 1
  fi
}

# ncl_wire_set HOST KEY=VALUE...: new settings for HOST's relay (the keys of
# scripts/netns-delay.py's CTL_FILE); returns once the relay has them.
ncl_wire_set() {
  local h=$1 n
  shift
  [ -n "${NCL_PID[relay-$h]:-}" ] || { ncl_log "host $h has no relay"; return 1; }
  n=$(grep -c '^delay_ms=' "$NCL_RUN/relay-$h.log")
  echo "$*" >"$NCL_RUN/wire-$h.ctl" && kill -HUP "${NCL_PID[relay-$h]}" || return 1
  ncl_wait 10 "the relay of $h to take '$*'" ncl_lines_above "relay-$h" '^delay_ms=' "$n"
}

# ncl_lines_above NAME PATTERN N: RUN/NAME.log has more than N lines matching PATTERN.
ncl_lines_above() { (($(grep -c -- "$2" "$NCL_RUN/$1.log") > $3)); }

# ncl_relay_stats HOST: the counters line of HOST's relay ("stats sent=..").
ncl_relay_stats() {
  local n
  n=$(grep -c '^stats ' "$NCL_RUN/relay-$1.log")
  kill -USR1 "${NCL_PID[relay-$1]}" || return 1
  ncl_wait 10 "the relay's counters" ncl_lines_above "relay-$1" '^stats ' "$n" &&
    grep '^stats ' "$NCL_RUN/relay-$1.log" | tail -n 1
}

# ncl_netem_port HOST HANDLE NETEM...: netem NETEM... on the UDP datagrams of
# the group's port that HOST sends (a prio band of its own, chosen by u32);
# nothing else. "ncl_netem_port HOST" alone removes it.
ncl_netem_port() {
  local ns=${NCL_NS[$1]} port=${NCL_GROUP##*:}
  shift
  tc -n "$ns" qdisc del dev eth0 root 2>/dev/null
  [ $# -eq 0 ] && return 0
  tc -n "$ns" qdisc add dev eth0 root handle 1: prio bands 4 &&
    tc -n "$ns" qdisc add dev eth0 parent 1:4 handle 40: netem "$@" &&
    tc -n "$ns" filter add dev eth0 parent 1: protocol ip prio 1 u32 \
      match ip protocol 17 0xff match ip sport "$port" 0xffff flowid 1:4 &&
    tc -n "$ns" filter add dev eth0 parent 1: protocol ip prio 2 u32 \
      match ip protocol 17 0xff match ip dport "$port" 0xffff flowid 1:4
}

# ncl_probe_loss HOST LOSS REORDER: LOSS % of the probe-path datagrams HOST
# sends are lost, REORDER % held and sent after the next one; 0 0: none.
# The relay loses or holds at most one datagram in a row per flow; netem
# (not run on the machine this was written on) has no such cap.
ncl_probe_loss() {
  if [ "$NCL_DELAY" = netem ]; then
    if [ "$2" = 0 ] && [ "$3" = 0 ]; then
      ncl_netem_port "$1"
    else
      ncl_netem_port "$1" delay 5ms reorder "$((100 - $3))%" loss "$2%"
    fi
  else
    ncl_wire_set "$1" "loss=$2 reorder=$3 max_burst=1 dir=out"
  fi
}

# ncl_blackhole HOST on|off: every probe-path datagram HOST sends is lost
# (off: none). Without netem, on the relay of NCL_LOSS_HOST, which must be
# between HOST and the prober.
ncl_blackhole() {
  local on=-
  if [ "$NCL_DELAY" = netem ]; then
    if [ "$2" = on ]; then ncl_netem_port "$1" loss 100%; else ncl_netem_port "$1"; fi
  else
    [ "$2" = on ] && on=${NCL_IP[$1]}
    ncl_wire_set "$NCL_LOSS_HOST" "blackhole=$on"
  fi
}

# ncl_link HOST up|down: plugs or pulls HOST's cable (its bridge port).
ncl_link() {
  ip -n "$NCL_SW" link set "p$1" "$2"
}

# ncl_status [PATH]: the balancer's admin page (default /status.json).
ncl_status() {
  ncl_exec lb curl -sf --max-time 5 "http://$NCL_ADMIN${1:-/status.json}"
}

# ncl_stats HOST: that cache node's /_fulcrum/stats (served to loopback only).
ncl_stats() {
  ncl_exec "$1" curl -sf --max-time 5 "http://127.0.0.1:$NCL_CACHE_PORT/_fulcrum/stats"
}

# ncl_all_up: true when the balancer's table has every host up.
ncl_all_up() {
  [ "$(ncl_status | jq '[.nodes[] | select(.state == "up")] | length')" = "${#NCL_HOSTS[@]}" ]
}

# ncl_monitor_all_up: true when fulcrum-monitor's last round has every host up.
ncl_monitor_all_up() {
  [ "$(jq '[.nodes[] | select(.state == "up")] | length' "$NCL_RUN/monitor.json" 2>/dev/null)" \
    = "${#NCL_HOSTS[@]}" ]
}

# ---- for the tests (tests/integration/test_netns*.sh) ----------------------

ncl_test_say() { echo "$NCL_TEST: $*"; }
ncl_test_fail() {
  echo "$NCL_TEST: FAIL: $*" >&2
  exit 1
}

# ncl_test_begin NAME BUILD: the start every test on this network shares.
# Exits 77 (skip) without iproute2, 1 without the tools or the daemons;
# makes RUN (a temporary directory) and calls ncl_init; sets the traps of
# ncl_test_end and a watchdog that sends SIGTERM to the test after
# FULCRUM_NETNS_GUARD s (default 270), before ctest's TIMEOUT (300 s) would
# kill it outright, so that the cleanup runs. The test names, in
# NCL_TEST_JOBS, the variables holding the PIDs of its background jobs
# (stopped first), in NCL_TEST_TAILS files of RUN besides the logs to show
# on failure, and in NCL_TEST_KEPT what FULCRUM_NETNS_KEEP=1 keeps.
ncl_test_begin() {
  local t
  NCL_TEST=$1
  if ! command -v ip >/dev/null; then
    ncl_test_say "SKIP: iproute2 (ip) is not installed, so no network namespaces"
    exit 77
  fi
  for t in tc python3 curl jq; do
    command -v "$t" >/dev/null || ncl_test_fail "$t is missing (scripts/deps.sh test installs it)"
  done
  for t in agent/fulcrum-agent monitor/fulcrum-monitor balancer/fulcrum-balancer cache/fulcrum-cache; do
    [ -x "$2/$t" ] || ncl_test_fail "$2/$t is not built"
  done
  RUN=$(mktemp -d "${TMPDIR:-/tmp}/fulcrum-${NCL_TEST#test_}.XXXXXX") || ncl_test_fail "mktemp"
  ncl_init "$2" "$RUN"
  NCL_TEST_JOBS=() NCL_TEST_TAILS=() NCL_TEST_KEPT="logs"
  trap ncl_test_end EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  (
    sleep "${FULCRUM_NETNS_GUARD:-270}" &
    echo $! >"$RUN/wd.pid"
    wait $!
    echo "$NCL_TEST: FAIL: still running after ${FULCRUM_NETNS_GUARD:-270}s" >&2
    kill -TERM $$
  ) &
  NCL_TEST_WD=$!
}

# The EXIT trap of ncl_test_begin: stops the watchdog and the test's jobs,
# deletes the network, fails on sanitizer reports in the daemons' logs
# (a FULCRUM_SANITIZE build), shows the logs' tails on failure, and deletes
# RUN unless FULCRUM_NETNS_KEEP is set.
ncl_test_end() {
  local rc=$? f v
  trap - EXIT INT TERM HUP
  kill "$NCL_TEST_WD" 2>/dev/null
  [ -f "$RUN/wd.pid" ] && kill "$(cat "$RUN/wd.pid")" 2>/dev/null
  for v in "${NCL_TEST_JOBS[@]}"; do
    [ -n "${!v:-}" ] && kill "${!v}" 2>/dev/null && wait "${!v}" 2>/dev/null
  done
  ncl_down
  if grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$RUN"/*.log 2>/dev/null; then
    echo "$NCL_TEST: FAIL: sanitizer reports in the logs above" >&2
    rc=1
  fi
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    for f in "$RUN"/*.log "${NCL_TEST_TAILS[@]/#/$RUN/}"; do
      [ -s "$f" ] || continue
      echo "---- tail of $f" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ -n "${FULCRUM_NETNS_KEEP:-}" ]; then
    ncl_test_say "kept $RUN ($NCL_TEST_KEPT)"
  else
    rm -rf "$RUN"
  fi
  exit "$rc"
}

ncl_usage() {
  sed -n '/^# Usage/,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

ncl_main() {
  local keep=0 build=$NCL_SRC/build/release run=""
  while [ $# -gt 0 ]; do
    case $1 in
      --keep) keep=1 ;;
      --build) build=$2; shift ;;
      --run) run=$2; shift ;;
      --interval) NCL_INTERVAL=$2; shift ;;
      -h | --help) ncl_usage; return 0 ;;
      *) ncl_log "unknown argument '$1'"; ncl_usage >&2; return 2 ;;
    esac
    shift
  done
  [ "$(id -u)" = 0 ] || ncl_log "not root: creating namespaces will probably fail"
  for t in ip tc python3 curl jq; do
    command -v "$t" >/dev/null || { ncl_log "$t is missing (scripts/deps.sh test installs it)"; return 1; }
  done
  if [ ! -x "$build/balancer/fulcrum-balancer" ]; then
    ncl_log "building (Release) into $build"
    cmake -S "$NCL_SRC" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF >/dev/null &&
      cmake --build "$build" -j"$(nproc)" >/dev/null || return 1
  fi
  ncl_init "$build" "${run:-$NCL_SRC/run/netns-$$}"
  trap ncl_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  ncl_up || return $?
  ncl_wait 30 "three nodes up on the balancer" ncl_all_up || return 1
  ncl_wait 30 "three nodes up in fulcrum-monitor" ncl_monitor_all_up || return 1
  # The last round's block of the table.
  awk '/^round / { b = "" } { b = b $0 "\n" } END { printf "%s", b }' "$NCL_RUN/status.txt"
  ncl_status /status | sed -n '/^balancer/,$p'
  if [ "$keep" = 0 ]; then
    ncl_log "cluster works; deleting it (--keep leaves it running)"
    return 0
  fi
  cat <<EOF

The cluster runs until Ctrl-C. Logs, key and table in $NCL_RUN.
  tail -f $NCL_RUN/status.txt                            # the status table, every round
  ip netns exec $NCL_LB curl -s http://$NCL_LB_IP/index.html -D -   # through the balancer
  ip netns exec $NCL_LB curl -s http://$NCL_ADMIN/status        # the balancer's view
  ip netns exec ${NCL_NS[a]} curl -s 127.0.0.1:$NCL_CACHE_PORT/_fulcrum/stats   # cache-a's counters
  ip -n $NCL_SW link set pc down                      # pull cache-c's cable (up: plug it back)
EOF
  if [ "$NCL_DELAY" = netem ]; then
    echo "  tc -n ${NCL_NS[c]} qdisc replace dev eth0 root netem delay 20ms   # 20 ms more from cache-c"
  else
    echo "  echo delay=20 > $NCL_RUN/wire-$NCL_RELAY.ctl; kill -HUP ${NCL_PID[relay-$NCL_RELAY]}   # 20 ms more from cache-$NCL_RELAY (no sch_netem here)"
  fi
  while :; do
    sleep 3600 &
    NCL_PID[pause]=$!
    wait "${NCL_PID[pause]}"
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  ncl_main "$@"
  exit $?
fi
