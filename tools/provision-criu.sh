#!/usr/bin/env bash
# Finds or provisions a CRIU that works on the running kernel, and records it
# in /etc/ferry/criu-path (the engine's default --criu).
#
#   provision-criu.sh [--prefix DIR] (--shim FILE.so | --shim-source FILE.c) [--mirror URL]
#
# * The system's CRIU (/usr/sbin/criu) where it passes `criu check` and dumps a
#   sleeping process within 10 s;
# * else a private CRIU already in DIR (default /opt/ferry/criu) that does;
# * else CRIU 4.1.x from Debian's next stable release ("trixie") unpacked into
#   DIR, reached through a wrapper script DIR/criu. The system's apt
#   configuration is never changed: a private apt state directory is used.
#
# The wrapper preloads the socket-option shim (tools/criu/sockopt-shim.c says
# why): the package passes the one it ships (--shim /usr/lib/ferry/sockopt-shim.so),
# tools/install-deps.sh the source, compiled here with cc. It is copied into
# DIR so that DIR is whole by itself (the deployment test binds it into machines).
#
# Used by tools/install-deps.sh and by the ferry package's postinst
# (/usr/lib/ferry/provision-criu). Exit status: 0 a working CRIU is recorded;
# 1 none could be found or provisioned (the message says why and what to do);
# 2 bad usage.
set -euo pipefail

CRIU_PREFIX=/opt/ferry/criu
SHIM= SHIM_SOURCE= MIRROR=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) CRIU_PREFIX=$2; shift ;;
    --shim) SHIM=$2; shift ;;
    --shim-source) SHIM_SOURCE=$2; shift ;;
    --mirror) MIRROR=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "provision-criu: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$SHIM" ] && [ -z "$SHIM_SOURCE" ]; then
  echo "provision-criu: give --shim FILE.so or --shim-source FILE.c (see --help)" >&2
  exit 2
fi

