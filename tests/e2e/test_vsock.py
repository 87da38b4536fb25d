"""virtio-vsock end to end, Firecracker's hybrid design: host processes reach
guest ports through the Unix socket uds_path ("CONNECT PORT\\n", answered
"OK HOSTPORT\\n"), guests reach host port P at the listener uds_path_P. The
guest side is bin/vsock-test (guest/tests/vsock.c) in the test initramfs."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import zlib

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin
from test_api import curl, wait_sock

pytestmark = pytest.mark.vm

BIG = 64 << 20


def vsock_guest(boot, tmp_path, cid=3, extra=()):
    uds = str(tmp_path / "v.sock")
    g = boot(extra=["--vsock", f"cid={cid},uds={uds}", *extra])
    g.wait_ready()
    return g, uds


def readline(s):
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        line += b
    return line


def host_connect(uds, port):
    """A host connection to guest port `port`: (socket, cellvm's answer)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(uds)
    s.sendall(f"CONNECT {port}\n".encode())
    return s, readline(s)


def recv_all(s):
    data = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            return bytes(data)
        data += b


def guest_listen(g, port, mode="echo", arg="-", count=1):
    g.send(f"vsock-test listen {port} {mode} {arg} {count} &")
    g.wait_for(f"VSOCK-LISTENING {port}")


class HostListener:
    """A listener at uds_P serving each connection with fn(conn) in a thread."""

    def __init__(self, uds, port, fn):
        self.path = f"{uds}_{port}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(64)
        self.fn = fn
        self.results = []
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        with c:
            self.results.append(self.fn(c))

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def echo_until_eof(c):
    while True:
        b = c.recv(65536)
        if not b:
            return True
        c.sendall(b)


def test_host_connects_to_guest_and_echoes(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path)
    guest_listen(g, 5000)
    s, answer = host_connect(uds, 5000)
    m = re.fullmatch(rb"OK (\d+)\n", answer)
    assert m and int(m.group(1)) >= 1 << 30, answer
    s.sendall(b"ping over vsock\n")
    assert recv_all_until(s, b"ping over vsock\n")
    # The host's half-close reaches the guest as end of stream; the guest's
    # echo then closes and the host sees its end.
    s.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    s.close()


def recv_all_until(s, want):
    got = b""
    while len(got) < len(want):
        b = s.recv(len(want) - len(got))
        if not b:
            break
        got += b
    return got == want


def test_vsock_over_mmio(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path, extra=["--transport", "mmio"])
    guest_listen(g, 5000)
    s, answer = host_connect(uds, 5000)
    assert answer.startswith(b"OK "), answer
    s.sendall(b"over mmio\n")
    assert recv_all_until(s, b"over mmio\n")
    s.close()
    lst = HostListener(uds, 6000, echo_until_eof)
    out, rc = g.run("vsock-test connect 2 6000 hello 7")
    assert rc == 0 and "VSOCK-HELLO-OK 7" in out, out
    lst.close()


def test_guest_connects_to_host_listener(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path)
    lst = HostListener(uds, 6000, echo_until_eof)
    out, rc = g.run("vsock-test connect 2 6000 hello 1")
    assert rc == 0 and "VSOCK-HELLO-OK 1" in out, out
    # The guest closing half-way (writing shut first) still gets every byte back.
    out, rc = g.run("vsock-test connect 2 6000 halfclose 2")
    assert rc == 0 and "VSOCK-HALFCLOSE-OK 2" in out, out
    lst.close()


def test_unknown_ports_are_reset(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path)
    # Nobody listens on guest port 5999: the host's socket is closed.
    s, answer = host_connect(uds, 5999)
    assert answer == b""
    s.close()
    # No listener at uds_7777: the guest's connect is reset.
    out, rc = g.run("vsock-test connect 2 7777 sink")
    assert rc != 0 and re.search(r"VSOCK-CONNECT-FAIL errno=(ECONNRESET|ECONNREFUSED)", out), out
    # A malformed command closes the host's socket too.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(uds)
    s.sendall(b"CONNECT -1\n")
    assert s.recv(10) == b""
    s.close()


def test_64mib_each_way_with_checksums(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path)
    # Host -> guest.
    guest_listen(g, 5001, "sink")
    s, answer = host_connect(uds, 5001)
    assert answer.startswith(b"OK "), answer
    crc, t0 = 0, time.monotonic()
    chunk = os.urandom(1 << 20)
    for i in range(BIG >> 20):
        block = bytes([i & 255]) + chunk[1:]
        crc = zlib.crc32(block, crc)
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    m = g.wait_for(re.compile(r"VSOCK-SINK bytes=(\d+) crc=([0-9a-f]{8})"), 300)
    h2g = time.monotonic() - t0
    assert int(m.group(1)) == BIG and int(m.group(2), 16) == crc
    assert s.recv(10) == b""
    s.close()

    # Guest -> host.
    got = {}

    def sink(c):
        n, c_crc = 0, 0
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            n += len(b)
            c_crc = zlib.crc32(b, c_crc)
        got.update(bytes=n, crc=c_crc)

    lst = HostListener(uds, 6001, sink)
    t0 = time.monotonic()
    out, rc = g.run(f"vsock-test connect 2 6001 source {BIG}", timeout=300)
    g2h = time.monotonic() - t0
    m = re.search(r"VSOCK-SOURCE bytes=(\d+) crc=([0-9a-f]{8})", out)
    assert rc == 0 and m, out
    for t in lst.threads:
        t.join(60)
    assert got == {"bytes": BIG, "crc": int(m.group(2), 16)}
    lst.close()
    print(f"vsock 64 MiB: host->guest {BIG / h2g / 2**20:.0f} MiB/s, guest->host {BIG / g2h / 2**20:.0f} MiB/s")


def test_guest_closes_half_way(boot, tmp_path):
    """The guest stops reading and closes while the host is still sending:
    the host's socket ends (no hang), and the device goes on working."""
    g, uds = vsock_guest(boot, tmp_path)
    guest_listen(g, 5004, "partial", "100000")
    s, answer = host_connect(uds, 5004)
    assert answer.startswith(b"OK "), answer
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(BIG >> 16):
            s.sendall(bytes(65536))
    g.wait_for("VSOCK-PARTIAL bytes=100000")
    s.close()
    # The same from the guest's side of a guest-initiated connection: the
    # host reader sees the end of the stream.
    lst = HostListener(uds, 6004, recv_all)
    g.send("vsock-test connect 2 6004 partial 10 &")
    g.wait_for("VSOCK-CONNECTED 6004")
    guest_listen(g, 5005)
    s, answer = host_connect(uds, 5005)
    assert answer.startswith(b"OK ")
    s.sendall(b"still here\n")
    assert recv_all_until(s, b"still here\n")
    s.close()
    lst.close()


def test_config_file_vsock(spawn, tmp_path, kernel, initrd):
    uds = str(tmp_path / "v.sock")
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": kernel, "initrd_path": str(initrd), "boot_args": DEFAULT_CMDLINE},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
        "vsock": {"guest_cid": 9, "uds_path": uds}}))
    g = spawn([require_bin(), "run", "--config-file", str(cfg)])
    g.wait_ready(BOOT_TIMEOUT)
    guest_listen(g, 5000)
    s, answer = host_connect(uds, 5000)
    assert answer.startswith(b"OK "), answer
    s.close()
    g.send("poweroff")
    assert g.wait_exit() == 0
    assert not os.path.exists(uds)  # removed when the VM stops


