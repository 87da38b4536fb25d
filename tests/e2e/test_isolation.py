"""The VMM confined: every thread of a running VM under its seccomp filter
(the rest of the suite runs with them too, which proves the lists
complete), vCPU threads pinned to host CPUs, and a CPU quota that caps the
VM's CPU time. Bad values exit 2 with one line."""
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, cpu_seconds, refused, vm_args

pytestmark = pytest.mark.vm


def boot(spawn, kernel, initrd, tmp_path, cpus=None, extra=(), env=None):
    """A guest at its prompt, with a qcow2 disk so that disk workers run."""
    disk = tmp_path / "d.qcow2"
    if not disk.exists():
        os.system(f"qemu-img create -q -f qcow2 {disk} 16M")
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", cpus, ["--disk", str(disk), *extra]), env=env)
    g.wait_ready(BOOT_TIMEOUT)
    return g


def threads(g):
    """{thread name: [status fields]} of the VMM process."""
    out = {}
    for tid in os.listdir(f"/proc/{g.proc.pid}/task"):
        try:
            with open(f"/proc/{g.proc.pid}/task/{tid}/status") as f:
                text = f.read()
        except FileNotFoundError:
            continue  # ended meanwhile
        fields = dict(re.findall(r"^(\w+):\s*(.*)$", text, re.M))
        # KVM's own workers in the process (kvm-nx-lpage-recovery) run no user code.
        if not fields["Name"].startswith("kvm-"):
            out.setdefault(fields["Name"], []).append(fields)
    return out


def test_every_thread_filtered(spawn, kernel, initrd, kvm_available, tmp_path):
    g = boot(spawn, kernel, initrd, tmp_path, cpus=2)
    # Writes that allocate qcow2 clusters start the disk workers.
    out, status = g.run("dd if=/dev/urandom of=/dev/vda bs=64k count=64 2>&1 && sync", 60)
    assert status == 0, out
    t = threads(g)
    assert {"cellvm", "vcpu0", "vcpu1", "disk-worker"} <= set(t), t.keys()
    for name, entries in t.items():
        for fields in entries:
            assert fields["Seccomp"] == "2", (name, fields["Seccomp"])
            assert fields["NoNewPrivs"] == "1", name
            # Their own filter on top of the main thread's.
            want = "1" if name == "cellvm" else "2"
            assert fields["Seccomp_filters"] == want, (name, fields["Seccomp_filters"])
    out, status = g.run("echo alive", 30)
    assert status == 0 and "alive" in out


