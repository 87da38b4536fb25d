#!/bin/sh
# Build the cellvm test guest's initramfs (newc cpio) from Debian's busybox-static.
#
#   scripts/mkinitramfs.sh OUT.cpio [KERNEL]
#
# No root needed: the tree is staged in a temporary directory and archived with
# owner 0:0; device nodes come from devtmpfs at boot. The output is written
# atomically (temporary file + mv) and is byte-identical from run to run.
#
# bin/vsock-test (guest/tests/vsock.c, built here with gcc -static) talks
# AF_VSOCK for the vsock tests; bin/http-req (guest/tests/http.c) sends raw
# HTTP requests (any method, headers) for the MMDS tests.
#
# /init mounts proc, sysfs, devtmpfs and devpts, sets the hostname "cellvm" and
# prints CELLVM-INIT-READY. With arguments (everything after "--" on the kernel
# command line) it runs them as `sh -c "$*"`, prints CELLVM-CMD-EXIT=<status> and
# powers off; without, it starts an interactive shell on the console and powers
# off when that shell exits. `poweroff`, `reboot` and `halt` typed in the shell
# work (pid 1 handles their signals; halt powers off).
#
# If KERNEL is given and is not the shared PVM vmlinux (which has virtio built
# in), the virtio modules of that kernel's /lib/modules/<version> and their
# dependencies are added, and /init modprobes them.
#
# Environment: BUSYBOX (default /bin/busybox), MODULES_BASE (default /lib/modules),
# SOURCE_DATE_EPOCH (mtime of all files, default 0).
set -eu

prog=mkinitramfs.sh
die() { echo "$prog: $*" >&2; exit 1; }
warn() { echo "$prog: warning: $*" >&2; }

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	die "usage: $0 OUT.cpio [KERNEL]"
fi
out=$1
kernel=${2-}
busybox=${BUSYBOX:-/bin/busybox}
modules_base=${MODULES_BASE:-/lib/modules}
case $modules_base in /*) ;; *) modules_base=$PWD/$modules_base ;; esac
epoch=${SOURCE_DATE_EPOCH:-0}

root_dir=$(cd "$(dirname "$0")/.." && pwd)
shared_kernel=$root_dir/../shared/guest/vmlinux

# Modules wanted for a stock kernel (those present are used, with their deps).
virtio_modules="virtio virtio_ring virtio_pci virtio_pci_modern_dev
virtio_pci_legacy_dev virtio_mmio virtio_blk virtio_net net_failover failover
virtio_console virtio_rng virtio_balloon vmw_vsock_virtio_transport"

command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
[ -x "$busybox" ] || die "$busybox not found (apt-get install busybox-static)"
if command -v file >/dev/null; then
	case $(file -bL "$busybox") in
	*"statically linked"* | *"static-pie linked"*) ;;
	*) die "$busybox is not statically linked (apt-get install busybox-static)" ;;
	esac
fi
if [ -n "$kernel" ]; then
	if [ ! -f "$kernel" ] || [ ! -r "$kernel" ]; then
		die "cannot read kernel '$kernel'"
	fi
	kernel=$(realpath "$kernel")
fi
out_dir=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)
out=$out_dir/$(basename "$out")

# Print the release (e.g. 6.1.0-18-amd64) of a bzImage or ELF vmlinux.
kernel_version() {
	if [ "$(dd if="$1" bs=1 skip=514 count=4 2>/dev/null)" = HdrS ]; then
		# bzImage: setup header field kernel_version (u16 at 0x20e) points
		# to the version string, relative to 0x200.
		ptr=$(od -An -tu2 -j 526 -N 2 "$1" | tr -d ' ')
		dd if="$1" bs=1 skip=$((ptr + 512)) count=256 2>/dev/null |
			tr '\0' '\n' | head -n 1 | cut -d ' ' -f 1
	else
		LC_ALL=C grep -a -o -m 1 'Linux version [^ ]*' "$1" |
			head -n 1 | cut -d ' ' -f 3
	fi
}

# Print the modules.dep paths of the given module names and their dependencies.
module_closure() { # modules.dep names...
	dep=$1
	shift
	awk -v want="$*" '
		function modname(path) {
			sub(/.*\//, "", path); sub(/\.ko(\.[a-z]+)?$/, "", path)
			gsub(/-/, "_", path); return path
		}
		{
			path = $1; sub(/:$/, "", path); name = modname(path)
			file[name] = path; deps[name] = ""
			for (i = 2; i <= NF; i++) deps[name] = deps[name] " " modname($i)
		}
		END {
			n = split(want, queue, " ")
			for (i = 1; i <= n; i++) {
				name = queue[i]
				if (!(name in file) || (name in seen)) continue
				seen[name] = 1; print file[name]
				m = split(deps[name], d, " ")
				for (j = 1; j <= m; j++) queue[++n] = d[j]
			}
		}' "$dep"
}

# Copy a module into the image, uncompressed (busybox modprobe has no zstd).
copy_module() { # src dst-without-compression-suffix
	case $1 in
	*.ko) cp "$1" "$2" ;;
	*.ko.xz) xz -dc "$1" >"$2" ;;
	*.ko.gz) gzip -dc "$1" >"$2" ;;
	*.ko.zst) zstd -qdc "$1" >"$2" ;;
	*) die "unknown module format: $1" ;;
	esac
}

# Add the virtio modules of kernel $1 to the staging tree $2.
add_modules() {
	version=$(kernel_version "$1")
	[ -n "$version" ] || { warn "cannot find the version of kernel '$1'; no modules added"; return 0; }
	moddir=$modules_base/$version
	if [ ! -f "$moddir/modules.dep" ]; then
		warn "no $moddir/modules.dep for kernel '$1'; no modules added"
		return 0
	fi
	# shellcheck disable=SC2086 # word splitting of the module list is wanted
	paths=$(module_closure "$moddir/modules.dep" $virtio_modules)
	dest=$2/lib/modules/$version
	mkdir -p "$dest"
	for path in $paths; do
		mkdir -p "$dest/$(dirname "$path")"
		copy_module "$moddir/$path" "$dest/${path%.ko*}.ko"
	done
	# modules.dep restricted to the copied modules, without compression suffixes.
	for path in $paths; do
		grep "^$path:" "$moddir/modules.dep"
	done | sed 's/\.ko\.[a-z]*/.ko/g' >"$dest/modules.dep"
	for f in modules.builtin modules.builtin.modinfo modules.order; do
		if [ -f "$moddir/$f" ]; then cp "$moddir/$f" "$dest/$f"; fi
	done
	for name in $virtio_modules; do
		if printf '%s\n' "$paths" | grep -q "/$name\.ko" ||
			printf '%s\n' "$paths" | grep -q "/$(echo "$name" | tr _ -)\.ko"; then
			echo "$name"
		fi
	done >"$2/etc/modules"
	echo "$prog: added $(printf '%s\n' "$paths" | grep -c .) modules of $version" >&2
}

