#!/usr/bin/env python3
"""Write small seed corpora for the fuzz targets cpio, gpt, spec, agent_protocol, tdx_eventlog,
tdx_quote and pe into corpus/<target>/ (run from fuzz/; corpus/ is not committed). Needs GNU cpio and sgdisk
(Debian packages cpio, gdisk). Every seed is a valid input of its parser, so the fuzzer starts
past the magic numbers and checksums; see README.md."""

import json
import os
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def cpio_seeds():
    with tempfile.TemporaryDirectory() as t:
        os.makedirs(os.path.join(t, "bin/deep"))
        for n in range(5):
            with open(os.path.join(t, f"bin/f{n}"), "wb") as f:
                f.write(b"x" * n)
        os.symlink("f3", os.path.join(t, "bin/link"))
        os.mkfifo(os.path.join(t, "fifo"))
        names = sorted(
            os.path.relpath(os.path.join(r, n), t)
            for r, ds, fs in os.walk(t)
            for n in ds + fs
        )
        out = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=t, input="\n".join(names).encode() + b"\n", capture_output=True, check=True,
        ).stdout
    put("cpio", "gnu_tree.cpio", out)
    # The same, without GNU cpio's 512-byte block padding (as cvm_rootfs::cpio::Writer ends).
    end = out.index(b"TRAILER!!!\0") + 11
    put("cpio", "gnu_tree_unpadded.cpio", out[:end] + b"\0" * (-end % 4))


def gpt_seeds():
    sectors = 80
    with tempfile.TemporaryDirectory() as t:
        img = os.path.join(t, "disk.img")
        with open(img, "wb") as f:
            f.truncate(sectors * 512)
        subprocess.run(
            ["sgdisk", "-a", "1", "-U", "01234567-89ab-cdef-0123-456789abcdef",
             "-n", "1:34:40", "-t", "1:ef00", "-c", "1:esp",
             "-n", "2:41:44", "-t", "2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "-c", "2:root-x86-64",
             "-A", "2:set:60",
             "-n", "3:45:46", "-t", "3:2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
             "-c", "3:root-x86-64-verity", "-A", "3:set:60", img],
            capture_output=True, check=True,
        )
        with open(img, "rb") as f:
            disk = f.read()
    # The fuzz target's pass 2 layout: mode 1 (mirror the backup, reseal), 80 - 67 extra
    # sectors, then MBR + primary header + array. Pass 1 reads the whole disk as it is.
    put("gpt", "sgdisk_80_sectors_pass2", bytes([1, sectors - 67]) + disk[: 34 * 512].rstrip(b"\0"))
    put("gpt", "sgdisk_80_sectors_raw", disk)


def spec_seeds():
    for name in ("default.toml", "example.toml"):
        with open(os.path.join(HERE, "..", "image-spec", name), "rb") as f:
            put("spec", name, f.read())


def tpm_response(body, sessions=False):
    tag = 0x8002 if sessions else 0x8001
    return struct.pack(">HII", tag, 10 + len(body), 0) + body


def tpm2b(b):
    return struct.pack(">H", len(b)) + b


def agent_seeds():
    lines = [
        {"v": 1, "type": "hello", "nonce": "00" * 32},
        {"v": 1, "type": "key", "key": "ab" * 32},
        {"v": 1, "type": "refused", "reason": "PCR 7 differs"},
        {"v": 1, "type": "done", "ok": True},
        {"v": 1, "type": "error", "message": "x", "fatal": False},
        {"v": 1, "type": "evidence", "evidence": {
            "pcrs": {"sha256": {"0": "00" * 32, "7": "11" * 32}},
            "event_log": None,
            "quote": {"attest": "01", "signature": "02", "ak_public": "03"},
            "cmdline": "console=ttyS0", "dm_devices": [
                {"dev": "dm-0", "name": "root", "uuid": None, "verity_status": None}],
            "tsm_report": {"status": "unavailable", "reason": "no configfs"},
            "problems": []}},
    ]
    stream = b"".join(json.dumps(l, separators=(",", ":")).encode() + b"\n" for l in lines)
    put("agent_protocol", "protocol_stream", b"\x00" + stream)
    for i, l in enumerate(lines):
        put("agent_protocol", f"protocol_{l['type']}", b"\x00" + json.dumps(l).encode() + b"\n")

    d = "sha256:" + "ab" * 32
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 2},
                "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                            "digest": d, "size": 3,
                            "annotations": {"dev.cosignproject.cosign/signature": "c2ln"}}]}
    put("agent_protocol", "oci_manifest", b"\x01" + json.dumps(manifest).encode())
    put("agent_protocol", "oci_ref", b"\x01" + f"10.0.2.2:5000/guest/app@{d}".encode())

    sel = struct.pack(">IHB3s", 1, 0x000B, 3, bytes([0xFF, 0x03, 0]))
    pcr_read = tpm_response(struct.pack(">I", 5) + sel + struct.pack(">I", 2) + tpm2b(b"\1" * 32) + tpm2b(b"\2" * 32))
    put("agent_protocol", "tpm_pcr_read", b"\x02" + pcr_read)
    ecc_public = (struct.pack(">HHI", 0x23, 0x0B, 0x00050072) + tpm2b(b"") +
                  struct.pack(">HHHHH", 0x10, 0x18, 0x0B, 3, 0x10) + tpm2b(b"\5" * 32) + tpm2b(b"\6" * 32))
    params = tpm2b(ecc_public)
    create = tpm_response(struct.pack(">I", 0x80000000) + struct.pack(">I", len(params)) + params, True)
    put("agent_protocol", "tpm_create_primary", b"\x02" + create)
    put("agent_protocol", "tpm_ecc_public", b"\x02" + ecc_public)
    attest = (struct.pack(">IH", 0xFF544347, 0x8018) + tpm2b(b"\0\x0b" + b"\7" * 32) + tpm2b(b"\x0a" * 32) +
              struct.pack(">QIIBQ", 42, 1, 2, 1, 3) + sel + tpm2b(b"\x09" * 32))
    sig = struct.pack(">HH", 0x18, 0x0B) + tpm2b(b"\3" * 32) + tpm2b(b"\4" * 32)
    params = tpm2b(attest) + sig
    quote = tpm_response(struct.pack(">I", len(params)) + params, True)
    put("agent_protocol", "tpm_quote", b"\x02" + quote)
    put("agent_protocol", "tpm_attest", b"\x02" + attest)


