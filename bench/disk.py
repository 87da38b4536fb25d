#!/usr/bin/env python3
"""cellvm disk-format benchmark: prints numbers, asserts nothing.

    /usr/bin/python3 bench/disk.py --cellvm build/cellvm --kernel K --initrd I

Inside the guest a small static tool (its C source is below, built here with
gcc -static) measures /dev/vda with O_DIRECT: 4 KiB random writes and reads
at queue depth 1 (and reads at QD 16, one thread per request in flight),
then 1 MiB sequential writes (ending with fdatasync, i.e. a flush) and
reads; each figure --reps times, the median printed. One boot per image:

  raw-full     a raw image full of random data
  qcow2-full   the same data converted to qcow2 (every cluster allocated)
  qcow2-fresh  an empty qcow2 (writes allocate clusters)
  raw-fresh    an empty sparse raw image (writes allocate host blocks)

The host side is cellvm's, buffered (the image in the host page cache):
what is measured is the VMM and its format code. After each qcow2 run,
`qemu-img check` says whether the image is still consistent. QEMU runs the
same guest on the same images (format=qcow2/raw, cache=writeback) where it
can boot --qemu-kernel (a PVH ELF or bzImage); otherwise one line says why.
On the host, without a guest, `cellvm disk bench` (cellvm's block layer, as
a VM's disk uses it) and `qemu-img bench` (QEMU's) give 4 KiB random IOPS on
the same images: the format code with far less noise than a guest's figures.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CMDLINE = "console=ttyS0 reboot=k panic=-1 pti=on quiet"
MiB = 1 << 20

TOOL_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int fd, wr, rnd;
static uint64_t size, bs, ops_per_thread;
static double limit;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct th { uint64_t seed, done; double t0; };

static void *run(void *p)
{
	struct th *t = p;
	void *buf;
	uint64_t blocks = size / bs, pos = 0;

	if (posix_memalign(&buf, 4096, bs))
		exit(1);
	memset(buf, 0x5a ^ (int)t->seed, bs);
	for (t->done = 0; t->done < ops_per_thread; t->done++) {
		uint64_t off;
		ssize_t r;

		if (rnd) {
			t->seed ^= t->seed << 13; t->seed ^= t->seed >> 7; t->seed ^= t->seed << 17;
			off = (t->seed % blocks) * bs;
		} else {
			off = pos;
			pos = (pos + bs) % (blocks * bs);
		}
		r = wr ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off);
		if (r != (ssize_t)bs) { perror("io"); exit(1); }
		if ((t->done & 63) == 0 && now() - t->t0 > limit)
			break;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	/* diskio MODE DEV BS OPS QD SECS */
	const char *mode = argv[1];
	unsigned qd = atoi(argv[5]);
	pthread_t tid[64];
	struct th th[64];
	uint64_t ops = 0;
	double t0, secs;

	if (argc != 7 || qd < 1 || qd > 64)
		return 2;
	wr = strstr(mode, "write") != NULL;
	rnd = !strncmp(mode, "rand", 4);
	bs = strtoull(argv[3], NULL, 0);
	ops_per_thread = strtoull(argv[4], NULL, 0) / qd;
	limit = atof(argv[6]);
	fd = open(argv[2], (wr ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0) { perror(argv[2]); return 1; }
	t0 = now();
	for (unsigned i = 0; i < qd; i++) {
		th[i] = (struct th){ .seed = 0x9e3779b97f4a7c15ULL * (i + 1), .t0 = t0 };
		pthread_create(&tid[i], NULL, run, &th[i]);
	}
	for (unsigned i = 0; i < qd; i++) {
		pthread_join(tid[i], NULL);
		ops += th[i].done;
	}
	if (wr && fdatasync(fd) < 0) { perror("fdatasync"); return 1; }
	secs = now() - t0;
	printf("DISKIO mode=%s bs=%llu qd=%u ops=%llu secs=%.3f iops=%.0f MBps=%.1f\n", mode,
	       (unsigned long long)bs, qd, (unsigned long long)ops, secs, ops / secs, ops * bs / secs / 1e6);
	return 0;
}
"""

FIGS = [  # key, guest command arguments (mode, bs, ops, qd), label, unit, field
    ("randwrite1", ("randwrite", 4096, 20000, 1), "rand write 4K QD1", "IOPS", "iops"),
    ("randread1", ("randread", 4096, 20000, 1), "rand read 4K QD1", "IOPS", "iops"),
    ("randread16", ("randread", 4096, 80000, 16), "rand read 4K QD16", "IOPS", "iops"),
    ("seqwrite", ("seqwrite", MiB, 256, 1), "seq write 1M", "MB/s", "MBps"),
    ("seqread", ("seqread", MiB, 512, 1), "seq read 1M", "MB/s", "MBps"),
]


def log(msg=""):
    print(msg, flush=True)


