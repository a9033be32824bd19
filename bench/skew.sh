#!/usr/bin/env bash
# bench/skew.sh — Step 5: a skewed cluster. Does weighting by the agents'
# metrics beat metric-blind balancing when one node is weaker?
#
# Three fulcrum-cache nodes replicating to each other (A, B, C), each with its
# fulcrum-agent, each in its own CPU cgroup (v1 or v2): A and B get a quota of
# BENCH_CPU cores, C a fifth of that (BENCH_C_DIV). The agents report against
# their cgroup (--cgroup DIR), so C says what it really has. An nginx origin
# serves a 1 KiB object (cached: every request a HIT) and a BENCH_PASS_SIZE
# object with Cache-Control: no-store (every request a PASS to the origin).
#
# 1. Capacity, per workload (see measure_capacity): each node's CPU time
#    per request at an open-loop rate, behind its own HAProxy relay; a
#    node's capacity is its quota divided by that, the cluster's the sum.
# 2. For each workload, every target in turn gets an open-loop load of
#    BENCH_LOAD_PCT % of that capacity (loadgen: requests scheduled at a fixed
#    rate, latency from the scheduled start, so coordinated omission is
#    counted) for BENCH_WARMUP + BENCH_SECONDS, started fresh for the run:
#      hits-close   1 KiB hits, a new connection per request (Connection: close)
#      heavy-close  half 1 KiB hits, half PASS of BENCH_PASS_SIZE bytes, close
#      hits-ka      1 KiB hits over a keep-alive pool of BENCH_KA_CONNS
#    Targets: fulcrum-balancer --policy weighted|leastconn|roundrobin|best
#    (nodes learnt from the agents, --interval BENCH_INTERVAL) and HAProxy 2.6
#    leastconn|roundrobin (mode tcp), and haproxy-agent: HAProxy leastconn
#    with weights set by its agent check from the same agents' metrics
#    (bench/agent_bridge.py in front of a fulcrum-monitor --json, same
#    interval and weight formula). The X-Cache "from NAME" of every
#    response gives the node's share, in total and per second.
# 3. A node that slows mid-run: at BENCH_SLOW_LOAD_PCT % of capacity, after
#    BENCH_SLOW_BEFORE s, BENCH_HOGS busy loops start inside node A's cgroup;
#    A's share over time (250 ms buckets) for BENCH_SLOW_TARGETS.
# Then bench/skew_report.py prints the table, writes plots (gnuplot) into
# BENCH_IMG_DIR and the section between the Step 5 skew markers of
# BENCH_DOC.
#
# Every process the benchmark runs lives in its own cgroup under
# fulcrum-skew.PID, whose CPU weight is 100 times the default (v1 cpu.shares
# 102400, v2 cpu.weight 10000) so that other work on the machine disturbs it
# less; the balancers, origin and load generator share the uncapped "rest"
# group.
#
# Environment (defaults):
#   WORKERS=2                 fulcrum --workers and HAProxy nbthread
#   BENCH_CPU=0.1             CPU quota of nodes A and B, in cores
#   BENCH_C_DIV=5             node C's quota is BENCH_CPU / BENCH_C_DIV
#   BENCH_PERIOD_US=100000    CFS period of the quotas
#   BENCH_LOAD_PCT=70         offered rate, % of the measured capacity
#   BENCH_SECONDS=20  BENCH_WARMUP=10  BENCH_CAP_SECONDS=5  BENCH_CAP_CONNS=48
#   BENCH_KA_CONNS=32         keep-alive pool of the load generator
#   BENCH_PASS_SIZE=16384     bytes of the PASS object
#   BENCH_INTERVAL=1          probe interval of the balancer's embedded monitor (s)
#   BENCH_SETTLE=2            seconds of rest before each run starts its target, so that no
#                             run begins on the load of the one before (every target alike)
#   BENCH_WORKLOADS="hits-close heavy-close hits-ka"
#   BENCH_TARGETS="fulcrum-weighted fulcrum-leastconn fulcrum-roundrobin fulcrum-best haproxy-leastconn haproxy-roundrobin haproxy-agent"
#   BENCH_SLOW=1              0: skip the slow-node scenario
#   BENCH_SLOW_TARGETS="fulcrum-weighted haproxy-leastconn"
#   BENCH_SLOW_LOAD_PCT=50  BENCH_SLOW_BEFORE=15  BENCH_SLOW_AFTER=30  BENCH_HOGS=1
#   BENCH_PORT_BASE=23000     origin +0, nodes +1..+3, peers +11..+13, group +20,
#                             fulcrum +30 (admin +31), HAProxy +40, relays +41..+43
#   BENCH_GROUP=239.255.79.7:<BENCH_PORT_BASE+20>
#   BENCH_BUILD=1             0: use the binaries already in BENCH_BUILD_DIR
#   BENCH_BUILD_DIR=build/release
#   BENCH_KEEP=0              1: keep the temp dir (configs, logs, raw outputs, and
#                             every measured request in raw/NAME.trace.tsv, which the
#                             report reads for each node's tail)
#   BENCH_FULCRUM_ARGS=       extra fulcrum-balancer flags (e.g. --weight-cpu-share 1)
#   BENCH_MONITOR_ARGS=       extra flags of haproxy-agent's fulcrum-monitor (give it the
#                             same --weight-* flags as BENCH_FULCRUM_ARGS for a fair run)
#   BENCH_DOC=docs/benchmarks.md   (- to skip)   BENCH_IMG_DIR=docs/img
# Needs: root (cgroups), bench/deps.sh (haproxy nginx-light python3 gnuplot-nox).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

