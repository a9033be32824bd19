#!/usr/bin/env bash
# bench/cache.sh — Step 3 benchmark: fulcrum-cache hits against nginx
# proxy_cache and Varnish, and the replication delay between two
# fulcrum-cache nodes, all on 127.0.0.1, in one run.
#
# Builds Release, starts one origin (nginx serving a 1 KiB file with
# Cache-Control: max-age=3600, logging every request it serves) and the
# caches in front of it:
#   fulcrum       fulcrum-cache (one thread: it has a single event loop)
#   nginx         nginx proxy_cache, worker_processes 1
#   varnish       Varnish, one thread pool, confined to one CPU (taskset)
#   nginx-2w      nginx proxy_cache, worker_processes 2   (for information)
#   varnish-2cpu  Varnish, one thread pool, not confined  (for information)
# Each cache is checked (a MISS, then a HIT with the exact body), then wrk
# measures cache hits of /1k: (h) requests/s and latency at BENCH_KA_CONNS
# connections, (l) latency at BENCH_LAT_CONNS connections — each
# measurement on every target back to back, in an order rotated on each of
# BENCH_REPEAT repeats. The origin's log must show no request during a hit
# run. Then two replicating fulcrum-cache nodes A and B (B --peer A) are
# started and bench/repl_delay.c measures, over BENCH_REPL_URLS distinct
# URLs per repeat, the time from A's MISS (origin fetch) until B answers
# the URL as a HIT. The table (medians; ratios: median of per-repeat
# ratios) is printed and written into docs/benchmarks.md (BENCH_DOC=- to
# skip) between the cache markers.
#
# Environment (defaults):
#   BENCH_SECONDS=10       duration of each wrk run
#   BENCH_REPEAT=1         repeats (median taken)
#   BENCH_PORT_BASE=19200  origin +1, caches +10..+14, nodes A/B +20/+21, their peer ports +22/+23
#   BENCH_WRK_THREADS=2    BENCH_KA_CONNS=64  BENCH_LAT_CONNS=4
#   BENCH_TARGETS="fulcrum nginx varnish nginx-2w varnish-2cpu"
#   BENCH_REPL_URLS=500    URLs per replication repeat (0: skip the replication delay)
#   BENCH_REPL_POLL_US=100 pause between two polls of node B
#   BENCH_VARNISH_CPU=0    the CPU "varnish" is confined to
#   BENCH_BUILD=1          0: use the existing Release binary
#   BENCH_BUILD_DIR=build/release
#   BENCH_KEEP=0           1: keep the temp dir (configs, logs, raw outputs)
#   BENCH_DOC=docs/benchmarks.md
# Needs: bench/deps.sh (nginx-light, varnish, wrk, procps, python3; a C compiler).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

DUR=${BENCH_SECONDS:-10}
REPEAT=${BENCH_REPEAT:-1}
BASE=${BENCH_PORT_BASE:-19200}
THREADS=${BENCH_WRK_THREADS:-2}
KA_CONNS=${BENCH_KA_CONNS:-64}
LAT_CONNS=${BENCH_LAT_CONNS:-4}
TARGETS=${BENCH_TARGETS:-fulcrum nginx varnish nginx-2w varnish-2cpu}
REPL_URLS=${BENCH_REPL_URLS:-500}
REPL_POLL=${BENCH_REPL_POLL_US:-100}
VARNISH_CPU=${BENCH_VARNISH_CPU:-0}
BUILD=${BENCH_BUILD:-1}
BUILD_DIR=${BENCH_BUILD_DIR:-$root/build/release}
KEEP=${BENCH_KEEP:-0}
DOC=${BENCH_DOC:-$root/docs/benchmarks.md}

# The exact command, for the report.
cmd="bench/cache.sh"
for v in BENCH_SECONDS BENCH_REPEAT BENCH_PORT_BASE BENCH_WRK_THREADS BENCH_KA_CONNS \
         BENCH_LAT_CONNS BENCH_TARGETS BENCH_REPL_URLS BENCH_REPL_POLL_US BENCH_VARNISH_CPU \
         BENCH_BUILD BENCH_BUILD_DIR; do
  [ -n "${!v:-}" ] && cmd="$v='${!v}' $cmd"
