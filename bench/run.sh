#!/usr/bin/env bash
# bench/run.sh — Step 2 benchmark: fulcrum-balancer against HAProxy, nginx
# stream and a direct connection, all on 127.0.0.1, in one run.
#
# Builds Release, starts three nginx backends serving /1k and /1m, then with
# the targets (direct, haproxy, nginx, fulcrum-leastconn, fulcrum-weighted):
#   (e) one fresh instance of each proxy at a time holds BENCH_IDLE_CONNS idle
#       connections while its RSS is read, then is stopped;
#   then all proxies are started together, checked end to end, and wrk runs
#   (a) 1 KiB keep-alive, (b) Connection: close, (c) 1 MiB, (d) latency at
#   BENCH_LAT_CONNS connections -- each measurement on every target back to
#   back, in an order rotated on each of BENCH_REPEAT repeats.
# The table shows medians (ratios: median of the per-repeat ratios). It is
# printed and written into docs/benchmarks.md (BENCH_DOC=- to skip), between
# the Step 2 markers.
#
# Environment (defaults):
#   WORKERS=2              fulcrum --workers, HAProxy nbthread, nginx worker_processes
#   BENCH_SECONDS=10       duration of each wrk run
#   BENCH_REPEAT=1         repeats (median taken)
#   BENCH_PORT_BASE=19000  backends +1..+3, haproxy +10, nginx +11, fulcrum +12/+13
#   BENCH_WRK_THREADS=2    BENCH_KA_CONNS=64  BENCH_CLOSE_CONNS=64
#   BENCH_BIG_CONNS=8      BENCH_LAT_CONNS=4  BENCH_IDLE_CONNS=5000
#   BENCH_TARGETS="direct haproxy nginx fulcrum-leastconn fulcrum-weighted"
#   BENCH_BUILD=1          0: use the existing build/release binary
#   BENCH_FULCRUM_ARGS=    extra fulcrum-balancer flags (e.g. --splice=never)
#   BENCH_HAPROXY_SPLICE=0 1: add "option splice-auto" to HAProxy
#   BENCH_KEEP=0           1: keep the temp dir (configs, logs, raw wrk outputs)
#   BENCH_PROFILE=0        1: after the measurements, one more (a) and (b) run of
#                          each proxy under `strace -c -f` (system calls per
#                          request) and one under `perf record -e cpu-clock` (where
#                          its CPU time goes, by DSO and by symbol): printed, and
#                          kept in raw/TARGET.{strace,perf}.TEST.txt
#   BENCH_DOC=docs/benchmarks.md
# Needs: bench/deps.sh (haproxy nginx-light libnginx-mod-stream wrk procps python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

WORKERS=${WORKERS:-2}
DUR=${BENCH_SECONDS:-10}
REPEAT=${BENCH_REPEAT:-1}
BASE=${BENCH_PORT_BASE:-19000}
THREADS=${BENCH_WRK_THREADS:-2}
KA_CONNS=${BENCH_KA_CONNS:-64}
CLOSE_CONNS=${BENCH_CLOSE_CONNS:-64}
BIG_CONNS=${BENCH_BIG_CONNS:-8}
LAT_CONNS=${BENCH_LAT_CONNS:-4}
IDLE=${BENCH_IDLE_CONNS:-5000}
TARGETS=${BENCH_TARGETS:-direct haproxy nginx fulcrum-leastconn fulcrum-weighted}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
DOC=${BENCH_DOC:-$root/docs/benchmarks.md}
FULCRUM_ARGS=${BENCH_FULCRUM_ARGS:-}
HAPROXY_SPLICE=${BENCH_HAPROXY_SPLICE:-0}
PROFILE=${BENCH_PROFILE:-0}
HAPROXY_MAXCONN=4000

