"""Rate limits (token buckets): NIC rx_rate/tx_rate and disk bps/iops.

Only lower bounds on time are asserted: a transfer of S bytes at R bytes/s
with burst B cannot take less than (S - B - one request) / R, however slow
or loaded the machine is. Each interval is measured where the bytes arrive
(the guest for downloads and disk reads, the host peer for uploads)."""

import os
import random
import re

import pytest

from net_helpers import IO_TIMEOUT, boot_in, dhcp, netns_factory, procs, sh, wait_port  # noqa: F401

pytestmark = [pytest.mark.vm]

MiB = 1 << 20
# Guest intervals come from two /proc/uptime readings (10 ms steps).
CLOCK_STEP = 0.02

# A TCP sink: accept one connection, read to EOF, print the bytes and the
# seconds from the first byte to EOF.
SINK = r"""
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
n, first = 0, None
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    if first is None:
        first = time.monotonic()
    n += len(b)
print(n, time.monotonic() - first, flush=True)
"""


def uptime_delta(out):
    m = re.search(r"T0 ([\d.]+)\s.*?T1 ([\d.]+)\s", out, re.S)
    assert m, out
    return float(m.group(2)) - float(m.group(1))


def timed(cmd):
    return f"echo T0 $(cut -d' ' -f1 /proc/uptime) ; {cmd} ; echo T1 $(cut -d' ' -f1 /proc/uptime) "


@pytest.mark.net
def test_nic_rx_and_tx_rates(netns_factory, procs, spawn, kernel, initrd, kvm_available, tmp_path):
    rate, size = 2 * MiB, 8 * MiB
    burst = rate // 10  # the default: a tenth of a second
    bound = (size - burst - 65536) / rate
    ns = netns_factory()
    (tmp_path / "blob").write_bytes(os.urandom(size))
    port = random.randint(20000, 29999)
    procs.add(ns.popen("/usr/bin/python3", "-m", "http.server", port, "--bind", "127.0.0.1",
                       "--directory", tmp_path))
    wait_port(ns, "127.0.0.1", port)
    g = boot_in(spawn, ns, kernel, initrd, ["--net", "nat,rx_rate=2M,tx_rate=2M"])
    g.wait_ready()
    dhcp(g)

    out = sh(g, timed(f"wget -q -O /tmp/blob http://10.0.2.2:{port}/blob && wc -c < /tmp/blob"))
    assert re.search(rf"^\s*{size}\s*$", out, re.M), out
    took = uptime_delta(out) + CLOCK_STEP
    assert took >= bound, f"rx: {size} bytes at rx_rate=2M took {took:.2f} s, less than {bound:.2f} s"

    sport = random.randint(10000, 19999)
    sink = procs.add(ns.popen("/usr/bin/python3", "-c", SINK, sport))
    assert sink.stdout.readline().strip() == "LISTENING"
    sh(g, f"nc 10.0.2.2 {sport} < /tmp/blob")
    got, took = sink.communicate(timeout=IO_TIMEOUT)[0].split()
    assert int(got) == size
    assert float(took) >= bound, f"tx: {size} bytes at tx_rate=2M took {float(took):.2f} s, less than {bound:.2f} s"
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()


def test_disk_bps_and_iops(spawn, kernel, initrd, kvm_available, tmp_path):
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.write(os.urandom(32 * MiB))
    g = boot_in(spawn, None, kernel, initrd, ["--disk", f"{img},bps=4M,iops=100"])
    g.wait_ready()
    # bps: 16 MiB read once from the raw device (cold guest cache). The
    # largest request is max_sectors_kb; each one may overdraw the bucket.
    maxreq = int(sh(g, "cat /sys/block/vda/queue/max_sectors_kb").strip()) * 1024
    rate, size = 4 * MiB, 16 * MiB
    bound = (size - rate // 10 - maxreq) / rate - CLOCK_STEP
    out = sh(g, timed("dd if=/dev/vda of=/dev/null bs=1M count=16 2>/dev/null"))
    took = uptime_delta(out)
    assert took >= bound, f"bps: 16 MiB at bps=4M took {took:.2f} s, less than {bound:.2f} s"

    # iops: 300 page reads without readahead (one request each: the stat
    # counter checks that), past the region read above.
    sh(g, "blockdev --setra 0 /dev/vda && echo 3 > /proc/sys/vm/drop_caches")
    reads_before = int(sh(g, "cat /sys/block/vda/stat").split()[0])
    ops, iops = 300, 100
    bound = (ops - iops // 10 - 1) / iops - CLOCK_STEP
    out = sh(g, timed("dd if=/dev/vda of=/dev/null bs=4096 count=300 skip=4096 2>/dev/null"))
    took = uptime_delta(out)
    reads = int(sh(g, "cat /sys/block/vda/stat").split()[0]) - reads_before
    assert reads >= ops, f"expected {ops} read requests, the guest made {reads}"
    assert took >= bound, f"iops: {ops} reads at iops=100 took {took:.2f} s, less than {bound:.2f} s"
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