WORKERS=${WORKERS:-2}
CPU=${BENCH_CPU:-0.1}
C_DIV=${BENCH_C_DIV:-5}
PERIOD=${BENCH_PERIOD_US:-100000}
LOAD_PCT=${BENCH_LOAD_PCT:-70}
DUR=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-10}
CAP_S=${BENCH_CAP_SECONDS:-5}
CAP_CONNS=${BENCH_CAP_CONNS:-48}
FULCRUM_ARGS=${BENCH_FULCRUM_ARGS:-}
MONITOR_ARGS=${BENCH_MONITOR_ARGS:-}
KA_CONNS=${BENCH_KA_CONNS:-32}
PASS_SIZE=${BENCH_PASS_SIZE:-16384}
INTERVAL=${BENCH_INTERVAL:-1}
SETTLE=${BENCH_SETTLE:-2}
WORKLOADS=${BENCH_WORKLOADS:-hits-close heavy-close hits-ka}
TARGETS=${BENCH_TARGETS:-fulcrum-weighted fulcrum-leastconn fulcrum-roundrobin fulcrum-best haproxy-leastconn haproxy-roundrobin haproxy-agent}
SLOW=${BENCH_SLOW:-1}
SLOW_TARGETS=${BENCH_SLOW_TARGETS:-fulcrum-weighted haproxy-leastconn}
SLOW_PCT=${BENCH_SLOW_LOAD_PCT:-50}
SLOW_BEFORE=${BENCH_SLOW_BEFORE:-15}
SLOW_AFTER=${BENCH_SLOW_AFTER:-30}
HOGS=${BENCH_HOGS:-1}
BASE=${BENCH_PORT_BASE:-23000}
GROUP=${BENCH_GROUP:-239.255.79.7:$((BASE + 20))}
BUILD=${BENCH_BUILD:-1}
BUILD_DIR=${BENCH_BUILD_DIR:-$root/build/release}
KEEP=${BENCH_KEEP:-0}
DOC=${BENCH_DOC:-$root/docs/benchmarks.md}
IMG_DIR=${BENCH_IMG_DIR:-$root/docs/img}

cmd="bench/skew.sh"
for v in WORKERS BENCH_CPU BENCH_C_DIV BENCH_PERIOD_US BENCH_LOAD_PCT BENCH_SECONDS BENCH_WARMUP \
         BENCH_CAP_SECONDS BENCH_CAP_CONNS BENCH_KA_CONNS BENCH_PASS_SIZE BENCH_INTERVAL \
         BENCH_WORKLOADS BENCH_TARGETS BENCH_SLOW BENCH_SLOW_TARGETS BENCH_SLOW_LOAD_PCT \
         BENCH_SLOW_BEFORE BENCH_SLOW_AFTER BENCH_HOGS BENCH_PORT_BASE BENCH_GROUP BENCH_FULCRUM_ARGS \
         BENCH_MONITOR_ARGS; do
  [ -n "${!v:-}" ] && cmd="$v='${!v}' $cmd"
done

die() { echo "bench/skew.sh: $*" >&2; exit 1; }
say() { echo "[skew $(date +%T)] $*" >&2; }

for n in "$WORKERS" "$C_DIV" "$PERIOD" "$LOAD_PCT" "$DUR" "$WARMUP" "$CAP_S" "$CAP_CONNS" \
         "$KA_CONNS" "$PASS_SIZE" "$SLOW_PCT" "$SLOW_BEFORE" "$SLOW_AFTER" "$HOGS" "$BASE"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "numeric settings must be whole numbers (got '$n')"