# The exact command, for the report.
cmd="bench/run.sh"
for v in WORKERS BENCH_SECONDS BENCH_REPEAT BENCH_PORT_BASE BENCH_WRK_THREADS BENCH_KA_CONNS \
         BENCH_CLOSE_CONNS BENCH_BIG_CONNS BENCH_LAT_CONNS BENCH_IDLE_CONNS BENCH_TARGETS \
         BENCH_BUILD BENCH_FULCRUM_ARGS BENCH_HAPROXY_SPLICE BENCH_PROFILE; do
  [ -n "${!v:-}" ] && cmd="$v='${!v}' $cmd"
done

die() { echo "bench/run.sh: $*" >&2; exit 1; }
say() { echo "[bench $(date +%T)] $*" >&2; }

for n in "$WORKERS" "$DUR" "$REPEAT" "$BASE" "$THREADS" "$KA_CONNS" "$CLOSE_CONNS" \
         "$BIG_CONNS" "$LAT_CONNS" "$IDLE"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "numeric settings must be positive integers (got '$n')"
done
if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65500 ]; then die "BENCH_PORT_BASE must be in 1024..65500"; fi
for c in haproxy nginx wrk python3 pgrep cmake; do
  command -v "$c" >/dev/null || die "'$c' not found: run bench/deps.sh (and scripts/deps.sh) as root"
done
if [ "$PROFILE" = 1 ]; then
  for c in perf strace; do
    command -v "$c" >/dev/null || die "'$c' not found (BENCH_PROFILE=1): run bench/deps.sh as root"
  done
fi
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] ||
  die "nginx stream module missing: run bench/deps.sh (libnginx-mod-stream)"

# Enough descriptors for 5,000 idle connections through a proxy (2 fds each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE * 2 + 1000)) ] ||
  die "ulimit -n is $(ulimit -n); need at least $((IDLE * 2 + 1000)) for $IDLE idle connections"
# HAProxy needs maxconn above the idle count for (e); it refuses a maxconn whose
# descriptors (about 2 per connection) exceed ulimit -n.
HAPROXY_IDLE_MAXCONN=$((IDLE + 1000))
[ "$HAPROXY_IDLE_MAXCONN" -gt "$HAPROXY_MAXCONN" ] || HAPROXY_IDLE_MAXCONN=$HAPROXY_MAXCONN

B1=$((BASE + 1)); B2=$((BASE + 2)); B3=$((BASE + 3))
declare -A PORT=([direct]=$B1 [haproxy]=$((BASE + 10)) [nginx]=$((BASE + 11))
                 [fulcrum-leastconn]=$((BASE + 12)) [fulcrum-weighted]=$((BASE + 13)))
for t in $TARGETS; do
  [ -n "${PORT[$t]:-}" ] || die "unknown target '$t' (direct haproxy nginx fulcrum-leastconn fulcrum-weighted)"
done

