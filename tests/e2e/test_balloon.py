"""virtio-balloon: inflating gives guest pages back to the host (its RSS
drops), deflating returns them; deflate-on-OOM; statistics that match the
guest's /proc/meminfo; free page reporting; Firecracker's /balloon API
with its pre/post-boot rules; snapshot/restore and migration of a
ballooned VM; managed VMs (`cellvm balloon`, `cellvm list`); bad values
exit 2 with one line."""

import re
import subprocess
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin, vm_args
from test_api import curl, wait_sock

pytestmark = pytest.mark.vm

MIB = 1 << 20


def rss_mib(g):
    with open(f"/proc/{g.proc.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024


def meminfo(g, field):
    out, status = g.run(f"grep '^{field}:' /proc/meminfo")
    assert status == 0, g.describe()
    return int(re.search(field + r":\s+(\d+) kB", out).group(1)) / 1024


def boot(spawn, kernel, initrd, tmp_path, memory="512M", balloon="amount=0", extra=()):
    sock = str(tmp_path / "api.sock")
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, memory,
                      extra=("--balloon", balloon, "--api-sock", sock, *extra)))
    g.wait_ready(BOOT_TIMEOUT)
    return g, sock


def settle(probe, want, timeout=60):
    """probe() until want(value) holds (the guest inflates at its pace)."""
    deadline = time.monotonic() + timeout
    while True:
        v = probe()
        if want(v) or time.monotonic() > deadline:
            return v
        time.sleep(0.5)


def actual_mib(sock):
    st, body = curl(sock, "GET", "/balloon/statistics")
    assert st == 200, body
    return body["actual_mib"]


def fill(g, mib):
    """The guest writes mib MiB (so the host backs them) and frees them."""
    out, status = g.run(f"dd if=/dev/zero of=/dev/shm/fill bs=1M count={mib} 2>&1; rm -f /dev/shm/fill", 120)
    assert status == 0, out


def test_inflate_gives_memory_back_and_deflate_returns_it(spawn, kernel, initrd, tmp_path):
    g, sock = boot(spawn, kernel, initrd, tmp_path, balloon="amount=0,stats=1")
    fill(g, 200)
    total0, rss0 = meminfo(g, "MemTotal"), rss_mib(g)
    assert curl(sock, "PATCH", "/balloon", {"amount_mib": 256})[0] == 204
    assert settle(lambda: actual_mib(sock), lambda v: v >= 256) == 256
    total1, rss1 = meminfo(g, "MemTotal"), rss_mib(g)
    print(f"inflate 256 MiB: MemTotal {total0:.0f} -> {total1:.0f} MiB, RSS {rss0:.0f} -> {rss1:.0f} MiB")
    assert total0 - total1 == pytest.approx(256, abs=8)
    assert rss0 - rss1 > 200, (rss0, rss1)
    assert curl(sock, "PATCH", "/balloon", {"amount_mib": 0})[0] == 204
    assert settle(lambda: actual_mib(sock), lambda v: v == 0) == 0
    assert meminfo(g, "MemTotal") == pytest.approx(total0, abs=1)
    fill(g, 200)  # the pages given back are usable again


def test_stats_match_meminfo(spawn, kernel, initrd, tmp_path):
    g, sock = boot(spawn, kernel, initrd, tmp_path, balloon="amount=0,stats=1")
    total = meminfo(g, "MemTotal")
    st = settle(lambda: curl(sock, "GET", "/balloon/statistics")[1], lambda b: "total_memory" in b)
    assert st["total_memory"] / MIB == pytest.approx(total, abs=8)
    free = meminfo(g, "MemFree")
    st = curl(sock, "GET", "/balloon/statistics")[1]
    assert st["free_memory"] / MIB == pytest.approx(free, abs=32)
    assert "available_memory" in st and "major_faults" in st
    assert curl(sock, "PATCH", "/balloon/statistics", {"stats_polling_interval_s": 2})[0] == 204
    assert curl(sock, "GET", "/balloon")[1]["stats_polling_interval_s"] == 2
    st, body = curl(sock, "PATCH", "/balloon/statistics", {"stats_polling_interval_s": 0})
    assert st == 400 and "Cannot enable/disable the statistics after boot." in body["fault_message"]


