#!/usr/bin/python3
"""Writes seed inputs for a fuzz target into a corpus directory: small, valid
instances of the format it parses, so the fuzzer starts from structure
instead of rediscovering magic numbers and CRCs.

    scripts/fuzz-seeds.py TARGET DIR
"""
import io
import json
import struct
import sys
import tarfile
import zlib
from pathlib import Path


def section(ident: str, version: int, payload: bytes) -> bytes:
    name = ident.encode()
    return (struct.pack("<I", len(name)) + name + struct.pack("<IQI", version, len(payload),
                                                              zlib.crc32(payload)) + payload)


def state_file(sections) -> bytes:
    return b"CELLVMST" + struct.pack("<II", 1, len(sections)) + b"".join(sections)


def seeds_snapshot():
    s = lambda text: struct.pack("<I", len(text)) + text  # noqa: E731 - a string field
    config = (s(b"/vmlinux") + struct.pack("<I", 0xFFFFFFFF) + s(b"console=ttyS0") + s(b"vm") +
              struct.pack("<IQBBB", 1, 256 << 20, 0, 0, 0) + struct.pack("<I", 0) + struct.pack("<I", 0))
    serial = bytes(8) + b"\0" + bytes(1024) + struct.pack("<QQ", 0, 0) + b"\0"
    yield "config", state_file([section("config", 1, config)])
    yield "devices", state_file([section("serial", 1, serial), section("pm", 1, bytes(7)),
                                 section("pci-host", 1, bytes(4 + 256))])
    yield "empty", state_file([])


def seeds_migrate():
    rec = lambda t, payload: struct.pack("<II", t, len(payload)) + payload  # noqa: E731 - one record
    hello = rec(1, b"CELLVMIG" + struct.pack("<I", 1) + b"fuzz")
    ram = rec(2, struct.pack("<Q", 16 << 20))
    pages = rec(3, struct.pack("<IQ", 1, 7) + bytes(range(256)) * 16)
    state = rec(4, state_file([]))
    yield "whole", hello + ram + pages + state + rec(5, b"")
    # copy_storage: a 1 MiB raw disk, a data run and a zero run on it.
    name = lambda b: struct.pack("<H", len(b)) + b  # noqa: E731 - a u16-length string
    disks = rec(7, struct.pack("<IQBBB", 1, 1 << 20, 1, 0, 0) + name(b"/src/disk.img") + name(b"disk0"))
    data = rec(8, struct.pack("<IIQI", 0, 0, 65536, 4096) + bytes(range(256)) * 16)
    zero = rec(8, struct.pack("<IIQI", 0, 1, 0, 65536))
    yield "disks", hello + ram + disks + data + zero + pages + state + rec(5, b"")
    yield "hello", hello
    yield "stranger", rec(1, b"CELLVMIG" + struct.pack("<I", 1) + b"guess")


def seeds_vsock():
    def pkt(op, src, dst, payload=b"", flags=0, buf_alloc=65536, fwd=0):
        return struct.pack("<QQIIIHHIII", 3, 2, src, dst, len(payload), 1, op, flags, buf_alloc,
                           fwd) + payload
    # REQUEST to host port 1 (a listener), data, credit traffic, shutdown, RST.
    yield "session", (pkt(1, 1000, 1) + pkt(5, 1000, 1, b"guest bytes") + pkt(7, 1000, 1) +
                      pkt(6, 1000, 1, fwd=10) + pkt(4, 1000, 1, flags=3) + pkt(3, 1000, 1))
    yield "unknown", pkt(5, 7, 9, b"x") + pkt(1, 8, 99)
    yield "response", pkt(2, 5, 1 << 30)


