#!/usr/bin/python3
"""Density benchmark (`make bench-density`): numbers only, no assertions.

How much host memory an idle guest of this kernel costs, and so how many
fit in a budget of host memory: N idle 256 MiB guests booted to their
shell, their processes' summed PSS (what each really costs the host) once
they settled, for
  * naive: anonymous RAM, nothing shared;
  * merge: merge=on with the host's KSM running (started by the benchmark,
    its settings put back after) until its sharing stops growing;
  * balloon: a balloon with free page reporting, where cellvm has one,
    so the guests hand their free pages back;
and QEMU with the same settings (mem-merge, virtio-balloon with
free-page-reporting) in the same run. Then the guest's compute speed and
boot time on 2M huge pages against 4 KiB pages.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CMDLINE, Boot, arg_parser, qemu_argv  # noqa: E402

PROMPT = re.compile(rb"cellvm:\S*# ")
KSM = "/sys/kernel/mm/ksm"


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))


def read(path):
    with open(path) as f:
        return f.read().strip()


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


class Ksm:
    """KSM on, fast, for a while; its settings put back by stop()."""

    KEYS = ("run", "pages_to_scan", "sleep_millisecs")

    def __init__(self):
        self.before = {k: read(f"{KSM}/{k}") for k in self.KEYS}
        for k, v in (("pages_to_scan", 10000), ("sleep_millisecs", 10), ("run", 1)):
            write(f"{KSM}/{k}", v)

    def settle(self, timeout=120):
        """Waits until pages_sharing stops growing; returns it."""
        last, steady, deadline = -1, 0, time.monotonic() + timeout
        while time.monotonic() < deadline and steady < 3:
            time.sleep(1)
            now = int(read(f"{KSM}/pages_sharing"))
            steady = steady + 1 if now <= last * 1.01 else 0
            last = max(last, now)
        return last

    def stop(self):
        # Unmerge what it merged (run=2) before putting the settings back.
        write(f"{KSM}/run", 2)
        for k in self.KEYS:
            write(f"{KSM}/{k}", self.before[k])


def cellvm_guest(a, opts):
    return [a.cellvm, "run", "--kernel", a.kernel, "--initrd", a.initrd, "--cmdline", CMDLINE,
            "--memory", f"{a.memory}M{opts}"]


def qemu_guest(a, extra):
    argv = qemu_argv(a)
    return argv + extra


def settle_guests(boots, a):
    """Every guest at its prompt, then idle for a moment."""
    for b in boots:
        if b.wait_for(PROMPT, a.timeout) is None:
            last = (b.err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            return f"a guest did not reach its shell: {last}"
    time.sleep(a.settle)
    return None


def density(argvs, a, ksm=False):
    """Boots the guests, settles them (and KSM), returns (PSS KiB per guest,
    detail) or (None, why)."""
    boots = [Boot(argv) for argv in argvs]
    k = None
    try:
        why = settle_guests(boots, a)
        if why:
            return None, why
        detail = ""
        if ksm:
            k = Ksm()
            detail = f", KSM pages_sharing {k.settle()}"
        total = sum(pss_kib(b.p.pid) for b in boots)
        return total / len(boots), detail
    finally:
        if k:
            k.stop()
        for b in boots:
            b.stop()


def show(name, per_guest, detail, a, naive=None):
    fit_budget = a.budget * 1024 / per_guest
    fit_one = a.memory * 1024 / per_guest
    ratio = f", {naive / per_guest:.2f}x naive" if naive else ""
    print(f"{name:16s} {per_guest / 1024:7.1f} MiB per idle guest (PSS) | {fit_budget:6.1f} guests in "
          f"{a.budget} MiB | {fit_one:5.1f} in the {a.memory} MiB one naive guest is given{ratio}{detail}")


def compute(argv, a):
    """(start -> shell, seconds of md5sum over 64 MiB of tmpfs) or None."""
    b = Boot(argv)
    try:
        t = b.wait_for(PROMPT, a.timeout)
        if t is None:
            return None
        b.p.stdin.write(b"dd if=/dev/zero of=/dev/shm/x bs=1M count=64 2>/dev/null; "
                        b"time -p md5sum /dev/shm/x; echo DO''NE\n")
        b.p.stdin.flush()
        if b.wait_for(re.compile(rb"DONE"), a.timeout + t) is None:
            return None
        m = re.search(rb"real (\d+\.\d+)", b.out)
        return t, float(m.group(1)) if m else None
    finally:
        b.stop()


def hugepage_figures(a):
    path = "/proc/sys/vm/nr_hugepages"
    pages = a.memory // 2
    if not os.access(path, os.W_OK):
        print("hugepages        not measured: cannot reserve huge pages (not root)")
        return
    before = read(path)
    try:
        write(path, pages)
        if int(read(path)) < pages:
            print(f"hugepages        not measured: the host could not reserve {pages} pages of 2 MiB")
            return
        for name, opts in (("4K pages", ""), ("2M pages", ",hugepages=2M")):
            r = compute(cellvm_guest(a, opts), a)
            if not r:
                print(f"{name:16s} did not boot")
                continue
            md5 = f"{r[1]:.2f} s" if r[1] is not None else "n/a"
            print(f"{name:16s} start->shell {r[0] * 1000:7.1f} ms | md5sum of 64 MiB in the guest {md5}")
    finally:
        write(path, before)


def has_qemu():
    return subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode == 0


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--guests", type=int, default=6)
    ap.add_argument("--memory", type=int, default=256, help="MiB per guest")
    ap.add_argument("--budget", type=int, default=4096, help="MiB of host memory")
    ap.add_argument("--settle", type=float, default=3, help="seconds idle before measuring")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    n = a.guests
    print(f"density: {n} idle guests of {a.memory} MiB each, kernel {a.kernel}; budget {a.budget} MiB")
    ksm_ok = os.access(f"{KSM}/run", os.W_OK)
    balloon = "--balloon" in subprocess.run([a.cellvm, "run", "--help"], capture_output=True, text=True).stdout

    cases = [("cellvm naive", [cellvm_guest(a, "")] * n, False)]
    if ksm_ok:
        cases.append(("cellvm merge", [cellvm_guest(a, ",merge=on")] * n, True))
    if balloon:
        cases.append(("cellvm balloon", [cellvm_guest(a, "") + ["--balloon", "free_page_reporting=on"]] * n, False))
    if has_qemu():
        cases.append(("qemu naive", [qemu_guest(a, [])] * n, False))
        if ksm_ok:
            cases.append(("qemu merge", [qemu_guest(a, ["-machine", "mem-merge=on"])] * n, True))
        cases.append(("qemu balloon", [qemu_guest(a, ["-device", "virtio-balloon-device,free-page-reporting=on"])] * n,
                      False))
    else:
        print("qemu             not installed (Debian package qemu-system-x86): no comparison")
    if not ksm_ok:
        print("merge            not measured: no KSM on this host (or not root)")
    if not balloon:
        print("balloon          not measured: this cellvm has no --balloon")
    got = {}
    for name, argvs, ksm in cases:
        per, detail = density(argvs, a, ksm)
        if per is None:
            print(f"{name:16s} failed: {detail}")
            continue
        vmm, mode = name.split()
        got[vmm, mode] = per
        naive = got.get((vmm, "naive"))
        show(name, per, detail, a, naive if mode != "naive" else None)
    for mode in ("naive", "merge", "balloon"):
        if ("cellvm", mode) in got and ("qemu", mode) in got:
            print(f"ratio {mode:10s} memory per guest cellvm/qemu {got['cellvm', mode] / got['qemu', mode]:.2f}")
    hugepage_figures(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
