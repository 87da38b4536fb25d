"""The MMDS (Firecracker's metadata service) end to end: guests ask
169.254.169.254 (or the configured address) with busybox wget and the test
initramfs's http-req (guest/tests/http.c, for PUT and raw answers), V1 and
V2 with session tokens, PATCHes seen by the guest, a NIC not named in
network_interfaces that does not reach it, a tap NIC configured through the
API, a snapshot and restore, and the API's status codes and messages."""
import json
import re
import subprocess

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, require_bin, vm_args
from test_api import curl, netns_tap, wait_sock  # noqa: F401 (fixture)
from test_snapshot import restore, snapshot

pytestmark = pytest.mark.vm

DATA = {"latest": {"meta-data": {"ami-id": "ami-12345678", "reservation-id": "r-fea54097",
                                 "network": {"interfaces": {"macs": {}}}},
                   "user-data": "hello"}}
MMDS = "169.254.169.254"


def nat_guest(spawn, tmp_path, kernel, initrd, mmds, nets=("nat",), name="mmds"):
    """A guest on NAT NICs with --mmds, its API socket, its eth0 set up
    and the MMDS routed through it."""
    sock = str(tmp_path / f"{name}.sock")
    extra = ["--name", name, "--api-sock", sock, "--mmds", mmds]
    for n in nets:
        extra += ["--net", n]
    g = spawn(vm_args(kernel, initrd, extra=extra))
    wait_sock(g, sock)
    g.wait_ready(BOOT_TIMEOUT)
    guest_net(g)
    return g, sock


def guest_net(g, iface="eth0", addr="10.0.2.15/24", route=MMDS):
    out, status = g.run(f"ip link set {iface} up && ip addr add {addr} dev {iface} && "
                        f"ip route add {route} dev {iface}")
    assert status == 0, out


def wget(g, path, *headers, addr=MMDS):
    hdr = " ".join(f"--header '{h}'" for h in headers)
    return g.run(f"wget -q -O - {hdr} http://{addr}{path}")


def http_req(g, path, *headers, method="GET", addr=MMDS):
    """(status, body) of one request through http-req."""
    hdr = " ".join(f"-H '{h}'" for h in headers)
    out, _ = g.run(f"http-req -X {method} {hdr} {addr} 80 {path}")
    m = re.search(r"HTTP-STATUS (\d+)\n(.*)", out, re.S)
    assert m, out
    return int(m.group(1)), m.group(2).rstrip("\n")


def token(g, ttl=60):
    status, tok = http_req(g, "/latest/api/token", f"X-metadata-token-ttl-seconds: {ttl}", method="PUT")
    assert status == 200 and len(tok) == 48, tok
    return tok


