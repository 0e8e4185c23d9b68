#!/usr/bin/env bash
# Sets up this machine and runs every test: unit tests and the integration
# tests that run real runc, conmon and CRIU containers. Run as root.
#
#   tools/test.sh [--sanitize] [--build-dir DIR] [-- CTEST ARGS...]
#
# --sanitize builds with AddressSanitizer + UndefinedBehaviorSanitizer
# (separate build dir) and runs the same suite.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build sanitize=OFF
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=ON; build=build-asan ;;
    --build-dir) build=$2; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
bash tools/install-deps.sh
cmake -S . -B "$build" -DFERRY_SANITIZE=$sanitize >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
export CI=${CI:-}
ctest --output-on-failure -j"$(nproc)" "$@"
