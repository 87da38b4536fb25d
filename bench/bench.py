#!/usr/bin/env python3
"""cellvm boot benchmark: prints numbers, asserts nothing.

For the same kernel and initramfs it measures, with 1 and with 4 vCPUs,
  * process start -> guest /init marker (median of N runs),
  * process start -> first KVM_RUN of the boot vCPU (cellvm's boot trace),
  * process start -> the guest kernel's clock starting (the marker's time
    less the guest's /proc/uptime then): what passes before the kernel
    runs its first timed code, which on PVM hosts is emulated,
  * the VMM's own resident memory: RSS minus the guest RAM it has touched,
and the same for QEMU (qemu-system-x86_64) where QEMU can boot that kernel.
The last lines are one summary per figure: cellvm, QEMU and their ratio.
"""
import argparse
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import time

MARKER = b"CELLVM-INIT-READY"
CMDLINE = "console=ttyS0 reboot=k panic=-1 pti=on quiet"


class Boot:
    """One VM process whose serial console is its stdout."""

    def __init__(self, argv, env=None):
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.out = b""
        self.err = b""

    def wait_marker(self, timeout):
        """Seconds from spawn to the marker, or None."""
        return self.wait_for(re.compile(re.escape(MARKER)), timeout)

    def wait_for(self, pattern, timeout):
        """Seconds from spawn until the console shows `pattern` (a bytes
        regex), or None; stderr is collected meanwhile."""
        deadline = self.t0 + timeout
        while not pattern.search(self.out):
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                return None
            r, _, _ = select.select([self.p.stdout, self.p.stderr], [], [], left)
            for f in r:
                chunk = os.read(f.fileno(), 65536)
                if f is self.p.stdout:
                    self.out += chunk
                else:
                    self.err += chunk
        return time.monotonic() - self.t0

    def guest_clock_start(self, timeout):
        """Seconds from spawn to when the guest's clock read 0, from its
        /proc/uptime read now at its shell; None if it does not answer."""
        start = len(self.out)
        self.p.stdin.write(b"cat /proc/uptime\n")
        self.p.stdin.flush()
        pat = re.compile(rb"\n(\d+\.\d+) \d+\.\d+\s")
        while not pat.search(self.out, start):
            if self.wait_for(re.compile(rb"\n\d+\.\d+ \d+\.\d+\s"), timeout) is None:
                return None
        now = time.monotonic()
        return now - self.t0 - float(pat.search(self.out, start).group(1))

    def vmm_rss_kib(self, guest_bytes):
        """(total RSS, RSS of guest RAM) in KiB from smaps. Guest RAM is the
        range cellvm's boot trace names (its kernel and initrd pages are file
        mappings inside it), else the one mapping of exactly guest_bytes."""
        m = re.search(rb"guest-ram 0x([0-9a-f]+)\+(\d+)", self.err)
        lo, hi = (int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2))) if m else (None, None)
        total = guest = 0
        in_guest = False
        with open(f"/proc/{self.p.pid}/smaps") as f:
            for line in f:
                v = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
                if v:
                    start, end = int(v.group(1), 16), int(v.group(2), 16)
                    in_guest = (lo <= start and end <= hi) if lo is not None else end - start == guest_bytes
                elif line.startswith("Rss:"):
                    kib = int(line.split()[1])
                    total += kib
                    if in_guest:
                        guest += kib
        return total, guest

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdout, self.p.stderr, self.p.stdin):
            f.close()


def cellvm_argv(a, cpus):
    return [a.cellvm, "run", "--kernel", a.kernel, "--initrd", a.initrd, "--cpus", str(cpus),
            "--memory", f"{a.memory}M", "--cmdline", CMDLINE]


def qemu_argv(a, cpus):
    # -arch-capabilities: QEMU aborts setting that MSR on PVM hosts.
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
            "-m", f"{a.memory}M", "-smp", str(cpus), "-nodefaults", "-no-user-config",
            "-nographic", "-serial", "stdio", "-no-reboot",
            "-kernel", a.kernel, "-initrd", a.initrd, "-append", CMDLINE]


