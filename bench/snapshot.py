#!/usr/bin/python3
"""Snapshot benchmark (`make bench-snapshot`): numbers only, no assertions.

For a 128 MiB and a 2 GiB guest booted to its shell: the time of PUT
/snapshot/create (paused VM), the state and memory files' sizes (apparent and
allocated), then over several restores (`cellvm run --restore`) the time from
process start to the first guest instruction (cellvm's boot trace) and to the
guest answering a command on its console. QEMU, where installed, boots the
same kernel, saves with `migrate "exec:cat > FILE"` and restores with
`-incoming "exec:cat FILE"`, in the same run.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CMDLINE, Boot, qemu_argv  # noqa: E402

PROMPT = re.compile(rb"cellvm:\S*# ")


def request(sock, method, path, body=None):
    """One HTTP request on the API socket; (status code, the reply's body)."""
    data = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        reply = s.recv(65536)
    return int(reply.split()[1]), reply.partition(b"\r\n\r\n")[2]


def api(sock, method, path, body):
    """One HTTP request on the API socket; returns the status code."""
    return request(sock, method, path, body)[0]


def answer_time(b, timeout):
    """Types a command and waits for its output: seconds from spawn."""
    b.p.stdin.write(b"echo PO''NG\n")
    b.p.stdin.flush()
    return b.wait_for(re.compile(rb"PONG"), timeout)


def sizes(path):
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def create(sock, kind, snap):
    """One snapshot of the paused VM; its creation time in ms, or None."""
    os.makedirs(snap, exist_ok=True)
    t = time.monotonic()
    status = api(sock, "PUT", "/snapshot/create", {"snapshot_type": kind, "snapshot_path": f"{snap}/state",
                                                   "mem_file_path": f"{snap}/memory"})
    return (time.monotonic() - t) * 1000 if status == 204 else None


def restores(a, snap):
    """Median times of restores from snap: to the first vCPU instruction and
    to a guest answering on its console (ms), or None."""
    firsts, answers = [], []
    for _ in range(a.runs):
        r = Boot([a.cellvm, "run", "--restore", snap], env=dict(os.environ, CELLVM_BOOT_TRACE="1"))
        ans = answer_time(r, a.timeout)
        m = re.search(rb"first-kvm-run (\d+\.\d+)", r.err)
        r.stop()
        if ans is None or not m:
            return None
        firsts.append((float(m.group(1)) - r.t0) * 1000)
        answers.append(ans * 1000)
    return statistics.median(firsts), statistics.median(answers)


def cellvm_round(a, mib, d):
    """A Full snapshot of a booted guest, then a Diff one after a second of
    it idling, and restores of each."""
    sock = os.path.join(d, "api.sock")
    b = Boot([a.cellvm, "run", "--api-sock", sock])
    while not os.path.exists(sock):
        time.sleep(0.01)
    api(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": mib, "track_dirty_pages": True})
    api(sock, "PUT", "/boot-source", {"kernel_image_path": a.kernel, "initrd_path": a.initrd,
                                      "boot_args": CMDLINE})
    api(sock, "PUT", "/actions", {"action_type": "InstanceStart"})
    if b.wait_for(PROMPT, a.timeout) is None:
        b.stop()
        return None
    full, diff = os.path.join(d, "full"), os.path.join(d, "diff")
    api(sock, "PATCH", "/vm", {"state": "Paused"})
    full_ms = create(sock, "Full", full)
    api(sock, "PATCH", "/vm", {"state": "Resumed"})
    time.sleep(1)
    api(sock, "PATCH", "/vm", {"state": "Paused"})
    diff_ms = create(sock, "Diff", diff)
    b.stop()
    if full_ms is None or diff_ms is None:
        return None
    rf, rd = restores(a, full), restores(a, diff)
    if not rf or not rd:
        return None
    return {"create_ms": full_ms, "state": sizes(f"{full}/state"), "memory": sizes(f"{full}/memory"),
            "first_ms": rf[0], "answer_ms": rf[1], "diff_ms": diff_ms, "diff_memory": sizes(f"{diff}/memory"),
            "diff_first_ms": rd[0], "diff_answer_ms": rd[1]}


def qemu_monitor(path, command):
    """Runs one human-monitor command; its output (up to the next prompt)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.settimeout(10)
        out = b""
        while out.count(b"(qemu)") < 1:  # the banner's prompt
            out += s.recv(65536)
        s.sendall(command.encode() + b"\n")
        while out.count(b"(qemu)") < 2:
            out += s.recv(65536)
        return out.decode(errors="replace")


def qemu_round(a, mib, d):
    a.memory = mib
    mon = os.path.join(d, "qemu.mon")
    base = qemu_argv(a)
    b = Boot(base + ["-monitor", f"unix:{mon},server,nowait"])
    if b.wait_for(PROMPT, a.timeout) is None:
        b.stop()
        return None
    state = os.path.join(d, "qemu.state")
    t = time.monotonic()
    qemu_monitor(mon, f'migrate "exec:cat > {state}"')
    while "completed" not in qemu_monitor(mon, "info migrate"):
        if time.monotonic() - t > a.timeout:
            b.stop()
            return None
    create_ms = (time.monotonic() - t) * 1000
    b.stop()
    answers = []
    for _ in range(a.runs):
        r = Boot(base + ["-incoming", f"exec:cat {state}"])
        ans = answer_time(r, a.timeout)
        r.stop()
        if ans is None:
            why = r.err.decode(errors="replace").strip().splitlines()
            return {"create_ms": create_ms, "state": sizes(state),
                    "failed": why[0] if why else "the guest did not answer"}
        answers.append(ans * 1000)
    return {"create_ms": create_ms, "state": sizes(state), "answer_ms": statistics.median(answers)}


def mib(n):
    return f"{n / 1048576:.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cellvm", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    has_qemu = subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode == 0
    print(f"cellvm snapshot benchmark: load {os.getloadavg()[0]:.2f}, kernel {a.kernel}, "
          f"median of {a.runs} restores")
    for size in (128, 2048):
        with tempfile.TemporaryDirectory() as d:
            r = cellvm_round(a, size, d)
        if not r:
            print(f"cellvm {size} MiB: failed")
            continue
        print(f"cellvm {size:5d} MiB: create {r['create_ms']:.1f} ms, state {r['state'][0]} B, memory "
              f"{mib(r['memory'][0])} apparent / {mib(r['memory'][1])} on disk; restore: first instruction "
              f"{r['first_ms']:.1f} ms, answering {r['answer_ms']:.1f} ms")
        print(f"cellvm {size:5d} MiB: Diff after 1 s idle: create {r['diff_ms']:.1f} ms, memory "
              f"{mib(r['diff_memory'][1])} on disk; restore of the chain: first instruction "
              f"{r['diff_first_ms']:.1f} ms, answering {r['diff_answer_ms']:.1f} ms")
        if not has_qemu:
            continue
        with tempfile.TemporaryDirectory() as d:
            q = qemu_round(a, size, d)
        if not q:
            print(f"qemu   {size:5d} MiB: could not save/restore this kernel")
            continue
        if "failed" in q:
            print(f"qemu   {size:5d} MiB: save {q['create_ms']:.1f} ms, file {mib(q['state'][0])}; its restore "
                  f"failed: {q['failed']}")
            print(f"ratio  {size:5d} MiB: create cellvm/qemu {r['create_ms'] / q['create_ms']:.2f}")
            continue
        print(f"qemu   {size:5d} MiB: save {q['create_ms']:.1f} ms, file {mib(q['state'][0])}; restore: "
              f"answering {q['answer_ms']:.1f} ms")
        print(f"ratio  {size:5d} MiB: create cellvm/qemu {r['create_ms'] / q['create_ms']:.2f}, restore to "
              f"answer cellvm/qemu {r['answer_ms'] / q['answer_ms']:.2f}")
    if not has_qemu:
        print("qemu not installed (Debian package qemu-system-x86): no comparison")


if __name__ == "__main__":
    main()
