#!/usr/bin/env bash
# Runs ansible/site.yml for real against this machine: four "hosts" in the
# inventory (cache-a, cache-b, cache-c in cache_nodes, lb-1 in balancers),
# all ansible_connection=local, told apart by their names, their ports
# (286xx) and their install roots under a temporary directory. The cache
# nodes get the binaries this build made; lb-1 builds its own from the
# source tree (fulcrum_install=source). systemd is not PID 1 here, so the
# daemons run under fulcrum-service. Then it checks:
#   - --syntax-check, and --check --diff on the new hosts
#   - the balancer's /status.json lists the three agents, up
#   - HTTP through the balancer is served by the cache nodes (X-Cache),
#     and a repeated request is a HIT
#   - a second run changes nothing (changed=0) and restarts nothing
#   - a changed cache setting run on one host (--limit) restarts that
#     cache node and nothing else
#   - a changed balancer setting reloads the balancer (SIGUSR2 through
#     fulcrum-service reload): a new process named in the pid file, the
#     handover in its log, nothing else restarted; the same at log-level
#     warn, where fulcrum-service waits for the old process's exit
#   - an agent killed with SIGKILL is "not running" for fulcrum-service,
#     and start brings it back
#   - the cluster key never appears in ansible's output
#   - the systemd units render and pass systemd-analyze verify
#   - ansible-lint (production profile) and yamllint are clean
# Everything it starts is stopped and the directory removed, even on failure.
#
# Usage: test_ansible.sh AGENT CACHE BALANCER MONITOR  (the built binaries)
# FULCRUM_TEST_KEEP=1 keeps the directory (daemons stopped) to look at.
# Needs root (it creates the service user fulcrumtest and removes it).
set -euo pipefail

