"""The host binary is built hardened: PIE, full RELRO, a non-executable
stack, stack protectors and fortified libc calls (read off the ELF file)."""
import re
import subprocess

from conftest import require_bin


def readelf(*flags):
    return subprocess.run(["readelf", "-W", *flags, str(require_bin())], check=True, capture_output=True,
                          text=True).stdout


def test_position_independent():
    assert re.search(r"Type:\s+DYN \(Position-Independent Executable", readelf("-h"))
    assert re.search(r"FLAGS_1\)\s+Flags:.*\bPIE\b", readelf("-d"))


def test_full_relro():
    assert re.search(r"^\s*GNU_RELRO\s", readelf("-l"), re.M)
    dyn = readelf("-d")
    assert re.search(r"\(FLAGS\)\s+.*\bBIND_NOW\b", dyn) or re.search(r"FLAGS_1\)\s+Flags:.*\bNOW\b", dyn)


def test_stack_not_executable():
    stack = [line for line in readelf("-l").splitlines() if "GNU_STACK" in line]
    assert len(stack) == 1
    assert stack[0].split()[-2] == "RW", stack[0]


def test_stack_protector_and_fortify():
    symbols = readelf("--dyn-syms")
    assert "__stack_chk_fail" in symbols
    fortified = set(re.findall(r"\b(__\w+_chk)\b", symbols)) - {"__stack_chk_fail"}
    assert len(fortified) >= 3, fortified
