"""Live migration between two "hosts": network namespaces hostA and hostB
joined by a veth pair (the migration link), each with a bridge holding a tap
of the same name and an uplink to a LAN shared with a peer namespace
(hosts.TwoHosts, made and removed by the `two_hosts` fixture). The source
cellvm runs in hostA, the destination in hostB, so the VM's tap NIC moves
with it: a guest writing memory keeps counting and keeps its data, a TCP
connection from the LAN survives the move (the lan bridge learns the
guest's new port from its RARP), a disk on an NBD server in the peer
namespace, or copied along, keeps everything written during the move, and
a destination killed mid-migration leaves the source running and able to
migrate again."""

import os
import re
import signal
import subprocess
import time

import pytest

from net_helpers import sh, two_hosts  # noqa: F401 (a fixture)
from test_api import curl
from test_migrate import DIRTIER_CHECK, TOKEN, destination, dirtier, ended, migrate, port, source
from test_snapshot import COUNTER, DISK_CHURN, NumberStream, check_moved, last_count

pytestmark = [pytest.mark.vm, pytest.mark.net]

MIGRATE_TIMEOUT = 180


def lan_guest(spawn, tmp_path, kernel, initrd, hosts, memory="256M", extra=()):
    """A guest in hostA on the LAN (tap NIC, a static address), at its
    prompt; (guest, API socket)."""
    g, sock = source(spawn, tmp_path, kernel, initrd, memory=memory, extra=[*hosts.nic(), *extra],
                     prefix=hosts.a.args())
    sh(g, f"ip link set eth0 up && ip addr add {hosts.guest_ip()}/24 dev eth0")
    return g, sock


def to_b(spawn, hosts, extra=()):
    """A destination listening in hostB on the migration link; (it, port)."""
    p = port()
    return destination(spawn, p, addr=hosts.b_ip, prefix=hosts.b.args(), extra=extra), p


def moved(g, sock, spawn, hosts, dest_extra=(), **extra):
    """Migrates g to a new destination in hostB; the destination, once the
    source has exited 0."""
    d, p = to_b(spawn, hosts, dest_extra)
    st = migrate(g, sock, p, host=hosts.b_ip, timeout=MIGRATE_TIMEOUT, **extra)
    assert st["state"] == "completed", f"{st}\n{g.describe()}\n{d.describe()}"
    assert g.wait_exit(30) == 0, g.describe()
    return d


def pings_peer(g, hosts):
    out = sh(g, f"ping -c 2 -W 5 {hosts.peer_ip}", timeout=60)
    assert re.search(r"2 packets transmitted, 2 (packets )?received", out), f"{out}\n{g.describe()}"


def test_dirtying_guest_moves_to_the_other_host(two_hosts, spawn, tmp_path, kernel, initrd, kvm_available):
    """A 512 MiB guest rewriting 100 MiB of RAM and counting on its console
    moves from hostA to hostB over the veth: the counter goes on without a
    gap or a repeat, the last blob matches its checksum, the source exited
    0 and the guest reaches the LAN through hostB's tap."""
    hosts = two_hosts
    g, sock = lan_guest(spawn, tmp_path, kernel, initrd, hosts, memory="512M")
    pings_peer(g, hosts)
    g.send(dirtier(100))
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=5", 60)
    d = moved(g, sock, spawn, hosts)
    m = re.search(r"migrated: (\d+) rounds, ([\d.]+) MiB sent \([\d.]+ MiB of disks\), "
                  r"(\d+) ms in all, ([\d.]+) ms paused", g.stderr)
    assert m and int(m.group(1)) >= 1 and float(m.group(2)) > 100, g.describe()
    print(f"migration: {m.group(0)}")
    check_moved(g, d)
    out = sh(d, DIRTIER_CHECK, 120)
    assert ": OK" in out, d.describe()
    pings_peer(d, hosts)
    assert hosts.lan_port_of() == "hostb"
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


def test_tcp_connection_from_the_lan_survives_the_move(two_hosts, spawn, tmp_path, kernel, initrd,
                                                        kvm_available):
    """The guest streams numbers over TCP to the peer on the LAN while it
    moves: after the move the same connection goes on, no number lost or
    repeated; the lan bridge has learnt the guest's MAC on hostB's uplink
    (from the RARP the moved NIC sends: the guest itself does not speak
    first)."""
    hosts = two_hosts
    g, sock = lan_guest(spawn, tmp_path, kernel, initrd, hosts)
    stream = NumberStream(g, hosts.peer.args(), hosts.peer_ip, port())
    try:
        assert stream.wait(20) >= 20, f"no stream: {stream.got}\n{g.describe()}"
        assert hosts.lan_port_of() == "hosta"
        d = moved(g, sock, spawn, hosts)
        at_move = len(stream.got)
        stream.wait(at_move + 40)
        stream.check(at_move + 40, d)
        assert hosts.lan_port_of() == "hostb", hosts.lan.run("bridge", "fdb", "show", "br", "br0").stdout
    finally:
        stream.close()
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


