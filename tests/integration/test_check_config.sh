#!/usr/bin/env bash
# test_check_config.sh BUILD_DIR SOURCE_DIR - each real daemon's
# --check-config: the shipped example config passes (exit 0, "configuration
# OK") even with its ports in use, since nothing is bound; a bad config
# fails (exit 2) listing every problem by file, line and key.
set -uo pipefail
build=$1 src=$2
tmp=$(mktemp -d /tmp/fulcrum-checkcfg.XXXXXX)
holder=
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok: $*"; }
bad() { fails=$((fails + 1)); echo "FAIL: $*"; }

head -c 32 /dev/urandom > "$tmp/key" && chmod 600 "$tmp/key"
head -c 32 /dev/urandom > "$tmp/loose.key" && chmod 644 "$tmp/loose.key"

# A port held by another process: a check that bound would fail on it.
exec 3< <(exec python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(300)')
read -r -t 30 busy <&3 || { echo "FAIL: no port holder"; exit 1; }
holder=$!

# run NAME EXPECTED_RC ARGS... : output in $tmp/out, $tmp/err
run() {
  local name=$1 want=$2; shift 2
  local bin="$build/${name#fulcrum-}/$name"
  # FULCRUM_TEST_WRAPPER: words in front, as the C harness puts them
  # (tests/valgrind.sh: valgrind, whose errors make it exit 99)
  # shellcheck disable=SC2086
  ${FULCRUM_TEST_WRAPPER:-} "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    bad "$name $*: exit $rc, want $want"; sed 's/^/  | /' "$tmp/out" "$tmp/err"; return 1
  fi
  return 0
}
has() { # FILE TEXT WHAT
  if grep -qF -- "$2" "$1"; then ok "$3"; else bad "$3: no '$2' in:"; sed 's/^/  | /' "$1"; fi
}

# 1. The examples the package ships, with this host's key and port.
declare -A extra=(
  [agent]="--service 127.0.0.1:$busy"
  [monitor]="--status-file= --probe-listen 127.0.0.1:$busy"
  [balancer]="--listen 127.0.0.1:$busy --admin 127.0.0.1:$busy"
  [cache]="--listen 127.0.0.1:$busy --peer-listen 127.0.0.1:$busy"
)
for d in agent monitor balancer cache; do
  # shellcheck disable=SC2086
  if run "fulcrum-$d" 0 --config "$src/packaging/examples/$d.conf.example" --key "$tmp/key" \
         ${extra[$d]} --check-config; then
    has "$tmp/out" "fulcrum-$d: configuration OK" "fulcrum-$d example passes with port $busy in use"
  fi
done

# 2. A bad file for each: an unknown key, a value out of range, a bad
#    address, a key file others may read; each named by line and key.
printf 'name = a\nservice = 127.0.0.1:80\nbogus = 1\njitter-ms = 9000\ngroup = 1.2.3.4:x\nkey = %s\n' \
  "$tmp/loose.key" > "$tmp/agent.conf"
printf 'key = %s\nbogus = 1\ninterval = 0\nagent = 127.0.0.1:0\n' "$tmp/key" > "$tmp/monitor.conf"
printf 'listen = 127.0.0.1:1\nbogus = 1\npolicy = fastest\nnode = 10.0.0.1\nmaxconn = 0\n' \
  > "$tmp/balancer.conf"
printf 'listen = 127.0.0.1:1\nbogus = 1\norigin = ftp://x:1\ndocroot = /nonexistent\nmax-memory = lots\n' \
  > "$tmp/cache.conf"
declare -A want=(
  [agent]="agent.conf:3: bogus: unknown key|agent.conf:4: jitter-ms: 9000 is out of range|agent.conf:5: group: |agent.conf:6: key: |4 problems"
  [monitor]="monitor.conf:2: bogus: unknown key|monitor.conf:3: interval: 0 is out of range|monitor.conf:4: agent: |3 problems"
  [balancer]="balancer.conf:2: bogus: unknown key|balancer.conf:3: policy: 'fastest'|balancer.conf:4: node: |balancer.conf:5: maxconn: 0 is out of range|4 problems"
  [cache]="cache.conf:2: bogus: unknown key|cache.conf:3: origin: 'ftp://x:1' does not start with http://|cache.conf:4: docroot: /nonexistent: No such file|cache.conf:5: max-memory: 'lots' is not a size|5 problems"
)
for d in agent monitor balancer cache; do
  if run "fulcrum-$d" 2 --config "$tmp/$d.conf" --check-config; then
    IFS='|' read -ra lines <<< "${want[$d]}"
    for l in "${lines[@]}"; do has "$tmp/err" "$l" "fulcrum-$d names '$l'"; done
    if [ -s "$tmp/out" ]; then bad "fulcrum-$d printed on stdout for a bad config"; fi
  fi
done

# 3. What the daemons refuse at start, the check refuses too (each was
#    "configuration OK" once): the admin port's rules, a node given twice,
#    an agent's check path with a byte beyond ASCII, a directory or an indented setting
#    as the config file, the monitor's status file as "-".
lb=(--listen 127.0.0.1:0 --node 127.0.0.1:9)
printf 'tok3nt0ken5ecret\n' > "$tmp/loose.token" && chmod 644 "$tmp/loose.token"
while IFS='|' read -r d text args; do
  # shellcheck disable=SC2086  # the arguments are words
  if run "$d" 2 $args --check-config; then has "$tmp/err" "$text" "$d $args: '$text'"; fi
done <<EOF2
fulcrum-balancer|beyond loopback|${lb[*]} --admin 0.0.0.0:0
fulcrum-balancer|admin-token-file: admin token file /nonexistent|${lb[*]} --admin 127.0.0.1:0 --admin-token-file /nonexistent
fulcrum-balancer|lets group or others in|${lb[*]} --admin 127.0.0.1:0 --admin-token-file $tmp/loose.token
fulcrum-balancer|node: 127.0.0.1:9: given twice|${lb[*]} --node 127.0.0.1:9
fulcrum-agent|check-path: '/café'|--name a --service 127.0.0.1:9 --key $tmp/key --check http --check-path /café
fulcrum-balancer|$tmp: Is a directory|${lb[*]} --config $tmp
fulcrum-monitor|status-file: '-' is not a file|--key $tmp/key --status-file -
EOF2
printf 'log-level = info\n    maxconn = 5\n' > "$tmp/indented.conf"
if run fulcrum-balancer 2 "${lb[@]}" --config "$tmp/indented.conf" --check-config; then
  has "$tmp/err" "indented.conf:2: an indented line" "fulcrum-balancer: an indented setting"
fi
if run fulcrum-balancer 0 "${lb[@]}" --log-file /dev/null --check-config; then
  ok "fulcrum-balancer --log-file /dev/null passes the check (log_open takes it)"
fi

# 4. Without --check-config a bad file still stops at its first error.
if run fulcrum-agent 2 --config "$tmp/agent.conf"; then
  has "$tmp/err" "agent.conf:3: bogus: unknown key" "fulcrum-agent without --check-config: first error"
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
