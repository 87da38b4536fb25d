"""Bad usage and bad input: exit code 2 and ONE stderr line naming the bad value."""

import os
import re
import struct
import subprocess

import pytest

from conftest import kernel_path, make_tiny_elf, require_bin

TIMEOUT = 30


def cellvm(args, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        return subprocess.run([str(require_bin())] + [str(a) for a in args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=full_env, timeout=TIMEOUT, errors="replace")
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"cellvm {' '.join(map(str, args))} still running after {TIMEOUT} s "
                    f"(the bad input was not rejected)\nstderr: {e.stderr!r}")


def assert_usage_error(res, value):
    what = f"cellvm {' '.join(res.args[1:])}\nexit code {res.returncode}\n" \
           f"stdout: {res.stdout!r}\nstderr: {res.stderr!r}"
    assert res.returncode == 2, what
    lines = res.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), "expected exactly one stderr line\n" + what
    line = lines[0]
    assert line.startswith("cellvm: "), what
    # The bad value appears as a whole word (not just as part of another one).
    assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(str(value))}(?![A-Za-z0-9_])", line), \
        f"stderr line does not contain {str(value)!r}\n" + what
    assert res.stdout == "", what


@pytest.fixture
def good_kernel(tmp_path):
    """The real guest kernel, else a tiny valid x86-64 ELF (options are checked
    before anything boots)."""
    k = kernel_path()
    if k and os.path.isfile(k):
        return k
    return str(make_tiny_elf(tmp_path / "tiny.elf"))


@pytest.mark.parametrize("args,value", [
    (["--foo"], "--foo"),
    (["--memory", "abc"], "abc"),
    (["--memory", "0"], "0"),
    (["--cpus", "0"], "0"),
    (["--cpus", "999"], "999"),
    (["--reboot", "maybe"], "maybe"),
], ids=["unknown-option", "memory-abc", "memory-0", "cpus-0", "cpus-999", "reboot-maybe"])
def test_bad_option(good_kernel, args, value):
    assert_usage_error(cellvm(["run", "--kernel", good_kernel] + args), value)


def test_missing_kernel(tmp_path):
    path = tmp_path / "no" / "such" / "vmlinux"
    assert_usage_error(cellvm(["run", "--kernel", path]), path)


def test_kernel_is_a_directory(tmp_path):
    assert_usage_error(cellvm(["run", "--kernel", tmp_path]), tmp_path)


def test_garbage_kernel(tmp_path):
    path = tmp_path / "garbage"
    path.write_bytes(os.urandom(65536))
    assert_usage_error(cellvm(["run", "--kernel", path]), path)


def test_truncated_elf_kernel(tmp_path):
    path = tmp_path / "truncated.elf"
    ehdr = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH",
                       b"\x7fELF", 2, 1, 1, 0, 0,
                       2, 62, 1,                  # ET_EXEC, EM_X86_64
                       0x1000000, 64, 0,          # entry, phoff, shoff
                       0, 64, 56, 4, 64, 0, 0)    # 4 program headers announced
    data = (ehdr + struct.pack("<IIQQQQQQ", 1, 5, 0x1000, 0x1000000, 0x1000000,
                               0x200000, 0x200000, 0x1000))[:100]
    assert len(data) == 100
    path.write_bytes(data)
    assert_usage_error(cellvm(["run", "--kernel", path]), path)


def test_initrd_larger_than_ram(good_kernel, tmp_path):
    path = tmp_path / "huge.cpio"
    subprocess.run(["truncate", "-s", "300M", str(path)], check=True)  # sparse
    assert_usage_error(cellvm(["run", "--kernel", good_kernel, "--initrd", path,
                               "--memory", "256M"]), path)


def test_missing_kvm_device(good_kernel):
    res = cellvm(["run", "--kernel", good_kernel], env={"CELLVM_KVM_DEVICE": "/nonexistent"})
    assert_usage_error(res, "/nonexistent")


@pytest.mark.parametrize("args", [[], ["run"], ["run", "--cpus", "1"]],
                         ids=["no-args", "run-alone", "run-without-kernel"])
def test_missing_arguments(args):
    res = cellvm(args)
    assert res.returncode == 2, f"cellvm {args}: exit {res.returncode}\n{res.stderr}"
    assert res.stderr.strip(), "expected a message on stderr"


@pytest.mark.parametrize("opt", ["--help", "--version"])
def test_help_and_version(opt):
    res = cellvm([opt])
    assert res.returncode == 0, res
    assert res.stdout.strip(), res
