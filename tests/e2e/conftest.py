"""End-to-end test helpers for `cellvm run` (see docs/cli-contract.md).

Paths come from the environment, with defaults relative to the project root:
  CELLVM_BIN     build/cellvm
  CELLVM_KERNEL  output of scripts/kernel.sh (the shared PVM vmlinux here)
  CELLVM_INITRD  build/guest/initramfs.cpio (rebuilt with scripts/mkinitramfs.sh
                 once per session when this default is used)
  CELLVM_BOOT_TIMEOUT  seconds to wait for the guest's /init (default 60)
  CELLVM_TIMEOUT_SCALE multiplies every wait for a guest (default 1): a
                 guest run under emulation (scripts/nested.sh) is slow
"""

import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_MARKER = "CELLVM-INIT-READY"
# PS1 of the initramfs shell is '\h:\w\$ ' -> "cellvm:/# ".
PROMPT_RE = re.compile(r"cellvm:\S*# ")
TIMEOUT_SCALE = float(os.environ.get("CELLVM_TIMEOUT_SCALE", "1"))
BOOT_TIMEOUT = float(os.environ.get("CELLVM_BOOT_TIMEOUT", "60")) * TIMEOUT_SCALE
CMD_TIMEOUT = 30.0 * TIMEOUT_SCALE
EXIT_TIMEOUT = 30.0 * TIMEOUT_SCALE


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots a guest (needs /dev/kvm and a guest kernel)")
    config.addinivalue_line(
        "markers", "slow: slow boot (e.g. SMP guests); deselect with -m 'not slow'")
    config.addinivalue_line(
        "markers", "net: needs root networking (network namespace, tap); skipped otherwise")


def kvm_usable() -> bool:
    """Whether this host can run VMs at all: /dev/kvm opens. (A host that is
    itself a PVM guest has the kvm modules but no /dev/kvm.)"""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


KVM_USABLE = kvm_usable()
NO_KVM_MESSAGE = "cannot open /dev/kvm"
# The Guests the running test started (their stderr tells why a VM failed).
_SPAWNED = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a host without a usable /dev/kvm, a test that failed because a VM
    of its could not open /dev/kvm is reported as skipped, with that reason;
    on a host with KVM this changes nothing."""
    outcome = yield
    rep = outcome.get_result()
    if not KVM_USABLE and rep.failed and call.excinfo is not None:
        text = rep.longreprtext + "".join(g.stderr for g in _SPAWNED)
        if NO_KVM_MESSAGE in text:
            rep.outcome = "skipped"
            rep.longrepr = (str(item.path), item.location[1] or 0, "needs /dev/kvm, which this host does not have")
    if call.when == "teardown":
        _SPAWNED.clear()


# --------------------------------------------------------------------------- paths

def cellvm_bin() -> Path:
    return Path(os.environ.get("CELLVM_BIN", ROOT / "build" / "cellvm"))


_kernel_cache = {}


def kernel_path():
    """The guest kernel (str), or None when there is none on this machine."""
    if "k" not in _kernel_cache:
        k = os.environ.get("CELLVM_KERNEL")
        if not k:
            res = subprocess.run([str(ROOT / "scripts" / "kernel.sh")],
                                 capture_output=True, text=True)
            k = res.stdout.strip() if res.returncode == 0 else None
        _kernel_cache["k"] = k
    return _kernel_cache["k"]


def is_shared_pvm_kernel(path) -> bool:
    """True if `path` is the shared PVM guest kernel (which has only 1 vCPU so far)."""
    real = os.path.realpath(path)
    candidates = [ROOT.parent / "shared" / "guest" / "vmlinux",
                  Path("/work/shared/guest/vmlinux")]
    return any(c.exists() and os.path.realpath(c) == real for c in candidates)


# The shared PVM kernel (../shared/guest) needs pti=on; cellvm's own guest
# kernel forces what PVM needs by itself, and stock kernels need nothing.
BASE_CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet"
DEFAULT_CMDLINE = BASE_CMDLINE + (" pti=on" if kernel_path() and is_shared_pvm_kernel(kernel_path()) else "")


def default_initrd() -> Path:
    return ROOT / "build" / "guest" / "initramfs.cpio"


def ensure_initrd() -> Path:
    """CELLVM_INITRD, or the default one, (re)built by scripts/mkinitramfs.sh (which
    is fast, idempotent and atomic) so that it matches the script and the kernel."""
    env = os.environ.get("CELLVM_INITRD")
    if env:
        p = Path(env)
        if not p.is_file():
            pytest.fail(f"CELLVM_INITRD={env} does not exist")
        return p
    p = default_initrd()
    args = [str(ROOT / "scripts" / "mkinitramfs.sh"), str(p)]
    if kernel_path():
        args.append(kernel_path())
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    return p


def require_bin() -> Path:
    b = cellvm_bin()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail(f"cellvm binary {b} not found: build it with `make` (or set CELLVM_BIN)")
    return b


def refused(args, *want, env=None):
    """`cellvm run ARGS` exits 2 with one line that contains every `want`."""
    res = subprocess.run([str(require_bin()), "run", *map(str, args)], capture_output=True, text=True, timeout=60,
                         env=None if env is None else {**os.environ, **env})
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    for w in want:
        assert w in res.stderr, res.stderr
    return res.stderr


def cpu_seconds(pid):
    """User plus system CPU time the process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_tiny_elf(path, code=b"\xeb\xfe", paddr=0x100000):
    """Write a minimal x86-64 ELF executable with one PT_LOAD at `paddr` holding
    `code` at its entry point (default: `jmp .`)."""
    ehdr = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0,  # ELFCLASS64, little endian, EV_CURRENT, SysV ABI
        2, 62, 1,                   # ET_EXEC, EM_X86_64, EV_CURRENT
        paddr, 64, 0,               # e_entry, e_phoff, e_shoff
        0, 64, 56, 1, 64, 0, 0)     # flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    phdr = struct.pack(
        "<IIQQQQQQ",
        1, 5,                       # PT_LOAD, PF_R|PF_X
        0x1000, paddr, paddr,       # p_offset, p_vaddr, p_paddr
        len(code), len(code), 0x1000)
    data = (ehdr + phdr).ljust(0x1000, b"\0") + code
    Path(path).write_bytes(data)
    return Path(path)


