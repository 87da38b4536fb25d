"""Stress the guest kernel (guest/: PVM guest patch + config) on 1, 2 and 4 vCPUs.

A static test program (guest/tests/stress.c) is compiled on the host and appended
to the initramfs as a second cpio archive.  In the guest it runs CPU, fork and
page-fault-heavy memory work (half the guest's RAM) in one process per vCPU; its
checksums must equal those of the same program run natively on the host.  Each
vCPU must have done part of the work (/proc/stat per-CPU ticks), nproc must be the
vCPU count, the kernel log must be free of warnings, and the guest must power off
and reboot cleanly.

Paths: CELLVM_KERNEL, CELLVM_BIN, CELLVM_INITRD (see conftest.py).  The kernel
must be built from guest/ (guest/build.sh); the older shared kernel has no SMP.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import (BOOT_TIMEOUT, READY_MARKER, ROOT, ensure_initrd,
                      is_shared_pvm_kernel, run_command, vm_args)

pytestmark = pytest.mark.vm

# No pti=on: the kernel forces PTI itself when it detects the PVM host.
CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet"
MEMORY_MB = 512
CPU_ITERS = 40_000_000      # per worker; ~0.3 s natively
FORKS = 300                 # per worker
STRESS_TIMEOUT = 240.0
PVM_HOST = os.path.exists("/sys/module/kvm_pvm")


# What a kernel prints when it has a real problem: a WARN()/BUG() splat, an
# oops, a fault in kernel mode, a lost IPI. Informational lines that merely
# contain "WARNING" (e.g. a CPU's speculative-execution mitigation status,
# which depends on the host CPU and its microcode) are not problems.
KERNEL_PROBLEMS = "|".join([
    r"-+\[ cut here \]-+", r"WARNING: CPU:", r"BUG:", r"Oops:", r"Call Trace:",
    r"general protection fault", r"kernel BUG at", r"failed to send",
])

# Run in the guest as `sh /bin/stress-test.sh WORKERS CPU_ITERS FORKS MEM_MB`.
STRESS_SCRIPT = r"""
KERNEL_PROBLEMS='""" + KERNEL_PROBLEMS + r"""'
echo NPROC=$(nproc)
echo STAT0; grep '^cpu[0-9]' /proc/stat
stress all "$1" "$2" "$3" "$4"
echo STAT1; grep '^cpu[0-9]' /proc/stat
# a shell loop that forks many times
i=0; while [ $i -lt 300 ]; do /bin/true || break; i=$((i+1)); done; echo FORKLOOP=$i
# a file copy through tmpfs, checked
dd if=/dev/urandom of=/tmp/a bs=1M count=16 2>/dev/null
cp /tmp/a /tmp/b && cmp /tmp/a /tmp/b && echo COPY-OK
rm -f /tmp/a /tmp/b
dmesg | grep -E -e "$KERNEL_PROBLEMS" | sed 's/^/DMESG-PROBLEM: /'; echo DMESG-CHECKED
dmesg | grep -i 'page tables isolation' || true
"""


def _newc_entry(name: str, data: bytes, mode: int) -> bytes:
    namez = name.encode() + b"\0"
    fields = [0x1000, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + namez
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def make_cpio(files) -> bytes:
    """A newc archive with the given {path: (data, mode)} and a trailer."""
    out = b"".join(_newc_entry(p, d, m) for p, (d, m) in files.items())
    out += _newc_entry("TRAILER!!!", b"", 0)
    return out + b"\0" * (-len(out) % 512)


@pytest.fixture(scope="session")
def stress_bin(tmp_path_factory):
    src = ROOT / "guest" / "tests" / "stress.c"
    out = tmp_path_factory.mktemp("stress") / "stress"
    res = subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(src)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"cannot build {src} (needs gcc and the static libc):\n{res.stderr}")
    return out


@pytest.fixture(scope="session")
def stress_initrd(kernel, stress_bin, tmp_path_factory):
    if is_shared_pvm_kernel(kernel):
        pytest.skip("the shared PVM kernel has 1 vCPU only: build guest/ (guest/build.sh) "
                    "and set CELLVM_KERNEL to it")
    base = ensure_initrd()
    extra = make_cpio({"bin/stress": (stress_bin.read_bytes(), 0o100755),
                       "bin/stress-test.sh": (STRESS_SCRIPT.encode(), 0o100755)})
    out = tmp_path_factory.mktemp("initrd") / "initramfs-stress.cpio"
    out.write_bytes(base.read_bytes() + extra)
    return out


@pytest.fixture
def sboot(spawn, kernel, stress_initrd, kvm_available):
    """Like conftest's boot fixture, with the stress initramfs."""

    def _boot(cmdline=CMDLINE, memory=f"{MEMORY_MB}M", cpus=None, command=None,
              tty=False, env=None, extra=()):
        if command:
            cmdline = f"{cmdline} -- {command}"
        return spawn(vm_args(kernel, stress_initrd, cmdline, memory, cpus, extra),
                     env=env, tty=tty)

    return _boot