done

die() { echo "bench/cache.sh: $*" >&2; exit 1; }
say() { echo "[bench $(date +%T)] $*" >&2; }

for n in "$DUR" "$REPEAT" "$BASE" "$THREADS" "$KA_CONNS" "$LAT_CONNS"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "numeric settings must be positive integers (got '$n')"
done
for n in "$REPL_URLS" "$REPL_POLL" "$VARNISH_CPU"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "numeric settings must be integers >= 0 (got '$n')"
done
if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65500 ]; then die "BENCH_PORT_BASE must be in 1024..65500"; fi
[ "$VARNISH_CPU" -lt "$(nproc)" ] || die "BENCH_VARNISH_CPU=$VARNISH_CPU: this machine has $(nproc) CPUs"
for c in nginx varnishd wrk python3 pgrep taskset cmake cc; do
  command -v "$c" >/dev/null || die "'$c' not found: run bench/deps.sh (and scripts/deps.sh) as root"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

ORIGIN=$((BASE + 1))
declare -A PORT=([fulcrum]=$((BASE + 10)) [nginx]=$((BASE + 11)) [nginx-2w]=$((BASE + 12))
                 [varnish]=$((BASE + 13)) [varnish-2cpu]=$((BASE + 14)))
A_PORT=$((BASE + 20)); B_PORT=$((BASE + 21)); A_PEER=$((BASE + 22)); B_PEER=$((BASE + 23))
for t in $TARGETS; do
  [ -n "${PORT[$t]:-}" ] || die "unknown target '$t' (fulcrum nginx varnish nginx-2w varnish-2cpu)"
done

tmp=$(mktemp -d /tmp/fulcrum-bench-cache.XXXXXX)
raw=$tmp/raw
mkdir -p "$raw" "$tmp/www"
chmod 755 "$tmp"  # nginx workers and Varnish's child run as unprivileged users
PIDS=()      # every server this script started
PROBLEMS=()  # what went wrong (reported at the end)
ORIGIN_PID=""

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# All descendants of a pid (children first-level and below).
descendants() {
  local p
  for p in $(pgrep -P "$1" 2>/dev/null || true); do
    echo "$p"
    descendants "$p"
  done
}

# TERM a process (and what it spawned); a second TERM, then KILL, if it lingers.
stop_pid() {
  local pid=$1 name=${2:-process} kids i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) still up 15 s after SIGTERM: SIGKILL"
    PROBLEMS+=("$name: did not exit within 15 s of SIGTERM")
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop_pid "$p" "pid $p" >/dev/null 2>&1 || true; done
  if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "bench/cache.sh: logs and raw outputs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start NAME CMD...: in the background, output to $tmp/NAME.log; sets $LAST.
start() {
  local name=$1; shift
  "$@" >"$tmp/$name.log" 2>&1 &
  LAST=$!
  PIDS+=("$LAST")
}

