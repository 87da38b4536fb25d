"""Helpers for the network end-to-end tests (test_net_*.py); no tests here.

Everything host-side runs inside network namespaces these helpers create
(and delete at teardown, also on failure): bridges, taps, addresses, the
peers of the tests and cellvm itself. Nothing outside them is touched or
reachable, so a guest behind NAT can only reach what the test put there.
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import DEFAULT_CMDLINE, vm_args
from hosts import CommandError, Namespace, TwoHosts

IO_TIMEOUT = 300.0

# A udhcpc script: configures the address (and a default route if one is
# offered) and prints one line the tests wait for.
UDHCPC_SCRIPT = [
    "#!/bin/sh",
    'case "$1" in',
    'deconfig) ip link set "$interface" up; ip addr flush dev "$interface" ;;',
    'bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"',
    '  if [ -n "$router" ]; then ip route add default via "${router%% *}" dev "$interface"; fi',
    '  echo "DHCP-BOUND ip=$ip mask=$mask router=$router" ;;',
    "esac",
]


def require_root_net():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if not shutil.which("ip"):
        pytest.skip("ip (iproute2) not found")


class NetNS(Namespace):
    """A network namespace with lo up; the test is skipped if none can be made."""

    def __init__(self, prefix="cvnet"):
        try:
            super().__init__(prefix)
        except CommandError as e:
            pytest.skip(f"cannot create a network namespace: {e}")


@pytest.fixture
def netns_factory():
    """netns_factory() -> NetNS; every namespace is deleted at teardown."""
    require_root_net()
    made = []

    def make(prefix="cvnet"):
        ns = NetNS(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()


class Procs:
    """Host-side helper processes, killed at teardown."""

    def __init__(self):
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def two_hosts():
    """hosts.TwoHosts: hostA and hostB with their migration link and a LAN
    with a peer; every namespace is deleted at teardown."""
    require_root_net()
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("/dev/net/tun missing")
    try:
        h = TwoHosts()
    except CommandError as e:
        pytest.skip(f"cannot build the two hosts: {e}")
    yield h
    h.delete()


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.close()


def boot_in(spawn, ns, kernel, initrd, extra, memory="256M", cmdline=DEFAULT_CMDLINE):
    """A guest whose cellvm runs inside namespace ns (None: this namespace)."""
    args = vm_args(kernel, initrd, cmdline, memory, extra=extra)
    return spawn(ns.args(*args) if ns else args)


def sh(g, cmd, timeout=IO_TIMEOUT):
    out, status = g.run(cmd, timeout)
    assert status == 0, f"guest command failed ({status}): {cmd}\n{out}\n{g.describe()}"
    return out


def write_guest_file(g, path, lines):
    quoted = " ".join("'" + line.replace("'", "'\\''") + "'" for line in lines)
    sh(g, f"printf '%s\\n' {quoted} > {path} && chmod +x {path}")


def dhcp(g, iface="eth0", timeout=120):
    """Runs busybox udhcpc in the guest; returns the address it bound."""
    write_guest_file(g, "/tmp/udhcpc.sh", UDHCPC_SCRIPT)
    out = sh(g, f"ip link set {iface} up && udhcpc -i {iface} -q -n -t 10 -T 2 -s /tmp/udhcpc.sh", timeout)
    m = re.search(r"DHCP-BOUND ip=(\S+) mask=(\d+)", out)
    assert m, f"no DHCP lease in:\n{out}\n{g.describe()}"
    return m.group(1), int(m.group(2))


def wait_port(ns, host, port, timeout=60.0):
    """Waits until a TCP connect to host:port works from inside ns."""
    code = ("import socket,sys,time\n"
            "d=time.monotonic()+float(sys.argv[3])\n"
            "while True:\n"
            "    try:\n"
            "        socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=2).close(); break\n"
            "    except OSError:\n"
            "        if time.monotonic()>d: raise\n"
            "        time.sleep(0.2)\n")
    ns.run("/usr/bin/python3", "-c", code, host, port, timeout, timeout=timeout + 30)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