say() { printf 'provision-criu: %s\n' "$*"; }
die() { printf 'provision-criu: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it writes $CRIU_PREFIX and /etc/ferry/criu-path)"
mkdir -p /etc/ferry

# `criu check` is not enough: on some virtual machines it passes while every
# dump hangs (the hardware breakpoint CRIU stops a task on after its parasite
# never fires; CRIU then waits for ever). A CRIU works when it checks out and
# dumps a sleeping process within 10 s (it takes well under one).
criu_dumps() {
  local dir pid rc=1
  dir=$(mktemp -d)
  # Without the fds this script inherited: CRIU refuses a task holding an
  # inherited lock (under `flock`, as CI runs), a socket it cannot dump, or a
  # file on a mount it cannot see (under nsenter, dpkg or ansible).
  (
    for fd in $(ls /proc/$BASHPID/fd); do
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec setsid sleep 600
  ) </dev/null >/dev/null 2>&1 &
  pid=$!
  disown "$pid"
  sleep 0.2
  timeout 10 "$1" dump -t "$pid" -D "$dir" --shell-job -o dump.log >/dev/null 2>&1 && rc=0
  kill -9 "$pid" 2>/dev/null || true
  rm -rf "$dir"
  return $rc
}
# Bounded too: on the machines that hang CRIU's dumps, a hung check would
# hang dpkg's configure (and the postinst must never fail or hang an install).
criu_works() { timeout 60 "$1" check >/dev/null 2>&1 && criu_dumps "$1"; }

install_shim() {
  # CRIU 4.1.x on Linux 6.16+ cannot dump a TCP or UDP socket without it;
  # harmless elsewhere.
  if [ -n "$SHIM" ]; then
    [ -f "$SHIM" ] || die "no socket-option shim at $SHIM"
    cp "$SHIM" "$CRIU_PREFIX/sockopt-shim.so.new"
  else
    command -v cc >/dev/null || die "no C compiler (cc) to build $SHIM_SOURCE"
    cc -shared -fPIC -O2 -Wall -o "$CRIU_PREFIX/sockopt-shim.so.new" "$SHIM_SOURCE" -ldl ||
      die "could not build $SHIM_SOURCE"
  fi
  chmod 644 "$CRIU_PREFIX/sockopt-shim.so.new"
  mv "$CRIU_PREFIX/sockopt-shim.so.new" "$CRIU_PREFIX/sockopt-shim.so"
}

# The private CRIU's wrapper: the trixie loader and libraries, and (where
# hardware breakpoints do not fire) CRIU_FAULT=130, CRIU's own switch to stop
# a task by tracing its syscalls instead of a breakpoint. runc talks to CRIU
# over an inherited file descriptor, so the wrapper must exec.
write_wrapper() {  # ROOT NO_BREAKPOINTS(0|1)
  local root=$1 loader libdir
  install_shim
  loader=$(ls "$root"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root"/lib64/ld-linux-x86-64.so.2 \
    "$root"/usr/lib/*/ld-linux*.so.* 2>/dev/null | head -1 || true)
  [ -n "$loader" ] || die "no dynamic loader in the unpacked trixie libc6"
  libdir=$(dirname "$loader")
  [ -x "$root/usr/sbin/criu" ] || die "no criu binary in the unpacked packages"
  {
    echo '#!/bin/sh'
    if [ "$2" = 1 ]; then
      echo '# Hardware breakpoints do not fire on this machine: stop tasks by syscall tracing.'
      echo 'CRIU_FAULT=130; export CRIU_FAULT'
    fi
    echo "exec \"$loader\" --library-path \"$libdir:$root/lib/x86_64-linux-gnu\" --preload \"$CRIU_PREFIX/sockopt-shim.so\" \"$root/usr/sbin/criu\" \"\$@\""
  } > "$CRIU_PREFIX/criu.new"
  chmod 755 "$CRIU_PREFIX/criu.new"
  mv "$CRIU_PREFIX/criu.new" "$CRIU_PREFIX/criu"
}

# The wrapper that works here, with or without breakpoints; fails if neither.
settle_wrapper() {
  write_wrapper "$CRIU_PREFIX/root" 0
  criu_works "$CRIU_PREFIX/criu" && return 0
  "$CRIU_PREFIX/criu" check >/dev/null 2>&1 || return 1
  write_wrapper "$CRIU_PREFIX/root" 1
  if criu_works "$CRIU_PREFIX/criu"; then
    say "CRIU's dumps hang on hardware breakpoints here: the wrapper sets CRIU_FAULT=130 (syscall tracing)"
    return 0
  fi
  return 1
}

record() {
  echo "$1" > /etc/ferry/criu-path
  say "$2: $1 ($("$1" --version | head -1)); recorded in /etc/ferry/criu-path"
}

if [ -x /usr/sbin/criu ] && criu_works /usr/sbin/criu; then
  record /usr/sbin/criu "system CRIU passes 'criu check'"
  exit 0
fi
if [ -x /usr/sbin/criu ]; then
  say "system CRIU fails 'criu check' or a test dump on kernel $(uname -r):"
  /usr/sbin/criu check 2>&1 | grep -i error | head -3 | sed 's/^/    /' || true
else
  say "no system CRIU (/usr/sbin/criu)"
fi

# A private CRIU already there. One whose wrapper predates the socket-option
# shim is written again -- unless DIR is read-only (bound into a machine), in
# which case it is taken as it is if it works.
if [ -x "$CRIU_PREFIX/root/usr/sbin/criu" ]; then
  if ! grep -q sockopt-shim "$CRIU_PREFIX/criu" 2>/dev/null && [ -w "$CRIU_PREFIX" ]; then
    settle_wrapper || true
  fi
  if criu_works "$CRIU_PREFIX/criu" || { [ -w "$CRIU_PREFIX" ] && settle_wrapper; }; then
    record "$CRIU_PREFIX/criu" "private CRIU already provisioned"
    exit 0
  fi
fi

say "provisioning CRIU from Debian trixie into $CRIU_PREFIX (system apt configuration untouched)"
mkdir -p "$CRIU_PREFIX" 2>/dev/null && [ -w "$CRIU_PREFIX" ] || die "$CRIU_PREFIX is not writable"
# The mirror URI the system already uses for Debian itself.
if [ -z "$MIRROR" ]; then
  MIRROR=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
fi
[ -n "$MIRROR" ] || die "could not find a Debian mirror URI in /etc/apt/sources.list{,.d/debian.sources}; give --mirror URL"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "missing $KEYRING (package debian-archive-keyring)"

APTDIR=$CRIU_PREFIX.apt
rm -rf "$APTDIR"
mkdir -p "$APTDIR"/{lists/partial,archives/partial,etc/sources.list.d,etc/preferences.d,debs}
trap 'rm -rf "$APTDIR"' EXIT
cat > "$APTDIR/etc/sources.list" <<SRC
deb [signed-by=$KEYRING] $MIRROR trixie main
SRC
: > "$APTDIR/status"
APT_OPTS=(
  -o Dir::State="$APTDIR" -o Dir::State::Lists="$APTDIR/lists"
  -o Dir::State::status="$APTDIR/status" -o Dir::Cache="$APTDIR"
  -o Dir::Etc::SourceList="$APTDIR/etc/sources.list" -o Dir::Etc::SourceParts="$APTDIR/etc/sources.list.d"
  -o Dir::Etc::Preferences="$APTDIR/etc/preferences" -o Dir::Etc::PreferencesParts="$APTDIR/etc/preferences.d"
  -o APT::Architecture="$(dpkg --print-architecture)" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
  -o Acquire::Retries=1 -o Acquire::http::Timeout=20
)
apt-get "${APT_OPTS[@]}" update -qq || die "could not read trixie's package lists from $MIRROR"

# Library closure: criu and everything it (transitively) Depends/Pre-Depends on,
# keeping libraries and the C library; tools like python3 or perl are not needed
# by the criu binary.
closure=$(apt-cache "${APT_OPTS[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances criu \
  | grep -vE '^ |<' | sort -u | grep -E '^(criu|lib[^ ]*|.*-libs?)$' || true)
[ -n "$closure" ] || die "could not resolve criu's dependencies in trixie"
say "downloading $(echo "$closure" | wc -l) packages: $(echo $closure)"
# shellcheck disable=SC2086  # one word per package
( cd "$APTDIR/debs" && apt-get "${APT_OPTS[@]}" download $closure >/dev/null ) \
  || die "apt-get download failed"

ROOT=$CRIU_PREFIX/root
rm -rf "$ROOT"; mkdir -p "$ROOT"
for deb in "$APTDIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done

if ! settle_wrapper; then
  "$CRIU_PREFIX/criu" check 2>&1 | tail -5 >&2
  die "the private CRIU at $CRIU_PREFIX/criu also fails 'criu check' or a test dump (output above)"
fi
record "$CRIU_PREFIX/criu" "CRIU ready"
