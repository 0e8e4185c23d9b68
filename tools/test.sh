#!/usr/bin/env bash
# Sets up this machine and runs every test: unit tests and the integration
# tests that run real runc, conmon and CRIU containers. Run as root.
#
#   tools/test.sh [--sanitize] [--build-dir DIR] [-- CTEST ARGS...]
#
# --sanitize builds with AddressSanitizer + UndefinedBehaviorSanitizer
# (separate build dir) and runs the same suite. Then the deployment test
# (tools/deploy-test.sh; FERRY_SKIP_DEPLOY_TEST=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
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
# The fuzz targets replay their corpus (crashes found before included), each
# input once: regressions of what fuzzing found, in their own clang build.
# Skipped with FERRY_SKIP_FUZZ_REPLAY=1 (a quicker run on a developer's machine).
if [ "${FERRY_SKIP_FUZZ_REPLAY:-}" != 1 ]; then
  cmake -S . -B build-fuzz -DFERRY_FUZZ=ON -DFERRY_BUILD_TESTS=OFF \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz_targets
  ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$(nproc)"
fi
cmake -S . -B "$build" -DFERRY_SANITIZE=$sanitize >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
# Under CI=true (exactly) a test lacking a prerequisite fails rather than
# skips (tests/support/ci.h), and a run in which any test still skipped
# fails here: CI passing means every test ran -- but for tests that no setup
# of this machine could run (FERRY_SKIP_CANNOT_RUN_HERE), which are listed.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ctest --output-on-failure -j"$(nproc)" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
[ "$rc" = 0 ] || exit "$rc"
if [ "${CI:-}" = true ]; then
  # The tests that said they cannot run on this machine (their output is in
  # ctest's LastTest.log, one section per test).
  cannot=$(awk '/^ *[0-9]+\/[0-9]+ Testing: /{name=$3} /cannot run on this machine: /{print name}' \
    Testing/Temporary/LastTest.log | sort -u)
  unexplained=$(grep '\*\*\*Skipped\| Not Run' "$log" || true)
  for t in $cannot; do
    unexplained=$(grep -vF ": $t " <<<"$unexplained" || true)
  done
  if [ -n "$cannot" ]; then
    echo "test.sh: these tests cannot run on this machine (see each one's reason):" >&2
    printf '  %s\n' $cannot >&2
  fi
  if [ -n "$unexplained" ]; then
    echo "test.sh: CI=true, but these tests did not run:" >&2
    echo "$unexplained" >&2
    exit 1
  fi
fi
# The deployment test (ansible/site.yml into three booted machines; about a
# minute, five the first time, when it builds the machines' root): after the
# suite, skipped with FERRY_SKIP_DEPLOY_TEST=1. Where it cannot run it says
# why and is skipped -- but under CI=true that fails.
if [ "${FERRY_SKIP_DEPLOY_TEST:-}" != 1 ]; then
  set +e
  bash "$src/tools/deploy-test.sh" --build-dir .
  rc=$?
  set -e
  case "$rc" in
    0) ;;
    77) echo "test.sh: the deployment test could not run here (reason above); skipped" >&2 ;;
    *) exit "$rc" ;;
  esac
fi
