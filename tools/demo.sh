#!/usr/bin/env bash
# The main job: sets this machine up, builds ferry, starts a local two-host
# cluster (`ferry cluster up --hosts 2`: a coordinator on 127.0.0.1 and agents
# hostA on 127.0.0.2 and hostB on 127.0.0.3), runs the counter container with
# a volume on hostA, live-migrates it with `ferry migrate demo hostA hostB`,
# and shows the counter going on on hostB with its volume intact, plus the
# migration's figures. Everything it made is removed at the end. Run as root.
#
#   tools/demo.sh [--keep]     --keep leaves the cluster up (stop it with
#                              `build/tools/ferry cluster down --dir /var/lib/ferry-demo`)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = --keep ] && keep=1
bash tools/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry-agent ferry-coordinator ferry-engine test_image

dir=/var/lib/ferry-demo
ferry() { build/tools/ferry "$@"; }
cleanup() {
  ferry cluster down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
[ -e "$dir" ] && cleanup
[ "$keep" = 1 ] || trap cleanup EXIT

echo "== ferry cluster up --hosts 2"
ferry cluster up --hosts 2 --dir "$dir" --port 7100
# Without keys the coordinator is on a unix socket for root only, in the
# cluster's run dir; the CLI finds it in the cluster's record.
FERRY_COORDINATOR=$(sed -n 's/^ *"coordinator_endpoint": "\(.*\)",*$/\1/p' "$dir/cluster.json")
export FERRY_COORDINATOR
ferry hosts

echo "== importing the counter image on every host"
ferry image import counter build/tests/counter-image.tar.zst --all

echo "== running the counter on hostA (volume 'data' at /data)"
ferry run --host hostA --name demo -v data:/data counter /usr/local/bin/counter --file /data/counter
# Waits (up to 20 s) until demo has printed at least N lines on HOST.
await_lines() {
  for _ in $(seq 200); do
    [ "$(ferry logs demo 2>/dev/null | grep -c '^counter')" -ge "$2" ] &&
      ferry ps | grep -q "^demo *$1 .*running" && return 0
    sleep 0.1
  done
  echo "== FAILED: demo did not print $2 lines on $1 within 20 s" >&2
  exit 1
}
await_lines hostA 20
before=$(ferry logs demo | tail -1)
echo "   hostA says: $before; volume holds $(cat "$dir/hosts/hostA/volumes/data/_data/counter")"

echo "== ferry migrate demo hostA hostB"
ferry migrate demo hostA hostB
ferry ps

echo "== the counter goes on on hostB"
# A migration carries the container's log, so hostB's log starts with the
# first line the container ever printed. The counter went on if the lines
# after hostA's last one continue its count: the whole log is 1, 2, 3, ...
# with no restart, and it has grown past what hostA printed.
n_before=${before#counter }
await_lines hostB $((n_before + 3))
ferry logs demo | grep '^counter' | awk -v n="$n_before" '$2 > n' | head -3 | sed 's/^/   next: /'
echo "   volume on hostB holds $(cat "$dir/hosts/hostB/volumes/data/_data/counter")"
echo "   hostA has: $(ls "$dir/hosts/hostA/containers" 2>/dev/null | wc -l) containers, volume data $( [ -e "$dir/hosts/hostA/volumes/data" ] && echo present || echo gone)"
if ! gap=$(ferry logs demo | grep '^counter' | awk '$2 != NR { print "line " NR " says " $0; bad = 1; exit } END { exit bad }'); then
  echo "== FAILED: the counter did not go on from $before: $gap" >&2
  exit 1
fi
last=$(ferry logs demo | grep '^counter' | tail -1)
if [ "${last#counter }" -le "$n_before" ]; then
  echo "== FAILED: hostB never printed counter $((n_before + 1)) after hostA's $before" >&2
  exit 1
fi
if [ -n "$(ls "$dir/hosts/hostA/containers" 2>/dev/null)" ]; then
  echo "== FAILED: hostA still has a copy of demo after the migration" >&2
  exit 1
fi
echo "== ferry history"
ferry history
echo "== done: demo went on from $before (hostA, before the migration) to $last (hostB), its log unbroken"
