#!/usr/bin/env bash
# Builds the tiny test/demo image as a rootfs tarball (tar.zst, what
# `podman export | zstd` would give): busybox from Debian's busybox-static and
# the static counter workload.
#   build-image.sh OUT.tar.zst COUNTER_BINARY [MORE_BINARIES...]
# (more binaries go to /usr/local/bin under their own names)
set -euo pipefail
out=$1 counter=$2
shift 2
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "build-image: busybox not found (install busybox-static)" >&2; exit 1; }
case "$(ldd "$busybox" 2>&1 || true)" in *"not a dynamic"*) ;; *) false ;; esac || { echo "build-image: $busybox is not static (install busybox-static)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,proc,sys,dev,root,data}
chmod 1777 "$stage/tmp"
cp "$busybox" "$stage/bin/busybox"
for app in $("$busybox" --list); do
  [ "$app" = busybox ] || ln -sf busybox "$stage/bin/$app"
done
install -m 0755 "$counter" "$stage/usr/local/bin/counter"
for extra in "$@"; do install -m 0755 "$extra" "$stage/usr/local/bin/$(basename "$extra")"; done
printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\naudio:x:29:app\nstaff:x:50:\napp:x:1000:\nnogroup:x:65534:\n' > "$stage/etc/group"
# A user with a supplementary group, and a working directory reached through
# a symlink (the identity tests).
mkdir -p "$stage/home/app" "$stage/srv/app" "$stage/opt"
ln -s /srv/app "$stage/opt/applink"
echo ferry-test > "$stage/etc/hostname"
mkdir -p "$stage/opt/app"
echo a > "$stage/opt/app/a"
echo b > "$stage/opt/app/b"
tar --numeric-owner --owner=0 --group=0 -C "$stage" -cf - . | zstd -q -f -o "$out"