def host_stress(stress_bin, *args):
    res = subprocess.run([str(stress_bin), *map(str, args)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return [ln for ln in res.stdout.splitlines() if ln.startswith("STRESS-")]


def cpu_ticks(block: str) -> dict:
    """{cpu index: user+nice+system ticks} from `grep '^cpu[0-9]' /proc/stat`."""
    ticks = {}
    for m in re.finditer(r"^cpu(\d+) (\d+) (\d+) (\d+)", block, re.M):
        ticks[int(m.group(1))] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    return ticks


@pytest.mark.parametrize("cpus", [1, pytest.param(2, marks=pytest.mark.slow),
                                  pytest.param(4, marks=pytest.mark.slow)])
def test_stress_all_vcpus(sboot, stress_bin, cpus):
    mem_mb = MEMORY_MB // 2  # page-fault heavy: half the guest's RAM, split over workers
    # (The kernel passes at most 32 words to init, so the steps are a script.)
    command = f"sh /bin/stress-test.sh {cpus} {CPU_ITERS} {FORKS} {mem_mb}"
    g, out, status, rc = run_command(sboot, command, cpus=cpus,
                                     timeout=BOOT_TIMEOUT + STRESS_TIMEOUT)
    assert status == 0, g.describe()
    assert rc == 0, "guest powered off, so cellvm must exit 0\n" + g.describe()

    assert f"NPROC={cpus}" in out, g.describe()
    want = host_stress(stress_bin, "all", cpus, CPU_ITERS, FORKS, mem_mb)
    got = [ln.strip() for ln in out.splitlines() if ln.startswith("STRESS-")]
    assert got == want, f"guest results differ from the host's\n{g.describe()}"

    before = cpu_ticks(out.split("STAT0", 1)[1].split("STRESS-", 1)[0])
    after = cpu_ticks(out.split("STAT1", 1)[1].split("FORKLOOP", 1)[0])
    assert sorted(after) == list(range(cpus)), g.describe()
    busy = {c: after[c] - before.get(c, 0) for c in after}
    assert all(v >= 3 for v in busy.values()), f"idle vCPU: ticks {busy}\n{g.describe()}"

    assert "FORKLOOP=300" in out, g.describe()
    assert "COPY-OK" in out, g.describe()
    assert "DMESG-CHECKED" in out, g.describe()
    problems = [ln for ln in out.splitlines() if ln.startswith("DMESG-PROBLEM: ")]
    assert not problems, "kernel log shows problems:\n" + "\n".join(problems) + "\n" + g.describe()
    if PVM_HOST:
        assert re.search(r"page tables isolation: enabled", out), g.describe()


@pytest.mark.parametrize("cpus", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_reboot_and_poweroff_from_shell(sboot, cpus):
    g = sboot(cpus=cpus)
    g.wait_for(READY_MARKER, BOOT_TIMEOUT)
    g.wait_for(re.compile(r"cellvm:\S*# "), BOOT_TIMEOUT)
    out, status = g.run("nproc")
    assert (out.strip(), status) == (str(cpus), 0), g.describe()
    g.send("reboot")
    assert g.wait_exit() == 0, g.describe()

    g = sboot(cpus=cpus)
    g.wait_for(READY_MARKER, BOOT_TIMEOUT)
    g.wait_for(re.compile(r"cellvm:\S*# "), BOOT_TIMEOUT)
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()
