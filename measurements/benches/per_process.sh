#!/usr/bin/env bash
# Whole-process medians of `cvm-measure snp` and `tdx`, with the default SHA-384 backend
# (libcrypto loaded at run time) and the pure-Rust build (`--no-default-features`), beside sev-snp-measure
# 0.0.13. Prints one line per command: median, mean, min and 90th percentile in ms.
# Usage: RUNS=100 measurements/benches/per_process.sh
# Needs hyperfine (apt-get install -y hyperfine), `cargo xtask fixtures` and
# `cargo xtask install test` (fixtures and the sev-snp-measure venv in the cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cvm-image"
fx="$cache/fixtures"
oracle="$cache/venv/bin/sev-snp-measure"
cargo build --release -q -p cvm-measure --bin cvm-measure
cargo build --release -q -p cvm-measure --bin cvm-measure --no-default-features --target-dir target/pure-rust
ours=target/release/cvm-measure
pure=target/pure-rust/release/cvm-measure
initrd=$(mktemp)
sid=$(mktemp -d)
trap 'rm -rf "$initrd" "$initrd.json" "$sid"' EXIT
head -c 1048576 /dev/zero >"$initrd"
# edk2 >= stable202505 (Debian sid 2026.08): the SMBIOS event derived from fw_cfg files (the
# vector's, beside the s1m2048 ACPI files: a timing input, not a real shape).
vec=measurements/tests/vectors/vtpm/debian-sid-ovmf-2026.08
xz -dc "$vec/OVMF.fd.xz" >"$sid/OVMF.fd"
cp ../shared/vectors/acpi/s1m2048/* "$vec/smbios-tables" "$vec/smbios-anchor" "$sid/"
snp="--mode snp --vcpus 4 --vcpu-type EPYC-Milan --ovmf $fx/O1"
seves="--mode seves --vcpus 4 --vcpu-type EPYC-Milan --ovmf $fx/O1"
tdx="tdx --firmware $fx/O1 --cpus 1 --memory 2048M --kernel $fx/K1 --initrd $initrd \
--cmdline console=ttyS0 --acpi-dir ../shared/vectors/acpi/s1m2048 --json"
s202505="tdx --firmware $sid/OVMF.fd --cpus 1 --memory 2048M --kernel $fx/K1 --initrd $initrd \
--cmdline console=ttyS0 --acpi-dir $sid --ovmf-model stable202505 --json"
[ "$($ours snp $snp)" = "$($oracle $snp)" ] || { echo "snp outputs differ" >&2; exit 1; }
[ "$($ours $tdx)" = "$($pure $tdx)" ] || { echo "tdx outputs of the two backends differ" >&2; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 5 --runs "${RUNS:-100}" --export-json "$initrd.json" \
  "$ours snp $snp" "$pure snp $snp" "$oracle $snp" \
  "$ours snp $seves" "$pure snp $seves" "$oracle $seves" \
  "$ours $tdx --qemu-version 9.2" "$pure $tdx --qemu-version 9.2" \
  "$ours $tdx" "$pure $tdx" "$ours $s202505" >/dev/null
python3 - "$initrd.json" <<'PY'
import json, statistics, sys
for r in json.load(open(sys.argv[1]))["results"]:
    t = sorted(x * 1e3 for x in r["times"])
    cmd = r["command"].replace("target/pure-rust/release/cvm-measure", "cvm-measure(pure-rust)")
    cmd = cmd.replace("target/release/cvm-measure", "cvm-measure(default)").split(" --ovmf")[0].split(" --firmware")[0]
    extra = " --qemu-version 9.2" if "--qemu-version 9.2" in r["command"] else ""
    extra += " --ovmf-model stable202505 (sid 2026.08)" if "stable202505" in r["command"] else ""
    print(f"median {statistics.median(t):6.2f}  mean {statistics.mean(t):6.2f}  min {t[0]:6.2f}  p90 {t[int(len(t) * .9)]:6.2f} ms  {cmd.split('/')[-1]}{extra}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
