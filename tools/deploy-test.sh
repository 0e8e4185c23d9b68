#!/usr/bin/env bash
# The deployment test: ansible/site.yml installs the ferry package into three
# booted Debian machines and the cluster they form works.
#
#   tools/deploy-test.sh [--build-dir DIR]
#
# * builds the .deb (cpack) from the build tree, and a Debian bookworm root
#   with mmdebstrap (cached in /var/cache/ferry/deploy-test, keyed by its
#   package list);
# * boots three copies with `systemd-nspawn -b` (no systemd on this host is
#   needed: --register=no --keep-unit, each from a cgroup of its own, the
#   machines on the unified cgroup hierarchy) on a private bridge ferrydt0,
#   10.231.0.0/24, routed only to that bridge: no address outside it, no NAT,
#   no default route in the machines -- nothing leaves this machine, and the
#   machines install offline;
# * runs site.yml against them over `community.docker.nsenter` (no ssh): the
#   coordinator on m1, agents on m1, m2, m3 (hostA, hostB, hostC);
# * checks: both units active and never restarted (READY=1 and the watchdog
#   work), the three agents registered (`ferry hosts --json` with the client
#   key), metrics served (when ferry-agent has --metrics), a second run of
#   site.yml reports changed=0, `systemctl restart ferry-agent` leaves a
#   running container running (same pid, its counter going on), and a live
#   migration of that container from hostB to hostC: the counter goes on
#   there, in a cgroup namespace of its own with its own cgroup2 at
#   /sys/fs/cgroup (what lets CRIU dump and restore it on a cgroup-v2 systemd
#   host, tests/deploy/PROBE.md). A failed migration fails the test, after it
#   checked the rollback (the container running on hostB) and printed CRIU's
#   reason; FERRY_DEPLOY_REQUIRE_MIGRATION=0 accepts such a rollback.
#
# Always cleans up, on failure too: machines stopped and killed, their
# cgroups, the bridge and the temp dir removed. Needs root, mmdebstrap,
# systemd-container, ansible and a working CRIU (/etc/ferry/criu-path).
# Exit status: 0 passed; 1 failed; 77 cannot run here (the reason is printed;
# under CI=true that is a failure: 1).
set -euo pipefail
build=
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$(cd "$2" && pwd); shift ;;
    -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy-test: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
cd "$(dirname "$0")/.."
src=$PWD
build=${build:-$src/build}

t0=$SECONDS
say() { printf 'deploy-test [%3ds]: %s\n' "$((SECONDS - t0))" "$*"; }
booted=0
fail() {
  printf 'deploy-test: FAIL: %s\n' "$*" >&2
  [ "$booted" = 1 ] && diagnose >&2
  exit 1
}
# What the machines' daemons said, for a failure's report.
diagnose() {
  local m
  set +e
  for m in m1 m2 m3; do
    echo "---- $m: systemctl --failed; journal of ferry-coordinator and ferry-agent (last 25 lines)"
    in_m "$m" systemctl --failed --no-pager --no-legend
    in_m "$m" journalctl --no-pager -n 25 -o short-monotonic -u ferry-coordinator -u ferry-agent
  done
  echo "---- ferry hosts"
  ferry hosts
}
cannot() {
  printf 'deploy-test: cannot run on this machine: %s\n' "$*" >&2
  [ "${CI:-}" = true ] && exit 1
  exit 77
}

# ---- what it needs -------------------------------------------------------
[ "$(id -u)" = 0 ] || cannot "needs root (machines, bridge, cgroups)"
for tool in mmdebstrap systemd-nspawn ansible-playbook nsenter cpack dpkg-deb python3; do
  command -v "$tool" >/dev/null || cannot "no $tool (tools/install-deps.sh installs it)"
done
ansible-doc -t connection community.docker.nsenter >/dev/null 2>&1 \
  || cannot "ansible lacks the community.docker collection (its nsenter connection)"
[ -d /sys/fs/cgroup/unified ] || [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] \
  || cannot "no cgroup2 hierarchy (nspawn's machines run on it)"
