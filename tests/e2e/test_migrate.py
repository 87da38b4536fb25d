"""Live migration end to end on this host (source and destination are two
cellvm processes talking TCP over loopback): a guest counting on its console
and holding data in RAM moves while it keeps writing memory; afterwards the
counter goes on without a gap or a repeat, the data is intact, and the source
process is gone. Refused and broken migrations leave the source running."""

import filecmp
import os
import random
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin, vm_args
from test_api import curl, wait_sock
from test_snapshot import COUNTER, DISK_CHURN, check_moved, last_count

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


def destination(spawn, port, token=TOKEN, addr="127.0.0.1", prefix=(), extra=()):
    d = spawn([*prefix, require_bin(), "run", "--incoming", f"tcp:{addr}:{port}", "--migrate-token", token,
               *extra])
    deadline = time.monotonic() + 10
    while True:  # listening once it says so
        if "waiting for a migration" in d.stderr:
            return d
        assert d.proc.poll() is None and time.monotonic() < deadline, d.describe()
        time.sleep(0.02)


def migrate(g, sock, port, token=TOKEN, host="127.0.0.1", timeout=180, seen=None, **extra):
    """Starts a migration (extra: more fields of PUT /migrate) and waits for
    its end: the final status, or "completed" once the source process ended
    (it does when the VM moved). `seen` collects the statuses polled while
    it was active."""
    status, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:{host}:{port}", "token": token, **extra})
    assert status == 204, body
    deadline = time.monotonic() + timeout
    while True:
        if g.proc.poll() is not None:
            return {"state": "completed" if g.proc.returncode == 0 else "source died"}
        _, st = curl(sock, "GET", "/migrate") if os.path.exists(sock) else (0, None)
        if st and st["state"] != "active":
            return st
        if st and seen is not None:
            seen.append(st)
        assert time.monotonic() < deadline, st
        time.sleep(0.05)


def move(spawn, g, sock):
    """Migrates source g's VM into a new destination on this host; returns
    the destination, once the source has ended."""
    p = port()
    d = destination(spawn, p)
    st = migrate(g, sock, p)
    assert st["state"] == "completed", st
    assert g.wait_exit(30) == 0, g.describe()  # the source is gone
    return d


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
    d = move(spawn, g, sock)
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


