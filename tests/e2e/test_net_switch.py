"""--net switch=PATH and `cellvm switch PATH`: two VMs exchange a TCP stream
through the switch; a VM with a MAC already on the switch is refused; no
network interface is created anywhere; the switch runs unprivileged.

cellvm runs as root here (it needs /dev/kvm) but inside a fresh network
namespace whose only interface must stay `lo`; the switch itself runs as
user nobody.
"""

import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from conftest import require_bin
from net_helpers import IO_TIMEOUT, boot_in, netns_factory, procs, sh, wait_until  # noqa: F401

pytestmark = [pytest.mark.vm, pytest.mark.net]


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="cvsw-")
    os.chmod(d, 0o777)  # the unprivileged switch creates its socket here
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_switch(ns, procs, path):
    unpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if shutil.which("setpriv") else []
    p = procs.add(ns.popen(*unpriv, require_bin(), "switch", path))
    line = p.stdout.readline()
    assert "listening on" in line, f"switch did not start: {line}{p.stderr.read() if p.poll() is not None else ''}"
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    if unpriv:
        assert st.st_uid == 65534, "the switch did not run as nobody"
    return p


def test_switch_two_vms_tcp_stream(netns_factory, procs, spawn, kernel, initrd, kvm_available, sockdir):
    ns = netns_factory()
    path = os.path.join(sockdir, "sw.sock")
    sw = start_switch(ns, procs, path)
    a = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-sw-a", "--net", f"switch={path}"])
    b = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-sw-b", "--net", f"switch={path}"])
    a.wait_ready()
    b.wait_ready()
    assert ns.links() == ["lo"], f"interfaces appeared: {ns.links()}"

    # A third VM with a's MAC (same --name) is refused before it boots.
    mac_a = sh(a, "cat /sys/class/net/eth0/address").strip()
    c = boot_in(spawn, ns, kernel, initrd, ["--net", f"switch={path},mac={mac_a}"])
    assert c.wait_exit(60) == 2, c.describe()
    err = [l for l in c.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "refuses MAC" in err[0] and mac_a in err[0], c.describe()

    sh(a, "ip link set eth0 up && ip addr add 192.168.77.1/24 dev eth0")
    sh(b, "ip link set eth0 up && ip addr add 192.168.77.2/24 dev eth0")
    out = sh(a, "ping -c 3 -W 10 192.168.77.2", timeout=120)
    assert re.search(r"3 packets transmitted, 3 (packets )?received", out), out

    # a -> b: 8 MiB of random bytes, checked on both ends.
    sh(b, "nc -l -p 5000 > /tmp/in.bin & true")
    out = sh(a, "dd if=/dev/urandom of=/tmp/out.bin bs=1M count=8 2>/dev/null && md5sum /tmp/out.bin")
    sent = re.search(r"^([0-9a-f]{32})\s+/tmp/out.bin", out, re.M).group(1)
    sh(a, "for i in $(seq 50); do nc 192.168.77.2 5000 < /tmp/out.bin && break; sleep 0.2; done")
    out = sh(b, "wait; md5sum /tmp/in.bin; wc -c < /tmp/in.bin", timeout=IO_TIMEOUT)
    assert sent in out and re.search(r"^\s*8388608\s*$", out, re.M), f"b received other bytes:\n{out}"
    assert ns.links() == ["lo"], f"interfaces appeared: {ns.links()}"

    for g in (a, b):
        g.send("poweroff")
        assert g.wait_exit(120) == 0, g.describe()
    assert sw.poll() is None, "the switch exited when its VMs left"
    sw.send_signal(signal.SIGTERM)
    assert sw.wait(30) == 0
    assert not os.path.exists(path), "the switch left its socket behind"


def test_switch_refuses_second_switch_and_reports_missing(netns_factory, procs, sockdir):
    ns = netns_factory()
    path = os.path.join(sockdir, "sw.sock")
    start_switch(ns, procs, path)
    res = ns.run(require_bin(), "switch", path, check=False, timeout=30)
    assert res.returncode == 2 and "already listening" in res.stderr, res.stderr
    # A socket file nobody listens on (a killed switch) is taken over.
    stale = os.path.join(sockdir, "stale.sock")
    subprocess.run(["/usr/bin/python3", "-c",
                    f"import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind({stale!r})"],
                   check=True)
    start_switch(ns, procs, stale)
