"""Guest RAM back-ends (`--memory SIZE,OPTIONS`): a memfd, a file the host
can read the guest's memory from, 2M huge pages from the host's pool
(reserved by the test), transparent huge pages, everything touched up
front, a NUMA node, and KSM merging the pages of guests marked
merge=on. Bad requests exit 2 with one line naming the value."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, refused, require_bin, vm_args

pytestmark = pytest.mark.vm

CHECKSUM = ("dd if=/dev/urandom of=/dev/shm/blob bs=1M count=48 2>/dev/null && md5sum /dev/shm/blob > /tmp/sum "
            "&& md5sum -c /tmp/sum")


def boot(spawn, kernel, initrd, memory, extra=()):
    """A guest at its prompt; cellvm's boot trace tells where its RAM is."""
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, memory, extra=extra), env={"CELLVM_BOOT_TRACE": "1"})
    g.wait_ready(BOOT_TIMEOUT)
    return g


def works(g):
    """The guest's memory holds what it wrote: 48 MiB checked by md5sum."""
    out, status = g.run(CHECKSUM, 120)
    assert status == 0 and ": OK" in out, g.describe()


def ram_smaps(g):
    """The smaps entries of the guest's RAM (a file mapped into it, as the
    kernel is, splits it into several): [(first line, {field: kB})]."""
    m = re.search(r"guest-ram 0x([0-9a-f]+)\+(\d+)", g.stderr)
    start, size = int(m.group(1), 16), int(m.group(2))
    with open(f"/proc/{g.proc.pid}/smaps") as f:
        text = f.read()
    out = []
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", text):
        lo, hi = (int(x, 16) for x in block.split()[0].split("-"))
        if start <= lo and hi <= start + size:
            fields = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", block, re.M)}
            out.append((block.splitlines()[0], fields))
    assert out, f"no mapping of the guest's RAM at {start:#x} in smaps"
    return out


def ram_kb(g, name):
    return sum(f.get(name, 0) for _, f in ram_smaps(g))


def test_memfd_backend(spawn, kernel, initrd, kvm_available):
    g = boot(spawn, kernel, initrd, "256M,backend=memfd")
    assert all("memfd:cellvm-ram" in line for line, _ in ram_smaps(g)), ram_smaps(g)
    works(g)


def test_file_backend_holds_the_guests_memory(spawn, tmp_path, kernel, initrd, kvm_available):
    """The RAM is the file (shared): what the guest writes the host reads."""
    ram = tmp_path / "ram"
    g = boot(spawn, kernel, initrd, f"128M,file={ram}")
    assert ram.stat().st_size == 128 << 20
    out, status = g.run("echo CELLVM-MARK-$((6*7))-IN-RAM > /dev/shm/mark; sync")
    assert status == 0, g.describe()
    deadline = time.monotonic() + 30
    while b"CELLVM-MARK-42-IN-RAM" not in ram.read_bytes():
        assert time.monotonic() < deadline, "the guest's write never reached the file"
        time.sleep(0.2)
    works(g)


def test_file_backend_refusals(tmp_path, kernel, initrd):
    small = tmp_path / "small"
    small.write_bytes(b"\0" * (1 << 20))
    refused(["--kernel", kernel, "--memory", f"64M,file={small}"], str(small), "1048576 bytes")
    refused(["--kernel", kernel, "--memory", f"64M,file={tmp_path}"], str(tmp_path))
    refused(["--kernel", kernel, "--memory", f"64M,file={tmp_path}/no/such/dir/ram"], "no/such/dir")


@pytest.fixture
def hugepages():
    """Reserves 2M pages for the test (and gives them back after)."""
    path = "/proc/sys/vm/nr_hugepages"
    if not os.access(path, os.W_OK):
        pytest.skip("cannot reserve huge pages (not root)")
    before = open(path).read().strip()

    def reserve(n):
        with open(path, "w") as f:
            f.write(str(n))
        return int(open(path).read())

    yield reserve
    reserve(before)


def test_hugetlb_pages(spawn, kernel, initrd, kvm_available, hugepages):
    if hugepages(64) < 64:
        pytest.skip("the host could not reserve 64 huge pages of 2 MiB")
    g = boot(spawn, kernel, initrd, "128M,hugepages=2M")
    assert all(f["KernelPageSize"] == 2048 for _, f in ram_smaps(g)), ram_smaps(g)
    works(g)
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()

    # Fewer free than the guest needs: the shortfall, by name.
    hugepages(10)
    refused(["--kernel", kernel, "--memory", "128M,hugepages=2M"], "needs 64 pages of 2M", "has 10 free",
            "nr_hugepages")


