#!/bin/bash
# Build cellvm's guest kernel (an uncompressed ELF vmlinux) from Debian's
# linux-source-6.12 package + guest/pvm-guest.patch + guest/config.
#
#   guest/build.sh            build if needed; print the vmlinux path on stdout
#   guest/build.sh --path     print the path the kernel has (or will have); no build
#   guest/build.sh --hash     print the cache key
#   guest/build.sh --force    rebuild even if the cached kernel exists
#
# The result is cached under ${CELLVM_CACHE:-$HOME/.cache/cellvm}/guest-kernel/<hash>/
# (vmlinux = stripped ELF, System.map, config), <hash> being a hash of config +
# patch, so it is rebuilt only when one of them changes.  The cache entry is
# written atomically (built in a temporary directory, then renamed) and a lock
# keeps two concurrent builds of the same hash from running twice.
# Progress goes to stderr; stdout has only the final path.  The kernel build
# runs under `nice -n 10` (≈11 min on 2 cores).  Missing build dependencies are
# installed with apt-get (needs root).
#
# Environment: CELLVM_CACHE, JOBS (default: nproc), KEEP_TREE=1 (keep the
# build tree in the cache directory, for debugging), LINUX_TARBALL (default
# /usr/src/linux-source-6.12.tar.xz).
set -euo pipefail

# The whole script is one function, parsed before it runs, so that editing
# this file while a build is running cannot derail that build.
main() {

prog=guest/build.sh
here=$(cd "$(dirname "$0")" && pwd)
config=$here/config
patchfile=$here/pvm-guest.patch
tarball=${LINUX_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
cache_root=${CELLVM_CACHE:-$HOME/.cache/cellvm}/guest-kernel
jobs=${JOBS:-$(nproc)}

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

mode=build
case ${1-} in
"") ;;
--path) mode=path ;;
--hash) mode=hash ;;
--force) mode=force ;;
-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) die "unknown argument '$1' (see --help)" ;;
esac

[ -f "$config" ] || die "missing $config"
[ -f "$patchfile" ] || die "missing $patchfile"

# The key covers what determines the kernel: config, patch and the format
# of this script's output (bump "v1" when the cached layout changes).
hash=$( { echo "cellvm-guest-kernel v1"; cat "$config" "$patchfile"; } |
	sha256sum | cut -c1-16)
out_dir=$cache_root/$hash
if [ "$mode" = hash ]; then echo "$hash"; exit 0; fi
if [ "$mode" = path ]; then echo "$out_dir/vmlinux"; exit 0; fi

if [ "$mode" = build ] && [ -f "$out_dir/vmlinux" ]; then
	say "cached: $out_dir/vmlinux"
	echo "$out_dir/vmlinux"
	exit 0
fi

# ---------------------------------------------------------------- dependencies
need_pkgs=()
[ -f "$tarball" ] || need_pkgs+=(linux-source-6.12)
for t in gcc:build-essential make:build-essential bc:bc bison:bison flex:flex \
	pahole:dwarves cpio:cpio xz:xz-utils perl:perl; do
	command -v "${t%%:*}" >/dev/null || need_pkgs+=("${t#*:}")
done
[ -f /usr/include/libelf.h ] || need_pkgs+=(libelf-dev)
[ -f /usr/include/openssl/ssl.h ] || need_pkgs+=(libssl-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		die "missing packages: ${need_pkgs[*]} (run as root or apt-get install them)"
	fi
	say "installing build dependencies: ${need_pkgs[*]}"
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${need_pkgs[@]}" >&2
	[ -f "$tarball" ] || die "$tarball still missing after installing linux-source-6.12"
fi

# ---------------------------------------------------------------- build
mkdir -p "$cache_root"
exec 9>"$cache_root/$hash.lock"
if ! flock -n 9; then
	say "another build of $hash is running; waiting for it"
	flock 9
fi
if [ "$mode" = build ] && [ -f "$out_dir/vmlinux" ]; then
	say "built by a concurrent run: $out_dir/vmlinux"
	echo "$out_dir/vmlinux"
	exit 0
fi

work=$(mktemp -d "$cache_root/.work-$hash.XXXXXX")
cleanup() {
	if [ "${KEEP_TREE-}" = 1 ]; then
		say "build tree kept in $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

start=$(date +%s)
elapsed() { local s=$(( $(date +%s) - start )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

say "[1/5] extracting $tarball"
tar -C "$work" -xf "$tarball"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n 1)
[ -n "$src" ] || die "no linux-source-* directory in $tarball"

say "[2/5] applying $(basename "$patchfile")"
patch -d "$src" -p1 --batch --forward --quiet <"$patchfile" >&2 ||
	die "$patchfile does not apply to $(basename "$tarball")"

say "[3/5] configuring"
cp "$config" "$src/.config"
make -C "$src" -s olddefconfig >&2
for opt in CONFIG_PVM_GUEST CONFIG_PVH CONFIG_SMP CONFIG_MITIGATION_PAGE_TABLE_ISOLATION; do
	grep -q "^$opt=y" "$src/.config" || die "$opt is not =y after olddefconfig"
done
if ! cmp -s "$config" "$src/.config"; then
	say "note: olddefconfig changed the config (refresh guest/config):"
	diff "$config" "$src/.config" | grep '^[<>] CONFIG' | head -n 20 >&2 || true
fi

say "[4/5] compiling vmlinux with $jobs jobs (nice -n 10; about 11 min on 2 cores)"
# make's output is reduced to a count of compiled files every 30 s; the full
# log is in the build tree (and printed in part on failure).
log=$work/build.log
set +e
nice -n 10 make -C "$src" -j"$jobs" vmlinux KBUILD_BUILD_USER=cellvm \
	KBUILD_BUILD_HOST=cellvm 2>&1 | tee "$log" | {
	n=0 last=$SECONDS
	while IFS= read -r line; do
		case $line in "  CC "* | "  AS "* | "  LD "* | "  AR "*) n=$((n + 1)) ;; esac
		if [ $((SECONDS - last)) -ge 30 ]; then
			last=$SECONDS
			say "  $n files compiled ($(elapsed))"
		fi
	done
	say "  $n files compiled ($(elapsed))"
}
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
	grep -E -B2 -A8 'error|Error' "$log" | tail -n 60 >&2 || tail -n 60 "$log" >&2
	die "kernel build failed (make exit $rc) after $(elapsed); full log: $log (set KEEP_TREE=1 to keep it)"
fi

say "[5/5] installing into $out_dir"
stage=$(mktemp -d "$cache_root/.stage-$hash.XXXXXX")
strip -o "$stage/vmlinux" "$src/vmlinux"
cp "$src/System.map" "$stage/System.map"
cp "$src/.config" "$stage/config"
chmod 755 "$stage"
chmod 644 "$stage/vmlinux" "$stage/System.map" "$stage/config"
rm -rf "$out_dir"
mv -T "$stage" "$out_dir"
say "done in $(elapsed): $out_dir/vmlinux"
echo "$out_dir/vmlinux"
}

main "$@"
