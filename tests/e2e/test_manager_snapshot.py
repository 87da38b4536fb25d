"""Managed snapshots end to end (`cellvm snapshot create|list|restore|delete`):
a managed VM appends a counter to a file on its qcow2 disk; a snapshot saves
memory and freezes the disk at the same instant (IMG.SNAP); the VM goes on
writing; restoring brings back both, so the counter continues from the
snapshot and the file on disk holds exactly what the guest believes. The
snapshots travel with `export`/`import`; deleting one keeps the disk layers
something is still built on; bad requests are refused with exit 2 and no
change."""

import json
import re
import subprocess

import pytest

from conftest import BOOT_TIMEOUT, require_bin
from test_manager import Manager, Pty, create, mgr, wait_state  # noqa: F401 (mgr is a fixture)
from test_snapshot import COUNTER

pytestmark = pytest.mark.vm

PROMPT = rb"cellvm:\S*# "


def qcow2_ext4(tmp_path, m):
    """A 32 MiB qcow2 disk holding an empty ext4 filesystem."""
    raw, img = tmp_path / "fs.raw", tmp_path / "data.qcow2"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(raw), "32M"], check=True, capture_output=True)
    m("disk", "convert", raw, img, "--format", "qcow2", check=0)
    return img


def counts(text):
    return [int(c) for c in re.findall(rb"CNT=(\d+)\r?\n", text)]


def console(m, name):
    con = Pty(m, name)
    con.read_until(rb"attached to VM " + name.encode())
    return con


def run(con, cmd, marker):
    """Runs cmd on the console; what it printed before `echo marker`."""
    start = len(con.out)
    con.write(cmd.encode() + b"; echo " + marker.encode()[:1] + b"''" + marker.encode()[1:] + b"\r")
    match = con.read_until(re.escape(marker.encode()) + rb"\r?\n")
    return con.out[start:match.start()]


def start_counter(m, name):
    """Boots NAME, mounts its disk and starts the counter; the console."""
    m("start", name, check=0)
    con = console(m, name)
    con.read_until(PROMPT, BOOT_TIMEOUT)
    run(con, "mount /dev/vda /mnt", "MOUNTED")
    con.write(COUNTER.format(file="/mnt/count").encode() + b"\r")
    con.read_until(rb"CNT=5\r?\n")
    return con


def snapshot_paused(m, name, con, snap):
    """Pauses, snapshots and resumes NAME; the last count before the pause."""
    m("pause", name, check=0)
    con.drain()
    before = counts(con.out)[-1]
    res = m("snapshot", "create", name, snap, check=0)
    assert "1 disk frozen" in res.stdout, res.stdout
    assert wait_state(m, name, "paused")  # a paused VM stays paused
    m("resume", name, check=0)
    return before


def check_restored(m, name, before):
    """After a restore: the counter goes on from before + 1 and the file on
    the disk, read past the page cache, is the sequence 1..N."""
    con = console(m, name)
    con.read_until(rb"CNT=\d+\r?\n")
    first = counts(con.out)[0]
    assert first == before + 1, f"counter restarted at {first}, snapshot had {before}"
    con.read_until(f"CNT={before + 3}\r?\n".encode())
    out = run(con, "sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/count | tr '\\n' ' '", "CATDONE")
    # The counter goes on printing meanwhile: its CNT= lines are not the file.
    seen = [int(x) for x in re.findall(rb"\b(\d+)\b", re.sub(rb"CNT=\d+", b"", out.split(b"\n", 1)[-1]))]
    assert seen and seen == list(range(1, len(seen) + 1)), f"file on disk: {seen}"
    assert before + 1 <= len(seen) < before + 50, f"{len(seen)} lines on disk, snapshot at {before}"
    return con


def stop_clean(m, name, con):
    """Stops the counter, unmounts the disk and stops the VM."""
    run(con, "kill %1; sleep 0.3; umount /mnt", "UNMOUNTED")
    con.write(b"\x01x")
    con.wait()
    m("stop", name, "--force", check=0)