def measure(name, argv, a, trace):
    env = dict(os.environ, CELLVM_BOOT_TRACE="1") if trace else None
    boots, firsts, clocks, rss = [], [], [], None
    for i in range(a.runs):
        b = Boot(argv, env)
        t = b.wait_marker(a.timeout)
        if t is None:
            b.stop()
            why = (b.err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            return None, f"{name} did not reach /init within {a.timeout:.0f} s: {why}"
        boots.append(t)
        m = re.search(rb"first-kvm-run (\d+\.\d+)", b.err)
        if m:
            firsts.append(float(m.group(1)) - b.t0)
        clock = b.guest_clock_start(a.timeout)
        if clock is not None:
            clocks.append(clock)
        if i == 0:
            time.sleep(0.5)  # let the guest settle at its shell
            total, guest = b.vmm_rss_kib(a.memory << 20)
            rss = (total, guest)
        b.stop()
    return {"boot": statistics.median(boots), "boot_min": min(boots),
            "first": statistics.median(firsts) if firsts else None,
            "clock": statistics.median(clocks) if clocks else None, "rss": rss}, None


def ms(v):
    return f"{v * 1000:8.1f} ms" if v is not None else "     n/a"


def show(name, cpus, r):
    total, guest = r["rss"]
    print(f"{name:8s} {cpus} vCPU start->/init median {ms(r['boot'])} (min {ms(r['boot_min']).strip()})"
          f" | start->first guest instruction {ms(r['first'])} | start->guest clock {ms(r['clock'])}"
          f" | VMM RSS {total - guest:7d} KiB (total {total} KiB, guest RAM touched {guest} KiB)")


def summary(figure, unit, mine, theirs):
    """One line per figure: cellvm, QEMU and cellvm/QEMU."""
    line = f"summary  {figure:24s} cellvm {mine:10.1f} {unit}"
    if theirs is not None:
        line += f" | qemu {theirs:10.1f} {unit} | ratio {mine / theirs:.2f}" if theirs else " | qemu n/a"
    print(line)


def arg_parser(doc):
    """The options every benchmark takes (what `make bench-*` passes)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cellvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    return ap


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--memory", type=int, default=256, help="MiB")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--cpus", default="1,4", help="vCPU counts to measure, comma-separated")
    a = ap.parse_args()

    print(f"kernel {a.kernel}, initrd {a.initrd}, {a.memory} MiB, {a.runs} runs each")
    with open("/proc/loadavg") as f:
        print(f"host load {f.read().split()[0]}, {os.cpu_count()} CPUs")
    qemu = not subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode
    if not qemu:
        print("qemu     not installed (Debian package qemu-system-x86): no comparison")
    results = []
    for cpus in [int(c) for c in a.cpus.split(",")]:
        mine, err = measure("cellvm", cellvm_argv(a, cpus), a, trace=True)
        if err:
            print(err)
            return 1
        show("cellvm", cpus, mine)
        theirs = None
        if qemu:
            theirs, err = measure("qemu", qemu_argv(a, cpus), a, trace=False)
            if err:
                print(f"qemu     could not boot this kernel: {err}")
            else:
                show("qemu", cpus, theirs)
        results.append((cpus, mine, theirs))
    for cpus, mine, theirs in results:
        def peer(f):
            """QEMU's figure, 0 where it has none, None without QEMU."""
            return None if theirs is None else f(theirs) or 0

        summary(f"start->/init {cpus}vcpu", "ms", mine["boot"] * 1000, peer(lambda r: r["boot"] * 1000))
        if mine["clock"] is not None:
            summary(f"start->guest clock {cpus}vcpu", "ms", mine["clock"] * 1000,
                    peer(lambda r: r["clock"] and r["clock"] * 1000))
        summary(f"VMM RSS {cpus}vcpu", "KiB", mine["rss"][0] - mine["rss"][1],
                peer(lambda r: r["rss"][0] - r["rss"][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