def test_v1_imds_json_and_patch(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = nat_guest(spawn, tmp_path, kernel, initrd, "nics=net0")
    assert curl(sock, "PUT", "/mmds", DATA)[0] == 204
    assert wget(g, "/latest/meta-data/ami-id") == ("ami-12345678", 0)
    out, status = wget(g, "/latest/meta-data/")
    assert status == 0 and out.split("\n") == ["ami-id", "network/", "reservation-id"], out
    out, status = wget(g, "/latest/meta-data", "Accept: application/json")
    assert status == 0 and json.loads(out) == DATA["latest"]["meta-data"], out
    assert http_req(g, "/latest/nothing") == (404, "Resource not found: /latest/nothing.")
    assert http_req(g, "/", method="POST") == (405, "Not allowed HTTP method.")
    # A PATCH is what the next request sees.
    assert curl(sock, "PATCH", "/mmds", {"latest": {"meta-data": {"ami-id": "ami-87654321",
                                                                  "reservation-id": None}}})[0] == 204
    assert wget(g, "/latest/meta-data/ami-id") == ("ami-87654321", 0)
    assert http_req(g, "/latest/meta-data/reservation-id")[0] == 404
    # V1 answers with a token too, and with a wrong one.
    tok = token(g)
    assert wget(g, "/latest/user-data", f"X-metadata-token: {tok}") == ("hello", 0)
    assert wget(g, "/latest/user-data", "X-metadata-token: wrong") == ("hello", 0)
    # Many requests on one connection, and many connections one after another.
    out, status = g.run(f"http-req -n 200 {MMDS} 80 /latest/user-data")
    assert status == 0 and "HTTP-LATENCY n=200" in out, out
    out, status = g.run("i=0; while [ $i -lt 40 ]; do wget -q -O - http://169.254.169.254/latest/user-data"
                        " >/dev/null || break; i=$((i+1)); done; echo done=$i")
    assert "done=40" in out, out
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_v2_tokens_expiry_and_refusals(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = nat_guest(spawn, tmp_path, kernel, initrd, "nics=net0,version=V2,address=169.254.170.2")
    addr = "169.254.170.2"
    assert g.run(f"ip route add {addr} dev eth0")[1] == 0
    assert curl(sock, "PUT", "/mmds", DATA)[0] == 204
    assert http_req(g, "/latest/user-data", addr=addr) == (
        401, "No MMDS token provided. Use `X-metadata-token` or `X-aws-ec2-metadata-token` header to "
             "specify the session token.")
    assert http_req(g, "/latest/user-data", "X-metadata-token: wrong", addr=addr) == (401, "MMDS token not valid.")
    out, status = wget(g, "/latest/user-data", "X-metadata-token: wrong", addr=addr)
    assert status != 0 and "401" in out, out
    status, tok = http_req(g, "/latest/api/token", "X-metadata-token-ttl-seconds: 60", method="PUT", addr=addr)
    assert status == 200
    assert wget(g, "/latest/user-data", f"X-metadata-token: {tok}", addr=addr) == ("hello", 0)
    assert wget(g, "/latest/user-data", f"X-aws-ec2-metadata-token: {tok}", addr=addr) == ("hello", 0)
    assert http_req(g, "/latest/api/token", "X-metadata-token-ttl-seconds: 21601", method="PUT", addr=addr) == (
        400, "Invalid time to live value provided for token: 21601. Please provide a value between 1 and 21600.")
    assert http_req(g, "/latest/api/token", method="PUT", addr=addr)[0] == 400
    # A token of one second no longer opens anything once that second passed.
    status, short = http_req(g, "/latest/api/token", "X-metadata-token-ttl-seconds: 1", method="PUT", addr=addr)
    assert status == 200
    g.run("sleep 2")
    assert http_req(g, "/latest/user-data", f"X-metadata-token: {short}", addr=addr) == (
        401, "MMDS token not valid.")
    assert wget(g, "/latest/user-data", f"X-metadata-token: {tok}", addr=addr) == ("hello", 0)
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_other_nic_does_not_reach_it(spawn, tmp_path, kernel, initrd, kvm_available):
    # eth1 cannot reach anything (restrict=on), so nothing there answers for the MMDS address.
    g, sock = nat_guest(spawn, tmp_path, kernel, initrd, "nics=net0", nets=("nat", "nat,restrict=on"))
    assert curl(sock, "PUT", "/mmds", DATA)[0] == 204
    assert wget(g, "/latest/user-data") == ("hello", 0)
    out, status = g.run(f"ip link set eth1 up && ip addr add 10.0.3.15/24 dev eth1 && ip route del {MMDS} && "
                        f"ip route add {MMDS} dev eth1 && timeout 10 http-req {MMDS} 80 /latest/user-data")
    assert status != 0 and "HTTP-STATUS" not in out, out
    out, status = g.run(f"ip route del {MMDS}; ip route add {MMDS} dev eth0; wget -q -O - http://{MMDS}/latest/user-data")
    assert (out, status) == ("hello", 0)
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


@pytest.mark.net
def test_tap_nic_configured_through_the_api(spawn, tmp_path, kernel, initrd, kvm_available, netns_tap):
    sock = str(tmp_path / "api.sock")
    g = spawn(["ip", "netns", "exec", netns_tap, require_bin(), "run", "--api-sock", sock, "--name", "tapmmds"])
    wait_sock(g, sock)
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "cvtap0"})[0] == 204
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"], "version": "V2"})[0] == 204
    assert curl(sock, "PUT", "/mmds", DATA)[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready(BOOT_TIMEOUT)
    guest_net(g, addr="10.98.0.2/24")
    tok = token(g)
    assert wget(g, "/latest/meta-data/ami-id", f"X-metadata-token: {tok}") == ("ami-12345678", 0)
    # The NIC's other traffic still goes to the tap.
    assert g.run("ping -c 1 -W 5 10.98.0.1")[1] == 0
    status, cfg = curl(sock, "GET", "/vm/config")
    assert status == 200 and cfg["mmds-config"] == {"version": "V2", "network_interfaces": ["eth0"],
                                                    "ipv4_address": MMDS, "imds_compat": False}
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"]}) == (
        400, {"fault_message": "The requested operation is not supported after starting the microVM."})
    g.send("poweroff")
    assert g.wait_exit() == 0, g.describe()


