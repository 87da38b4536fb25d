#!/usr/bin/python3
"""Writes seed inputs for a fuzz target into a corpus directory: small, valid
instances of the format it parses, so the fuzzer starts from structure
instead of rediscovering magic numbers and CRCs.

    scripts/fuzz-seeds.py TARGET DIR
"""
import struct
import sys
import zlib
from pathlib import Path


def section(ident: str, version: int, payload: bytes) -> bytes:
    name = ident.encode()
    return (struct.pack("<I", len(name)) + name + struct.pack("<IQI", version, len(payload),
                                                              zlib.crc32(payload)) + payload)


def state_file(sections) -> bytes:
    return b"CELLVMST" + struct.pack("<II", 1, len(sections)) + b"".join(sections)


def seeds_snapshot():
    s = lambda text: struct.pack("<I", len(text)) + text  # noqa: E731 - a string field
    config = (s(b"/vmlinux") + struct.pack("<I", 0xFFFFFFFF) + s(b"console=ttyS0") + s(b"vm") +
              struct.pack("<IQBBB", 1, 256 << 20, 0, 0, 0) + struct.pack("<I", 0) + struct.pack("<I", 0))
    serial = bytes(8) + b"\0" + bytes(1024) + struct.pack("<QQ", 0, 0) + b"\0"
    yield "config", state_file([section("config", 1, config)])
    yield "devices", state_file([section("serial", 1, serial), section("pm", 1, bytes(7)),
                                 section("pci-host", 1, bytes(4 + 256))])
    yield "empty", state_file([])


def seeds_migrate():
    rec = lambda t, payload: struct.pack("<II", t, len(payload)) + payload  # noqa: E731 - one record
    hello = rec(1, b"CELLVMIG" + struct.pack("<I", 1) + b"fuzz")
    ram = rec(2, struct.pack("<Q", 16 << 20))
    pages = rec(3, struct.pack("<IQ", 1, 7) + bytes(range(256)) * 16)
    state = rec(4, state_file([]))
    yield "whole", hello + ram + pages + state + rec(5, b"")
    # copy_storage: a 1 MiB raw disk, a data run and a zero run on it.
    name = lambda b: struct.pack("<H", len(b)) + b  # noqa: E731 - a u16-length string
    disks = rec(7, struct.pack("<IQBBB", 1, 1 << 20, 1, 0, 0) + name(b"/src/disk.img") + name(b"disk0"))
    data = rec(8, struct.pack("<IIQI", 0, 0, 65536, 4096) + bytes(range(256)) * 16)
    zero = rec(8, struct.pack("<IIQI", 0, 1, 0, 65536))
    yield "disks", hello + ram + disks + data + zero + pages + state + rec(5, b"")
    yield "hello", hello
    yield "stranger", rec(1, b"CELLVMIG" + struct.pack("<I", 1) + b"guess")


def seeds_balloon():
    """Guest RAM with an inflate request of four PFNs (queue 0 at 0: one
    descriptor, one avail entry), then a balloon snapshot section."""
    ram = bytearray(0x8000)
    struct.pack_into("<QIHH", ram, 0, 0x6000, 16, 0, 0)       # desc 0: 16 bytes at 0x6000
    struct.pack_into("<HHH", ram, 0x100, 0, 1, 0)             # avail: idx 1, ring[0] = 0
    struct.pack_into("<4I", ram, 0x6000, 0x10, 0x11, 0xfffff, 0xffffffff)
    section = struct.pack("<III", 16, 1, 0x30) + bytes(8 * 17)
    yield "inflate", bytes(ram) + section
    yield "empty", b""


SEEDS = {"fuzz_snapshot": seeds_snapshot, "fuzz_migrate": seeds_migrate, "fuzz_balloon": seeds_balloon}


def main():
    target, out = sys.argv[1], Path(sys.argv[2])
    if target not in SEEDS:
        sys.exit(f"fuzz-seeds: no seeds for '{target}'")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS[target]():
        (out / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
