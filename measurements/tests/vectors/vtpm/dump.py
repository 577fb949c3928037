#!/usr/bin/env python3
"""Helpers of capture.sh.

dump.py cpio INIT OUT      the initramfs: a deterministic newc cpio (the layout of
                           xtask/src/boot_smoke.rs `Cpio`: inodes in order, mtime 0, uid/gid 0,
                           uncompressed) of /dev, /proc, /sys, /dev/console (5,1),
                           /dev/ttyS1 (4,65) and /init.
dump.py extract-init CPIO OUT   /init of the initramfs, for the no-initrd boot's root disk.
dump.py parse DUMP DIR     the guest's ttyS1 output -> DIR/binary_bios_measurements (the
                           event log), DIR/pcrs.json ({"sha256": {"0": hex, ...}, "sha384": ...},
                           PCRs 0-23 as the guest read them) and DIR/proc_cmdline.
"""
import json, os, re, sys


def cpio(init, out):
    buf = bytearray()
    ino = 0

    def pad():
        while len(buf) % 4:
            buf.append(0)

    def header(ino, mode, nlink, size, rdev, name):
        f = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        buf.extend(b"070701" + b"".join(b"%08x" % x for x in f) + name.encode() + b"\0")
        pad()

    def entry(name, mode, data=b"", rdev=(0, 0)):
        nonlocal ino
        ino += 1
        header(ino, mode, 2 if mode & 0o170000 == 0o040000 else 1, len(data), rdev, name)
        buf.extend(data)
        pad()

    for d in ["dev", "proc", "sys"]:
        entry(d, 0o040755)
    entry("dev/console", 0o020600, rdev=(5, 1))
    entry("dev/ttyS1", 0o020600, rdev=(4, 65))
    entry("init", 0o100755, open(init, "rb").read())
    header(0, 0, 1, 0, (0, 0), "TRAILER!!!")
    open(out, "wb").write(buf)


def extract_init(cpio_path, out):
    b = open(cpio_path, "rb").read()
    off = 0
    while True:
        f = [int(b[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name = b[off + 110: off + 110 + namesize - 1].decode()
        data = (off + 110 + namesize + 3) & ~3
        if name == "init":
            open(out, "wb").write(b[data: data + size])
            os.chmod(out, 0o755)
            return
        if name == "TRAILER!!!":
            sys.exit("no init in " + cpio_path)
        off = (data + size + 3) & ~3


def parse(dump, outdir):
    text = open(dump, "rb").read().decode("latin1").replace("\r", "")
    lines = text.split("\n")
    start = next(i for i, l in enumerate(lines) if l.endswith("VTPM-DUMP-BEGIN"))
    blobs, pcrs, cur = {}, {"sha256": {}, "sha384": {}}, None
    for l in lines[start + 1:]:
        if l == "VTPM-DUMP-END":
            break
        if m := re.fullmatch(r"(CMDLINE|LOG) (-?\d+)", l):
            cur = m[1]
            blobs[cur] = (int(m[2]), bytearray())
        elif m := re.fullmatch(r"L (\d+) ([0-9a-f]*)", l):
            n, b = blobs[cur]
            assert int(m[1]) == len(b), f"gap before {l[:20]!r}"
            b.extend(bytes.fromhex(m[2]))
        elif m := re.fullmatch(r"PCR (sha256|sha384) (\d+) ([0-9A-F]+)", l):
            pcrs[m[1]][int(m[2])] = m[3].lower()
        else:
            sys.exit(f"unexpected line {l!r}")
    else:
        sys.exit("no VTPM-DUMP-END: the guest did not finish")
    for k, (n, b) in blobs.items():
        assert n == len(b) and n > 0, f"{k}: announced {n} bytes, got {len(b)}"
    for bank, v in pcrs.items():
        assert sorted(v) == list(range(24)), f"{bank}: PCRs {sorted(v)}"
    open(f"{outdir}/binary_bios_measurements", "wb").write(blobs["LOG"][1])
    open(f"{outdir}/proc_cmdline", "wb").write(blobs["CMDLINE"][1])
    doc = {b: {str(i): v[i] for i in range(24)} for b, v in pcrs.items()}
    with open(f"{outdir}/pcrs.json", "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"{outdir}: event log {len(blobs['LOG'][1])} bytes")


if __name__ == "__main__":
    {"cpio": cpio, "extract-init": extract_init, "parse": parse}[sys.argv[1]](*sys.argv[2:])
