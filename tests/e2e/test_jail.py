"""`cellvm jail`: a VM booted in a jail sees only its root directory, runs
as an unprivileged user with no capabilities in namespaces of its own,
under its resource limits and seccomp filters, and still serves its API.
Bad values exit 2 with one line."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, cpu_seconds, require_bin

pytestmark = pytest.mark.vm

NOBODY = 65534


def jail_root(tmp_path, kernel, initrd, jid):
    """The root a jail `jid` under tmp_path uses, holding the kernel and initrd."""
    root = tmp_path / "cellvm" / jid / "root"
    root.mkdir(parents=True)
    for src, name in ((kernel, "vmlinux"), (initrd, "initrd")):
        shutil.copyfile(src, root / name)
        os.chmod(root / name, 0o644)
    for d in (tmp_path, tmp_path / "cellvm", tmp_path / "cellvm" / jid):
        os.chmod(d, 0o755)
    return root


def jailed(spawn, tmp_path, jid, jail_opts=(), run_opts=()):
    g = spawn([require_bin(), "jail", "--id", jid, "--uid", str(NOBODY), "--gid", str(NOBODY),
               "--chroot-base-dir", str(tmp_path), *jail_opts, "--",
               "--kernel", "/vmlinux", "--initrd", "/initrd", "--cmdline", DEFAULT_CMDLINE, *run_opts])
    g.wait_ready(BOOT_TIMEOUT)
    return g


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(re.findall(r"^(\w+):\s*(.*)$", f.read(), re.M))


def vmm_pid(g):
    """The VMM: the jail's process itself, or its child in a new PID namespace."""
    with open(f"/proc/{g.proc.pid}/task/{g.proc.pid}/children") as f:
        kids = f.read().split()
    return int(kids[0]) if kids else g.proc.pid


