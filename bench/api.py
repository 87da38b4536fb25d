#!/usr/bin/env python3
"""cellvm API benchmark: prints numbers, asserts nothing.

  * process start -> API socket answering GET / (wall ms), and the CPU the
    process used for it (CPU ms: user + system from wait4 after an immediate
    SIGTERM, so the short clean exit is included), median of N;
  * InstanceStart -> guest /init marker (wall ms) for a VM configured over the
    API (machine-config, boot-source), median of M.

Firecracker publishes <= 8 CPU ms to a ready API and <= 125 ms to guest /init
(its own minimal kernel and rootfs); the guest here is whatever kernel and
initramfs are given. --baseline BIN measures another cellvm build in the same
run, interleaved, and prints the ratio (to compare a change under the same
load).
"""
import argparse
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MARKER = b"CELLVM-INIT-READY"
CMDLINE = "console=ttyS0 reboot=k panic=-1 pti=on quiet"


def request(sock_path, method, path, body=None, timeout=30):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    return int(reply.split(b" ", 2)[1])


def wait_ready(p, sock):
    """Polls until GET / answers (the socket file appears before listen())."""
    while True:
        try:
            if request(sock, "GET", "/", timeout=5) == 200:
                return
        except OSError:
            if p.poll() is not None:
                raise RuntimeError(p.stderr.read().decode())
            time.sleep(0.0005)


def start_to_ready(binary, tmp):
    sock = os.path.join(tmp, "api.sock")
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "run", "--api-sock", sock], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(p, sock)
    wall = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    p.stderr.close()
    return wall * 1000, (ru.ru_utime + ru.ru_stime) * 1000


def instance_start_to_init(a, tmp):
    sock = os.path.join(tmp, "api.sock")
    p = subprocess.Popen([a.cellvm, "run", "--api-sock", sock], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(p, sock)
        assert request(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": a.memory}) == 204
        assert request(sock, "PUT", "/boot-source", {"kernel_image_path": a.kernel,
                                                     "initrd_path": a.initrd,
                                                     "boot_args": CMDLINE}) == 204
        t0 = time.monotonic()
        if request(sock, "PUT", "/actions", {"action_type": "InstanceStart"}) != 204:
            raise RuntimeError("InstanceStart refused: " + p.stderr.read1().decode().strip())
        out = b""
        deadline = t0 + a.timeout
        while MARKER not in out:
            left = deadline - time.monotonic()
            if left <= 0 or p.poll() is not None:
                raise RuntimeError("no /init marker: " + p.stderr.read().decode()[-500:])
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                out += os.read(p.stdout.fileno(), 65536)
        return (time.monotonic() - t0) * 1000
    finally:
        p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            f.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cellvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--memory", type=int, default=256, help="MiB")
    ap.add_argument("--runs", type=int, default=20, help="process start -> API ready runs")
    ap.add_argument("--boots", type=int, default=10, help="InstanceStart -> /init runs")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--baseline", help="another cellvm binary to measure beside it")
    a = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"host load {f.read().split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        mine, base = [], []
        for _ in range(a.runs):
            mine.append(start_to_ready(a.cellvm, tmp))
            if a.baseline:
                base.append(start_to_ready(a.baseline, tmp))
        for name, runs in (("api", mine), ("baseline", base)):
            if runs:
                walls, cpus = zip(*runs)
                print(f"{name:8s} process start -> API ready: median {statistics.median(walls):.1f} ms wall "
                      f"(min {min(walls):.1f}), {statistics.median(cpus):.1f} ms CPU (min {min(cpus):.1f}); "
                      f"{a.runs} runs [Firecracker: 8 CPU ms]")
        cpu = statistics.median(c for _, c in mine)
        line = f"summary  start->API ready CPU       cellvm {cpu:10.1f} ms"
        if base:
            b = statistics.median(c for _, c in base)
            line += f" | baseline {b:10.1f} ms | ratio {cpu / b:.2f}"
        print(line)
        try:
            boots = [instance_start_to_init(a, tmp) for _ in range(a.boots)]
        except RuntimeError as e:
            print(f"api      InstanceStart -> guest /init: no VM could start: {str(e).splitlines()[-1]}")
            return 0
        print(f"api      InstanceStart -> guest /init: median {statistics.median(boots):.1f} ms "
              f"(min {min(boots):.1f}, max {max(boots):.1f}); {a.boots} boots [Firecracker: <= 125 ms]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
