#!/usr/bin/env bash
# Writes the man page of one of ferry's programs from its own --help (with
# help2man), so the page says what the program says and cannot drift from it.
#
#   packaging/make-man.sh PROGRAM SECTION "WHAT IT IS" OUT.gz [--commands]
#
# --commands adds a COMMANDS section: the --help of each subcommand, and of
# theirs (`ferry cluster up`), as the program prints it. Every page ends with
# SEE ALSO naming the others and the README. Run by the build (CMakeLists.txt,
# target man) when help2man is installed; the package installs the pages.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: make-man.sh PROGRAM SECTION 'WHAT IT IS' OUT.gz [--commands]" >&2; exit 2; }
prog=$1 section=$2 what=$3 out=$4 commands=${5:-}
name=$(basename "$prog")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The subcommands a --help lists under "Subcommands:" (two-space indent).
subcommands() {
  awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1; next} on && !/^   / {on = 0}' \
    | grep -vx help || true
}

# Text as roff that prints it as it is: no line may start with a control
# character, and a backslash is roff's escape.
verbatim() {
  sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
}

# Stdin without the lines it ends with in common with file $1 (a subcommand's
# help repeats the program's footer: exit status, examples).
without_common_end() {
  awk 'NR == FNR {top[++t] = $0; next} {sub_[++s] = $0}
       END {k = 0; while (k < s && k < t && sub_[s - k] == top[t - k]) k++
            while (k < s && sub_[s - k] == "") k++
            for (i = 1; i <= s - k; i++) print sub_[i]}' "$1" -
}

# One subsection per command, depth first: "ferry cluster", "ferry cluster up".
describe() {
  local help sub
  help=$("$prog" "$@" --help)
  printf '.SS "%s"\n.nf\n' "$name $*"
  without_common_end "$work/top" <<<"$help" | verbatim
  printf '.fi\n'
  for sub in $(subcommands <<<"$help"); do describe "$@" "$sub"; done
}

{
  if [ "$commands" = --commands ]; then
    "$prog" --help >"$work/top"
    printf '[COMMANDS]\nEach command as its own --help describes it.\n'
    for sub in $(subcommands <"$work/top"); do describe "$sub"; done
  fi
  printf '[SEE ALSO]\n'
  see=
  for p in ferry.1 ferry-agent.8 ferry-coordinator.8 ferry-engine.8 ferry-inspect.1; do
    [ "${p%.*}" = "$name" ] || see+="${see:+, }\\fB${p%.*}\\fR(${p##*.})"
  done
  printf '%s\n' "$see"
  printf '.PP\nThe README: /usr/share/doc/ferry/README.md\n'
} >"$work/include"

version=$("$prog" --version)
help2man --no-info --no-discard-stderr --section="$section" --name="$what" \
  --version-string="$version" --include="$work/include" "$prog" >"$work/page"
mkdir -p "$(dirname "$out")"
gzip -9n <"$work/page" >"$out.tmp" && mv "$out.tmp" "$out"