# --------------------------------------------------------------------------- guest

class Guest:
    """A running `cellvm run`, its console collected by reader threads.

    stdin is a pipe by default; with tty=True, stdin/stdout are the slave side of a
    pseudo-terminal (cellvm's controlling tty) and the test talks to the master.
    stderr is always a separate pipe.
    """

    def __init__(self, args, env=None, tty=False, name="guest"):
        _SPAWNED.append(self)
        self.args = [str(a) for a in args]
        self.name = name
        self.tty = tty
        self._cond = threading.Condition()
        self._out = bytearray()
        self._err = bytearray()
        self._pos = 0  # wait_for() cursor into the console output
        self._seq = 0
        self.master = self.slave = None
        full_env = dict(os.environ)
        full_env.update(env or {})
        if tty:
            self.master, self.slave = os.openpty()
            slave = self.slave
            self.tty_attrs_before = termios.tcgetattr(slave)

            def make_ctty():
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            self.proc = subprocess.Popen(
                self.args, stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                env=full_env, preexec_fn=make_ctty, close_fds=True)
            self._stdout_fd = self.master
        else:
            self.proc = subprocess.Popen(
                self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=full_env, start_new_session=True)
            self._stdout_fd = self.proc.stdout.fileno()
        self._threads = [
            threading.Thread(target=self._reader, args=(self._stdout_fd, self._out), daemon=True),
            threading.Thread(target=self._reader, args=(self.proc.stderr.fileno(), self._err),
                             daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- collection
    def _reader(self, fd, buf):
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO on a pty master once the slave side is gone
                chunk = b""
            with self._cond:
                if not chunk:
                    if buf is self._out:
                        self._out_eof = True
                    self._cond.notify_all()
                    return
                buf.extend(chunk)
                self._cond.notify_all()

    _out_eof = False

    @property
    def output(self) -> str:
        with self._cond:
            return self._out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._err.decode("utf-8", "replace")

    def describe(self, tail=3000) -> str:
        rc = self.proc.poll()
        out = self.output
        return (f"[{self.name}] {' '.join(self.args)}\n"
                f"exit code: {'still running' if rc is None else rc}\n"
                f"--- console (last {tail} chars) ---\n{out[-tail:]}\n"
                f"--- stderr ---\n{self.stderr[-tail:]}")

    # -- waiting
    def wait_for(self, pattern, timeout=CMD_TIMEOUT):
        """Wait until `pattern` (str or compiled regex) appears in the console
        output after the previous match; return the re.Match."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        exited_at = None
        with self._cond:
            while True:
                text = self._out.decode("utf-8", "replace")
                m = rx.search(text, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    why = f"timed out after {timeout:.0f} s"
                    break
                if self.proc.poll() is not None:
                    # Give the reader a moment to collect the last output (a pty
                    # master sees no EOF while the test holds the slave open).
                    exited_at = exited_at or time.monotonic()
                    if self._out_eof or time.monotonic() - exited_at > 1.0:
                        why = f"cellvm exited with {self.proc.returncode}"
                        break
                self._cond.wait(min(left, 0.5))
        shown = pattern if isinstance(pattern, str) else f"/{rx.pattern}/"
        raise AssertionError(f"{shown!r} not seen on the console ({why})\n{self.describe()}")

    def wait_ready(self, timeout=BOOT_TIMEOUT):
        """Wait for /init's marker and then the interactive shell's prompt."""
        self.wait_for(READY_MARKER, timeout)
        self.wait_for(PROMPT_RE, timeout)

    def wait_exit(self, timeout=EXIT_TIMEOUT) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"cellvm did not exit within {timeout:.0f} s\n{self.describe()}") from None
        for t in self._threads:
            t.join(5)
        return rc

    # -- input
    def write(self, data: bytes):
        if self.tty:
            os.write(self.master, data)
        else:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send(self, line: str):
        """Type one line (Enter is CR on a terminal, LF on a pipe)."""
        self.write(line.encode() + (b"\r" if self.tty else b"\n"))

    def run(self, cmd: str, timeout=CMD_TIMEOUT):
        """Run `cmd` in the guest shell; return (output, exit status).

        The command is framed by markers written so that the shell's echo of the
        typed line never contains them ("__B""7__" prints as __B7__)."""
        self._seq += 1
        n = self._seq
        self.send(f'echo "__B""{n}__"; {cmd}; echo "__E""{n}_$?__"')
        m = self.wait_for(re.compile(rf"__B{n}__\r?\n(.*?)__E{n}_(\d+)__", re.S), timeout)
        return m.group(1).replace("\r\n", "\n"), int(m.group(2))

    def signal(self, sig):
        self.proc.send_signal(sig)

    # -- cleanup
    def _close_fd(self, attr):
        fd = getattr(self, attr)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
            setattr(self, attr, None)

    def close(self):
        if self.proc.poll() is None:
            try:  # cellvm leads its own process group (new session): kill it all
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if not self.tty and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        # Closing the slave first makes a read on the master fail (EIO), which
        # ends the reader thread; only then is the master closed.
        self._close_fd("slave")
        for t in self._threads:
            t.join(2)
        self._close_fd("master")
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
        print(self.describe(tail=20000))  # shown by pytest when the test fails


def vm_args(kernel, initrd=None, cmdline=DEFAULT_CMDLINE, memory="256M", cpus=None, extra=()):
    args = [require_bin(), "run", "--kernel", kernel]
    if initrd:
        args += ["--initrd", initrd]
    if cmdline is not None:
        args += ["--cmdline", cmdline]
    if memory:
        args += ["--memory", memory]
    if cpus is not None:
        args += ["--cpus", str(cpus)]
    return args + list(extra)


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def kernel():
    k = kernel_path()
    if not k:
        pytest.skip("no guest kernel (set CELLVM_KERNEL or install linux-image-amd64)")
    if not os.path.isfile(k):
        pytest.fail(f"guest kernel {k} does not exist")
    return k


@pytest.fixture(scope="session")
def initrd(kernel):
    return ensure_initrd()


@pytest.fixture(scope="session")
def kvm_available():
    dev = "/dev/kvm"
    if not os.path.exists(dev):
        pytest.skip(f"{dev} missing")
    return dev


@pytest.fixture
def spawn(request):
    """spawn(args, env=None, tty=False) -> Guest; every Guest is killed at teardown."""
    guests = []

    def _spawn(args, env=None, tty=False):
        g = Guest(args, env=env, tty=tty, name=f"{request.node.name}#{len(guests)}")
        guests.append(g)
        return g

    yield _spawn
    for g in guests:
        g.close()


@pytest.fixture
def boot(spawn, kernel, initrd, kvm_available):
    """boot(cmdline=..., memory=..., cpus=..., command=None, tty=False, env=None) -> Guest.

    With `command`, it is appended to the kernel command line after "--", so the
    initramfs runs it and powers off."""

    def _boot(cmdline=DEFAULT_CMDLINE, memory="256M", cpus=None, command=None,
              tty=False, env=None, extra=()):
        if command:
            cmdline = f"{cmdline} -- {command}"
        return spawn(vm_args(kernel, initrd, cmdline, memory, cpus, extra), env=env, tty=tty)

    return _boot


def run_command(boot, command, timeout=BOOT_TIMEOUT + CMD_TIMEOUT, **kw):
    """Boot a guest that runs `command` (via the kernel command line) and powers off.
    Returns (guest, command output, command status, cellvm exit code)."""
    g = boot(command=command, **kw)
    g.wait_for(READY_MARKER, timeout)
    m = g.wait_for(re.compile(r"CELLVM-CMD-EXIT=(\d+)"), timeout)
    text = g.output
    start = text.find(READY_MARKER) + len(READY_MARKER)
    out = text[start:m.start()].replace("\r\n", "\n").strip("\n")
    rc = g.wait_exit()
    return g, out, int(m.group(1)), rc


@pytest.fixture
def pvm_host():
    if not os.path.exists("/sys/module/kvm_pvm"):
        pytest.skip("not a PVM host (/sys/module/kvm_pvm missing)")