# Wait until PORT accepts (and, with a 4th argument, the log has that
# line), failing clearly if PID dies or 15 s pass.
wait_port() {
  local name=$1 pid=$2 port=$3 line=${4:-} i
  for i in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "---- $tmp/$name.log" >&2; tail -n 30 "$tmp/$name.log" >&2 || true
      die "$name exited before listening on 127.0.0.1:$port"
    fi
    if port_open "$port" && { [ -z "$line" ] || grep -q "$line" "$tmp/$name.log"; }; then
      return 0
    fi
    sleep 0.1
  done
  echo "---- $tmp/$name.log" >&2; tail -n 30 "$tmp/$name.log" >&2 || true
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

need_free() { ! port_open "$1" || die "port 127.0.0.1:$1 is already in use (set BENCH_PORT_BASE)"; }

fill() { # fill TEMPLATE OUT KEY=VALUE...
  local in=$1 out=$2; shift 2
  local args=() kv
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
}

origin_requests() { wc -l <"$tmp/origin.access.log"; }

# ---------------------------------------------------------------- build
BIN=$BUILD_DIR/cache/fulcrum-cache
if [ "$BUILD" = 1 ]; then
  say "building Release fulcrum-cache in $BUILD_DIR (log: $tmp/build.log)"
  if ! { cmake -S "$root" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF &&
         cmake --build "$BUILD_DIR" -j2 --target fulcrum-cache; } >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2
    die "Release build failed"
  fi
fi
[ -x "$BIN" ] || die "$BIN missing (build failed or BENCH_BUILD=0 without a build)"
REPL=$tmp/repl_delay
cc -std=c11 -O2 -Wall -Wextra -o "$REPL" "$here/repl_delay.c" >"$tmp/repl_delay.build.log" 2>&1 ||
  { cat "$tmp/repl_delay.build.log" >&2; die "cannot compile bench/repl_delay.c"; }

# ---------------------------------------------------------------- origin
head -c 1024 /dev/urandom >"$tmp/www/1k"
need_free "$ORIGIN"
mkdir -p "$tmp/origin-body"
: >"$tmp/origin.access.log"
fill "$here/conf/origin.nginx.conf.in" "$tmp/origin.conf" DIR="$tmp" WWW="$tmp/www" PORT="$ORIGIN"
start origin nginx -p "$tmp" -e "$tmp/origin.err" -c "$tmp/origin.conf"
ORIGIN_PID=$LAST
wait_port origin "$ORIGIN_PID" "$ORIGIN"
say "origin up on 127.0.0.1:$ORIGIN"

# GET PATH twice from PORT: the second answer must be a HIT (X-Cache starts
# with HIT) carrying the exact file. Catches a cache that does not cache.
check_hit() {
  python3 - "$1" "$2" "$tmp/www/1k" <<'EOF'
import http.client, sys
port, path, ref = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(3):  # three requests on one keep-alive connection
    c.request("GET", path)
    r = c.getresponse()
    body, xc = r.read(), r.getheader("X-Cache", "")
    if r.status != 200 or body != ref:
        sys.exit(f"GET {path} via :{port}: status {r.status}, {len(body)} bytes, "
                 f"{'same' if body == ref else 'different'} content")
    if i > 0 and not xc.startswith("HIT"):
        sys.exit(f"GET {path} via :{port} (request {i + 1}): X-Cache '{xc}', not a HIT")
EOF
}

# ---------------------------------------------------------------- caches
declare -A TPID=()  # target -> pid of the running instance
declare -A DEAD=()  # target -> 1 once it died: its remaining runs are skipped

start_target() {
  local t=$1 port=${PORT[$1]}
  need_free "$port"
  case "$t" in
    fulcrum)
      start "$t" "$BIN" --listen "127.0.0.1:$port" --origin "http://127.0.0.1:$ORIGIN" \
        --name bench --timeout-client 300
      TPID[$t]=$LAST
      wait_port "$t" "$LAST" "$port" "ready listen="
      ;;
    nginx | nginx-2w)
      local w=1
      [ "$t" = nginx-2w ] && w=2
      mkdir -p "$tmp/$t-body" "$tmp/$t-temp" "$tmp/$t-cache"
      fill "$here/conf/nginx-cache.conf.in" "$tmp/$t.conf" DIR="$tmp" NAME="$t" WORKERS="$w" \
        PORT="$port" ORIGIN="$ORIGIN"
      start "$t" nginx -p "$tmp" -e "$tmp/$t.err" -c "$tmp/$t.conf"
      TPID[$t]=$LAST
      wait_port "$t" "$LAST" "$port"
      ;;
    varnish | varnish-2cpu)
      local pin=()
      [ "$t" = varnish ] && pin=(taskset -c "$VARNISH_CPU")
      fill "$here/conf/varnish.vcl.in" "$tmp/$t.vcl" ORIGIN="$ORIGIN"
      # -F: foreground manager (SIGTERM stops it and its child); as root it
      # drops the child to Debian's varnish/vcache users (the default "unix"
      # jail), which is why $tmp is world-readable. One thread pool whose
      # threads exist before the run (Varnish serves a busy connection on
      # a thread of its own).
      start "$t" "${pin[@]}" varnishd -F -n "$tmp/$t" -a "127.0.0.1:$port" -T none \
        -f "$tmp/$t.vcl" -s malloc,256m -p thread_pools=1 \
        -p thread_pool_min=$((KA_CONNS + 36)) -p thread_pool_max=$((KA_CONNS + 1000))
      TPID[$t]=$LAST
      wait_port "$t" "$LAST" "$port"
      ;;
  esac
}