def receiver(m2, p, token=TOKEN):
    """`cellvm receive mover` on the second "host", waiting for the VM."""
    r = subprocess.Popen([str(require_bin()), "receive", "mover", "--listen", f"tcp:127.0.0.1:{p}", "--token", token],
                         env=m2.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.stdout.readline().startswith("waiting for VM mover"), r.stderr.read()
    return r


def booted_do(con, cmd, want):
    """At the guest's first prompt on console con, runs cmd, waits for want
    and detaches."""
    con.read_until(rb"cellvm:\S*# ", BOOT_TIMEOUT)
    con.write(cmd + b"\n")
    con.read_until(want, 30)
    con.write(b"\x01x")
    con.wait()


def test_managed_vm_migrates(tmp_path, spawn, kernel, initrd, kvm_available):
    """A managed VM with a disk in its bundle moves to `cellvm receive` under
    another CELLVM_HOME (a second host): its bundle's files go along, the VM
    runs there as a managed VM with the disk's data, and the new bundle is
    whole: stopped and started again there, it boots from its own copies. A
    receive that fails leaves no bundle."""
    from test_manager import Manager, Pty, create
    m, m2 = Manager(tmp_path / "home"), Manager(tmp_path / "home2")
    data = tmp_path / "data.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(data), "16M"], check=True)
    try:
        create(m, "mover", kernel, initrd, "--disk", f"{data},id=data", check=0)
        m("start", "mover", check=0)
        booted_do(Pty(m, "mover"), b"mount /dev/vda /mnt && echo hello-$((40+2)) > /mnt/greeting && sync && "
                  b"echo WR''OTE", b"WROTE")

        # A wrong token: the receive fails, nothing is left of it there.
        p = port()
        r = receiver(m2, p, token="other")
        res = m("migrate", "mover", f"tcp:127.0.0.1:{p}", "--token", TOKEN, timeout=180)
        assert res.returncode == 1 and "wrong migration token" in res.stderr, res.stdout + res.stderr
        assert r.wait(30) == 2 and "wrong migration token" in r.stderr.read()
        assert m2.list() == {} and not [f for f in os.listdir(m2.home / "vms")]

        p = port()
        r = receiver(m2, p)
        res = m("migrate", "mover", f"tcp:127.0.0.1:{p}", "--token", TOKEN, timeout=180)
        assert res.returncode == 0 and f"migrated VM mover to tcp:127.0.0.1:{p} (" in res.stdout, \
            res.stdout + res.stderr
        assert re.search(r"\(\d+ rounds, [\d.]+ MiB sent \([\d.]+ MiB of disks\)", res.stdout), res.stdout
        assert r.wait(60) == 0 and "received VM mover" in r.stdout.read()
        assert m.list()["mover"]["state"] == "stopped"
        vm = m2.list()["mover"]
        assert vm["state"] == "running" and vm["drives"] == "data:copied", vm
        assert {"data.img", "initrd", "kernel", "vm.json"} <= set(os.listdir(m2.bundle("mover")))
        con = Pty(m2, "mover")
        con.write(b"cat /mnt/greeting\n")
        con.read_until(b"hello-42", 30)
        con.write(b"\x01x")
        con.wait()

        # Whole: it starts again from the bundle it got.
        m2("stop", "mover", "--force", check=0)
        m2("start", "mover", check=0)
        booted_do(Pty(m2, "mover"), b"mount /dev/vda /mnt && cat /mnt/greeting", b"hello-42")
        res = m("migrate", "mover", "tcp:127.0.0.1:1")
        assert res.returncode == 2 and "usage" in res.stderr, res.stderr
    finally:
        m.cleanup()
        m2.cleanup()


def test_auto_converge_throttles_a_guest_that_outruns_the_link(spawn, tmp_path, kernel, initrd, kvm_available):
    """The guest rewrites 32 MiB of RAM over and over, much faster than the
    16 MiB/s the migration may use: auto-converge takes ever more of its
    vCPU time until what is left fits the downtime, and the VM moves with
    its data intact."""
    g, sock = source(spawn, tmp_path, kernel, initrd)
    g.send(DIRTIER)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)
    p = port()
    d = destination(spawn, p)
    seen = []
    st = migrate(g, sock, p, seen=seen, max_bandwidth_mib=16)
    assert st["state"] == "completed", st
    assert g.wait_exit(30) == 0, g.describe()
    throttles = [s["throttle_pct"] for s in seen]
    assert max(throttles) >= 20, throttles
    assert all(s["bandwidth_bps"] < 20 * 2**20 for s in seen if s["round"] >= 1), seen[-1]
    m = re.search(r"migrated: (\d+) rounds.* throttled (\d+)% at the end", g.stderr)
    assert m and int(m.group(2)) >= 20, g.describe()
    check_moved(g, d)
    out, status = d.run(DIRTIER_CHECK, 120)
    assert status == 0 and ": OK" in out, d.describe()
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()


