"""A lean VMM: the process that runs a VM maps only the libraries its VM
uses. libslirp, libnbd, GnuTLS and libarchive sit in modules
(cellvm-NAME.so beside the executable) that a process loads when it needs
one, before its syscall filter goes on; everything else is in the
executable, which needs only libc."""
import os
import re
import subprocess

import pytest

from conftest import DEFAULT_CMDLINE, cellvm_bin, vm_args
from test_api import wait_sock

pytestmark = pytest.mark.vm

# What every process maps besides its own executable.
BASE = {"libc.so.6", "ld-linux-x86-64.so.2"}


def libraries(pid):
    """Base names of the shared objects a process maps."""
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    return {os.path.basename(p) for p in paths if ".so" in os.path.basename(p)}


@pytest.fixture
def tap():
    name = f"cvlean{os.getpid() % 10000}"
    subprocess.run(["ip", "tuntap", "add", "dev", name, "mode", "tap"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)


def test_executable_needs_only_libc():
    out = subprocess.run(["readelf", "-d", str(cellvm_bin())], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    assert needed == {"libc.so.6"}, needed
    for m in ("nat", "nbd", "tls", "seal", "archive"):
        assert (cellvm_bin().parent / f"cellvm-{m}.so").exists(), m


def test_vm_with_disk_and_tap_maps_no_module(spawn, kernel, initrd, tmp_path, tap):
    disk = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None,
                      ["--disk", str(disk), "--net", f"tap={tap}"]))
    g.wait_ready()
    assert "/dev/vda" in g.run("ls /dev/vda")
    assert libraries(g.proc.pid) == BASE


def test_nat_loads_its_module(spawn, kernel, initrd):
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None, ["--net", "nat"]))
    g.wait_ready()
    libs = libraries(g.proc.pid)
    assert {"cellvm-nat.so", "libslirp.so.0"} <= libs, libs
    assert "cellvm-tls.so" not in libs and "cellvm-nbd.so" not in libs


def test_api_vm_loads_tls_before_its_filter(spawn, kernel, initrd, tmp_path):
    """A VM that serves the API can be told to migrate over TLS at any
    time, and under its filter nothing can be loaded any more."""
    sock = tmp_path / "api.sock"
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None, ["--api-sock", str(sock)]))
    wait_sock(g, sock)
    g.wait_ready()
    libs = libraries(g.proc.pid)
    assert "cellvm-tls.so" in libs and "cellvm-nat.so" not in libs, libs
    assert "cellvm-seal.so" in libs, libs  # PUT /mmds/config can come before boot


def test_missing_module_is_one_line(kernel, initrd, tmp_path):
    """Without its module a NAT NIC fails to open, saying which file it missed."""
    env = dict(os.environ, CELLVM_MODULE_DIR=str(tmp_path))
    res = subprocess.run([str(a) for a in vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None, ["--net", "nat"])],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("\n") == 1 and "module nat" in res.stderr, res.stderr
    assert str(tmp_path / "cellvm-nat.so") in res.stderr, res.stderr
