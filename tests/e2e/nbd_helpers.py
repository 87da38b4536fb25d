"""NBD servers (qemu-nbd, or nbdkit with filters) for the NBD disk tests
(test_disk_nbd.py, test_snapshot.py)."""

import os
import random
import shutil
import socket
import subprocess
import time

import pytest


def need(tool, package):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not found (apt-get install {package})")


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
    or a TCP port; or, with `kit` = (filters, parameters), nbdkit's file
    plugin on the socket. start() returns once it accepts connections (both
    servers fork then)."""

    def __init__(self, tmp_path, img, name="disk", port=None, readonly=False, kit=None):
        self.img, self.name, self.port, self.readonly, self.kit = img, name, port, readonly, kit
        self.sock = tmp_path / f"{name}.sock"
        self.pid_file = tmp_path / f"{name}.pid"
        self.pid = None

    @property
    def uri(self):
        if self.port:
            return f"nbd://127.0.0.1:{self.port}/{self.name}"
        return f"nbd+unix:///{self.name}?socket={self.sock}"

    def command(self):
        ro = ["-r"] if self.readonly else []
        if self.kit:
            need("nbdkit", "nbdkit")
            filters, params = self.kit
            return ["nbdkit", "-U", str(self.sock), "-P", str(self.pid_file), "-e", self.name, *ro,
                    *[f"--filter={f}" for f in filters], "file", str(self.img), *params]
        need("qemu-nbd", "qemu-utils")
        where = ["-b", "127.0.0.1", "-p", str(self.port)] if self.port else [f"--socket={self.sock}"]
        return ["qemu-nbd", "-f", "raw", "--persistent", "--discard=unmap", f"--export-name={self.name}",
                "--fork", f"--pid-file={self.pid_file}", *where, *ro, str(self.img)]

    def start(self):
        args = self.command()
        res = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, f"{' '.join(args)}: {res.stderr}"
        # The forked server writes its pid file, maybe just after its parent ended.
        deadline = time.monotonic() + 10
        while not self.pid_file.exists() or not self.pid_file.read_text().strip():
            assert time.monotonic() < deadline, f"{' '.join(args)}: no pid file"
            time.sleep(0.02)
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