alive() { [ -z "${TPID[$1]:-}" ] || kill -0 "${TPID[$1]}" 2>/dev/null; }

# Record that a target died, with its log, and stop using it.
died() {
  local t=$1 what=$2 st=0
  DEAD[$t]=1
  cp "$tmp/$t.log" "$raw/$t.died.log" 2>/dev/null || true
  PROBLEMS+=("$t died during $what; last log lines: $(tail -n 5 "$tmp/$t.log" 2>/dev/null | tr '\n' ' ')")
  wait "${TPID[$t]}" 2>/dev/null || st=$?
  PROBLEMS+=("$t exit status: $st (>128: killed by signal N-128)")
  TPID[$t]=""
}

# CPU time, in jiffies, of the machine (all cores), of this benchmark's
# processes (origin, caches, and wrk, a waited-for child of this shell) and
# of the cache TARGET alone: sets CPU_SNAP="machine ours target". Runs in
# this shell, not a subshell, so that `times` sees wrk.
cpu_snapshot() {
  local ours=0 tgt=0 p f hz
  if [ -n "${TPID[$1]:-}" ]; then
    for f in "${TPID[$1]}" $(descendants "${TPID[$1]}"); do
      tgt=$((tgt + $(awk '{print $14 + $15}' "/proc/$f/stat" 2>/dev/null || echo 0)))
    done
  fi
  for p in "$ORIGIN_PID" "${TPID[@]}"; do
    [ -n "$p" ] || continue
    for f in "$p" $(descendants "$p"); do
      ours=$((ours + $(awk '{print $14 + $15}' "/proc/$f/stat" 2>/dev/null || echo 0)))
    done
  done
  hz=$(getconf CLK_TCK)
  times >"$tmp/times"  # line 2: children's user and system time
  ours=$((ours + $(awk -v hz="$hz" 'NR == 2 { n = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += (a[1] * 60 + a[2]) * hz }
    printf "%d", n }' "$tmp/times")))
  CPU_SNAP="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat) $ours $tgt"
}

# One wrk run: TARGET TEST REP CONNS.
run_wrk() {
  local t=$1 test=$2 rep=$3 conns=$4 out c0 c1 t0 t1 o0 o1 n
  out=$raw/$t.$test.$rep.txt
  local c=(wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --latency "http://127.0.0.1:${PORT[$t]}/1k")
  echo "# ${c[*]}" >"$out"
  o0=$(origin_requests)
  cpu_snapshot "$t"; c0=$CPU_SNAP; t0=$(date +%s.%N)
  "${c[@]}" >>"$out" 2>&1 || PROBLEMS+=("$t $test: wrk exited non-zero: ${c[*]}")
  cpu_snapshot "$t"; c1=$CPU_SNAP; t1=$(date +%s.%N)
  o1=$(origin_requests)
  n=$(awk '/requests in/ {print $1; exit}' "$out")
  # CPU used during the run, in % of all cores: the machine's, ours, other
  # processes', and the cache's (also per request, in µs).
  echo "$c0 $c1 $t0 $t1 $(nproc) $(getconf CLK_TCK) ${n:-0}" | awk '{
    cap = ($8 - $7) * $9 * $10; all = $4 - $1; ours = $5 - $2; tgt = $6 - $3
    f = all - ours; if (f < 0) f = 0
    printf "# cpu: busy_pct=%.0f ours_pct=%.0f foreign_pct=%.0f target_pct=%.1f target_us_per_req=%.2f\n",
      100 * all / cap, 100 * ours / cap, 100 * f / cap, 100 * tgt / cap,
      ($11 > 0 ? tgt * 1e6 / $10 / $11 : 0) }' >>"$out"
  echo "# origin_requests=$((o1 - o0))" >>"$out"
  say "$t $test: $(grep -E "Requests/sec|99%|Socket errors|Non-2xx|# cpu|# origin" "$out" |
    tr -s ' ' | tr '\n' ' ')"
  if grep -qE "Socket errors|Non-2xx" "$out"; then
    PROBLEMS+=("$t $test (rep $rep): $(grep -E "Socket errors|Non-2xx" "$out" | tr '\n' ' ')— ${c[*]}")
  fi
  [ "$o1" = "$o0" ] ||
    PROBLEMS+=("$t $test (rep $rep): the origin served $((o1 - o0)) requests during a hit run")
  if ! alive "$t"; then died "$t" "$test (rep $rep): ${c[*]}"; fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{exit !($1 > 0.5)}' /proc/loadavg &&
  say "warning: load average $load_start before the run: something else uses the CPU; numbers will be noisy"
top -bn1 | head -n 15 >"$raw/top.start.txt" 2>/dev/null || true
read -r -a tlist <<<"$TARGETS"
ntar=${#tlist[@]}
say "targets: ${tlist[*]}; $REPEAT repeat(s) of ${DUR}s runs"

# All caches up at once (an idle cache costs no CPU), each filled and
# checked, then warmed up with 1 s of wrk.
for t in "${tlist[@]}"; do
  start_target "$t"
  check_hit "${PORT[$t]}" /1k || PROBLEMS+=("$t: no HIT or a wrong body (see the message above)")
  wrk -t"$THREADS" -c"$KA_CONNS" -d1s "http://127.0.0.1:${PORT[$t]}/1k" >/dev/null 2>&1 || true
done
for rep in $(seq 1 "$REPEAT"); do
  for test in hit lat; do
    for k in $(seq 0 $((ntar - 1))); do
      t=${tlist[$(((k + rep - 1) % ntar))]}
      [ -z "${DEAD[$t]:-}" ] || continue
      case $test in
        hit) run_wrk "$t" hit "$rep" "$KA_CONNS" ;;
        lat) run_wrk "$t" lat "$rep" "$LAT_CONNS" ;;
      esac
      sleep 1
    done
  done
