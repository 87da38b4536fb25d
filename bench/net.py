#!/usr/bin/env python3
"""cellvm network benchmark (issue 6): prints numbers, asserts nothing.

    /usr/bin/python3 bench/net.py --cellvm build/cellvm --kernel K --initrd I

Needs root (network namespaces, bridge, tap), gcc with static glibc, /dev/kvm.

For each back-end: TCP throughput guest->host and host->guest (one
connection, 256 KiB writes; the sender's time until the receiver has
acknowledged EOF) and 1-byte TCP request/response latency, all with
bench/guest/iobench.c on both sides (built here with gcc -static; the same
tool bench/io.py uses):

  cellvm nat       --net nat: the host side is the namespace's loopback
                   (10.0.2.2 from the guest; host->guest through hostfwd=)
  cellvm bridge    --net bridge=br0: a tap on a bridge with the host at 10.98.0.1
  cellvm switch    --net switch=PATH: no host networking, so VM <-> VM
                   through `cellvm switch` (two guests, one vCPU each)
  qemu user / tap  -netdev user (hostfwd for host->guest) and -netdev tap on
                   the same bridge, q35 + virtio-net-pci, where QEMU can boot
                   --qemu-kernel; otherwise one line says why it could not.

Everything runs inside a network namespace made here (removed at the end,
also on failure or Ctrl-C). Each figure is measured --reps times; the median
is printed with min..max beside it.
"""
import argparse
import atexit
import importlib.util
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CMDLINE = "console=ttyS0 reboot=k panic=-1 pti=on quiet"
HOST_IP, GUEST_IP, GUEST2_IP = "10.98.0.1", "10.98.0.2", "10.98.0.3"
NAT_HOST = "10.0.2.2"
PORT_G2H, PORT_H2G, PORT_RR = 5201, 5202, 5203
FIGS = [("g2h", "TCP guest->host", "MB/s", "MBps"),
        ("h2g", "TCP host->guest", "MB/s", "MBps"),
        ("rr", "TCP RR 1B avg", "us", "lat_avg_us")]