done
[[ "$CPU" =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_CPU must be a number of cores (got '$CPU')"
[[ "$INTERVAL" =~ ^[0-9]*\.?[0-9]+$ ]] || die "BENCH_INTERVAL must be a number of seconds"
if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65400 ]; then die "BENCH_PORT_BASE must be in 1024..65400"; fi
[ "$(id -u)" = 0 ] || die "needs root: it creates CPU cgroups"
for c in haproxy nginx python3 gnuplot cc cmake; do
  command -v "$c" >/dev/null || die "'$c' not found: run bench/deps.sh (and scripts/deps.sh) as root"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Quotas in microseconds per period; the kernel refuses less than 1000.
Q_AB=$(awk -v c="$CPU" -v p="$PERIOD" 'BEGIN { printf "%d", c * p }')
Q_C=$(awk -v c="$CPU" -v d="$C_DIV" -v p="$PERIOD" 'BEGIN { printf "%d", c * p / d }')
[ "$Q_C" -ge 1000 ] || die "node C's quota would be ${Q_C} us per ${PERIOD} us; the kernel needs >= 1000 (raise BENCH_CPU or BENCH_PERIOD_US)"

tmp=$(mktemp -d /tmp/fulcrum-skew.XXXXXX)
raw=$tmp/raw
mkdir -p "$raw" "$tmp/www/pass" "$tmp/origin-body"
chmod 755 "$tmp" "$tmp/www" "$tmp/www/pass"
PIDS=()
CG_NAME=fulcrum-skew.$$
CG_TOPS=() # parent cgroup dirs this script made (removed at exit)
CG_SETUP=0

# ---------------------------------------------------------------- cgroups
# CG_VER 1: the cpu and cpuacct hierarchies (one dir when co-mounted);
# CG_VER 2: the unified hierarchy with the cpu controller.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  CG_VER=2
  CG_ROOTS=(/sys/fs/cgroup)
elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
  CG_VER=1
  CG_ROOTS=(/sys/fs/cgroup/cpu)
  acct=$(cd /sys/fs/cgroup/cpuacct 2>/dev/null && pwd -P || true)
  [ -n "$acct" ] || die "cgroup v1 without a cpuacct hierarchy: the agents need cpuacct.usage"
  [ "$acct" = "$(cd /sys/fs/cgroup/cpu && pwd -P)" ] || CG_ROOTS+=("$acct")
else
  die "no CPU cgroup found (/sys/fs/cgroup/cgroup.controllers or /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
fi

cg_dir() { echo "${CG_ROOTS[0]}/$CG_NAME/$1"; } # the dir an agent is given
cg_usage_ns() {                                   # CPU time of group $1 ("" = all of ours)
  local d=${CG_ROOTS[${#CG_ROOTS[@]} - 1]}/$CG_NAME${1:+/$1}
  if [ "$CG_VER" = 1 ]; then cat "$d/cpuacct.usage"
  else awk '$1 == "usage_usec" { printf "%d000\n", $2 }' "$d/cpu.stat"; fi
}
cg_throttled() { awk '$1 == "nr_throttled" { print $2 }' "$(cg_dir "$1")/cpu.stat"; }

cg_setup() {
  local r g
  if [ "$CG_VER" = 2 ]; then
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control ||
      echo +cpu >/sys/fs/cgroup/cgroup.subtree_control ||
      die "cannot enable the cpu controller in /sys/fs/cgroup/cgroup.subtree_control"
  fi
  for r in "${CG_ROOTS[@]}"; do
    mkdir "$r/$CG_NAME" || die "mkdir $r/$CG_NAME"
    CG_TOPS+=("$r/$CG_NAME")
  done
  CG_SETUP=1
  if [ "$CG_VER" = 2 ]; then
    echo +cpu >"${CG_ROOTS[0]}/$CG_NAME/cgroup.subtree_control"
    echo 10000 >"${CG_ROOTS[0]}/$CG_NAME/cpu.weight"
  else
    echo 102400 >"${CG_ROOTS[0]}/$CG_NAME/cpu.shares"
  fi
  for g in A B C rest; do
    for r in "${CG_ROOTS[@]}"; do mkdir "$r/$CG_NAME/$g"; done
  done
  for g in A B C; do
    local q=$Q_AB
    [ "$g" = C ] && q=$Q_C
    if [ "$CG_VER" = 2 ]; then
      echo "$q $PERIOD" >"$(cg_dir $g)/cpu.max"
    else
      echo "$PERIOD" >"$(cg_dir $g)/cpu.cfs_period_us"
      echo "$q" >"$(cg_dir $g)/cpu.cfs_quota_us"
    fi
  done
}

# The cgroup.procs files of group $1, space-separated.
cg_procs_files() {
  local r out=""
  for r in "${CG_ROOTS[@]}"; do out+="$r/$CG_NAME/$1/cgroup.procs "; done
  echo "$out"
}

# Every process still in our cgroups (the hogs, or anything that outlived
# its TERM) is killed, then the cgroups are removed, children first.
cg_teardown() {
  local r g p i
  [ "$CG_SETUP" = 1 ] || return 0
  for i in 1 2 3 4 5 6 7 8 9 10; do
    local left=""
    for r in "${CG_ROOTS[@]}"; do
      for g in A B C rest; do
        [ -f "$r/$CG_NAME/$g/cgroup.procs" ] || continue
        for p in $(cat "$r/$CG_NAME/$g/cgroup.procs"); do kill -KILL "$p" 2>/dev/null || true; left=1; done
      done
    done
    [ -z "$left" ] && break
    sleep 0.2
  done
  for r in "${CG_ROOTS[@]}"; do
    for g in A B C rest; do [ ! -d "$r/$CG_NAME/$g" ] || rmdir "$r/$CG_NAME/$g" || true; done
    [ ! -d "$r/$CG_NAME" ] || rmdir "$r/$CG_NAME" ||
      echo "bench/skew.sh: could not remove $r/$CG_NAME" >&2
  done
}

# ---------------------------------------------------------------- processes
# TERM a process; KILL it if it is still there after 5 s.
stop_pid() {
  local pid=$1 i
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  drop_pid "$pid"
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p" >/dev/null 2>&1 || true; done
  cg_teardown
  if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "bench/skew.sh: logs and raw outputs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The prefix that runs a command inside cgroup $1: a sh that writes its own
# pid into the group's cgroup.procs files, then execs the command (same pid).
in_cg() {
  local files
  read -r -a files <<<"$(cg_procs_files "$1")"
  INCG=(sh -c 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ >"$1" || exit 97; shift; n=$((n - 1)); done; exec "$@"' sh "${#files[@]}" "${files[@]}")
}

# start NAME GROUP CMD...: in the background in cgroup GROUP, output to
# $tmp/NAME.log; sets LAST.
start() {
  local name=$1 g=$2
  shift 2
  in_cg "$g"
  "${INCG[@]}" "$@" >"$tmp/$name.log" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}

# Runs a command to its end like a foreground one, but in the background
# with `wait`, so that a TERM or INT sent to this script runs its trap (and
# the cleanup) at once instead of after the command; returns its status.
run_fg() {
  local p rc=0
  "$@" &
  p=$!
  PIDS+=("$p")
  wait "$p" || rc=$?
  drop_pid "$p"
  return "$rc"
}

# Forgets a pid that has been waited for (it may be reused from now on).
drop_pid() {
  local keep=() q
  for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done
  PIDS=("${keep[@]}")
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_free() { ! port_open "$1" || die "port 127.0.0.1:$1 is already in use (set BENCH_PORT_BASE)"; }

# wait_for NAME PID TEXT: TEXT in $tmp/NAME.log within 15 s, PID alive.
wait_for() {
  local name=$1 pid=$2 text=$3 i
  for i in $(seq 1 150); do
    grep -q -- "$text" "$tmp/$name.log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "---- $tmp/$name.log" >&2; tail -n 20 "$tmp/$name.log" >&2 || true
  die "$name: '$text' did not appear within 15 s"
}

wait_port() {
  local name=$1 pid=$2 port=$3 i
  for i in $(seq 1 150); do
    port_open "$port" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "---- $tmp/$name.log" >&2; tail -n 20 "$tmp/$name.log" >&2 || true
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

fill() { # fill TEMPLATE OUT KEY=VALUE...
  local in=$1 out=$2 args=() kv
  shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
}

wl_args() { # the loadgen arguments of workload $1
  case $1 in
    hits-close) echo "--path /1k" ;;
    heavy-close) echo "--path /1k@1 --path /pass/obj?n={n}@1" ;;
    hits-ka) echo "--keepalive --conns $KA_CONNS --path /1k" ;;
    *) die "unknown workload '$1' (hits-close heavy-close hits-ka)" ;;
  esac
}
for w in $WORKLOADS; do wl_args "$w" >/dev/null; done
for t in $TARGETS $SLOW_TARGETS; do
  case $t in
    fulcrum-weighted | fulcrum-leastconn | fulcrum-roundrobin | fulcrum-best) ;;
    haproxy-leastconn | haproxy-roundrobin | haproxy-agent) ;;
    *) die "unknown target '$t'" ;;
  esac
done

# ---------------------------------------------------------------- build
if [ "$BUILD" = 1 ]; then
  say "building Release in $BUILD_DIR (log: $tmp/build.log)"
  { cmake -S "$root" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF &&
    cmake --build "$BUILD_DIR" -j2 --target fulcrum-cache fulcrum-agent fulcrum-balancer; } \
    >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; die "Release build failed"; }
