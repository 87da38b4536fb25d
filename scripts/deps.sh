#!/bin/sh
# Installs the Debian packages cellvm needs to build, test and benchmark.
# Quiet and quick when everything is already there; needs root (or sudo)
# only when something is missing.
set -eu

PKGS="gcc libc6-dev clang make pkg-config libcmocka-dev liburing-dev libjansson-dev libarchive-dev curl
libslirp-dev libglib2.0-dev iproute2 util-linux zlib1g-dev qemu-utils
busybox-static cpio e2fsprogs python3 python3-pytest libnbd-dev libgnutls28-dev nbdkit libseccomp-dev
qemu-system-x86 linux-image-amd64 libclang-rt-14-dev binutils gdb acpica-tools"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y -q --no-install-recommends $missing
