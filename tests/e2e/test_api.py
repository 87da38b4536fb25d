"""Firecracker-compatible API end to end: `cellvm run --api-sock` driven with
curl through a whole session (configure, InstanceStart, pause, resume,
SendCtrlAltDel), a --config-file boot, and a table of malformed requests that
must each be answered 400 without changing anything."""

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, PROMPT_RE, READY_MARKER, require_bin

pytestmark = pytest.mark.vm

API_TIMEOUT = 30


def curl(sock, method, path, body=None):
    """(status, parsed JSON body or None) of one request through curl."""
    if not shutil.which("curl"):
        pytest.skip("curl not installed (apt-get install curl)")
    args = ["curl", "-s", "--max-time", str(API_TIMEOUT), "--unix-socket", str(sock), "-X", method,
            "-o", "-", "-w", "\n%{http_code}", f"http://localhost{path}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json",
                 "--data-binary", body if isinstance(body, str) else json.dumps(body)]
    res = subprocess.run(args, capture_output=True, text=True, timeout=API_TIMEOUT + 10)
    text, _, code = res.stdout.rpartition("\n")
    assert code.isdigit(), f"curl {method} {path}: {res.stderr}"
    return int(code), (json.loads(text) if text.strip() else None)


def wait_sock(g, sock, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(sock):
        assert g.proc.poll() is None, g.describe()
        assert time.monotonic() < deadline, f"no API socket {sock}\n{g.describe()}"
        time.sleep(0.02)


@pytest.fixture
def api_vm(spawn, tmp_path, kernel, initrd):
    """A `cellvm run --api-sock` waiting for configuration, and its socket."""
    sock = str(tmp_path / "api.sock")
    g = spawn([require_bin(), "run", "--api-sock", sock, "--name", "apitest"])
    wait_sock(g, sock)
    return g, sock


def configure(sock, kernel, initrd, cmdline=DEFAULT_CMDLINE):
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})[0] == 204
    assert curl(sock, "PUT", "/boot-source", {
        "kernel_image_path": kernel, "initrd_path": str(initrd), "boot_args": cmdline})[0] == 204


def guest_uptime(g, tag):
    out, status = g.run(f"cut -d' ' -f1 /proc/uptime")
    assert status == 0, g.describe()
    return float(out.strip().splitlines()[-1])


def test_api_session(api_vm, kernel, initrd, tmp_path):
    g, sock = api_vm
    status, info = curl(sock, "GET", "/")
    assert status == 200 and info["state"] == "Not started" and info["id"] == "apitest"
    assert curl(sock, "GET", "/version")[0] == 200
    configure(sock, kernel, initrd)
    disk = tmp_path / "data.img"
    disk.write_bytes(b"cellvm-api-disk".ljust(1 << 20, b"\0"))
    assert curl(sock, "PUT", "/drives/data", {
        "drive_id": "data", "path_on_host": str(disk), "is_root_device": False,
        "is_read_only": True})[0] == 204
    assert curl(sock, "PATCH", "/machine-config", {"mem_size_mib": 320})[0] == 204
    status, cfg = curl(sock, "GET", "/vm/config")
    assert status == 200 and cfg["machine-config"]["mem_size_mib"] == 320
    assert cfg["drives"][0]["drive_id"] == "data"

    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    assert curl(sock, "GET", "/")[1]["state"] == "Running"
    out, _ = g.run("cat /sys/block/vda/serial; head -c 15 /dev/vda; echo")
    assert "data" in out and "cellvm-api-disk" in out, g.describe()
    out, _ = g.run("grep MemTotal /proc/meminfo")
    kb = int(re.search(r"(\d+) kB", out).group(1))
    assert 0.8 * 320 * 1024 < kb <= 320 * 1024, g.describe()
    # Post-boot only and pre-boot only rules.
    status, body = curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
    assert status == 400 and "after starting" in body["fault_message"]

    # Pause: the guest's clock stops advancing.
    before = guest_uptime(g, "a")
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    assert curl(sock, "GET", "/")[1]["state"] == "Paused"
    paused_at = time.monotonic()
    time.sleep(3)
    assert curl(sock, "PATCH", "/vm", {"state": "Resumed"})[0] == 204
    pause = time.monotonic() - paused_at
    after = guest_uptime(g, "b")
    assert after - before < pause, (
        f"guest uptime advanced {after - before:.2f} s across a {pause:.2f} s pause\n{g.describe()}")
    assert curl(sock, "GET", "/")[1]["state"] == "Running"

    # Ctrl+Alt+Del through the i8042: the test guest's /init leaves the
    # kernel's default (immediate restart), which cellvm turns into exit 0.
    out, _ = g.run("cat /proc/sys/kernel/ctrl-alt-del; ls /sys/bus/serio/devices")
    assert "serio0" in out, g.describe()
    assert curl(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})[0] == 204
    assert g.wait_exit() == 0, g.describe()
    assert not os.path.exists(sock), "the API socket is removed on exit"