def test_jailed_vm(spawn, kernel, initrd, kvm_available, tmp_path):
    root = jail_root(tmp_path, kernel, initrd, "vm-1")
    disk = root / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    os.chown(disk, NOBODY, NOBODY)
    g = jailed(spawn, tmp_path, "vm-1", ["--new-pid-ns", "--resource-limit", "no-file=512"],
               ["--api-sock", "/api.sock", "--disk", "/disk.img"])
    out, rc = g.run("echo jailed-guest | dd of=/dev/vda bs=512 conv=sync,fsync 2>&1 && echo wrote", 60)
    assert rc == 0 and "wrote" in out, out
    with open(disk, "rb") as f:
        assert f.read(12) == b"jailed-guest"
    pid = vmm_pid(g)
    assert pid != g.proc.pid, "no VMM child in a new PID namespace"
    st = status(pid)
    assert st["Uid"].split() == [str(NOBODY)] * 4 and st["Gid"].split() == [str(NOBODY)] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[caps], 16) == 0, (caps, st[caps])
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2"
    assert len(st["NSpid"].split()) == 2 and st["NSpid"].split()[1] == "1", st["NSpid"]
    for ns in ("mnt", "ipc", "uts", "pid"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    # Its whole filesystem is the jail's root.
    assert sorted(os.listdir(f"/proc/{pid}/root")) == ["api.sock", "dev", "disk.img", "initrd", "run", "vmlinux"]
    assert sorted(os.listdir(f"/proc/{pid}/root/dev")) == ["kvm", "net", "null", "urandom"]
    with open(f"/proc/{pid}/limits") as f:
        assert re.search(r"^Max open files\s+512\s+512", f.read(), re.M)
    # The API socket, made inside, is reachable from the host.
    res = subprocess.run(["curl", "-s", "--unix-socket", str(root / "api.sock"), "http://localhost/"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(res.stdout)["state"] == "Running", res.stdout
    g.signal(15)
    assert g.wait_exit() == 0


def test_jailed_in_netns_with_tap(spawn, kernel, initrd, kvm_available, tmp_path):
    """Joined to a network namespace, the jailed VMM (no CAP_NET_ADMIN)
    uses a tap made there beforehand for its user, and the guest reaches
    the namespace through it."""
    name = f"cvjail{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["ip", "tuntap", "add", "cvt0", "mode", "tap", "user", str(NOBODY), "vnet_hdr"],
                    ["ip", "addr", "add", "10.99.0.1/24", "dev", "cvt0"], ["ip", "link", "set", "cvt0", "up"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        jail_root(tmp_path, kernel, initrd, "net-1")
        g = jailed(spawn, tmp_path, "net-1", ["--netns", f"/var/run/netns/{name}"], ["--net", "tap=cvt0"])
        pid = vmm_pid(g)
        assert pid == g.proc.pid  # no new PID namespace asked for
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/var/run/netns/{name}").st_ino
        assert status(pid)["Uid"].split()[0] == str(NOBODY)
        out, rc = g.run("ip addr add 10.99.0.2/24 dev eth0 && ip link set eth0 up && ping -c 2 -W 5 10.99.0.1", 90)
        assert rc == 0, out
        assert "could not bring" not in g.stderr
        g.close()
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_jailed_in_cgroups(spawn, kernel, initrd, kvm_available, tmp_path):
    """--cgroup settings land in PARENT/ID of each controller (v1 or v2,
    whichever the host has), the VMM runs in them, its CPU is capped at the
    quota, and the cgroups go when it ends."""
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    cpu = sorted(os.sched_getaffinity(0))[-1]
    jid = f"cg-{os.getpid()}"
    if v2:
        settings = {"cpu.max": "50000 100000", "memory.max": "1073741824", "pids.max": "64", "cpuset.cpus": str(cpu)}
        dirs = {c: f"/sys/fs/cgroup/cellvm-test/{jid}" for c in ("cpu", "memory", "pids", "cpuset")}
    else:
        settings = {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "memory.limit_in_bytes": "1073741824",
                    "pids.max": "64", "cpuset.cpus": str(cpu)}
        dirs = {c: f"/sys/fs/cgroup/{c}/cellvm-test/{jid}" for c in ("cpu", "memory", "pids", "cpuset")}
    jail_root(tmp_path, kernel, initrd, jid)
    opts = ["--parent-cgroup", "cellvm-test", "--new-pid-ns"]
    for k, v in settings.items():
        opts += ["--cgroup", f"{k}={v}"]
    g = jailed(spawn, tmp_path, jid, opts)
    pid = vmm_pid(g)
    with open(f"/proc/{pid}/cgroup") as f:
        mine = f.read()
    assert mine.count(f"/cellvm-test/{jid}") >= (1 if v2 else 4), mine
    for k, v in settings.items():
        with open(f"{dirs[k.split('.')[0]]}/{k}") as f:
            assert f.read().strip() == v, k
    with open(f"/proc/{pid}/status") as f:
        assert re.search(rf"^Cpus_allowed_list:\s+{cpu}$", f.read(), re.M)
    g.send("while :; do :; done &")
    g.run("echo spinning", 60)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(4)
    used = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
    assert 0.1 < used < 0.5 + 0.12, f"VMM used {used:.2f} of a CPU under a 50% cgroup quota"
    g.signal(15)
    assert g.wait_exit() == 0
    for d in set(dirs.values()):
        assert not os.path.exists(d), d


def test_bad_cgroup(kernel, tmp_path):
    res = subprocess.run([str(require_bin()), "jail", "--id", "bad-cg", "--uid", "1", "--gid", "1",
                          "--chroot-base-dir", str(tmp_path), "--parent-cgroup", "cellvm-test",
                          "--cgroup", "pids.nonsense=5", "--", "--kernel", "/k"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "invalid --cgroup 'pids.nonsense=5'" in res.stderr, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert not os.path.exists("/sys/fs/cgroup/pids/cellvm-test/bad-cg")
    assert not os.path.exists("/sys/fs/cgroup/cellvm-test/bad-cg")


def test_jail_hides_host_files(spawn, kernel, initrd, kvm_available, tmp_path):
    """A path that exists on the host is not there for the jailed VMM."""
    assert os.path.exists("/etc/hostname")
    jail_root(tmp_path, kernel, initrd, "hide-1")
    g = spawn([require_bin(), "jail", "--id", "hide-1", "--uid", str(NOBODY), "--gid", str(NOBODY),
               "--chroot-base-dir", str(tmp_path), "--", "--kernel", "/vmlinux", "--initrd", "/initrd",
               "--disk", "/etc/hostname"])
    assert g.wait_exit() == 2
    assert "cannot open disk '/etc/hostname': No such file or directory" in g.stderr, g.stderr


@pytest.mark.parametrize("args, want", [
    (["--uid", "1", "--gid", "1", "--", "--kernel", "/k"], "needs --id, --uid and --gid"),
    (["--id", "../x", "--uid", "1", "--gid", "1", "--"], "invalid --id '../x'"),
    (["--id", "a", "--uid", "nobody", "--gid", "1", "--"], "invalid --uid 'nobody'"),
    (["--id", "a", "--uid", "1", "--gid", "1"], "needs '--'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--resource-limit", "cpu=5", "--"], "invalid --resource-limit 'cpu=5'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--chroot-base-dir", "rel", "--"], "must be an absolute path"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--bogus", "--"], "unknown option '--bogus'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "../x=1", "--"], "invalid --cgroup '../x=1'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--cgroup", "cpu.max", "--"], "invalid --cgroup 'cpu.max'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--cgroup-version", "3", "--"], "invalid --cgroup-version '3'"),
])
def test_bad_jail_options(args, want):
    res = subprocess.run([str(require_bin()), "jail", *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and want in res.stderr, res.stderr


def test_bad_netns(tmp_path):
    res = subprocess.run([str(require_bin()), "jail", "--id", "a", "--uid", "1", "--gid", "1", "--chroot-base-dir",
                          str(tmp_path), "--netns", str(tmp_path / "none"), "--", "--kernel", "/k"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "invalid --netns" in res.stderr, res.stderr
    assert not (tmp_path / "cellvm").exists()
