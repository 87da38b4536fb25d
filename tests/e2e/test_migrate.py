"""Live migration end to end on this host (source and destination are two
cellvm processes talking TCP over loopback): a guest counting on its console
and holding data in RAM moves while it keeps writing memory; afterwards the
counter goes on without a gap or a repeat, the data is intact, and the source
process is gone. Refused and broken migrations leave the source running."""

import os
import random
import re
import socket
import struct
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin, vm_args
from test_api import curl, wait_sock
from test_snapshot import COUNTER, check_moved, last_count

pytestmark = pytest.mark.vm

TOKEN = "s3cret-token"


def dirtier(mib):
    """A background job rewriting `mib` MiB of RAM (tmpfs) over and over,
    with its checksum, until /tmp/stop exists."""
    return (f"(while [ ! -e /tmp/stop ]; do dd if=/dev/urandom of=/dev/shm/blob bs=1M count={mib} 2>/dev/null; "
            "md5sum /dev/shm/blob > /dev/shm/blob.md5; done; echo DIRTIER-DONE) &")


DIRTIER = dirtier(32)
# Ends the dirtier and checks the last blob it wrote against its checksum.
DIRTIER_CHECK = "touch /tmp/stop; wait %1; md5sum -c /dev/shm/blob.md5"


def source(spawn, tmp_path, kernel, initrd, cpus=1, memory="256M", extra=(), prefix=()):
    """A VM with an API socket (its process run under `prefix`, e.g. in a
    network namespace), at its shell prompt; (guest, socket)."""
    sock = tmp_path / "src.sock"
    g = spawn([*prefix, *vm_args(kernel, initrd, DEFAULT_CMDLINE, memory, cpus=cpus, extra=extra),
               "--api-sock", str(sock)])
    g.wait_ready(BOOT_TIMEOUT)
    wait_sock(g, sock)
    return g, sock


def destination(spawn, port, token=TOKEN, addr="127.0.0.1", prefix=()):
    d = spawn([*prefix, require_bin(), "run", "--incoming", f"tcp:{addr}:{port}", "--migrate-token", token])
    deadline = time.monotonic() + 10
    while True:  # listening once it says so
        if "waiting for a migration" in d.stderr:
            return d
        assert d.proc.poll() is None and time.monotonic() < deadline, d.describe()
        time.sleep(0.02)