if [ $# -ne 4 ]; then
    echo "usage: $0 FULCRUM-AGENT FULCRUM-CACHE FULCRUM-BALANCER FULCRUM-MONITOR" >&2
    exit 2
fi
bins=("$@")
src=$(cd "$(dirname "$0")/../.." && pwd)
py=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
    echo "test_ansible: SKIP: needs root (creates a service user, chowns files)"
    exit 77
fi
for tool in ansible-playbook ansible-lint yamllint start-stop-daemon setpriv "$py"; do
    if ! command -v "$tool" >/dev/null; then
        echo "test_ansible: $tool not found: run scripts/deps.sh test" >&2
        exit 1
    fi
done

user=fulcrumtest
origin_port=28680
lb_port=28685
admin_port=28686
cache_ports=(28681 28682 28683)
peer_ports=(28691 28692 28693)
group=239.255.86.86:28699
nodes=(cache-a cache-b cache-c)
hosts=("${nodes[@]}" lb-1)
ports=("$origin_port" "$lb_port" "$admin_port" "${cache_ports[@]}" "${peer_ports[@]}")

step() { echo "== $(date +%T) $*"; }
fail() {
    echo "test_ansible: FAIL: $*" >&2
    exit 1
}

T=$(mktemp -d /tmp/fulcrum-ansible.XXXXXX)
chmod 755 "$T" # the service user runs the binaries installed below it
origin_pid=

cleanup() {
    local rc=$? h svc pf pid
    set +e
    trap - EXIT INT TERM
    if [ $rc -ne 0 ]; then
        echo "---- logs (test failed, rc=$rc)"
        for f in "$T"/*/var/log/fulcrum/*; do
            [ -s "$f" ] && {
                echo "--- $f"
                tail -n 25 "$f"
            }
        done
    fi
    for h in "${hosts[@]}"; do
        for svc in agent cache balancer; do
            [ -x "$T/$h/usr/local/sbin/fulcrum-service" ] &&
                FULCRUM_SERVICE_STOP_TIMEOUT=10 "$T/$h/usr/local/sbin/fulcrum-service" stop "$svc" >/dev/null
        done
    done
    for pf in "$T"/*/run/fulcrum/*.pid; do # anything fulcrum-service could not stop
        [ -f "$pf" ] || continue
        pid=$(cat "$pf")
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    done
    # and a daemon no pid file names (a reload's new process, when the
    # reload step failed): whatever runs a binary from under $T
    pkill -KILL -f "^$T/" 2>/dev/null
    [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null && wait "$origin_pid" 2>/dev/null
    userdel "$user" 2>/dev/null
    groupdel "$user" 2>/dev/null
    if [ -n "${FULCRUM_TEST_KEEP:-}" ]; then
        echo "test_ansible: kept $T (FULCRUM_TEST_KEEP)"
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "test_ansible: FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

# Earlier runs killed hard may have left daemons on our ports.
for p in "${ports[@]}"; do
    if ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
        fail "port $p is in use (a daemon left by an earlier run? see ss -ltnp)"
    fi
done

# Binaries as an operator would ship them: cmake --install's bin/.
mkdir -p "$T/dist/bin" "$T/www" "$T/play"
cp "${bins[@]}" "$T/dist/bin/"
echo "hello from the ansible test origin" >"$T/www/index.html"
# The playbook as shipped, without any local group_vars or inventories.
cp -r "$src/ansible/site.yml" "$src/ansible/ansible.cfg" "$src/ansible/roles" "$T/play/"
# lb-1 builds a copy of the source tree, as an operator would ship it to a
# host (and edits made to the tree while the test runs do not reach it).
mkdir "$T/src"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./run -cf - . | tar -C "$T/src" -xf -
key=$(head -c 48 /dev/urandom | base64 -w0)

inv="$T/inventory.yml"
{
    cat <<EOF
---
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: $py
    fulcrum_user: $user
    fulcrum_group: $user
    fulcrum_install: binaries
    fulcrum_binaries_dir: $T/dist/bin
    fulcrum_install_packages: false
    fulcrum_cluster_key: "$key"
    fulcrum_mcast_group: "$group"
    fulcrum_advertise_ip: 127.0.0.1
    fulcrum_mcast_if: 127.0.0.1
    fulcrum_interval: 1
    fulcrum_ctl_timeout: 60
  children:
    cache_nodes:
      vars:
        fulcrum_cache_origin: http://127.0.0.1:$origin_port
        fulcrum_cache_bind: 127.0.0.1
        fulcrum_cache_max_memory: 16M
      hosts:
EOF
    for i in 0 1 2; do
        cat <<EOF
        ${nodes[$i]}:
          fulcrum_root: $T/${nodes[$i]}
          fulcrum_cache_port: ${cache_ports[$i]}
          fulcrum_cache_peer_port: ${peer_ports[$i]}
EOF
    done
    cat <<EOF
    balancers:
      hosts:
        lb-1:
          fulcrum_root: $T/lb-1
          fulcrum_install: source
          fulcrum_src_dir: $T/src
          fulcrum_build_dir: $T/lb-1/build
          fulcrum_balancer_listen: 127.0.0.1:$lb_port
          fulcrum_balancer_admin: 127.0.0.1:$admin_port
          fulcrum_balancer_workers: 2
          fulcrum_balancer_log_conns: false
EOF
} >"$inv"

run=0
# The whole test ends within budget seconds, before ctest's TIMEOUT (2700 s)
# would kill it without cleaning up. (On an idle machine it takes minutes; a
# machine busy with other work makes every ansible task slow.)
budget_end=$(($(date +%s) + 2400))
left() {
    local n=$((budget_end - $(date +%s)))
    [ $n -gt 0 ] || fail "out of time"
    echo $n
}
# play [ARGS...]: runs the playbook, its output in $T/run-N.log
play() {
    run=$((run + 1))
    out="$T/run-$run.log"
    (cd "$T/play" && timeout "$(left)" ansible-playbook -i "$inv" site.yml "$@") >"$out" 2>&1 || {
        grep -A8 -E '^(fatal|failed):' "$out" >&2 || tail -n 30 "$out" >&2 || true
        sed -n '/^PLAY RECAP/,$p' "$out" >&2 || true
        fail "ansible-playbook $* failed (run $run)"
    }
    sed -n '/^PLAY RECAP/,$p' "$out"
}
# recap_sum FIELD: sum of FIELD=N over the hosts of the last run's recap
recap_sum() {
    sed -n '/^PLAY RECAP/,$p' "$out" | grep -o " $1=[0-9]*" | awk -F= '{ n += $2 } END { print n + 0 }'
}
# changed_tasks: the tasks and handlers that changed something in the last run
changed_tasks() {
    awk '/^(TASK|RUNNING HANDLER) \[/ { t = $0 } /^changed:/ { print t; print }' "$out"
}
# pids: every daemon's pid file and pid, one per line
pids() { for f in "$T"/*/run/fulcrum/*.pid; do echo "$f $(cat "$f")"; done; }
# pid_of HOST SERVICE
pid_of() { cat "$T/$1/run/fulcrum/fulcrum-$2.pid"; }

# wait_cluster: until /status.json lists the three agents, up (60 s at most)
wait_cluster() {
    "$py" - "$admin_port" "${nodes[@]}" <<'EOF' || fail "the balancer never saw every agent up"
import json, sys, time, urllib.request
port, names = sys.argv[1], set(sys.argv[2:])
deadline, last = time.monotonic() + 60, None
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
            last = json.load(r)
        up = {n["name"] for n in last["nodes"] if n["state"] == "up" and n["source"] == "agent"}
        if names <= up:
            print("status.json: up", sorted(up), "round", last["round"])
            sys.exit(0)
    except OSError as e:
        last = str(e)
    time.sleep(0.2)
print("last status.json:", json.dumps(last)[:2000], file=sys.stderr)
sys.exit(1)
EOF
}

step "ansible-playbook --syntax-check"
(cd "$T/play" && ansible-playbook -i "$inv" site.yml --syntax-check) >/dev/null ||
    fail "syntax check"

step "--check --diff on the new hosts"
play --check --diff
[ "$(recap_sum failed)" -eq 0 ] || fail "check mode failed"
[ -e "$T/cache-a/etc/fulcrum" ] && fail "check mode wrote files"

step "origin on 127.0.0.1:$origin_port"
"$py" -m http.server --bind 127.0.0.1 --directory "$T/www" "$origin_port" \
    >"$T/origin.log" 2>&1 &
origin_pid=$!

step "deploy (cache nodes: binaries; lb-1: built from source)"
t0=$(date +%s)
play
echo "first run: $(($(date +%s) - t0)) s"
if [ "$(recap_sum failed)" -ne 0 ] || [ "$(recap_sum unreachable)" -ne 0 ]; then
    fail "first run"
fi
for h in "${hosts[@]}"; do
    [ "$(stat -c '%a %U' "$T/$h/etc/fulcrum/cluster.key")" = "600 $user" ] ||
        fail "$h: cluster.key is not mode 600 owned by $user"
done
peers=$(grep '^peer = ' "$T/cache-a/etc/fulcrum/cache.conf" | tr '\n' ' ')
[ "$peers" = "peer = 127.0.0.1:${peer_ports[1]} peer = 127.0.0.1:${peer_ports[2]} " ] ||
    fail "cache-a's peers are not cache-b and cache-c: $peers"
for h in "${hosts[@]}"; do
    for pf in "$T/$h"/run/fulcrum/*.pid; do
        [ "$(stat -c %U "/proc/$(cat "$pf")")" = "$user" ] || fail "$pf: not running as $user"
    done
done

step "the balancer's monitor sees every agent"
wait_cluster

step "HTTP through the balancer"
"$py" - "$lb_port" "${nodes[@]}" <<'EOF' || fail "HTTP through the balancer"
import http.client, re, sys
port, names = int(sys.argv[1]), set(sys.argv[2:])
seen = []
for i in range(12):  # a new connection each time: the balancer picks a node per connection
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/index.html")
    r = c.getresponse()
    body = r.read()
    c.close()
    xc = r.getheader("X-Cache") or ""
    m = re.fullmatch(r"(HIT|MISS|STALE|REVALIDATED) from (\S+)", xc)
    if r.status != 200 or body != b"hello from the ansible test origin\n" or not m \
            or m.group(2) not in names:
        sys.exit(f"request {i}: {r.status} X-Cache={xc!r} body={body[:80]!r}")
    seen.append(xc)
print("X-Cache:", ", ".join(seen))
if not any(x.startswith("HIT") for x in seen):
    sys.exit("no request was a HIT")
EOF

step "second run: nothing to change"
before=$(pids)
play
[ "$(recap_sum changed)" -eq 0 ] || fail "second run changed something: $(changed_tasks)"
[ "$(recap_sum failed)" -eq 0 ] || fail "second run failed"
[ "$(pids)" = "$before" ] || fail "second run restarted a daemon: $(diff <(echo "$before") <(pids))"

# One host of each kind: the three cache nodes run the same tasks.
step "--check --diff on deployed hosts (cache-a, lb-1): nothing to change"
play --check --diff --limit cache-a,lb-1
[ "$(recap_sum changed)" -eq 0 ] || fail "check mode reports changes on deployed hosts"

step "a changed cache setting, one host (--limit): restarts its cache, only that"
cache_before=$(pid_of cache-a cache)
before=$(pids)
play -e fulcrum_cache_default_ttl=61 --limit cache-a
grep -q '^default-ttl = 61$' "$T/cache-a/etc/fulcrum/cache.conf" || fail "config not rewritten"
[ "$(pid_of cache-a cache)" != "$cache_before" ] || fail "cache-a's cache was not restarted"
restarted=$(diff <(echo "$before") <(pids) | sed -n 's/^> \([^ ]*\) .*/\1/p' || true)
[ "$restarted" = "$T/cache-a/run/fulcrum/fulcrum-cache.pid" ] ||
    fail "restarted: $restarted (only cache-a's cache should have been)"
wait_cluster

step "a changed balancer setting (--limit lb-1): the balancer reloads, nothing restarts"
lb_before=$(pid_of lb-1 balancer)
before=$(pids)
play -e fulcrum_balancer_grace=11 --limit lb-1
grep -q '^grace = 11$' "$T/lb-1/etc/fulcrum/balancer.conf" || fail "balancer.conf not rewritten"
lb_after=$(pid_of lb-1 balancer)
[ "$lb_after" != "$lb_before" ] || fail "the pid file still names the old balancer $lb_before"
kill -0 "$lb_after" 2>/dev/null || fail "the pid file names $lb_after, which is not running"
grep -q "reload: new process $lb_after is ready" "$T/lb-1/var/log/fulcrum/fulcrum-balancer.log" ||
    fail "no handover to $lb_after in the balancer's log"
changed=$(diff <(echo "$before") <(pids) | sed -n 's/^> \([^ ]*\) .*/\1/p' || true)
[ "$changed" = "$T/lb-1/run/fulcrum/fulcrum-balancer.pid" ] ||
    fail "pid files changed: $changed (only the balancer's should have)"
"$T/lb-1/usr/local/sbin/fulcrum-service" status balancer | grep -q "running (pid $lb_after)" ||
    fail "fulcrum-service status does not follow the reload"
wait_cluster

step "the same below log-level info: fulcrum-service reload follows the old process's exit"
lb_before=$(pid_of lb-1 balancer)
play -e fulcrum_log_level=warn --limit lb-1
grep -q '^log-level = warn$' "$T/lb-1/etc/fulcrum/balancer.conf" || fail "balancer.conf not rewritten"
lb_after=$(pid_of lb-1 balancer)
[ "$lb_after" != "$lb_before" ] || fail "the pid file still names the old balancer $lb_before"
kill -0 "$lb_after" 2>/dev/null || fail "the pid file names $lb_after, which is not running"
# gone, or a zombie where PID 1 does not reap what it adopted
state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$lb_before/stat" 2>/dev/null || true)
[ -z "$state" ] || [ "$state" = Z ] || fail "the old balancer $lb_before still runs ($state)"
wait_cluster

step "an agent killed (SIGKILL): fulcrum-service says it is not running, and start brings it back"
svc_c="$T/cache-c/usr/local/sbin/fulcrum-service"
agent_before=$(pid_of cache-c agent)
kill -KILL "$agent_before"
for _ in $(seq 50); do
    "$svc_c" status agent >/dev/null 2>&1 || break
    sleep 0.1
done
rc=0
"$svc_c" status agent >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "status of a killed agent: exit $rc, want 3 (not running)"
"$svc_c" start agent | grep -q ': started' || fail "start did not bring the killed agent back"
[ "$(pid_of cache-c agent)" != "$agent_before" ] || fail "the pid file still names the killed agent"
wait_cluster

step "the key stays out of ansible's output"
if grep -lF "$key" "$T"/run-*.log; then fail "the cluster key appears in the output above"; fi

step "systemd units render and verify"
cat >"$T/play/units.yml" <<'EOF'
---
- name: Render the units as the roles do, on unprivileged ports and on port 80
  hosts: all
  gather_facts: false
  vars_files:
    - roles/common/defaults/main.yml
    - roles/agent/defaults/main.yml
    - roles/cache/defaults/main.yml
    - roles/balancer/defaults/main.yml
  tasks:
    - name: Render
      ansible.builtin.template:
        src: "roles/{{ item.1 }}/templates/fulcrum-{{ item.1 }}.service.j2"
        dest: "{{ units }}/{{ item.0 }}/fulcrum-{{ item.1 }}.service"
        mode: "0644"
      vars:
        fulcrum_cache_port: "{{ item.0 }}"
        fulcrum_balancer_listen: "0.0.0.0:{{ item.0 }}"
      loop: "{{ [8080, 80] | product(['agent', 'cache', 'balancer']) | list }}"
EOF
mkdir -p "$T/units/8080" "$T/units/80"
(cd "$T/play" && timeout "$(left)" ansible-playbook -i localhost, -c local units.yml \
    -e "ansible_python_interpreter=$py units=$T/units fulcrum_root=$T/lb-1" \
    -e "fulcrum_user=$user fulcrum_group=$user fulcrum_advertise_ip=127.0.0.1") \
    >"$T/units.log" 2>&1 || {
    cat "$T/units.log"
    fail "rendering the units"
}
grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE$' "$T/units/80/fulcrum-balancer.service" ||
    fail "port 80 balancer unit lacks CAP_NET_BIND_SERVICE"
grep -q '^AmbientCapabilities=$' "$T/units/8080/fulcrum-balancer.service" ||
    fail "port 8080 balancer unit has capabilities"
grep -q '^AmbientCapabilities=$' "$T/units/80/fulcrum-agent.service" ||
    fail "the agent unit has capabilities"
if command -v systemd-analyze >/dev/null; then
    for u in "$T"/units/*/*.service; do
        msg=$(systemd-analyze verify "$u" 2>&1) || fail "systemd-analyze verify $u: $msg"
        [ -z "$msg" ] || fail "systemd-analyze verify $u: $msg"
    done
    echo "systemd-analyze verify: $(find "$T/units" -name '*.service' | wc -l) units clean"
else
    echo "systemd-analyze not installed: units rendered, not verified"
fi

step "ansible-lint (production profile) and yamllint"
(cd "$src/ansible" && ansible-lint --nocolor --profile production 2>&1) >"$T/lint.log" || {
    cat "$T/lint.log"
    fail "ansible-lint"
}
tail -n 1 "$T/lint.log"
(cd "$src/ansible" && yamllint --strict .) || fail "yamllint"
echo "yamllint: clean"

step "PASS"
