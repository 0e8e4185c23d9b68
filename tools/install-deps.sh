#!/usr/bin/env bash
# Installs everything ferry needs on a Debian 12 machine, idempotently.
#
#   tools/install-deps.sh [--with-podman] [--criu-prefix DIR]
#
# * build and test dependencies from Debian's own packages (apt-get);
# * runc, conmon, iptables, nftables and a CRIU that works on the running kernel
#   (tools/provision-criu.sh): the system's CRIU where `criu check` passes,
#   otherwise CRIU 4.1.x from Debian's next stable release ("trixie") unpacked
#   into a private prefix, reached through a small wrapper script. The system's
#   apt configuration is never changed for that: a private apt state directory
#   is used.
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
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
  help2man  # the man pages, from each program's --help
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
# The system's CRIU where it works on this kernel, else a private one in
# $CRIU_PREFIX; recorded in /etc/ferry/criu-path. The ferry package's postinst
# runs the same script with the shim it ships.
bash "$SRC_DIR/tools/provision-criu.sh" --prefix "$CRIU_PREFIX" \
  --shim-source "$SRC_DIR/tools/criu/sockopt-shim.c"
