"""Two "hosts" on one machine, for migration tests and benchmarks: network
namespaces made here and deleted by delete() (the pytest fixture
`two_hosts` in net_helpers.py does so at teardown, also on failure).

    hostA --- mig0 (veth) --- hostB          the migration link, MIG_NET.1 - .2
      br0 LAN_NET.1             br0 LAN_NET.2  (the hosts reach the LAN: storage)
      |-- tap TAP               |-- tap TAP  (same name on both: the NIC moves)
      '-- up0 ---.     .------ up0
                 |     |
            lan: br0 (ports hosta, hostb, peer)
                   |
            peer: eth0 PEER_IP                the guests' LAN, LAN_NET.0/24

Only the standard library: bench/migrate.py uses it as well as the tests.
"""

import re
import subprocess
import uuid

MIG_NET = "10.210.0"   # the migration link: hostA .1, hostB .2
LAN_NET = "10.211.0"   # the guests' LAN: guests .10 up, the peer .100
TAP = "tapvm"
GUEST_MAC = "52:54:00:4d:16:01"


class CommandError(RuntimeError):
    pass


def run(args, check=True, timeout=60):
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise CommandError(f"{' '.join(map(str, args))} -> {res.returncode}: {res.stderr.strip()}")
    return res


class Namespace:
    """A network namespace with lo up (CommandError if it cannot be made)."""

    def __init__(self, prefix="cvnet"):
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        run(["ip", "netns", "add", self.name])
        try:
            run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        except CommandError:
            self.delete()
            raise

    def args(self, *argv):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def run(self, *argv, check=True, timeout=60):
        return run(self.args(*argv), check=check, timeout=timeout)

    def ip(self, *argv, check=True):
        return run(["ip", "-n", self.name] + [str(a) for a in argv], check=check)

    def popen(self, *argv, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.Popen(self.args(*argv), **kw)

    def links(self):
        """Names of the namespace's network interfaces."""
        out = self.ip("-o", "link", "show").stdout
        return sorted(m.group(1) for m in re.finditer(r"^\d+: ([^:@]+)[:@]", out, re.M))

    def bridge(self, name="br0", *ports):
        self.ip("link", "add", name, "type", "bridge")
        self.ip("link", "set", name, "up")
        for port in ports:
            self.ip("link", "set", port, "master", name, "up")

    def delete(self):
        run(["ip", "netns", "delete", self.name], check=False)


def veth(ns1, name1, ns2, name2):
    """A veth pair from ns1 (name1) to ns2 (name2), both ends up."""
    ns1.ip("link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2.name)
    ns1.ip("link", "set", name1, "up")
    ns2.ip("link", "set", name2, "up")


class TwoHosts:
    """The topology of the module's docstring. a, b, lan, peer: Namespaces
    (no lan and peer with lan=False); a_ip, b_ip: the ends of the migration
    link; a_lan_ip, b_lan_ip: the hosts' own addresses on the LAN;
    peer_ip; guest_ip(n)."""

    a_ip, b_ip = f"{MIG_NET}.1", f"{MIG_NET}.2"
    a_lan_ip, b_lan_ip = f"{LAN_NET}.1", f"{LAN_NET}.2"
    peer_ip = f"{LAN_NET}.100"
    tap = TAP
    mac = GUEST_MAC

    def __init__(self, prefix="cvh", lan=True):
        """lan=False: only hostA, hostB and their link."""
        self.made = []
        try:
            self.a, self.b = self._ns(f"{prefix}A"), self._ns(f"{prefix}B")
            veth(self.a, "mig0", self.b, "mig0")
            self.a.ip("addr", "add", f"{self.a_ip}/24", "dev", "mig0")
            self.b.ip("addr", "add", f"{self.b_ip}/24", "dev", "mig0")
            if lan:
                self._lan(prefix)
        except BaseException:
            self.delete()
            raise

    def _lan(self, prefix):
        """The LAN: lan's bridge, an uplink and a tap on a bridge in each host, the peer."""
        self.lan, self.peer = self._ns(f"{prefix}lan"), self._ns(f"{prefix}peer")
        for host, port, ip in ((self.a, "hosta", self.a_lan_ip), (self.b, "hostb", self.b_lan_ip)):
            host.ip("tuntap", "add", "dev", TAP, "mode", "tap")
            veth(host, "up0", self.lan, port)
            host.bridge("br0", TAP, "up0")
            host.ip("addr", "add", f"{ip}/24", "dev", "br0")
        veth(self.peer, "eth0", self.lan, "peer")
        self.peer.ip("addr", "add", f"{self.peer_ip}/24", "dev", "eth0")
        self.lan.bridge("br0", "hosta", "hostb", "peer")

    def _ns(self, prefix):
        ns = Namespace(prefix)
        self.made.append(ns)
        return ns

    @staticmethod
    def guest_ip(n=0):
        return f"{LAN_NET}.{10 + n}"

    def nic(self, mac=GUEST_MAC):
        """cellvm's --net option for a guest on the LAN."""
        return ["--net", f"tap={TAP},mac={mac}"]

    def lan_port_of(self, mac=GUEST_MAC):
        """The lan bridge's port that mac was last seen on ("hosta", "hostb",
        "peer"), or None."""
        out = self.lan.run("bridge", "fdb", "show", "br", "br0").stdout
        m = re.search(rf"^{re.escape(mac.lower())} dev (\S+)", out, re.M)
        return m.group(1) if m else None

    def delete(self):
        for ns in self.made:
            ns.delete()
        self.made = []