def test_config_file_boot(spawn, tmp_path, kernel, initrd, kvm_available):
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({
        "boot-source": {"kernel_image_path": kernel, "initrd_path": str(initrd),
                        "boot_args": f"{DEFAULT_CMDLINE} -- echo config-file-boot"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 192},
        "drives": [], "network-interfaces": [], "balloon": None,
    }))
    sock = str(tmp_path / "api.sock")
    g = spawn([require_bin(), "run", "--config-file", cfg, "--api-sock", sock])
    g.wait_for(READY_MARKER, BOOT_TIMEOUT)
    g.wait_for("config-file-boot")
    assert g.wait_exit() == 0, g.describe()


def test_config_file_errors_exit_2(spawn, tmp_path, kernel):
    bad = tmp_path / "bad.json"
    for doc, words in [
        ("{", "invalid JSON"),
        (json.dumps({"boot-source": {"kernel_image_path": kernel}, "vsock": {"guest_cid": 3}}), "uds_path"),
        (json.dumps({"boot-source": {"kernel_image_path": kernel, "colour": "red"}}), "colour"),
        (json.dumps({"boot-source": {"kernel_image_path": "/nonexistent"}}), "/nonexistent"),
        (json.dumps({"boot-source": {"kernel_image_path": kernel},
                     "machine-config": {"vcpu_count": 1, "mem_size_mib": 1}}), "mem_size_mib"),
    ]:
        bad.write_text(doc)
        res = subprocess.run([str(require_bin()), "run", "--config-file", str(bad)],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 2, (doc, res.stderr)
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1, (doc, res.stderr)
    res = subprocess.run([str(require_bin()), "run", "--config-file", str(bad), "--cpus", "2"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "--cpus" in res.stderr


MALFORMED = [
    ("PUT", "/machine-config", '{"vcpu_count": 2, "mem_size_mib": 256'),
    ("PUT", "/machine-config", '{"vcpu_count": 2, "mem_size_mib": 256, "colour": "red"}'),
    ("PUT", "/machine-config", '{"vcpu_count": "two", "mem_size_mib": 256}'),
    ("PUT", "/machine-config", '{"vcpu_count": 0, "mem_size_mib": 256}'),
    ("PUT", "/machine-config", '{"vcpu_count": 1, "mem_size_mib": 4}'),
    ("PATCH", "/machine-config", "{}"),
    ("PUT", "/machine-config", '{"vcpu_count": 3, "mem_size_mib": 256, "smt": true}'),
    ("PUT", "/boot-source", '{"kernel_image_path": "/nonexistent"}'),
    ("PUT", "/drives/rootfs", '{"drive_id": "other", "path_on_host": "/x", "is_root_device": true}'),
    ("PUT", "/network-interfaces/eth0", '{"iface_id": "eth0", "host_dev_name": "way-too-long-tap-name"}'),
    ("PUT", "/balloon", '{"amount_mib": 4096, "deflate_on_oom": true}'),
    ("PUT", "/vsock", '{"guest_cid": 2, "uds_path": "/tmp/v.sock"}'),
    ("PUT", "/vsock", '{"guest_cid": 3}'),
    ("PUT", "/snapshot/create", '{"snapshot_path": "/tmp/s", "mem_file_path": "/tmp/m"}'),
    ("PUT", "/mmds/config", '{"network_interfaces": ["nope"]}'),
    ("PUT", "/mmds", '{"latest": '),
    ("PUT", "/entropy", '{"rate_limiter": {"ops": {"size": 1}}}'),
    ("PUT", "/entropy", '{"rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1}}, "seed": 1}'),
    ("PUT", "/entropy", '{"rate_limiter": {"bandwidth": {"size": 1, "refill_time": 9999999}}}'),
    ("PUT", "/drives/x", '{"drive_id": "x", "path_on_host": "/dev/null", "is_root_device": false, '
                         '"rate_limiter": {"bandwidth": {"size": -1, "refill_time": 100}}}'),
    ("PUT", "/drives/x", '{"drive_id": "x", "path_on_host": "/dev/null", "is_root_device": false, '
                         '"cache_type": "Fast"}'),
    ("PUT", "/network-interfaces/eth0", '{"iface_id": "eth0", "host_dev_name": "tap0", '
                                        '"tx_rate_limiter": {"ops": {"refill_time": 100}}}'),
    ("PATCH", "/network-interfaces/eth0", '{"iface_id": "eth0"}'),
    ("PATCH", "/drives/rootfs", '{"drive_id": "rootfs", "rate_limiter": {}}'),
    ("PUT", "/actions", '{"action_type": "SendCtrlAltDel"}'),
    ("PUT", "/actions", '{"action_type": "Explode"}'),
    ("PATCH", "/vm", '{"state": "Paused"}'),
    ("GET", "/no-such-thing", None),
    ("DELETE", "/drives/rootfs", None),
    ("PUT", "/actions", None),
]


def test_malformed_requests_change_nothing(api_vm, kernel, initrd):
    g, sock = api_vm
    configure(sock, kernel, initrd)
    _, before = curl(sock, "GET", "/vm/config")
    for method, path, body in MALFORMED:
        status, reply = curl(sock, method, path, body)
        assert status == 400, (method, path, body, status, reply)
        assert reply and reply.get("fault_message"), (method, path, reply)
        assert curl(sock, "GET", "/vm/config")[1] == before, (method, path)
    assert curl(sock, "GET", "/")[1]["state"] == "Not started"
    assert g.proc.poll() is None, g.describe()


def test_raw_http_abuse(api_vm):
    """Bytes curl would never send: the server answers 400 and keeps serving."""
    import socket
    g, sock = api_vm
    for raw in [b"GET / HTTP/1.1\nHost: x\n\n",
                b"PUT /machine-config HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                b"PUT /machine-config HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"]:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock)
        s.sendall(raw)
        reply = s.recv(65536)
        s.close()
        assert reply.startswith(b"HTTP/1.1 4"), (raw[:60], reply[:200])
    # Pipelined requests on one connection are answered in order.
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(b"GET /version HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /machine-config HTTP/1.1\r\n"
              b"Connection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.count(b"HTTP/1.1 200") == 3, data
    assert data.index(b"firecracker_version") < data.index(b"Not started") < data.index(b"mem_size_mib")
    assert curl(sock, "GET", "/")[0] == 200
    assert g.proc.poll() is None


def test_sigterm_before_start_exits_0(api_vm):
    g, sock = api_vm
    g.signal(15)
    assert g.wait_exit() == 0, g.describe()
    assert not os.path.exists(sock)


@pytest.fixture
def netns_tap():
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs root, ip and /dev/net/tun (network namespace with a tap)")
    name = f"cvapi-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode:
        pytest.skip("cannot create a network namespace")
    try:
        ex = ["ip", "netns", "exec", name]
        subprocess.run(ex + ["ip", "tuntap", "add", "dev", "cvtap0", "mode", "tap"], check=True)
        subprocess.run(ex + ["ip", "addr", "add", "10.98.0.1/24", "dev", "cvtap0"], check=True)
        subprocess.run(ex + ["ip", "link", "set", "cvtap0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.net
def test_network_interface_session(spawn, tmp_path, kernel, initrd, kvm_available, netns_tap):
    sock = str(tmp_path / "api.sock")
    g = spawn(["ip", "netns", "exec", netns_tap, require_bin(), "run", "--api-sock", sock])
    wait_sock(g, sock)
    configure(sock, kernel, initrd)
    assert curl(sock, "PUT", "/network-interfaces/eth0", {
        "iface_id": "eth0", "host_dev_name": "cvtap0", "guest_mac": "06:00:ac:10:00:02"})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    out, status = g.run("ip link set eth0 up; ip addr add 10.98.0.2/24 dev eth0; "
                        "cat /sys/class/net/eth0/address; ping -c 1 -W 5 10.98.0.1")
    assert "06:00:ac:10:00:02" in out and status == 0, g.describe()
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_patch_drive_path_switches_the_running_disk(api_vm, kernel, initrd, tmp_path):
    """Firecracker's PATCH /drives/ID with a new path_on_host: the running
    guest reads the new file, is told its new size, and a snapshot taken
    afterwards names the new file."""
    g, sock = api_vm
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    old.write_bytes(b"OLD-CONTENT".ljust(1 << 20, b"\0"))
    new.write_bytes(b"NEW-CONTENT".ljust(3 << 20, b"\0"))
    configure(sock, kernel, initrd)
    assert curl(sock, "PUT", "/drives/data", {"drive_id": "data", "path_on_host": str(old),
                                              "is_root_device": False, "is_read_only": False})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready()
    out, _ = g.run("head -c 11 /dev/vda; echo; cat /sys/block/vda/size")
    assert "OLD-CONTENT" in out and "2048" in out.split(), out
    status, body = curl(sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": str(tmp_path / "nope")})
    assert status == 400 and "nope" in body["fault_message"], body
    assert curl(sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": str(new)})[0] == 204
    # The guest hears of the new size through a configuration interrupt.
    out, _ = g.run("for i in $(seq 50); do [ $(cat /sys/block/vda/size) = 6144 ] && break; sleep 0.1; done; "
                   "echo 3 > /proc/sys/vm/drop_caches; head -c 11 /dev/vda; echo; cat /sys/block/vda/size")
    assert "NEW-CONTENT" in out and "6144" in out.split(), out
    status, cfg = curl(sock, "GET", "/vm/config")
    assert cfg["drives"][0]["path_on_host"] == str(new), cfg
    _, status = g.run("echo written-after > /tmp/x && dd if=/tmp/x of=/dev/vda bs=512 seek=100 conv=fsync 2>/dev/null")
    assert status == 0, g.describe()
    assert b"written-after" in new.read_bytes() and b"written-after" not in old.read_bytes()
