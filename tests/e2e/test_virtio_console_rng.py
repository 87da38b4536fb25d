"""virtio-console (hvc0 with --console virtio) and virtio-rng (/dev/hwrng) end to end."""

import hashlib
import random
import re

import pytest

from conftest import CMD_TIMEOUT, PROMPT_RE

pytestmark = pytest.mark.vm

TRANSPORTS = ["pci", "mmio"]
HVC_CMDLINE = "console=hvc0 reboot=k panic=-1 pti=on quiet"


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hvc0_console(boot, transport, tty):
    g = boot(cmdline=HVC_CMDLINE, tty=tty, extra=["--transport", transport, "--console", "virtio"])
    g.wait_ready()
    out, status = g.run("tty")
    assert (out.strip(), status) == ("/dev/hvc0", 0), g.describe()
    a, b = random.randint(1000, 9999), random.randint(1000, 9999)
    # The typed line holds "a*b+7"; only the shell's arithmetic prints the product.
    out, status = g.run(f"echo CALC=$(({a}*{b}+7))")
    assert (out.strip(), status) == (f"CALC={a * b + 7}", 0), g.describe()
    out, status = g.run("cat /sys/class/tty/console/active")
    assert "hvc0" in out.split(), g.describe()
    # Several lines typed at once all arrive, in order.
    n = random.randint(100, 999)
    g.send(f"X={n}")
    g.send("X=$((X+1))")
    out, status = g.run("echo X=$X")
    assert out.strip() == f"X={n + 1}", g.describe()
    # Bulk output: every line of 20000 arrives, in order.
    out, status = g.run("seq 1 20000", timeout=CMD_TIMEOUT * 10)
    lines = out.split("\n")
    assert lines[:-1] == [str(i) for i in range(1, 20001)] and lines[-1] == "", \
        f"seq 1 20000 on hvc0: {len(lines)} lines, first difference at " \
        f"{next((i for i, l in enumerate(lines) if l != str(i + 1)), None)}"
    # Bulk input: 100 KiB typed into a raw-mode hvc0 all arrive.
    data = bytes(random.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(100000))
    g.send("stty raw -echo; echo BULK""-READY; head -c 100000 > /tmp/in; stty sane;"
           " echo BULK-MD5=$(md5sum < /tmp/in)")
    g.wait_for("BULK-READY")
    g.write(data)
    m = g.wait_for(re.compile(r"BULK-MD5=([0-9a-f]{32})"), CMD_TIMEOUT * 10)
    assert m.group(1) == hashlib.md5(data).hexdigest(), \
        "100000 bytes typed into hvc0 arrived changed\n" + g.describe()
    g.wait_for(PROMPT_RE)
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hwrng(boot, transport):
    g = boot(extra=["--transport", transport])
    g.wait_ready()
    out, status = g.run("cat /sys/class/misc/hw_random/rng_current")
    assert status == 0 and out.strip().startswith("virtio_rng"), g.describe()
    out, status = g.run("cat /sys/class/misc/hw_random/rng_available")
    assert "virtio_rng" in out, g.describe()
    samples = []
    for _ in range(2):
        out, status = g.run("head -c 64 /dev/hwrng | od -An -tx1", timeout=CMD_TIMEOUT * 4)
        assert status == 0, g.describe()
        data = bytes(int(x, 16) for x in re.findall(r"\b[0-9a-f]{2}\b", out))
        assert len(data) == 64, f"read {len(data)} bytes from /dev/hwrng\n{out}\n{g.describe()}"
        assert len(set(data)) > 1, f"/dev/hwrng returned 64 equal bytes\n{out}"
        samples.append(data)
    assert samples[0] != samples[1], "two reads of /dev/hwrng returned the same 64 bytes"
    # A bigger read completes too (several requests on the queue).
    out, status = g.run("head -c 65536 /dev/hwrng | wc -c", timeout=CMD_TIMEOUT * 4)
    assert (out.strip(), status) == ("65536", 0), g.describe()
    g.send("poweroff")
    assert g.wait_exit(120) == 0, g.describe()