def seeds_http():
    # Byte 0: 0 = requests (pipelined), 1 = responses.
    yield "get", b"\0GET /machine-config HTTP/1.1\r\nHost: localhost\r\n\r\n"
    yield "pipelined", (b"\0PUT /actions HTTP/1.1\r\nContent-Length: 32\r\nExpect: 100-continue\r\n\r\n"
                        b'{"action_type": "InstanceStart"}' + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    yield "response", b"\1HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 204 No Content\r\n\r\n"


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def seeds_api():
    # Byte 0: 0 = HTTP requests to the dispatcher, 1 = a --config-file.
    # /proc/self/exe: a regular file that exists wherever the fuzzer runs.
    boot = b'{"kernel_image_path": "/proc/self/exe", "boot_args": "console=ttyS0"}'
    drive = b'{"drive_id": "rootfs", "path_on_host": "/proc/self/exe", "is_root_device": true, "is_read_only": true}'
    machine = b'{"vcpu_count": 2, "mem_size_mib": 256}'
    nic = b'{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "02:00:00:00:00:01"}'
    yield "boot", (b"\0" + http_request("PUT", "/boot-source", boot) + http_request("PUT", "/drives/rootfs", drive) +
                   http_request("PUT", "/machine-config", machine) + http_request("PUT", "/network-interfaces/eth0", nic) +
                   http_request("PUT", "/metrics", b'{"metrics_path": "m"}') +
                   http_request("PUT", "/actions", b'{"action_type": "InstanceStart"}') +
                   http_request("PATCH", "/vm", b'{"state": "Paused"}') +
                   http_request("PUT", "/snapshot/create", b'{"snapshot_path": "s", "mem_file_path": "m"}') +
                   http_request("GET", "/vm/config") + http_request("PATCH", "/drives/rootfs",
                                                                    b'{"drive_id": "rootfs", "path_on_host": "/proc/self/exe"}'))
    limiter = (b'{"bandwidth": {"size": 1048576, "one_time_burst": 4096, "refill_time": 500}, '
               b'"ops": {"size": 100, "refill_time": 1000}}')
    ldrive = (b'{"drive_id": "data", "path_on_host": "/proc/self/exe", "is_root_device": false, '
              b'"cache_type": "Writeback", "io_engine": "Async", "rate_limiter": ' + limiter + b'}')
    lnic = b'{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": ' + limiter + b'}'
    yield "limits", (b"\0" + http_request("PUT", "/boot-source", boot) + http_request("PUT", "/drives/data", ldrive) +
                     http_request("PUT", "/network-interfaces/eth0", lnic) +
                     http_request("PUT", "/entropy", b'{"rate_limiter": ' + limiter + b'}') +
                     http_request("PUT", "/actions", b'{"action_type": "InstanceStart"}') +
                     http_request("PATCH", "/drives/data", b'{"drive_id": "data", "rate_limiter": {"ops": '
                                  b'{"size": 0, "refill_time": 0}}}') +
                     http_request("PATCH", "/network-interfaces/eth0", b'{"iface_id": "eth0", "tx_rate_limiter": '
                                  + limiter + b'}') +
                     http_request("GET", "/vm/config"))
    yield "get", b"\0" + http_request("GET", "/") + http_request("GET", "/machine-config") + http_request("GET", "/migrate")
    yield "config", (b'\1{"boot-source": ' + boot + b', "drives": [' + drive + b'], "machine-config": ' + machine +
                     b', "network-interfaces": [' + nic + b'], "logger": {"log_path": "l", "level": "Info"}, '
                     b'"entropy": {"rate_limiter": {"ops": {"size": 10, "refill_time": 100}}}}')


def seeds_options():
    args = ["--kernel", "/vmlinux", "--memory", "512M", "--cpus", "2,pin=0-1,quota=150%",
            "--disk", "disk.img,format=raw,readonly=on", "--net", "tap=tap0,mac=02:00:00:00:00:01",
            "--cmdline", "console=ttyS0"]
    yield "run", b"\0".join(a.encode() for a in args)
    yield "minimal", b"--kernel\0k"
    fc = ["--api-sock", "/run/fc.sock", "--id", "vm-1", "--level=Debug", "--show-level", "--metrics-path", "m",
          "--http-api-max-payload-size", "100000", "--mmds-size-limit", "4096", "--no-seccomp"]
    yield "firecracker", b"\0".join(a.encode() for a in fc)
    jailer = ["--id", "vm-1", "--exec-file", "/proc/self/exe", "--uid", "1000", "--gid", "1000",
              "--chroot-base-dir", "/srv/jailer", "--cgroup", "cpu.max=50000", "--daemonize", "--", "--level", "Info"]
    yield "jailer", b"\0".join(a.encode() for a in jailer)


def seeds_loaders():
    # Byte 0: 0 = bzImage, 1 = ELF, 2 = by content.
    bz = bytearray(1024 + 512)
    bz[0x1f1] = 1  # setup_sects
    struct.pack_into("<H", bz, 0x1fe, 0xAA55)
    bz[0x200:0x202] = b"\xeb\x66"
    bz[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", bz, 0x206, 0x020F)
    struct.pack_into("<H", bz, 0x236, 1)  # XLF_KERNEL_64
    struct.pack_into("<QI", bz, 0x258, 0x100000, 0x10000)  # pref_address, init_size
    yield "bzimage", b"\0" + bytes(bz)
    code = b"\xf4" * 16
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x1000000, 64, 0, 0, 64, 56,
                                                                1, 64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 120, 0x1000000, 0x100000, len(code), 0x2000, 0x1000)
    yield "elf", b"\1" + ehdr + phdr + code
    yield "probe", b"\2" + ehdr + phdr + code


def ip_checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def dhcp_frame(msg_type: int, extra: bytes = b"") -> bytes:
    mac = bytes([2, 0, 0, 0, 0, 2])
    bootp = (struct.pack("!BBBBIHH", 1, 1, 6, 0, 0x12345678, 0, 0x8000) + bytes(16) + mac + bytes(10) + bytes(192) +
             b"\x63\x82\x53\x63" + bytes([53, 1, msg_type]) + extra + b"\xff")
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp


def seeds_dhcp():
    yield "discover", dhcp_frame(1, bytes([55, 3, 1, 3, 6]))
    yield "request", dhcp_frame(3, bytes([50, 4, 10, 0, 0, 2, 54, 4, 10, 0, 0, 1]))
    yield "release", dhcp_frame(7)


def qcow2_image() -> bytes:
    """A v3 qcow2 of 64 KiB with 512-byte clusters: header, L1, refcount
    table, refcount block, one L2 table and one data cluster."""
    cs = 512
    size = 64 << 10
    l1, rt, rb, l2, data = 1 * cs, 2 * cs, 3 * cs, 4 * cs, 5 * cs
    l1_entries = size // (cs * (cs // 8)) or 1
    hdr = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 0, 0, 9, size, 0, l1_entries, l1, rt, 1, 0, 0, 0, 0, 0,
                      4, 104)
    img = bytearray(6 * cs)
    img[:len(hdr)] = hdr
    struct.pack_into(">II", img, len(hdr), 0, 0)  # end of header extensions
    struct.pack_into(">Q", img, l1, l2 | 1 << 63)
    struct.pack_into(">Q", img, rt, rb)
    for i in range(6):
        struct.pack_into(">H", img, rb + 2 * i, 1)
    struct.pack_into(">Q", img, l2, data | 1 << 63)
    img[data:data + cs] = bytes(range(256)) * 2
    return bytes(img)