def migrate(g, sock, port, token=TOKEN, host="127.0.0.1", timeout=120, **extra):
    """Starts a migration (extra: more fields of PUT /migrate) and waits for
    its end: the final status, or "completed" once the source process ended
    (it does when the VM moved)."""
    status, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:{host}:{port}", "token": token, **extra})
    assert status == 204, body
    deadline = time.monotonic() + timeout
    while True:
        if g.proc.poll() is not None:
            return {"state": "completed" if g.proc.returncode == 0 else "source died"}
        _, st = curl(sock, "GET", "/migrate") if os.path.exists(sock) else (0, None)
        if st and st["state"] != "active":
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def peer(p, rcvbuf=None):
    """A listening socket on 127.0.0.1:p standing in for a destination."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    srv.bind(("127.0.0.1", p))
    srv.listen(1)
    return srv


def start_to(sock, p, **extra):
    status, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:127.0.0.1:{p}", "token": TOKEN, **extra})
    assert status == 204, body


def ended(sock, timeout=60):
    """The status once the migration is no longer active."""
    deadline = time.monotonic() + timeout
    while (st := curl(sock, "GET", "/migrate")[1])["state"] == "active":
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    return st


# A REPLY 0 ("go on") after HELLO: the migration then streams into a peer
# that never reads.
GO_ON = struct.pack("<III", 6, 6, 0) + b"go"


def port():
    # Below the ephemeral range (32768-60999), which outgoing connections use.
    return random.randint(10000, 19999)


@pytest.mark.parametrize("cpus,transport", [(1, None), pytest.param(4, "mmio", marks=pytest.mark.slow)])
def test_migrate_running_guest(spawn, tmp_path, kernel, initrd, kvm_available, cpus, transport):
    g, sock = source(spawn, tmp_path, kernel, initrd, cpus=cpus,
                     extra=["--transport", transport] if transport else [])
    out, status = g.run("dd if=/dev/urandom of=/dev/shm/keep bs=1M count=48 2>/dev/null && md5sum /dev/shm/keep")
    assert status == 0, g.describe()
    keep = re.search(r"([0-9a-f]{32})\s+/dev/shm/keep", out).group(1)
    g.send(DIRTIER)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=5", 30)
    p = port()
    d = destination(spawn, p)
    st = migrate(g, sock, p)
    assert st["state"] == "completed", st
    assert g.wait_exit(30) == 0, g.describe()  # the source is gone
    m = re.search(r"migrated: (\d+) rounds, ([\d.]+) MiB sent", g.stderr)
    assert m and int(m.group(1)) >= 1 and float(m.group(2)) > 48, g.describe()
    check_moved(g, d)
    out, status = d.run(f"{DIRTIER_CHECK} && md5sum /dev/shm/keep", 120)
    assert status == 0 and ": OK" in out and keep in out, d.describe()
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


def test_refused_and_broken_migrations_leave_the_source_running(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = source(spawn, tmp_path, kernel, initrd)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)

    # Wrong token: the destination refuses and exits 2; the source goes on.
    p = port()
    d = destination(spawn, p, token="other")
    st = migrate(g, sock, p)
    assert st["state"] == "failed" and "wrong migration token" in st["error"], st
    assert d.wait_exit(30) == 2 and "wrong migration token" in d.stderr, d.describe()

    # A link that drops: the peer takes the connection and closes it.
    p = port()
    with peer(p) as srv:
        start_to(sock, p)
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.close()
        st = ended(sock)
    assert st["state"] == "failed", st

    # Nobody listening: refused at once, with the reason.
    status, body = curl(sock, "PUT", "/migrate", {"destination": "tcp:127.0.0.1:1", "token": TOKEN})
    assert status == 400 and "Connection refused" in body["fault_message"], body

    # Garbage to a destination: refused with a message, exit 2.
    p = port()
    d = destination(spawn, p)
    with socket.create_connection(("127.0.0.1", p)) as c:
        c.sendall(os.urandom(4096))
    assert d.wait_exit(30) == 2 and "refused the incoming migration" in d.stderr, d.describe()

    # Still the same VM, still counting, and it can still move.
    n = last_count(g.output)
    g.wait_for(f"CNT={n + 2}", 30)
    p = port()
    d = destination(spawn, p)
    assert migrate(g, sock, p)["state"] == "completed"
    assert g.wait_exit(30) == 0, g.describe()
    check_moved(g, d)
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


def test_cancel_leaves_the_vm_running(spawn, tmp_path, kernel, initrd, kvm_available):
    """A peer that takes the connection and never reads stalls the
    migration; PATCH /migrate Cancelled ends it and the VM goes on."""
    g, sock = source(spawn, tmp_path, kernel, initrd)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)
    p = port()
    with peer(p, rcvbuf=4096) as srv:
        start_to(sock, p)
        conn, _ = srv.accept()
        conn.sendall(GO_ON)
        assert curl(sock, "GET", "/migrate")[1]["state"] == "active"
        assert curl(sock, "PUT", "/snapshot/create", {"snapshot_path": "x", "mem_file_path": "y"})[0] == 400
        assert curl(sock, "PATCH", "/migrate", {"state": "Cancelled"})[0] == 204
        st = ended(sock, 30)
        conn.close()
    assert st["state"] == "failed" and "cancelled" in st["error"], st
    # max_time_ms gives up by itself.
    with peer(p, rcvbuf=4096) as srv:
        start_to(sock, p, max_time_ms=500)
        conn, _ = srv.accept()
        conn.sendall(GO_ON)
        st = ended(sock, 30)
        conn.close()
    assert st["state"] == "failed" and "not done within max_time (500 ms)" in st["error"], st
    n = last_count(g.output)
    g.wait_for(f"CNT={n + 2}", 30)
    status, body = curl(sock, "PATCH", "/migrate", {"state": "Cancelled"})
    assert status == 400 and "no migration" in body["fault_message"], body


def test_managed_vm_migrates(tmp_path, spawn, kernel, initrd, kvm_available):
    from test_manager import Manager, Pty, create
    m = Manager(tmp_path / "home")
    try:
        create(m, "mover", kernel, initrd, check=0)
        m("start", "mover", check=0)
        con = Pty(m, "mover")  # at its prompt before it moves
        con.read_until(rb"cellvm:\S*# ", BOOT_TIMEOUT)
        con.write(b"\x01x")
        con.wait()
        p = port()
        d = destination(spawn, p)
        res = m("migrate", "mover", f"tcp:127.0.0.1:{p}", "--token", TOKEN, timeout=180)
        assert res.returncode == 0 and f"migrated VM mover to tcp:127.0.0.1:{p}" in res.stdout, \
            res.stdout + res.stderr
        assert m.list()["mover"]["state"] == "stopped"
        out, status = d.run("echo still-$((40+2))")
        assert status == 0 and "still-42" in out, d.describe()
        res = m("migrate", "mover", "tcp:127.0.0.1:1")
        assert res.returncode == 2 and "usage" in res.stderr, res.stderr
    finally:
        m.cleanup()