tmp=$(mktemp -d /tmp/fulcrum-bench.XXXXXX)
raw=$tmp/raw
mkdir -p "$raw" "$tmp/www"
chmod 755 "$tmp"  # nginx workers run as an unprivileged user and read www/
PIDS=()      # every server this script started
HELPER=""    # the idle-connection holder, while it runs
PROBLEMS=()  # what went wrong with a target (reported at the end)
BACKENDS=()  # pids of the three nginx backends

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
    say "$name (pid $pid) still up 15 s after SIGTERM: second SIGTERM"
    PROBLEMS+=("$name: did not exit within 15 s of SIGTERM (idle at that point)")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) still up: SIGKILL"
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
  if [ -n "$HELPER" ]; then kill -TERM "$HELPER" 2>/dev/null || true; wait "$HELPER" 2>/dev/null || true; fi
  for p in "${PIDS[@]}"; do stop_pid "$p" "pid $p" >/dev/null 2>&1 || true; done
  if [ "$KEEP" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "bench/run.sh: logs and raw outputs kept in $tmp" >&2
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

# Wait until PORT accepts, failing clearly if PID dies or 15 s pass.
wait_port() {
  local name=$1 pid=$2 port=$3 i
  for i in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "---- $tmp/$name.log" >&2; tail -n 30 "$tmp/$name.log" >&2 || true
      die "$name exited before listening on 127.0.0.1:$port"
    fi
    port_open "$port" && return 0
    sleep 0.1
  done
  echo "---- $tmp/$name.log" >&2; tail -n 30 "$tmp/$name.log" >&2 || true
  die "$name did not listen on 127.0.0.1:$port within 15 s"
}

need_free() { ! port_open "$1" || die "port 127.0.0.1:$1 is already in use (set BENCH_PORT_BASE)"; }

# Sum of VmRSS (kB) of a process and its descendants.
rss_kb() {
  local total=0 p v
  for p in "$1" $(descendants "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

fill() { # fill TEMPLATE OUT KEY=VALUE...
  local in=$1 out=$2; shift 2
  local args=() kv
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
}

# ---------------------------------------------------------------- build
BIN=$root/build/release/balancer/fulcrum-balancer
if [ "$BUILD" = 1 ]; then
  say "building Release (log: $tmp/build.log)"
  if ! { cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release -DFULCRUM_TESTS=OFF &&
         cmake --build "$root/build/release" -j2; } >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2
    die "Release build failed"
  fi
fi
case " $TARGETS " in
  *" fulcrum-"*) [ -x "$BIN" ] || die "$BIN missing (build failed or BENCH_BUILD=0 without a build)" ;;
esac

# ---------------------------------------------------------------- backends
head -c 1024 /dev/urandom >"$tmp/www/1k"
head -c 1048576 /dev/urandom >"$tmp/www/1m"
for n in 1 2 3; do
  p=$((BASE + n))
  need_free "$p"
  fill "$here/conf/backend.nginx.conf.in" "$tmp/backend-$n.conf" \
    DIR="$tmp" WWW="$tmp/www" N="$n" PORT="$p"
  mkdir -p "$tmp/backend-$n-body"
  start "backend-$n" nginx -p "$tmp" -e "$tmp/backend-$n.err" -c "$tmp/backend-$n.conf"
  BACKENDS+=("$LAST")
  wait_port "backend-$n" "$LAST" "$p"
done
say "backends up on 127.0.0.1:$B1,$B2,$B3"

# GET PATH from PORT and compare it with the file: catches a proxy that
# corrupts or truncates a response.
check_body() {
  python3 - "$1" "$2" "$tmp/www$2" <<'EOF'
import http.client, sys
port, path, ref = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for _ in range(3):  # three requests on one keep-alive connection
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    if r.status != 200 or body != ref:
        sys.exit(f"GET {path} via :{port}: status {r.status}, {len(body)} bytes, "
                 f"{'same' if body == ref else 'different'} content")
EOF
}
for n in 1 2 3; do check_body $((BASE + n)) /1k || die "backend $n serves a wrong /1k"; done

# ---------------------------------------------------------------- targets
declare -A TPID=()  # target -> pid of the running instance (none for direct)
declare -A DEAD=()  # target -> 1 once it died: its remaining runs are skipped

# start_target NAME MODE: MODE idle (fresh instance for (e)) or load.
start_target() {
  local t=$1 mode=$2 port=${PORT[$1]} maxconn log=$1-$2
  [ "$t" = direct ] && return 0
  need_free "$port"
  case "$t" in
    haproxy)
      maxconn=$HAPROXY_MAXCONN
      [ "$mode" = idle ] && maxconn=$HAPROXY_IDLE_MAXCONN
      local extra=""
      [ "$HAPROXY_SPLICE" = 1 ] && extra="    option splice-auto"
      fill "$here/conf/haproxy.cfg.in" "$tmp/haproxy-$mode.cfg" WORKERS="$WORKERS" \
        MAXCONN="$maxconn" PORT="$port" B1="$B1" B2="$B2" B3="$B3" EXTRA="$extra"
      start "$log" haproxy -db -f "$tmp/haproxy-$mode.cfg"
      ;;
    nginx)
      fill "$here/conf/stream.nginx.conf.in" "$tmp/stream.conf" DIR="$tmp" WORKERS="$WORKERS" \
        PORT="$port" B1="$B1" B2="$B2" B3="$B3"
      start "$log" nginx -p "$tmp" -e "$tmp/stream.err" -c "$tmp/stream.conf"
      ;;
    fulcrum-*)
      # shellcheck disable=SC2086
      start "$log" "$BIN" --listen "127.0.0.1:$port" --node "127.0.0.1:$B1" \
        --node "127.0.0.1:$B2" --node "127.0.0.1:$B3" --policy "${t#fulcrum-}" \
        --workers "$WORKERS" --log-conns=no --maxconn "$HAPROXY_IDLE_MAXCONN" --timeout-client 300 \
        --timeout-server 300 $FULCRUM_ARGS
      ;;
  esac
  TPID[$t]=$LAST
  wait_port "$log" "$LAST" "$port"
  if [[ "$t" == fulcrum-* ]]; then
    grep -q "ready listen=" "$tmp/$log.log" || sleep 0.5
    grep -q "ready listen=" "$tmp/$log.log" ||
      say "warning: $t listens but printed no 'ready listen=' line"
  fi
}

