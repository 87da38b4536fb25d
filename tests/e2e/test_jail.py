"""`cellvm jail`: a VM booted in a jail sees only its root directory, runs
as an unprivileged user with no capabilities in namespaces of its own,
under its resource limits and seccomp filters, and still serves its API.
Bad values exit 2 with one line."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin

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
    g = jailed(spawn, tmp_path, "vm-1", ["--new-pid-ns", "--resource-limit", "no-file=512"],
               ["--api-sock", "/api.sock"])
    out, rc = g.run("echo jailed-guest", 60)
    assert rc == 0 and "jailed-guest" in out
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
    assert sorted(os.listdir(f"/proc/{pid}/root")) == ["api.sock", "dev", "initrd", "vmlinux"]
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


@pytest.mark.parametrize("args, want", [
    (["--uid", "1", "--gid", "1", "--", "--kernel", "/k"], "needs --id, --uid and --gid"),
    (["--id", "../x", "--uid", "1", "--gid", "1", "--"], "invalid --id '../x'"),
    (["--id", "a", "--uid", "nobody", "--gid", "1", "--"], "invalid --uid 'nobody'"),
    (["--id", "a", "--uid", "1", "--gid", "1"], "needs '--'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--resource-limit", "cpu=5", "--"], "invalid --resource-limit 'cpu=5'"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--chroot-base-dir", "rel", "--"], "must be an absolute path"),
    (["--id", "a", "--uid", "1", "--gid", "1", "--bogus", "--"], "unknown option '--bogus'"),
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