def test_transparent_huge_pages(spawn, kernel, initrd, kvm_available):
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        if "[never]" in f.read():
            pytest.skip("transparent huge pages are off on this host")
    g = boot(spawn, kernel, initrd, "256M,hugepages=thp,prealloc=on")
    assert ram_kb(g, "AnonHugePages") > 0, ram_smaps(g)
    works(g)


def test_prealloc_touches_every_page(spawn, kernel, initrd, kvm_available):
    g = boot(spawn, kernel, initrd, "128M,prealloc=on")
    assert ram_kb(g, "Rss") >= 120 << 10, ram_smaps(g)  # all but the kernel's file-backed pages
    works(g)


def test_numa_node(spawn, kernel, initrd, kvm_available):
    g = boot(spawn, kernel, initrd, "128M,node=0")
    works(g)
    refused(["--kernel", kernel, "--memory", "128M,node=999"], "node=999", "no such NUMA node")


def test_bad_memory_options(kernel):
    for value, want in (("512M,hugepages=3M", "'3M'"), ("512M,backend=foo", "'foo'"),
                        ("512M,merge=yes", "'yes'"), ("513M,hugepages=2M", "huge pages")):
        refused(["--kernel", kernel, "--memory", value], want)


def test_memory_options_in_the_config_file(spawn, tmp_path, kernel, initrd, kvm_available):
    """Firecracker's machine-config carries them as cellvm's memory_options;
    GET /vm/config reports them back."""
    from test_api import curl, wait_sock
    cfg = {"boot-source": {"kernel_image_path": kernel, "initrd_path": str(initrd), "boot_args": DEFAULT_CMDLINE},
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "memory_options": "backend=memfd,merge=on"}}
    path = tmp_path / "vm.json"
    path.write_text(json.dumps(cfg))
    sock = tmp_path / "api.sock"
    g = spawn([require_bin(), "run", "--config-file", path, "--api-sock", sock], env={"CELLVM_BOOT_TRACE": "1"})
    g.wait_ready(BOOT_TIMEOUT)
    wait_sock(g, sock)
    assert all("memfd:cellvm-ram" in line for line, _ in ram_smaps(g)), ram_smaps(g)
    mc = curl(sock, "GET", "/vm/config")[1]["machine-config"]
    assert mc["memory_options"] == "backend=memfd,merge=on" and mc["huge_pages"] == "None", mc


KSM = "/sys/kernel/mm/ksm"


@pytest.fixture
def ksm():
    """Starts KSM, fast, when called; its settings are put back after."""
    if not os.access(f"{KSM}/run", os.W_OK):
        pytest.skip("no KSM on this host (or not root)")
    keys = ("run", "pages_to_scan", "sleep_millisecs")
    before = {k: open(f"{KSM}/{k}").read().strip() for k in keys}

    def start():
        for k, v in (("pages_to_scan", "10000"), ("sleep_millisecs", "10"), ("run", "1")):
            with open(f"{KSM}/{k}", "w") as f:
                f.write(v)

    yield start
    for k in keys:
        with open(f"{KSM}/{k}", "w") as f:
            f.write(before[k])


def pss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return int(re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M).group(1))


def merging_pages(pid):
    with open(f"/proc/{pid}/ksm_merging_pages") as f:
        return int(f.read())


def test_ksm_merges_guests_marked_mergeable(spawn, kernel, initrd, kvm_available, ksm):
    """Three guests of the same kernel and initramfs with merge=on: KSM
    merges their identical pages (each process has merging pages, their
    summed PSS falls), and they keep computing right."""
    guests = [boot(spawn, kernel, initrd, "256M,merge=on") for _ in range(3)]
    before = sum(pss_kb(g.proc.pid) for g in guests)
    ksm()
    deadline = time.monotonic() + 120
    while min(merging_pages(g.proc.pid) for g in guests) < 1000:
        assert time.monotonic() < deadline, [merging_pages(g.proc.pid) for g in guests]
        time.sleep(0.5)
    after = sum(pss_kb(g.proc.pid) for g in guests)
    assert after < before, (before, after)
    for g in guests:
        works(g)