def test_deflate_on_oom(spawn, kernel, initrd, tmp_path):
    g, sock = boot(spawn, kernel, initrd, tmp_path, memory="256M",
                   balloon="amount=160,deflate_on_oom=on,stats=1")
    assert settle(lambda: actual_mib(sock), lambda v: v >= 160) == 160
    # 160 MiB of tmpfs does not fit beside a 160 MiB balloon in 256 MiB.
    out, status = g.run("dd if=/dev/zero of=/dev/shm/big bs=1M count=160 2>&1; echo alive", 180)
    assert "alive" in out, g.describe()
    assert actual_mib(sock) < 160
    assert "Out of memory" not in g.output


def test_free_page_reporting_returns_freed_memory(spawn, kernel, initrd, tmp_path):
    g, sock = boot(spawn, kernel, initrd, tmp_path, balloon="free_page_reporting=on")
    base = rss_mib(g)
    out, status = g.run("dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>&1", 120)
    assert status == 0, out
    full = rss_mib(g)
    g.run("rm -f /dev/shm/fill")
    after = settle(lambda: rss_mib(g), lambda v: full - v > 150, 90)
    print(f"free page reporting: RSS {base:.0f} -> {full:.0f} (200 MiB written) -> {after:.0f} MiB (freed)")
    assert full - after > 150, (base, full, after)


def test_api_pre_and_post_boot_rules(spawn, kernel, initrd, tmp_path):
    sock = str(tmp_path / "api.sock")
    g = spawn([require_bin(), "run", "--api-sock", sock, "--name", "balloontest"])
    wait_sock(g, sock)
    st, body = curl(sock, "GET", "/balloon")
    assert st == 400 and body["fault_message"] == "No balloon device found."
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256})[0] == 204
    st, body = curl(sock, "PUT", "/balloon", {"amount_mib": 512, "deflate_on_oom": False})
    assert st == 400 and body["fault_message"] == "Amount of pages requested is too large."
    st, body = curl(sock, "PUT", "/balloon", {"amount_mib": 16})
    assert st == 400
    st, body = curl(sock, "PATCH", "/balloon", {"amount_mib": 16})
    assert st == 400 and "not supported before starting" in body["fault_message"]
    assert curl(sock, "PUT", "/balloon", {"amount_mib": 16, "deflate_on_oom": True,
                                          "stats_polling_interval_s": 1})[0] == 204
    assert curl(sock, "GET", "/balloon")[1] == {"amount_mib": 16, "deflate_on_oom": True,
                                                "stats_polling_interval_s": 1, "free_page_reporting": False}
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready(BOOT_TIMEOUT)
    st, body = curl(sock, "PUT", "/balloon", {"amount_mib": 0, "deflate_on_oom": False})
    assert st == 400 and "not supported after starting" in body["fault_message"]
    assert settle(lambda: actual_mib(sock), lambda v: v == 16) == 16
    st, body = curl(sock, "PATCH", "/balloon", {"amount_mib": 1024})
    assert st == 400 and body["fault_message"] == "Amount of pages requested is too large."
    assert curl(sock, "PATCH", "/balloon", {"amount_mib": 32})[0] == 204
    assert curl(sock, "GET", "/balloon")[1]["amount_mib"] == 32
    assert curl(sock, "GET", "/vm/config")[1]["balloon"]["amount_mib"] == 32


