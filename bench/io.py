#!/usr/bin/env python3
"""cellvm I/O benchmark (issue 4): prints numbers, asserts nothing.

One command:
    /usr/bin/python3 bench/io.py --cellvm build/cellvm --kernel K --initrd I

Needs root (network namespace, tap), gcc with static glibc, and /dev/kvm; a
host without a usable /dev/kvm gets one line saying so and exit status 0.

Disk: bench/guest/iobench.c (built here with gcc -static) runs inside the guest
against /dev/vda, a raw image file on the host (written once with random data),
with O_DIRECT so the guest page cache does not hide the device: sequential
1 MiB reads and writes (MB/s; the write ends with fdatasync, i.e. a virtio-blk
flush) and 4 KiB random reads at queue depth 1 and 32 (IOPS; Linux native AIO,
one thread). The same binary runs on the host against the same file, with
O_DIRECT (the reference for the guest/host ratios) and buffered (the host page
cache, which is what the VMM's own back-end goes through: cellvm opens the
image without O_DIRECT, QEMU uses cache=writeback). How much of the image is in
the host page cache before each run is printed.

Network: a network namespace with a tap (host side 10.98.0.1/24, guest
10.98.0.2/24); the VMM runs inside it. TCP throughput guest->host and
host->guest (one connection, 256 KiB writes, the sender's time until the
receiver acknowledges EOF), TCP 1-byte request/response latency, and ping
(guest -> host, busybox, -c 20 -i 0.2). The namespace is removed at the end,
also on failure or Ctrl-C.

Calibration in the guest: the cost of one system call (getppid) and of the
same QD1 random reads on a RAM-backed file (no device): on a PVM host the guest
kernel's own system call path is a large part of every guest figure.

Each figure is measured --reps times (median printed, min..max beside it), each
time a fixed amount of work capped at --time seconds. Each VMM/transport pair
is one boot doing all guest-side figures in a row. QEMU (`-M q35` with
virtio-*-pci, `-M microvm` with virtio-*-device, tap without vhost) runs the
same guest where it can boot --qemu-kernel (default: --kernel; QEMU needs a
PVH ELF vmlinux or a bzImage, and on this PVM host `-cpu host,-arch-capabilities`);
otherwise one line says "qemu could not boot <kernel>: <reason>".

Disk queues and polling: cellvm also boots once per --disk-variants entry
(';'-separated --disk options, default "poll_us=50;queues=2,poll_us=50"),
each a row of its own beside the default disk's, named by its options. The
guest has --cpus vCPUs (QEMU the same -smp): the guest's virtio-blk driver
uses at most one queue per CPU, so queues=N shows only with --cpus N.
"""
import argparse
import atexit
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CMDLINE = "console=ttyS0 reboot=k panic=-1 pti=on quiet"
HOST_IP, GUEST_IP = "10.98.0.1", "10.98.0.2"
TAP = "cvbtap0"
PORT_G2H, PORT_H2G, PORT_RR = 5201, 5202, 5203

DISK_FIGS = [  # key, label, unit, field of the IOBENCH line
    ("seqread", "seq read 1M", "MB/s", "MBps"),
    ("seqwrite", "seq write 1M", "MB/s", "MBps"),
    ("rand1", "rand read 4K QD1", "IOPS", "iops"),
    ("rand32", "rand read 4K QD32", "IOPS", "iops"),
]
NET_FIGS = [
    ("g2h", "TCP guest->host", "MB/s", "MBps"),
    ("h2g", "TCP host->guest", "MB/s", "MBps"),
    ("rr", "TCP RR 1B avg", "us", "lat_avg_us"),
    ("ping", "ping avg", "ms", "avg_ms"),
]


def log(msg):
    print(msg, flush=True)


def loadavg():
    return "load %.2f %.2f %.2f" % os.getloadavg()


def parse_kv(line):
    """key=value pairs of an IOBENCH line."""
    out = {}
    for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line):
        v = v.strip('"')
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


# ---------------------------------------------------------------- setup

def build_tool(work):
    src = os.path.join(HERE, "guest", "iobench.c")
    exe = os.path.join(work, "iobench")
    r = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", exe, src], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"io.py: cannot build {src} (gcc -static; Debian: libc6-dev):\n{r.stderr}")
    return exe


def newc(entries):
    """A newc cpio archive of (name, mode, data) entries, with its trailer."""
    out = bytearray()

    def one(ino, name, mode, data):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out.extend(hdr.encode() + nb)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for i, (name, mode, data) in enumerate(entries, 1):
        one(i, name, mode, data)
    one(0, "TRAILER!!!", 0, b"")
    out.extend(b"\0" * (-len(out) % 512))
    return bytes(out)


