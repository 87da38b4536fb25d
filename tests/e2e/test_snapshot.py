"""Whole-VM snapshots end to end: a guest running a counter is paused,
snapshotted through Firecracker's API (PUT /snapshot/create), its process
killed, and the VM continued by a new process (`cellvm run --restore DIR`, or
PUT /snapshot/load) — the counter goes on from the next value, the disk it
appends to stays consistent, and the guest's clock never runs backwards.
Broken snapshots are refused with one line and exit status 2."""

import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, PROMPT_RE, require_bin
from nbd_helpers import nbd  # noqa: F401 (a fixture)
from net_helpers import dhcp, netns_factory, procs, sh, vm_args, wait_port  # noqa: F401 (fixtures)
from test_api import curl, wait_sock
from test_net_nat import guest_httpd, host_get, http_server
from test_virtio_net import netns  # noqa: F401 (a fixture)

pytestmark = pytest.mark.vm

# Prints a count on the console and appends it to a file (on the disk when
# one is mounted at /mnt), forever, a few times a second.
COUNTER = ("(i=0; while :; do i=$((i+1)); echo \"CNT=$i\"; echo $i >> {file}; sync; "
           "sleep 0.2; done) &")


def api_boot(spawn, tmp_path, kernel, initrd, cpus=1, transport=None, disk=None, name="snap", track=False,
             prefix=(), tap=None):
    """A VM started through the API (its process run under `prefix`, e.g. in
    a network namespace), at its shell prompt; (guest, socket)."""
    sock = str(tmp_path / f"{name}.sock")
    args = [*prefix, require_bin(), "run", "--api-sock", sock, "--name", name]
    if transport:
        args += ["--transport", transport]
    g = spawn(args)
    wait_sock(g, sock)
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": cpus, "mem_size_mib": 256,
                                                 "track_dirty_pages": track})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    if disk:
        assert curl(sock, "PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(disk),
                                                  "is_root_device": False,
                                                  "is_read_only": False})[0] == 204
    if tap:
        assert curl(sock, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": tap,
                                                               "guest_mac": "52:54:00:aa:bb:01"})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready(BOOT_TIMEOUT)
    return g, sock


def snapshot(sock, d, kind="Full"):
    """Pause, snapshot into directory d (state, memory)."""
    os.makedirs(d, exist_ok=True)
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    status, body = curl(sock, "PUT", "/snapshot/create", {
        "snapshot_type": kind, "snapshot_path": f"{d}/state", "mem_file_path": f"{d}/memory"})
    assert status == 204, body


def snapshot_and_kill(g, sock, d):
    """Snapshot into d, then kill the VM's process: what survives is on disk.
    Returns the last counter value the guest printed."""
    snapshot(sock, d)
    before = last_count(g.output)
    os.killpg(g.proc.pid, signal.SIGKILL)
    g.proc.wait(10)
    return before


def last_count(text):
    counts = [int(c) for c in re.findall(r"CNT=(\d+)", text)]
    return counts[-1] if counts else None


def restore(spawn, d, extra=(), prefix=()):
    return spawn([*prefix, require_bin(), "run", "--restore", str(d), *extra])


def check_continues(g, before):
    """The restored counter's first value is the one after `before`."""
    g.wait_for(re.compile(r"CNT=\d+\s"), BOOT_TIMEOUT)  # the whole number, not its first digits
    first = int(re.search(r"CNT=(\d+)\s", g.output).group(1))
    assert first == before + 1, f"counter restarted at {first}, snapshot had {before}\n{g.describe()}"
    g.wait_for(f"CNT={before + 3}", BOOT_TIMEOUT)


def check_moved(old, new):
    """The counter's lines on the console of old (a VM's process that has
    ended: its output is complete) and then of new (the same VM, moved
    there) are 1, 2, 3...: none lost, none repeated. The VM may stop in the
    middle of a line, which then begins on old's console and ends on new's."""
    new.wait_for(re.compile(r"CNT=\d+\s"), BOOT_TIMEOUT)
    counts = [int(c) for c in re.findall(r"CNT=(\d+)\s", old.output + new.output)]
    assert counts == list(range(1, len(counts) + 1)), \
        f"counter lost or repeated values across the move: {counts}\n{old.describe()}\n{new.describe()}"
    new.wait_for(f"CNT={counts[-1] + 2}", BOOT_TIMEOUT)