def test_snapshot_restore_of_a_ballooned_vm(spawn, kernel, initrd, tmp_path):
    g, sock = boot(spawn, kernel, initrd, tmp_path, memory="256M", balloon="amount=64,stats=1")
    assert settle(lambda: actual_mib(sock), lambda v: v == 64) == 64
    total = meminfo(g, "MemTotal")
    snap = tmp_path / "snap"
    snap.mkdir()
    assert curl(sock, "PATCH", "/vm", {"state": "Paused"})[0] == 204
    st, body = curl(sock, "PUT", "/snapshot/create", {"snapshot_path": str(snap / "state"),
                                                       "mem_file_path": str(snap / "memory")})
    assert st == 204, body
    g.close()
    sock2 = str(tmp_path / "api2.sock")
    g2 = spawn([require_bin(), "run", "--restore", str(snap), "--api-sock", sock2])
    wait_sock(g2, sock2)
    g2.send("")
    assert meminfo(g2, "MemTotal") == pytest.approx(total, abs=1)
    assert curl(sock2, "GET", "/balloon")[1]["amount_mib"] == 64
    assert actual_mib(sock2) == 64
    assert curl(sock2, "PATCH", "/balloon", {"amount_mib": 0})[0] == 204
    assert settle(lambda: actual_mib(sock2), lambda v: v == 0) == 0
    assert meminfo(g2, "MemTotal") == pytest.approx(total + 64, abs=1)


@pytest.mark.parametrize("value,named", [
    ("amount=1024", "1024"), ("amount=abc", "abc"), ("stats=-1", "-1"), ("deflate_on_oom=yes", "yes"),
    ("bogus=1", "bogus"), ("amount", "amount"),
])
def test_bad_values_exit_2(kernel, value, named):
    res = subprocess.run([str(require_bin()), "run", "--kernel", kernel, "--memory", "512M", "--balloon", value],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and named in res.stderr, res.stderr


def test_help_names_balloon():
    res = subprocess.run([str(require_bin()), "run", "--help"], capture_output=True, text=True, timeout=60)
    assert "--balloon" in res.stdout + res.stderr


def test_managed_vm_balloon_and_list(tmp_path, kernel, initrd, kvm_available):
    from test_manager import Manager, create, wait_state
    m = Manager(tmp_path / "home")
    try:
        create(m, "bal", kernel, initrd, "--balloon", "amount=0,stats=1", check=0)
        m("start", "bal", check=0)
        wait_state(m, "bal", "running")
        vm = settle(lambda: m.list()["bal"], lambda v: v["guest_free_mib"] is not None)
        assert vm["balloon_mib"] == 0 and 0 < vm["guest_free_mib"] < 256 and vm["rss_kib"] > 0, vm
        m("balloon", "bal", "64M", check=0)
        vm = settle(lambda: m.list()["bal"], lambda v: v["balloon_mib"] == 64)
        assert vm["balloon_mib"] == 64, vm
        assert "BALLOON" in m("list", check=0).stdout
        res = m("balloon", "bal", "1G")
        assert res.returncode != 0 and "too large" in res.stderr, res.stderr
        res = m("balloon", "bal", "lots")
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "lots" in res.stderr, res.stderr
        res = create(m, "big", kernel, initrd, "--balloon", "amount=512")
        assert res.returncode == 2 and "512" in res.stderr, res.stderr
    finally:
        m.cleanup()


def test_migration_carries_the_balloon(spawn, kernel, initrd, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g, sock = boot(spawn, kernel, initrd, tmp_path, memory="256M", balloon="amount=32,stats=1")
    assert settle(lambda: actual_mib(sock), lambda v: v == 32) == 32
    dsock = str(tmp_path / "dest.sock")
    d = spawn([require_bin(), "run", "--incoming", f"tcp:127.0.0.1:{port}", "--migrate-token", "tok",
               "--api-sock", dsock])
    wait_sock(d, dsock)
    st, body = curl(sock, "PUT", "/migrate", {"destination": f"tcp:127.0.0.1:{port}", "token": "tok"})
    assert st == 204, body
    # The source ends once the VM runs there; the destination then has the balloon.
    st, body = settle(lambda: curl(dsock, "GET", "/balloon/statistics"), lambda r: r[0] == 200)
    assert st == 200, body
    assert curl(dsock, "GET", "/balloon")[1]["amount_mib"] == 32
    assert actual_mib(dsock) == 32
    assert curl(dsock, "PATCH", "/balloon", {"amount_mib": 0})[0] == 204
    assert settle(lambda: actual_mib(dsock), lambda v: v == 0) == 0
