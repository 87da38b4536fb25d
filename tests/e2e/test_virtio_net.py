"""virtio-net end to end over a tap device in a network namespace made by the test.

Everything host-side happens inside that namespace (`ip netns exec`): the tap,
its address 10.99.N.1/24, cellvm itself and the Python peers of the TCP tests;
the namespace is deleted at teardown, even on failure. Needs root and `ip`
(iproute2); skipped otherwise.
"""

import hashlib
import os
import random
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, vm_args

def _why_no_root_net():
    if os.geteuid() != 0:
        return "needs root (network namespace and tap)"
    if not shutil.which("ip"):
        return "ip (iproute2) not found"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun missing"
    return None


# A skip mark (not only the fixture) so that nothing, not even the session's
# initramfs build, is attempted without root networking.
pytestmark = [pytest.mark.vm, pytest.mark.net,
              pytest.mark.skipif(_why_no_root_net() is not None,
                                 reason=_why_no_root_net() or "")]

TRANSPORTS = ["pci", "mmio"]
IO_TIMEOUT = 300.0
MiB = 1 << 20
GUEST_MAC = "52:54:00:aa:bb:cc"
MAC_RE = re.compile(r"^([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s*$", re.M)


@dataclass
class NetNS:
    name: str
    tap: str
    host_ip: str
    guest_ip: str

    def exec_args(self, *args):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in args]


def _ip(*args, check=True):
    res = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} -> {res.returncode}: {res.stderr.strip()}")
    return res