@pytest.mark.parametrize("cpus,transport", [(1, None), pytest.param(2, "mmio", marks=pytest.mark.slow),
                                            pytest.param(4, None, marks=pytest.mark.slow)])
def test_counter_continues_after_restore(spawn, tmp_path, kernel, initrd, kvm_available, cpus, transport):
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, cpus=cpus, transport=transport)
    out, _ = g.run("date +%s; cat /proc/uptime")
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=5", 30)
    snap = tmp_path / "snap"
    before = snapshot_and_kill(g, sock, snap)
    uptime_before = float(out.split()[1])

    # Memory is written sparse: most of a 256 MiB guest is holes.
    st = os.stat(snap / "memory")
    assert st.st_size == 256 << 20
    assert st.st_blocks * 512 < st.st_size // 2, f"memory file not sparse: {st.st_blocks * 512} bytes used"

    r = restore(spawn, snap)
    check_continues(r, before)
    _, status = r.run("kill %1")  # the shell's job table came back with the VM
    assert status == 0, r.describe()
    time.sleep(0.5)
    out, status = r.run("cat /proc/uptime; date +%s; nproc; tail -n 1 /tmp/count")
    assert status == 0, r.describe()
    uptime, _, now, nproc, tail = out.split()[:5]
    assert float(uptime) >= uptime_before, f"guest clock went backwards\n{r.describe()}"
    assert abs(int(now) - time.time()) < 30, f"guest wall clock {now} far from the host's\n{r.describe()}"
    assert int(nproc) == cpus
    assert int(tail) > before
    r.send("poweroff")
    assert r.wait_exit() == 0, r.describe()


@pytest.mark.parametrize("over", ["file", "nbd"])
def test_disk_consistent_after_restore(spawn, tmp_path, kernel, initrd, kvm_available, nbd, over):
    """The counter also appends to an ext4 disk (the image file, or an NBD
    export of it, which the snapshot records by URI alone); after restore the
    file goes on from where it was, and the disk checks clean once the guest
    unmounts it."""
    img = tmp_path / "data.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(img), "32M"], check=True)
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, disk=nbd(img).uri if over == "nbd" else img)
    _, status = g.run("mount /dev/vda /mnt")
    assert status == 0, g.describe()
    g.send(COUNTER.format(file="/mnt/count"))
    g.wait_for("CNT=5", 30)
    snap = tmp_path / "snap"
    before = snapshot_and_kill(g, sock, snap)

    r = restore(spawn, snap)
    check_continues(r, before)
    out, status = r.run("kill %1; sleep 0.5; tail -n 1 /mnt/count; umount /mnt && echo UMOUNTED")
    assert status == 0 and "UMOUNTED" in out, r.describe()
    last = int(out.split()[0])
    assert last > before + 2
    r.send("poweroff")
    assert r.wait_exit() == 0, r.describe()
    res = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(["debugfs", "-R", "cat /count", str(img)], capture_output=True, text=True)
    values = [int(v) for v in res.stdout.split()]
    assert values == list(range(1, last + 1)), f"count file has gaps or repeats: {values[-10:]}"


# Rewrites a 4 MiB file with fresh random data and records its checksum,
# over and over, until /tmp/stop exists (checked only between rounds).
DISK_CHURN = ("(while [ ! -e /tmp/stop ]; do dd if=/dev/urandom of=/mnt/f bs=64k count=64 conv=fsync 2>/dev/null; "
              "md5sum /mnt/f > /mnt/f.md5; sync; echo ROUND; done; echo CHURN-DONE) &")