fi
for b in cache/fulcrum-cache agent/fulcrum-agent balancer/fulcrum-balancer; do
  [ -x "$BUILD_DIR/$b" ] || die "$BUILD_DIR/$b missing (BENCH_BUILD=1 builds it)"
done
LOADGEN=$tmp/loadgen
cc -std=c11 -O2 -Wall -Wextra -o "$LOADGEN" "$here/loadgen.c" "$here/loadgen_conn.c" \
  "$here/loadgen_stats.c" -lev -lm 2>"$tmp/loadgen-build.log" ||
  { cat "$tmp/loadgen-build.log" >&2; die "bench/loadgen.c does not build (libev-dev?)"; }

# ---------------------------------------------------------------- cluster
O_PORT=$BASE
N_PORT=([0]=$((BASE + 1)) [1]=$((BASE + 2)) [2]=$((BASE + 3)))
P_PORT=([0]=$((BASE + 11)) [1]=$((BASE + 12)) [2]=$((BASE + 13)))
LB_PORT=$((BASE + 30))
ADMIN_PORT=$((BASE + 31))
HA_PORT=$((BASE + 40))
BRIDGE_PORT=$((BASE + 44))
R_PORT=([0]=$((BASE + 41)) [1]=$((BASE + 42)) [2]=$((BASE + 43)))
HA_MAXCONN=8000 # fulcrum-balancer's default --maxconn; HAProxy needs 2 fds each
NODES=(A B C)
for p in "$O_PORT" "${N_PORT[@]}" "${P_PORT[@]}" "$LB_PORT" "$ADMIN_PORT" "$HA_PORT" "${R_PORT[@]}" "$BRIDGE_PORT"; do
  need_free "$p"
done

cg_setup
say "cgroup v$CG_VER under ${CG_ROOTS[*]} /$CG_NAME: A, B $Q_AB us and C $Q_C us per $PERIOD us"

head -c 1024 /dev/urandom >"$tmp/www/1k"
head -c "$PASS_SIZE" /dev/urandom >"$tmp/www/pass/obj"
chmod 644 "$tmp/www/1k" "$tmp/www/pass/obj"
fill "$here/conf/skew-origin.nginx.conf.in" "$tmp/origin.conf" DIR="$tmp" WWW="$tmp/www" PORT="$O_PORT"
start origin rest nginx -p "$tmp" -e "$tmp/origin.err" -c "$tmp/origin.conf"
wait_port origin "$LAST" "$O_PORT"