alive() { [ -z "${TPID[$1]:-}" ] || kill -0 "${TPID[$1]}" 2>/dev/null; }

stop_target() {
  [ -n "${TPID[$1]:-}" ] || return 0
  stop_pid "${TPID[$1]}" "$1"
  TPID[$1]=""
}

# Record that a target died, with its log, and stop using it.
died() {
  local t=$1 what=$2 log
  DEAD[$t]=1
  # shellcheck disable=SC2012  # our own file names, newest first
  log=$(ls -t "$tmp/$t"-*.log 2>/dev/null | head -1)
  [ -z "$log" ] || cp "$log" "$raw/$t.died.log"
  PROBLEMS+=("$t died during $what; last log lines: $(tail -n 5 "$log" 2>/dev/null | tr '\n' ' ')")
  local st=0
  wait "${TPID[$t]}" 2>/dev/null || st=$?
  PROBLEMS+=("$t exit status: $st (>128: killed by signal N-128)")
  TPID[$t]=""
}

# CPU time, in jiffies, of the machine (all cores) and of
# this benchmark's processes (backends, proxies, and wrk, which is a waited-for
# child of this shell), and of the proxy TARGET alone: sets
# CPU_SNAP="machine ours proxy". Runs in this shell, not in a subshell, so
# that `times` sees wrk.
cpu_snapshot() {
  local ours=0 proxy=0 p f hz
  if [ -n "${TPID[$1]:-}" ]; then
    for f in "${TPID[$1]}" $(descendants "${TPID[$1]}"); do
      proxy=$((proxy + $(awk '{print $14 + $15}' "/proc/$f/stat" 2>/dev/null || echo 0)))
    done
  fi
  for p in "${BACKENDS[@]}" "${TPID[@]}"; do
    [ -n "$p" ] || continue
    for f in "$p" $(descendants "$p"); do
      ours=$((ours + $(awk '{print $14 + $15}' "/proc/$f/stat" 2>/dev/null || echo 0)))
    done
  done
  hz=$(getconf CLK_TCK)
  times >"$tmp/times"  # line 2: children's user and system time, "0m1.230s 0m0.450s"
  ours=$((ours + $(awk -v hz="$hz" 'NR == 2 { n = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += (a[1] * 60 + a[2]) * hz }
    printf "%d", n }' "$tmp/times")))
  # user + nice + system + irq + softirq: a process's time can include the
  # softirq work (loopback TCP) done in its context.
  CPU_SNAP="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat) $ours $proxy"
}

# (e): RSS of a fresh instance holding IDLE idle connections.
measure_idle() {
  local t=$1 rep=$2 base rss out=$tmp/idle.out i
  start_target "$t" idle
  sleep 0.5
  base=$(rss_kb "${TPID[$t]}")
  : >"$out"
  python3 "$here/idle_conns.py" 127.0.0.1 "${PORT[$t]}" "$IDLE" --upstream-ports "$B1,$B2,$B3" \
    --timeout 60 --settle 1 --hold-max 300 >"$out" 2>&1 &
  HELPER=$!
  for i in $(seq 1 900); do
    grep -q "^ready" "$out" && break
    kill -0 "$HELPER" 2>/dev/null || break
    sleep 0.1
  done
  rss=$(rss_kb "${TPID[$t]}")
  kill -TERM "$HELPER" 2>/dev/null || true
  wait "$HELPER" 2>/dev/null || true
  HELPER=""
  { echo "rss_kb=$rss base_kb=$base"; cat "$out"; } >"$raw/$t.rss.$rep.txt"
  say "$t (e) rep $rep: $(tr '\n' ' ' <"$raw/$t.rss.$rep.txt")"
  if ! grep -q "^ready opened=$IDLE upstream=$IDLE" "$out" || ! grep -q "^alive=$IDLE" "$out"; then
    PROBLEMS+=("$t (e): not all $IDLE idle connections were held: $(tr '\n' ' ' <"$out")")
  fi
  if alive "$t"; then stop_target "$t"; else died "$t" "(e) with $IDLE idle connections"; fi
}

# One wrk run: TARGET TEST REP CONNS PATH [extra wrk args].
run_wrk() {
  local t=$1 test=$2 rep=$3 conns=$4 path=$5 out c0 c1; shift 5
  out=$raw/$t.$test.$rep.txt
  local c=(wrk -t"$THREADS" -c"$conns" -d"${DUR}s" --latency "$@" "http://127.0.0.1:${PORT[$t]}$path")
  echo "# ${c[*]}" >"$out"
  local t0 t1
  cpu_snapshot "$t"; c0=$CPU_SNAP; t0=$(date +%s.%N)
  if ! "${c[@]}" >>"$out" 2>&1; then
    PROBLEMS+=("$t $test: wrk exited non-zero: ${c[*]}")
  fi
  cpu_snapshot "$t"; c1=$CPU_SNAP; t1=$(date +%s.%N)
  # CPU used during the run, in % of all cores: the machine's, ours, other
  # processes', and the proxy's (also per request, in µs).
  local n
  n=$(awk '/requests in/ {print $1; exit}' "$out")
  echo "$c0 $c1 $t0 $t1 $(nproc) $(getconf CLK_TCK) ${n:-0}" | awk '{
    cap = ($8 - $7) * $9 * $10; all = $4 - $1; ours = $5 - $2; proxy = $6 - $3
    f = all - ours; if (f < 0) f = 0
    printf "# cpu: busy_pct=%.0f ours_pct=%.0f foreign_pct=%.0f proxy_pct=%.1f proxy_us_per_req=%.2f\n",
      100 * all / cap, 100 * ours / cap, 100 * f / cap, 100 * proxy / cap,
      ($11 > 0 ? proxy * 1e6 / $10 / $11 : 0) }' >>"$out"
  say "$t $test: $(grep -E "Requests/sec|Transfer/sec|Socket errors|Non-2xx|# cpu" "$out" |
    tr -s ' ' | tr '\n' ' ')"
  if grep -qE "Socket errors|Non-2xx" "$out"; then
    PROBLEMS+=("$t $test (rep $rep): $(grep -E "Socket errors|Non-2xx" "$out" | tr '\n' ' ')— ${c[*]}")
  fi
  if ! alive "$t"; then died "$t" "$test (rep $rep): ${c[*]}"; fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{exit !($1 > 0.5)}' /proc/loadavg &&
  say "warning: load average $load_start before the run: something else uses the CPU; numbers will be noisy"
read -r -a tlist <<<"$TARGETS"
ntar=${#tlist[@]}
say "targets: ${tlist[*]}; $REPEAT repeat(s) of ${DUR}s runs; WORKERS=$WORKERS"

# (e) first: one fresh instance per target and repeat, in rotated order.
for rep in $(seq 1 "$REPEAT"); do
  for k in $(seq 0 $((ntar - 1))); do
    t=${tlist[$(((k + rep - 1) % ntar))]}
    [ "$t" = direct ] || [ -n "${DEAD[$t]:-}" ] || measure_idle "$t" "$rep"
  done
done

# (a)-(d): all targets up at once (an idle proxy costs no CPU) so that the
# same measurement of every target runs back to back, in an order rotated on
# each repeat: slow drifts in the machine's load hit all targets alike.
for t in "${tlist[@]}"; do
  [ -n "${DEAD[$t]:-}" ] && continue
  start_target "$t" load
  check_body "${PORT[$t]}" /1k && check_body "${PORT[$t]}" /1m ||
    PROBLEMS+=("$t: wrong response body through the proxy (see the message above)")
  wrk -t"$THREADS" -c"$KA_CONNS" -d1s "http://127.0.0.1:${PORT[$t]}/1k" >/dev/null 2>&1 || true
done
for rep in $(seq 1 "$REPEAT"); do
  for test in ka close big lat; do
    for k in $(seq 0 $((ntar - 1))); do
      t=${tlist[$(((k + rep - 1) % ntar))]}
      [ -z "${DEAD[$t]:-}" ] || continue
      case $test in
        ka)    run_wrk "$t" ka "$rep" "$KA_CONNS" /1k ;;
        close) run_wrk "$t" close "$rep" "$CLOSE_CONNS" /1k -H "Connection: close" ;;
        big)   run_wrk "$t" big "$rep" "$BIG_CONNS" /1m ;;
        lat)   run_wrk "$t" lat "$rep" "$LAT_CONNS" /1k ;;
      esac
      sleep 1
    done
  done