def guest_script(a):
    """/bin/iobench-run: every guest-side figure, in order, with @@STEP markers."""
    R, T = a.reps, a.time
    loop = f"for i in $(seq {R}); do"
    return f"""#!/bin/sh
step() {{ echo "@@STEP $1"; }}
D=/dev/vda
echo "@@INFO vda $(cat /sys/block/vda/size 2>/dev/null) sectors, max_sectors_kb $(cat /sys/block/vda/queue/max_sectors_kb 2>/dev/null), max_segments $(cat /sys/block/vda/queue/max_segments 2>/dev/null), nr_requests $(cat /sys/block/vda/queue/nr_requests 2>/dev/null), scheduler $(cat /sys/block/vda/queue/scheduler 2>/dev/null)"
# The guest's own floor: one system call, and the same random reads on a
# RAM-backed file (no device, no VMM).
{loop} step sys; iobench nullsys -n 20000 -t {T} || break; done
dd if=/dev/zero of=/tmp/floor bs=1M count=64 2>/dev/null
{loop} step floor1; iobench randread /tmp/floor -q 1 -n {a.rand_ops} -t {T} -B || break; done
rm -f /tmp/floor
if [ -b $D ]; then
{loop} step seqread; iobench seqread $D -n {a.seq_read_mib}M -t {T} || break; done
{loop} step rand1; iobench randread $D -q 1 -n {a.rand_ops} -t {T} || break; done
{loop} step rand32; iobench randread $D -q 32 -n {a.rand_ops_qd} -t {T} || break; done
{loop} step seqwrite; iobench seqwrite $D -n {a.seq_write_mib}M -t {T} || break; done
else echo "@@INFO no /dev/vda"; fi
ip link set lo up
if ip link set eth0 up 2>/dev/null && ip addr add {GUEST_IP}/24 dev eth0; then
ping -c 3 -W 5 {HOST_IP} >/dev/null 2>&1
{loop} step g2h; iobench tcp-send {HOST_IP} {PORT_G2H} -n {a.net_mib}M -t {T} || break; done
{loop} step rr; iobench tcp-rr {HOST_IP} {PORT_RR} -n {a.rr_ops} -t {T} || break; done
step ping; ping -c {a.pings} -i 0.2 -w {int(a.pings * 0.2 + 10)} {HOST_IP} | tail -n 1 | sed 's/^/@@PING /'
# Last: a receive stall here must not take the other figures with it.
{loop} step h2g; iobench tcp-recv {PORT_H2G} -t {int(T + 10)} || break; done
else echo "@@INFO no eth0"; fi
"""


def extend_initrd(src, tool, files, path):
    """Writes to path the initramfs src with /bin/iobench (the built tool;
    None: none) and files, (name, mode, data) entries, appended as a second
    cpio archive (the kernel unpacks concatenated archives in turn); returns
    path."""
    with open(src, "rb") as f:
        base = f.read()
    base += b"\0" * (-len(base) % 4)
    exes = []
    if tool:
        with open(tool, "rb") as f:
            exes.append(("bin/iobench", 0o100755, f.read()))
    extra = newc([*exes, *files])
    with open(path, "wb") as f:
        f.write(base + extra)
    return path


def make_initrd(a, work, tool, src, tag):
    """The given initramfs with /bin/iobench and /bin/iobench-run appended."""
    return extend_initrd(src, tool, [("bin/iobench-run", 0o100755, guest_script(a).encode())],
                         os.path.join(work, f"initrd-iobench-{tag}.cpio"))


def make_image(path, mib):
    if os.path.exists(path) and os.path.getsize(path) == mib << 20:
        log(f"image {path}: reusing ({mib} MiB)")
        return
    log(f"image {path}: writing {mib} MiB of random data")
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())


def cached_pct(path):
    r = subprocess.run(["fincore", "-nb", "-o", "RES,SIZE", path], capture_output=True, text=True)
    try:
        res, size = map(int, r.stdout.split())
        return 100.0 * res / size
    except ValueError:
        return None


