//! SNP launch-digest benchmark (not a test): the cost of one digest from firmware bytes, and of
//! a many-shapes sweep through the pre-parse API (firmware hashed once, then every CPU type ×
//! VMM type × guest features × vCPUs 1..=512). Run with
//! `cargo bench -p cvm-measure --bench snp_sweep -- <firmware>`; figures go to
//! `docs/benchmarks.md` ("SNP launch digest").

use cvm_measurements::snp::{LaunchParams, SevFirmware, SevMode, SnpPrepared, VmmType, CPU_TYPES};
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).filter(|a| a != "--bench").or_else(|| std::env::var("CVM_BENCH_OVMF").ok());
    let Some(path) = path else {
        eprintln!("usage: cargo bench -p cvm-measure --bench snp_sweep -- <OVMF.fd>  (or CVM_BENCH_OVMF)");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let fw = SevFirmware::parse(&bytes).expect("parsing firmware");

    // One digest, from bytes, median of 15.
    let p = LaunchParams {
        mode: SevMode::Snp,
        vcpus: 4,
        vcpu_sig: u64::from(CPU_TYPES[10].sig()),
        guest_features: 1,
        vmm: VmmType::Qemu,
        hashes: None,
        snp_ovmf_hash: None,
    };
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            let f = SevFirmware::parse(&bytes).unwrap();
            std::hint::black_box(cvm_measurements::snp::snp_launch_digest(&f, &p).unwrap());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("one snp digest ({}, 4 vCPUs, {}): median {:.2} ms, min {:.2} ms", path, CPU_TYPES[10].name, times[7], times[0]);

    // Sweep: stage 1 once, metadata once per VMM type, then VMSAs per shape.
    let t = Instant::now();
    let stage1 = fw.snp_ovmf_hash().unwrap();
    let t_stage1 = t.elapsed();
    let mut n = 0usize;
    let mut acc = 0u8;
    for vmm in [VmmType::Qemu, VmmType::Ec2, VmmType::Gce] {
        let prep = SnpPrepared::new(&fw, stage1, None, vmm).unwrap();
        for cpu in CPU_TYPES {
            for gf in [0x1u64, 0x21] {
                let table = prep.sweep(512, u64::from(cpu.sig()), gf).unwrap();
                n += table.len();
                acc ^= table[511][0];
            }
        }
    }
    let total = t.elapsed();
    println!(
        "sweep: {n} digests (3 VMM × {} CPU types × 2 feature sets × vCPUs 1..=512) in {:.1} ms incl. stage 1 {:.1} ms = {:.2} µs/digest [{acc}]",
        CPU_TYPES.len(),
        total.as_secs_f64() * 1e3,
        t_stage1.as_secs_f64() * 1e3,
        (total - t_stage1).as_secs_f64() * 1e6 / n as f64
    );
}