def test_killed_destination_leaves_the_source_running(two_hosts, spawn, tmp_path, kernel, initrd,
                                                       kvm_available):
    """The destination is SIGKILLed while RAM streams into it (16 MiB of
    the first pass, which is some 130 MiB for a guest holding 100 MiB of
    data): the migration fails, the source VM goes on counting in hostA,
    and then it moves to a new destination in hostB, where its counter,
    data and network carry on."""
    hosts = two_hosts
    g, sock = lan_guest(spawn, tmp_path, kernel, initrd, hosts, memory="512M")
    g.send(dirtier(100))
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=5", 60)

    d, p = to_b(spawn, hosts)
    status, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:{hosts.b_ip}:{p}", "token": TOKEN})
    assert status == 204, body
    deadline = time.monotonic() + 60
    while (st := curl(sock, "GET", "/migrate")[1])["state"] == "active" and st["bytes_sent"] < 16 << 20:
        assert time.monotonic() < deadline, st
        time.sleep(0.005)
    d.signal(signal.SIGKILL)
    assert st["state"] == "active" and st["round"] == 0, f"killed too late: {st}\n{d.describe()}"
    st = ended(sock)
    assert st["state"] == "failed" and st["error"], st
    assert "migration failed, the VM goes on here" in g.stderr, g.describe()

    n = last_count(g.output)
    g.wait_for(f"CNT={n + 3}", 30)
    pings_peer(g, hosts)
    d = moved(g, sock, spawn, hosts)
    check_moved(g, d)
    out = sh(d, DIRTIER_CHECK, 120)
    assert ": OK" in out, d.describe()
    pings_peer(d, hosts)
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


@pytest.mark.parametrize("storage", ["nbd", "copied"])
def test_disk_written_during_the_move(two_hosts, spawn, tmp_path, kernel, initrd, kvm_available, storage):
    """The guest keeps rewriting a file on its ext4 disk with fsync, and
    appends its counter there, while it moves. nbd: the disk is an export
    of qemu-nbd in the peer namespace, which both hosts reach over the LAN;
    copied: a file of hostA's sent along (copy_storage) into hostB's
    directory. Afterwards the last file matches its checksum, the
    filesystem checks clean, and the count file holds every number."""
    hosts = two_hosts
    img = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(img), "64M"], check=True)
    if storage == "nbd":
        nbd_port, pid_file = port(), tmp_path / "nbd.pid"
        hosts.peer.run("qemu-nbd", "-f", "raw", "--persistent", "--fork", f"--pid-file={pid_file}",
                       "-b", hosts.peer_ip, "-p", nbd_port, "--export-name=disk", img)
        disk, dest_extra, extra = f"nbd://{hosts.peer_ip}:{nbd_port}/disk", (), {}
    else:
        there = tmp_path / "hostB"
        there.mkdir()
        disk, dest_extra, extra = str(img), ("--receive-dir", str(there)), {"copy_storage": True}
    try:
        g, sock = lan_guest(spawn, tmp_path, kernel, initrd, hosts, extra=["--disk", disk])
        sh(g, "mount /dev/vda /mnt")
        g.send(DISK_CHURN)
        g.send(COUNTER.format(file="/mnt/count"))
        g.wait_for(re.compile(r"ROUND\s+CNT=\d+\s+ROUND"), 60)
        d = moved(g, sock, spawn, hosts, dest_extra, **extra)
        check_moved(g, d)
        out = sh(d, "touch /tmp/stop; kill %2; wait %1; sleep 0.5; md5sum -c /mnt/f.md5 && tail -n 1 /mnt/count "
                 "&& umount /mnt", 120)
        assert ": OK" in out, d.describe()
        last = int(re.search(r"^(\d+)\s*$", out, re.M).group(1))
        d.send("poweroff")
        assert d.wait_exit(60) == 0, d.describe()
    finally:
        if storage == "nbd" and pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    result = img if storage == "nbd" else there / "disk.img"
    res = subprocess.run(["e2fsck", "-fn", str(result)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(["debugfs", "-R", "cat /count", str(result)], capture_output=True, text=True)
    values = [int(v) for v in res.stdout.split()]
    assert values == list(range(1, last + 1)), f"count file has gaps or repeats: {values[-10:]}"