class Netns:
    """A network namespace for the host end of the guest's network; what
    links it holds is up to add_links and del_links (here: TAP)."""
    prefix = "cvbench"

    def __init__(self):
        self.name = f"{self.prefix}{os.getpid()}"
        self.up = False

    def ip(self, *args):
        subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True)

    def create(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.up = True
        self.ip("link", "set", "lo", "up")
        self.add_links()

    def add_links(self):
        self.ip("tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr")
        self.ip("addr", "add", f"{HOST_IP}/24", "dev", TAP)
        self.ip("link", "set", TAP, "up")

    def wrap(self, argv):
        return ["ip", "netns", "exec", self.name, *[str(a) for a in argv]]

    def destroy(self):
        if not self.up:
            return
        self.up = False
        self.del_links()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def del_links(self):
        subprocess.run(["ip", "-n", self.name, "link", "del", TAP], capture_output=True)


# ---------------------------------------------------------------- host side

def host_disk(a, tool, image):
    """{'odirect': {fig: [values]}, 'buffered': {...}}"""
    res = {}
    for mode, flag in (("odirect", []), ("buffered", ["-B"])):
        figs = {}
        for key, cmd in (("seqread", ["seqread", "-n", f"{a.seq_read_mib}M"]),
                         ("rand1", ["randread", "-q", "1", "-n", str(a.rand_ops)]),
                         ("rand32", ["randread", "-q", "32", "-n", str(a.rand_ops_qd)]),
                         ("seqwrite", ["seqwrite", "-n", f"{a.seq_write_mib}M"])):
            for _ in range(a.reps):
                r = subprocess.run([tool, cmd[0], image, *cmd[1:], "-t", str(a.time), *flag],
                                   capture_output=True, text=True, timeout=a.time * 4 + 30)
                line = next((l for l in r.stdout.splitlines() if l.startswith("IOBENCH mode=")), None)
                if line:
                    figs.setdefault(key, []).append(parse_kv(line))
                else:
                    log(f"host {mode} {key} failed: {(r.stdout + r.stderr).strip()}")
        res[mode] = figs
    for _ in range(a.reps):
        r = subprocess.run([tool, "nullsys", "-n", "2000000", "-t", str(a.time)], capture_output=True, text=True)
        line = next((l for l in r.stdout.splitlines() if l.startswith("IOBENCH mode=")), None)
        if line:
            res["odirect"].setdefault("sys", []).append(parse_kv(line))
    return res


# ---------------------------------------------------------------- guest side

class VMRun:
    """One boot of a VMM running /bin/iobench-run, with the host-side peers of
    the network steps started as the guest reaches them."""

    def __init__(self, name, argv, ns, tool, a):
        self.name, self.argv, self.ns, self.tool, self.a = name, argv, ns, tool, a
        self.figs = {}     # key -> [kv dicts]
        self.info = []
        self.peers = []    # (step, Popen)
        self.error = None
        self.failed = set()  # steps with an error

    def peer(self, step, argv):
        p = subprocess.Popen(self.ns.wrap([self.tool, *argv]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        self.peers.append((step, p))

    def on_line(self, step, line):
        if line.startswith("@@STEP "):
            step = line.split()[1]
            if step == "g2h":
                self.peer(None, ["tcp-recv", str(PORT_G2H), "-t", str(int(self.a.time + 15))])
            elif step == "rr":
                self.peer(None, ["tcp-echo", str(PORT_RR), "-t", str(int(self.a.time + 15))])
            return step
        if line.startswith("@@INFO "):
            self.info.append(line[7:])
        elif line.startswith("@@PING "):
            m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", line)
            if m:
                self.figs.setdefault("ping", []).append(
                    {"min_ms": float(m.group(1)), "avg_ms": float(m.group(2)), "max_ms": float(m.group(3))})
        elif line.startswith("IOBENCH listening=") and step == "h2g":
            self.peer("h2g", ["tcp-send", GUEST_IP, str(PORT_H2G), "-n", f"{self.a.net_mib}M",
                              "-t", str(self.a.time)])
        elif line.startswith("IOBENCH error="):
            self.info.append(f"step {step} failed in the guest: {line[8:]}")
            self.failed.add(step)
        elif line.startswith("IOBENCH mode=") and step and step != "h2g":
            self.figs.setdefault(step, []).append(parse_kv(line))
        return step

    def run(self):
        a = self.a
        t0 = time.monotonic()
        p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, err, buf, step = b"", b"", b"", None
        ready = done = False
        deadline = t0 + a.boot_timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    if not ready:
                        self.error = f"no /init marker within {a.boot_timeout:.0f} s"
                    else:
                        self.error = f"guest did not finish within {a.run_timeout:.0f} s (step {step})"
                    break
                r, _, _ = select.select([p.stdout, p.stderr], [], [], min(left, 1.0))
                if not r and p.poll() is not None:
                    break
                eof = False
                for f in r:
                    chunk = os.read(f.fileno(), 65536)
                    if not chunk:
                        eof = True
                        continue
                    if f is p.stderr:
                        err += chunk
                        continue
                    out += chunk
                    buf += chunk
                    while b"\n" in buf:
                        raw, buf = buf.split(b"\n", 1)
                        line = raw.decode(errors="replace").strip("\r\x00 ")
                        # Kernel messages may share a line with ours.
                        m = re.search(r"(@@\w+ .*|IOBENCH .*|CELLVM-INIT-READY|CELLVM-CMD-EXIT=\d+)", line)
                        if not m:
                            continue
                        line = m.group(1)
                        if line == "CELLVM-INIT-READY" and not ready:
                            ready = True
                            deadline = time.monotonic() + a.run_timeout
                        elif line.startswith("CELLVM-CMD-EXIT="):
                            done = True
                        else:
                            step = self.on_line(step, line)
                if done:
                    break
                if eof and p.poll() is not None:
                    break
            if not ready and not self.error:
                lines = [l for l in (err.decode(errors="replace").strip().splitlines() or
                                     out.decode(errors="replace").strip().splitlines()) if l.strip()]
                self.error = (f"exited with status {p.poll()} before /init: "
                              + (lines[-1].strip() if lines else "no output"))
            elif ready and not done and not self.error:
                self.error = f"exited with status {p.poll()} during step {step}"
        finally:
            if p.poll() is None:
                try:
                    p.wait(5 if done else 0.1)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            for f in (p.stdout, p.stderr):
                f.close()
            for pstep, peer in self.peers:
                for l in drain(peer, 5):
                    if pstep and l.startswith("IOBENCH mode="):
                        self.figs.setdefault(pstep, []).append(parse_kv(l))
                    elif l.startswith("IOBENCH error="):
                        if pstep:
                            self.failed.add(pstep)
                        self.info.append(f"host peer of a network step failed: {l[8:]}")
        self.wall = time.monotonic() - t0
        self.ready = ready
        self.stderr = err.decode(errors="replace")
        return self


def drain(p, timeout):
    """The output lines of a peer process, killed if it is not done in time."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out.splitlines()


def cellvm_argv(a, transport, initrd, image, ns, disk_opts=""):
    initrd = initrd["cellvm"]
    disk = f"{image},{disk_opts}" if disk_opts else image
    return ns.wrap([a.cellvm, "run", "--kernel", a.kernel, "--initrd", initrd, "--memory", f"{a.memory}M",
                    "--cpus", str(a.cpus), "--disk", disk, "--transport", transport, "--net", f"tap={TAP}",
                    "--cmdline", f"{CMDLINE} -- iobench-run"])


def qemu_argv(a, transport, initrd, image, ns, disk_opts=""):
    initrd = initrd["qemu"]
    if transport == "pci":
        machine, blk, net = "q35", "virtio-blk-pci", "virtio-net-pci"
    else:
        machine, blk, net = "microvm", "virtio-blk-device", "virtio-net-device"
    # -arch-capabilities: this PVM host's KVM refuses MSR 0x10a, and QEMU 7.2
    # aborts (kvm_buf_set_msrs assertion) before running anything otherwise.
    return ns.wrap(["qemu-system-x86_64", "-M", machine, "-accel", "kvm", "-cpu", "host,-arch-capabilities",
                    "-m", f"{a.memory}M", "-smp", str(a.cpus), "-nodefaults", "-no-user-config", "-nographic",
                    "-serial", "stdio", "-no-reboot",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",  # the PVM kernel's power-off
                    "-kernel", a.qemu_kernel, "-initrd", initrd, "-append", f"{CMDLINE} -- iobench-run",
                    "-drive", f"file={image},format=raw,if=none,id=d0,cache=writeback",
                    "-device", f"{blk},drive=d0",
                    "-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
                    "-device", f"{net},netdev=n0,mac=52:54:00:12:34:56"])


# ---------------------------------------------------------------- report

def med(vals, field):
    xs = [v[field] for v in vals if field in v]
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def cell(data, key, field, unit):
    m = med(data.get(key, []), field)
    if m is None and key in data.get("_failed", []):
        return "FAILED"
    return fmt(m, unit)


def fmt(m, unit):
    if m is None:
        return "n/a"
    digits = 0 if unit in ("IOPS", "MB/s") and m[0] >= 100 else (3 if unit == "ms" or m[0] < 1 else 1)
    f = f"%.{digits}f"
    return f"{f % m[0]} ({f % m[1]}..{f % m[2]})"


def table(title, figs, rows, ref=None, refname=None):
    """rows: [(name, {key: [kv]})]; ref: {key: [kv]} for the ratio columns."""
    log("")
    log(title)
    w = 28
    head = f"{'':34s}" + "".join(f"{lbl + ' ' + unit:>{w}s}" for _, lbl, unit, _ in figs)
    log(head)
    for name, data in rows:
        if data is None:
            continue
        log(f"{name:34s}" + "".join(f"{cell(data, k, fld, unit):>{w}s}" for k, _, unit, fld in figs))
    if ref is None:
        return
    log(f"ratio guest/{refname} (medians; >1 = guest faster)")
    for name, data in rows:
        if data is None or name.startswith("host"):
            continue
        cells = []
        for k, _, unit, fld in figs:
            g, h = med(data.get(k, []), fld), med(ref.get(k, []), fld)
            cells.append(f"{g[0] / h[0]:.2f}" if g and h and h[0] else "n/a")
        log(f"  {name:32s}" + "".join(f"{c:>{w}s}" for c in cells))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cellvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True, help="initramfs from scripts/mkinitramfs.sh")
    ap.add_argument("--qemu-kernel", help="kernel for QEMU (default --kernel); QEMU needs a PVH ELF or bzImage")
    ap.add_argument("--qemu-initrd", help="initramfs for QEMU (default --initrd)")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--transports", default="pci,mmio")
    ap.add_argument("--image", help="raw image path (default: a temporary file, removed at the end)")
    ap.add_argument("--image-mib", type=int, default=1024)
    ap.add_argument("--memory", type=int, default=512, help="guest MiB")
    ap.add_argument("--cpus", type=int, default=1, help="guest vCPUs (default 1)")
    ap.add_argument("--disk-variants", default="poll_us=50;queues=2,poll_us=50",
                    help="';'-separated cellvm --disk options, one more boot each ('' for none)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each figure (median printed)")
    ap.add_argument("--time", type=float, default=5, help="cap in seconds of each measurement")
    ap.add_argument("--seq-read-mib", type=int, default=1024)
    ap.add_argument("--seq-write-mib", type=int, default=512)
    ap.add_argument("--rand-ops", type=int, default=20000, help="4 KiB random reads at QD1")
    ap.add_argument("--rand-ops-qd", type=int, default=100000, help="4 KiB random reads at QD32")
    ap.add_argument("--net-mib", type=int, default=1024)
    ap.add_argument("--rr-ops", type=int, default=10000)
    ap.add_argument("--pings", type=int, default=20)
    ap.add_argument("--boot-timeout", type=float, default=90, help="seconds to /init (QEMU q35 runs SeaBIOS "
                    "emulated on PVM: ~30 s)")
    ap.add_argument("--run-timeout", type=float, default=0, help="guest run cap after /init (default from --reps/--time)")
    a = ap.parse_args()
    a.qemu_kernel = a.qemu_kernel or a.kernel
    a.qemu_initrd = a.qemu_initrd or a.initrd
    a.cellvm = os.path.abspath(a.cellvm)
    if not a.run_timeout:
        a.run_timeout = 10 * a.reps * (a.time + 5) + a.pings * 0.2 + 60
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("io.py: no usable /dev/kvm on this host: no guest can boot, nothing measured")
        return 0
    if os.geteuid() != 0:
        sys.exit("io.py: needs root (network namespace, tap)")

    work = tempfile.mkdtemp(prefix="cellvm-iobench-")
    ns = Netns()

    def cleanup():
        ns.destroy()
        shutil.rmtree(work, ignore_errors=True)

    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))

    image = a.image or os.path.join("/var/tmp", f"cellvm-iobench-{os.getpid()}.img")
    if not a.image:
        atexit.register(lambda: os.path.exists(image) and os.unlink(image))

    ver = subprocess.run([a.cellvm, "--version"], capture_output=True, text=True).stdout.strip()
    log("command: " + " ".join(sys.argv))
    log(f"cellvm I/O benchmark ({ver or a.cellvm}): {loadavg()}, {os.cpu_count()} host CPUs, kernel {a.kernel}, qemu kernel "
        f"{a.qemu_kernel}, guest {a.memory} MiB / {a.cpus} vCPU, {a.reps} reps x <= {a.time:g} s per figure")
    tool = build_tool(work)
    initrd = {"cellvm": make_initrd(a, work, tool, a.initrd, "cellvm"),
              "qemu": make_initrd(a, work, tool, a.qemu_initrd, "qemu")}
    # Others may rebuild the binary while this runs: measure a private copy.
    shutil.copy2(a.cellvm, os.path.join(work, "cellvm"))
    a.cellvm = os.path.join(work, "cellvm")
    make_image(image, a.image_mib)
    ns.create()
    log(f"netns {ns.name}: {TAP} {HOST_IP}/24, guest {GUEST_IP}")

    # Host reference.
    pct = cached_pct(image)
    log(f"host: same tool on {image} ({'%.0f%%' % pct if pct is not None else '?'} in page cache), {loadavg()}")
    host = host_disk(a, tool, image)

    runs = []
    transports = [t for t in a.transports.split(",") if t]
    # (row name, argv maker, --disk options); the default disk first.
    vmms = [("cellvm", cellvm_argv, "")]
    vmms += [(f"cellvm {v}", cellvm_argv, v) for v in a.disk_variants.split(";") if v]
    if not a.no_qemu:
        if not shutil.which("qemu-system-x86_64"):
            log("qemu could not boot {}: qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
                .format(a.qemu_kernel))
        elif not os.path.isfile(a.qemu_kernel):
            log(f"qemu could not boot {a.qemu_kernel}: no such file")
        else:
            vmms.append(("qemu", qemu_argv, ""))
    for vmm, mk, opts in vmms:
        for tr in transports:
            name = f"{vmm.split()[0]} {tr}" + (f" {opts}" if opts else "")
            pct = cached_pct(image)
            log(f"{name}: booting ({'%.0f%%' % pct if pct is not None else '?'} of the image in host page cache, "
                f"{loadavg()})")
            r = VMRun(name, mk(a, tr, initrd, image, ns, opts), ns, tool, a).run()
            for i in r.info:
                log(f"  guest: {i}")
            if r.error:
                k = a.qemu_kernel if vmm == "qemu" else a.kernel
                if vmm == "qemu" and not r.ready:
                    log(f"qemu could not boot {k}: {r.error}")
                    runs.append((name, None))
                    if "within" in r.error:
                        break  # a hang: do not wait as long for the other machine type
                    continue
                log(f"{name}: FAILED: {r.error}")
                tail = r.stderr.strip().splitlines()[-3:]
                for l in tail:
                    log(f"  stderr: {l}")
            log(f"{name}: done in {r.wall:.1f} s, {loadavg()}")
            if r.figs:
                for st in r.failed:
                    r.figs.setdefault(st, [])
                    r.figs.setdefault("_failed", []).append(st)
            runs.append((name, r.figs if r.figs else None))

    rows = [("host O_DIRECT", host.get("odirect")), ("host buffered", host.get("buffered"))] + runs
    log("")
    log(f"== results: median (min..max) of {a.reps}; image {a.image_mib} MiB raw, random data; {loadavg()}")
    table("Disk (guest: O_DIRECT on /dev/vda; host: same tool on the image file)", DISK_FIGS, rows,
          host.get("odirect"), "host O_DIRECT")
    if host.get("buffered"):
        log("ratio guest/host buffered (host page cache, what the VMMs' back-ends read through)")
        for name, data in runs:
            if data is None:
                continue
            cells = []
            for k, _, unit, fld in DISK_FIGS:
                g, h = med(data.get(k, []), fld), med(host["buffered"].get(k, []), fld)
                cells.append(f"{g[0] / h[0]:.2f}" if g and h and h[0] else "n/a")
            log(f"  {name:32s}" + "".join(f"{c:>28s}" for c in cells))
    table("Latency (us): one getppid() system call; 4 KiB random read per request as the issuing process sees it,\n"
          "'floor' = the same reads at QD1 on a RAM-backed file inside the guest (the guest's own cost, no device)",
          [("sys", "1 syscall", "us", "lat_avg_us"), ("floor1", "floor QD1 avg", "us", "lat_avg_us"),
           ("rand1", "QD1 avg", "us", "lat_avg_us"), ("rand1", "QD1 p99", "us", "lat_p99_us"),
           ("rand32", "QD32 avg", "us", "lat_avg_us")], rows)
    table(f"Network (tap in netns {HOST_IP} <-> {GUEST_IP}; RR = 1-byte TCP ping-pong from the guest)",
          NET_FIGS, runs)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