def test_many_concurrent_connections(boot, tmp_path):
    g, uds = vsock_guest(boot, tmp_path)
    n = 32
    guest_listen(g, 5002, "echo", "-", n)
    conns = [host_connect(uds, 5002) for _ in range(n)]
    ports = set()
    for s, answer in conns:
        assert answer.startswith(b"OK "), answer
        ports.add(answer)
    assert len(ports) == n  # every connection has its own host port
    # All open at once; each carries its own bytes.
    for i, (s, _) in enumerate(conns):
        s.sendall(f"conn {i}\n".encode() * 100)
    for i, (s, _) in enumerate(conns):
        assert recv_all_until(s, f"conn {i}\n".encode() * 100)
        s.shutdown(socket.SHUT_WR)
    for s, _ in conns:
        assert s.recv(10) == b""
        s.close()
    # Guest-initiated, concurrently.
    lst = HostListener(uds, 6002, echo_until_eof)
    out, rc = g.run(f"for i in $(seq {n}); do vsock-test connect 2 6002 hello $i & done; wait", timeout=120)
    assert sorted(int(x) for x in re.findall(r"VSOCK-HELLO-OK (\d+)", out)) == list(range(1, n + 1)), out
    lst.close()


def test_api_put_vsock_before_boot_only(spawn, tmp_path, kernel, initrd):
    sock = str(tmp_path / "api.sock")
    uds = str(tmp_path / "v.sock")
    g = spawn([require_bin(), "run", "--api-sock", sock])
    wait_sock(g, sock)
    status, body = curl(sock, "PUT", "/vsock", {"guest_cid": 2, "uds_path": uds})
    assert status == 400 and "guest_cid" in body["fault_message"]
    status, body = curl(sock, "PUT", "/vsock", {"guest_cid": 3})
    assert status == 400 and "uds_path" in body["fault_message"]
    status, body = curl(sock, "PUT", "/vsock", {"guest_cid": 3, "uds_path": uds, "bogus": 1})
    assert status == 400
    assert curl(sock, "PUT", "/vsock", {"vsock_id": "vsock0", "guest_cid": 4, "uds_path": uds})[0] == 204
    assert curl(sock, "GET", "/vm/config")[1]["vsock"] == {"guest_cid": 4, "uds_path": uds}
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready(BOOT_TIMEOUT)
    status, body = curl(sock, "PUT", "/vsock", {"guest_cid": 5, "uds_path": uds})
    assert status == 400
    assert body["fault_message"] == "The requested operation is not supported after starting the microVM."
    guest_listen(g, 5000)
    s, answer = host_connect(uds, 5000)
    assert answer.startswith(b"OK ")
    s.close()


