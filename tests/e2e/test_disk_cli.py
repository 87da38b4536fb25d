"""`cellvm disk` without a guest: create, info, check, convert, resize and
snapshots, with Debian's qemu-img/qemu-io as the outside judge (images made
by one are read and written by the other), and bad input refused with one
line and exit status 2.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import require_bin

MiB = 1 << 20


def need_qemu():
    for t in ("qemu-img", "qemu-io"):
        if not shutil.which(t):
            pytest.skip(f"{t} not found (apt-get install qemu-utils)")


def disk(*args, ok=True, cwd=None):
    res = subprocess.run([str(require_bin()), "disk", *map(str, args)], capture_output=True,
                         text=True, cwd=cwd)
    if ok:
        assert res.returncode == 0, f"cellvm disk {args} -> {res.returncode}\n{res.stdout}{res.stderr}"
    return res


def qimg(*args, ok=True):
    res = subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert res.returncode == 0, f"qemu-img {args} -> {res.returncode}\n{res.stdout}{res.stderr}"
    return res


def qio(img, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    res = subprocess.run(args + [str(img)], capture_output=True, text=True)
    assert res.returncode == 0 and "error" not in res.stdout.lower(), res.stdout + res.stderr


def qemu_check_clean(img):
    res = qimg("check", img, ok=False)
    assert res.returncode == 0, f"qemu-img check {img}: {res.returncode}\n{res.stdout}{res.stderr}"


def to_raw(img, tmp_path, name):
    out = tmp_path / name
    qimg("convert", "-O", "raw", img, out)
    return out.read_bytes()


def bad_input(res, *words):
    """Exit 2 with one line on stderr mentioning `words`."""
    assert res.returncode == 2, f"exit {res.returncode}\n{res.stdout}{res.stderr}"
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(autouse=True)
def tools():
    need_qemu()


# --------------------------------------------------------------------------- create / info

def test_create_qcow2_is_valid_for_qemu(tmp_path):
    img = tmp_path / "a.qcow2"
    disk("create", img, "1G")
    info = json.loads(qimg("info", "--output=json", img).stdout)
    assert info["format"] == "qcow2" and info["virtual-size"] == 1 << 30
    qemu_check_clean(img)
    # qemu writes it, cellvm reads it.
    qio(img, "write -P 0x5a 1M 192k", "write -P 0x33 700M 4k")
    ours = json.loads(disk("info", "--json", img).stdout)
    assert ours["format"] == "qcow2" and ours["virtual-size"] == 1 << 30
    assert ours["cluster-size"] == 65536 and ours["chain"][0]["filename"] == str(img)
    assert "no errors" in disk("check", img).stdout


def test_create_raw_thin_and_thick(tmp_path):
    thin, thick = tmp_path / "thin.img", tmp_path / "thick.img"
    disk("create", thin, "64M", "--format", "raw")
    disk("create", thick, "64M", "--format", "raw", "--prealloc")
    assert thin.stat().st_size == thick.stat().st_size == 64 * MiB
    assert thin.stat().st_blocks * 512 < MiB
    assert thick.stat().st_blocks * 512 >= 64 * MiB
    assert json.loads(disk("info", "--json", thick).stdout)["actual-size"] >= 64 * MiB


def test_create_qcow2_prealloc_is_fully_allocated(tmp_path):
    img = tmp_path / "p.qcow2"
    disk("create", img, "32M", "--prealloc")
    qemu_check_clean(img)
    m = json.loads(qimg("map", "--output=json", img).stdout)
    assert all(e["data"] for e in m), m
    assert img.stat().st_blocks * 512 >= 32 * MiB


def test_create_with_backing_defaults_to_its_size(tmp_path):
    base = tmp_path / "base.raw"
    base.write_bytes(b"\x11" * (3 * MiB))
    sub = tmp_path / "vm"
    sub.mkdir()
    top = sub / "top.qcow2"
    # Relative names resolve against the new image's directory.
    disk("create", top, "--backing", "../base.raw")
    info = json.loads(disk("info", "--json", top).stdout)
    assert info["virtual-size"] == 3 * MiB and info["backing-filename"] == "../base.raw"
    assert info["backing-format"] == "raw" and len(info["chain"]) == 2
    assert to_raw(top, tmp_path, "t.raw") == base.read_bytes()
    qemu_check_clean(top)


@pytest.mark.parametrize("args,words", [
    (["create", "{d}/x.qcow2", "10Q"], ["invalid size '10Q'"]),
    (["create", "{d}/x.qcow2", "1000"], ["invalid size '1000'", "512"]),
    (["create", "{d}/x.qcow2", "0"], ["invalid size '0'"]),
    (["create", "{d}/x.qcow2"], ["missing SIZE"]),
    (["create", "{d}/x.img", "1G", "--format", "vmdk"], ["invalid format 'vmdk'"]),
    (["create", "{d}/x.img", "1G", "--format", "raw", "--backing", "b"], ["raw image cannot have a backing"]),
    (["create", "{d}/x.qcow2", "1G", "--backing", "nope.qcow2"], ["nope.qcow2"]),
    (["create", "{d}/x.qcow2", "1G", "--bogus"], ["unknown option '--bogus'"]),
    (["info", "{d}/missing.qcow2"], ["missing.qcow2", "No such file"]),
    (["check", "{d}/missing.qcow2"], ["missing.qcow2"]),
    (["convert", "{d}/missing.qcow2", "{d}/out.raw"], ["missing.qcow2"]),
    (["resize", "{d}/missing.qcow2", "1G"], ["missing.qcow2"]),
    (["resize", "{d}/missing.qcow2", "1.5G"], ["invalid size '1.5G'"]),
    (["snapshot", "create", "{d}/missing.qcow2", "s1"], ["missing.qcow2"]),
    (["snapshot", "frobnicate", "{d}/x"], ["snapshot"]),
    (["frobnicate"], ["unknown disk command 'frobnicate'"]),
])
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    res = disk(*[a.format(d=tmp_path) for a in args], ok=False)
    bad_input(res, *words)
    assert not (tmp_path / "x.qcow2").exists() and not (tmp_path / "out.raw").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], list(tmp_path.iterdir())


def test_create_refuses_to_overwrite(tmp_path):
    img = tmp_path / "a.img"
    img.write_bytes(b"keep me")
    bad_input(disk("create", img, "1M", ok=False), "already exists")
    assert img.read_bytes() == b"keep me"


def test_malformed_qcow2_is_refused(tmp_path):
    img = tmp_path / "bad.qcow2"
    disk("create", img, "64M")
    data = bytearray(img.read_bytes())
    data[20:24] = (40).to_bytes(4, "big")  # cluster_bits
    img.write_bytes(bytes(data))
    bad_input(disk("info", img, ok=False), "cluster_bits 40")
    bad_input(disk("check", img, ok=False), "cluster_bits 40")


def test_backing_loop_is_refused(tmp_path):
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    qimg("create", "-f", "qcow2", a, "16M")
    qimg("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
    qimg("rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a)
    bad_input(disk("info", b, ok=False), "loops back")


# --------------------------------------------------------------------------- interop

def test_reads_qemu_images_compressed_v2_and_chains(tmp_path):
    ref = tmp_path / "ref.raw"
    ref.write_bytes(os.urandom(2 * MiB) + b"\0" * (5 * MiB) + bytes(range(256)) * 4096)
    comp, v2 = tmp_path / "c.qcow2", tmp_path / "v2.qcow2"
    qimg("convert", "-c", "-O", "qcow2", ref, comp)
    qimg("convert", "-O", "qcow2", "-o", "compat=0.10", ref, v2)
    for src in (comp, v2):
        out = tmp_path / (src.name + ".raw")
        disk("convert", src, out, "--format", "raw")
        assert out.read_bytes() == ref.read_bytes(), src
    assert "compressed" in disk("check", comp).stdout
    # cellvm writing over compressed clusters (copy-on-write, the old ones
    # freed): commit a delta into a compressed base.
    top = tmp_path / "cw.qcow2"
    shutil.copy(comp, top)
    disk("snapshot", "create", top, "s1")
    qio(top, "write -P 0x77 100k 8k", "write -P 0x78 1M 64k", "write -z 1600k 64k")
    disk("snapshot", "commit", top)
    want = bytearray(ref.read_bytes())
    want[100 * 1024:108 * 1024] = b"\x77" * 8192
    want[MiB:MiB + 65536] = b"\x78" * 65536
    want[1600 * 1024:1664 * 1024] = bytes(65536)
    assert to_raw(top, tmp_path, "cw.raw") == bytes(want)
    qemu_check_clean(top)


def test_convert_both_ways_and_flatten(tmp_path):
    base = tmp_path / "base.qcow2"
    qimg("create", "-f", "qcow2", base, "8M")
    qio(base, "write -P 0xa1 0 1M")
    mid = tmp_path / "mid.qcow2"
    qimg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid)
    qio(mid, "write -P 0xb2 512k 1M", "write -z 7M 64k")
    top = tmp_path / "top.qcow2"
    disk("create", top, "--backing", "mid.qcow2")
    qio(top, "write -P 0xc3 3M 4k")
    flat = tmp_path / "flat.qcow2"
    disk("convert", top, flat)
    assert "backing" not in json.loads(qimg("info", "--output=json", flat).stdout)
    qemu_check_clean(flat)
    assert qimg("compare", top, flat).returncode == 0
    raw = tmp_path / "flat.raw"
    disk("convert", flat, raw, "--format", "raw")
    assert qimg("compare", "-f", "raw", "-F", "qcow2", raw, top).returncode == 0
    back = tmp_path / "back.qcow2"
    disk("convert", raw, back, "--format", "qcow2")
    assert qimg("compare", back, top).returncode == 0
    assert json.loads(disk("info", "--json", raw).stdout)["format"] == "raw"


def test_check_reports_leaks_and_corruption(tmp_path):
    img = tmp_path / "a.qcow2"
    qimg("create", "-f", "qcow2", img, "16M")
    qio(img, "write -P 1 0 256k")
    # A leak: bump the refcount of the last cluster by hand (16-bit refcounts).
    info = json.loads(qimg("check", "--output=json", img).stdout)
    assert info.get("leaks", 0) == 0
    data = bytearray(img.read_bytes())
    rt = int.from_bytes(data[48:56], "big")
    rb = int.from_bytes(data[rt:rt + 8], "big")
    clusters = len(data) // 65536
    data[rb + 2 * clusters:rb + 2 * clusters + 2] = (1).to_bytes(2, "big")
    img.write_bytes(bytes(data) + b"\0" * 65536)
    res = disk("check", img)
    assert "1 leaked" in res.stdout and "no errors" in res.stdout
    # Corruption: a data cluster's refcount dropped to 0.
    l1 = int.from_bytes(data[40:48], "big")
    l2 = int.from_bytes(data[l1:l1 + 8], "big") & 0x00fffffffffffe00
    first = int.from_bytes(data[l2:l2 + 8], "big") & 0x00fffffffffffe00
    idx = first // 65536
    data[rb + 2 * idx:rb + 2 * idx + 2] = b"\0\0"
    img.write_bytes(bytes(data))
    res = disk("check", img, ok=False)
    assert res.returncode == 1 and "ERROR" in res.stdout and "corrupt" in res.stdout


# --------------------------------------------------------------------------- resize

def test_resize_grows_and_refuses_shrink(tmp_path):
    img = tmp_path / "a.qcow2"
    disk("create", img, "64M")
    qio(img, "write -P 0x42 60M 64k")
    disk("resize", img, "3G")
    assert json.loads(qimg("info", "--output=json", img).stdout)["virtual-size"] == 3 << 30
    disk("resize", img, "+1G")
    assert json.loads(disk("info", "--json", img).stdout)["virtual-size"] == 4 << 30
    qio(img, "write -P 0x43 3900M 64k", "read -P 0x42 60M 64k")
    qemu_check_clean(img)
    bad_input(disk("resize", img, "1G", ok=False), "cannot shrink", "4G", "1G")
    raw = tmp_path / "a.raw"
    disk("create", raw, "1M", "--format", "raw")
    disk("resize", raw, "2M")
    assert raw.stat().st_size == 2 * MiB


# --------------------------------------------------------------------------- in use

def test_images_in_use_are_refused(tmp_path):
    img = tmp_path / "a.qcow2"
    disk("create", img, "16M")
    with open(img, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # what a running cellvm holds
        for args in (["info", img], ["check", img], ["resize", img, "32M"],
                     ["snapshot", "create", img, "s1"], ["snapshot", "commit", img]):
            bad_input(disk(*args, ok=False), "in use")
    assert not (tmp_path / "a.qcow2.s1").exists()


# --------------------------------------------------------------------------- snapshots

def test_snapshot_create_list_revert_commit(tmp_path):
    img = tmp_path / "vm.qcow2"
    disk("create", img, "16M")
    qio(img, "write -P 0x01 0 64k")
    disk("snapshot", "create", img, "s1")
    assert (tmp_path / "vm.qcow2.s1").exists()
    info = json.loads(disk("info", "--json", img).stdout)
    assert info["backing-filename"] == "vm.qcow2.s1"
    qio(img, "write -P 0x02 64k 64k")
    disk("snapshot", "create", img, "s2")
    qio(img, "write -P 0x03 128k 64k")
    out = disk("snapshot", "list", img).stdout
    assert out.index("snapshot s2") < out.index("snapshot s1"), out
    bad_input(disk("snapshot", "create", img, "s1", ok=False), "already exists")
    bad_input(disk("snapshot", "create", img, "../x", ok=False), "invalid snapshot name")
    # Revert to the newest: the delta's write is gone, s2's is there.
    disk("snapshot", "revert", img)
    qio(img, "read -P 0x01 0 64k", "read -P 0x02 64k 64k", "read -P 0 128k 64k")
    # Revert to s1: s2 is discarded too.
    disk("snapshot", "revert", img, "s1")
    assert not (tmp_path / "vm.qcow2.s2").exists()
    qio(img, "read -P 0x01 0 64k", "read -P 0 64k 64k")
    bad_input(disk("snapshot", "revert", img, "s2", ok=False), "no snapshot 's2'")
    # Commit: the delta's write lands in the base, which becomes vm.qcow2.
    qio(img, "write -P 0x04 192k 64k", "write -z 0 4k")
    disk("snapshot", "commit", img)
    assert not (tmp_path / "vm.qcow2.s1").exists()
    assert "backing-filename" not in json.loads(disk("info", "--json", img).stdout)
    qio(img, "read -P 0 0 4k", "read -P 0x01 4k 60k", "read -P 0x04 192k 64k")
    qemu_check_clean(img)
    bad_input(disk("snapshot", "commit", img, ok=False), "no snapshot")
    bad_input(disk("snapshot", "revert", img, ok=False), "no snapshot")


def test_snapshot_of_raw_image(tmp_path):
    img = tmp_path / "vm.img"
    img.write_bytes(b"\x07" * MiB)
    disk("snapshot", "create", img, "before")
    assert json.loads(disk("info", "--json", img).stdout)["format"] == "qcow2"
    qio(img, "write -P 0x08 0 4k")
    disk("snapshot", "commit", img)
    assert json.loads(disk("info", "--json", img).stdout)["format"] == "raw"
    data = img.read_bytes()
    assert data[:4096] == b"\x08" * 4096 and data[4096:] == b"\x07" * (MiB - 4096)


def test_bench_runs_the_vm_block_layer(tmp_path):
    img = tmp_path / "b.qcow2"
    disk("create", img, "16M")
    for args in ([], ["--write"], ["--depth", "8"]):
        out = disk("bench", img, "--count", "2000", *args).stdout
        assert re.search(r"\d+ IOPS \(2000 in", out), out
    qemu_check_clean(img)
    bad_input(disk("bench", img, "--depth", "0", ok=False), "--depth '0'")