criu=$(cat /etc/ferry/criu-path 2>/dev/null || true)
[ -n "$criu" ] && [ -x "$criu" ] || cannot "no working CRIU recorded in /etc/ferry/criu-path (tools/install-deps.sh)"
for b in tools/ferry agent/ferry-agent coordinator/ferry-coordinator tools/ferry-engine; do
  [ -x "$build/$b" ] || cannot "no $build/$b: build first (cmake --build $build)"
done
image=$build/tests/counter-image.tar.zst
[ -f "$image" ] || cannot "no $image (cmake --build $build --target test_image)"
[ -f "$build/sockopt-shim.so" ] || cannot "no $build/sockopt-shim.so (cmake --build $build)"

# cgroup paths: the unified hierarchy is /sys/fs/cgroup/unified on a hybrid
# host, /sys/fs/cgroup itself on a pure v2 one (then there is no name=systemd).
if [ -d /sys/fs/cgroup/unified ]; then
  cg_unified=/sys/fs/cgroup/unified cg_systemd=/sys/fs/cgroup/systemd
else
  cg_unified=/sys/fs/cgroup cg_systemd=
fi

# Machines run containers: one test at a time with the integration tests
# (and another deploy test, which uses the same bridge).
exec 9>/tmp/ferry-integration.lock
flock 9

bridge=ferrydt0 net=10.231.0
# With the lock held no other deploy test runs: a bridge there now is what a
# killed run left (its trap never ran). Remove it rather than fail every run.
if ip link show "$bridge" >/dev/null 2>&1; then
  echo "deploy-test: removing $bridge, left by a run that was killed" >&2
  ip link del "$bridge" || cannot "$bridge is left over and cannot be removed"
fi
if ip -4 route show | grep -q "^$net\."; then
  cannot "$net.0/24 is routed here already: $(ip -4 route show | grep "^$net\.")"
fi

