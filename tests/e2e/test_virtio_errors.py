"""Bad virtio options on the command line: exit 2, one stderr line naming the bad value,
and no guest started."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import kernel_path, make_tiny_elf, require_bin

TIMEOUT = 30


def cellvm(args, prefix=()):
    try:
        return subprocess.run(list(prefix) + [str(require_bin())] + [str(a) for a in args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT, errors="replace")
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"cellvm {' '.join(map(str, args))} still running after {TIMEOUT} s "
                    f"(the bad input was not rejected)\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}")


def assert_usage_error(res, value=None):
    what = (f"cellvm {' '.join(res.args[1:])}\nexit code {res.returncode}\n"
            f"stdout: {res.stdout[-2000:]!r}\nstderr: {res.stderr!r}")
    assert res.returncode == 2, what
    lines = res.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), "expected exactly one stderr line\n" + what
    assert lines[0].startswith("cellvm: "), what
    if value is not None:
        assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(str(value))}(?![A-Za-z0-9_])", lines[0]), \
            f"stderr line does not contain {str(value)!r}\n" + what
    assert res.stdout == "", what


@pytest.fixture
def good_kernel(tmp_path):
    k = kernel_path()
    if k and os.path.isfile(k):
        return k
    return str(make_tiny_elf(tmp_path / "tiny.elf"))


@pytest.fixture
def kvm_usable():
    """Disk images and taps are opened after /dev/kvm: without access to it the
    error would be about /dev/kvm, not about the disk."""
    dev = os.environ.get("CELLVM_KVM_DEVICE", "/dev/kvm")
    if not os.access(dev, os.R_OK | os.W_OK):
        pytest.skip(f"{dev} not usable by this user")


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "ok.img"
    with open(p, "wb") as f:
        f.truncate(1 << 20)
    return p


def run(good_kernel, *args):
    return cellvm(["run", "--kernel", good_kernel, "--cmdline", "console=ttyS0 pti=on"]
                  + list(args))


def isolated_net():
    """As root, a command prefix that runs cellvm in a throwaway network namespace,
    so that a --net that is wrongly accepted cannot create taps on the host."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--net"]
    return []


def run_net(good_kernel, *args):
    return cellvm(["run", "--kernel", good_kernel, "--cmdline", "console=ttyS0 pti=on"]
                  + list(args), prefix=isolated_net())


def test_disk_missing_file(good_kernel, tmp_path, kvm_usable):
    missing = tmp_path / "no-such-dir" / "missing.img"
    assert_usage_error(run(good_kernel, "--disk", missing), missing)


def test_disk_missing_file_readonly(good_kernel, tmp_path, kvm_usable):
    missing = tmp_path / "missing-ro.img"
    assert_usage_error(run(good_kernel, "--disk", f"{missing},ro"), missing)


def test_disk_missing_second_of_two(good_kernel, img, tmp_path, kvm_usable):
    missing = tmp_path / "second.img"
    assert_usage_error(run(good_kernel, "--disk", img, "--disk", missing), missing)


def test_disk_is_a_directory(good_kernel, tmp_path, kvm_usable):
    d = tmp_path / "adir"
    d.mkdir()
    assert_usage_error(run(good_kernel, "--disk", d), d)


@pytest.mark.parametrize("opt,value", [
    ("bogus", "bogus"),
    ("rw=1", "rw=1"),
    ("format=vmdk", "vmdk"),
    ("id=" + "x" * 21, None),
], ids=["unknown", "unknown-kv", "bad-format", "id-too-long"])
def test_disk_bad_option(good_kernel, img, opt, value):
    assert_usage_error(run(good_kernel, "--disk", f"{img},{opt}"), value)


@pytest.mark.parametrize("arg", ["", ",ro"], ids=["empty", "no-path"])
def test_disk_missing_path(good_kernel, arg):
    assert_usage_error(run(good_kernel, "--disk", arg))


def test_too_many_disks(good_kernel, img):
    args = []
    for _ in range(9):
        args += ["--disk", f"{img},ro"]
    assert_usage_error(run(good_kernel, *args))


@pytest.mark.parametrize("arg,value", [
    ("tap=", "tap="),
    ("mac=zz", "zz"),
    ("tap=cvt0,mac=zz", "zz"),
    ("tap=cvt0,mac=52:54:00:12:34", "52:54:00:12:34"),
    ("tap=cvt0,mac=01:00:5e:00:00:01", "01:00:5e:00:00:01"),
    ("tap=cvt0,mac=52:54:00:12:34:567", "52:54:00:12:34:567"),
    ("tap=" + "t" * 16, "t" * 16),
    ("tap=cvt0,speed=10", "speed=10"),
    ("", None),
], ids=["tap-empty", "mac-zz", "tap-mac-zz", "mac-short", "mac-multicast", "mac-long",
        "tap-too-long", "unknown", "empty"])
def test_net_bad_value(good_kernel, arg, value):
    assert_usage_error(run_net(good_kernel, "--net", arg), value)


def test_too_many_nics(good_kernel):
    args = []
    for i in range(5):
        args += ["--net", f"tap=cvt{i}"]
    assert_usage_error(run_net(good_kernel, *args))


def test_net_tap_is_not_a_tap(good_kernel, kvm_usable):
    """An existing interface that is not a tap ('lo', in a fresh namespace)."""
    if not isolated_net():
        pytest.skip("needs root and unshare (runs in a throwaway network namespace)")
    assert_usage_error(run_net(good_kernel, "--net", "tap=lo"), "lo")


@pytest.mark.parametrize("opt,value", [
    ("--transport", "foo"),
    ("--transport", "PCI-E"),
    ("--console", "foo"),
    ("--console", "hvc0"),
    ("--name", ""),
], ids=["transport-foo", "transport-pcie", "console-foo", "console-hvc0", "name-empty"])
def test_bad_choice(good_kernel, opt, value):
    assert_usage_error(run(good_kernel, opt, value), value or None)


@pytest.mark.parametrize("opt", ["--disk", "--transport", "--net", "--console", "--name"])
def test_option_needs_value(good_kernel, opt):
    assert_usage_error(run_net(good_kernel, opt), opt)
