"""--net nat (libslirp): DHCP, outbound TCP through the NAT, host port
forwards, restrict=on, and a forward whose port is taken.

cellvm and the host-side servers run in a fresh network namespace, so the
only thing the guest can reach through the NAT is the test's HTTP server on
that namespace's loopback (the guest sees it as 10.0.2.2).
"""

import hashlib
import os
import random
import re
import urllib.request

import pytest

from net_helpers import (IO_TIMEOUT, boot_in, dhcp, netns_factory, procs, sh,  # noqa: F401
                             wait_port)

pytestmark = [pytest.mark.vm, pytest.mark.net]


def http_server(ns, procs, directory, port):
    p = procs.add(ns.popen("/usr/bin/python3", "-m", "http.server", port, "--bind", "127.0.0.1",
                           "--directory", directory))
    wait_port(ns, "127.0.0.1", port)
    return p


def guest_httpd(g, port=8080, kib=256):
    out = sh(g, f"mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1024 count={kib} 2>/dev/null"
                f" && md5sum /www/blob && httpd -p {port} -h /www")
    return re.search(r"^([0-9a-f]{32})\s+/www/blob", out, re.M).group(1)


def host_get(ns, url):
    """GET url from inside ns; returns the body's md5."""
    code = ("import hashlib,sys,urllib.request\n"
            "print(hashlib.md5(urllib.request.urlopen(sys.argv[1], timeout=60).read()).hexdigest())\n")
    return ns.run("/usr/bin/python3", "-c", code, url, timeout=IO_TIMEOUT).stdout.strip()


def test_nat_dhcp_and_outbound_http(netns_factory, procs, spawn, kernel, initrd, kvm_available, tmp_path):
    ns = netns_factory()
    data = os.urandom(1 << 20)
    (tmp_path / "file.bin").write_bytes(data)
    port = random.randint(20000, 29999)
    http_server(ns, procs, tmp_path, port)
    g = boot_in(spawn, ns, kernel, initrd, ["--net", "nat"])
    g.wait_ready()
    ip, mask = dhcp(g)
    assert (ip, mask) == ("10.0.2.15", 24), g.describe()
    assert "default via 10.0.2.2" in sh(g, "ip route"), g.describe()
    out = sh(g, f"timeout 60 wget -q -O /tmp/f http://10.0.2.2:{port}/file.bin && md5sum /tmp/f")
    assert hashlib.md5(data).hexdigest() in out, f"guest got other bytes\n{out}"
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()


def test_nat_hostfwd_reaches_guest_server(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    hport = random.randint(10000, 19999)
    g = boot_in(spawn, ns, kernel, initrd, ["--net", f"nat,hostfwd=tcp::{hport}-:8080"])
    g.wait_ready()
    dhcp(g)
    md5 = guest_httpd(g)
    wait_port(ns, "127.0.0.1", hport)
    assert host_get(ns, f"http://127.0.0.1:{hport}/blob") == md5
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
    # The forward is gone with the VM.
    res = ns.run("/usr/bin/python3", "-c",
                 f"import socket; socket.create_connection(('127.0.0.1', {hport}), timeout=5)",
                 check=False)
    assert res.returncode != 0, "the forwarded port still accepts connections after the VM stopped"


def test_nat_restrict_blocks_outbound(netns_factory, procs, spawn, kernel, initrd, kvm_available, tmp_path):
    ns = netns_factory()
    (tmp_path / "file.bin").write_bytes(b"x" * 4096)
    port = random.randint(20000, 29999)
    hport = random.randint(10000, 19999)
    http_server(ns, procs, tmp_path, port)
    g = boot_in(spawn, ns, kernel, initrd, ["--net", f"nat,restrict=on,hostfwd=tcp::{hport}-:8080"])
    g.wait_ready()
    ip, _ = dhcp(g)  # DHCP still works
    assert ip == "10.0.2.15"
    out, status = g.run(f"timeout 20 wget -q -O /tmp/f http://10.0.2.2:{port}/file.bin", IO_TIMEOUT)
    assert status != 0, f"restrict=on let the guest fetch from the host:\n{out}"
    # ... while forwards into the guest still work.
    md5 = guest_httpd(g)
    wait_port(ns, "127.0.0.1", hport)
    assert host_get(ns, f"http://127.0.0.1:{hport}/blob") == md5
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()


def test_nat_hostfwd_port_in_use(netns_factory, procs, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    hport = random.randint(10000, 19999)
    holder = procs.add(ns.popen("/usr/bin/python3", "-c",
                                "import socket,sys,time\n"
                                "s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(1)\n"
                                "print('HELD', flush=True); time.sleep(600)\n", hport))
    assert holder.stdout.readline().strip() == "HELD"
    g = boot_in(spawn, ns, kernel, initrd, ["--net", f"nat,hostfwd=tcp::{hport}-:80"])
    assert g.wait_exit(60) == 2, g.describe()
    lines = [l for l in g.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, g.describe()
    assert str(hport) in lines[0] and "in use" in lines[0], lines[0]