def run(args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def build_initrd(work, base_initrd, secs, reps):
    """The test initramfs plus /bin/diskio and /bin/diskbench-run."""
    src = os.path.join(work, "diskio.c")
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    with open(src, "w") as f:
        f.write(TOOL_C)
    r = run(["gcc", "-static", "-O2", "-pthread", "-o", os.path.join(root, "bin", "diskio"), src])
    if r.returncode:
        sys.exit(f"disk.py: cannot build the guest tool (gcc -static):\n{r.stderr}")
    lines = ["#!/bin/sh", f"for rep in $(seq {reps}); do"]
    for key, (mode, bs, ops, qd), *_ in FIGS:
        lines.append(f"echo @@STEP {key}; diskio {mode} /dev/vda {bs} {ops} {qd} {secs}")
    lines.append("done")
    script = os.path.join(root, "bin", "diskbench-run")
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(script, 0o755)
    extra = os.path.join(work, "extra.cpio")
    with open(extra, "wb") as out:
        names = "bin/diskio\nbin/diskbench-run\n"
        r = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], input=names.encode(),
                           stdout=out, cwd=root)
        if r.returncode:
            sys.exit("disk.py: cpio failed")
    initrd = os.path.join(work, "initrd-diskbench.cpio")
    with open(initrd, "wb") as out:
        for part in (base_initrd, extra):
            with open(part, "rb") as f:
                out.write(f.read())
    return initrd


