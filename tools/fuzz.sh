#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang-14 with ASan and UBSan, in
# build-fuzz/) and runs each for a set time, or replays their corpus.
#
#   tools/fuzz.sh [--time SECONDS] [--jobs N] [TARGET...]   fuzz (default 60 s each)
#   tools/fuzz.sh --replay [TARGET...]                      each corpus once, no fuzzing
#   tools/fuzz.sh --seed                                    rewrite fuzz/corpus/*/seed-*
#
# TARGET: fuzz_coordinator, fuzz_agent_commands, fuzz_chunk_receiver, fuzz_page_feed,
# fuzz_bundle_reader, fuzz_layer_apply, fuzz_image_import (default: all).
# What a fuzzer finds new goes to build-fuzz/corpus/TARGET (not the tree);
# a crash is written as build-fuzz/crash-TARGET-* and stops the run, with
# libFuzzer's report. To keep a crash as a regression: fix it, then copy it
# into fuzz/corpus/TARGET/ named crash-WHAT (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ALL=(fuzz_coordinator fuzz_agent_commands fuzz_chunk_receiver fuzz_page_feed fuzz_bundle_reader
     fuzz_layer_apply fuzz_image_import)
time=60 mode=fuzz
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time=$2; shift ;;
    --replay) mode=replay ;;
    --seed) mode=seed ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    fuzz_*) targets+=("$1") ;;
    *) echo "fuzz.sh: unknown option or target '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
command -v clang++-14 >/dev/null || {
  echo "fuzz.sh: clang++-14 is missing: run tools/install-deps.sh" >&2; exit 1; }

build=build-fuzz
cmake -S . -B "$build" -DFERRY_FUZZ=ON -DFERRY_BUILD_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
if [ "$mode" = seed ]; then
  cmake --build "$build" -j"$(nproc)" --target fuzz_seeds
  "$build/fuzz/fuzz_seeds" fuzz/corpus
  du -sh fuzz/corpus
  exit 0
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "${targets[@]}"; do
  if [ "$mode" = replay ]; then
    echo "== $t: replaying fuzz/corpus/$t"
    "$build/fuzz/$t" -runs=0 "fuzz/corpus/$t"
  else
    echo "== $t: fuzzing for $time s"
    mkdir -p "$build/corpus/$t"
    "$build/fuzz/$t" -max_total_time="$time" -timeout=60 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="$build/crash-$t-" \
      "$build/corpus/$t" "fuzz/corpus/$t"
  fi
done