def with_backing(img: bytes, name: bytes) -> bytes:
    b = bytearray(img)
    off = 104 + 8 + 8
    b[off:off + len(name)] = name
    struct.pack_into(">QI", b, 8, off, len(name))
    return bytes(b)


def seeds_qcow2():
    ops = bytes([0, 0, 0, 7,  1, 8, 0, 3,  5, 0, 0, 127,  2, 16, 0, 0,  3, 32, 0, 1,  6, 0, 0, 7,  4, 0, 0, 0])
    n = bytes([len(ops) // 4])
    yield "plain", n + ops + qcow2_image()
    yield "backing", n + ops + with_backing(qcow2_image(), b"base.raw")
    yield "escape", n + ops + with_backing(qcow2_image(), b"../../etc/passwd")


def vq_ram(queue: int, chains) -> bytes:
    """Guest RAM with one queue's rings (0x200 bytes per queue, 16
    entries) holding `chains`: lists of (addr, len, flags) descriptors,
    and data from 0x1000 on."""
    ram = bytearray(0x2000)
    base, desc = 0x200 * queue, 0
    for n, chain in enumerate(chains):
        head = desc
        for k, (addr, length, flags) in enumerate(chain):
            nxt = desc + 1 if k + 1 < len(chain) else 0
            struct.pack_into("<QIHH", ram, base + 16 * desc, addr, length, flags | (1 if k + 1 < len(chain) else 0), nxt)
            desc += 1
        struct.pack_into("<H", ram, base + 0x100 + 4 + 2 * n, head)
    struct.pack_into("<HH", ram, base + 0x100, 0, len(chains))
    return bytes(ram)


def seeds_virtio():
    # Header: device (0 blk, 1 net, 2 console, 3 rng), log2 queue size,
    # features (u16: device bits, 0x100 EVENT_IDX, 0x200 INDIRECT_DESC, 0x400 MMDS), rounds.
    hdr = lambda dev, feat=0: struct.pack("<BBHB", dev, 4, feat, 1)  # noqa: E731 - the input header
    W = 2  # VRING_DESC_F_WRITE
    blk_read = struct.pack("<IIQ", 0, 0, 8)  # VIRTIO_BLK_T_IN, sector 8
    blk_write = struct.pack("<IIQ", 1, 0, 16)
    ram = bytearray(vq_ram(0, [[(0x1000, 16, 0), (0x1100, 512, W), (0x1400, 1, W)],
                                [(0x1010, 16, 0), (0x1600, 512, 0), (0x1401, 1, W)]]))
    ram[0x1000:0x1010] = blk_read
    ram[0x1010:0x1020] = blk_write
    yield "blk", hdr(0) + bytes(ram)
    yield "blk-event-idx", hdr(0, 0x300) + bytes(ram)
    # virtio-net transmits on queue 1: a 12-byte header and a frame.
    ram = bytearray(vq_ram(1, [[(0x1000, 12, 0), (0x1100, 60, 0)]]))
    ram[0x1100:0x110e] = b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x06"
    yield "net-tx", hdr(1) + bytes(ram)
    yield "net-rx", hdr(1) + vq_ram(0, [[(0x1000, 1526, W)], [(0x1800, 12, W), (0x1900, 100, W)]])
    # With the MMDS (0x400): an ARP request for it sent, a buffer posted for the reply.
    ram = bytearray(vq_ram(1, [[(0x1000, 12, 0), (0x1100, 42, 0)]]))
    ram[0:0x200] = vq_ram(0, [[(0x1800, 1526, W)]])[0:0x200]
    ram[0x1100:0x112a] = (b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x06" +
                          bytes([0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 2, 15]) + bytes(6) +
                          bytes([169, 254, 169, 254]))
    yield "net-mmds-arp", hdr(1, 0x400) + bytes(ram)
    ram = bytearray(vq_ram(1, [[(0x1000, 6, 0)]]))
    ram[0x1000:0x1006] = b"hello\n"
    yield "console-tx", hdr(2) + bytes(ram)
    yield "console-rx", hdr(2) + vq_ram(0, [[(0x1000, 64, W)]])
    yield "rng", hdr(3) + vq_ram(0, [[(0x1000, 64, W)], [(0x1040, 16, W), (0x1080, 16, W)]])


def seeds_transport():
    # One access: region | 0x80 for a write (0 ports, 1 ECAM, 2 virtio-pci
    # BAR, 3 virtio-mmio), log2 size, offset (u32), value (u64).
    acc = lambda region, size, off, value=0, write=False: struct.pack(  # noqa: E731 - one access
        "<BBIQ", region | (0x80 if write else 0), {1: 0, 2: 1, 4: 2, 8: 3}[size], off, value)
    dev = 1 << 15  # ECAM: device 1 on bus 0
    yield "pci-config", (acc(1, 4, dev) + acc(1, 2, dev + 4, 6, True) + acc(1, 4, dev + 0x10) +
                         acc(1, 4, dev + 0x10, 0xFFFFFFFF, True) + acc(1, 4, dev + 0x10) + acc(1, 1, dev + 0x34) +
                         acc(0, 4, 0, 0x80000800, True) + acc(0, 4, 4) + acc(0, 2, 6))
    yield "virtio-pci", (acc(1, 2, dev + 4, 6, True) + acc(2, 4, 0x04) + acc(2, 1, 0x14, 1, True) +
                         acc(2, 1, 0x14, 3, True) + acc(2, 2, 0x16, 0, True) + acc(2, 2, 0x18) +
                         acc(2, 8, 0x20, 0x1000, True) + acc(2, 2, 0x1c, 1, True) + acc(2, 1, 0x14, 0xF, True))
    yield "virtio-mmio", (acc(3, 4, 0) + acc(3, 4, 0x70, 1, True) + acc(3, 4, 0x70, 3, True) + acc(3, 4, 0x30, 0, True) +
                          acc(3, 4, 0x38, 8, True) + acc(3, 4, 0x80, 0x1000, True) + acc(3, 4, 0x44, 1, True) +
                          acc(3, 4, 0x70, 0xF, True) + acc(3, 4, 0x50, 0, True) + acc(3, 4, 0x60) + acc(3, 4, 0x100))


def tar(members, compression: str = "") -> bytes:
    """A pax archive of (name, bytes or None for a directory)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:" + compression, format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def seeds_import():
    # Byte 0: bit 0 set = import under the name "fuzzvm".
    config = json.dumps({"boot-source": {"kernel_image_path": "vmlinux", "boot_args": "console=ttyS0"},
                         "drives": [{"drive_id": "rootfs", "path_on_host": "disk.img", "is_root_device": True,
                                     "is_read_only": False}],
                         "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}).encode()
    vm = [("vm1", None), ("vm1/vm.json", config), ("vm1/vmlinux", b"\x7fELF" + bytes(60)),
          ("vm1/disk.img", bytes(4096) + b"data" + bytes(4092))]
    yield "vm", b"\0" + tar(vm)
    yield "named", b"\1" + tar(vm, "gz")
    meta = json.dumps({"name": "s1"}).encode()
    yield "snapshots", b"\0" + tar(vm + [("vm1/snapshots", None), ("vm1/snapshots/s1", None),
                                         ("vm1/snapshots/s1/meta.json", meta), ("vm1/snapshots/s1/state", b"CELLVMST")])


def seeds_mmds():
    """Inputs for fuzz_mmds: an ARP request, then a handshake and an HTTP
    request as TCP segments (kind 1, ACKs relative to the SYN-ACK) with
    drains (kind 2) between them."""
    def step(kind, b=b""):
        return bytes([kind]) + struct.pack(">H", len(b)) + b

    def tcp(seq, ack, flags, payload=b""):
        return struct.pack(">HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload

    arp = (bytes(12) + b"\xff" * 6 + bytes([0x52, 0x54, 0, 1, 2, 3]) + b"\x08\x06" +
           bytes([0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 1, 2, 3, 10, 0, 2, 15]) + bytes(6) +
           bytes([169, 254, 169, 254]))
    get = b"GET /latest/meta-data HTTP/1.1\r\nAccept: application/json\r\n\r\n"
    put = b"PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n"
    for name, version, req in (("v1-get", 0, get), ("v2-token", 1, put)):
        yield name, (bytes([version]) + step(0, arp) + step(2) + step(1, tcp(1000, 0, 0x02)) + step(2) +
                     step(1, tcp(1001, 0, 0x10, req)) + step(2) + step(1, tcp(1001 + len(req), 0, 0x11)) +
                     step(2))


def seeds_balloon():
    """Guest RAM with an inflate request of four PFNs (queue 0 at 0: one
    descriptor, one avail entry), then a balloon snapshot section."""
    ram = bytearray(0x8000)
    struct.pack_into("<QIHH", ram, 0, 0x6000, 16, 0, 0)       # desc 0: 16 bytes at 0x6000
    struct.pack_into("<HHH", ram, 0x100, 0, 1, 0)             # avail: idx 1, ring[0] = 0
    struct.pack_into("<4I", ram, 0x6000, 0x10, 0x11, 0xfffff, 0xffffffff)
    section = struct.pack("<III", 16, 1, 0x30) + bytes(8 * 17)
    yield "inflate", bytes(ram) + section
    yield "empty", b""


SEEDS = {"fuzz_snapshot": seeds_snapshot, "fuzz_migrate": seeds_migrate, "fuzz_http": seeds_http, "fuzz_api": seeds_api,
         "fuzz_options": seeds_options, "fuzz_loaders": seeds_loaders, "fuzz_dhcp": seeds_dhcp, "fuzz_qcow2": seeds_qcow2,
         "fuzz_virtio": seeds_virtio, "fuzz_transport": seeds_transport,
         "fuzz_import": seeds_import, "fuzz_vsock": seeds_vsock, "fuzz_balloon": seeds_balloon,
         "fuzz_mmds": seeds_mmds}


def main():
    target, out = sys.argv[1], Path(sys.argv[2])
    if target not in SEEDS:
        sys.exit(f"fuzz-seeds: no seeds for '{target}'")
    out.mkdir(parents=True, exist_ok=True)
    for name, data in SEEDS[target]():
        (out / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