done
# Profiles, after the measurements (tracing slows a proxy down: these runs
# are not in the table). Calls per request: strace's count over wrk's.
profile_target() {
  local t=$1 test conns pid=${TPID[$1]} req tr
  for test in ka close; do
    conns=$KA_CONNS
    [ "$test" = close ] && conns=$CLOSE_CONNS
    local hdr=()
    [ "$test" = close ] && hdr=(-H "Connection: close")
    tr=$raw/$t.strace.$test.txt
    strace -c -f -qq -o "$tr.raw" -p "$pid" &
    local st=$!
    sleep 1  # attached to every thread
    wrk -t"$THREADS" -c"$conns" -d"${DUR}s" "${hdr[@]}" "http://127.0.0.1:${PORT[$t]}/1k" \
      >"$raw/$t.strace.$test.wrk" 2>&1 || true
    kill -INT "$st" 2>/dev/null || true
    wait "$st" 2>/dev/null || true
    req=$(awk '/requests in/ {print $1; exit}' "$raw/$t.strace.$test.wrk")
    # strace -c: % time, seconds, usecs/call, calls, [errors,] syscall
    awk -v n="${req:-0}" 'n > 0 && $4 ~ /^[0-9]+$/ && $NF ~ /^[a-z_0-9]+$/ {
        printf "%-16s %8.2f per request%s\n", ($NF == "total" ? "all" : $NF), $4 / n,
          ($NF == "total" ? " (" n " requests)" : "") }' \
      "$tr.raw" >"$tr"
    say "$t $test under strace: $(grep -E '^all ' "$tr" || echo 'no count')"
    perf record -q -e cpu-clock -F 1999 -p "$pid" -o "$raw/$t.perf.$test.data" -- sleep "$DUR" \
      >/dev/null 2>&1 &
    local pf=$!
    wrk -t"$THREADS" -c"$conns" -d"${DUR}s" "${hdr[@]}" "http://127.0.0.1:${PORT[$t]}/1k" \
      >"$raw/$t.perf.$test.wrk" 2>&1 || true
    wait "$pf" 2>/dev/null || true
    # (awk, not head: an early exit would fail the pipe under pipefail)
    { echo "## by DSO"
      perf report -i "$raw/$t.perf.$test.data" --stdio --no-children --sort dso 2>/dev/null |
        awk '/^ +[0-9]/ && n++ < 8'
      echo "## by symbol"
      perf report -i "$raw/$t.perf.$test.data" --stdio --no-children --sort dso,sym 2>/dev/null |
        awk '/^ +[0-9]/ && n++ < 25'
    } >"$raw/$t.perf.$test.txt"
    rm -f "$raw/$t.perf.$test.data"
    say "$t $test under perf: $(sed -n '2,5p' "$raw/$t.perf.$test.txt" | tr -s ' ' | tr '\n' ';')"
  done
}
if [ "$PROFILE" = 1 ]; then
  for t in "${tlist[@]}"; do
    [ "$t" != direct ] && [ "$t" != nginx ] && [ -z "${DEAD[$t]:-}" ] && alive "$t" &&
      profile_target "$t"
  done