def test_snapshot_in_the_middle_of_disk_writes(spawn, tmp_path, kernel, initrd, kvm_available):
    """Snapshotted while the guest keeps rewriting a file on its disk with
    fsync (so requests are in flight at the pause): after restore the loop
    goes on, the last round's data matches its checksum, and the
    filesystem checks clean."""
    img = tmp_path / "data.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(img), "64M"], check=True)
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, disk=img)
    _, status = g.run("mount /dev/vda /mnt")
    assert status == 0, g.describe()
    g.send(DISK_CHURN)
    g.wait_for(re.compile(r"(ROUND\s+){2}"), 60)
    snapshot_and_kill(g, sock, tmp_path / "snap")

    r = restore(spawn, tmp_path / "snap")
    r.wait_for(re.compile(r"(ROUND\s+){2}"), 60)  # rounds after the restore
    out, status = r.run("touch /tmp/stop; wait; md5sum -c /mnt/f.md5 && umount /mnt && echo UMOUNTED", 120)
    assert status == 0 and "OK" in out and "UMOUNTED" in out, r.describe()
    r.send("poweroff")
    assert r.wait_exit() == 0, r.describe()
    res = subprocess.run(["e2fsck", "-fn", str(img)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_snapshot_load_through_api(spawn, tmp_path, kernel, initrd, kvm_available):
    """PUT /snapshot/load into a fresh `cellvm run --api-sock`: the VM is
    paused until resumed, then continues."""
    g, sock = api_boot(spawn, tmp_path, kernel, initrd)
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)
    snap = tmp_path / "snap"
    before = snapshot_and_kill(g, sock, snap)

    sock2 = str(tmp_path / "load.sock")
    r = spawn([require_bin(), "run", "--api-sock", sock2])
    wait_sock(r, sock2)
    status, body = curl(sock2, "PUT", "/snapshot/load", {
        "snapshot_path": f"{snap}/state", "mem_backend": {"backend_type": "File",
                                                         "backend_path": f"{snap}/memory"}})
    assert status == 204, body
    assert curl(sock2, "GET", "/")[1]["state"] == "Paused"
    time.sleep(1)
    assert "CNT=" not in r.output, "a VM loaded without resume_vm ran\n" + r.describe()
    assert curl(sock2, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    check_continues(r, before)
    # A second load into a VM that runs is refused.
    status, body = curl(sock2, "PUT", "/snapshot/load", {
        "snapshot_path": f"{snap}/state", "mem_file_path": f"{snap}/memory"})
    assert status == 400 and "not allowed" in body["fault_message"], body


def test_create_refused_while_running(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = api_boot(spawn, tmp_path, kernel, initrd)
    status, body = curl(sock, "PUT", "/snapshot/create", {
        "snapshot_path": str(tmp_path / "s"), "mem_file_path": str(tmp_path / "m")})
    assert status == 400 and "paused" in body["fault_message"], body
    assert not (tmp_path / "s").exists() and not (tmp_path / "m").exists()
    out, status = g.run("echo still-running")
    assert status == 0 and "still-running" in out


@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory, kernel, initrd, kvm_available):
    """One snapshot of an idle guest, for the refusal tests to break copies of."""
    from conftest import Guest
    tmp = tmp_path_factory.mktemp("good")
    sock = str(tmp / "api.sock")
    g = Guest([require_bin(), "run", "--api-sock", sock], name="good-snapshot")
    try:
        wait_sock(g, sock)
        assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})[0] == 204
        assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                                  "boot_args": DEFAULT_CMDLINE})[0] == 204
        assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
        g.wait_ready(BOOT_TIMEOUT)
        snapshot(sock, tmp / "snap")
    finally:
        g.close()
    return tmp / "snap"


def broken_copy(good, tmp_path, edit):
    d = tmp_path / "broken"
    shutil.copytree(good, d)
    edit(d)
    return d


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


