#!/bin/bash
# Runs a command where /dev/kvm exists, on a host that has none: inside a
# Linux VM run by QEMU's TCG (pure emulation) with an emulated AMD SVM CPU,
# whose KVM (kvm_amd, nested) then runs cellvm's guests. Slow, but every
# instruction is executed for real, so the VM-booting end-to-end tests run
# on hosts without KVM (CI on a machine that is itself a VM without nested
# virtualisation, a container without /dev/kvm).
#
#   scripts/nested.sh COMMAND [ARG...]
#
# The VM (L1) boots the host's newest Debian kernel (linux-image-amd64) with
# a busybox initramfs built here (build/nested/), mounts the host's / read
# only over 9p, the repository read-write at the same path, and tmpfs on
# /tmp, /run and $HOME, then runs COMMAND in the repository as root. Its
# exit status is COMMAND's. CELLVM_KERNEL is passed in (if unset: cellvm's
# own guest kernel when it is built and cached, else scripts/kernel.sh's
# choice on this host), so guests inside boot the kernel the host would.
#
# Environment: NESTED_CPUS (default: host CPUs), NESTED_MEMORY (default 8G),
# NESTED_TIMEOUT seconds (default 3600).
set -eu

prog=scripts/nested.sh
root_dir=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "$prog: $*" >&2; exit 2; }

[ $# -gt 0 ] || die "usage: scripts/nested.sh COMMAND [ARG...]"
case $root_dir$HOME in *[[:space:]]*) die "the repository and \$HOME must have no spaces in their paths" ;; esac
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[ -x /bin/busybox ] || die "/bin/busybox missing (apt-get install busybox-static)"

# The newest installed kernel that has kvm_amd as a module.
ver=""
for v in $(ls /lib/modules 2>/dev/null | sort -V); do
	[ -f "/boot/vmlinuz-$v" ] && [ -n "$(modprobe -S "$v" --show-depends kvm_amd 2>/dev/null)" ] && ver=$v
done
[ -n "$ver" ] || die "no Debian kernel with kvm_amd under /boot and /lib/modules (apt-get install linux-image-amd64)"

if [ -z "${CELLVM_KERNEL-}" ]; then
	own=$("$root_dir/guest/build.sh" --path 2>/dev/null || true)
	if [ -n "$own" ] && [ -f "$own" ]; then
		CELLVM_KERNEL=$own
	else
		CELLVM_KERNEL=$("$root_dir/scripts/kernel.sh")
	fi
fi

out=$root_dir/build/nested
mkdir -p "$out"
initrd=$out/l1-$ver.cpio.gz
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
	tree=$(mktemp -d)
	trap 'rm -rf "$tree"' EXIT
	mkdir -p "$tree/bin" "$tree/mod" "$tree/proc" "$tree/sys" "$tree/dev" "$tree/newroot"
	cp /bin/busybox "$tree/bin/busybox"
	# virtio-pci and 9p for the file systems, KVM, and what the tests'
	# networks need (taps, bridges, veth pairs), in dependency order.
	for m in virtio_pci 9pnet_virtio 9p kvm_amd tun bridge veth; do
		modprobe -S "$ver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++' >"$tree/mod/list"
	while read -r ko; do
		case $ko in
		*.ko) cp "$ko" "$tree/mod/" ;;
		*.ko.xz) xz -dc "$ko" >"$tree/mod/$(basename "$ko" .xz)" ;;
		*.ko.zst) zstd -qdc "$ko" >"$tree/mod/$(basename "$ko" .zst)" ;;
		*) die "module $ko: unknown compression" ;;
		esac
		basename "$ko" | sed 's/\.\(xz\|zst\)$//' >>"$tree/mod/order"
	done <"$tree/mod/list"
	cat >"$tree/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mod/order); do
	insmod "/mod/$m" || echo "nested: insmod $m failed"
done
arg() { sed -n "s/.*nested\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
repo=$(arg repo)
opts=trans=virtio,version=9p2000.L,msize=512000
r=/newroot
if mount -t 9p -o "$opts,ro" root "$r" && mount -t 9p -o "$opts" repo "$r$repo"; then
	mount -t proc proc "$r/proc"
	mount -t sysfs sys "$r/sys"
	mount -t devtmpfs dev "$r/dev"
	mkdir -p "$r/dev/pts" "$r/dev/shm"
	mount -t devpts devpts "$r/dev/pts"
	mount -t tmpfs shm "$r/dev/shm"
	for d in /tmp /run /var/tmp /root; do
		mount -t tmpfs -o size=50% tmp "$r$d"
	done
	# Read-only, over the tmpfs: the cached guest kernel CELLVM_KERNEL
	# may name.
	cache=$(arg cache)
	mkdir -p "$r$cache"
	mount -t 9p -o "$opts,ro" cache "$r$cache" || echo "nested: cannot mount $cache"
	hostname nested
	chroot "$r" /bin/sh -c "cd '$repo' && . '$repo/build/nested/env' && exec /bin/sh '$repo/build/nested/cmd'"
	echo "$?" >"$r$repo/build/nested/rc"
else
	echo "nested: cannot mount the host's file systems"
fi
sync
poweroff -f
EOF
	chmod +x "$tree/init"
	(cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
fi

# The command and its environment, for the shell inside.
{
	echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME='$HOME'"
	printf "export CELLVM_KERNEL='%s'\n" "$CELLVM_KERNEL"
	# Emulated guests are slow: the end-to-end tests wait longer.
	printf "export CELLVM_TIMEOUT_SCALE='%s'\n" "${CELLVM_TIMEOUT_SCALE:-4}"
	for v in CELLVM_BIN CELLVM_INITRD CELLVM_SECCOMP PYTEST_ADDOPTS; do
		eval "[ -z \"\${$v+x}\" ] || printf \"export $v='%s'\\n\" \"\$$v\""
	done
} >"$out/env"
: >"$out/cmd"
for a in "$@"; do
	printf "'%s' " "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")" >>"$out/cmd"
done
echo >>"$out/cmd"
rm -f "$out/rc"

cache=$HOME/.cache
mkdir -p "$cache"
echo "$prog: running in a nested VM (QEMU TCG, emulated SVM, kernel $ver): $*" >&2
rc=0
timeout "${NESTED_TIMEOUT:-3600}" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi \
	-cpu EPYC,+svm,+npt -smp "${NESTED_CPUS:-$(nproc)}" -m "${NESTED_MEMORY:-8G}" \
	-display none -serial stdio -monitor none -no-reboot \
	-kernel "/boot/vmlinuz-$ver" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 nested.repo=$root_dir nested.cache=$cache" \
	-virtfs "local,path=/,mount_tag=root,security_model=passthrough,readonly=on,multidevs=remap" \
	-virtfs "local,path=$root_dir,mount_tag=repo,security_model=passthrough,multidevs=remap" \
	-virtfs "local,path=$cache,mount_tag=cache,security_model=passthrough,readonly=on,multidevs=remap" \
	2> >(grep -v "TCG doesn't support requested feature" >&2) </dev/null || rc=$?
[ -f "$out/rc" ] || die "the nested VM ended without running the command (QEMU status $rc)"
exit "$(cat "$out/rc")"
