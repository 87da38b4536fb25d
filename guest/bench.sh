#!/bin/bash
# Benchmark the guest kernel under cellvm:
#   1. boot time: wall time from starting `cellvm run` to the initramfs /init
#      printing CELLVM-INIT-READY (median, min and max of RUNS boots),
#   2. compute speed: the same static CPU-bound program (guest/tests/stress.c,
#      "stress bench ITERS") run 7 times natively on the host and 7 times in
#      one guest; guest/host ratio of the fastest runs (1.00 = native speed;
#      medians too).
#
#   guest/bench.sh              print a report; last line "BENCH key=value ..."
#
# Environment: CELLVM_BIN (default build/cellvm, built with make if missing),
# CELLVM_KERNEL (default: guest/build.sh's kernel, built if missing),
# CELLVM_INITRD (default build/guest/initramfs.cpio, made with
# scripts/mkinitramfs.sh if missing), RUNS (10), CPUS (1), MEMORY (512M),
# ITERS (100000000), CMDLINE (console=ttyS0 reboot=k panic=-1 quiet).
set -euo pipefail

prog=guest/bench.sh
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
runs=${RUNS:-10}
cpus=${CPUS:-1}
memory=${MEMORY:-512M}
iters=${ITERS:-100000000}
cmdline=${CMDLINE:-console=ttyS0 reboot=k panic=-1 quiet}

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

bin=${CELLVM_BIN:-$root/build/cellvm}
if [ ! -x "$bin" ]; then
	[ -z "${CELLVM_BIN-}" ] || die "CELLVM_BIN=$bin is not executable"
	make -C "$root" -s build/cellvm >&2
fi
kernel=${CELLVM_KERNEL:-}
[ -n "$kernel" ] || kernel=$("$here/build.sh")
[ -f "$kernel" ] || die "no kernel $kernel"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

initrd=${CELLVM_INITRD:-$root/build/guest/initramfs.cpio}
if [ ! -f "$initrd" ]; then
	[ -z "${CELLVM_INITRD-}" ] || die "CELLVM_INITRD=$initrd does not exist"
	initrd=$tmp/initramfs.cpio
	"$root/scripts/mkinitramfs.sh" "$initrd"
fi

# The benchmark program, appended to the initramfs as a second cpio archive
# (the kernel unpacks concatenated archives in order).
gcc -O2 -static -o "$tmp/stress" "$here/tests/stress.c"
mkdir -p "$tmp/extra/bin"
cp "$tmp/stress" "$tmp/extra/bin/stress"
# (The kernel hands at most 32 words to init: loops go in a script.)
cat >"$tmp/extra/bin/stress-bench.sh" <<'EOS'
i=0
while [ $i -lt "$2" ]; do
	grep '^cpu ' /proc/stat
	stress bench "$1"
	grep '^cpu ' /proc/stat
	i=$((i + 1))
done
EOS
(cd "$tmp/extra" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0) >"$tmp/extra.cpio"
cat "$initrd" "$tmp/extra.cpio" >"$tmp/initrd-bench.cpio"

say "kernel $kernel"
say "cellvm $bin, $cpus vCPU(s), $memory"

python3 - "$bin" "$kernel" "$tmp/initrd-bench.cpio" "$cmdline" "$cpus" "$memory" \
	"$runs" "$iters" "$tmp/stress" <<'EOF'
import re, statistics, subprocess, sys, time

bin_, kernel, initrd, cmdline, cpus, memory, runs, iters, stress = sys.argv[1:]
runs, iters = int(runs), int(iters)

def boot(command, timeout=120):
    """Boot; return (seconds to CELLVM-INIT-READY, full console output)."""
    args = [bin_, "run", "--kernel", kernel, "--initrd", initrd, "--cpus", cpus,
            "--memory", memory, "--cmdline", f"{cmdline} -- {command}"]
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out, ready = b"", None
    deadline = t0 + timeout
    while True:
        line = p.stdout.readline()
        if not line:
            break
        out += line
        if ready is None and b"CELLVM-INIT-READY" in line:
            ready = time.monotonic() - t0
        if time.monotonic() > deadline:
            p.kill()
            break
    rc = p.wait()
    text = out.decode("utf-8", "replace")
    if ready is None or rc != 0:
        sys.exit(f"boot failed (exit {rc}):\n{text[-3000:]}")
    return ready, text

times = []
for i in range(runs):
    t, _ = boot("true")
    times.append(t)
    print(f"boot {i + 1}/{runs}: {t:.3f} s", file=sys.stderr)

def bench_host():
    out = subprocess.run([stress, "bench", str(iters)], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"STRESS-BENCH (\d+) ns (\w+) cpu (\d+) ns", out)
    # CPU time: what the program would take on an otherwise idle host core
    return int(m.group(3)), m.group(2)

# The machine may be shared: host runs use CPU time (preemption by other work
# does not count), guest runs wall time minus steal time (ditto for the vCPU
# thread); the ratio uses the fastest run of each side, medians are printed
# too, and the guest's raw wall times.
host = [bench_host() for _ in range(3)]
_, text = boot(f"sh /bin/stress-bench.sh {iters} 7", timeout=600)
host += [bench_host() for _ in range(4)]
# Each guest run: wall time minus the steal time (time the vCPU thread waited
# for a host CPU, kvm steal-time accounting, USER_HZ=100 ticks) accrued during it.
runs_re = re.compile(r"^cpu\s+(?:\d+\s+){7}(\d+).*?STRESS-BENCH (\d+) ns (\w+) cpu \d+ ns"
                     r".*?^cpu\s+(?:\d+\s+){7}(\d+)", re.S | re.M)
guest, guest_wall = [], []
for steal0, ns, h, steal1 in runs_re.findall(text):
    guest_wall.append(int(ns))
    guest.append((max(int(ns) - (int(steal1) - int(steal0)) * 10_000_000, 1), h))
if len(guest) != 7:
    sys.exit(f"guest benchmark output missing:\n{text[-3000:]}")
if any(h != host[0][1] for _, h in guest + host):
    sys.exit("guest computed a different result than the host")
host_min = min(h[0] for h in host)
guest_min = min(g[0] for g in guest)
host_med = statistics.median(h[0] for h in host)
guest_med = statistics.median(g[0] for g in guest)

med = statistics.median(times)
print(f"boot to /init ({runs} runs): median {med:.3f} s, min {min(times):.3f} s, "
      f"max {max(times):.3f} s")
print(f"compute (stress bench {iters}, 7 runs each): host min {host_min / 1e6:.1f} ms "
      f"(median {host_med / 1e6:.1f}), guest min {guest_min / 1e6:.1f} ms "
      f"(median {guest_med / 1e6:.1f}); guest/host time {guest_min / host_min:.3f} "
      f"(medians {guest_med / host_med:.3f}); guest wall min {min(guest_wall) / 1e6:.1f} ms")
print(f"BENCH boot_median_s={med:.3f} boot_min_s={min(times):.3f} "
      f"boot_max_s={max(times):.3f} host_min_ms={host_min / 1e6:.1f} "
      f"guest_min_ms={guest_min / 1e6:.1f} guest_host_ratio={guest_min / host_min:.3f} "
      f"guest_host_ratio_median={guest_med / host_med:.3f} "
      f"guest_wall_min_ms={min(guest_wall) / 1e6:.1f}")
EOF
