#!/usr/bin/python3
"""Live migration benchmark (`make bench-migrate`): numbers only, no assertions.

    /usr/bin/python3 bench/migrate.py --cellvm build/cellvm --kernel K --initrd I

Needs root (network namespaces), gcc with static glibc, /dev/kvm.

A 512 MiB guest (one vCPU) moves from namespace hostA to hostB over the veth
pair between them (tests/e2e/hosts.py's TwoHosts, without its LAN; removed
at the end, also on failure or Ctrl-C), once idle and once running
bench/guest/dirty.c (rewriting --dirty-mib MiB at --dirty-rate MiB/s), with a
50 ms downtime target. For each, the median over --runs migrations of:

  total       PUT /migrate (QEMU: `migrate -d`) until the source is done, as
              timed here, and as the VMM reports it;
  paused      the downtime the VMM reports (cellvm's "ms paused", QEMU's
              "downtime");
  guest gap   the largest gap a 1 ms CLOCK_MONOTONIC ticker in the guest
              (bench/guest/ticker.c) saw across the move, beside the largest
              it saw in as long a stretch before it (the guest's own noise).
              The guest's clock is the kvmclock, which the destination sets:
              cellvm freezes it at the pause and moves it on by the time the
              state was in flight, so the guest may see less than the pause;
  console gap the largest gap, timed on the host, between bytes of the
              guest's console (the ticker writes a dot every 5 ms), from the
              source's last to the destination's first: downtime as seen
              from outside, beside its baseline too;
  sent        bytes sent (cellvm's "MiB sent", QEMU's "transferred ram") and
              rounds (QEMU: dirty sync count).

QEMU (qemu-system-x86_64, where installed) boots the same kernel and initramfs
(bench/bench.py's qemu_argv), its destination started with -incoming tcp:
in hostB, driven through its human monitor (`migrate_set_parameter
downtime-limit 50`, `migrate -d`, `info migrate`). Where QEMU's migration
fails (on a PVM host its destination may die with "KVM internal error", as
its restores do in bench/snapshot.py), that is printed as its result.
"""

import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
from bench import CMDLINE, arg_parser, qemu_argv  # noqa: E402
from hosts import TwoHosts  # noqa: E402
from net import IO  # noqa: E402
from snapshot import PROMPT, api, qemu_monitor, request  # noqa: E402

TOKEN = "bench-migrate"
TICKER_RE = re.compile(rb"TICKER max_gap_ms=([\d.]+) at_s=([\d.]+) ticks=(\d+) over5=(\d+) over20=(\d+)")
BASELINE_S = 3.0  # the ticker's stretch before the move (and at least as long after it)


def port():
    # Below the ephemeral range (32768-60999), which outgoing connections use.
    return random.randint(10000, 19999)


