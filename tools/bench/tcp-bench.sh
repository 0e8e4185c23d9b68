#!/usr/bin/env bash
# The TCP benchmark (issue 15), not a test: what a client holding one TCP
# connection sees while the container it talks to migrates, next to what the
# container itself sees. A local cluster with a container network (`ferry
# cluster up --network`: each host a network namespace of its own); the
# container runs bench-workload with an echo server (--echo 7000) and M MiB
# of memory; tcp-client, on this machine, holds one connection to the
# container's address and sends a line every 20 ms, checking each echo.
# Each move (hostA -> hostB -> hostA ...) gets a new client and reports:
#   downtime_ms   what `ferry migrate --json` says (frozen until it runs on
#                 the target)
#   workload_ms   the workload's own largest heartbeat gap in that move
#   client_ms     the client's longest wait for one echo (its pause)
#   error         what the client met ("none": no reset, no loss, in order)
# The client's pause is longer than the freeze by TCP's retransmission
# back-off: a line sent while the container is frozen is resent after
# 0.2, 0.6, 1.4, 3.0 s, and the echo comes with the first resend after the
# container runs on its new host and its address is routed there.
#
#   tools/bench/tcp-bench.sh [--sizes 1,256] [--moves 3] [--json FILE]
#
# Writes JSON (default tcp-bench-results.json). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/bench/common.sh
sizes=1,256 moves=3 out=tcp-bench-results.json
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) sizes=$2; shift ;;
    --moves) moves=$2; shift ;;
    --json) out=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tcp-bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry-agent ferry-coordinator ferry-engine bench_image \
  tcp-client >/dev/null
image=build/tools/bench/bench-image.tar.zst
dir=/var/tmp/ferry-tcp-bench cidr=10.215.0.0/24
cleanup() {
  [ -n "${client:-}" ] && kill "$client" 2>/dev/null || true
  build/tools/ferry cluster down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
cleanup
trap cleanup EXIT

echo "== local cluster with the container network $cidr" >&2
build/tools/ferry cluster up --hosts 2 --network "$cidr" --dir "$dir" --port 7300 >/dev/null
record() { python3 -c "import json,sys; d=json.load(open('$dir/cluster.json')); print($1)"; }
endpoint=$(record "d['coordinator_endpoint']")
keys=$(record "d['keys_dir']")
bridge=$(record "d['network']['bridge']")
ferry() { build/tools/ferry --coordinator "$endpoint" --keys "$keys" "$@"; }
ferry image import bench "$image" --all >/dev/null

# Nothing is sent to an address this machine would route anywhere but onto
# the cluster's bridge.
require_routed_here() {
  if ! ip -o route get "$1" | grep -q " dev $bridge "; then
    echo "tcp-bench: $1 is not routed onto $bridge: $(ip -o route get "$1")" >&2
    exit 1
  fi
}
gaps() { ferry logs "$1" | awk '$1 == "gap_ms" { print $2 }'; }

results=()
printf '%-8s %5s  %-14s %12s %12s %12s  %s\n' "MEMORY" "MOVE" "ROUTE" "DOWNTIME" "WORKLOAD" "CLIENT" "ERROR" >&2
for size in ${sizes//,/ }; do
  name=tcp$size
  ferry run --host hostA --name "$name" bench /usr/local/bin/bench-workload --mem-mib "$size" \
    --echo 7000 >/dev/null
  for _ in $(seq 600); do ferry logs "$name" 2>/dev/null | grep -q '^ready' && break; sleep 0.1; done
  ip=$(ferry --json ps | python3 -c "import json,sys; print([c['ip'] for c in json.load(sys.stdin) if c['name'] == '$name'][0])")
  require_routed_here "$ip"
  from=hostA to=hostB
  for move in $(seq "$moves"); do
    seen=$(gaps "$name" | wc -l)
    build/tools/bench/tcp-client "$ip" 7000 > "$dir/client.out" &
    client=$!
    for _ in $(seq 100); do grep -q connected "$dir/client.out" && break; sleep 0.05; done
    sleep 1
    res=$(ferry --json --timeout 600 migrate "$name" "$from" "$to")
    # Long enough for the client's third resend (at 3.0 s) to be answered.
    sleep 4
    kill -INT "$client" 2>/dev/null || true  # gone already when its connection broke
    wait "$client" || true
    client=
    line=$(tail -1 "$dir/client.out")
    down=$(echo "$res" | sed -n 's/^ *"downtime_ms": \([0-9]*\).*/\1/p')
    work=$(gaps "$name" | tail -n +"$((seen + 1))" | sort -n | tail -1)
    pause=$(echo "$line" | awk '{ print $4 }')
    err=$(echo "$line" | awk '{ print $6 }')
    printf '%-8s %5s  %-14s %9s ms %9s ms %9s ms  %s\n' "$size MiB" "$move" "$from->$to" "$down" \
      "${work:-0}" "$pause" "$err" >&2
    results+=("{\"mem_mib\": $size, \"move\": $move, \"from\": \"$from\", \"to\": \"$to\", \"downtime_ms\": $down, \"workload_ms\": ${work:-0}, \"client_ms\": $pause, \"error\": \"$err\"}")
    tmp=$from from=$to to=$tmp
  done
  ferry rm -f "$name" >/dev/null
done
bench_json_array "${results[@]}" > "$out"
echo "== written to $out" >&2
