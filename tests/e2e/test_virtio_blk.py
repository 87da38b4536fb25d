"""virtio-blk end to end: data round trips through ext4 and raw images, booting
from an ext4 root disk, read-only disks, discard, and several disks at once.

Every test boots a real guest (busybox initramfs from conftest, or no initramfs
for the root-disk test) with images made in tmp_path, and checks the result on
the host with e2fsprogs (debugfs, e2fsck) and plain file reads.
"""

import hashlib
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, vm_args

pytestmark = pytest.mark.vm

TRANSPORTS = ["pci", "mmio"]
IO_TIMEOUT = 300.0  # the machine may be loaded: be generous, never assert on time
MiB = 1 << 20


# --------------------------------------------------------------------------- helpers

def need_tools(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} not found (apt-get install e2fsprogs cpio)")


def mkext4(img, src_dir, size="64M"):
    need_tools("mke2fs")
    res = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(src_dir), str(img), size],
                         capture_output=True, text=True)
    assert res.returncode == 0, f"mke2fs failed: {res.stderr}"
    return img


def debugfs_cat(img, path) -> bytes:
    need_tools("debugfs")
    res = subprocess.run(["debugfs", "-R", f"cat {path}", str(img)], capture_output=True)
    assert res.returncode == 0, f"debugfs cat {path} failed: {res.stderr!r}"
    # debugfs reports a missing file on stderr and still exits 0.
    assert b"File not found" not in res.stderr, f"{path} not in {img}: {res.stderr!r}"
    return res.stdout


def e2fsck_clean(img):
    need_tools("e2fsck")
    res = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert res.returncode == 0, (f"e2fsck -fn {img} -> {res.returncode}\n"
                                 f"{res.stdout}\n{res.stderr}")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def shell(boot, disks, transport, cmdline=DEFAULT_CMDLINE, memory="256M"):
    """Boot to the initramfs shell with the given --disk values."""
    extra = ["--transport", transport]
    for d in disks:
        extra += ["--disk", str(d)]
    g = boot(cmdline=cmdline, memory=memory, extra=extra)
    g.wait_ready()
    return g


def sh(g, cmd, timeout=IO_TIMEOUT, ok=True):
    """Run cmd in the guest shell; with ok=True assert it exits 0. Returns (out, status)."""
    out, status = g.run(cmd, timeout)
    if ok:
        assert status == 0, f"guest command failed ({status}): {cmd}\n{out}\n{g.describe()}"
    return out, status


def poweroff(g):
    g.send("poweroff")
    rc = g.wait_exit(120)
    assert rc == 0, g.describe()


def md5_in(out, path):
    m = re.search(rf"^([0-9a-f]{{32}})\s+{re.escape(path)}\s*$", out, re.M)
    assert m, f"no md5sum line for {path} in:\n{out}"
    return m.group(1)


def fd_flags(pid, target):
    """The open flags of the first descriptor of process `pid` that points at
    `target` (via /proc/PID/fdinfo), or None."""
    target = os.path.realpath(target)
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") == target:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    m = re.search(r"^flags:\s*([0-7]+)", f.read(), re.M)
                return int(m.group(1), 8)
        except OSError:
            continue
    return None


# --------------------------------------------------------------------------- 1. ext4 round trip

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ext4_data_round_trip(boot, tmp_path, transport):
    src = tmp_path / "src"
    src.mkdir()
    token = uuid.uuid4().hex
    hello = f"hello from the host {token}\n"
    (src / "hello.txt").write_text(hello)
    host_bin = os.urandom(MiB + 123)
    (src / "host.bin").write_bytes(host_bin)
    img = mkext4(tmp_path / "disk.img", src)

    g = shell(boot, [img], transport)
    sh(g, "mount -t ext4 /dev/vda /mnt")
    out, _ = sh(g, "cat /mnt/hello.txt")
    assert out.strip() == hello.strip(), g.describe()
    out, _ = sh(g, "md5sum /mnt/host.bin")
    assert md5_in(out, "/mnt/host.bin") == md5(host_bin), g.describe()

    small = f"small file from the guest {token}"
    sh(g, f"echo '{small}' > /mnt/small.txt")
    sh(g, "dd if=/dev/urandom of=/mnt/big.bin bs=1M count=8 2>/dev/null")
    out, _ = sh(g, "md5sum /mnt/big.bin; ls -l /mnt/big.bin")
    guest_md5 = md5_in(out, "/mnt/big.bin")
    assert re.search(r"\s8388608\s", out), g.describe()
    sh(g, "sync && umount /mnt")
    # Read it back through the device, not the page cache.
    sh(g, "echo 3 > /proc/sys/vm/drop_caches; mount -t ext4 -o ro /dev/vda /mnt")
    out, _ = sh(g, "md5sum /mnt/big.bin; cat /mnt/small.txt")
    assert md5_in(out, "/mnt/big.bin") == guest_md5, g.describe()
    assert small in out, g.describe()
    sh(g, "umount /mnt")
    poweroff(g)

    big = debugfs_cat(img, "/big.bin")
    assert len(big) == 8 * MiB
    assert md5(big) == guest_md5, "big.bin on the host differs from what the guest wrote"
    assert debugfs_cat(img, "/small.txt").decode() == small + "\n"
    assert debugfs_cat(img, "/hello.txt").decode() == hello
    e2fsck_clean(img)


