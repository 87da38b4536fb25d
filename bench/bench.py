#!/usr/bin/env python3
"""cellvm boot benchmark: prints numbers, asserts nothing.

For the same kernel and initramfs it measures
  * process start -> guest /init marker (median of N runs),
  * process start -> first KVM_RUN of the boot vCPU (cellvm's boot trace),
  * the VMM's own resident memory: RSS minus the guest RAM it has touched,
and the same for QEMU (qemu-system-x86_64) where QEMU can boot that kernel.
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


def cellvm_argv(a):
    return [a.cellvm, "run", "--kernel", a.kernel, "--initrd", a.initrd,
            "--memory", f"{a.memory}M", "--cmdline", CMDLINE]


def qemu_argv(a):
    # -arch-capabilities: QEMU aborts setting that MSR on PVM hosts.
    return ["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
            "-m", f"{a.memory}M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-nographic", "-serial", "stdio", "-no-reboot",
            "-kernel", a.kernel, "-initrd", a.initrd, "-append", CMDLINE]


def measure(name, argv, a, trace):
    env = dict(os.environ, CELLVM_BOOT_TRACE="1") if trace else None
    boots, firsts, rss = [], [], None
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
        if i == 0:
            time.sleep(0.5)  # let the guest settle at its shell
            total, guest = b.vmm_rss_kib(a.memory << 20)
            rss = (total, guest)
        b.stop()
    return {"boot": statistics.median(boots), "boot_min": min(boots),
            "first": statistics.median(firsts) if firsts else None, "rss": rss}, None


def show(name, r):
    first = f"{r['first'] * 1000:8.1f} ms" if r["first"] is not None else "     n/a"
    total, guest = r["rss"]
    print(f"{name:8s} start->/init median {r['boot'] * 1000:8.1f} ms (min {r['boot_min'] * 1000:.1f})"
          f" | start->first guest instruction {first}"
          f" | VMM RSS {total - guest:7d} KiB (total {total} KiB, guest RAM touched {guest} KiB)")


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
    a = ap.parse_args()

    print(f"kernel {a.kernel}, initrd {a.initrd}, {a.memory} MiB, {a.runs} runs each")
    mine, err = measure("cellvm", cellvm_argv(a), a, trace=True)
    if err:
        print(err)
        return 1
    show("cellvm", mine)
    if subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode:
        print("qemu     not installed (Debian package qemu-system-x86): no comparison")
        return 0
    theirs, err = measure("qemu", qemu_argv(a), a, trace=False)
    if err:
        print(f"qemu     could not boot this kernel: {err}")
        return 0
    show("qemu", theirs)
    print(f"ratio    boot time cellvm/qemu {mine['boot'] / theirs['boot']:.2f}, VMM RSS cellvm/qemu "
          f"{(mine['rss'][0] - mine['rss'][1]) / max(1, theirs['rss'][0] - theirs['rss'][1]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
