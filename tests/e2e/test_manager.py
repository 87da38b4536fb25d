"""The VM manager end to end: create a bundle, start it in the background,
attach to its console through a pty and detach, pause/resume, stop it through
the guest, survive a kill -9, export it and import it into a fresh
$CELLVM_HOME; and bad input refused with exit 2 and no change."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, PROMPT_RE, require_bin

pytestmark = pytest.mark.vm


class Manager:
    def __init__(self, home):
        self.home = home
        self.env = dict(os.environ, CELLVM_HOME=str(home))
        self.started = []

    def __call__(self, *args, check=None, timeout=120):
        res = subprocess.run([str(require_bin())] + [str(a) for a in args], env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        if check is not None:
            assert res.returncode == check, f"cellvm {' '.join(map(str, args))}: {res.returncode}\n" \
                                            f"{res.stdout}\n{res.stderr}"
        return res

    def list(self):
        return {vm["name"]: vm for vm in json.loads(self("list", "--json", check=0).stdout)}

    def bundle(self, name):
        return self.home / "vms" / name

    def snapshot(self):
        """Every file under the home with its size and mtime: 'no change' checks."""
        out = {}
        for root, _, files in os.walk(self.home):
            for f in files:
                st = os.lstat(os.path.join(root, f))
                out[os.path.join(root, f)] = (st.st_size, st.st_mtime_ns)
        return out

    def cleanup(self):
        for name, vm in self.list().items():
            if vm.get("pid"):
                os.kill(vm["pid"], signal.SIGKILL)


@pytest.fixture
def mgr(tmp_path, kernel, initrd):
    m = Manager(tmp_path / "home")
    yield m
    m.cleanup()


def create(m, name, kernel, initrd, *extra, check=None):
    return m("create", name, "--kernel", kernel, "--initrd", initrd, "--cmdline", DEFAULT_CMDLINE,
             "--cpus", "1", "--memory", "256M", *extra, check=check)


def wait_state(m, name, state, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        vm = m.list()[name]
        if vm["state"] == state:
            return vm
        assert time.monotonic() < deadline, f"{name} never {state}: {vm}"
        time.sleep(0.1)


class Pty:
    """`cellvm console NAME` on a pseudo-terminal."""

    def __init__(self, m, name):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(str(require_bin()), ["cellvm", "console", name], m.env)
        self.out = b""

    def read_until(self, pattern, timeout=BOOT_TIMEOUT):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while not rx.search(self.out):
            left = deadline - time.monotonic()
            assert left > 0, f"{pattern!r} not seen; console said {self.out[-2000:]!r}"
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"console ended before {pattern!r}: {self.out[-2000:]!r}"
                self.out += chunk
        return rx.search(self.out)

    def write(self, data):
        os.write(self.fd, data)

    def drain(self):
        while True:
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                chunk = os.read(self.fd, 65536) if r else b""
            except OSError:
                chunk = b""
            if not chunk:
                return
            self.out += chunk

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                # What it printed just before exiting is still in the pty.
                self.drain()
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                select.select([self.fd], [], [], 0.1)
                self.out += os.read(self.fd, 65536)
            except OSError:
                pass
        raise AssertionError(f"cellvm console did not exit: {self.out[-2000:]!r}")


def test_lifecycle(mgr, kernel, initrd, tmp_path, kvm_available):
    disk = tmp_path / "data.img"
    disk.write_bytes(b"manager-disk".ljust(1 << 20, b"\0"))
    create(mgr, "web", kernel, initrd, "--disk", f"{disk},id=data", check=0)
    b = mgr.bundle("web")
    cfg = json.loads((b / "vm.json").read_text())
    assert cfg["boot-source"]["kernel_image_path"] == "kernel"
    assert cfg["drives"][0]["path_on_host"] == "data.img"
    assert cfg["cellvm"]["drives"] == {"data": "copied"}
    assert (b / "data.img").read_bytes() == disk.read_bytes()
    vm = mgr.list()["web"]
    assert (vm["state"], vm["vcpus"], vm["memory_mib"], vm["pid"]) == ("stopped", 1, 256, None)
    table = mgr("list", check=0).stdout
    assert re.search(r"^web\s+stopped\s+1\s+256M\s+-", table, re.M), table

    out = mgr("start", "web", check=0).stdout
    pid = int(re.search(r"pid (\d+)", out).group(1))
    vm = wait_state(mgr, "web", "running")
    assert vm["pid"] == pid and vm["uptime_s"] is not None
    assert mgr("start", "web").returncode == 2  # already running

    # Console: attach on a pty, run a command, detach with Ctrl-A x.
    con = Pty(mgr, "web")
    con.read_until(rb"attached to VM web")
    con.read_until(rb"cellvm:\S*# ", BOOT_TIMEOUT)
    con.write(b"head -c 12 /dev/vda; echo; echo con$((6*7))sole\r")
    con.read_until(rb"manager-disk")
    con.read_until(rb"con42sole")
    con.write(b"\x01x")
    assert con.wait() == 0
    assert b"detached" in con.out
    assert mgr.list()["web"]["state"] == "running"  # detaching leaves it running
    # Attach again: the history is replayed.
    con = Pty(mgr, "web")
    con.read_until(rb"con42sole")
    con.write(b"\x01x")
    assert con.wait() == 0

    assert "paused" in mgr("pause", "web", check=0).stdout
    assert mgr.list()["web"]["state"] == "paused"
    assert mgr("delete", "web").returncode == 2  # running: refused
    assert mgr("resume", "web", check=0).returncode == 0
    assert mgr.list()["web"]["state"] == "running"

    res = mgr("stop", "web", "--timeout", "60", check=0)
    assert "guest shut down" in res.stdout, res.stdout + res.stderr
    vm = mgr.list()["web"]
    assert (vm["state"], vm["pid"]) == ("stopped", None)
    assert not (b / "api.sock").exists() and not (b / "console.sock").exists()
    assert mgr("stop", "web").returncode == 2  # not running
    mgr("delete", "web", check=0)
    assert "web" not in mgr.list() and not b.exists()
    assert disk.exists()


def test_list_after_kill_9(mgr, kernel, initrd, kvm_available):
    create(mgr, "victim", kernel, initrd, check=0)
    mgr("start", "victim", check=0)
    vm = wait_state(mgr, "victim", "running")
    os.kill(vm["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while mgr.list()["victim"]["state"] != "crashed":
        assert time.monotonic() < deadline, mgr.list()
        time.sleep(0.05)
    vm = mgr.list()["victim"]
    assert vm["pid"] is None
    # Its stale sockets and pid file do not stop it from starting again.
    assert (mgr.bundle("victim") / "api.sock").exists()
    mgr("start", "victim", check=0)
    wait_state(mgr, "victim", "running")
    mgr("stop", "victim", "--force", check=0)
    assert mgr.list()["victim"]["state"] == "stopped"


def test_export_import(mgr, kernel, initrd, tmp_path, kvm_available):
    disk = tmp_path / "sparse.img"
    with open(disk, "wb") as f:
        f.truncate(256 << 20)
        f.seek(100 << 20)
        f.write(b"data-in-the-middle")
    create(mgr, "orig", kernel, initrd, "--disk", f"{disk},id=big", "--reference-disks", check=0)
    assert mgr.list()["orig"]["drives"] == "big:referenced"
    tar = tmp_path / "orig.tar"
    mgr("export", "orig", tar, check=0)
    with tarfile.open(tar) as t:
        names = sorted(t.getnames())
    assert names == ["orig", "orig/big.img", "orig/initrd", "orig/kernel", "orig/vm.json"]
    assert tar.stat().st_size < 64 << 20  # the 256 MiB sparse disk stayed sparse

    other = Manager(tmp_path / "elsewhere")
    other("import", tar, "copy", check=0)
    try:
        b = other.bundle("copy")
        cfg = json.loads((b / "vm.json").read_text())
        assert cfg["drives"][0]["path_on_host"] == "big.img"
        assert cfg["cellvm"]["drives"] == {"big": "copied"}
        assert (b / "big.img").stat().st_size == 256 << 20
        assert os.stat(b / "big.img").st_blocks * 512 < 16 << 20
        with open(b / "big.img", "rb") as f:
            f.seek(100 << 20)
            assert f.read(18) == b"data-in-the-middle"
        assert other("import", tar, "copy").returncode == 2  # exists
        other("start", "copy", check=0)
        wait_state(other, "copy", "running")
        con = Pty(other, "copy")
        con.read_until(rb"cellvm:\S*# ")
        con.write(b"dd if=/dev/vda bs=1M skip=100 count=1 2>/dev/null | head -c 18; echo\r")
        con.read_until(rb"data-in-the-middle\r?\n")
        con.write(b"\x01x")
        con.wait()
        other("stop", "copy", "--force", check=0)
    finally:
        other.cleanup()


def test_bad_input_exit_2_no_change(mgr, kernel, initrd, tmp_path):
    create(mgr, "keep", kernel, initrd, check=0)
    before = mgr.snapshot()
    bad_tar = tmp_path / "evil.tar"
    with tarfile.open(bad_tar, "w") as t:
        info = tarfile.TarInfo("keep2/../../escape")
        info.size = 1
        import io
        t.addfile(info, io.BytesIO(b"x"))
    not_tar = tmp_path / "not.tar"
    not_tar.write_text("hello")
    cases = [
        ("create", "keep", "--kernel", kernel),                       # duplicate name
        ("create", "../evil", "--kernel", kernel),                    # bad name
        ("create", ".hidden", "--kernel", kernel),
        ("create", "x", "--kernel", "/nonexistent/vmlinux"),
        ("create", "x", "--kernel", kernel, "--cpus", "0"),
        ("create", "x", "--kernel", kernel, "--reboot", "restart"),   # not storable
        ("create", "x", "--kernel", kernel, "--disk", "/nonexistent.img"),
        ("create",),
        ("start", "nosuch"),
        ("stop", "keep"),                                             # not running
        ("stop", "keep", "--timeout", "soon"),
        ("pause", "keep"),
        ("console", "keep"),
        ("delete", "nosuch"),
        ("export", "nosuch", tmp_path / "x.tar"),
        ("import", not_tar),
        ("import", bad_tar),
        ("import", tmp_path / "missing.tar"),
        ("list", "--yaml"),
    ]
    for args in cases:
        res = mgr(*args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cellvm:"), (args, res.stderr)
        assert mgr.snapshot() == before, f"{args} changed files"
    assert list(mgr.list()) == ["keep"]
    assert not (tmp_path / "escape").exists()