@pytest.fixture
def netns():
    """A fresh network namespace with a tap at 10.99.N.1/24 (the guest gets .2)."""
    why = _why_no_root_net()
    if why:
        pytest.skip(why)
    name = f"cvtest-{uuid.uuid4().hex[:8]}"
    res = _ip("netns", "add", name, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {res.stderr.strip()}")
    try:
        n = random.randint(1, 254)
        ns = NetNS(name, f"cvt{uuid.uuid4().hex[:8]}", f"10.99.{n}.1", f"10.99.{n}.2")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("netns", "exec", name, "ip", "tuntap", "add", "dev", ns.tap, "mode", "tap")
        _ip("-n", name, "addr", "add", f"{ns.host_ip}/24", "dev", ns.tap)
        _ip("-n", name, "link", "set", ns.tap, "up")
        yield ns
    finally:
        _ip("netns", "delete", name, check=False)


def spawn_in(spawn, ns, kernel, initrd, cmdline=DEFAULT_CMDLINE, memory="512M", extra=()):
    return spawn(ns.exec_args(*vm_args(kernel, initrd, cmdline, memory, extra=extra)))


def sh(g, cmd, timeout=IO_TIMEOUT):
    out, status = g.run(cmd, timeout)
    assert status == 0, f"guest command failed ({status}): {cmd}\n{out}\n{g.describe()}"
    return out


def md5_of(out, path):
    m = re.search(rf"^([0-9a-f]{{32}})\s+{re.escape(path)}\s*$", out, re.M)
    assert m, f"no md5sum line for {path} in:\n{out}"
    return m.group(1)


# A TCP sink: accept one connection, read to EOF, print "<bytes> <md5>".
SINK = r"""
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(float(sys.argv[3]))
print("LISTENING", flush=True)
c, _ = s.accept()
c.settimeout(float(sys.argv[3]))
h, n = hashlib.md5(), 0
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b)
    n += len(b)
c.close()
print(n, h.hexdigest(), flush=True)
"""

# A TCP source: connect (retrying until the guest listens), send a file, half-close,
# wait for the peer to close, print "SENT <bytes>".
SOURCE = r"""
import socket, sys, time
ip, port, path, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
data = open(path, "rb").read()
deadline = time.monotonic() + limit
while True:
    try:
        c = socket.create_connection((ip, port), timeout=10)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
c.settimeout(limit)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
while c.recv(65536):
    pass
c.close()
print("SENT", len(data), flush=True)
"""


def host_py(ns, script, *args):
    return subprocess.Popen(ns.exec_args("/usr/bin/python3", "-c", script, *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, what, timeout=IO_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{what} did not finish in {timeout:.0f} s\n{out}\n{err}")
    assert proc.returncode == 0, f"{what} failed ({proc.returncode})\n{out}\n{err}"
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_net_ping_and_tcp_both_ways(netns, spawn, kernel, initrd, kvm_available, tmp_path,
                                    transport):
    ns = netns
    g = spawn_in(spawn, ns, kernel, initrd,
                 extra=["--transport", transport, "--net", f"tap={ns.tap},mac={GUEST_MAC}"])
    procs = []
    try:
        g.wait_ready()
        out = sh(g, "cat /sys/class/net/eth0/address")
        assert out.strip() == GUEST_MAC, g.describe()
        sh(g, f"ip link set eth0 up && ip addr add {ns.guest_ip}/24 dev eth0")
        out = sh(g, f"ping -c 3 -W 10 {ns.host_ip}", timeout=120)
        assert re.search(r"3 packets transmitted, 3 (packets )?received", out), g.describe()
        for size in (1472, 8000):  # a full-MTU frame; IP fragments both ways
            out = sh(g, f"ping -c 2 -W 10 -s {size} {ns.host_ip}", timeout=120)
            assert re.search(r"2 packets transmitted, 2 (packets )?received", out), g.describe()

        # guest -> host: 16 MiB of random data
        port = random.randint(20000, 29999)
        sink = host_py(ns, SINK, ns.host_ip, port, IO_TIMEOUT)
        procs.append(sink)
        assert sink.stdout.readline().strip() == "LISTENING", finish(sink, "the TCP sink")
        out = sh(g, "dd if=/dev/urandom of=/tmp/out.bin bs=1M count=16 2>/dev/null &&"
                    " md5sum /tmp/out.bin")
        sent_md5 = md5_of(out, "/tmp/out.bin")
        sh(g, f"nc {ns.host_ip} {port} < /tmp/out.bin")
        got = finish(sink, "the TCP sink").split()
        assert got == [str(16 * MiB), sent_md5], \
            f"host received {got}, guest sent {16 * MiB} bytes md5 {sent_md5}"
        sh(g, "rm /tmp/out.bin")

        # host -> guest: 16 MiB of known random data
        data = os.urandom(16 * MiB)
        src = tmp_path / "host.bin"
        src.write_bytes(data)
        port = random.randint(10000, 19999)
        source = host_py(ns, SOURCE, ns.guest_ip, port, src, IO_TIMEOUT)
        procs.append(source)
        out = sh(g, f"nc -l -p {port} < /dev/null > /tmp/in.bin; md5sum /tmp/in.bin;"
                    " wc -c < /tmp/in.bin")
        assert md5_of(out, "/tmp/in.bin") == hashlib.md5(data).hexdigest(), \
            f"guest received different data\n{out}"
        assert finish(source, "the TCP source").split() == ["SENT", str(16 * MiB)]
        g.send("poweroff")
        assert g.wait_exit(120) == 0, g.describe()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def boot_mac(spawn, ns, kernel, initrd, name, transport="pci"):
    """Boot with --net tap=... (no mac=) and --name NAME; return the guest's eth0 MAC."""
    cmdline = f"{DEFAULT_CMDLINE} -- cat /sys/class/net/eth0/address"
    g = spawn_in(spawn, ns, kernel, initrd, cmdline, memory="256M",
                 extra=["--transport", transport, "--net", f"tap={ns.tap}", "--name", name])
    m = g.wait_for(re.compile(r"CELLVM-CMD-EXIT=(\d+)"), BOOT_TIMEOUT + IO_TIMEOUT)
    assert m.group(1) == "0", g.describe()
    assert g.wait_exit(120) == 0, g.describe()
    out = g.output
    out = out[out.find("CELLVM-INIT-READY"):]
    macs = MAC_RE.findall(out.replace("\r", ""))
    assert len(macs) == 1, g.describe()
    return macs[0]


def test_default_mac_derives_from_name(netns, spawn, kernel, initrd, kvm_available):
    a1 = boot_mac(spawn, netns, kernel, initrd, "cvtest-vm-a")
    a2 = boot_mac(spawn, netns, kernel, initrd, "cvtest-vm-a", transport="mmio")
    b = boot_mac(spawn, netns, kernel, initrd, "cvtest-vm-b")
    assert a1 == a2, f"same --name, different MACs: {a1} vs {a2}"
    assert a1 != b, f"different --name values, same MAC {a1}"
    for mac in (a1, b):
        first = int(mac.split(":")[0], 16)
        assert not first & 1, f"default MAC {mac} is a multicast address"
        assert mac != "00:00:00:00:00:00", mac


# Broadcast UDP at the tap's subnet until killed: frames keep arriving for the
# guest while its driver is unbound, bound again and while it reboots.
FLOOD = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind((sys.argv[1], 0))
payload = b"x" * 1400
while True:
    try:
        s.sendto(payload, (sys.argv[2], 9))
    except OSError:
        pass
    time.sleep(0.002)
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_net_survives_rebind_and_reboot(netns, spawn, kernel, initrd, kvm_available, transport):
    """eth0 works after the guest driver is unbound and bound again, and after a
    guest reboot (--reboot restart), while the host keeps sending broadcasts."""
    ns = netns
    bcast = ns.host_ip.rsplit(".", 1)[0] + ".255"
    g = spawn_in(spawn, ns, kernel, initrd,
                 extra=["--transport", transport, "--reboot", "restart",
                        "--net", f"tap={ns.tap},mac={GUEST_MAC}"])
    flood = host_py(ns, FLOOD, ns.host_ip, bcast)
    up = (f"ip link set eth0 up && ip addr add {ns.guest_ip}/24 dev eth0 &&"
          f" ping -c 2 -W 10 {ns.host_ip} >/dev/null")
    try:
        g.wait_ready()
        sh(g, up, timeout=120)
        sh(g, "D=$(basename $(readlink /sys/class/net/eth0/device)) &&"
              " echo $D > /sys/bus/virtio/drivers/virtio_net/unbind &&"
              " ! test -e /sys/class/net/eth0 && sleep 1 &&"
              " echo $D > /sys/bus/virtio/drivers/virtio_net/bind")
        out = sh(g, "for i in 1 2 3 4 5 6 7 8 9 10; do test -e /sys/class/net/eth0 && break;"
                    " sleep 1; done; cat /sys/class/net/eth0/address")
        assert out.strip() == GUEST_MAC, g.describe()
        sh(g, up, timeout=120)
        out = sh(g, "cat /sys/class/net/eth0/statistics/rx_packets")
        assert int(out.strip()) > 0, "no broadcast received after the rebind\n" + g.describe()
        g.send("reboot")
        g.wait_ready()
        sh(g, up, timeout=120)
        g.send("poweroff")
        assert g.wait_exit(120) == 0, g.describe()
    finally:
        flood.kill()
        flood.communicate()


def test_two_nics(netns, spawn, kernel, initrd, kvm_available):
    """Two --net NICs: eth0 and eth1, distinct derived MACs, each on its own tap."""
    ns = netns
    tap2 = "cvu" + ns.tap[3:]
    host2 = ns.host_ip.replace("10.99.", "10.98.", 1)
    guest2 = ns.guest_ip.replace("10.99.", "10.98.", 1)
    _ip("netns", "exec", ns.name, "ip", "tuntap", "add", "dev", tap2, "mode", "tap")
    _ip("-n", ns.name, "addr", "add", f"{host2}/24", "dev", tap2)
    _ip("-n", ns.name, "link", "set", tap2, "up")
    g = spawn_in(spawn, ns, kernel, initrd,
                 extra=["--net", f"tap={ns.tap}", "--net", f"tap={tap2}", "--name", "cvtest-2nic"])
    g.wait_ready()
    out = sh(g, "cat /sys/class/net/eth0/address /sys/class/net/eth1/address")
    macs = MAC_RE.findall(out)
    assert len(macs) == 2 and macs[0] != macs[1], g.describe()
    for dev, gip, hip in (("eth0", ns.guest_ip, ns.host_ip), ("eth1", guest2, host2)):
        sh(g, f"ip link set {dev} up && ip addr add {gip}/24 dev {dev}")
        out = sh(g, f"ping -c 2 -W 10 -I {dev} {hip}", timeout=120)
        assert re.search(r"2 packets transmitted, 2 (packets )?received", out), g.describe()
    # Each NIC's frames went to its own tap.
    for tap, mac in ((ns.tap, macs[0]), (tap2, macs[1])):
        res = _ip("-n", ns.name, "neigh", "show", "dev", tap)
        assert mac in res.stdout, f"{tap} never heard from {mac}: {res.stdout}"
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
