"""NBD disks (--disk nbd://... / nbd+unix://...): a real guest reads, writes,
flushes and discards through qemu-nbd, over a Unix socket and over TCP, and
the image file on the host is the judge; the server is killed and started
again under a running guest, whose I/O waits and then succeeds; a VM
migrates with its disk on a shared export; bad URIs are refused with one line
and exit status 2; `cellvm disk info|convert` talk to an export.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import require_bin, vm_args
from nbd_helpers import free_port, nbd  # noqa: F401 (a fixture)
from test_migrate import move, source
from test_snapshot import COUNTER, check_continues, last_count
from test_virtio_blk import IO_TIMEOUT, MiB, debugfs_cat, e2fsck_clean, md5, md5_in, poweroff, sh, shell

SIZE = 64 * MiB


def make_image(path, pattern_at=None, pattern=b""):
    with open(path, "wb") as f:
        f.truncate(SIZE)
        if pattern_at is not None:
            f.seek(pattern_at)
            f.write(pattern)
    return path


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def guest_md5(g, dev, skip_mib, count_mib):
    out, _ = sh(g, f"dd if={dev} bs=1M skip={skip_mib} count={count_mib} 2>/dev/null | md5sum")
    return md5_in(out, "-")


def drop_caches(g):
    sh(g, "sync; echo 3 > /proc/sys/vm/drop_caches")


def guest_random(g, mib):
    """`mib` MiB of random bytes in the guest's /tmp/w; their md5."""
    sh(g, f"dd if=/dev/urandom of=/tmp/w bs=1M count={mib} 2>/dev/null")
    out, _ = sh(g, "md5sum /tmp/w")
    return md5_in(out, "/tmp/w")


def check_disk(g, img, seek_mib, mib, want):
    """/dev/vda (read past the guest's cache) and img hold `want` at seek_mib."""
    drop_caches(g)
    assert guest_md5(g, "/dev/vda", seek_mib, mib) == want, g.describe()
    assert md5(read_at(img, seek_mib * MiB, mib * MiB)) == want


def write_through(g, img, seek_mib, mib, want):
    """Writes /tmp/w (`mib` MiB) to /dev/vda at seek_mib, with a flush, and checks it."""
    sh(g, f"dd if=/tmp/w of=/dev/vda bs=1M seek={seek_mib} conv=fsync 2>/dev/null")
    check_disk(g, img, seek_mib, mib, want)


# --------------------------------------------------------------------------- guest I/O

