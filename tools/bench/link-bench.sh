#!/usr/bin/env bash
# The link benchmark (issue 16), not a test: cold migrations of the memory
# workload (half of its pages random, half regular) between two hosts in
# network namespaces of their own (`ferry cluster up --network`), over
# their veths as they are or limited by htb qdiscs (--rate, tc's units;
# netem is not in this kernel), with the stream compressed as each
# --compress mode says: auto (measured per link, the default), none, 1.
# Moves go hostA -> hostB -> hostA ..., the modes in turn, so each mode
# sees both directions. Each move reports what `ferry migrate --json` says:
#   downtime_ms        frozen on the source until running on the target
#   transfer_ms        its transfer phase
#   bytes_wire         what crossed
#   link_bytes_per_s   what the source measured the link to carry (auto)
#   compressed         records that went compressed, of all (auto)
#
#   tools/bench/link-bench.sh [--size 256] [--rate 1gbit|none] [--moves 2]
#                             [--modes auto,none,1] [--json FILE]
#
# Writes JSON (default link-bench-results.json). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tools/bench/common.sh
size=256 rate=1gbit moves=2 modes=auto,none,1 out=link-bench-results.json
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift ;;
    --rate) rate=$2; shift ;;
    --moves) moves=$2; shift ;;
    --modes) modes=$2; shift ;;
    --json) out=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "link-bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry-agent ferry-coordinator ferry-engine bench_image \
  >/dev/null
image=build/tools/bench/bench-image.tar.zst
dir=/var/tmp/ferry-link-bench cidr=10.216.0.0/24
cleanup() {
  build/tools/ferry cluster down --dir "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
cleanup
trap cleanup EXIT

echo "== local cluster, each host in a network namespace of its own" >&2
build/tools/ferry cluster up --hosts 2 --network "$cidr" --dir "$dir" --port 7500 >/dev/null
record() { python3 -c "import json,sys; d=json.load(open('$dir/cluster.json')); print($1)"; }
endpoint=$(record "d['coordinator_endpoint']")
keys=$(record "d['keys_dir']")
ferry() { build/tools/ferry --coordinator "$endpoint" --keys "$keys" "$@"; }
if [ "$rate" != none ]; then
  # Both ends of every host's veth: what enters and what leaves it.
  for h in hostA hostB; do
    veth=$(record "[n['veth'] for n in d['network']['nodes'] if n['name'] == '$h'][0]")
    netns=$(record "[n['netns'] for n in d['network']['nodes'] if n['name'] == '$h'][0]")
    for where in "" "ip netns exec $netns"; do
      dev=$veth
      [ -n "$where" ] && dev=eth0
      $where tc qdisc add dev "$dev" root handle 1: htb default 10 r2q 1000
      $where tc class add dev "$dev" parent 1: classid 1:10 htb rate "$rate" ceil "$rate"
    done
  done
  echo "== every host's link limited to $rate (htb)" >&2
fi
ferry image import bench "$image" --all >/dev/null
ferry run --host hostA --name lb bench /usr/local/bin/bench-workload --mem-mib "$size" \
  --dirty-mib-s 1 >/dev/null
for _ in $(seq 600); do ferry logs lb 2>/dev/null | grep -q '^ready' && break; sleep 0.1; done

results=()
printf '%-6s %-14s %10s %10s %14s %12s  %s\n' "MODE" "ROUTE" "DOWNTIME" "TRANSFER" "BYTES WIRE" "LINK MB/s" \
  "COMPRESSED" >&2
from=hostA to=hostB
for move in $(seq "$moves"); do
  for mode in ${modes//,/ }; do
    res=$(ferry --json --timeout 600 migrate lb "$from" "$to" --precopy off --compress "$mode")
    line=$(echo "$res" | python3 -c '
import json, re, sys
j = json.load(sys.stdin)
ph = {p["phase"]: p["ms"] for p in j["phase_ms"]}
m = re.match(r"zstd level \d+ on (all )?(\d+)( of (\d+))? records", j["compression"])
comp = ("%s/%s" % (m.group(2), m.group(4) or m.group(2))) if m else ("0" if j["link_bytes_per_s"] else "-")
print(j["downtime_ms"], ph.get("transfer", 0), j["bytes_wire"], j["link_bytes_per_s"], comp)')
    read -r down transfer wire link comp <<< "$line"
    printf '%-6s %-14s %7s ms %7s ms %14s %12s  %s\n' "$mode" "$from->$to" "$down" "$transfer" "$wire" \
      "$((link / 1000000))" "$comp" >&2
    results+=("{\"mem_mib\": $size, \"rate\": \"$rate\", \"mode\": \"$mode\", \"from\": \"$from\", \"to\": \"$to\", \"downtime_ms\": $down, \"transfer_ms\": $transfer, \"bytes_wire\": $wire, \"link_bytes_per_s\": $link, \"compressed\": \"$comp\"}")
    tmp=$from from=$to to=$tmp
  done
done
bench_json_array "${results[@]}" > "$out"
echo "== written to $out" >&2