def fsck_clean(m, img, tmp_path):
    m("disk", "check", img, check=0)
    raw = tmp_path / "check.raw"
    if raw.exists():
        raw.unlink()
    m("disk", "convert", img, raw, "--format", "raw", check=0)
    res = subprocess.run(["e2fsck", "-fn", str(raw)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_snapshot_restore_memory_and_disk_match(mgr, kernel, initrd, tmp_path):
    img = qcow2_ext4(tmp_path, mgr)
    create(mgr, "ctr", kernel, initrd, "--disk", f"{img},id=data", check=0)
    b = mgr.bundle("ctr")
    assert json.loads((b / "vm.json").read_text())["drives"][0]["format"] == "qcow2"
    con = start_counter(mgr, "ctr")
    before = snapshot_paused(mgr, "ctr", con, "s1")
    assert (b / "data.img.s1").exists() and (b / "snapshots/s1/state").exists()
    table = mgr("snapshot", "list", "ctr", check=0).stdout
    assert re.search(r"^s1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+[\d.]+Mi\s+data\.img\.s1$", table, re.M), table

    # The VM goes on writing past the snapshot; the snapshot's own state
    # no longer matches the disk, and a plain --restore says so.
    con.read_until(f"CNT={before + 10}\r?\n".encode())
    con.write(b"\x01x")
    con.wait()
    mgr("stop", "ctr", "--force", check=0)
    res = subprocess.run([str(require_bin()), "run", "--restore", "snapshots/s1"], cwd=b, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "is not an empty delta on the snapshot's layer 'data.img.s1'" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr

    res = mgr("snapshot", "restore", "ctr", "s1", check=0)
    assert "restored VM ctr" in res.stdout
    con = check_restored(mgr, "ctr", before)
    stop_clean(mgr, "ctr", con)
    fsck_clean(mgr, b / "data.img", tmp_path)

    # Restored twice from the same snapshot: the same state again.
    mgr("snapshot", "restore", "ctr", "s1", check=0)
    con = check_restored(mgr, "ctr", before)
    stop_clean(mgr, "ctr", con)


def test_snapshots_travel_with_export(mgr, kernel, initrd, tmp_path):
    img = qcow2_ext4(tmp_path, mgr)
    create(mgr, "src", kernel, initrd, "--disk", f"{img},id=data", check=0)
    con = start_counter(mgr, "src")
    before = snapshot_paused(mgr, "src", con, "warm")
    con.write(b"\x01x")
    con.wait()
    mgr("stop", "src", "--force", check=0)
    tar = tmp_path / "src.tar"
    mgr("export", "src", tar, check=0)

    other = Manager(tmp_path / "elsewhere")
    try:
        other("import", tar, "copy", check=0)
        b = other.bundle("copy")
        assert {p.name for p in (b / "snapshots/warm").iterdir()} == {"state", "memory", "meta.json"}
        assert "warm" in other("snapshot", "list", "copy", check=0).stdout
        other("snapshot", "restore", "copy", "warm", check=0)
        con = check_restored(other, "copy", before)
        stop_clean(other, "copy", con)
    finally:
        other.cleanup()


def test_delete_keeps_layers_in_use(mgr, kernel, initrd, tmp_path):
    img = qcow2_ext4(tmp_path, mgr)
    create(mgr, "del", kernel, initrd, "--disk", f"{img},id=data", check=0)
    b = mgr.bundle("del")
    con = start_counter(mgr, "del")
    before = snapshot_paused(mgr, "del", con, "s1")
    con.read_until(f"CNT={before + 3}\r?\n".encode())
    snapshot_paused(mgr, "del", con, "s2")
    con.write(b"\x01x")
    con.wait()
    mgr("stop", "del", "--force", check=0)
    mgr("snapshot", "restore", "del", "s1", check=0)
    # s2's layer is needed by nothing now: it goes with s2.
    mgr("snapshot", "delete", "del", "s2", check=0)
    assert not (b / "data.img.s2").exists() and not (b / "snapshots/s2").exists()
    # The running disk is a delta on s1's layer: it stays.
    res = mgr("snapshot", "delete", "del", "s1", check=0)
    assert "kept" in res.stdout and (b / "data.img.s1").exists()
    assert "has no snapshots" in mgr("snapshot", "list", "del", check=0).stdout
    con = check_restored(mgr, "del", before)
    stop_clean(mgr, "del", con)
    fsck_clean(mgr, b / "data.img", tmp_path)
    # A fresh boot reads the disk through the kept layer.
    con = start_counter(mgr, "del")
    stop_clean(mgr, "del", con)


def test_snapshot_bad_input_exit_2_no_change(mgr, kernel, initrd, tmp_path):
    img = qcow2_ext4(tmp_path, mgr)
    create(mgr, "bad", kernel, initrd, "--disk", f"{img},id=data", check=0)
    before = mgr.snapshot()
    for args, msg in [
        (("create", "bad", "s1"), "is stopped: a snapshot saves a running VM"),
        (("create", "nope", "s1"), "no VM named 'nope'"),
        (("restore", "bad", "s1"), "has no snapshot 's1'"),
        (("delete", "bad", "s1"), "has no snapshot 's1'"),
        (("create", "bad", ".hidden"), "invalid snapshot name '.hidden'"),
        (("create", "bad", "a/b"), "invalid snapshot name 'a/b'"),
        (("frobnicate", "bad"), "usage: cellvm snapshot"),
        (("restore", "bad"), "usage: cellvm snapshot"),
    ]:
        res = mgr("snapshot", *args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert msg in res.stderr and len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
    assert mgr.snapshot() == before

    con = start_counter(mgr, "bad")
    snapshot_paused(mgr, "bad", con, "s1")
    res = mgr("snapshot", "create", "bad", "s1")
    assert res.returncode == 2 and "already has a snapshot 's1'" in res.stderr, res.stderr
    res = mgr("snapshot", "restore", "bad", "s1")
    assert res.returncode == 2 and "is running: stop it first" in res.stderr, res.stderr
    con.write(b"\x01x")
    con.wait()
    mgr("stop", "bad", "--force", check=0)

    # A restore that fails (a corrupt state file) leaves the disk as it was.
    b = mgr.bundle("bad")
    state = b / "snapshots/s1/state"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xff
    state.write_bytes(bytes(data))
    before = mgr.snapshot()
    res = mgr("snapshot", "restore", "bad", "s1")
    assert res.returncode == 2 and "did not start" in res.stderr, res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    after = {p: v for p, v in mgr.snapshot().items() if not p.endswith(("vm.log", "vm.pid"))}
    assert after == {p: v for p, v in before.items() if not p.endswith(("vm.log", "vm.pid"))}