work=$(mktemp -d /var/tmp/ferry-deploy-test.XXXXXX)
cgname=ferry-deploy-$$
# The CLI on this machine, as the cluster's client (its key from site.yml's run).
ferry() { "$build/tools/ferry" --coordinator "tcp://$net.11:7000" --keys "$work/keys" "$@"; }
nspawn_pids=()
cleanup() {
  local rc=$? pid dir
  trap - EXIT INT TERM
  set +e
  say "cleaning up"
  for pid in "${nspawn_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  # A container whose PID 1 ignores SIGTERM keeps systemd-shutdown waiting 90 s:
  # give the machines 10 s to halt, then kill what is left of them.
  for _ in $(seq 20); do
    local alive=0
    for pid in "${nspawn_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  say "killing what is left of the machines"
  [ -e "$cg_unified/$cgname/cgroup.kill" ] && echo 1 > "$cg_unified/$cgname/cgroup.kill"
  for pid in "${nspawn_pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for dir in "$cg_unified/$cgname" ${cg_systemd:+"$cg_systemd/$cgname"}; do
    [ -d "$dir" ] || continue
    for _ in $(seq 20); do
      find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$dir" ] || break
      sleep 0.25
    done
    [ -d "$dir" ] && echo "deploy-test: warning: could not remove $dir" >&2
  done
  say "removing the bridge and $work"
  ip link del "$bridge" 2>/dev/null
  if findmnt -rn -o TARGET | grep -q "^$work"; then
    findmnt -rn -o TARGET | grep "^$work" | sort -r | xargs -r -n1 umount -l
  fi
  rm -rf --one-file-system "$work"
  say "done (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the package ---------------------------------------------------------
say "building the package (cpack)"
# (under the build lock: a build running meanwhile would rewrite the binaries)
(cd "$build" && flock /tmp/ferry-build.lock cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/pkg/ferry_*_amd64.deb)
version=$(dpkg-deb -f "$deb" Version); version=${version%-*}

# ---- the machines' root --------------------------------------------------
mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
[ -n "$mirror" ] || cannot "no Debian mirror in /etc/apt/sources.list{,.d/debian.sources}"
# Everything installs offline in the machines: the package's Depends are in
# the image. The host's private CRIU is bound in read-only (its wrapper uses
# absolute paths); a host whose system CRIU works gets Debian's in the image.
pkgs="systemd systemd-sysv dbus python3 python3-apt procps iproute2 runc conmon iptables nftables"
pkgs+=" $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//' | tr -d ' ' | sort -u | tr '\n' ' ')"
binds=()
case "$criu" in
  /opt/ferry/criu/*) binds+=(--bind-ro=/opt/ferry/criu) ;;
  *) pkgs+=" criu" ;;
esac
pkgs=$(tr ' ' '\n' <<<"$pkgs" | grep . | sort -u | tr '\n' ',' | sed 's/,$//')
cache=/var/cache/ferry/deploy-test
key=$(printf '%s %s' "$mirror" "$pkgs" | sha256sum | cut -c1-16)
tarball=$cache/bookworm-$key.tar
if [ ! -f "$tarball" ]; then
  say "building the machines' root with mmdebstrap (cached as $tarball)"
  mkdir -p "$cache"
  rm -f "$cache"/bookworm-*.tar "$cache"/building-*.tar  # other package lists' roots
  # (mmdebstrap picks the format by the name's ending: .tar)
  mmdebstrap --variant=minbase --include="$pkgs" bookworm "$cache/building-$key.tar" "$mirror" \
    >"$work/mmdebstrap.log" 2>&1 || { tail -20 "$work/mmdebstrap.log"; fail "mmdebstrap"; }
  mv "$cache/building-$key.tar" "$tarball"
fi

# ---- network -------------------------------------------------------------
ip link add "$bridge" type bridge
ip addr add "$net.1/24" dev "$bridge"
ip link set "$bridge" up
# The machines' addresses go to the bridge and nowhere else.
for i in 1 2 3; do
  dev=$(ip -4 route get "$net.1$i" | grep -oE 'dev [^ ]+' | cut -d' ' -f2)
  [ "$dev" = "$bridge" ] || fail "$net.1$i would be routed via $dev, not $bridge"
done

# ---- boot ----------------------------------------------------------------
mkdir -p "$cg_unified/$cgname" ${cg_systemd:+"$cg_systemd/$cgname"}
# The machines' roots live in a tmpfs: removing 1 GB of files from a busy disk
# took half a minute; unmounting takes none.
mkdir -p "$work/machines"
mount -t tmpfs -o size=6g,mode=0755 ferry-deploy-test "$work/machines"
declare -A leader
for i in 1 2 3; do
  m=m$i root=$work/machines/$m
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  echo "$m" > "$root/etc/hostname"
  rm -f "$root/etc/machine-id"
  systemd-machine-id-setup --root="$root" >/dev/null 2>&1
  # bookworm's networkd waits for udev (absent) when /sys is writable, so a
  # oneshot unit sets the address.
  cat > "$root/etc/systemd/system/deploy-test-net.service" <<UNIT
[Unit]
Description=deploy test: address on host0
Before=network.target network-online.target
Wants=network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set host0 up
ExecStart=/sbin/ip addr add $net.1$i/24 dev host0
[Install]
WantedBy=multi-user.target network-online.target
UNIT
  systemctl --root="$root" enable deploy-test-net.service >/dev/null 2>&1
  mkdir -p "$cg_unified/$cgname/$m" ${cg_systemd:+"$cg_systemd/$cgname/$m"}
  (
    # nspawn with --keep-unit takes its own cgroup for the machine.
    echo "$BASHPID" > "$cg_unified/$cgname/$m/cgroup.procs"
    [ -n "$cg_systemd" ] && echo "$BASHPID" > "$cg_systemd/$cgname/$m/cgroup.procs"
    exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes SYSTEMD_SECCOMP=0 \
      systemd-nspawn --register=no --keep-unit -b -D "$root" -M "ferry-dt-$m" \
      --network-bridge="$bridge" --capability=all --private-users=no \
      --console=passive --resolv-conf=off --timezone=off --link-journal=no "${binds[@]}"
  ) >"$work/$m.console" 2>&1 9>&- &
  nspawn_pids+=($!)
done
# Each machine's PID 1 (for nsenter and ansible): the process of its payload
# cgroup that is PID 1 in its own PID namespace (nspawn's other children come
# and go).
machine_leader() {  # MACHINE
  local p
  for p in $(find "$cg_unified/$cgname/$1/payload" -name cgroup.procs -exec cat {} + 2>/dev/null); do
    [ "$(awk '/^NSpid:/{print $NF}' "/proc/$p/status" 2>/dev/null)" = 1 ] && { echo "$p"; return 0; }
  done
  return 1
}
i=0
for pid in "${nspawn_pids[@]}"; do
  i=$((i + 1))
  for _ in $(seq 100); do
    leader[m$i]=$(machine_leader "m$i" || true)
    [ -n "${leader[m$i]}" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/m$i.console"; fail "nspawn of m$i exited"; }
    sleep 0.1
  done
  [ -n "${leader[m$i]}" ] || fail "no PID 1 in m$i after 10 s: $(cat "$work/m$i.console")"
done
in_m() {  # MACHINE CMD...: run in the machine's namespaces
  local m=$1; shift
  nsenter -t "${leader[$m]}" -m -u -i -n -p -- "$@"
}
for m in m1 m2 m3; do
  # (until its systemd listens, systemctl cannot even ask: "Failed to connect to bus")
  deadline=$((SECONDS + 120))
  until state=$(in_m "$m" systemctl is-system-running 2>/dev/null) \
    && [[ "$state" =~ ^(running|degraded)$ ]]; do
    if [ $SECONDS -ge $deadline ] || [[ "$state" =~ ^(maintenance|stopping|offline)$ ]]; then
      in_m "$m" systemctl --failed --no-pager >&2 || true
      fail "$m did not boot (state '$state' after $((120 - deadline + SECONDS)) s)"
    fi
    sleep 0.5
  done
  [ "$state" = degraded ] && say "$m is degraded: $(in_m "$m" systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
done
booted=1
say "booted m1, m2, m3 ($net.11-13 on $bridge)"

# ---- site.yml --------------------------------------------------------------
mkdir -p "$work/inv/host_vars"
inventory=$work/inv/hosts.ini
{
  echo "[ferry_coordinator]"
  echo "m1"
  echo "[ferry_agents]"
  echo "m1 ferry_host_name=hostA"
  echo "m2 ferry_host_name=hostB"
  echo "m3 ferry_host_name=hostC"
  echo "[all:vars]"
  echo "ansible_connection=community.docker.nsenter"
  echo "ansible_python_interpreter=/usr/bin/python3"
} > "$inventory"
# Extra vars: the playbook's group_vars/all.yml would win over the inventory's.
python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
  ferry_version "$version" ferry_deb "$deb" ferry_cli "$build/tools/ferry" \
  ferry_keys_local_dir "$work/keys" > "$work/inv/extra.json"
for i in 1 2 3; do
  printf 'ansible_nsenter_pid: %s\nferry_address: %s\n' "${leader[m$i]}" "$net.1$i" > "$work/inv/host_vars/m$i.yml"
done
playbook() {  # LOG
  ANSIBLE_CONFIG=$src/ansible/ansible.cfg ANSIBLE_LOCAL_TEMP=$work/ansible-tmp ANSIBLE_NOCOLOR=1 \
    ansible-playbook -i "$inventory" -e "@$work/inv/extra.json" "$src/ansible/site.yml" >"$1" 2>&1
}
say "ansible-playbook site.yml (first run)"
playbook "$work/site-1.log" || { tail -40 "$work/site-1.log"; fail "site.yml failed (log above)"; }
say "first run: $(sed -n '/^PLAY RECAP/,$p' "$work/site-1.log" | grep -E '^m[0-9]' | awk '{print $1, $4}' | tr '\n' ' ')"

# ---- checks ---------------------------------------------------------------
wait_for() {  # SECONDS WHAT CMD...: until CMD succeeds, or fail saying WHAT
  local limit=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "waited $limit s for $what"
    sleep 0.5
  done
}

for m in m1 m2 m3; do
  units=ferry-agent.service
  [ $m = m1 ] && units="ferry-coordinator.service ferry-agent.service"
  for u in $units; do
    [ "$(in_m $m systemctl is-active $u)" = active ] \
      || { in_m $m journalctl -u $u --no-pager | tail -20 >&2; fail "$u not active on $m"; }
  done
done
say "units active (coordinator on m1, agents on m1-m3)"

hosts_up() {
  ferry --json hosts | python3 -c '
import json, sys
d = json.load(sys.stdin)
hosts = d if isinstance(d, list) else d.get("hosts", [])
up = sorted(h["name"] for h in hosts if h.get("up") is True)
sys.exit(0 if up == ["hostA", "hostB", "hostC"] else 1)'
}
wait_for 30 "hostA, hostB and hostC to be up in \`ferry hosts\`" hosts_up
say "hostA, hostB, hostC registered and up"

if "$build/agent/ferry-agent" --help 2>/dev/null | grep -q -- '--metrics'; then
  scrape() {  # ADDR:PORT
    python3 - "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode()
series = [l for l in body.splitlines() if l.startswith("ferry_")]
if not series:
    sys.exit("no ferry_ series at %s" % sys.argv[1])
print(len(series))
PY
  }
  for target in "$net.11:9465" "$net.11:9464" "$net.12:9464" "$net.13:9464"; do
    wait_for 20 "metrics at http://$target/metrics" scrape "$target"
  done
  say "metrics served: coordinator $net.11:9465 ($(scrape $net.11:9465) ferry_ series), agents on :9464"
else
  say "SKIPPED the metrics check: this ferry-agent has no --metrics option yet"
fi

say "ansible-playbook site.yml (second run: must change nothing)"
playbook "$work/site-2.log" || { tail -40 "$work/site-2.log"; fail "second run of site.yml failed"; }
recap=$(sed -n '/^PLAY RECAP/,$p' "$work/site-2.log" | grep -E '^m[0-9]')
if grep -vq 'changed=0 ' <<<"$recap"; then
  grep -B3 '^changed:' "$work/site-2.log" | grep -E '^(TASK|changed)' >&2 || true
  fail "second run changed something: $recap"
fi
say "second run: changed=0 on m1, m2, m3"

# A container on hostB outlives `systemctl restart ferry-agent`.
ferry image import counter "$image" --all >/dev/null
ferry run --host hostB --name keep counter /usr/local/bin/counter >/dev/null
pid_of() {  # NAME -> "HOST PID" of a running container
  ferry --json ps | python3 -c '
import json, sys
d = json.load(sys.stdin)
cs = d if isinstance(d, list) else d.get("containers", [])
for c in cs:
    if c.get("name") == sys.argv[1] and c.get("status", c.get("state")) == "running":
        print(c.get("host"), c.get("pid")); sys.exit(0)
sys.exit(1)' "$1"
}
last_count() { ferry logs keep 2>/dev/null | grep '^counter' | tail -1 | awk '{print $2}'; }
counter_past() { local n; n=$(last_count); [ -n "$n" ] && [ "$n" -gt "$1" ]; }
wait_for 20 "container keep running on hostB" pid_of keep
wait_for 20 "keep's counter to count" counter_past 1
# The container's own pid, from the engine's records in the machine.
engine_pid() {  # [MACHINE HOST]: keep's pid in that machine (m2, hostB)
  in_m "${1:-m2}" ferry-engine --host "${2:-hostB}" --json inspect keep | python3 -c '
import json, sys
d = json.load(sys.stdin)
pid = d.get("pid") or d.get("state", {}).get("pid")
sys.exit(0 if pid and print(pid) is None else 1)'
}
before=$(engine_pid) || fail "no pid for keep in ferry-engine inspect on m2: $(in_m m2 ferry-engine --host hostB --json inspect keep)"
in_m m2 systemctl restart ferry-agent.service
[ "$(in_m m2 systemctl is-active ferry-agent.service)" = active ] || fail "ferry-agent did not come back on m2"
wait_for 30 "hostB back up after the agent's restart" hosts_up
pid_of keep >/dev/null || fail "keep is not running after systemctl restart ferry-agent on m2"
after=$(engine_pid) || fail "no pid for keep after the restart"
[ "$after" = "$before" ] || fail "keep's pid changed over the restart: before $before, after $after"
n=$(last_count)
wait_for 20 "keep's counter to go on after the agent's restart (from $n)" counter_past "$n"
say "systemctl restart ferry-agent on m2: keep still running (pid $after), its counter going on"

# A live migration between two machines.
n=$(last_count)
if ferry migrate keep hostB hostC >"$work/migrate.log" 2>&1; then
  where=$(pid_of keep) || fail "keep not running after its migration: $(cat "$work/migrate.log")"
  [ "${where%% *}" = hostC ] || fail "keep runs on ${where%% *} after migrating to hostC"
  wait_for 20 "keep's counter to go on on hostC past $n" counter_past "$n"
  gap=$(ferry logs keep | grep '^counter' | awk '$2 != NR {print "line " NR " says " $0; exit}')
  [ -z "$gap" ] || fail "keep's counter did not go on where it was: $gap"
  say "migrated keep hostB -> hostC: its counter went on from $n"
  # Why it could: its own cgroup namespace, and a cgroup2 of its own at
  # /sys/fs/cgroup rather than a bind of the machine's (a slave of systemd's
  # shared mounts, which CRIU refuses to dump).
  cpid=$(engine_pid m3 hostC) || fail "no pid for keep in ferry-engine inspect on m3"
  [ "$(in_m m3 readlink /proc/"$cpid"/ns/cgroup)" != "$(in_m m3 readlink /proc/1/ns/cgroup)" ] ||
    fail "keep on hostC shares the machine's cgroup namespace"
  cgfs=$(in_m m3 awk '$2 == "/sys/fs/cgroup" {print $3}' /proc/"$cpid"/mounts)
  [ "$cgfs" = cgroup2 ] || fail "keep's /sys/fs/cgroup on hostC is '$cgfs', not its own cgroup2"
  say "keep on hostC: a cgroup namespace of its own, cgroup2 at /sys/fs/cgroup"
else
  why=$(grep -oE '(Error \(criu/[^)]*\): [^;]*|error: .*)' "$work/migrate.log" | head -3 | tr '\n' ' ')
  wait_for 20 "keep to run again after its failed migration ($(tail -1 "$work/migrate.log"))" pid_of keep
  where=$(pid_of keep)
  [ "${where%% *}" = hostB ] || fail "a failed migration left keep on ${where%% *}, not hostB"
  wait_for 20 "keep's counter to go on on hostB after the failed migration" counter_past "$(last_count)"
  say "migration hostB -> hostC FAILED, rolled back (keep runs on hostB): ${why:-$(tail -2 "$work/migrate.log")}"
  [ "${FERRY_DEPLOY_REQUIRE_MIGRATION:-1}" = 0 ] ||
    fail "the migration hostB -> hostC failed (FERRY_DEPLOY_REQUIRE_MIGRATION=0 accepts a rollback)"
fi
ferry rm -f keep >/dev/null 2>&1 || ferry rm keep >/dev/null 2>&1 || true

# Nothing restarted behind our back (a missing READY=1 or watchdog ping would).
for m in m1 m2 m3; do
  for u in ferry-agent ferry-coordinator; do
    [ $u = ferry-coordinator ] && [ $m != m1 ] && continue
    r=$(in_m $m systemctl show -p NRestarts --value $u.service)
    [ "$r" = 0 ] || fail "$u restarted $r times on $m: $(in_m $m journalctl -u $u --no-pager | grep -iE 'watchdog|fail' | tail -3)"
  done
done
say "PASSED"
