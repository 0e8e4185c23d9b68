#!/usr/bin/env bash
# The single-host bundle demo (no cluster): sets this machine up, builds ferry,
# runs the counter container (with a volume) on "hostA", checkpoints it into
# one bundle file, shows what the bundle holds, restores it on "hostB"
# (another state root, runc root and cgroup), and shows the counter going on
# from where it stopped, with the checkpoint and restore times. Everything it
# made is removed at the end. Run as root.
#
#   tools/demo-bundle.sh [--keep]     --keep leaves the container running on hostB
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = --keep ] && keep=1
bash tools/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target ferry-engine ferry-inspect test_image

demo=/var/lib/ferry-demo
fe() { local host=$1; shift; build/tools/ferry-engine -q --host "$host" --root "$demo/$host" --run-dir "/run/ferry-demo/$host" "$@"; }
cleanup() {
  for h in hostA hostB; do
    [ -d "$demo/$h" ] || continue
    for c in $(fe "$h" --json ps | sed -n 's/^    "name": "\(.*\)",$/\1/p'); do fe "$h" rm -f "$c" || true; done
  done
  rm -rf "$demo" /run/ferry-demo
}
[ -d "$demo" ] && cleanup
[ "$keep" = 1 ] || trap cleanup EXIT

image=build/tests/counter-image.tar.zst
echo "== importing the demo image on hostA and hostB"
fe hostA image import counter "$image"
fe hostB image import counter "$image"

echo "== running the counter on hostA (volume 'data' at /data)"
fe hostA run --name demo -v data:/data counter /usr/local/bin/counter --file /data/counter
# Waits (up to 10 s) until HOST's demo has printed at least N lines.
await_lines() {
  for _ in $(seq 100); do
    [ "$(fe "$1" logs demo | grep -c '^counter')" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "== FAILED: demo on $1 printed fewer than $2 lines within 10 s" >&2
  exit 1
}
await_lines hostA 20
before=$(fe hostA logs demo | tail -1)
echo "   hostA says: $before"

echo "== checkpointing on hostA into one bundle file"
fe hostA checkpoint --export "$demo/demo.ferry" demo
last=$(fe hostA logs demo | tail -1)
echo "   last line on hostA: $last; volume holds $(cat $demo/hostA/volumes/data/_data/counter)"

echo "== what the bundle holds (ferry-inspect)"
build/tools/ferry-inspect --stats "$demo/demo.ferry" | sed 's/^/   /'

echo "== restoring on hostB (host metadata checked first)"
fe hostB restore --import "$demo/demo.ferry"
await_lines hostB 3
echo "   first lines on hostB: $(fe hostB logs demo | head -3 | paste -sd, -)"
echo "   volume on hostB holds $(cat $demo/hostB/volumes/data/_data/counter)"
first=$(fe hostB logs demo | head -1)
if [ "${first#counter }" -eq $(( ${last#counter } + 1 )) ]; then
  echo "== OK: the counter went on from ${last#counter } to ${first#counter } on hostB"
else
  echo "== FAILED: hostA stopped at '${last}', hostB began at '${first}'" >&2
  exit 1
fi
fe hostA ps
fe hostB ps
