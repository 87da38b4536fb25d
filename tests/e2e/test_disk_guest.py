"""Disk formats with a real guest: a guest writes qcow2 images made by
qemu-img (qemu-img then finds them consistent and identical to the
expected raw content), reads the right bytes through a chain of overlays,
writes after `cellvm disk snapshot` are dropped by revert and kept by
commit, and discard keeps thin images thin.
"""

import base64
import hashlib
import json
import re
import shutil
import subprocess

import pytest

from conftest import require_bin, run_command

pytestmark = pytest.mark.vm

MiB = 1 << 20
IO_TIMEOUT = 300.0


def need_qemu():
    for t in ("qemu-img", "qemu-io"):
        if not shutil.which(t):
            pytest.skip(f"{t} not found (apt-get install qemu-utils)")


def disk(*args):
    res = subprocess.run([str(require_bin()), "disk", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, f"cellvm disk {args} -> {res.returncode}\n{res.stdout}{res.stderr}"
    return res.stdout


def qimg(*args):
    res = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True)
    return res


def qemu_clean(img):
    res = qimg("check", img)
    assert res.returncode == 0, f"qemu-img check {img}: {res.returncode}\n{res.stdout}{res.stderr}"


def qio(img, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    res = subprocess.run(args + [str(img)], capture_output=True, text=True)
    assert res.returncode == 0 and "fail" not in res.stdout.lower() and "error" not in res.stdout.lower(), \
        f"qemu-io {cmds}: {res.stdout}{res.stderr}"


def pattern(word, n):
    """What `yes WORD | head -c N` writes."""
    unit = (word + "\n").encode()
    return (unit * (n // len(unit) + 1))[:n]


def write_cmd(word, off, n, bs=512, dev="vda"):
    """A guest command writing pattern(word, n) at byte `off` of /dev/DEV, synced."""
    assert off % bs == 0 and n % bs == 0
    return f"yes {word} | head -c {n} | dd of=/dev/{dev} bs={bs} seek={off // bs} conv=fsync 2>/dev/null"


def guest(boot, disks, *cmds):
    """Boot with `disks`, run the commands (all must succeed), power off;
    returns their output. (Commands run from the kernel command line: an
    interactive shell makes pipes very slow on some hosts.)"""
    extra = []
    for d in disks:
        extra += ["--disk", str(d)]
    script = "set -e\n" + "\n".join(cmds) + "\n"
    # The kernel passes init at most 32 words: the script travels encoded.
    cmd = f"echo {base64.b64encode(script.encode()).decode()} | base64 -d | sh"
    g, out, status, rc = run_command(boot, cmd, timeout=IO_TIMEOUT, extra=extra)
    assert status == 0 and rc == 0, f"guest: {script} -> {status}/{rc}\n{g.describe()}"
    return out


def read_raw(img, tmp_path, name="out.raw"):
    out = tmp_path / name
    if out.exists():
        out.unlink()
    disk("convert", img, out, "--format", "raw")
    return out.read_bytes()


@pytest.fixture(autouse=True)
def tools():
    need_qemu()


def test_guest_writes_qemu_made_qcow2(boot, tmp_path):
    img = tmp_path / "g.qcow2"
    assert qimg("create", "-f", "qcow2", img, "64M").returncode == 0
    want = bytearray(64 * MiB)
    writes = [  # word, offset, length, block size
        ("alpha", 1 * MiB, 1 * MiB, 4096),        # two whole clusters... and more
        ("bravo", 3 * MiB + 512, 4096, 512),      # inside one cluster: copy-on-write
        ("charlie", 1 * MiB + 1024, 8192, 512),   # over alpha: in place
        ("delta", 16 * MiB, 8 * MiB, 1 << 20),    # sequential, multi-cluster
        ("echo", 64 * MiB - 4096, 4096, 4096),    # the last cluster
    ]
    for word, off, n, bs in writes:
        want[off:off + n] = pattern(word, n)
    # The guest reads back what it wrote (from the device, not its cache).
    out = guest(boot, [img], *(write_cmd(*w) for w in writes),
                "echo 3 > /proc/sys/vm/drop_caches", "md5sum /dev/vda")
    assert hashlib.md5(want).hexdigest() in out, out
    qemu_clean(img)
    ref = tmp_path / "want.raw"
    ref.write_bytes(bytes(want))
    res = qimg("compare", "-f", "qcow2", "-F", "raw", img, ref)
    assert res.returncode == 0, res.stdout + res.stderr


def test_chain_of_overlays(boot, tmp_path):
    base, o1, o2, top = (tmp_path / n for n in ("base.qcow2", "o1.qcow2", "o2.qcow2", "top.qcow2"))
    assert qimg("create", "-f", "qcow2", base, "16M").returncode == 0
    qio(base, "write -P 0xa1 0 4M")
    assert qimg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", o1).returncode == 0
    qio(o1, "write -P 0xb2 2M 4M")
    disk("create", o2, "--backing", "o1.qcow2")
    qio(o2, "write -P 0xc3 5M 2M", "write -z 1M 64k")
    disk("create", top, "--backing", "o2.qcow2")
    layers = {base: bytearray(16 * MiB)}
    layers[base][0:4 * MiB] = b"\xa1" * (4 * MiB)
    layers[o1] = bytearray(layers[base])
    layers[o1][2 * MiB:6 * MiB] = b"\xb2" * (4 * MiB)
    layers[o2] = bytearray(layers[o1])
    layers[o2][5 * MiB:7 * MiB] = b"\xc3" * (2 * MiB)
    layers[o2][1 * MiB:1 * MiB + 65536] = bytes(65536)
    # cellvm reads every layer as its chain says.
    for layer, want in layers.items():
        assert read_raw(layer, tmp_path) == want, layer
    out = guest(boot, [top], "md5sum /dev/vda", write_cmd("top", 6 * MiB + 512, 8192),
                write_cmd("top2", 1 * MiB, 4096))
    assert hashlib.md5(layers[o2]).hexdigest() in out, out
    want = bytearray(layers[o2])
    want[6 * MiB + 512:6 * MiB + 512 + 8192] = pattern("top", 8192)
    want[1 * MiB:1 * MiB + 4096] = pattern("top2", 4096)
    assert read_raw(top, tmp_path) == want
    for layer in (base, o1, o2):  # the lower layers did not change
        assert read_raw(layer, tmp_path) == layers[layer], layer
    for layer in (base, o1, o2, top):
        qemu_clean(layer)
    ref = tmp_path / "want.raw"
    ref.write_bytes(bytes(want))
    assert qimg("compare", "-F", "raw", top, ref).returncode == 0


def test_snapshot_revert_and_commit(boot, tmp_path):
    img = tmp_path / "vm.qcow2"
    disk("create", img, "32M")
    qio(img, "write -P 0x11 1M 64k")
    disk("snapshot", "create", img, "clean")
    guest(boot, [img], write_cmd("after-snapshot", 2 * MiB, 65536, 4096), write_cmd("over", 1 * MiB, 4096, 4096))
    qio(img, f"read -P 0x11 {MiB + 4096} 61440")
    assert read_raw(img, tmp_path)[2 * MiB:2 * MiB + 65536] == pattern("after-snapshot", 65536)
    disk("snapshot", "revert", img)
    data = read_raw(img, tmp_path)
    assert data[2 * MiB:2 * MiB + 65536] == bytes(65536)  # gone
    assert data[1 * MiB:1 * MiB + 65536] == b"\x11" * 65536
    guest(boot, [img], write_cmd("committed", 3 * MiB + 4096, 8192))
    disk("snapshot", "commit", img)
    assert not (tmp_path / "vm.qcow2.clean").exists()
    info = json.loads(disk("info", "--json", img))
    assert "backing-filename" not in info
    data = read_raw(img, tmp_path)
    assert data[3 * MiB + 4096:3 * MiB + 4096 + 8192] == pattern("committed", 8192)
    assert data[1 * MiB:1 * MiB + 65536] == b"\x11" * 65536
    qemu_clean(img)


def allocated(path):
    return path.stat().st_blocks * 512


def test_discard_keeps_thin_images_thin(boot, tmp_path):
    raw, qc = tmp_path / "thin.img", tmp_path / "thin.qcow2"
    disk("create", raw, "64M", "--format", "raw")
    disk("create", qc, "64M")
    fill = [write_cmd("fill", 0, 32 * MiB, 1 << 20, dev) for dev in ("vda", "vdb")]
    out = guest(boot, [raw, qc], *fill, "md5sum /dev/vdb", "blkdiscard /dev/vda", "blkdiscard /dev/vdb",
                "echo 3 > /proc/sys/vm/drop_caches", "md5sum /dev/vdb")
    before = bytearray(64 * MiB)
    before[:32 * MiB] = pattern("fill", 32 * MiB)
    assert hashlib.md5(before).hexdigest() in out, out  # it was all written...
    assert hashlib.md5(bytes(64 * MiB)).hexdigest() in out, out  # ...and discarded reads as zeroes
    assert allocated(raw) < 2 * MiB, allocated(raw)
    assert allocated(qc) < 2 * MiB, allocated(qc)
    qemu_clean(qc)
    info = json.loads(disk("info", "--json", qc))
    assert info["actual-size"] < 2 * MiB
    assert re.search(r"0/1024 clusters allocated", disk("check", qc))