# --------------------------------------------------------------------------- 2. root disk

ROOT_INIT = """#!/bin/sh
# /sbin/init of the cellvm ext4 root-disk test
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys 2>/dev/null
echo "ROOTFS-OK root=$(awk '$2 == "/" { print $1 "," $3 "," $4 }' /proc/mounts)"
echo "ROOT-INITRD=$(ls /init 2>/dev/null)"
echo "written by the guest's /sbin/init" > /rootfs-was-here
sync
mount -o remount,ro /
echo ROOTFS-DONE
poweroff -f
"""


def build_root_image(initrd, tmp_path):
    """An ext4 image holding the test initramfs's busybox tree, with /sbin/init
    replaced by ROOT_INIT and without the initramfs's /init."""
    need_tools("cpio", "mke2fs")
    tree = tmp_path / "rootfs"
    tree.mkdir()
    with open(initrd, "rb") as f:
        res = subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"],
                             stdin=f, cwd=tree, capture_output=True, text=True)
    assert res.returncode == 0, f"cpio -id failed: {res.stderr}"
    assert (tree / "bin" / "busybox").is_file()
    (tree / "init").unlink()
    init = tree / "sbin" / "init"
    if init.exists() or init.is_symlink():
        init.unlink()
    init.write_text(ROOT_INIT)
    init.chmod(0o755)
    for d in ("proc", "sys", "dev", "tmp", "mnt"):
        (tree / d).mkdir(exist_ok=True)
    return mkext4(tmp_path / "root.img", tree, "64M")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_boot_from_ext4_root_disk(spawn, kernel, initrd, kvm_available, tmp_path, transport):
    img = build_root_image(initrd, tmp_path)
    cmdline = f"{DEFAULT_CMDLINE} root=/dev/vda rw rootfstype=ext4 init=/sbin/init"
    g = spawn(vm_args(kernel, None, cmdline,
                      extra=["--transport", transport, "--disk", str(img)]))
    m = g.wait_for(re.compile(r"ROOTFS-OK root=(\S*)\r?\n"), BOOT_TIMEOUT)
    dev, fstype, opts = (m.group(1).split(",", 2) + ["", ""])[:3]
    assert dev == "/dev/root" or dev == "/dev/vda", g.describe()
    assert fstype == "ext4", g.describe()
    assert "rw" in opts.split(","), g.describe()
    m = g.wait_for(re.compile(r"ROOT-INITRD=(\S*)\r?\n"), IO_TIMEOUT)
    assert m.group(1) == "", "an initramfs seems to be running, not the disk\n" + g.describe()
    g.wait_for("ROOTFS-DONE", IO_TIMEOUT)
    assert g.wait_exit(120) == 0, g.describe()
    assert debugfs_cat(img, "/rootfs-was-here") == b"written by the guest's /sbin/init\n"
    e2fsck_clean(img)


# --------------------------------------------------------------------------- 3. read-only

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_readonly_disk(boot, tmp_path, transport):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.txt").write_text("read-only content\n")
    img = mkext4(tmp_path / "ro.img", src)
    before = sha256_file(img)

    g = shell(boot, [f"{img},ro"], transport)
    flags = fd_flags(g.proc.pid, img)
    assert flags is not None, f"cellvm (pid {g.proc.pid}) has no descriptor open on {img}"
    assert flags & os.O_ACCMODE == os.O_RDONLY, \
        f"cellvm opened the ro disk {img} with flags {flags:#o} (not O_RDONLY)"

    out, _ = sh(g, "cat /sys/block/vda/ro")
    assert out.strip() == "1", g.describe()
    # Raw writes are refused (by the guest kernel for a VIRTIO_BLK_F_RO disk).
    out, status = sh(g, "dd if=/dev/zero of=/dev/vda bs=4k count=1 oflag=direct conv=fsync",
                     ok=False)
    assert status != 0, "a write to the read-only disk succeeded\n" + g.describe()
    out, status = sh(g, "dd if=/dev/zero of=/dev/vda bs=4k seek=100 count=1", ok=False)
    assert status != 0, "a buffered write to the read-only disk succeeded\n" + g.describe()
    # Discard must be refused too.
    out, status = sh(g, "blkdiscard /dev/vda", ok=False)
    assert status != 0, "a discard on the read-only disk succeeded\n" + g.describe()
    # A mount is read-only; the content is there; writes fail.
    sh(g, "mount -t ext4 /dev/vda /mnt 2>&1")
    out, _ = sh(g, "grep ' /mnt ' /proc/mounts")
    assert "ro" in out.split()[3].split(","), g.describe()
    out, _ = sh(g, "cat /mnt/hello.txt")
    assert out.strip() == "read-only content", g.describe()
    out, status = sh(g, "echo x > /mnt/new.txt", ok=False)
    assert status != 0, g.describe()
    sh(g, "umount /mnt")
    poweroff(g)

    assert sha256_file(img) == before, "the read-only image was modified"
    e2fsck_clean(img)