write_init() {
	cat >"$1" <<'EOF'
#!/bin/sh
# /init of the cellvm test guest (generated by scripts/mkinitramfs.sh).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
umask 022

mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
hostname cellvm

if [ -s /etc/modules ]; then
	while read -r module; do
		modprobe "$module" 2>/dev/null || :
	done </etc/modules
fi

# busybox poweroff/halt/reboot (without -f) signal pid 1.
trap 'poweroff -f' USR2 USR1
trap 'reboot -f' TERM

echo CELLVM-INIT-READY

if [ $# -gt 0 ]; then
	sh -c "$*"
	echo "CELLVM-CMD-EXIT=$?"
	# Closing the last descriptor of the console waits until its output
	# has been sent, so the line above is not lost by the power-off.
	exec </dev/null >/dev/null 2>&1
	poweroff -f
fi

# Interactive shell. It must not be an "&" job (those ignore SIGINT, so
# Ctrl-C would not work in it) and pid 1 must not wait for it in the
# foreground (traps only run between commands). "setsid setsid" detaches it:
# the outer setsid makes a process group leader, so the inner one forks and
# returns at once. "setsid cttyhack" gives the shell the console as its
# controlling tty (job control); when it exits, pid 1 is asked to power off.
export PS1='\h:\w\$ '
setsid setsid sh -c 'setsid cttyhack sh; kill -USR2 1'
while :; do
	sleep 3600 &
	wait $!
done
EOF
	chmod 755 "$1"
}

staging=$(mktemp -d)
tmp_out=
cleanup() {
	rm -rf "$staging"
	if [ -n "$tmp_out" ]; then rm -f "$tmp_out"; fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

cd "$staging"
mkdir -p bin sbin usr/bin usr/sbin etc lib/modules proc sys dev tmp run root mnt var
cp "$busybox" bin/busybox
chmod 755 bin/busybox
"$busybox" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] || ln -s /bin/busybox "$applet"
done
write_init init
# Test helpers busybox lacks, built static (the guest has no libc).
command -v gcc >/dev/null || die "gcc not found (apt-get install gcc)"
gcc -O2 -static -o bin/vsock-test "$root_dir/guest/tests/vsock.c" || die "cannot build guest/tests/vsock.c"
gcc -O2 -static -o bin/http-req "$root_dir/guest/tests/http.c" || die "cannot build guest/tests/http.c"
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
echo cellvm >etc/hostname

if [ -n "$kernel" ]; then
	if [ -e "$shared_kernel" ] && [ "$kernel" = "$(realpath "$shared_kernel")" ]; then
		: # the shared PVM kernel has virtio built in
	elif [ "$kernel" = "$(realpath "$("$root_dir/guest/build.sh" --path)")" ]; then
		: # so has cellvm's own guest kernel (guest/config)
	else
		add_modules "$kernel" "$staging"
	fi
fi

find . -type d -exec chmod 755 {} +
chmod 1777 tmp
chmod 700 root
find . -exec touch -h -d "@$epoch" {} +

tmp_out=$(mktemp "$out_dir/.$(basename "$out").XXXXXX")
find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible >"$tmp_out"
chmod 644 "$tmp_out"
mv -f "$tmp_out" "$out"
tmp_out=