@pytest.mark.parametrize("load", ["cli", "api"])
def test_snapshot_restore_resets_connections(spawn, boot, tmp_path, load):
    sock = str(tmp_path / "api.sock")
    g, uds = vsock_guest(boot, tmp_path, extra=["--api-sock", sock])
    guest_listen(g, 5000, "echo", "-", 2)
    s, answer = host_connect(uds, 5000)
    assert answer.startswith(b"OK ")
    held = []
    lst = HostListener(uds, 6000, lambda c: held.append(c) or c.recv(1))
    g.send("vsock-test connect 2 6000 sink &")
    g.wait_for("VSOCK-CONNECTED 6000")
    d = tmp_path / "snap"
    d.mkdir()
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    status, body = curl(sock, "PUT", "/snapshot/create", {
        "snapshot_type": "Full", "snapshot_path": f"{d}/state", "mem_file_path": f"{d}/memory"})
    assert status == 204, body
    os.killpg(g.proc.pid, signal.SIGKILL)
    g.proc.wait(10)
    s.close()
    if load == "cli":
        r = spawn([require_bin(), "run", "--restore", str(d)])
    else:
        sock2 = str(tmp_path / "load.sock")
        r = spawn([require_bin(), "run", "--api-sock", sock2])
        wait_sock(r, sock2)
        status, body = curl(sock2, "PUT", "/snapshot/load", {
            "snapshot_path": f"{d}/state", "resume_vm": True,
            "mem_backend": {"backend_type": "File", "backend_path": f"{d}/memory"}})
        assert status == 204, body
        assert curl(sock2, "GET", "/vm/config")[1]["vsock"] == {"guest_cid": 3, "uds_path": uds}
    # The guest's connection was reset: its sink ends.
    r.wait_for("VSOCK-SINK")
    # The listener is back and the guest's listener takes a new connection.
    s, answer = host_connect(uds, 5000)
    assert answer.startswith(b"OK "), (answer, r.describe())
    s.sendall(b"after restore\n")
    assert recv_all_until(s, b"after restore\n")
    s.close()
    out, rc = r.run("vsock-test connect 2 6000 source 1000")
    assert rc == 0 and "VSOCK-SOURCE bytes=1000" in out, out
    lst.close()


@pytest.mark.parametrize("value, named", [
    ("cid=2,uds=/tmp/x", "cid=2,uds=/tmp/x"),
    ("cid=abc,uds=/tmp/x", "cid=abc"),
    ("cid=4294967295,uds=/tmp/x", "4294967295"),
    ("cid=3", "cid=3"),
    ("uds=/tmp/x", "uds=/tmp/x"),
    ("cid=3,uds=/tmp/x,speed=9", "speed=9"),
    ("cid=3,uds=" + "a" * 200, "aaaa"),
])
def test_bad_values_exit_2(value, named):
    res = subprocess.run([str(require_bin()), "run", "--kernel", "/nonexistent", "--vsock", value],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "--vsock" in lines[0], res.stderr


def test_uds_path_that_cannot_be_bound(boot, tmp_path, kernel, initrd):
    bad = tmp_path / "missing-dir" / "v.sock"
    res = subprocess.run([str(require_bin()), "run", "--kernel", kernel, "--initrd", str(initrd),
                          "--vsock", f"cid=3,uds={bad}"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res
    assert str(bad) in res.stderr.strip().splitlines()[-1]