class VM:
    """A VMM process whose stdout is the guest's console; every chunk of it
    is kept with the host time it arrived."""

    def __init__(self, argv):
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        self.chunks = []  # (time.monotonic(), bytes)
        self.out = b""
        self.err = b""
        self.pos = 0
        self.cond = threading.Condition()
        for f, console in ((self.p.stdout, True), (self.p.stderr, False)):
            threading.Thread(target=self._read, args=(f, console), daemon=True).start()

    def _read(self, f, console):
        while chunk := os.read(f.fileno(), 65536):
            with self.cond:
                if console:
                    self.chunks.append((time.monotonic(), chunk))
                    self.out += chunk
                else:
                    self.err += chunk
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, rx, timeout):
        """The match of bytes regex rx on the console after the last one, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (m := rx.search(self.out, self.pos)):
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    return None
                self.cond.wait(min(left, 0.5))
            self.pos = m.end()
            return m

    def wait_err(self, text, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while text not in self.err:
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def send(self, line):
        try:
            self.p.stdin.write(line.encode() + b"\n")
            self.p.stdin.flush()
        except OSError:
            pass

    def ticker(self, timeout=30):
        """Asks the guest's ticker for its figures since the last time:
        (largest gap ms, gaps over 20 ms), or None."""
        self.send("killall -USR1 ticker")
        m = self.wait_for(TICKER_RE, timeout)
        return (float(m.group(1)), int(m.group(5))) if m else None

    def why(self):
        lines = self.err.decode(errors="replace").strip().splitlines()
        return next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait()


def console_gap(vms, t0, t1):
    """The largest gap between console chunks of vms (together) from t0 to t1, ms."""
    times = sorted(t for vm in vms for t, _ in vm.chunks if t0 <= t <= t1)
    return max((b - a for a, b in zip(times, times[1:])), default=0) * 1000


class Failed(Exception):
    """Why a run gave no figures."""


def guest_setup(vm, a, dirty):
    """At the prompt: the dirtier (if any) and the ticker run; the
    baseline figures over BASELINE_S: (ticker's, console's)."""
    if vm.wait_for(PROMPT, a.timeout) is None:
        raise Failed(f"the guest did not come up: {vm.why()}")
    if dirty:
        vm.send(f"dirty {a.dirty_mib} {a.dirty_rate} &")
        if vm.wait_for(re.compile(rb"DIRTY-READY"), a.timeout) is None:
            raise Failed(f"the dirtier did not start: {vm.why()}")
    vm.send("ticker -d 5 &")
    time.sleep(0.5)
    vm.ticker()  # starts afresh: the stretch before this is the shell's
    t0 = time.monotonic()
    time.sleep(BASELINE_S)
    base = vm.ticker()
    if not base:
        raise Failed(f"the guest's ticker did not answer: {vm.why()}")
    return base, console_gap([vm], t0, time.monotonic())


@contextlib.contextmanager
def source_and_destination(a, dirty, src_argv, dst_argv, listens):
    """The source VM at work (its baseline taken), then the destination
    once listens(it) says it listens: (source, destination, baseline);
    both are killed at the end."""
    vms = [VM(src_argv)]
    try:
        base = guest_setup(vms[0], a, dirty)
        vms.append(VM(dst_argv))
        if not listens(vms[1]):
            raise Failed(f"the destination did not listen: {vms[1].why()}")
        yield vms[0], vms[1], base
    finally:
        for vm in vms:
            vm.stop()


def after_move(src, dst, t0):
    """The ticker's figures across the move and the console gap, after
    at least BASELINE_S; None if the guest does not answer."""
    time.sleep(max(0.5, BASELINE_S - (time.monotonic() - t0)))
    tick = dst.ticker()
    return tick and (tick, console_gap([src, dst], t0, time.monotonic()))


def cellvm_run(a, hosts, d, dirty):
    sock, p = os.path.join(d, "src.sock"), port()
    with source_and_destination(
            a, dirty, hosts.a.args(a.cellvm, "run", "--kernel", a.kernel, "--initrd", a.initrd, "--memory",
                                   f"{a.memory}M", "--cmdline", CMDLINE, "--api-sock", sock),
            hosts.b.args(a.cellvm, "run", "--incoming", f"tcp:{hosts.b_ip}:{p}", "--migrate-token", TOKEN),
            lambda vm: vm.wait_err(b"waiting for a migration", 10)) as (src, dst, base):
        t0 = time.monotonic()
        status = api(sock, "PUT", "/migrate", {"destination": f"tcp:{hosts.b_ip}:{p}", "token": TOKEN,
                                              "downtime_ms": 50})
        if status != 204:
            raise Failed(f"PUT /migrate: {status}")
        while time.monotonic() - t0 < a.timeout:
            try:  # the source ends when its VM runs on the destination
                src.p.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                st = request(sock, "GET", "/migrate")[1]
            except OSError:  # it is ending
                continue
            if b'"failed"' in st:
                raise Failed(st.decode(errors="replace"))
        t1 = time.monotonic()
        m = re.search(rb"migrated: (\d+) rounds, ([\d.]+) MiB sent \([\d.]+ MiB of disks\), "
                      rb"(\d+) ms in all, ([\d.]+) ms paused", src.err)
        if not m:
            raise Failed(f"the source did not migrate: {src.why()}")
        after = after_move(src, dst, t0)
        if not after:
            raise Failed(f"the guest did not answer on the destination: {dst.why()}")
        return {"total": (t1 - t0) * 1000, "vmm_total": float(m.group(3)), "paused": float(m.group(4)),
                "mib": float(m.group(2)), "rounds": int(m.group(1)), "base": base, "after": after}


def info_migrate(mon):
    out = qemu_monitor(mon, "info migrate")
    st = re.search(r"Migration status: (\S+)", out)

    def num(label):
        m = re.search(rf"^{label}: (\d+)", out, re.M)
        return int(m.group(1)) if m else None

    return (st.group(1) if st else "?"), out, {k: num(k) for k in ("total time", "downtime", "transferred ram",
                                                                   "dirty sync count")}


def listening(ns, p, vm, timeout=30):
    """Waits until something listens on TCP port p in namespace ns."""
    deadline = time.monotonic() + timeout
    while not ns.run("ss", "-Hltn", f"sport = :{p}").stdout.strip():
        if vm.p.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def qemu_run(a, hosts, d, dirty):
    mon_a, mon_b, p = os.path.join(d, "qa.mon"), os.path.join(d, "qb.mon"), port()
    base_argv = qemu_argv(a)
    with source_and_destination(
            a, dirty, hosts.a.args(*base_argv, "-monitor", f"unix:{mon_a},server,nowait"),
            hosts.b.args(*base_argv, "-monitor", f"unix:{mon_b},server,nowait", "-incoming", f"tcp:{hosts.b_ip}:{p}"),
            lambda vm: listening(hosts.b, p, vm)) as (src, dst, base):
        qemu_monitor(mon_a, "migrate_set_parameter downtime-limit 50")
        t0 = time.monotonic()
        qemu_monitor(mon_a, f"migrate -d tcp:{hosts.b_ip}:{p}")
        while True:
            state, out, figs = info_migrate(mon_a)
            if state not in ("active", "setup", "device", "pre-switchover", "?") or \
                    time.monotonic() - t0 > a.timeout:
                break
            time.sleep(0.01)
        t1 = time.monotonic()
        if state != "completed":
            raise Failed(f"migration {state}: {dst.why() if dst.p.poll() is not None else out.strip()[-300:]}")
        said = (f"the source says completed (total {figs['total time']} ms, downtime {figs['downtime']} ms, "
                f"{(figs['transferred ram'] or 0) / 1024:.1f} MiB sent), but")
        time.sleep(0.5)
        if dst.p.poll() is not None:
            raise Failed(f"{said} the destination died: {dst.why()}")
        after = after_move(src, dst, t0)
        if not after:
            try:
                status = re.search(r"VM status: (.*)", qemu_monitor(mon_b, "info status"))
                status = status.group(1).strip() if status else "?"
            except OSError:
                status = f"exited {dst.p.wait()}"
            raise Failed(f"{said} the guest did not answer on the destination: {dst.why()} (its VM status: "
                         f"{status}, {len(dst.out)} console bytes)")
        return {"total": (t1 - t0) * 1000, "vmm_total": figs["total time"], "paused": figs["downtime"],
                "mib": (figs["transferred ram"] or 0) / 1024, "rounds": figs["dirty sync count"],
                "base": base, "after": after}


def summary(runs):
    """The median of each figure over runs."""
    def med(f):
        vals = [f(r) for r in runs if f(r) is not None]
        return statistics.median(vals) if vals else float("nan")

    return {"total": med(lambda r: r["total"]), "vmm_total": med(lambda r: r["vmm_total"]),
            "paused": med(lambda r: r["paused"]), "mib": med(lambda r: r["mib"]),
            "rounds": med(lambda r: r["rounds"]), "gap": med(lambda r: r["after"][0][0]),
            "gap_base": med(lambda r: r["base"][0][0]), "con": med(lambda r: r["after"][1]),
            "con_base": med(lambda r: r["base"][1])}


def show(name, case, s, n):
    print(f"{name:6s} {case:5s} total {s['total']:7.1f} ms (VMM says {s['vmm_total']:.0f}), paused "
          f"{s['paused']:6.1f} ms | guest gap {s['gap']:6.1f} ms (before: {s['gap_base']:.1f}) | console gap "
          f"{s['con']:6.1f} ms (before: {s['con_base']:.1f}) | sent {s['mib']:6.1f} MiB in {s['rounds']:.0f} "
          f"rounds | median of {n}", flush=True)


def measure(name, fn, a, hosts, case):
    runs = []
    for _ in range(a.runs):
        try:
            with tempfile.TemporaryDirectory() as d:
                r = fn(a, hosts, d, case == "dirty")
        except Failed as e:
            print(f"{name:6s} {case:5s} failed: {e}", flush=True)
            return None
        runs.append(r)
    s = summary(runs)
    show(name, case, s, len(runs))
    return s


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--memory", type=int, default=512, help="guest MiB")
    ap.add_argument("--dirty-mib", type=int, default=128)
    ap.add_argument("--dirty-rate", type=int, default=256, help="MiB/s the dirtier writes")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("migrate.py: needs root (network namespaces)")
    work = tempfile.mkdtemp(prefix="cvbench-migrate-")
    hosts = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        tools = []
        for tool in ("ticker", "dirty"):
            exe = os.path.join(work, tool)
            r = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", exe, os.path.join(HERE, "guest", f"{tool}.c")],
                               capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"migrate.py: cannot build {tool}.c (gcc -static; Debian: libc6-dev):\n{r.stderr}")
            with open(exe, "rb") as f:
                tools.append((f"bin/{tool}", 0o100755, f.read()))
        a.initrd = IO.extend_initrd(a.initrd, None, tools, os.path.join(work, "initrd-migrate.cpio"))
        hosts = TwoHosts(prefix="cvbm", lan=False)
        print(f"cellvm migration benchmark: {a.memory} MiB guest, 1 vCPU, hostA -> hostB over a veth pair, "
              f"downtime target 50 ms; dirty = rewriting {a.dirty_mib} MiB at {a.dirty_rate} MiB/s; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        has_qemu = shutil.which("qemu-system-x86_64") is not None
        for case in ("idle", "dirty"):
            mine = measure("cellvm", cellvm_run, a, hosts, case)
            if not has_qemu:
                continue
            theirs = measure("qemu", qemu_run, a, hosts, case)
            if mine and theirs:
                print(f"ratio  {case:5s} cellvm/qemu: total {mine['total'] / theirs['total']:.2f}, paused "
                      f"{mine['paused'] / max(theirs['paused'], 0.1):.2f}, console gap "
                      f"{mine['con'] / theirs['con']:.2f}, sent {mine['mib'] / theirs['mib']:.2f}", flush=True)
        if not has_qemu:
            print("qemu not installed (Debian package qemu-system-x86): no comparison")
    finally:
        if hosts:
            hosts.delete()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
