"""cellvm as a drop-in Firecracker: `cellvm firecracker` and the binary
started as `firecracker`, `cellvm jailer` in the jailer's layout, boots
driven exactly as firecracker-go-sdk and Kata Containers drive one, rate
limiters (drives, NICs, entropy) counted by the metrics and changed with
PATCH on a running VM, and the entropy device."""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from conftest import DEFAULT_CMDLINE, require_bin
from net_helpers import netns_factory  # noqa: F401 (a fixture)
from test_api import curl, wait_sock
from test_jail import NOBODY, jail_root, status, vmm_pid
from test_vsock import guest_listen, host_connect, recv_all_until

pytestmark = pytest.mark.vm


class Fifo:
    """A FIFO drained by a thread, as firecracker-go-sdk reads its log and
    metrics FIFOs."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path)
        self.data = b""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with open(self.path, "rb") as f:
            while True:
                b = f.read1(65536)
                if not b:
                    return
                self.data += b

    def lines(self):
        return self.data.decode(errors="replace").splitlines()


def refused(command, args, *want):
    """`cellvm COMMAND ARGS` exits 2 with one line that contains every `want`."""
    res = subprocess.run([str(require_bin()), command, *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    for w in want:
        assert w in res.stderr, res.stderr


def metrics(sock, fifo):
    """The last metrics line after a FlushMetrics."""
    n = len(fifo.lines())
    assert curl(sock, "PUT", "/actions", {"action_type": "FlushMetrics"})[0] == 204
    deadline = time.monotonic() + 10
    while len(fifo.lines()) <= n:
        assert time.monotonic() < deadline, fifo.data
        time.sleep(0.05)
    return json.loads(fifo.lines()[-1])


def wait_stderr(g, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in g.stderr():
        assert time.monotonic() < deadline, g.describe()
        time.sleep(0.05)


def raw_file(path, size, head=b""):
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return str(path)


def fc_vm(spawn, tmp_path, *flags, sock=None, ns=None):
    """`cellvm firecracker --api-sock SOCK --id ...` waiting for the API
    (inside network namespace ns, if given)."""
    sock = sock or str(tmp_path / "fc.sock")
    args = [require_bin(), "firecracker", "--api-sock", sock, *flags]
    g = spawn(ns.args(*args) if ns else args)
    wait_sock(g, sock)
    return g, sock


def test_go_sdk_boot(spawn, tmp_path, kernel, initrd, kvm_available):
    """firecracker-go-sdk's order (handlers.go, machine.go): the VMM started
    with --api-sock, --id and --no-seccomp/--seccomp-filter, polled with GET
    /machine-config, then PUT /logger and /metrics on FIFOs, machine-config,
    boot-source, drives, network interfaces, vsock, InstanceStart."""
    g, sock = fc_vm(spawn, tmp_path, "--id", "sdk-vm-1", "--seccomp-filter", "/nonexistent.bpf")
    wait_stderr(g, "--seccomp-filter '/nonexistent.bpf' not honoured")
    assert curl(sock, "GET", "/machine-config")[0] == 200
    log, met = Fifo(tmp_path / "log.fifo"), Fifo(tmp_path / "metrics.fifo")
    assert curl(sock, "PUT", "/logger", {"log_path": log.path, "level": "Debug", "show_level": True,
                                         "show_log_origin": False})[0] == 204
    assert curl(sock, "PUT", "/metrics", {"metrics_path": met.path})[0] == 204
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256, "smt": False,
                                                 "track_dirty_pages": False})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    root = raw_file(tmp_path / "root.img", 8 << 20, b"SDK-ROOTFS")
    assert curl(sock, "PUT", "/drives/1", {"drive_id": "1", "path_on_host": root, "is_root_device": True,
                                           "is_read_only": False, "cache_type": "Unsafe",
                                           "io_engine": "Sync"})[0] == 204
    uds = str(tmp_path / "v.sock")
    assert curl(sock, "PUT", "/vsock", {"guest_cid": 3, "uds_path": uds, "vsock_id": "vsock0"})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    out, rc = g.run("cat /proc/cmdline; head -c 10 /dev/vda; echo; cat /sys/block/vda/queue/write_cache")
    assert rc == 0 and "root=/dev/vda rw" in out and "SDK-ROOTFS" in out, out
    # cache_type Unsafe: no flush offered, the guest sees a write-through disk.
    assert "write through" in out, out
    info = curl(sock, "GET", "/")[1]
    assert info["id"] == "sdk-vm-1" and info["state"] == "Running", info
    assert any("[sdk-vm-1:INFO" in line for line in log.lines()), log.data
    m = metrics(sock, met)
    assert "block" in m and "net" in m and "entropy" in m, m
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_kata_style_boot(spawn, tmp_path, kernel, initrd, kvm_available):
    """Kata Containers' order: machine-config, boot-source with an initrd, a
    rootfs drive, placeholder drives it later points at a container's
    rootfs with PATCH path_on_host, vsock for its agent; InstanceStart."""
    g, sock = fc_vm(spawn, tmp_path, "--id", "kata-1")
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    rootfs = raw_file(tmp_path / "rootfs.img", 4 << 20, b"KATA-IMAGE")
    assert curl(sock, "PUT", "/drives/rootfs", {"drive_id": "rootfs", "path_on_host": rootfs,
                                                "is_root_device": False, "is_read_only": True})[0] == 204
    dummy = raw_file(tmp_path / "drive_0.img", 4096)
    assert curl(sock, "PUT", "/drives/drive_0", {"drive_id": "drive_0", "path_on_host": dummy,
                                                 "is_root_device": False, "is_read_only": False})[0] == 204
    uds = str(tmp_path / "kata.hvsock")
    assert curl(sock, "PUT", "/vsock", {"guest_cid": 3, "uds_path": uds})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    # The agent's channel: the host connects to the guest's vsock port.
    guest_listen(g, 1024)
    s, answer = host_connect(uds, 1024)
    assert re.fullmatch(rb"OK \d+\n", answer), answer
    s.sendall(b"kata agent hello\n")
    assert recv_all_until(s, b"kata agent hello\n")
    s.close()
    # A container's rootfs arrives: the placeholder becomes it, the guest sees it.
    container = raw_file(tmp_path / "container.img", 2 << 20, b"CONTAINER-ROOTFS")
    assert curl(sock, "PATCH", "/drives/drive_0", {"drive_id": "drive_0", "path_on_host": container})[0] == 204
    out, rc = g.run("for i in $(seq 100); do [ $(cat /sys/block/vdb/size) = 4096 ] && break; sleep 0.1; done; "
                    "echo 3 > /proc/sys/vm/drop_caches; head -c 10 /dev/vda; echo; head -c 16 /dev/vdb; echo")
    assert "KATA-IMAGE" in out and "CONTAINER-ROOTFS" in out, out
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_started_as_firecracker(spawn, tmp_path, kernel, initrd, kvm_available):
    """The binary under the name `firecracker` is Firecracker's command
    line: --version, and a --no-api boot from --config-file."""
    fc = tmp_path / "firecracker"
    os.symlink(os.path.abspath(require_bin()), fc)
    res = subprocess.run([str(fc), "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and re.match(r"Firecracker v\d+\.\d+\.\d+\n", res.stdout), res
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": kernel, "initrd_path": str(initrd), "boot_args": DEFAULT_CMDLINE},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 256},
        "entropy": {"rate_limiter": None},
    }))
    g = spawn([str(fc), "--no-api", "--config-file", str(cfg), "--id", "link-vm", "--level", "Info",
               "--show-level", "--show-log-origin", "--boot-timer"])
    g.wait_ready()
    wait_stderr(g, "--boot-timer not honoured")
    out, rc = g.run("head -c 16 /dev/hwrng | wc -c")
    assert rc == 0 and "16" in out.split(), out
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


@pytest.mark.parametrize("args, want", [
    (["--no-api"], "--no-api needs --config-file"),
    (["--id", "a b"], "invalid --id 'a b'"),
    (["--http-api-max-payload-size", "0"], "invalid --http-api-max-payload-size '0'"),
    (["--mmds-size-limit", "lots"], "invalid --mmds-size-limit 'lots'"),
    (["--level"], "flag '--level' needs a value"),
    (["--no-seccomp=yes"], "flag '--no-seccomp' takes no value"),
    (["--frobnicate"], "unknown flag '--frobnicate'"),
])
def test_bad_firecracker_flags(args, want):
    refused("firecracker", args, want)


def test_bad_level_names_the_flag(tmp_path):
    refused("firecracker", ["--api-sock", str(tmp_path / "s"), "--level", "Loud"], "invalid --level/--log-path",
            "Loud")


def test_max_payload_size(spawn, tmp_path):
    """--http-api-max-payload-size raises the body limit (no VM needed)."""
    g, sock = fc_vm(spawn, tmp_path, "--http-api-max-payload-size", "100000", "--mmds-size-limit", "4096")
    big = json.dumps({"vcpu_count": 1, "mem_size_mib": 256, "cpu_template": "None" + " " * 60000})
    status, body = curl(sock, "PUT", "/machine-config", big)
    assert status == 400 and "invalid cpu template" in body["fault_message"], body  # read whole, then refused
    status, body = curl(sock, "PUT", "/machine-config", " " * 110000)
    assert status == 413 and "larger than 100000 bytes" in body["fault_message"], body
    assert curl(sock, "GET", "/version")[1]["firecracker_version"] == "1.10.1"
    # --mmds-size-limit bounds the data store, not the request body.
    assert curl(sock, "PUT", "/mmds", {"k": "v" * 3000})[0] == 204
    status, body = curl(sock, "PUT", "/mmds", {"k": "v" * 5000})
    assert status == 413 and "MMDS limit exceeded" in body["fault_message"], body
    assert curl(sock, "GET", "/mmds")[1] == {"k": "v" * 3000}


def test_jailer_layout(spawn, tmp_path, kernel, initrd, kvm_available):
    """`cellvm jailer --exec-file build/cellvm`: the chroot is
    BASE/cellvm/ID/root, the VMM runs there unprivileged as
    `firecracker --id ID` with its API socket at /run/firecracker.socket."""
    jid = "fc-jail-1"
    # --exec-file build/cellvm: the layout's middle part is "cellvm", as `cellvm jail`'s.
    root = jail_root(tmp_path, kernel, initrd, jid)
    g = spawn([require_bin(), "jailer", "--id", jid, "--exec-file", require_bin(), "--uid", str(NOBODY),
               "--gid", str(NOBODY), "--chroot-base-dir", str(tmp_path), "--new-pid-ns", "--",
               "--level", "Info"])
    sock = str(root / "run" / "firecracker.socket")
    wait_sock(g, sock)
    info = curl(sock, "GET", "/")[1]
    assert info["id"] == jid, info
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": "/vmlinux", "initrd_path": "/initrd",
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    pid = vmm_pid(g)
    st = status(pid)
    assert st["Uid"].split() == [str(NOBODY)] * 4 and st["Seccomp"] == "2", st
    assert sorted(os.listdir(f"/proc/{pid}/root")) == ["dev", "initrd", "run", "vmlinux"]
    assert os.listdir(f"/proc/{pid}/root/run") == ["firecracker.socket"]
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


@pytest.mark.parametrize("args, want", [
    (["--id", "x", "--uid", "0", "--gid", "0", "--chroot-base-dir", "/tmp"], "cellvm jailer needs --exec-file"),
    (["--id", "x", "--uid", "0", "--gid", "0", "--exec-file", "/nonexistent"], "invalid --exec-file '/nonexistent'"),
    (["--id", "x", "--uid", "0", "--gid", "0", "--exec-file", "/tmp"], "not a regular file"),
    (["--id", "a_b", "--uid", "0", "--gid", "0", "--exec-file", "/bin/sh"], "invalid --id 'a_b'"),
    (["--exec-file"], "needs a value"),
])
def test_bad_jailer_flags(args, want):
    refused("jailer", args, want)


def guest_read_mib(g, dev, mib):
    out, rc = g.run(f"dd if={dev} of=/dev/null bs=64k count={mib * 16} iflag=direct 2>&1 && echo read-ok",
                    timeout=120)
    assert rc == 0 and "read-ok" in out, out


def test_drive_rate_limit_and_patch(spawn, tmp_path, kernel, initrd, kvm_available):
    """A drive's bandwidth bucket (1 MiB per 500 ms, 1 MiB one-time burst)
    holds a 6 MiB read back (counted by the metrics, and bounded: at least
    1.5 s where the buckets allow no less than about 2); PATCH turns it off on the running VM and
    the next reads are never held back; GET /vm/config and a snapshot's
    restore carry the new limiter."""
    g, sock = fc_vm(spawn, tmp_path, "--id", "rl")
    met = Fifo(tmp_path / "m.fifo")
    assert curl(sock, "PUT", "/metrics", {"metrics_path": met.path})[0] == 204
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    disk = raw_file(tmp_path / "d.img", 32 << 20)
    limit = {"bandwidth": {"size": 1 << 20, "one_time_burst": 1 << 20, "refill_time": 500}}
    assert curl(sock, "PUT", "/drives/d", {"drive_id": "d", "path_on_host": disk, "is_root_device": False,
                                           "is_read_only": False, "rate_limiter": limit})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    start = time.monotonic()
    guest_read_mib(g, "/dev/vda", 6)
    took = time.monotonic() - start
    held = metrics(sock, met)["block"]["rate_limiter_throttled_events"]
    assert held > 0 and took >= 1.5, (held, took)
    # Off: a bucket of size 0 (ops stays unset).
    assert curl(sock, "PATCH", "/drives/d", {"drive_id": "d", "rate_limiter": {
        "bandwidth": {"size": 0, "refill_time": 0}}})[0] == 204
    guest_read_mib(g, "/dev/vda", 8)
    assert metrics(sock, met)["block"]["rate_limiter_throttled_events"] == held
    # On again with an ops bucket: held back again.
    assert curl(sock, "PATCH", "/drives/d", {"drive_id": "d", "rate_limiter": {
        "ops": {"size": 10, "refill_time": 100}}})[0] == 204
    guest_read_mib(g, "/dev/vda", 1)
    assert metrics(sock, met)["block"]["rate_limiter_throttled_events"] > held
    # Refused on the running VM, nothing changed: a bucket without its
    # refill_time, a drive that is not there.
    status_, body = curl(sock, "PATCH", "/drives/d", {"drive_id": "d", "rate_limiter": {"ops": {"size": 5}}})
    assert status_ == 400 and "refill_time" in body["fault_message"], body
    status_, body = curl(sock, "PATCH", "/drives/e", {"drive_id": "e", "rate_limiter": {}})
    assert status_ == 400 and "drive 'e' not found" in body["fault_message"], body
    cfg = curl(sock, "GET", "/vm/config")[1]
    rl = cfg["drives"][0]["rate_limiter"]
    assert rl["ops"]["size"] == 10 and rl["ops"]["refill_time"] == 100 and rl["bandwidth"]["size"] == 0, rl
    # A snapshot keeps the limiter, and the restored VM enforces it.
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    snap, mem = str(tmp_path / "state"), str(tmp_path / "mem")
    assert curl(sock, "PUT", "/snapshot/create", {"snapshot_path": snap, "mem_file_path": mem})[0] == 204
    g.signal(15)
    assert g.wait_exit() == 0
    g2, sock2 = fc_vm(spawn, tmp_path, "--id", "rl2", sock=str(tmp_path / "fc2.sock"))
    assert curl(sock2, "PUT", "/snapshot/load", {"snapshot_path": snap, "mem_backend": {
        "backend_type": "File", "backend_path": mem}, "resume_vm": True})[0] == 204
    rl = curl(sock2, "GET", "/vm/config")[1]["drives"][0]["rate_limiter"]
    assert rl["ops"]["size"] == 10 and rl["ops"]["refill_time"] == 100, rl


@pytest.mark.net
def test_nic_rate_limit_patch(spawn, tmp_path, kernel, initrd, kvm_available, netns_factory):
    """A NIC's limiters change on the running VM (in a namespace of its
    own, with its tap): PATCH merges the named buckets into what is there,
    GET /vm/config shows the result, the NIC keeps working."""
    ns = netns_factory()
    tap = "cvfc0"
    g, sock = fc_vm(spawn, tmp_path, "--id", "nicrl", ns=ns)
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/network-interfaces/eth0", {
        "iface_id": "eth0", "host_dev_name": tap, "guest_mac": "06:00:ac:10:00:02",
        "tx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    assert curl(sock, "PATCH", "/network-interfaces/eth0", {
        "iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 65536, "one_time_burst": 4096,
                                                              "refill_time": 100}},
        "tx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 10}}})[0] == 204
    nic = curl(sock, "GET", "/vm/config")[1]["network-interfaces"][0]
    assert nic["rx_rate_limiter"]["bandwidth"]["one_time_burst"] == 4096, nic
    assert nic["tx_rate_limiter"]["ops"]["size"] == 100 and nic["tx_rate_limiter"]["bandwidth"]["size"] == 1000
    ns.ip("addr", "add", "10.99.0.1/24", "dev", tap)
    ns.ip("link", "set", tap, "up")
    out, rc = g.run("ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0 && ping -c 3 -i 0.2 -W 5 10.99.0.1")
    assert rc == 0, out
    status_, body = curl(sock, "PATCH", "/network-interfaces/eth1", {"iface_id": "eth1"})
    assert status_ == 400 and body["fault_message"] == "Invalid interface ID - not found: eth1", body
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_entropy_rate_limit(spawn, tmp_path, kernel, initrd, kvm_available):
    """PUT /entropy with a rate limiter: /dev/hwrng still delivers, held
    back by its bucket (counted in the metrics); after boot it is refused."""
    g, sock = fc_vm(spawn, tmp_path, "--id", "rng")
    met = Fifo(tmp_path / "m.fifo")
    assert curl(sock, "PUT", "/metrics", {"metrics_path": met.path})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/entropy", {"rate_limiter": {"bandwidth": {"size": 512, "refill_time": 250}}})[0] == 204
    assert curl(sock, "GET", "/vm/config")[1]["entropy"]["rate_limiter"]["bandwidth"]["size"] == 512
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    out, rc = g.run("head -c 4096 /dev/hwrng | wc -c", timeout=120)
    assert rc == 0 and "4096" in out.split(), out
    assert metrics(sock, met)["entropy"]["entropy_rate_limiter_throttled"] > 0
    status_, body = curl(sock, "PUT", "/entropy", {})
    assert status_ == 400 and "not supported after starting the microVM" in body["fault_message"], body
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_started_as_jailer(tmp_path):
    """The binary under the name `jailer` is the jailer's command line."""
    jailer = tmp_path / "jailer"
    os.symlink(os.path.abspath(require_bin()), jailer)
    res = subprocess.run([str(jailer), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "--exec-file" in res.stdout, res
    res = subprocess.run([str(jailer), "--id", "x", "--uid", "0", "--gid", "0"], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and res.stderr == "cellvm: cellvm jailer needs --exec-file\n", res
