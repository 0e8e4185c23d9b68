# Sourced by the benchmarks under tools/bench/.

# bench_json_array RECORD...: the records (each one JSON object) as a JSON
# array, one per line, on stdout.
bench_json_array() {
  local n=$# i=0 r
  echo "["
  for r in "$@"; do
    i=$((i + 1))
    printf '  %s%s\n' "$r" "$([ "$i" -lt "$n" ] && echo ,)"
  done
  echo "]"
}
