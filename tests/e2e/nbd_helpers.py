"""qemu-nbd servers for the NBD disk tests (test_disk_nbd.py, test_snapshot.py)."""

import os
import random
import shutil
import socket
import subprocess
import time

import pytest


def need_qemu_nbd():
    if not shutil.which("qemu-nbd"):
        pytest.skip("qemu-nbd not found (apt-get install qemu-utils)")


def free_port():
    """A free TCP port on 127.0.0.1, below the ephemeral range."""
    for _ in range(100):
        port = random.randint(10000, 19999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port in 10000-19999")


class NbdServer:
    """qemu-nbd serving a raw file as export `name`, on a Unix socket (default)
    or a TCP port; start() returns once it accepts connections (--fork)."""

    def __init__(self, tmp_path, img, name="disk", port=None, readonly=False):
        self.img, self.name, self.port, self.readonly = img, name, port, readonly
        self.sock = tmp_path / f"{name}.sock"
        self.pid_file = tmp_path / f"{name}.pid"
        self.pid = None

    @property
    def uri(self):
        if self.port:
            return f"nbd://127.0.0.1:{self.port}/{self.name}"
        return f"nbd+unix:///{self.name}?socket={self.sock}"

    def start(self):
        need_qemu_nbd()
        where = ["-b", "127.0.0.1", "-p", str(self.port)] if self.port else [f"--socket={self.sock}"]
        args = ["qemu-nbd", "-f", "raw", "--persistent", "--discard=unmap", f"--export-name={self.name}",
                "--fork", f"--pid-file={self.pid_file}", *where, *(["-r"] if self.readonly else []),
                str(self.img)]
        res = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, f"{' '.join(args)}: {res.stderr}"
        self.pid = int(self.pid_file.read_text())
        return self

    def kill(self):
        """SIGKILL, as a crash would; returns once the process is gone."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None


@pytest.fixture
def nbd(tmp_path):
    """nbd(img, **kw) -> a started NbdServer; every one is killed at teardown."""
    servers = []

    def _start(img, **kw):
        s = NbdServer(tmp_path, img, **kw).start()
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.kill()