CASES = {
    "corrupt": (lambda d: flip_byte(d / "state", len((d / "state").read_bytes()) // 2), "CRC mismatch"),
    "truncated": (lambda d: (d / "state").write_bytes((d / "state").read_bytes()[:-100]), "truncated"),
    "wrong-version": (lambda d: flip_byte(d / "state", 8), "format version"),
    "not-a-snapshot": (lambda d: (d / "state").write_bytes(b"hello world\n" * 10), "not a cellvm snapshot"),
    "short-memory": (lambda d: os.truncate(d / "memory", (d / "memory").stat().st_size // 2), "memory file"),
    "no-memory": (lambda d: os.unlink(d / "memory"), "memory file"),
    "no-state": (lambda d: os.unlink(d / "state"), "invalid snapshot"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_snapshot_refused(spawn, tmp_path, good_snapshot, case):
    edit, message = CASES[case]
    d = broken_copy(good_snapshot, tmp_path, edit)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    r = restore(spawn, d)
    assert r.wait_exit() == 2, r.describe()
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errs) == 1 and message in errs[0], r.describe()
    assert "CELLVM" not in r.output and "CNT" not in r.output
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before, "restore changed the snapshot's files"


def test_restore_refuses_vm_options(tmp_path):
    res = subprocess.run([require_bin(), "run", "--restore", str(tmp_path), "--memory", "1G"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    assert "cannot be combined with --restore" in res.stderr


def smaps_of(pid, path):
    """{field: kB} summed over the mappings of `path` in process pid."""
    fields, inside = {}, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                inside = line.rstrip().endswith(str(path))
            elif inside and len(head) >= 2 and head[0].endswith(":") and head[1].isdigit():
                fields[head[0][:-1]] = fields.get(head[0][:-1], 0) + int(head[1])
    return fields


def vmgenid(g):
    out, status = g.run("devmem 0xff000 64; devmem 0xff008 64")
    assert status == 0, g.describe()
    return out.split()


def test_three_clones_share_memory_and_get_new_generation_ids(spawn, tmp_path, kernel, initrd,
                                                              kvm_available):
    """One snapshot restored three times at once: all run, each is told it is
    a copy (a new VM generation ID, and the guest kernel reseeds its RNG), and
    the snapshot's pages stay shared between them until a guest writes them."""
    g, sock = api_boot(spawn, tmp_path, kernel, initrd)
    original = vmgenid(g)
    # 48 MiB of guest data the clones will read.
    _, status = g.run("dd if=/dev/urandom of=/tmp/blob bs=1M count=48 2>/dev/null; md5sum /tmp/blob")
    assert status == 0, g.describe()
    digest = re.search(r"([0-9a-f]{32})  /tmp/blob", g.output).group(1)
    snap = tmp_path / "snap"
    snapshot_and_kill(g, sock, snap)

    clones = [restore(spawn, snap) for _ in range(3)]
    ids = []
    for c in clones:
        out, status = c.run("md5sum /tmp/blob")
        assert status == 0 and digest in out, c.describe()
        ids.append(tuple(vmgenid(c)))
    assert len(set(ids)) == 3 and tuple(original) not in ids, f"generation IDs {original} -> {ids}"
    if "CONFIG_VMGENID=y" in _kernel_config(kernel):
        for c in clones:
            out, _ = c.run("dmesg | grep -c 'crng reseeded due to virtual machine fork'")
            assert int(out.split()[-1]) >= 1, "the guest was not told it is a copy\n" + c.describe()

    mem = snap / "memory"
    shared = [smaps_of(c.proc.pid, mem).get("Shared_Clean", 0) for c in clones]
    assert all(s >= 40 * 1024 for s in shared), f"clones do not share the snapshot's pages (kB): {shared}"
    # One clone overwrites the data: its copy becomes private, the others keep sharing.
    before = smaps_of(clones[0].proc.pid, mem)
    _, status = clones[0].run("dd if=/dev/zero of=/tmp/blob bs=1M count=48 conv=notrunc 2>/dev/null; sync")
    assert status == 0
    after = smaps_of(clones[0].proc.pid, mem)
    assert after.get("Private_Dirty", 0) - before.get("Private_Dirty", 0) >= 40 * 1024, (before, after)
    out, _ = clones[1].run("md5sum /tmp/blob")
    assert digest in out, "a write in one clone reached another\n" + clones[1].describe()
    assert smaps_of(clones[1].proc.pid, mem).get("Shared_Clean", 0) >= 40 * 1024
    for c in clones:
        c.send("poweroff")
        assert c.wait_exit() == 0, c.describe()


def _kernel_config(kernel):
    """The guest kernel's .config text when it is cellvm's own build (its cache
    keeps the config beside the vmlinux), else ''."""
    cfg = os.path.join(os.path.dirname(kernel), "config")
    return open(cfg).read() if os.path.exists(cfg) else ""


def test_restore_refuses_a_disk_that_changed(spawn, tmp_path, kernel, initrd, kvm_available):
    """The guest's memory holds its view of the disk: a disk written after the
    snapshot is refused by name, exit 2, and neither file is touched."""
    img = tmp_path / "data.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-F", str(img), "16M"], check=True)
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, disk=img)
    snap = tmp_path / "snap"
    snapshot_and_kill(g, sock, snap)
    with open(img, "r+b") as f:
        f.seek(1 << 20)
        f.write(b"changed behind the snapshot's back")
    image = img.read_bytes()
    r = restore(spawn, snap)
    assert r.wait_exit() == 2, r.describe()
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errs) == 1 and str(img) in errs[0] and "changed since the snapshot" in errs[0], r.describe()
    assert img.read_bytes() == image


def used_bytes(path):
    return os.stat(path).st_blocks * 512


def snap_and_go_on(g, sock, d, kind, marker):
    """Writes marker into guest RAM (tmpfs), snapshots, resumes; returns the
    counter value at the snapshot."""
    _, status = g.run(f"echo {marker} > /tmp/marker")
    assert status == 0, g.describe()
    snapshot(sock, d, kind)
    at = last_count(g.output)
    assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    g.wait_for(f"CNT={at + 3}", 30)
    return at


def check_marker_and_counter(g, before, marker):
    check_continues(g, before)
    out, status = g.run("cat /tmp/marker")
    assert status == 0 and out.split()[-1] == marker, g.describe()


def test_diff_snapshot_chain(spawn, tmp_path, kernel, initrd, kvm_available):
    """A Full snapshot, then three Diffs, each holding only the pages written
    since the one before: restoring the newest diff gives the latest state,
    restoring a middle one that state; a VM restored from the chain goes on
    taking diffs; a layer that changed is refused."""
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, track=True)
    status, body = curl(sock, "GET", "/machine-config")
    assert status == 200 and body["track_dirty_pages"] is True, body
    g.send(COUNTER.format(file="/tmp/count"))
    g.wait_for("CNT=3", 30)
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    status, body = curl(sock, "PUT", "/snapshot/create", {
        "snapshot_type": "Diff", "snapshot_path": f"{tmp_path}/x", "mem_file_path": f"{tmp_path}/y"})
    assert status == 400 and "Full snapshot first" in body["fault_message"], body
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204

    counts = [snap_and_go_on(g, sock, tmp_path / "s0", "Full", "m0")]
    for i in (1, 2, 3):
        counts.append(snap_and_go_on(g, sock, tmp_path / f"s{i}", "Diff", f"m{i}"))
    os.killpg(g.proc.pid, signal.SIGKILL)
    g.proc.wait(10)
    full = used_bytes(tmp_path / "s0" / "memory")
    for i in (1, 2, 3):
        diff = used_bytes(tmp_path / f"s{i}" / "memory")
        assert (tmp_path / f"s{i}" / "memory").stat().st_size == 256 << 20
        assert 0 < diff < full // 2, f"diff {i} holds {diff} bytes, the full snapshot {full}"

    r = restore(spawn, tmp_path / "s2")
    check_marker_and_counter(r, counts[2], "m2")
    r.close()

    # The restored VM tracks its own writes and diffs on top of the chain.
    sock2 = str(tmp_path / "again.sock")
    r = restore(spawn, tmp_path / "s3", ["--api-sock", sock2, "--track-dirty-pages"])
    check_marker_and_counter(r, counts[3], "m3")
    at = snap_and_go_on(r, sock2, tmp_path / "s4", "Diff", "m4")
    os.killpg(r.proc.pid, signal.SIGKILL)
    r.proc.wait(10)
    r = restore(spawn, tmp_path / "s4")
    check_marker_and_counter(r, at, "m4")
    r.close()

    # A layer under the newest snapshot that changed: refused, nothing runs.
    os.utime(tmp_path / "s1" / "memory", (1, 1))
    r = restore(spawn, tmp_path / "s4")
    assert r.wait_exit() == 2, r.describe()
    errs = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(errs) == 1 and "memory layer 2 of 5" in errs[0] and "changed" in errs[0], r.describe()


def test_diff_refused_without_dirty_tracking(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = api_boot(spawn, tmp_path, kernel, initrd)
    snapshot(sock, tmp_path / "full")
    status, body = curl(sock, "PUT", "/snapshot/create", {
        "snapshot_type": "Diff", "snapshot_path": f"{tmp_path}/d/state", "mem_file_path": f"{tmp_path}/d/mem"})
    assert status == 400 and "track_dirty_pages" in body["fault_message"], body
    assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    _, status = g.run("true")
    assert status == 0, g.describe()


# Accepts one connection and prints each line received, as it comes.
LINE_SINK = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("LISTENING", flush=True)
c, _ = s.accept()
for line in c.makefile():
    print(line.strip(), flush=True)
print("EOF", flush=True)
"""


class NumberStream:
    """The guest g streams 1, 2, 3... (20 lines a second) over TCP with
    busybox nc to LINE_SINK, run on ip:port by the command prefix `where`
    (e.g. a namespace's `ip netns exec`); the lines arrive in `got`."""

    def __init__(self, g, where, ip, port):
        self.sink = subprocess.Popen([*where, "/usr/bin/python3", "-c", LINE_SINK, ip, str(port)],
                                     stdout=subprocess.PIPE, text=True)
        self.got = []
        assert self.sink.stdout.readline().strip() == "LISTENING"
        threading.Thread(target=lambda: self.got.extend(iter(self.sink.stdout.readline, "")), daemon=True).start()
        g.send(f"(i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done) | nc {ip} {port} &")

    def wait(self, n, timeout=60):
        """Waits until n lines arrived (or timeout); how many did."""
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return len(self.got)

    def check(self, n, g):
        """At least n numbers arrived, on one connection, none lost or repeated."""
        values = [ln.strip() for ln in self.got]
        assert "EOF" not in values, f"the connection was closed: {values[-5:]}\n{g.describe()}"
        nums = [int(v) for v in values]
        assert len(nums) >= n, f"the stream did not go on: {nums[-5:]}\n{g.describe()}"
        assert nums == list(range(1, len(nums) + 1)), f"numbers lost or repeated: {nums}"

    def close(self):
        self.sink.kill()
        self.sink.communicate()


def test_tcp_connection_survives_restore(netns, spawn, tmp_path, kernel, initrd, kvm_available):
    """The guest streams numbers over TCP to a peer on its tap and is
    snapshotted mid-stream; its process is killed and the VM restored (the
    tap reattached): the same connection goes on, no number lost or
    repeated."""
    ns = netns
    prefix = ns.exec_args()
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, prefix=prefix, tap=ns.tap)
    _, status = g.run(f"ip link set eth0 up && ip addr add {ns.guest_ip}/24 dev eth0")
    assert status == 0, g.describe()
    stream = NumberStream(g, prefix, ns.host_ip, 7777)
    try:
        assert stream.wait(20) >= 20, f"no stream: {stream.got}\n{g.describe()}"
        snapshot_and_kill(g, sock, tmp_path / "snap")
        at_kill = len(stream.got)
        time.sleep(2)  # the connection lies idle while no VM exists
        r = restore(spawn, tmp_path / "snap", prefix=prefix)
        stream.wait(at_kill + 40)
        stream.check(at_kill + 40, r)
    finally:
        stream.close()


def test_nat_vm_restores_with_its_forwards(netns_factory, procs, spawn, tmp_path, kernel, initrd, kvm_available):
    """A VM on the NAT, built from the command line with an API socket:
    snapshotted and restored, it keeps its DHCP lease and address, its port
    forward listens again and reaches the guest's server (which lived on in
    its memory), and it reaches the host through the NAT."""
    ns = netns_factory()
    hport, port = random.randint(10000, 19999), random.randint(20000, 29999)
    sock = tmp_path / "nat.sock"
    g = spawn(ns.args(*vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M",
                                extra=["--net", f"nat,hostfwd=tcp::{hport}-:8080", "--api-sock", str(sock)])))
    g.wait_ready()
    assert dhcp(g) == ("10.0.2.15", 24)
    md5 = guest_httpd(g)
    wait_port(ns, "127.0.0.1", hport)
    assert host_get(ns, f"http://127.0.0.1:{hport}/blob") == md5
    # The API describes the VM the command line built.
    status, cfg = curl(sock, "GET", "/vm/config")
    assert status == 200 and cfg["machine-config"]["mem_size_mib"] == 256, cfg
    assert [n["iface_id"] for n in cfg["network-interfaces"]] == ["net0"], cfg

    snap = tmp_path / "snap"
    snapshot_and_kill(g, sock, snap)
    assert b"net0-backend" in (snap / "state").read_bytes()  # libslirp's own state
    r = spawn(ns.args(require_bin(), "run", "--restore", str(snap)))
    wait_port(ns, "127.0.0.1", hport)
    assert host_get(ns, f"http://127.0.0.1:{hport}/blob") == md5, r.describe()
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "hello").write_text("through-the-nat\n")
    http_server(ns, procs, tmp_path / "www", str(port))
    out = sh(r, f"ip -4 addr show eth0; timeout 60 wget -q -O - http://10.0.2.2:{port}/hello")
    assert "10.0.2.15/24" in out and "through-the-nat" in out, f"{out}\n{r.describe()}"
    r.send("poweroff")
    assert r.wait_exit(120) == 0, r.describe()


def tap_rx(ns, tap):
    """Frames the host received on tap (what the guest behind it sent)."""
    out = subprocess.run(["ip", "netns", "exec", ns.name, "cat", f"/sys/class/net/{tap}/statistics/rx_packets"],
                         capture_output=True, text=True, check=True).stdout
    return int(out)


# Prints the source MAC of the first RARP frame the host receives on a tap.
RARP_SNIFF = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind((sys.argv[1], 0))
s.settimeout(30)
print("LISTENING", flush=True)
f = s.recv(2048)
print(":".join(f"{b:02x}" for b in f[6:12]), flush=True)
"""


def test_clones_get_their_own_taps(netns, spawn, tmp_path, kernel, initrd, kvm_available):
    """Two clones of one snapshot of a tap VM run at once, each on a tap of
    its own: one by --net-override, one by PUT /snapshot/load's
    network_overrides (Firecracker's field). Overrides that name no NIC
    are refused with exit 2."""
    ns = netns
    prefix = ns.exec_args()
    g, sock = api_boot(spawn, tmp_path, kernel, initrd, prefix=prefix, tap=ns.tap)
    _, status = g.run(f"ip link set eth0 up && ip addr add {ns.guest_ip}/24 dev eth0")
    assert status == 0, g.describe()
    snap = tmp_path / "snap"
    snapshot_and_kill(g, sock, snap)

    bad = subprocess.run([*prefix, str(require_bin()), "run", "--restore", str(snap), "--net-override", "eth7=tapz"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "has no network interface 'eth7'" in bad.stderr, bad.stderr

    tap_a, tap_b = f"{ns.tap[:9]}a", f"{ns.tap[:9]}b"
    for tap in (tap_a, tap_b):  # up, so that what the guest sends is counted
        subprocess.run(["ip", "netns", "exec", ns.name, "sh", "-c",
                        f"ip tuntap add dev {tap} mode tap && ip link set {tap} up"], check=True)
    sniff = subprocess.Popen(["ip", "netns", "exec", ns.name, "/usr/bin/python3", "-c", RARP_SNIFF, tap_a],
                             stdout=subprocess.PIPE, text=True)
    assert sniff.stdout.readline().strip() == "LISTENING"
    a = restore(spawn, snap, extra=["--net-override", f"eth0={tap_a}"], prefix=prefix)
    # The restored NIC announces the guest's MAC on its new tap.
    assert sniff.stdout.readline().strip() == "52:54:00:aa:bb:01", a.describe()
    sniff.wait(10)
    sock_b = tmp_path / "b.sock"
    b = spawn([*prefix, require_bin(), "run", "--api-sock", str(sock_b)])
    wait_sock(b, sock_b)
    status, body = curl(sock_b, "PUT", "/snapshot/load", {
        "snapshot_path": f"{snap}/state", "mem_backend": {"backend_type": "File", "backend_path": f"{snap}/memory"},
        "network_overrides": [{"iface_id": "eth0", "host_dev_name": tap_b}], "resume_vm": True})
    assert status == 204, body
    status, cfg = curl(sock_b, "GET", "/vm/config")
    assert cfg["network-interfaces"][0]["host_dev_name"] == tap_b, cfg
    for clone, tap in ((a, tap_a), (b, tap_b)):
        before = tap_rx(ns, tap)
        # ARP for an address nobody has, on the clone's own segment.
        clone.run(f"ping -c 3 -W 1 {ns.host_ip.rsplit('.', 1)[0]}.77 >/dev/null 2>&1; true")
        assert tap_rx(ns, tap) > before, f"nothing arrived on {tap}\n{clone.describe()}"
    for clone in (a, b):
        clone.send("poweroff")
        assert clone.wait_exit(120) == 0, clone.describe()
