#!/usr/bin/env bash
# Whole-process benchmark: `cvm-measure snp` vs the `sev-snp-measure` 0.0.13 CLI on the same
# inputs, with hyperfine (apt-get install -y hyperfine), then the in-process sweep bench.
# Usage: measurements/benches/snp_cli.sh [OVMF.fd]  (default: the pinned fixture O1)
# Needs `cargo xtask fixtures` and `cargo xtask install test` (fixtures and venv in the cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cvm-image"
ovmf="${1:-$cache/fixtures/O1}"
oracle="$cache/venv/bin/sev-snp-measure"
cargo build --release -q -p cvm-measure --bin cvm-measure
bin=target/release/cvm-measure
args=(--mode snp --vcpus 4 --vcpu-type EPYC-Milan --ovmf "$ovmf")
[ "$("$bin" snp "${args[@]}")" = "$("$oracle" "${args[@]}")" ] || { echo "outputs differ" >&2; exit 1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine -N --warmup 3 --runs "${RUNS:-30}" \
  "$bin snp ${args[*]}" "$oracle ${args[*]}" \
  "$bin snp --mode seves --vcpus 4 --vcpu-type EPYC-Milan --ovmf $ovmf" \
  "$oracle --mode seves --vcpus 4 --vcpu-type EPYC-Milan --ovmf $ovmf"
cargo bench -q -p cvm-measure --bench snp_sweep -- "$ovmf"
# sev-snp-measure's library call, in-process (no interpreter start-up), for the sweep comparison.
"$cache/venv/bin/python3" - "$ovmf" <<'PY'
import sys, time
from sevsnpmeasure import guest
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType
ts = []
for _ in range(15):
    t = time.process_time()
    guest.calc_launch_digest(SevMode.SEV_SNP, 4, 0xa00f11, sys.argv[1], None, None, None, 1, "", VMMType.QEMU)
    ts.append((time.process_time() - t) * 1e3)
ts.sort()
print(f"sev-snp-measure library call, snp, 4 vCPUs: median {ts[7]:.1f} ms CPU, min {ts[0]:.1f} ms")
PY