def inject(g, thread, call):
    """Makes the VMM's thread `thread` run `call` (a C expression), through
    gdb: a forbidden syscall from inside a running VM."""
    if not shutil.which("gdb"):
        pytest.skip("gdb not installed (apt-get install gdb)")
    pick = f'python [t.switch() for t in gdb.selected_inferior().threads() if t.name == "{thread}"]'
    subprocess.run(["gdb", "-p", str(g.proc.pid), "-batch", "-ex", "handle SIGSYS nostop noprint pass",
                    "-ex", pick, "-ex", f"call {call}"], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("thread, call, name", [
    ("cellvm", "(int)socket(17, 3, 0)", "socket"),      # AF_PACKET from the main thread
    ("vcpu0", '(int)open("/etc/hostname", 0)', "openat"),  # a vCPU opens no files
])
def test_violation_ends_the_vm(spawn, kernel, initrd, kvm_available, tmp_path, thread, call, name):
    g = boot(spawn, kernel, initrd, tmp_path)
    inject(g, thread, call)
    assert g.wait_exit() == 1, g.describe()
    lines = [l for l in g.stderr.splitlines() if "seccomp" in l]
    assert len(lines) == 1 and f"thread {thread if thread != 'cellvm' else 'main'} made syscall {name}" in lines[0], \
        g.stderr


def test_off_and_log(spawn, kernel, initrd, kvm_available, tmp_path):
    g = boot(spawn, kernel, initrd, tmp_path, extra=["--seccomp", "off"])
    assert all(f["Seccomp"] == "0" for entries in threads(g).values() for f in entries)
    g.close()
    g = boot(spawn, kernel, initrd, tmp_path, env={"CELLVM_SECCOMP": "log"})
    assert all(f["Seccomp"] == "2" for entries in threads(g).values() for f in entries)


def test_bad_seccomp(kernel):
    refused(["--kernel", kernel, "--seccomp", "strict"], "invalid --seccomp 'strict'")
    refused(["--kernel", kernel], "invalid CELLVM_SECCOMP 'loud'", env={"CELLVM_SECCOMP": "loud"})


def test_pinned_vcpus(spawn, kernel, initrd, kvm_available, tmp_path):
    host = sorted(os.sched_getaffinity(0))
    pin = [host[-1], host[0]]
    g = boot(spawn, kernel, initrd, tmp_path, extra=["--cpus", f"2,pin={pin[0]},{pin[1]}"])
    t = threads(g)
    assert t["vcpu0"][0]["Cpus_allowed_list"] == str(pin[0])
    assert t["vcpu1"][0]["Cpus_allowed_list"] == str(pin[1])
    # Only vCPUs are pinned: the rest runs where it may.
    assert t["cellvm"][0]["Cpus_allowed_list"] != str(pin[0]) or len(host) == 1


def test_cpu_quota(spawn, kernel, initrd, kvm_available, tmp_path):
    """A guest spinning on its one vCPU under quota=25% gets about a
    quarter of a host CPU, and keeps working."""
    g = boot(spawn, kernel, initrd, tmp_path, extra=["--cpus", "1,quota=25%"])
    g.send("while :; do :; done &")
    g.run("echo spinning", 60)
    c0, t0 = cpu_seconds(g.proc.pid), time.monotonic()
    time.sleep(4)
    used = (cpu_seconds(g.proc.pid) - c0) / (time.monotonic() - t0)
    assert 0.02 < used < 0.25 + 0.12, f"VMM used {used:.2f} of a CPU under a 25% quota"
    out, status = g.run("echo responsive", 60)
    assert status == 0 and "responsive" in out


def test_bad_cpus(kernel):
    refused(["--kernel", kernel, "--cpus", "2,quota=250%"], "quota 250% is not below what 2 vCPUs can use (200%)")
    refused(["--kernel", kernel, "--cpus", "1,pin=1023"], "host CPU 1023 is not one cellvm may run on")
    refused(["--kernel", kernel, "--cpus", "1,turbo=on"], "unknown option 'turbo=on'")


def test_backing_file_outside_the_image_directory(spawn, kernel, initrd, kvm_available, tmp_path):
    """A qcow2 whose header names a host file outside its directory as its
    backing file is refused, so a guest cannot read that file; the user can
    allow the directory with --allow-backing."""
    host, vm = tmp_path / "host", tmp_path / "vm"
    host.mkdir()
    vm.mkdir()
    (host / "secret.raw").write_bytes(b"host-secret-bytes".ljust(1 << 20, b"\0"))
    for name, backing in (("abs.qcow2", str(host / "secret.raw")), ("rel.qcow2", "../host/secret.raw")):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw", str(vm / name)],
                       check=True)
        refused(["--kernel", kernel, "--initrd", initrd, "--disk", vm / name], "outside the image's directory",
                "--allow-backing", "secret.raw")
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None,
                      ["--disk", str(vm / "rel.qcow2"), "--allow-backing", str(host)]))
    g.wait_ready(BOOT_TIMEOUT)
    out, rc = g.run("head -c 17 /dev/vda; echo", 60)
    assert rc == 0 and "host-secret-bytes" in out, out
    refused(["--kernel", kernel, "--allow-backing", str(tmp_path / "none")], "invalid --allow-backing")
