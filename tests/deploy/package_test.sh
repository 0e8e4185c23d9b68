#!/usr/bin/env bash
# The Debian package builds from the build tree and holds what it must: the
# five binaries and their man pages, the shim and provision-criu, both units (which pass
# `systemd-analyze verify`), the tmpfiles.d entry, the default configs as
# conffiles, the maintainer scripts, and Depends on runc, conmon and the
# libraries the binaries link.
#
#   tests/deploy/package_test.sh BUILD_DIR
#
# Runs cpack into a directory of its own (BUILD_DIR/package-test), so it needs
# the binaries built (ctest runs after the build).
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
out=$build/package-test
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail() { echo "package_test: FAIL: $*" >&2; exit 1; }

version=$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$version" ] || fail "no version in project(ferry VERSION ...)"
rm -rf "$out"
(cd "$build" && cpack -G DEB -B "$out" >"$stage/cpack.log" 2>&1) || { cat "$stage/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$out/ferry_${version}-1_amd64.deb
[ -f "$deb" ] || fail "no $deb (cpack wrote: $(ls "$out"))"

contents=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
has() {  # MODE-PREFIX PATH
  grep -qE "^$1[^ ]* \./${2#/}\$" <<<"$contents" || fail "$deb lacks $2 (mode $1...)"
}
for b in ferry ferry-agent ferry-coordinator ferry-engine ferry-inspect; do has -rwxr-xr-x /usr/bin/$b; done
for m in man1/ferry.1 man8/ferry-agent.8 man8/ferry-coordinator.8 man8/ferry-engine.8 man1/ferry-inspect.1; do
  has -rw-r--r-- /usr/share/man/$m.gz
done
has -rwxr-xr-x /usr/lib/ferry/provision-criu
has -rw-r--r-- /usr/lib/ferry/sockopt-shim.so
has -rw-r--r-- /lib/systemd/system/ferry-agent.service
has -rw-r--r-- /lib/systemd/system/ferry-coordinator.service
has -rw-r--r-- /usr/lib/tmpfiles.d/ferry.conf
has -rw-r--r-- /etc/ferry/agent.conf
has -rw-r--r-- /etc/ferry/coordinator.conf

ctl=$stage/control
dpkg-deb -e "$deb" "$ctl"
diff <(sort "$ctl/conffiles") <(printf '/etc/ferry/agent.conf\n/etc/ferry/coordinator.conf\n') \
  || fail "conffiles are not exactly agent.conf and coordinator.conf"
for s in postinst prerm postrm; do
  [ -x "$ctl/$s" ] || fail "no executable $s"
  sh -n "$ctl/$s" || fail "$s is not valid sh"
done
grep -q provision-criu "$ctl/postinst" || fail "postinst does not provision CRIU"
[ "$(dpkg-deb -f "$deb" Package)_$(dpkg-deb -f "$deb" Version)" = "ferry_${version}-1" ] \
  || fail "Package/Version are $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
depends=$(dpkg-deb -f "$deb" Depends)
for d in runc conmon nftables iptables libzmq5 libcapnp- libsystemd0; do
  grep -q "\b$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done

# The units as installed, checked by systemd against the host's own units.
dpkg-deb -x "$deb" "$stage/root"
cp -an /lib/systemd/system/. "$stage/root/lib/systemd/system/"
# verify exits 0 on a line it ignores ("Failed to parse kill mode ..."), so any
# word from it fails the test.
# --man=no: verify looks man pages up on this machine, not in the root; the
# pages the units name are checked above (has /usr/share/man/man8/...).
if ! said=$(systemd-analyze verify --man=no --root="$stage/root" /lib/systemd/system/ferry-agent.service \
  /lib/systemd/system/ferry-coordinator.service 2>&1) || [ -n "$said" ]; then
  fail "systemd-analyze verify: $said"
fi
for u in ferry-agent ferry-coordinator; do
  f=$stage/root/lib/systemd/system/$u.service
  grep -qx 'Type=notify' "$f" && grep -qx 'WatchdogSec=30s' "$f" && grep -qx 'Restart=on-failure' "$f" \
    && grep -qx "ExecStart=/usr/bin/$u --config /etc/ferry/${u#ferry-}.conf" "$f" \
    || fail "$u.service lacks Type=notify, WatchdogSec=30s, Restart=on-failure or its ExecStart"
done
grep -qx 'KillMode=process' "$stage/root/lib/systemd/system/ferry-agent.service" \
  || fail "ferry-agent.service must keep its containers (KillMode=process)"
# The pages say what the programs' --help says: ferry(1) has every command
# with its options, the daemons' pages their options.
# (Each page read whole first: grep -q ending a pipe early fails it under pipefail.)
ferry_page=$(zcat "$stage/root/usr/share/man/man1/ferry.1.gz")
agent_page=$(zcat "$stage/root/usr/share/man/man8/ferry-agent.8.gz")
coordinator_page=$(zcat "$stage/root/usr/share/man/man8/ferry-coordinator.8.gz")
grep -q '^\.SS "ferry migrate"' <<<"$ferry_page" || fail "ferry(1) has no section for ferry migrate"
grep -q -- '--postcopy' <<<"$ferry_page" || fail "ferry(1) lacks ferry migrate's --postcopy"
grep -q '^\.SS "ferry cluster up"' <<<"$ferry_page" || fail "ferry(1) lacks the nested command ferry cluster up"
grep -q 'fB\\-\\-drain\\-on\\-stop' <<<"$agent_page" || fail "ferry-agent(8) lacks --drain-on-stop"
grep -q 'fB\\-\\-history\\-keep' <<<"$coordinator_page" || fail "ferry-coordinator(8) lacks --history-keep"
for u in ferry-agent ferry-coordinator; do
  grep -q "^Documentation=man:$u(8)" "$stage/root/lib/systemd/system/$u.service" \
    || fail "$u.service does not name its man page"
done
file "$stage/root/usr/lib/ferry/sockopt-shim.so" | grep -q 'shared object' || fail "the shim is no shared object"
echo "package_test: $deb ($(du -h "$deb" | cut -f1)) holds what it must"
rm -rf "$out"
