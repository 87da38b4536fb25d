"""Multi-queue virtio-blk and adaptive polling end to end: the guest sees the
queues it was given (queues=, default one per vCPU), requests from every
CPU at once reach the image intact, with and without poll_us=, on both
transports; a snapshot of a multi-queue disk restores with its queues;
bad queues=/poll_us= values are refused with one line naming them.

The guest tests need /dev/kvm (conftest skips them without); the refusals
run anywhere.
"""

import hashlib
import os
import re

import pytest

from conftest import refused
from test_snapshot import api_boot, restore, snapshot_and_kill

TRANSPORTS = ["pci", "mmio"]
IO_TIMEOUT = 300.0  # the machine may be loaded: be generous, never assert on time
MiB = 1 << 20


def sh(g, cmd, timeout=IO_TIMEOUT):
    out, status = g.run(cmd, timeout)
    assert status == 0, f"guest command failed ({status}): {cmd}\n{out}\n{g.describe()}"
    return out


def queues_seen(g, dev="vda"):
    """How many hardware queues the guest's block layer made for dev."""
    out = sh(g, f"ls /sys/block/{dev}/mq")
    return len([q for q in out.split() if q.isdigit()])


def parallel_writes(g, n):
    """n direct-I/O writers at once, writer i pinned to CPU i when taskset
    exists, each 2 MiB of its own at MiB offset 4 * (i + 1); returns their
    md5s by offset."""
    sh(g, f"for i in $(seq 0 {n - 1}); do dd if=/dev/urandom of=/tmp/w$i bs=1M count=2 2>/dev/null; done")
    pin = "taskset -c $i " if "taskset" in sh(g, "command -v taskset || echo none") else ""
    sh(g, f"for i in $(seq 0 {n - 1}); do {pin}dd if=/tmp/w$i of=/dev/vda bs=64k seek=$((64 * (i + 1)))"
          f" oflag=direct conv=notrunc 2>/dev/null & done; wait")
    out = sh(g, f"for i in $(seq 0 {n - 1}); do md5sum /tmp/w$i; done")
    sums = re.findall(r"^([0-9a-f]{32})\s+/tmp/w(\d+)", out, re.M)
    assert len(sums) == n, out
    return {4 * (int(i) + 1): s for s, i in sums}


def check_image(img, sums):
    with open(img, "rb") as f:
        for mib, want in sums.items():
            f.seek(mib * MiB)
            assert hashlib.md5(f.read(2 * MiB)).hexdigest() == want, f"data at {mib} MiB of {img} differs"


@pytest.mark.vm
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("opts,cpus,want", [("queues=4", 4, 4), ("queues=4,poll_us=200", 4, 4),
                                            ("", 2, 2), ("queues=1,poll_us=50", 2, 1)])
def test_queues_and_parallel_writes(boot, tmp_path, transport, opts, cpus, want):
    img = tmp_path / "d.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    disk = f"{img},{opts}" if opts else str(img)
    g = boot(cpus=cpus, extra=["--transport", transport, "--disk", disk])
    g.wait_ready()
    assert queues_seen(g) == want, g.describe()
    sums = parallel_writes(g, cpus)
    # Reads from every CPU come back as written.
    out = sh(g, f"for i in $(seq 0 {cpus - 1}); do dd if=/dev/vda bs=64k skip=$((64 * (i + 1))) count=32"
                f" iflag=direct 2>/dev/null | md5sum; done")
    assert sorted(re.findall(r"[0-9a-f]{32}", out)) == sorted(sums.values()), g.describe()
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
    check_image(img, sums)


@pytest.mark.vm
def test_polled_disk_serves_one_request_at_a_time(boot, tmp_path):
    """QD1 (one dd, one 4 KiB request at a time, each waiting for the last):
    every request is answered whether the device caught it polling or by
    a kick after the window."""
    img = tmp_path / "d.img"
    data = os.urandom(4 * MiB)
    with open(img, "wb") as f:
        f.write(data)
    g = boot(extra=["--disk", f"{img},poll_us=1000"])
    g.wait_ready()
    out = sh(g, "dd if=/dev/vda bs=4k count=1024 iflag=direct 2>/dev/null | md5sum; sleep 1;"
                " dd if=/dev/vda bs=4k count=1024 iflag=direct 2>/dev/null | md5sum")
    assert re.findall(r"[0-9a-f]{32}", out) == [hashlib.md5(data).hexdigest()] * 2, g.describe()
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()


@pytest.mark.vm
def test_snapshot_of_multi_queue_disk(spawn, tmp_path, kernel, initrd, kvm_available):
    """A 2-vCPU VM's disk has two queues (the API's drives take the
    default); after a snapshot and restore it still has them and writes
    from both CPUs reach the image."""
    img = tmp_path / "d.img"
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, cpus=2, disk=img)
    assert queues_seen(g) == 2, g.describe()
    parallel_writes(g, 2)
    snapshot_and_kill(g, sock, tmp_path / "snap")
    r = restore(spawn, tmp_path / "snap")
    assert queues_seen(r) == 2, r.describe()
    sums = parallel_writes(r, 2)
    r.send("poweroff")
    assert r.wait_exit(120) == 0, r.describe()
    check_image(img, sums)


@pytest.mark.parametrize("opt,value", [("queues", "0"), ("queues", "17"), ("queues", "two"),
                                       ("poll_us", "1000001"), ("poll_us", "-1"), ("poll_us", "")])
def test_bad_queue_options_refused(tmp_path, opt, value):
    line = refused(["--kernel", tmp_path / "k", "--disk", f"{tmp_path / 'd.img'},{opt}={value}"],
                   f"bad {opt} '{value}'")
    assert str(tmp_path / "d.img") in line
