#!/usr/bin/env bash
# SNP benchmarks: per_process.sh (whole-process `cvm-measure snp` vs the `sev-snp-measure`
# 0.0.13 CLI, with hyperfine: apt-get install -y hyperfine), then the in-process sweep bench
# and sev-snp-measure's library call.
# Usage: measurements/benches/snp_cli.sh [OVMF.fd]  (default for the sweep: fixture O1)
# Needs `cargo xtask fixtures` and `cargo xtask install test` (fixtures and venv in the cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Whole-process medians (ours with both SHA-384 backends, sev-snp-measure, SEV-ES, TDX).
# Until session 5 this script ran hyperfine on the first two commands only.
measurements/benches/per_process.sh
cache="${XDG_CACHE_HOME:-$HOME/.cache}/cvm-image"
ovmf="${1:-$cache/fixtures/O1}"
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
