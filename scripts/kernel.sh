#!/bin/sh
# Print the path of the guest kernel to boot:
#   1. $CELLVM_KERNEL if set (an error if it does not exist),
#   2. else the shared PVM guest kernel ../shared/guest/vmlinux (relative to the
#      project root), the only one that boots at usable speed under PVM KVM,
#   3. else the newest Debian stock kernel /boot/vmlinuz-*.
set -eu

prog=kernel.sh
root_dir=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${CELLVM_KERNEL-}" ]; then
	if [ ! -f "$CELLVM_KERNEL" ]; then
		echo "$prog: CELLVM_KERNEL='$CELLVM_KERNEL' does not exist" >&2
		exit 1
	fi
	echo "$CELLVM_KERNEL"
	exit 0
fi

shared=$root_dir/../shared/guest/vmlinux
if [ -f "$shared" ]; then
	(cd "$(dirname "$shared")" && echo "$(pwd)/vmlinux")
	exit 0
fi

newest=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -type f 2>/dev/null |
	sed 's|^/boot/vmlinuz-||' | sort -V | tail -n 1)
if [ -z "$newest" ]; then
	echo "$prog: no guest kernel: set CELLVM_KERNEL, provide $shared," \
		"or install a Debian kernel (apt-get install linux-image-amd64)" >&2
	exit 1
fi
echo "/boot/vmlinuz-$newest"
