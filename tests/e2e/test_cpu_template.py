"""CPU templates: a static one (C3) or a custom one in Firecracker's
cpu-config JSON, given on the command line, in a config file or through
the API, changes the CPU flags the guest sees; bad ones are refused with
one line.

On a PVM host the guest kernel gets leaves 1 and 7 from the host CPU
rather than from the VMM's table (its PV CPUID path), so there the checks
use the extended leaf 0x80000001, which it does take from the table."""
import json
import os

import pytest

from conftest import BOOT_TIMEOUT, DEFAULT_CMDLINE, refused, require_bin, vm_args
from test_api import curl, wait_sock

pytestmark = pytest.mark.vm

PVM = os.path.exists("/sys/module/kvm_pvm")
# Flags of CPUID 0x80000001 ecx (Intel and AMD) that C3 hides, and of leaves 1 and 7.
C3_EXT = {"abm", "cmp_legacy", "cr8_legacy", "misalignsse", "osvw", "topoext", "sse4a", "xop", "fma4", "tbm",
          "perfctr_core", "perfctr_nb", "svm", "extapic", "ibs", "skinit", "wdt", "lwp", "mwaitx"}
C3_BASE = {"fma", "movbe", "avx2", "bmi1", "bmi2", "adx", "sha_ni", "avx512f", "rdseed", "vmx"}
NO_LAHF = {"cpuid_modifiers": [{"leaf": "0x80000001", "subleaf": "0x0", "flags": 0, "modifiers": [
    {"register": "ecx", "bitmap": "0b" + "x" * 31 + "0"}]}]}


def flags(g):
    out, rc = g.run("grep -m1 '^flags' /proc/cpuinfo", 60)
    assert rc == 0, out
    line = next(l for l in out.splitlines() if l.startswith("flags"))
    return set(line.split(":", 1)[1].split())


def booted(spawn, kernel, initrd, extra=()):
    g = spawn(vm_args(kernel, initrd, DEFAULT_CMDLINE, "256M", None, extra))
    g.wait_ready(BOOT_TIMEOUT)
    return g


def test_static_template(spawn, kernel, initrd, kvm_available):
    plain = flags(booted(spawn, kernel, initrd))
    c3 = flags(booted(spawn, kernel, initrd, ["--cpu-template", "C3"]))
    assert plain & C3_EXT, "no extended-leaf flag for C3 to hide on this host"
    assert not c3 & C3_EXT, c3 & C3_EXT
    assert "lahf_lm" in c3 and "sse2" in c3 and "lm" in c3
    if not PVM:
        assert not c3 & C3_BASE, c3 & C3_BASE


def test_custom_template_file(spawn, kernel, initrd, kvm_available, tmp_path):
    path = tmp_path / "no-lahf.json"
    path.write_text(json.dumps(NO_LAHF))
    assert "lahf_lm" in flags(booted(spawn, kernel, initrd))
    g = booted(spawn, kernel, initrd, ["--cpu-template", str(path)])
    assert "lahf_lm" not in flags(g)
    out, rc = g.run("echo still-fine", 30)
    assert rc == 0 and "still-fine" in out


def test_api_cpu_config(spawn, tmp_path, kernel, initrd, kvm_available):
    sock = str(tmp_path / "api.sock")
    g = spawn([require_bin(), "run", "--api-sock", sock])
    wait_sock(g, sock)
    assert curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256, "cpu_template": "C3"})[0] == 204
    assert curl(sock, "GET", "/machine-config")[1]["cpu_template"] == "C3"
    code, body = curl(sock, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 256, "cpu_template": "M5"})
    assert code == 400 and "'M5'" in body["fault_message"]
    code, body = curl(sock, "PUT", "/cpu-config", {"msr_modifiers": [{"addr": "0x10a", "bitmap": "0b1"}]})
    assert code == 400 and "msr_modifiers" in body["fault_message"]
    assert curl(sock, "PUT", "/cpu-config", NO_LAHF)[0] == 204
    assert curl(sock, "PUT", "/boot-source", {"kernel_image_path": kernel, "initrd_path": str(initrd),
                                              "boot_args": DEFAULT_CMDLINE})[0] == 204
    assert curl(sock, "PUT", "/actions", {"action_type": "InstanceStart"})[0] == 204
    g.wait_ready(BOOT_TIMEOUT)
    assert "lahf_lm" not in flags(g)
    cfg = curl(sock, "GET", "/vm/config")[1]
    assert cfg["cpu-config"]["cpuid_modifiers"][0]["modifiers"][0]["bitmap"] == NO_LAHF["cpuid_modifiers"][0][
        "modifiers"][0]["bitmap"]
    code, body = curl(sock, "PUT", "/cpu-config", NO_LAHF)
    assert code == 400 and "after starting" in body["fault_message"]


def test_bad_templates(kernel, tmp_path):
    refused(["--kernel", kernel, "--cpu-template", "M5"], "invalid cpu template 'M5'")
    refused(["--kernel", kernel, "--cpu-template", str(tmp_path / "none.json")], "none.json", "No such file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"cpuid_modifiers": [{"leaf": "0x1", "subleaf": "0", "flags": 0, "modifiers": '
                   '[{"register": "eax", "bitmap": "0b01"}]}]}')
    refused(["--kernel", kernel, "--cpu-template", str(bad)], "bad.json", "invalid bitmap '0b01'")