def make_disk(tmp_path):
    """An ext4 filesystem on a raw base with a qcow2 overlay on it (so the
    copy has a backing chain to flatten)."""
    base, top = tmp_path / "base.img", tmp_path / "top.qcow2"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(base), "64M"], check=True)
    res = subprocess.run([str(require_bin()), "disk", "create", str(top), "--backing", str(base)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return top


def test_copy_storage_moves_a_disk_being_written(spawn, tmp_path, kernel, initrd, kvm_available):
    """With copy_storage the disk (and the kernel and initrd) go along, pre-copied while the guest
    keeps rewriting a file on it with fsync and appending its counter:
    after the move both go on from the copy, which checks clean and holds
    every number written. A destination that takes no disks refuses, and
    the source goes on."""
    top = make_disk(tmp_path)
    g, sock = source(spawn, tmp_path, kernel, initrd, extra=["--disk", str(top)])
    _, status = g.run("mount /dev/vda /mnt")
    assert status == 0, g.describe()
    g.send(DISK_CHURN)
    g.send(COUNTER.format(file="/mnt/count"))
    g.wait_for("CNT=3", 30)

    # No --receive-dir: refused before any file is made.
    p = port()
    d = destination(spawn, p)
    st = migrate(g, sock, p, copy_storage=True)
    assert st["state"] == "failed" and "takes no files" in st["error"], st
    assert d.wait_exit(30) == 2 and "--receive-dir DIR" in d.stderr, d.describe()

    there = tmp_path / "there"
    there.mkdir()
    p = port()
    d = destination(spawn, p, extra=["--receive-dir", str(there)])
    st = migrate(g, sock, p, copy_storage=True)
    assert st["state"] == "completed", st
    assert g.wait_exit(30) == 0, g.describe()
    m = re.search(r"MiB sent \(([\d.]+) MiB of disks\)", g.stderr)
    assert m and float(m.group(1)) > 1, g.describe()
    # The kernel and initrd came along too: a reboot there reads them.
    boot = [os.path.basename(kernel), os.path.basename(initrd)]
    assert sorted(os.listdir(there)) == sorted(["top.qcow2", *boot])
    assert all(filecmp.cmp(there / b, src, shallow=False) for b, src in zip(boot, (kernel, initrd)))
    check_moved(g, d)
    out, status = d.run("touch /tmp/stop; kill %2; wait %1; sleep 0.5; md5sum -c /mnt/f.md5 && "
                        "tail -n 1 /mnt/count && umount /mnt && echo UMOUNTED", 120)
    assert status == 0 and ": OK" in out and "UMOUNTED" in out, d.describe()
    last = int(re.search(r"^(\d+)\s*$", out, re.M).group(1))
    d.send("poweroff")
    assert d.wait_exit(60) == 0, d.describe()

    copy = there / "top.qcow2"
    info = subprocess.run([str(require_bin()), "disk", "info", str(copy)], capture_output=True, text=True)
    assert info.returncode == 0 and "backing" not in info.stdout.lower().replace("backing: none", ""), info.stdout
    flat = tmp_path / "flat.img"
    res = subprocess.run([str(require_bin()), "disk", "convert", str(copy), str(flat), "--format", "raw"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["e2fsck", "-fn", str(flat)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(["debugfs", "-R", "cat /count", str(flat)], capture_output=True, text=True)
    values = [int(v) for v in res.stdout.split()]
    assert values == list(range(1, last + 1)), f"count file has gaps or repeats: {values[-10:]}"


def read_record(c):
    head = b""
    while len(head) < 8:
        chunk = c.recv(8 - len(head))
        if not chunk:
            return None, None
        head += chunk
    kind, n = struct.unpack("<II", head)
    left = n
    while left:
        chunk = c.recv(min(left, 1 << 20))
        assert chunk, "stream cut"
        left -= len(chunk)
    return kind, n


def test_no_answer_after_the_whole_vm_keeps_it_paused(spawn, tmp_path, kernel, initrd, kvm_available):
    """A destination that takes the whole VM and then vanishes without a
    word may run it: the source must not (two copies of one VM), so it
    stays paused, says so, and goes on only when told to resume."""
    g, sock = source(spawn, tmp_path, kernel, initrd)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)
    p = port()
    with peer(p) as srv:
        start_to(sock, p)
        conn, _ = srv.accept()
        with conn:
            assert read_record(conn)[0] == 1  # HELLO
            conn.sendall(GO_ON)
            while (kind := read_record(conn)[0]) != 5:  # up to END
                assert kind is not None
        st = ended(sock)
    assert st["state"] == "unknown" and "stays paused" in st["error"], st
    assert curl(sock, "GET", "/")[1]["state"] == "Paused"
    status, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:127.0.0.1:{p}", "token": TOKEN})
    assert status == 400 and "resume it first" in body["fault_message"], body
    n = last_count(g.output)
    time.sleep(2)
    assert last_count(g.output) <= n + 1, "the VM ran on while it may run elsewhere"
    assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    g.wait_for(f"CNT={n + 3}", 30)


def test_tls(spawn, tmp_path, kernel, initrd, kvm_available):
    """With tls the stream is TLS 1.3 keyed by the token: a listener sees a
    TLS handshake, never the token; a destination without --migrate-tls, a
    TLS destination given a plain stream, or a wrong token all refuse, and
    the source goes on; with both sides agreeing, the VM moves."""
    g, sock = source(spawn, tmp_path, kernel, initrd)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)

    p = port()
    with peer(p) as srv:
        start_to(sock, p, tls=True)
        conn, _ = srv.accept()
        first = conn.recv(4096)
        conn.close()
        assert ended(sock)["state"] == "failed"
    assert first[0] == 0x16 and TOKEN.encode() not in first and b"CELLVMIG" not in first, first[:16]

    for tls_src, dest_extra, token in ((True, (), TOKEN), (False, ("--migrate-tls",), TOKEN),
                                       (True, ("--migrate-tls",), "other-token")):
        p = port()
        d = destination(spawn, p, token=token, extra=dest_extra)
        st = migrate(g, sock, p, tls=tls_src)
        assert st["state"] == "failed", st
        assert d.wait_exit(30) == 2 and "refused the incoming migration" in d.stderr, d.describe()
        n = last_count(g.output)
        g.wait_for(f"CNT={n + 2}", 30)

    p = port()
    d = destination(spawn, p, extra=["--migrate-tls"])
    assert "(TLS)" in d.stderr
    assert migrate(g, sock, p, tls=True)["state"] == "completed"
    assert g.wait_exit(30) == 0, g.describe()
    check_moved(g, d)