def boot(argv, timeout):
    """Runs a VM to completion; returns {figure key: {field: value}} or an error string."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "timed out"
    res, step = {}, None
    for line in p.stdout.splitlines():
        m = re.search(r"@@STEP (\w+)", line)
        if m:
            step = m.group(1)
        elif "DISKIO" in line and step:
            res.setdefault(step, []).append({k: float(v) if re.match(r"^[\d.]+$", v) else v
                                             for k, v in re.findall(r"(\w+)=(\S+)", line)})
    if not res:
        return (p.stderr.strip().splitlines() or [f"exit {p.returncode}, no output"])[-1]
    # The median of the repetitions, field by field.
    return {k: {f: statistics.median(r[f] for r in runs) for f in runs[0] if isinstance(runs[0][f], float)}
            for k, runs in res.items()}


def cellvm_argv(a, initrd, image):
    return [a.cellvm, "run", "--kernel", a.kernel, "--initrd", initrd, "--memory", "512M",
            "--disk", image, "--cmdline", f"{CMDLINE} -- diskbench-run"]


def qemu_argv(a, initrd, image, fmt):
    # -arch-capabilities: on PVM hosts QEMU 7.2 aborts without it.
    return ["qemu-system-x86_64", "-M", "q35", "-accel", "kvm", "-cpu", "host,-arch-capabilities", "-m", "512M",
            "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", a.qemu_kernel, "-initrd", initrd,
            "-append", f"{CMDLINE} -- diskbench-run",
            "-drive", f"file={image},format={fmt},if=none,id=d0,cache=writeback,aio=threads",
            "-device", "virtio-blk-pci,drive=d0"]


def make_images(a, work):
    size = a.size * MiB
    imgs = {}
    raw = os.path.join(work, "full.raw")
    with open(raw, "wb") as f:
        for _ in range(a.size):
            f.write(os.urandom(MiB))
    imgs["raw-full"] = (raw, "raw")
    q = os.path.join(work, "full.qcow2")
    r = run([a.cellvm, "disk", "convert", raw, q])
    if r.returncode:
        sys.exit(f"disk.py: cellvm disk convert failed: {r.stderr}")
    imgs["qcow2-full"] = (q, "qcow2")
    q = os.path.join(work, "fresh.qcow2")
    run([a.cellvm, "disk", "create", q, str(size)])
    imgs["qcow2-fresh"] = (q, "qcow2")
    r2 = os.path.join(work, "fresh.raw")
    run([a.cellvm, "disk", "create", r2, str(size), "--format", "raw"])
    imgs["raw-fresh"] = (r2, "raw")
    return imgs


def fresh_copy(path, work, tag):
    """Every run starts from the same image (a fresh one stays fresh)."""
    dst = os.path.join(work, f"run-{tag}-{os.path.basename(path)}")
    if os.path.exists(dst):
        os.unlink(dst)
    r = run(["cp", "--sparse=always", path, dst])
    if r.returncode:
        sys.exit(f"disk.py: cp failed: {r.stderr}")
    return dst


HOST_FIGS = [  # label, cellvm disk bench arguments, qemu-img bench arguments
    ("rand read 4K QD1", [], ["-d", "1"]),
    ("rand write 4K QD1", ["--write"], ["-d", "1", "-w"]),
    ("rand read 4K QD16", ["--depth", "16"], ["-d", "16"]),
]


def host_bench(a, imgs, work, count=100000):
    """The format code alone, on the host: `cellvm disk bench` (the VM's block
    layer, random offsets) and `qemu-img bench` (QEMU's, offsets 1 MiB + 4 KiB
    apart), IOPS; each on a fresh copy of the image."""
    out = {}
    for name, (path, fmt) in imgs.items():
        for label, cargs, qargs in HOST_FIGS:
            img = fresh_copy(path, work, "host")
            r = run([a.cellvm, "disk", "bench", img, "--count", count, *cargs])
            m = re.search(r"([\d.]+) IOPS", r.stdout)
            out[("cellvm", name, label)] = float(m.group(1)) if m else None
            os.unlink(img)
            if not shutil.which("qemu-img"):
                continue
            img = fresh_copy(path, work, "host")
            r = run(["qemu-img", "bench", "-f", fmt, "-t", "writeback", "-c", count, "-s", "4096",
                     "-S", str(MiB + 4096), *qargs, img])
            m = re.search(r"Run completed in ([\d.]+) seconds", r.stdout)
            out[("qemu-img", name, label)] = count / float(m.group(1)) if m else None
            os.unlink(img)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cellvm", default="build/cellvm")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--qemu-kernel", help="kernel for QEMU (default --kernel)")
    ap.add_argument("--size", type=int, default=512, help="image size in MiB (default 512)")
    ap.add_argument("--time", type=float, default=4, help="seconds per figure at most (default 4)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per figure, median printed (default 3)")
    a = ap.parse_args()
    a.qemu_kernel = a.qemu_kernel or a.kernel
    a.cellvm = os.path.abspath(a.cellvm)
    work = tempfile.mkdtemp(prefix="cellvm-diskbench-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        initrd = build_initrd(work, a.initrd, a.time, a.reps)
        imgs = make_images(a, work)
        results = {}
        qemu_ok = shutil.which("qemu-system-x86_64") is not None
        qemu_why = None if qemu_ok else "qemu-system-x86_64 not installed (Debian: qemu-system-x86)"
        for name, (path, fmt) in imgs.items():
            img = fresh_copy(path, work, "cellvm")
            log(f"cellvm {name} ...")
            results[("cellvm", name)] = boot(cellvm_argv(a, initrd, img), 600)
            if fmt == "qcow2":
                r = run(["qemu-img", "check", img])
                results[("check", name)] = "clean" if r.returncode == 0 else f"qemu-img check exit {r.returncode}"
            os.unlink(img)
            if qemu_ok and name != "raw-fresh":
                img = fresh_copy(path, work, "qemu")
                log(f"qemu   {name} ...")
                res = boot(qemu_argv(a, initrd, img, fmt), 600)
                os.unlink(img)
                if isinstance(res, str):
                    qemu_ok, qemu_why = False, res
                else:
                    results[("qemu", name)] = res
        report(a, imgs, results, qemu_why, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(a, imgs, results, qemu_why, work):
    log()
    log(f"disk benchmark: {a.size} MiB images, guest O_DIRECT on /dev/vda, median of {a.reps}, "
        f"host load {os.getloadavg()[0]:.2f}")
    names = list(imgs)
    head = f"{'':22}" + "".join(f"{n:>14}" for n in names)
    for vmm in ("cellvm", "qemu"):
        if not any((vmm, n) in results for n in names):
            continue
        log(f"\n{vmm}")
        log(head)
        for key, _, label, unit, field in FIGS:
            row = f"{label + ' (' + unit + ')':22}"
            for n in names:
                r = results.get((vmm, n))
                if isinstance(r, dict) and key in r:
                    row += f"{r[key][field]:>14.0f}" if unit == "IOPS" else f"{r[key][field]:>14.1f}"
                elif isinstance(r, str):
                    row += f"{'FAILED':>14}"
                else:
                    row += f"{'n/a':>14}"
            log(row)
    for n in names:
        r = results.get(("cellvm", n))
        if isinstance(r, str):
            log(f"cellvm {n} failed: {r}")
    log("\nqcow2 / raw (cellvm, same data): " + ", ".join(
        ratio(results, "qcow2-full", "raw-full", k, f) + " " + lbl for k, _, lbl, _, f in FIGS))
    log("qcow2 / raw (cellvm, fresh):     " + ", ".join(
        ratio(results, "qcow2-fresh", "raw-fresh", k, f) + " " + lbl for k, _, lbl, _, f in FIGS))
    for n in names:
        if ("check", n) in results:
            log(f"after the run, {n}: {results[('check', n)]}")
    if qemu_why:
        log(f"qemu could not boot {a.qemu_kernel}: {qemu_why}")
    host = host_bench(a, imgs, work)
    log("\nhost side, no guest (IOPS): the format code and I/O path alone")
    log(f"{'':30}" + "".join(f"{n:>14}" for n in names))
    for tool in ("cellvm", "qemu-img"):
        for label, _, _ in HOST_FIGS:
            row = f"{tool + ' ' + label:30}"
            for n in names:
                v = host.get((tool, n, label))
                row += f"{v:>14.0f}" if v else f"{'n/a':>14}"
            log(row)


def ratio(results, a_name, b_name, key, field):
    ra, rb = results.get(("cellvm", a_name)), results.get(("cellvm", b_name))
    if isinstance(ra, dict) and isinstance(rb, dict) and key in ra and key in rb and rb[key][field]:
        return f"{100 * ra[key][field] / rb[key][field]:.0f}%"
    return "n/a"


if __name__ == "__main__":
    main()