def test_survives_snapshot_and_restore(spawn, tmp_path, kernel, initrd, kvm_available):
    g, sock = nat_guest(spawn, tmp_path, kernel, initrd, "nics=net0,version=V2", name="snapmmds")
    assert curl(sock, "PUT", "/mmds", DATA)[0] == 204
    old = token(g)
    assert wget(g, "/latest/user-data", f"X-metadata-token: {old}") == ("hello", 0)
    snap = tmp_path / "snap"
    snapshot(sock, snap)
    g.close()
    sock2 = str(tmp_path / "restored.sock")
    r = restore(spawn, snap, extra=["--api-sock", sock2])
    wait_sock(r, sock2)
    # The data and the configuration came along; tokens of the old process do not open.
    assert curl(sock2, "GET", "/mmds") == (200, DATA)
    assert curl(sock2, "GET", "/vm/config")[1]["mmds-config"]["version"] == "V2"
    assert http_req(r, "/latest/user-data", f"X-metadata-token: {old}") == (401, "MMDS token not valid.")
    tok = token(r)
    assert wget(r, "/latest/user-data", f"X-metadata-token: {tok}") == ("hello", 0)
    assert curl(sock2, "PATCH", "/mmds", {"latest": {"user-data": "again"}})[0] == 204
    assert wget(r, "/latest/user-data", f"X-metadata-token: {tok}") == ("again", 0)
    r.send("poweroff")
    assert r.wait_exit() == 0, r.describe()


def test_api_status_codes_and_messages(spawn, tmp_path, kernel):
    sock = str(tmp_path / "api.sock")
    g = spawn([require_bin(), "run", "--api-sock", sock])
    wait_sock(g, sock)
    fault = lambda m: {"fault_message": m}  # noqa: E731
    assert curl(sock, "GET", "/mmds") == (200, {})
    assert curl(sock, "PATCH", "/mmds", {"a": 1}) == (
        400, fault("MMDS error: The MMDS data store is not initialized."))
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": []}) == (
        400, fault("MMMDS config error: The list of network interface IDs that allow forwarding MMDS "
                   "requests is empty."))
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"]}) == (
        400, fault("MMMDS config error: The list of network interface IDs provided contains at least one ID "
                   "that does not correspond to any existing network interface."))
    assert curl(sock, "PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "t0"})[0] == 204
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"], "ipv4_address": "10.0.0.1"}) == (
        400, fault("MMMDS config error: The MMDS IPv4 address is not link local."))
    assert curl(sock, "PUT", "/mmds/config", {"network_interfaces": ["eth0"], "version": "V2"})[0] == 204
    assert curl(sock, "PUT", "/mmds/x", {})[1] == fault("Unrecognized PUT request path `x`.")
    # The store's limit (51200 bytes of compact JSON): what does not fit changes nothing.
    half = "x" * 30000
    assert curl(sock, "PUT", "/mmds", {"a": half})[0] == 204
    assert curl(sock, "PATCH", "/mmds", {"b": half}) == (
        413, fault("MMDS limit exceeded error: The MMDS patch request doesn't fit."))
    assert curl(sock, "GET", "/mmds") == (200, {"a": half})
    cfg = tmp_path / "vm.json"
    cfg.write_text(json.dumps({"boot-source": {"kernel_image_path": kernel},
                               "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "t0"}],
                               "mmds-config": {"network_interfaces": ["eth1"]}}))
    res = subprocess.run([require_bin(), "run", "--config-file", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 2 and "does not correspond to any existing network interface" in res.stderr
    res = subprocess.run([require_bin(), "run", "--kernel", kernel, "--mmds", "nics=net1"], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2 and "--mmds" in res.stderr, res.stderr
    res = subprocess.run([require_bin(), "run", "--kernel", kernel, "--net", "nat", "--mmds", "address=8.8.8.8"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "address=8.8.8.8" in res.stderr, res.stderr
    g.signal(15)
    assert g.wait_exit() == 0