done
# fulcrum-cache's own count: every request of the runs must be a hit.
if [ -n "${TPID[fulcrum]:-}" ] && alive fulcrum; then
  python3 - "${PORT[fulcrum]}" >"$raw/fulcrum.stats.json" <<'EOF' || PROBLEMS+=("fulcrum: no stats")
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/_fulcrum/stats")
print(c.getresponse().read().decode())
EOF
fi
for t in "${tlist[@]}"; do
  if [ "$t" = fulcrum ] && grep -qiE "level=(err|warn)|abort|assert" "$tmp/$t.log"; then
    cp "$tmp/$t.log" "$raw/$t.load.log"
    PROBLEMS+=("$t: its log has warnings/errors: $(grep -iE "level=(err|warn)|abort|assert" \
      "$tmp/$t.log" | head -3 | tr '\n' ' ')")
  fi
  if [ -z "${DEAD[$t]:-}" ] && ! alive "$t"; then died "$t" "the load runs"; fi
  [ -z "${TPID[$t]:-}" ] || stop_pid "${TPID[$t]}" "$t"
  TPID[$t]=""
done

# ---------------------------------------------------------------- replication
if [ "$REPL_URLS" -gt 0 ]; then
  head -c 32 /dev/urandom >"$tmp/cluster.key"
  chmod 600 "$tmp/cluster.key"
  for p in "$A_PORT" "$B_PORT" "$A_PEER" "$B_PEER"; do need_free "$p"; done
  start node-a "$BIN" --listen "127.0.0.1:$A_PORT" --origin "http://127.0.0.1:$ORIGIN" \
    --name a --key "$tmp/cluster.key" --peer-listen "127.0.0.1:$A_PEER" --timeout-client 300
  TPID[node-a]=$LAST
  wait_port node-a "$LAST" "$A_PORT" "ready listen="
  start node-b "$BIN" --listen "127.0.0.1:$B_PORT" --origin "http://127.0.0.1:$ORIGIN" \
    --name b --key "$tmp/cluster.key" --peer-listen "127.0.0.1:$B_PEER" \
    --peer "127.0.0.1:$A_PEER" --timeout-client 300
  TPID[node-b]=$LAST
  wait_port node-b "$LAST" "$B_PORT" "ready listen="
  for rep in $(seq 1 "$REPEAT"); do
    out=$raw/repl.repl.$rep.txt
    o0=$(origin_requests)
    if ! "$REPL" "$A_PORT" "$B_PORT" -n "$REPL_URLS" -p "/r/$rep" -i "$REPL_POLL" >"$out" 2>&1; then
      PROBLEMS+=("replication delay (rep $rep): $(tr '\n' ' ' <"$out")")
    fi
    o1=$(origin_requests)
    echo "origin_requests=$((o1 - o0))" >>"$out"
    say "replication rep $rep: $(tr '\n' ' ' <"$out")"
    [ $((o1 - o0)) = "$REPL_URLS" ] ||
      PROBLEMS+=("replication (rep $rep): the origin served $((o1 - o0)) requests for $REPL_URLS URLs (B must fetch none)")
  done
  for n in node-a node-b; do
    if grep -qiE "level=(err|warn)|abort|assert" "$tmp/$n.log"; then
      cp "$tmp/$n.log" "$raw/$n.log"
      PROBLEMS+=("$n: its log has warnings/errors: $(grep -iE "level=(err|warn)|abort|assert" \
        "$tmp/$n.log" | head -3 | tr '\n' ' ')")
    fi
    alive "$n" || PROBLEMS+=("$n died during the replication runs")
    stop_pid "${TPID[$n]}" "$n"
    TPID[$n]=""
  done
