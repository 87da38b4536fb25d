"""--net hostonly=NAME: guests get addresses by DHCP, reach the host and each
other, and nothing beyond, even with IP forwarding on in the host; the bridge
exists while VMs use it; an exhausted pool or a clashing subnet is one line,
exit status 2, and nothing left behind.

The "host" is a fresh network namespace. Beside the host-only network it has
a veth link to a second namespace ("outside", 10.201.0.2) and forwards IPv4,
so a guest that routes through the host would reach it unless cellvm's
network stops it.
"""

import re

import pytest

from net_helpers import boot_in, dhcp, netns_factory, sh  # noqa: F401

pytestmark = [pytest.mark.vm, pytest.mark.net]

OUTSIDE = "10.201.0.2"


def outside_world(netns_factory, ns):
    out = netns_factory("cvout")
    ns.ip("link", "add", "vout", "type", "veth", "peer", "name", "vin", "netns", out.name)
    ns.ip("addr", "add", "10.201.0.1/24", "dev", "vout")
    ns.ip("link", "set", "vout", "up")
    out.ip("addr", "add", f"{OUTSIDE}/24", "dev", "vin")
    out.ip("link", "set", "vin", "up")
    out.ip("route", "add", "default", "via", "10.201.0.1")
    ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    return out


def ping_ok(g, ip, count=3):
    out, status = g.run(f"ping -c {count} -W 5 {ip}", 120)
    return status == 0 and re.search(rf"{count} packets transmitted, {count} (packets )?received", out)


def test_hostonly_dhcp_host_isolation_and_lifetime(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    outside_world(netns_factory, ns)
    res = ns.run("busybox", "ping", "-c", "1", "-W", "5", OUTSIDE, check=False, timeout=60)
    assert res.returncode == 0, f"the test's outside namespace is not reachable from the host:\n{res.stdout}"

    a = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-ho-a", "--net", "hostonly=cvtlab"])
    b = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-ho-b", "--net", "hostonly=cvtlab"])
    a.wait_ready()
    b.wait_ready()
    assert "cvh-cvtlab" in ns.links()
    addr = ns.ip("-4", "-o", "addr", "show", "dev", "cvh-cvtlab").stdout
    m = re.search(r"inet (\d+\.\d+\.\d+)\.1/24", addr)
    assert m, f"bridge address: {addr}"
    net = m.group(1)
    routes = ns.ip("-4", "route", "show", "dev", "cvh-cvtlab").stdout.strip().splitlines()
    assert len(routes) == 1 and routes[0].startswith(f"{net}.0/24"), f"routes via the bridge: {routes}"
    assert ns.run("cat", "/proc/sys/net/ipv4/conf/cvh-cvtlab/forwarding").stdout.strip() == "0"

    ip_a, mask = dhcp(a)
    ip_b, _ = dhcp(b)
    assert mask == 24 and ip_a.startswith(net + ".") and ip_b.startswith(net + ".") and ip_a != ip_b, \
        (ip_a, ip_b, net)
    assert "default" not in sh(a, "ip route"), "DHCP gave the guest a default route"
    assert ping_ok(a, f"{net}.1"), a.describe()
    assert ping_ok(a, ip_b), a.describe()
    res = ns.run("busybox", "ping", "-c", "3", "-W", "5", ip_a, check=False, timeout=60)
    assert res.returncode == 0, res.stdout

    # Routing through the host does not get out of the network...
    sh(a, f"ip route add default via {net}.1")
    assert not ping_ok(a, OUTSIDE, count=2), "the guest reached an address outside the host-only network"
    # ... and that is the bridge's forwarding setting, not the test's setup.
    ns.run("sysctl", "-qw", "net.ipv4.conf.cvh-cvtlab.forwarding=1")
    assert ping_ok(a, OUTSIDE, count=2), "control: with forwarding on, the outside should be reachable"
    ns.run("sysctl", "-qw", "net.ipv4.conf.cvh-cvtlab.forwarding=0")

    # The network lives while a VM uses it.
    a.send("poweroff")
    assert a.wait_exit(120) == 0, a.describe()
    assert "cvh-cvtlab" in ns.links(), "the bridge went while a VM still used it"
    assert ping_ok(b, f"{net}.1"), b.describe()
    b.send("poweroff")
    assert b.wait_exit(120) == 0, b.describe()
    assert ns.links() == ["lo", "vout"], f"left behind: {ns.links()}"


def test_hostonly_pool_exhausted(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    # A /30: host .1, one guest address .2.
    a = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-pool-a", "--net", "hostonly=cvtpool,net=10.202.0.0/30"])
    a.wait_ready()
    ip, mask = dhcp(a)
    assert (ip, mask) == ("10.202.0.2", 30)
    before = ns.links()
    b = boot_in(spawn, ns, kernel, initrd, ["--name", "cvt-pool-b", "--net", "hostonly=cvtpool,net=10.202.0.0/30"])
    assert b.wait_exit(60) == 2, b.describe()
    err = [l for l in b.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "pool exhausted" in err[0] and "cvtpool" in err[0], b.describe()
    assert ns.links() == before, f"the failed VM left {set(ns.links()) - set(before)}"
    a.send("poweroff")
    assert a.wait_exit(120) == 0, a.describe()
    assert ns.links() == ["lo"], f"left behind: {ns.links()}"


def test_hostonly_subnet_clash(netns_factory, spawn, kernel, initrd, kvm_available):
    ns = netns_factory()
    ns.ip("tuntap", "add", "other0", "mode", "tap")
    ns.ip("addr", "add", "10.203.0.1/16", "dev", "other0")
    g = boot_in(spawn, ns, kernel, initrd, ["--net", "hostonly=cvtclash,net=10.203.7.0/24"])
    assert g.wait_exit(60) == 2, g.describe()
    err = [l for l in g.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "overlaps 10.203.0.1/16 on other0" in err[0], g.describe()
    assert ns.links() == ["lo", "other0"], f"left behind: {ns.links()}"


def test_hostonly_without_permission(netns_factory, spawn, kernel, initrd, kvm_available):
    """Without CAP_NET_ADMIN the network cannot be made: one line, exit 2, nothing left."""
    from conftest import DEFAULT_CMDLINE, vm_args
    ns = netns_factory()
    args = vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", extra=["--net", "hostonly=cvtperm"])
    g = spawn(ns.args("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", *args))
    assert g.wait_exit(60) == 2, g.describe()
    err = [l for l in g.stderr.splitlines() if l.strip()]
    assert len(err) == 1 and "cvh-cvtperm" in err[0] and "CAP_NET_ADMIN" in err[0], g.describe()
    assert ns.links() == ["lo"], f"left behind: {ns.links()}"