def load_iobench_helpers():
    """bench/io.py's tool build, cpio writer and IOBENCH parser (the file
    name shadows the stdlib io module, so it is loaded by path)."""
    spec = importlib.util.spec_from_file_location("cellvm_bench_io", os.path.join(HERE, "io.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


IO = load_iobench_helpers()


log = IO.log
med = IO.med


GUEST_SCRIPT = r"""#!/bin/sh
# netbench-run ROLE ADDR PEER REPS SECS MIB RR: the guest side of bench/net.py.
# ROLE client: sends (g2h), receives (h2g), pings (rr) PEER.
# ROLE server: the other end of a client on another VM.
role=$1 addr=$2 peer=$3 reps=$4 secs=$5 mib=$6 rr=$7
step() { echo "@@STEP $1"; }
ip link set lo up
ip link set eth0 up
if [ "$addr" = dhcp ]; then
	printf '%s\n' '#!/bin/sh' '[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"' \
		'[ "$1" = bound ] && [ -n "$router" ] && ip route add default via "${router%% *}"' '' >/tmp/dh
	chmod +x /tmp/dh
	udhcpc -i eth0 -q -n -t 10 -T 2 -s /tmp/dh >/dev/null 2>&1 || echo "@@INFO dhcp failed"
else
	ip addr add "$addr" dev eth0
fi
ping -c 3 -W 5 "$peer" >/dev/null 2>&1
if [ "$role" = client ]; then
	for i in $(seq "$reps"); do step g2h; iobench tcp-send "$peer" 5201 -n "${mib}M" -t "$secs"; done
	for i in $(seq "$reps"); do step h2g; iobench tcp-recv 5202 -t 60; done
	for i in $(seq "$reps"); do step rr; iobench tcp-rr "$peer" 5203 -n "$rr" -t "$secs"; done
else
	for i in $(seq "$reps"); do iobench tcp-recv 5201 -t 120; done
	for i in $(seq "$reps"); do iobench tcp-send "$peer" 5202 -n "${mib}M" -t "$secs"; done
	for i in $(seq "$reps"); do iobench tcp-echo 5203 -t 120; done
fi
"""


def make_initrd(base_path, work, tool):
    return IO.extend_initrd(base_path, tool, [("bin/netbench-run", 0o100755, GUEST_SCRIPT.encode())],
                            os.path.join(work, "initrd-netbench.cpio"))


class Netns(IO.Netns):
    """bench/io.py's namespace with a bridge for the guests' ports instead
    of its tap (deleting the namespace deletes the bridge)."""
    prefix = "cvnetbench"

    def add_links(self):
        self.ip("link", "add", "br0", "type", "bridge")
        self.ip("addr", "add", f"{HOST_IP}/24", "dev", "br0")
        self.ip("link", "set", "br0", "up")

    def del_links(self):
        pass


class Guest:
    """One VMM process running netbench-run; lines are handed to on_line
    from a reader thread; results collected per step."""

    def __init__(self, name, argv, on_line=None, own_h2g=False):
        # own_h2g: the guest's receiving end reports host->guest (no host peer does)
        self.name, self.argv, self.on_line, self.own_h2g = name, argv, on_line, own_h2g
        self.figs, self.info, self.error = {}, [], None
        self.ready = self.done = self.ready_seen = False
        self.stderr = ""

    def run(self, boot_timeout, run_timeout):
        t0 = time.monotonic()
        log(f"{self.name}: booting (load {os.getloadavg()[0]:.2f})")
        p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        open_streams = [p.stdout, p.stderr]
        buf, err, step = b"", b"", None
        deadline = time.monotonic() + boot_timeout
        try:
            while not self.done and open_streams:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.error = "no /init marker in time" if not self.ready else f"timed out in step {step}"
                    break
                r, _, _ = select.select(open_streams, [], [], min(left, 1.0))
                for f in r:
                    chunk = os.read(f.fileno(), 65536)
                    if not chunk:
                        open_streams.remove(f)
                        continue
                    if f is p.stderr:
                        err += chunk
                        continue
                    buf += chunk
                    while b"\n" in buf:
                        raw, buf = buf.split(b"\n", 1)
                        step = self.line(raw.decode(errors="replace").strip("\r\x00 "), step)
                    if self.ready and not self.ready_seen:
                        self.ready_seen = True
                        deadline = time.monotonic() + run_timeout
            if not self.done and not self.error:
                lines = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
                why = lines[-1] if lines else "no output"
                self.error = (f"exited before /init: {why}" if not self.ready else
                              f"exited during step {step}: {why}")
        finally:
            if p.poll() is None:
                try:
                    p.wait(10 if self.done else 0.1)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr):
                f.close()
            self.stderr = err.decode(errors="replace")
        log(f"{self.name}: {'done' if not self.error else 'FAILED: ' + self.error} in {time.monotonic() - t0:.1f} s")
        return self

    def line(self, line, step):
        m = re.search(r"(@@\w+ .*|IOBENCH .*|CELLVM-INIT-READY|CELLVM-CMD-EXIT=\d+)", line)
        if not m:
            return step
        line = m.group(1)
        if line == "CELLVM-INIT-READY":
            self.ready = True
        elif line.startswith("CELLVM-CMD-EXIT="):
            self.done = True
        elif line.startswith("@@STEP "):
            step = line.split()[1]
        elif line.startswith("@@INFO "):
            self.info.append(line[7:])
        elif line.startswith("IOBENCH mode=") and step and (step != "h2g" or self.own_h2g):
            self.figs.setdefault(step, []).append(IO.parse_kv(line))
        elif line.startswith("IOBENCH error="):
            self.info.append(f"{step}: {line}")
        if self.on_line:
            self.on_line(step, line)
        return step


class HostPeers:
    """Host-side iobench processes started as the guest reaches each step."""

    def __init__(self, ns, tool, a, h2g_target):
        self.ns, self.tool, self.a, self.h2g_target = ns, tool, a, h2g_target
        self.procs = []

    def on_line(self, step, line):
        if line.startswith("@@STEP g2h"):
            self.start(None, ["tcp-recv", PORT_G2H, "-t", 60])
        elif line.startswith("@@STEP rr"):
            self.start(None, ["tcp-echo", PORT_RR, "-t", 60])
        elif line.startswith("IOBENCH listening=") and step == "h2g":
            self.start("h2g", ["tcp-send", self.h2g_target[0], self.h2g_target[1], "-n", f"{self.a.net_mib}M",
                               "-t", self.a.time])

    def start(self, step, argv):
        p = subprocess.Popen(self.ns.wrap([self.tool, *argv]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        self.procs.append((step, p))

    def collect(self, figs, info):
        for step, p in self.procs:
            for l in IO.drain(p, 10):
                if step and l.startswith("IOBENCH mode="):
                    figs.setdefault(step, []).append(IO.parse_kv(l))
                elif l.startswith("IOBENCH error="):
                    info.append(f"host peer: {l}")


def guest_cmdline(role, addr, peer, a):
    return f"{CMDLINE} -- netbench-run {role} {addr} {peer} {a.reps} {a.time:g} {a.net_mib} {a.rr_ops}"


def cellvm(a, initrd, net, name, cmdline):
    return [a.cellvm, "run", "--kernel", a.kernel, "--initrd", initrd, "--memory", f"{a.memory}M",
            "--name", name, "--net", net, "--cmdline", cmdline]


def qemu(a, initrd, netdev, cmdline):
    return ["qemu-system-x86_64", "-M", "q35", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", f"{a.memory}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", a.qemu_kernel, "-initrd", initrd,
            "-append", cmdline, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]


def run_host_peer_case(name, argv, ns, tool, a, h2g_target):
    peers = HostPeers(ns, tool, a, h2g_target)
    g = Guest(name, ns.wrap(argv), peers.on_line).run(a.boot_timeout, a.run_timeout)
    peers.collect(g.figs, g.info)
    return g


def run_switch_case(ns, tool, a, initrd, work):
    path = os.path.join(work, "sw.sock")
    sw = subprocess.Popen(ns.wrap([a.cellvm, "switch", path]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        if "listening" not in sw.stdout.readline():
            g = Guest("cellvm switch", [])
            g.error = f"switch did not start: {sw.stderr.read().strip()}"
            return g
        server = Guest("switch server", ns.wrap(cellvm(a, initrd, f"switch={path}", "netbench-b",
                                                       guest_cmdline("server", f"{GUEST2_IP}/24", GUEST_IP, a))))
        client = Guest("cellvm switch", ns.wrap(cellvm(a, initrd, f"switch={path}", "netbench-a",
                                                       guest_cmdline("client", f"{GUEST_IP}/24", GUEST2_IP, a))),
                       own_h2g=True)
        t = threading.Thread(target=server.run, args=(a.boot_timeout, a.run_timeout), daemon=True)
        t.start()
        client.run(a.boot_timeout, a.run_timeout)
        t.join(a.run_timeout + 30)
        client.info += [f"peer VM: {i}" for i in server.info]
        if server.error and not client.error:
            client.error = f"peer VM: {server.error}"
        return client
    finally:
        if sw.poll() is None:
            sw.send_signal(signal.SIGTERM)
            try:
                sw.wait(10)
            except subprocess.TimeoutExpired:
                sw.kill()


def fmt(m, unit):
    if m is None:
        return "n/a"
    f = "%.0f" if unit == "us" and m[0] >= 100 else "%.1f"
    return f"{f % m[0]} ({f % m[1]}..{f % m[2]})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cellvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True, help="initramfs from scripts/mkinitramfs.sh")
    ap.add_argument("--qemu-kernel", help="kernel for QEMU (default --kernel); QEMU needs a PVH ELF or bzImage")
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--modes", default="nat,bridge,switch", help="cellvm back-ends to measure")
    ap.add_argument("--memory", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--time", type=float, default=5, help="cap in seconds of each measurement")
    ap.add_argument("--net-mib", type=int, default=512)
    ap.add_argument("--rr-ops", type=int, default=5000)
    ap.add_argument("--boot-timeout", type=float, default=90)
    ap.add_argument("--run-timeout", type=float, default=0)
    a = ap.parse_args()
    a.qemu_kernel = a.qemu_kernel or a.kernel
    a.cellvm = os.path.abspath(a.cellvm)
    if not a.run_timeout:
        a.run_timeout = 3 * a.reps * (a.time + 25) + 60
    if os.geteuid() != 0:
        sys.exit("net.py: needs root (network namespace, bridge, tap)")

    work = tempfile.mkdtemp(prefix="cellvm-netbench-")
    os.chmod(work, 0o755)
    ns = Netns()
    atexit.register(lambda: (ns.destroy(), shutil.rmtree(work, ignore_errors=True)))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))

    log(f"cellvm network benchmark: load {os.getloadavg()[0]:.2f}, {os.cpu_count()} host CPUs, kernel {a.kernel}, "
        f"guest {a.memory} MiB / 1 vCPU, {a.reps} reps x <= {a.time:g} s per figure")
    tool = IO.build_tool(work)
    initrd = make_initrd(a.initrd, work, tool)
    ns.create()
    rows = []
    modes = [m for m in a.modes.split(",") if m]
    client_static = guest_cmdline("client", f"{GUEST_IP}/24", HOST_IP, a)
    client_nat = guest_cmdline("client", "dhcp", NAT_HOST, a)
    if "nat" in modes:
        rows.append(("cellvm nat", run_host_peer_case(
            "cellvm nat", cellvm(a, initrd, f"nat,hostfwd=tcp::{PORT_H2G}-:{PORT_H2G}", "netbench", client_nat),
            ns, tool, a, ("127.0.0.1", PORT_H2G))))
    if "bridge" in modes:
        rows.append(("cellvm bridge", run_host_peer_case(
            "cellvm bridge", cellvm(a, initrd, "bridge=br0", "netbench", client_static),
            ns, tool, a, (GUEST_IP, PORT_H2G))))
    if "switch" in modes:
        rows.append(("cellvm switch*", run_switch_case(ns, tool, a, initrd, work)))
    if not a.no_qemu:
        if not shutil.which("qemu-system-x86_64"):
            log(f"qemu could not boot {a.qemu_kernel}: qemu-system-x86_64 not installed (Debian: qemu-system-x86)")
        else:
            g = run_host_peer_case("qemu user", qemu(a, initrd, f"user,id=n0,hostfwd=tcp::{PORT_H2G}-:{PORT_H2G}",
                                                     client_nat), ns, tool, a, ("127.0.0.1", PORT_H2G))
            if not g.ready:
                log(f"qemu could not boot {a.qemu_kernel}: {g.error}")
            else:
                rows.append(("qemu user", g))
                ns.ip("tuntap", "add", "qtap0", "mode", "tap", "vnet_hdr")
                ns.ip("link", "set", "qtap0", "master", "br0", "up")
                rows.append(("qemu tap", run_host_peer_case(
                    "qemu tap", qemu(a, initrd, "tap,id=n0,ifname=qtap0,script=no,downscript=no", client_static),
                    ns, tool, a, (GUEST_IP, PORT_H2G))))

    log("")
    log(f"== results: median (min..max) of {a.reps}; load {os.getloadavg()[0]:.2f}")
    w = 24
    log(f"{'':16s}" + "".join(f"{lbl + ' ' + unit:>{w}s}" for _, lbl, unit, _ in FIGS))
    for name, g in rows:
        if g.error:
            log(f"{name:16s}FAILED: {g.error}")
            for l in g.stderr.strip().splitlines()[-2:]:
                log(f"{'':16s}  stderr: {l}")
        log(f"{name:16s}" + "".join(f"{fmt(med(g.figs.get(k, []), fld), unit):>{w}s}" for k, _, unit, fld in FIGS))
        for i in g.info[:3]:
            log(f"{'':16s}  {i}")
    if "switch" in modes:
        log("* switch: no host networking, so VM <-> VM: 'guest->host' is VM a -> VM b, 'host->guest' VM b -> VM a,"
            " RR from VM a to an echo on VM b")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
