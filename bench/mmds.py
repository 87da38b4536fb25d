#!/usr/bin/env python3
"""cellvm MMDS benchmark: prints one line, asserts nothing.

    /usr/bin/python3 bench/mmds.py --cellvm build/cellvm --kernel K --initrd I

Boots one guest on a NAT NIC with --mmds (V1, then V2), puts a small
document through the API and has the guest's http-req (guest/tests/http.c,
in the test initramfs) time --count GETs one after another on one
keep-alive connection, and busybox wget time --conns GETs with a new
connection each. No root needed.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

CMDLINE = "console=ttyS0 reboot=k panic=-1 quiet"
DOC = {"latest": {"meta-data": {"ami-id": "ami-12345678", "instance-id": "i-0123456789"}}}


def api_put(sock_path, path, body, timeout=60):
    deadline = time.monotonic() + timeout
    while not os.path.exists(sock_path):
        if time.monotonic() > deadline:
            sys.exit(f"bench-mmds: no API socket {sock_path}")
        time.sleep(0.02)
    data = json.dumps(body).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    status = s.recv(4096).split(b" ")[1]
    s.close()
    if status != b"204":
        sys.exit(f"bench-mmds: PUT {path} answered {status.decode()}")


def guest_script(version, count, conns):
    """The guest's command (on the kernel command line, so without quotes,
    which the kernel would take)."""
    tok = ""
    if version == "V2":
        tok = "T=$(http-req -X PUT -H X-metadata-token-ttl-seconds:600 169.254.169.254 80 /latest/api/token | tail -n 1); "
    hdr = "-H X-metadata-token:$T" if tok else ""
    whdr = "--header X-metadata-token:$T" if tok else ""
    return ("ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add 169.254.169.254 dev eth0; "
            "until http-req -X PUT -H X-metadata-token-ttl-seconds:600 169.254.169.254 80 /latest/api/token "
            ">/dev/null; do sleep 0.1; done; " + tok +
            f"http-req -n {count} {hdr} 169.254.169.254 80 /latest/meta-data/ami-id; "
            f"read s _ </proc/uptime; i=0; while [ $i -lt {conns} ]; do "
            f"wget -q -O /dev/null {whdr} http://169.254.169.254/latest/meta-data/ami-id || break; i=$((i+1)); done; "
            f"read e _ </proc/uptime; echo MMDS-CONNS n=$i from=$s to=$e")


def run(args, version):
    with tempfile.TemporaryDirectory(prefix="cv-bench-mmds-") as d:
        sock = os.path.join(d, "api.sock")
        cmd = [args.cellvm, "run", "--kernel", args.kernel, "--initrd", args.initrd, "--memory", "256M",
               "--net", "nat", "--mmds", f"nics=net0,version={version}", "--api-sock", sock,
               "--cmdline", f"{CMDLINE} -- {guest_script(version, args.count, args.conns)}"]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        api_put(sock, "/mmds", DOC)
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            p.kill()
            sys.exit(f"bench-mmds: {version} guest did not finish")
    lat = re.search(r"HTTP-LATENCY n=(\d+) avg_us=(\d+) min_us=(\d+) max_us=(\d+)", out)
    conns = re.search(r"MMDS-CONNS n=(\d+) from=([\d.]+) to=([\d.]+)", out)
    if not lat or not conns or int(conns.group(1)) == 0:
        sys.exit(f"bench-mmds: {version}: no figures\n{out[-2000:]}\n{err[-2000:]}")
    secs = float(conns.group(3)) - float(conns.group(2))  # /proc/uptime: 10 ms steps
    return int(lat.group(2)), int(lat.group(3)), int(lat.group(4)), secs * 1000 / int(conns.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cellvm", default="build/cellvm")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=100)
    args = ap.parse_args()
    parts = []
    for version in ("V1", "V2"):
        avg, lo, hi, per_conn = run(args, version)
        parts.append(f"{version} {avg} us/GET ({lo}..{hi}) keep-alive, {per_conn:.1f} ms/GET with wget "
                     "(new connection)")
    print(f"mmds: {'; '.join(parts)}; {args.count} GETs, {args.conns} connections, guest-measured")


if __name__ == "__main__":
    main()
