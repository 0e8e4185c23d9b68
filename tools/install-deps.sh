#!/usr/bin/env bash
# Installs everything ferry needs on a Debian 12 machine, idempotently.
#
#   tools/install-deps.sh [--with-podman] [--criu-prefix DIR]
#
# * build and test dependencies from Debian's own packages (apt-get);
# * runc, conmon, iptables, nftables and a CRIU that works on the running kernel: the
#   system's CRIU where `criu check` passes, otherwise CRIU 4.1.x from Debian's
#   next stable release ("trixie") unpacked into a private prefix, reached
#   through a small wrapper script. The system's apt configuration is never
#   changed for that: a private apt state directory is used.
#
# The CRIU that ferry should use is written to /etc/ferry/criu-path (the engine's
# default); the wrapper lives at $CRIU_PREFIX/criu.
set -euo pipefail

CRIU_PREFIX=/opt/ferry/criu
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)
WITH_PODMAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-podman) WITH_PODMAN=1 ;;
    --criu-prefix) CRIU_PREFIX=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and provisions CRIU)"
. /etc/os-release
[ "${ID:-}" = debian ] || say "warning: this is ${PRETTY_NAME:-an unknown system}, not Debian; trying anyway"

PKGS=(
  build-essential cmake pkg-config git
  libzmq3-dev cppzmq-dev capnproto libcapnp-dev libarchive-dev libzstd-dev zstd
  libspdlog-dev libfmt-dev libselinux1-dev libgtest-dev nlohmann-json3-dev
  libsqlite3-dev sqlite3 libxxhash-dev libssl-dev libcli11-dev
  runc conmon iptables iproute2 nftables busybox-static criu
  systemd  # systemd-socket-activate: the socket-activation test
  clang-14 libclang-rt-14-dev  # the libFuzzer targets (fuzz/, tools/fuzz.sh)
  libsystemd-dev  # sd_notify and the journal (the daemons under systemd)
  prometheus-cpp-dev  # the daemons' /metrics
  prometheus  # the metrics test scrapes a real cluster (its service is not started)
  ansible ansible-lint  # ansible/: syntax, lint and the deployment test
  mmdebstrap systemd-container  # the deployment test's booted machines
  dpkg-dev fakeroot  # cpack -G DEB (dpkg-shlibdeps)
  ca-certificates
)
[ "$WITH_PODMAN" = 1 ] && PKGS+=(podman)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No package's service is started here (prometheus's would be): the tests
  # run their own. invoke-rc.d asks policy-rc.d; 101 means "not now".
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq || die "apt-get update failed; is a Debian mirror reachable?"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
else
  say "all ${#PKGS[@]} Debian packages already installed"
fi

# ---- CRIU ---------------------------------------------------------------
mkdir -p /etc/ferry
# `criu check` is not enough: on some virtual machines it passes while every
# dump hangs (the hardware breakpoint CRIU stops a task on after its parasite
# never fires; CRIU then waits for ever). A CRIU works when it checks out and
# dumps a sleeping process within 10 s (it takes well under one).
criu_dumps() {
  local dir pid rc=1
  dir=$(mktemp -d)
  # Without the fds this script inherited: CRIU refuses a task holding an
  # inherited lock (under `flock`, as CI runs) or a socket it cannot dump.
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
criu_works() { "$1" check >/dev/null 2>&1 && criu_dumps "$1"; }

# The private CRIU's wrapper: the trixie loader and libraries, and (where
# hardware breakpoints do not fire) CRIU_FAULT=130, CRIU's own switch to stop
# a task by tracing its syscalls instead of a breakpoint. runc talks to CRIU
# over an inherited file descriptor, so the wrapper must exec.
write_wrapper() {  # ROOT NO_BREAKPOINTS(0|1)
  local root=$1 loader libdir
  # CRIU 4.1.x on Linux 6.16+ cannot dump a TCP or UDP socket without it
  # (tools/criu/sockopt-shim.c says why); harmless elsewhere.
  cc -shared -fPIC -O2 -Wall -o "$CRIU_PREFIX/sockopt-shim.so.new" "$SRC_DIR/tools/criu/sockopt-shim.c" -ldl ||
    die "could not build tools/criu/sockopt-shim.c"
  mv "$CRIU_PREFIX/sockopt-shim.so.new" "$CRIU_PREFIX/sockopt-shim.so"
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

if criu_works /usr/sbin/criu; then
  say "system CRIU passes 'criu check': using /usr/sbin/criu ($(/usr/sbin/criu --version | head -1))"
  echo /usr/sbin/criu > /etc/ferry/criu-path
  exit 0
fi
say "system CRIU fails 'criu check' on kernel $(uname -r):"
/usr/sbin/criu check 2>&1 | grep -i error | head -3 | sed 's/^/    /' || true

# A wrapper from before the socket-option shim is written again.
if [ -x "$CRIU_PREFIX/root/usr/sbin/criu" ] && ! grep -q sockopt-shim "$CRIU_PREFIX/criu" 2>/dev/null; then
  settle_wrapper || true
fi
if [ -x "$CRIU_PREFIX/root/usr/sbin/criu" ] && { criu_works "$CRIU_PREFIX/criu" || settle_wrapper; }; then
  say "private CRIU already provisioned: $CRIU_PREFIX/criu ($("$CRIU_PREFIX/criu" --version | head -1))"
  echo "$CRIU_PREFIX/criu" > /etc/ferry/criu-path
  exit 0
fi

say "provisioning CRIU from Debian trixie into $CRIU_PREFIX (system apt configuration untouched)"
# The mirror URI the system already uses for Debian itself.
MIRROR=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -1 || true)
[ -n "$MIRROR" ] || die "could not find a Debian mirror URI in /etc/apt/sources.list{,.d/debian.sources}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "missing $KEYRING (package debian-archive-keyring)"

APTDIR=$CRIU_PREFIX.apt
rm -rf "$APTDIR"
mkdir -p "$APTDIR"/{lists/partial,archives/partial,etc/sources.list.d,etc/preferences.d,debs}
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
( cd "$APTDIR/debs" && apt-get "${APT_OPTS[@]}" download $closure >/dev/null ) \
  || die "apt-get download failed"

ROOT=$CRIU_PREFIX/root
rm -rf "$ROOT"; mkdir -p "$ROOT"
for deb in "$APTDIR"/debs/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done
rm -rf "$APTDIR"

if ! settle_wrapper; then
  "$CRIU_PREFIX/criu" check 2>&1 | tail -5 >&2
  die "the private CRIU at $CRIU_PREFIX/criu also fails 'criu check' or a test dump (output above)"
fi
echo "$CRIU_PREFIX/criu" > /etc/ferry/criu-path
say "CRIU ready: $CRIU_PREFIX/criu ($("$CRIU_PREFIX/criu" --version | head -1)); recorded in /etc/ferry/criu-path"