head -c 32 /dev/urandom >"$tmp/key"
chmod 600 "$tmp/key"
peers=()
for i in 0 1 2; do
  n=${NODES[$i]}
  start "cache-$n" "$n" "$BUILD_DIR/cache/fulcrum-cache" --name "node-$n" \
    --listen "127.0.0.1:${N_PORT[$i]}" --origin "http://127.0.0.1:$O_PORT" --key "$tmp/key" \
    --peer-listen "127.0.0.1:${P_PORT[$i]}" "${peers[@]}"
  wait_for "cache-$n" "$LAST" "ready listen="
  peers+=(--peer "127.0.0.1:${P_PORT[$i]}")
done
for i in 0 1 2; do
  n=${NODES[$i]}
  start "agent-$n" "$n" "$BUILD_DIR/agent/fulcrum-agent" --name "node-$n" \
    --service "127.0.0.1:${N_PORT[$i]}" --group "$GROUP" --key "$tmp/key" \
    --cgroup "$(cg_dir "$n")" --check-interval 0.5
  wait_for "agent-$n" "$LAST" "ready name=node-$n"
  grep -q "metrics=cgroup v$CG_VER cpu=" "$tmp/agent-$n.log" ||
    die "agent-$n does not report against its cgroup: $(grep joined "$tmp/agent-$n.log")"
  say "agent-$n: $(grep -o 'metrics=.*' "$tmp/agent-$n.log" | head -1)"
done

# The 1 KiB object: fetched once through A, replicated to B and C; every
# node must then answer HIT from itself.
python3 - "${N_PORT[@]}" <<'EOF' || die "the 1 KiB object did not become a HIT on every node"
import http.client, sys, time
ports = [int(p) for p in sys.argv[1:]]
def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status, r.getheader("X-Cache", "")
get(ports[0], "/1k")
deadline = time.time() + 10
for i, port in enumerate(ports):
    while True:
        st, xc = get(port, "/1k")
        if st == 200 and xc == "HIT from node-" + "ABC"[i]:
            break
        if time.time() > deadline:
            sys.exit(f"node {'ABC'[i]}: status {st}, X-Cache {xc!r}")
        time.sleep(0.1)
st, xc = get(ports[2], "/pass/obj?n=0")
if st != 200 or not xc.startswith("PASS from"):
    sys.exit(f"/pass/obj: status {st}, X-Cache {xc!r}")
EOF
say "cluster up: origin :$O_PORT, nodes :${N_PORT[*]}; /1k is a HIT on each, /pass/obj a PASS"

# ---------------------------------------------------------------- helpers
# CPU snapshot: machine busy jiffies, our cgroups' ns, per node ns and
# throttled periods.
cpu_snap() {
  local s n
  s="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat) $(cg_usage_ns "")"
  for n in A B C; do s+=" $(cg_usage_ns "$n") $(cg_throttled "$n")"; done
  echo "$s $(date +%s.%N)"
}
# cpu_delta BEFORE AFTER > file: key=value lines.
cpu_delta() {
  echo "$1 $2 $(nproc) $(getconf CLK_TCK) $Q_AB $Q_C $PERIOD" | awk '{
    n = 9; dt = $(2*n) - $n; cores = $(2*n+1); hz = $(2*n+2)
    mach = ($(n+1) - $1) / hz / dt; ours = ($(n+2) - $2) / 1e9 / dt
    printf "wall_s=%.2f\nmachine_busy_cores=%.3f\nours_cores=%.3f\nforeign_cores=%.3f\n", dt, mach, ours, (mach > ours ? mach - ours : 0)
    split("A B C", nm, " ")
    for (i = 0; i < 3; i++) {
      used = ($(n+3+2*i) - $(3+2*i)) / 1e9 / dt
      q = (i == 2 ? $(2*n+4) : $(2*n+3)) / $(2*n+5)
      printf "cpu_%s_cores=%.4f\nquota_%s_cores=%.4f\nthrottled_%s=%d\n", nm[i+1], used, nm[i+1], q, nm[i+1], $(n+4+2*i) - $(4+2*i)
    } }'
}

