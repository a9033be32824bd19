#!/usr/bin/env bash
# test_package.sh BUILD_DIR SOURCE_DIR - the `fulcrum` .deb: cpack builds it
# from BUILD_DIR (daemons and man pages already built), dpkg-deb shows the
# files, conffiles and Depends we mean to ship, the binaries run from a
# dpkg -x root, and systemd-analyze verify passes the packaged units and the
# ansible roles' units rendered with example values (skipped, saying so,
# where systemd-analyze cannot run). Exit 77: help2man or dpkg missing.
# shellcheck disable=SC2015  # ok and bad always succeed: A && ok || bad is safe
set -uo pipefail
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/fulcrum-pkg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); echo "ok: $*"; }
bad() { fails=$((fails + 1)); echo "FAIL: $*"; }
daemons="fulcrum-agent fulcrum-monitor fulcrum-balancer fulcrum-cache"

for t in dpkg-deb dpkg-shlibdeps cpack; do
  command -v "$t" >/dev/null || { echo "SKIP: $t not installed"; exit 77; }
done
[ -f "$build/man/fulcrum-agent.8.gz" ] || { echo "SKIP: no man pages (help2man missing?)"; exit 77; }

# 1. Build the package.
if ! (cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1); then
  bad "cpack failed"; cat "$tmp/cpack.log"; echo "$passes passed, $fails failed"; exit 1
fi
deb=$(find "$tmp/out" -maxdepth 1 -name 'fulcrum_*_amd64.deb' | head -1)
[ -n "$deb" ] && ok "cpack made $(basename "$deb")" || { bad "no .deb in $tmp/out"; exit 1; }

# 2. Its files.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$tmp/files"
want=()
for d in $daemons; do
  want+=("/usr/bin/$d" "/usr/share/man/man8/$d.8.gz" "/usr/lib/systemd/system/$d.service")
done
want+=(/usr/bin/fulcrumctl /usr/share/man/man8/fulcrumctl.8.gz)
for d in agent monitor balancer cache; do want+=("/etc/fulcrum/$d.conf.example"); done
for f in "${want[@]}"; do
  grep -qx "$f" "$tmp/files" && ok "ships $f" || bad "does not ship $f"
done
if grep -q '^/usr/local\|^/usr/include\|\.a$' "$tmp/files"; then bad "ships build leftovers"; fi

# 3. Its control data: name, Depends from shlibdeps, conffiles.
[ "$(dpkg-deb -f "$deb" Package)" = fulcrum ] && ok "Package: fulcrum" || bad "Package is not fulcrum"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libev4 libsodium23 libstatgrab10 libcjson1 libinih1 libhttp-parser2.9; do
  grep -q "\b$lib\b" <<< "$depends" && ok "Depends on $lib" || bad "Depends lacks $lib: $depends"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$tmp/conffiles" 2>/dev/null
for d in agent monitor balancer cache; do
  grep -qx "/etc/fulcrum/$d.conf.example" "$tmp/conffiles" && ok "conffile $d.conf.example" ||
    bad "$d.conf.example is not a conffile"
done

# 4. The binaries and man pages as installed.
dpkg -x "$deb" "$tmp/root"
v=$("$tmp/root/usr/bin/fulcrum-balancer" --version 2>&1)
[[ "$v" == "fulcrum-balancer "* ]] && ok "dpkg -x root: $v" || bad "fulcrum-balancer --version: $v"
v=$("$tmp/root/usr/bin/fulcrumctl" --version 2>&1)
[[ "$v" == "fulcrumctl "* ]] && ok "dpkg -x root: $v" || bad "fulcrumctl --version: $v"
if zcat "$tmp/root/usr/share/man/man8/fulcrumctl.8.gz" | grep -q -- 'token\\-file'; then
  ok "fulcrumctl.8 has --token-file"
else
  bad "fulcrumctl.8 lacks --token-file"
fi
for d in $daemons; do
  if zcat "$tmp/root/usr/share/man/man8/$d.8.gz" | grep -q '^\.SH SIGNALS' &&
     zcat "$tmp/root/usr/share/man/man8/$d.8.gz" | grep -q -- 'check\\-config'; then
    ok "$d.8 has SIGNALS and --check-config"
  else
    bad "$d.8 lacks SIGNALS or --check-config"
  fi
done

# 5. systemd-analyze verify: the packaged units (pointed at the unpacked
#    binaries, man pages looked up in the package), then the roles' units.
#    verify exits 0 on an unknown key: any output is a failure.
verify() { # DIR WHAT
  local out rc=0
  out=$(cd "$1" && MANPATH="$tmp/root/usr/share/man" SYSTEMD_LOG_COLOR=0 \
        systemd-analyze verify "$1"/*.service 2>&1) || rc=$?
  if [ "$rc" -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: $2"; else bad "$2:"; echo "$out"; fi
}
mkdir -p "$tmp/probe"
printf '[Service]\nExecStart=/bin/true\n' > "$tmp/probe/probe.service"
if ! command -v systemd-analyze >/dev/null; then
  echo "SKIP: systemd-analyze not installed: units not verified"
elif ! (cd "$tmp/probe" && systemd-analyze verify --man=no probe.service >/dev/null 2>&1); then
  echo "SKIP: systemd-analyze verify cannot run here: units not verified"
else
  mkdir -p "$tmp/units"
  for u in "$tmp"/root/usr/lib/systemd/system/*.service; do
    sed "s|/usr/bin/fulcrum|$tmp/root/usr/bin/fulcrum|g" "$u" > "$tmp/units/$(basename "$u")"
  done
  verify "$tmp/units" "packaged units"
  for u in "$tmp"/units/*.service; do
    n=$(basename "$u" .service)
    grep -q '^DynamicUser=yes' "$u" && grep -q '^ProtectSystem=strict' "$u" &&
      grep -q '^NoNewPrivileges=yes' "$u" && ok "$n is sandboxed" || bad "$n is not sandboxed"
    caps=$(sed -n 's/^AmbientCapabilities=//p' "$u")
    want_caps=; [ "$n" = fulcrum-balancer ] && want_caps=CAP_NET_BIND_SERVICE
    [ "$caps" = "$want_caps" ] && ok "$n capabilities: '${caps}'" || bad "$n capabilities '$caps'"
  done
  if /usr/bin/python3 -c 'import jinja2, yaml' 2>/dev/null; then
    /usr/bin/python3 "$src/tests/packaging/render_units.py" "$src/ansible/roles" \
      "$tmp/root/usr/bin" "$tmp/rendered" && ok "ansible units rendered" || bad "rendering failed"
    for v in "$tmp"/rendered/*/; do verify "${v%/}" "ansible units ($(basename "$v"))"; done
  else
    echo "SKIP: python3-jinja2 or python3-yaml missing: ansible units not verified"
  fi
fi

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