fi
top -bn1 | head -n 15 >"$raw/top.end.txt" 2>/dev/null || true

# ---------------------------------------------------------------- report
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain -- cache common 2>/dev/null)" ] ||
  commit="$commit + uncommitted changes in cache/ or common/"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine=nproc $(nproc), Linux $(uname -r), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "versions=nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), Varnish $(varnishd -V 2>&1 | sed -n 's/.*(varnish-\([^ ]*\) .*/\1/p' | head -1), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), fulcrum-cache $("$BIN" --version 2>/dev/null | head -1 | awk '{print $NF}' || echo '?')"
  echo "commit=$commit"
  echo "command=$cmd"
  echo "settings=wrk -t$THREADS -d${DUR}s on /1k (1024 bytes): (h) $KA_CONNS conns, (l) $LAT_CONNS conns; repeats $REPEAT; replication: $REPL_URLS URLs per repeat, B polled every ${REPL_POLL} µs; varnish confined to CPU $VARNISH_CPU"
  echo "load=load average (1, 5, 15 min) $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "ka_conns=$KA_CONNS"
  echo "lat_conns=$LAT_CONNS"
  echo "repl_urls=$REPL_URLS"
  echo "repl_poll_us=$REPL_POLL"
} >"$tmp/meta"
docarg=()
[ "$DOC" = - ] || docarg=(--doc "$DOC")
python3 "$here/cache_report.py" "$raw" "$tmp/meta" "${docarg[@]}"
if [ "${#PROBLEMS[@]}" -gt 0 ]; then
  KEEP=1
  echo "bench/cache.sh: problems seen:" >&2
  printf '  - %s\n' "${PROBLEMS[@]}" >&2
  exit 3
fi
