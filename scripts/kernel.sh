#!/bin/sh
# Print the path of the guest kernel to boot:
#   1. $CELLVM_KERNEL if set (an error if it does not exist),
#   2. on a PVM host (kvm_pvm loaded), cellvm's own guest kernel from guest/,
#      built once (about 11 minutes on 2 cores) and then cached: only a PVM
#      guest kernel runs at usable speed there,
#   3. else the shared PVM guest kernel ../shared/guest/vmlinux if present,
#   4. else the newest Debian stock kernel /boot/vmlinuz-* (VMX/SVM hosts
#      boot any kernel).
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

if [ -e /sys/module/kvm_pvm ]; then
	exec "$root_dir/guest/build.sh"
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