# --------------------------------------------------------------------------- 4. discard

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_discard_punches_holes(boot, tmp_path, transport):
    size = 64 * MiB
    img = tmp_path / "sparse.img"
    keep_off, keep_len = 48 * MiB, 4 * MiB  # outside the discarded range
    keep = os.urandom(keep_len)
    with open(img, "wb") as f:
        f.truncate(size)
        f.seek(keep_off)
        f.write(keep)
    blocks0 = os.stat(img).st_blocks

    g = shell(boot, [img], transport)
    out, _ = sh(g, "cat /sys/block/vda/queue/discard_max_bytes")
    assert int(out.strip()) > 0, "the disk does not advertise discard\n" + g.describe()
    sh(g, "dd if=/dev/urandom of=/dev/vda bs=1M count=32 conv=fsync 2>/dev/null")
    out, _ = sh(g, "dd if=/dev/vda bs=1M skip=48 count=4 2>/dev/null | md5sum")
    assert out.split()[0] == md5(keep), g.describe()
    poweroff(g)

    blocks1 = os.stat(img).st_blocks
    written = (blocks1 - blocks0) * 512
    assert written >= 30 * MiB, (f"after writing 32 MiB the image grew by only "
                                 f"{written} bytes (st_blocks {blocks0} -> {blocks1})")
    with open(img, "rb") as f:
        first = f.read(32 * MiB)
    assert first.count(0) < len(first) // 100, "the guest's random data is not in the image"

    g = shell(boot, [img], transport)
    sh(g, "blkdiscard -o 0 -l 33554432 /dev/vda && sync")
    out, _ = sh(g, "echo 3 > /proc/sys/vm/drop_caches;"
                   " dd if=/dev/vda bs=1M skip=48 count=4 iflag=direct 2>/dev/null | md5sum")
    assert out.split()[0] == md5(keep), "data outside the discarded range changed\n" + g.describe()
    poweroff(g)

    blocks2 = os.stat(img).st_blocks
    freed = (blocks1 - blocks2) * 512
    assert freed >= written // 2, (f"discard of 32 MiB freed only {freed} bytes on the host "
                                   f"(st_blocks {blocks0} -> {blocks1} -> {blocks2})")
    with open(img, "rb") as f:
        f.seek(keep_off)
        assert f.read(keep_len) == keep, "data outside the discarded range changed on the host"
    assert os.path.getsize(img) == size


# --------------------------------------------------------------------------- 5. two disks

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_disks_with_ids(boot, tmp_path, transport):
    imgs, heads = [], []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.img"
        head = os.urandom(64 * 1024)
        with open(p, "wb") as f:
            f.write(head)
            f.truncate((16 if name == "a" else 24) * MiB)
        imgs.append(p)
        heads.append(head)
    ids = ["alpha-" + uuid.uuid4().hex[:6], "beta-" + uuid.uuid4().hex[:6]]

    g = shell(boot, [f"{imgs[0]},id={ids[0]}", f"{imgs[1]},id={ids[1]}"], transport)
    for dev, ident, img, head in zip(("vda", "vdb"), ids, imgs, heads):
        out, _ = sh(g, f"cat /sys/block/{dev}/serial; echo; cat /sys/block/{dev}/size")
        lines = out.split()
        assert lines[0] == ident, f"/sys/block/{dev}/serial\n{g.describe()}"
        assert int(lines[1]) * 512 == os.path.getsize(img), g.describe()
        out, _ = sh(g, f"dd if=/dev/{dev} bs=64k count=1 2>/dev/null | md5sum")
        assert out.split()[0] == md5(head), f"/dev/{dev} does not hold {img.name}\n{g.describe()}"
    # Writes land in the right image.
    for dev in ("vda", "vdb"):
        sh(g, f"echo WRITTEN-TO-{dev} | dd of=/dev/{dev} bs=512 seek=2048 conv=sync,fsync"
              f" 2>/dev/null")
    # Both disks written at the same time (direct I/O, requests in flight on both).
    sh(g, "dd if=/dev/urandom of=/tmp/a bs=1M count=4 2>/dev/null &&"
          " dd if=/dev/urandom of=/tmp/b bs=1M count=4 2>/dev/null")
    out, _ = sh(g, "dd if=/tmp/a of=/dev/vda bs=256k seek=8 oflag=direct 2>/dev/null & A=$!;"
                   " dd if=/tmp/b of=/dev/vdb bs=256k seek=8 oflag=direct 2>/dev/null & B=$!;"
                   " wait $A && wait $B && md5sum /tmp/a /tmp/b")
    parallel = {"vda": md5_in(out, "/tmp/a"), "vdb": md5_in(out, "/tmp/b")}
    poweroff(g)

    for dev, img in zip(("vda", "vdb"), imgs):
        with open(img, "rb") as f:
            f.seek(MiB)
            got = f.read(512)
        assert got.startswith(f"WRITTEN-TO-{dev}\n".encode()), (img.name, got[:32])
        assert got[len(f"WRITTEN-TO-{dev}\n"):] == bytes(512 - len(f"WRITTEN-TO-{dev}\n"))
        with open(img, "rb") as f:
            f.seek(2 * MiB)
            assert md5(f.read(4 * MiB)) == parallel[dev], f"parallel write to {dev} not in {img}"