# ---------------------------------------------------------------- targets
TPID=""
BRIDGE_PID=""
start_target() {
  local t=$1 pol=${1#*-}
  case $t in
    fulcrum-*)
      start "$t" rest "$BUILD_DIR/balancer/fulcrum-balancer" --listen "127.0.0.1:$LB_PORT" \
        --admin "127.0.0.1:$ADMIN_PORT" --key "$tmp/key" --group "$GROUP" --interval "$INTERVAL" \
        --policy "$pol" --workers "$WORKERS" --log-conns=no --maxconn "$HA_MAXCONN" \
        ${FULCRUM_ARGS:+$FULCRUM_ARGS}
      TPID=$LAST
      wait_for "$t" "$TPID" "ready listen="
      TPORT=$LB_PORT
      # Ready when the embedded monitor has all three nodes up with a weight.
      python3 - "$ADMIN_PORT" <<'EOF' || die "$t: the three nodes did not come up within 20 s"
import http.client, json, sys, time
deadline = time.time() + 20
while time.time() < deadline:
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=2)
        c.request("GET", "/status.json")
        j = json.loads(c.getresponse().read())
        up = [n for n in j["nodes"] if n["state"] == "up" and (n.get("lb_weight") or 0) > 0]
        if len(up) == 3:
            sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
      ;;
    haproxy-agent)
      # Weights from the agents through HAProxy's agent check: a
      # fulcrum-monitor (same agents, interval and weight formula as the
      # balancer's embedded one) behind bench/agent_bridge.py.
      start "$t-bridge" rest python3 "$here/agent_bridge.py" --listen "127.0.0.1:$BRIDGE_PORT" \
        --expect node-A --expect node-B --expect node-C -- \
        "$BUILD_DIR/monitor/fulcrum-monitor" --key "$tmp/key" --group "$GROUP" \
        --interval "$INTERVAL" --json ${MONITOR_ARGS:+$MONITOR_ARGS}
      BRIDGE_PID=$LAST
      wait_port "$t-bridge" "$BRIDGE_PID" "$BRIDGE_PORT"
      fill "$here/conf/haproxy-skew-agent.cfg.in" "$tmp/$t.cfg" WORKERS="$WORKERS" \
        MAXCONN="$HA_MAXCONN" PORT="$HA_PORT" AGENT_PORT="$BRIDGE_PORT" SOCK="$tmp/$t.sock" \
        INTER="$(awk -v i="$INTERVAL" 'BEGIN { printf "%dms", i * 1000 }')" \
        B1="${N_PORT[0]}" B2="${N_PORT[1]}" B3="${N_PORT[2]}"
      start "$t" rest haproxy -db -f "$tmp/$t.cfg"
      TPID=$LAST
      TPORT=$HA_PORT
      wait_port "$t" "$TPID" "$TPORT"
      # Ready once HAProxy has asked for, and got, a weight for every node.
      wait_for "$t-bridge" "$BRIDGE_PID" "agent_bridge: ready"
      ;;
    haproxy-*)
      fill "$here/conf/haproxy-skew.cfg.in" "$tmp/$t.cfg" WORKERS="$WORKERS" MAXCONN="$HA_MAXCONN" \
        PORT="$HA_PORT" BALANCE="$pol" B1="${N_PORT[0]}" B2="${N_PORT[1]}" B3="${N_PORT[2]}"
      start "$t" rest haproxy -db -f "$tmp/$t.cfg"
      TPID=$LAST
      TPORT=$HA_PORT
      wait_port "$t" "$TPID" "$TPORT"
      ;;
  esac
}

# Polls the balancer's /status.json every 0.5 s into a TSV (fulcrum only).
POLLER=""
start_poller() {
  python3 - "$ADMIN_PORT" "$1" <<'EOF' &
import http.client, json, sys, time
port, out = int(sys.argv[1]), open(sys.argv[2], "w", buffering=1)
out.write("unix\tnode\tcpu_idle\tweight\tlb_weight\tactive\tconns_total\n")
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", "/status.json")
        j = json.loads(c.getresponse().read())
        now = time.time()
        for n in j["nodes"]:
            out.write(f"{now:.3f}\t{n['name']}\t{n.get('cpu_idle')}\t{n.get('weight')}\t"
                      f"{n.get('lb_weight')}\t{n.get('active')}\t{n.get('conns_total')}\n")
    except (OSError, ValueError):
        pass
    time.sleep(0.5)
EOF
  POLLER=$!
}
stop_poller() {
  [ -n "$POLLER" ] || return 0
  kill "$POLLER" 2>/dev/null || true
  wait "$POLLER" 2>/dev/null || true
  POLLER=""
}

PROBLEMS=()
# run_load NAME TARGET RATE SECONDS WARMUP [loadgen args...]: one loadgen run
# through TARGET (started fresh, stopped after), outputs in $raw/NAME.*.
run_load() {
  local name=$1 t=$2 rate=$3 secs=$4 warm=$5 c0 c1
  shift 5
  sleep "$SETTLE" # the nodes at rest: the run before (or the capacity run) has ended
  start_target "$t"
  [[ "$t" == fulcrum-* ]] && start_poller "$raw/$name.weights.tsv"
  in_cg rest
  c0=$(cpu_snap)
  # shellcheck disable=SC2068
  run_fg "${INCG[@]}" "$LOADGEN" --target "127.0.0.1:$TPORT" --rate "$rate" --duration "$secs" \
    --warmup "$warm" --series "$raw/$name.series.tsv" --trace "$raw/$name.trace.tsv" "$@" >"$raw/$name.txt" 2>"$raw/$name.err" ||
    PROBLEMS+=("$name: loadgen exited $?: $(head -c 300 "$raw/$name.err")")
  c1=$(cpu_snap)
  cpu_delta "$c0" "$c1" >>"$raw/$name.txt"
  echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$raw/$name.txt"
  stop_poller
  if [ "$t" = haproxy-agent ]; then # the weights HAProxy was using at the end
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show servers state be\n"); sys.stdout.write(s.makefile().read())' \
      "$tmp/$t.sock" >"$raw/$name.servers.txt" 2>/dev/null || true
  fi
  if [[ "$t" == fulcrum-* ]]; then
    python3 -c 'import http.client,sys; c=http.client.HTTPConnection("127.0.0.1",int(sys.argv[1]),timeout=2); c.request("GET","/status.json"); sys.stdout.write(c.getresponse().read().decode())' \
      "$ADMIN_PORT" >"$raw/$name.status.json" 2>/dev/null || true
  fi
  kill -0 "$TPID" 2>/dev/null || PROBLEMS+=("$name: $t died during the run (see $tmp/$t.log)")
  stop_pid "$TPID"
  cp "$tmp/$t.log" "$raw/$name.target.log" 2>/dev/null || true
  if [ -n "$BRIDGE_PID" ]; then
    stop_pid "$BRIDGE_PID"
    BRIDGE_PID=""
    cp "$tmp/$t-bridge.log" "$raw/$name.bridge.log" 2>/dev/null || true
  fi
  say "$name: $(grep -E '^(throughput_rps|lat_p50_us|lat_p99_us|lat_p999_us|errors)=' "$raw/$name.txt" |
    tr '\n' ' ')$(grep '^node ' "$raw/$name.txt" | awk '{printf "%s %.1f%% ", $2, 100 * $4}')"
}