fi

for t in "${tlist[@]}"; do
  if [[ "$t" == fulcrum-* ]] && [ -f "$tmp/$t-load.log" ] &&
     grep -qiE "level=(err|warn)|abort|assert" "$tmp/$t-load.log"; then
    cp "$tmp/$t-load.log" "$raw/$t.load.log"
    PROBLEMS+=("$t: its log has warnings/errors: $(grep -iE "level=(err|warn)|abort|assert" \
      "$tmp/$t-load.log" | head -3 | tr '\n' ' ')")
  fi
  if [ -z "${DEAD[$t]:-}" ] && ! alive "$t"; then died "$t" "the load runs"; fi
  stop_target "$t"
done

# ---------------------------------------------------------------- report
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain -- balancer common 2>/dev/null)" ] ||
  commit="$commit + uncommitted changes in balancer/ or common/"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine=nproc $(nproc), Linux $(uname -r), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo)"
  echo "versions=HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), nginx $(nginx -v 2>&1 | sed 's|.*nginx/||'), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'), fulcrum-balancer $("$BIN" --version 2>/dev/null | head -1 | awk '{print $NF}' || echo '?')"
  echo "commit=$commit"
  echo "command=$cmd"
  echo "settings=WORKERS=$WORKERS (fulcrum --workers, HAProxy nbthread, nginx worker_processes); wrk -t$THREADS -d${DUR}s; (a) $KA_CONNS conns, (b) $CLOSE_CONNS conns with Connection: close, (c) $BIG_CONNS conns, (d) $LAT_CONNS conns; repeats $REPEAT; HAProxy maxconn $HAPROXY_MAXCONN ($HAPROXY_IDLE_MAXCONN for (e))$([ "$HAPROXY_SPLICE" = 1 ] && echo ', option splice-auto'); fulcrum extra flags: ${FULCRUM_ARGS:-none}"
  echo "load=load average (1, 5, 15 min) $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "ka_conns=$KA_CONNS"
  echo "lat_conns=$LAT_CONNS"
  echo "idle_conns=$IDLE"
} >"$tmp/meta"
docarg=()
[ "$DOC" = - ] || docarg=(--doc "$DOC")
python3 "$here/report.py" "$raw" "$tmp/meta" "${docarg[@]}"
if [ "${#PROBLEMS[@]}" -gt 0 ]; then
  KEEP=1
  echo "bench/run.sh: problems seen:" >&2
  printf '  - %s\n' "${PROBLEMS[@]}" >&2
  exit 3
fi