# --------------------------------------------------------------------------- 6. odd size

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_image_size_not_a_multiple_of_512(boot, tmp_path, transport):
    """A raw image of 1 MiB + 100 bytes is a 2048-sector disk; the last partial
    sector of the file is never read into the disk nor written."""
    img = tmp_path / "odd.img"
    data = os.urandom(MiB + 100)
    img.write_bytes(data)
    g = shell(boot, [img], transport)
    out, _ = sh(g, "cat /sys/block/vda/size")
    assert out.strip() == "2048", g.describe()
    out, _ = sh(g, "dd if=/dev/vda bs=4k 2>/dev/null | md5sum")
    assert out.split()[0] == md5(data[:MiB]), g.describe()
    sh(g, "dd if=/dev/zero of=/dev/vda bs=512 seek=2047 count=1 conv=fsync 2>/dev/null")
    # Past the end: nothing is written, and the kernel reports it.
    out, status = sh(g, "dd if=/dev/zero of=/dev/vda bs=512 seek=2048 count=1 conv=fsync",
                     ok=False)
    assert status != 0 or "0+0 records out" in out, g.describe()
    poweroff(g)
    after = img.read_bytes()
    assert len(after) == MiB + 100
    assert after[:MiB - 512] == data[:MiB - 512]
    assert after[MiB - 512:MiB] == bytes(512)
    assert after[MiB:] == data[MiB:], "the partial sector past the disk's end was modified"


# --------------------------------------------------------------------------- 7. device reset

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_disk_survives_driver_rebind_and_guest_reboot(boot, tmp_path, transport):
    """The device is reset and set up again when the guest driver is unbound and
    bound, and when the guest reboots (--reboot restart); data written before each
    reset is read back after it, from the device."""
    img = tmp_path / "reset.img"
    with open(img, "wb") as f:
        f.truncate(16 * MiB)
    a, b = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
    extra_boot = ["--reboot", "restart"]
    g = boot(extra=["--transport", transport, "--disk", str(img)] + extra_boot)
    g.wait_ready()
    sh(g, f"echo FIRST-{a} | dd of=/dev/vda conv=sync,fsync 2>/dev/null")
    sh(g, "D=$(basename $(readlink /sys/block/vda/device)) &&"
          " echo $D > /sys/bus/virtio/drivers/virtio_blk/unbind && ! test -e /sys/block/vda &&"
          " echo $D > /sys/bus/virtio/drivers/virtio_blk/bind")
    out, _ = sh(g, "for i in 1 2 3 4 5 6 7 8 9 10; do test -b /dev/vda && break; sleep 1; done;"
                   " dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -n 1")
    assert out.strip() == f"FIRST-{a}", "after unbind/bind\n" + g.describe()
    sh(g, f"echo SECOND-{b} | dd of=/dev/vda bs=512 seek=1 conv=sync,fsync 2>/dev/null")
    g.send("reboot")
    g.wait_ready()
    out, _ = sh(g, "dd if=/dev/vda bs=512 count=2 2>/dev/null | tr -d '\\000'")
    assert out.split() == [f"FIRST-{a}", f"SECOND-{b}"], "after a reboot\n" + g.describe()
    out, _ = sh(g, "head -c 32 /dev/hwrng | od -An -tx1")
    assert len(re.findall(r"\b[0-9a-f]{2}\b", out)) == 32, "hwrng after a reboot\n" + g.describe()
    poweroff(g)
    with open(img, "rb") as f:
        head = f.read(1024)
    assert head[:512].rstrip(b"\0") == f"FIRST-{a}\n".encode()
    assert head[512:].rstrip(b"\0") == f"SECOND-{b}\n".encode()