# ---------------------------------------------------------------- runs
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{exit !($1 > 0.5)}' /proc/loadavg &&
  say "warning: load average $load_start before the run: other work on the machine; numbers will be noisy"

# Capacity of workload $1, in two steps, each node behind its own HAProxy
# relay (so that the path costs what it costs in the runs):
#  1. closed loop at the three nodes at once (BENCH_CAP_CONNS connections);
#  2. open loop at each node alone at the same time, at half the rate it
#     reached in step 1: its CPU time per request at an open-loop rate, and
#     its capacity = its quota / that cost (a node serves fewer requests per
#     CPU second at a modest open-loop rate than saturated by a closed loop,
#     which batches work, so step 1 alone overstates what 70 % means).
# Sets RATE[$1] to BENCH_LOAD_PCT % of the sum of the step-2 capacities.
declare -A RATE=()
measure_capacity() {
  local w=$1 args c0 c1 relay i n r lg_pids=() out
  out=$raw/cap.$w.txt
  read -r -a args <<<"$(wl_args "$w")"
  fill "$here/conf/haproxy-skew-capacity.cfg.in" "$tmp/relay.cfg" WORKERS="$WORKERS" \
    MAXCONN="$HA_MAXCONN" P1="${R_PORT[0]}" P2="${R_PORT[1]}" P3="${R_PORT[2]}" \
    B1="${N_PORT[0]}" B2="${N_PORT[1]}" B3="${N_PORT[2]}"
  start relay rest haproxy -db -f "$tmp/relay.cfg"
  relay=$LAST
  wait_port relay "$relay" "${R_PORT[2]}"
  in_cg rest
  c0=$(cpu_snap)
  run_fg "${INCG[@]}" "$LOADGEN" --target "127.0.0.1:${R_PORT[0]}" --target "127.0.0.1:${R_PORT[1]}" \
    --target "127.0.0.1:${R_PORT[2]}" --rate 0 --duration "$CAP_S" --warmup 1 "${args[@]}" \
    --conns "$CAP_CONNS" >"$out" 2>"$raw/cap.$w.err" ||
    die "capacity run for $w failed: $(cat "$raw/cap.$w.err")"
  c1=$(cpu_snap)
  cpu_delta "$c0" "$c1" | sed 's/^/closed_/' >>"$out"
  c0=$(cpu_snap)
  for i in 0 1 2; do
    n=${NODES[$i]}
    r=$(awk -v n="node-$n" -v s="$CAP_S" '$1 == "node" && $2 == n { printf "%d", $3 / s / 2 }' "$out")
    [ "${r:-0}" -gt 0 ] || die "capacity run for $w: node $n served nothing"
    echo "cal_rate_$n=$r" >>"$out"
    "${INCG[@]}" "$LOADGEN" --target "127.0.0.1:${R_PORT[$i]}" --rate "$r" --duration "$CAP_S" \
      "${args[@]}" >"$raw/cal.$w.$n.txt" 2>"$raw/cal.$w.$n.err" &
    lg_pids+=($!)
    PIDS+=($!)
  done
  for i in 0 1 2; do
    wait "${lg_pids[$i]}" || die "calibration run for $w failed: $(cat "$raw/cal.$w.${NODES[$i]}.err")"
    drop_pid "${lg_pids[$i]}"
  done
  c1=$(cpu_snap)
  stop_pid "$relay"
  cpu_delta "$c0" "$c1" >>"$out"
  for n in A B C; do
    awk -F= -v n="$n" '$1 == "throughput_rps" { print "cal_ok_rps_" n "=" $2 }
      $1 == "lat_p99_us" { print "cal_p99_us_" n "=" $2 }' "$raw/cal.$w.$n.txt" >>"$out"
  done
  awk -F= -v p="$LOAD_PCT" '{ v[$1] = $2 } END {
    for (i = 1; i <= 3; i++) {
      n = substr("ABC", i, 1); used = v["cpu_" n "_cores"]; ok = v["cal_ok_rps_" n]
      cost = ok > 0 ? used / ok : 0; cap = cost > 0 ? v["quota_" n "_cores"] / cost : 0
      printf "cost_us_%s=%.1f\ncap_%s=%.0f\n", n, cost * 1e6, n, cap; total += cap }
    printf "capacity_rps=%.0f\noffered_rate=%d\n", total, total * p / 100 }' "$out" >"$out.tmp"
  cat "$out.tmp" >>"$out"
  rm -f "$out.tmp"
  RATE[$w]=$(awk -F= '$1 == "offered_rate" { print $2 }' "$out")
  say "capacity $w: closed loop $(awk -F= '$1 == "throughput_rps" { print $2 }' "$out") req/s; open-loop cost $(awk -F= '$1 ~ /^cost_us_/ { printf "%s %s us ", substr($1, 9), $2 }' "$out")per request; capacity $(awk -F= '$1 ~ /^cap_[ABC]$/ { printf "%s %s ", substr($1, 5), $2 }' "$out")= $(awk -F= '$1 == "capacity_rps" { print $2 }' "$out") req/s; offered ${RATE[$w]} req/s"
  [ "${RATE[$w]}" -gt 0 ] || die "capacity of $w measured as 0"
}
for w in $WORKLOADS; do measure_capacity "$w"; done