@pytest.mark.vm
def test_guest_io_over_unix_and_tcp(boot, tmp_path, nbd):
    host_data = os.urandom(MiB)
    a = make_image(tmp_path / "a.img", 1 * MiB, host_data)
    b = make_image(tmp_path / "b.img")
    unix = nbd(a, name="a")
    tcp = nbd(b, name="b", port=free_port())

    g = shell(boot, [unix.uri, tcp.uri], "pci")
    out, _ = sh(g, "cat /sys/block/vda/size /sys/block/vdb/size")
    assert out.split() == [str(SIZE // 512)] * 2, g.describe()
    # What the host wrote reads back in the guest.
    assert guest_md5(g, "/dev/vda", 1, 1) == md5(host_data), g.describe()

    # Raw writes (and a flush: conv=fsync) land in the file at their offsets.
    write_through(g, a, 8, 4, guest_random(g, 4))

    # Discard: reads back as zeroes, and qemu-nbd punches the file's hole.
    sh(g, "dd if=/dev/urandom of=/dev/vda bs=1M seek=32 count=8 conv=fsync 2>/dev/null")
    sh(g, "blkdiscard -o 33554432 -l 8388608 /dev/vda && sync")
    drop_caches(g)
    assert guest_md5(g, "/dev/vda", 32, 8) == md5(bytes(8 * MiB)), g.describe()
    assert read_at(a, 32 * MiB, 8 * MiB) == bytes(8 * MiB)
    assert os.stat(a).st_blocks * 512 < 16 * MiB, "the discarded range is still allocated"

    # A file system over TCP, checked on the host by e2fsprogs.
    sh(g, "mke2fs -F /dev/vdb >/dev/null")
    sh(g, "mount /dev/vdb /mnt && dd if=/dev/urandom of=/mnt/f bs=1M count=3 2>/dev/null && umount /mnt")
    out, _ = sh(g, "mount /dev/vdb /mnt && md5sum /mnt/f && umount /mnt")
    in_guest = md5_in(out, "/mnt/f")
    poweroff(g)
    e2fsck_clean(b)
    assert md5(debugfs_cat(b, "/f")) == in_guest
    assert read_at(a, 1 * MiB, MiB) == host_data


@pytest.mark.vm
def test_server_restart_under_a_running_guest(boot, tmp_path, nbd):
    img = make_image(tmp_path / "a.img")
    server = nbd(img)
    g = shell(boot, [server.uri], "pci")
    written = guest_random(g, 2)

    # The server dies and comes back while the guest is idle: the next I/O
    # finds a dead connection and makes a new one.
    server.kill()
    server.start()
    write_through(g, img, 4, 2, written)

    # I/O issued while the server is away waits for it.
    server.kill()
    g.send("(dd if=/tmp/w of=/dev/vda bs=1M seek=16 conv=fsync 2>/dev/null; echo DD-EXIT=$?) &")
    time.sleep(3)
    assert "DD-EXIT" not in g.output, "the write finished with the server down\n" + g.describe()
    server.start()
    g.wait_for(re.compile(r"DD-EXIT=(\d+)"), IO_TIMEOUT)
    assert "DD-EXIT=0" in g.output, g.describe()
    check_disk(g, img, 16, 2, written)
    assert "reconnected to the NBD server" in g.stderr, g.describe()
    poweroff(g)


@pytest.mark.vm
def test_live_migration_shares_the_export(spawn, tmp_path, kernel, initrd, kvm_available, nbd):
    """What NBD disks are for: the source and the destination open the same
    export, and the guest's file system goes on writing across the move."""
    img = tmp_path / "data.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(img), "32M"], check=True)
    server = nbd(img, port=free_port())
    g, sock = source(spawn, tmp_path, kernel, initrd, extra=["--disk", server.uri])
    sh(g, "mount /dev/vda /mnt")
    g.send(COUNTER.format(file="/mnt/count"))
    g.wait_for("CNT=5", 30)
    d = move(spawn, g, sock)
    check_continues(d, last_count(g.output))
    out, _ = sh(d, "kill %1; sleep 0.5; tail -n 1 /mnt/count; umount /mnt && echo UMOUNTED")
    assert "UMOUNTED" in out, d.describe()
    last = int(out.split()[0])
    poweroff(d)
    e2fsck_clean(img)
    values = [int(v) for v in debugfs_cat(img, "/count").split()]
    assert values == list(range(1, last + 1)), f"count file has gaps or repeats: {values[-10:]}"


@pytest.mark.vm
def test_small_server_limits_and_io_errors(boot, tmp_path, nbd):
    """nbdkit taking at most 64 KiB per command (bigger ones fail), without
    NBD zero, failing reads with EIO while a trigger file exists: the guest's
    big requests are split, and the server's EIO reaches the guest as an I/O
    error, not as a reconnection."""
    img = make_image(tmp_path / "a.img")
    trigger = tmp_path / "fail-reads"
    server = nbd(img, kit=(["blocksize-policy", "nozero", "error"],
                           ["blocksize-maximum=65536", "blocksize-error-policy=error", "zeromode=none",
                            "error-pread=EIO", "error-pread-rate=100%", f"error-file={trigger}"]))
    info = disk("info", server.uri).stdout
    assert "maximum 65536" in info and "zero no" in info, info
    g = shell(boot, [server.uri], "pci")
    written = guest_random(g, 4)
    write_through(g, img, 2, 4, written)

    trigger.touch()
    drop_caches(g)
    out, status = sh(g, "dd if=/dev/vda of=/dev/null bs=1M skip=2 count=4", ok=False)
    assert status != 0 and "I/O error" in out, g.describe()
    trigger.unlink()
    check_disk(g, img, 2, 4, written)
    assert "reconnect" not in g.stderr, g.describe()
    poweroff(g)


# --------------------------------------------------------------------------- bad input

@pytest.mark.vm
@pytest.mark.parametrize("uri", ["nbd+unix:///x?socket=/nonexistent/nbd.sock", "nbd://127.0.0.1:{port}/x",
                                 "nbd://[bad"])
def test_unreachable_or_bad_uri_exits_2(kernel, tmp_path, uri):
    uri = uri.format(port=free_port())
    res = subprocess.run(vm_args(kernel, extra=["--disk", uri]), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0], res.stderr


# --------------------------------------------------------------------------- cellvm disk

def disk(*args, ok=True):
    res = subprocess.run([str(require_bin()), "disk", *map(str, args)], capture_output=True, text=True,
                         timeout=120)
    if ok:
        assert res.returncode == 0, f"cellvm disk {args} -> {res.returncode}\n{res.stdout}{res.stderr}"
    return res


def test_disk_info(tmp_path, nbd):
    rw = nbd(make_image(tmp_path / "a.img"), name="a")
    ro = nbd(make_image(tmp_path / "b.img"), name="b", readonly=True)
    out = disk("info", rw.uri).stdout
    assert f"image: {rw.uri}\n" in out and f"({SIZE} bytes)" in out and "read-only: no" in out, out
    assert re.search(r"block size: minimum \d+, preferred \d+, maximum [1-9]\d*", out), out
    info = json.loads(disk("info", "--json", ro.uri).stdout)
    assert info["filename"] == ro.uri and info["format"] == "raw" and info["virtual-size"] == SIZE, info
    assert info["nbd"]["read-only"] is True and info["nbd"]["block-size"]["maximum"] > 0, info


def test_disk_convert_from_and_to_an_export(tmp_path, nbd):
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img not found (apt-get install qemu-utils)")
    data = os.urandom(3 * MiB)
    src = make_image(tmp_path / "src.img", 5 * MiB, data)
    server = nbd(src, name="src")
    out = tmp_path / "out.qcow2"
    disk("convert", server.uri, out)
    res = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", src, out], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr

    # Into an export that holds other bytes: they are zeroed (by NBD zero, or
    # by writes where nbdkit has no zero), the data copied.
    for name, kit in (("dst", None), ("kit", (["nozero"], ["zeromode=none"]))):
        dst = tmp_path / f"{name}.img"
        dst.write_bytes(os.urandom(SIZE))
        target = nbd(dst, name=name, kit=kit)
        disk("convert", out, target.uri)
        assert dst.read_bytes() == src.read_bytes(), name

    res = disk("convert", out, target.uri, "--format", "qcow2", ok=False)
    assert res.returncode == 2 and target.uri in res.stderr, res.stderr
    ro = nbd(make_image(tmp_path / "ro.img"), name="ro", readonly=True)
    res = disk("convert", out, ro.uri, ok=False)
    assert res.returncode == 2 and "read-only" in res.stderr, res.stderr
    for args in (["create", ro.uri, "1M"], ["resize", ro.uri, "+1M"], ["snapshot", "create", ro.uri, "s1"]):
        res = disk(*args, ok=False)
        assert res.returncode == 2 and "NBD export" in res.stderr, (args, res.stderr)