def event_log(algs, events):
    """A TCG2 crypto-agile log: the legacy-format Spec ID event, then TCG_PCR_EVENT2 records."""
    spec = (b"Spec ID Event03\0" + struct.pack("<I4BI", 0, 0, 2, 2, 2, len(algs)) +
            b"".join(struct.pack("<HH", a, n) for a, n in algs) + b"\0")
    log = struct.pack("<II20sI", 0, 3, b"", len(spec)) + spec
    for pcr, etype, data in events:
        digests = b"".join(struct.pack("<H", a) + bytes([pcr + 1]) * n for a, n in algs)
        log += struct.pack("<III", pcr, etype, len(algs)) + digests + struct.pack("<I", len(data)) + data
    return log


def eventlog_seeds():
    events = [(0, 0x80000008, b"\0" * 16), (1, 4, b"\0\0\0\0"), (2, 0x80000006, b"\x01" * 24),
              (3, 0x6, b"CCEL")]
    put("tdx_eventlog", "sha384_ccel", event_log([(0x0C, 48)], events))
    put("tdx_eventlog", "sha256_sha384", event_log([(0x0B, 32), (0x0C, 48)], events) + b"\xff" * 16)


def quote_seeds():
    """TDX quotes v4 and v5 (TDX 1.5 body type 3): header, TD report body, signature data."""
    body = bytes(range(256)) * 2 + bytes(584 - 512)
    head = struct.pack("<HHIHH16s20s", 4, 2, 0x81, 0, 0, b"\x93" * 16, b"u" * 20)
    put("tdx_quote", "v4", head + body + struct.pack("<I", 8) + b"sigdata!")
    head5 = struct.pack("<HHIHH16s20s", 5, 2, 0x81, 0, 0, b"\x93" * 16, b"u" * 20)
    body15 = body + b"\x01" * (648 - 584)
    put("tdx_quote", "v5_tdx15", head5 + struct.pack("<HI", 3, len(body15)) + body15 + struct.pack("<I", 0))


def pe_seeds():
    """A tiny PE32+ (one section, optionally a certificate table), as pe.rs's tests build it;
    plus the first 16 KiB of the pinned kernel K1 (setup header + PE headers) when the
    fixtures are fetched (`cargo xtask test` puts them in ~/.cache/cvm-image/fixtures)."""
    for tail, cert in ((16, 0), (40, 64)):
        img = bytearray(0x400 + tail + cert)
        img[0:2] = b"MZ"
        img[0x3C:0x40] = struct.pack("<I", 0x80)
        img[0x80:0x84] = b"PE\0\0"
        coff, opt = 0x84, 0x84 + 20
        img[coff + 2:coff + 4] = struct.pack("<H", 1)
        img[coff + 16:coff + 18] = struct.pack("<H", 112 + 16 * 8)
        img[opt:opt + 2] = struct.pack("<H", 0x20B)
        img[opt + 60:opt + 64] = struct.pack("<I", 0x200)
        img[opt + 64:opt + 68] = struct.pack("<I", 0xDEADBEEF)
        img[opt + 108:opt + 112] = struct.pack("<I", 16)
        if cert:
            img[opt + 144:opt + 152] = struct.pack("<II", 0x400 + tail, cert)
        sec = opt + 112 + 128
        img[sec:sec + 5] = b".text"
        img[sec + 16:sec + 24] = struct.pack("<II", 0x200, 0x200)
        for i in range(0x200, 0x400 + tail):
            img[i] = (i - 0x200) % 251
        put("pe", f"tiny_pe_{tail}_{cert}", bytes(img))
    k1 = os.path.expanduser("~/.cache/cvm-image/fixtures/K1")
    if os.path.exists(k1):
        with open(k1, "rb") as f:
            put("pe", "k1_head16k", f.read(16384))


if __name__ == "__main__":
    cpio_seeds()
    gpt_seeds()
    spec_seeds()
    agent_seeds()
    eventlog_seeds()
    quote_seeds()
    pe_seeds()
    for t in ("cpio", "gpt", "spec", "agent_protocol", "tdx_eventlog", "tdx_quote", "pe"):
        print(t, sorted(os.listdir(os.path.join(CORPUS, t))))