for w in $WORKLOADS; do
  read -r -a args <<<"$(wl_args "$w")"
  for t in $TARGETS; do
    run_load "$w.$t" "$t" "${RATE[$w]}" "$DUR" "$WARMUP" "${args[@]}"
  done
done

if [ "$SLOW" = 1 ]; then
  base_w=hits-close
  [ -n "${RATE[$base_w]:-}" ] || measure_capacity "$base_w"
  cap=$(awk -F= '$1 == "capacity_rps" {print $2}' "$raw/cap.$base_w.txt")
  srate=$(awk -v c="$cap" -v p="$SLOW_PCT" 'BEGIN { printf "%d", c * p / 100 }')
  # The hog: HOGS busy loops inside node A's cgroup, pids in hog.pids.
  cat >"$tmp/hog.sh" <<EOF
#!/bin/sh
for f in $(cg_procs_files A); do echo \$\$ >"\$f" || exit 97; done
i=0
while [ \$i -lt $HOGS ]; do
  ( while :; do :; done ) &
  echo \$! >>"$tmp/hog.pids"
  i=\$((i + 1))
done
wait
EOF
  chmod 755 "$tmp/hog.sh"
  for t in $SLOW_TARGETS; do
    : >"$tmp/hog.pids"
    run_load "slow.$t" "$t" "$srate" "$((SLOW_BEFORE + SLOW_AFTER))" 0 --path /1k --bucket-ms 250 \
      --exec-at "$SLOW_BEFORE:$tmp/hog.sh"
    echo "hog_at_s=$SLOW_BEFORE" >>"$raw/slow.$t.txt"
    [ -s "$tmp/hog.pids" ] || PROBLEMS+=("slow.$t: the CPU hog did not start")
    for p in $(cat "$tmp/hog.pids"); do kill -KILL "$p" 2>/dev/null || true; done
    for p in $(cat "$(cg_dir A)/cgroup.procs"); do # the hog's sh, whatever else is not ours
      grep -qx "$p" <(printf '%s\n' "${PIDS[@]}") || kill -KILL "$p" 2>/dev/null || true
    done
  done
fi

# ---------------------------------------------------------------- report
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain -- balancer cache agent monitor common 2>/dev/null)" ] ||
  commit="$commit + uncommitted changes"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine=nproc $(nproc), Linux $(uname -r), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "versions=HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), fulcrum $("$BUILD_DIR/balancer/fulcrum-balancer" --version 2>/dev/null | head -1 | awk '{print $NF}')"
  echo "commit=$commit"
  echo "command=$cmd"
  echo "cgroup=v$CG_VER"
  echo "quota_ab_cores=$CPU"
  echo "quota_c_cores=$(awk -v q="$Q_C" -v p="$PERIOD" 'BEGIN { printf "%.3f", q / p }')"
  echo "period_us=$PERIOD"
  echo "load_pct=$LOAD_PCT"
  echo "slow_pct=$SLOW_PCT"
  echo "seconds=$DUR"
  echo "warmup=$WARMUP"
  echo "interval=$INTERVAL"
  echo "settle=$SETTLE"
  echo "workers=$WORKERS"
  echo "ka_conns=$KA_CONNS"
  echo "cap_conns=$CAP_CONNS"
  echo "pass_size=$PASS_SIZE"
  echo "hogs=$HOGS"
  echo "slow_before=$SLOW_BEFORE"
  echo "slow_after=$SLOW_AFTER"
  echo "workloads=$WORKLOADS"
  echo "targets=$TARGETS"
  echo "slow_targets=$([ "$SLOW" = 1 ] && echo "$SLOW_TARGETS")"
  echo "load=$load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
} >"$tmp/meta"
docarg=()
[ "$DOC" = - ] || docarg=(--doc "$DOC" --img-dir "$IMG_DIR")
python3 "$here/skew_report.py" "$raw" "$tmp/meta" "${docarg[@]}"
if [ "${#PROBLEMS[@]}" -gt 0 ]; then
  KEEP=1
  echo "bench/skew.sh: problems seen:" >&2
  printf '  - %s\n' "${PROBLEMS[@]}" >&2
  exit 3
fi
