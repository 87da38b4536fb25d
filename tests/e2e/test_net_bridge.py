"""--net bridge=BR: two VMs on a bridge the test made in a fresh network
namespace ping each other and the host; their taps (made by cellvm) go
when the VMs stop; a missing bridge or missing permission is one line, exit
status 2, and no tap left behind."""

import re

import pytest

from net_helpers import boot_in, netns_factory, procs, sh  # noqa: F401

pytestmark = [pytest.mark.vm, pytest.mark.net]

HOST, A, B = "10.77.0.1", "10.77.0.2", "10.77.0.3"


def make_bridge(ns, name="br0"):
    ns.ip("link", "add", name, "type", "bridge")
    ns.ip("addr", "add", f"{HOST}/24", "dev", name)
    ns.ip("link", "set", name, "up")


def pings(g, ip):
    out = sh(g, f"ping -c 3 -W 10 {ip}", timeout=120)
    assert re.search(r"3 packets transmitted, 3 (packets )?received", out), f"ping {ip}:\n{out}"


def test_bridge_two_vms_and_host(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    make_bridge(ns)
    a = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-br-a", "--net", "bridge=br0"])
    b = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-br-b", "--net", "bridge=br0,tap=cvtbrb"])
    a.wait_ready()
    b.wait_ready()
    ports = ns.run("ls", "/sys/class/net/br0/brif").stdout.split()
    assert len(ports) == 2 and "cvtbrb" in ports and any(p.startswith("cv") and p.endswith("-0") for p in ports), \
        f"bridge ports: {ports}"
    sh(a, f"ip link set eth0 up && ip addr add {A}/24 dev eth0")
    sh(b, f"ip link set eth0 up && ip addr add {B}/24 dev eth0")
    pings(a, B)
    pings(b, A)
    pings(a, HOST)
    res = ns.run("busybox", "ping", "-c", "3", "-W", "10", B, check=False, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for g in (a, b):
        g.send("poweroff")
        assert g.wait_exit(120) == 0, g.describe()
    assert ns.links() == ["br0", "lo"], f"left behind: {ns.links()}"


def test_bridge_missing_is_one_line_and_leaves_nothing(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    g = boot_in(spawn, ns, kernel, initrd, ["--net", "bridge=nosuchbr"])
    assert g.wait_exit(60) == 2, g.describe()
    err = [l for l in g.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "nosuchbr" in err[0] and "does not exist" in err[0], g.describe()
    assert ns.links() == ["lo"], f"left behind: {ns.links()}"
    # A name that is not a bridge.
    ns.ip("tuntap", "add", "notbr", "mode", "tap")
    g = boot_in(spawn, ns, kernel, initrd, ["--net", "bridge=notbr"])
    assert g.wait_exit(60) == 2, g.describe()
    assert "not a bridge" in g.stderr, g.describe()
    assert ns.links() == ["lo", "notbr"], f"left behind: {ns.links()}"


def test_bridge_tap_without_permission(netns_factory, spawn, kernel, initrd, kvm_available):
    """Without CAP_NET_ADMIN, making the tap fails: one line, exit 2, nothing left."""
    ns = netns_factory()
    make_bridge(ns)
    from conftest import DEFAULT_CMDLINE, vm_args
    args = vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", extra=["--net", "bridge=br0"])
    g = spawn(ns.args("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", *args))
    assert g.wait_exit(60) == 2, g.describe()
    err = [l for l in g.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "tap" in err[0] and "CAP_NET_ADMIN" in err[0], g.describe()
    assert ns.links() == ["br0", "lo"], f"left behind: {ns.links()}"


SOURCE = r"""
import socket, sys, time
data = open(sys.argv[3], "rb").read()
deadline = time.monotonic() + 120
while True:
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
while c.recv(65536):
    pass
print("SENT", len(data), flush=True)
"""


def test_bridge_tcp_host_to_guest(netns_factory, procs, spawn, kernel, initrd, kvm_available, tmp_path):
    """A TCP stream host -> guest through the bridge (offloads on the tap)."""
    import hashlib
    import os
    ns = netns_factory()
    make_bridge(ns)
    g = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-br-tcp", "--net", "bridge=br0"])
    g.wait_ready()
    sh(g, f"ip link set eth0 up && ip addr add {A}/24 dev eth0")
    data = os.urandom(16 << 20)
    (tmp_path / "src.bin").write_bytes(data)
    src = procs.add(ns.popen("/usr/bin/python3", "-c", SOURCE, A, 5202, tmp_path / "src.bin"))
    out = sh(g, "nc -l -p 5202 < /dev/null > /tmp/in.bin; md5sum /tmp/in.bin")
    assert hashlib.md5(data).hexdigest() in out, out
    assert src.communicate(timeout=120)[0].split() == ["SENT", str(16 << 20)]
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
