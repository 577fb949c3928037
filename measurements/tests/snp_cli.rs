//! `cvm-measure snp` against the `sev-snp-measure` 0.0.13 CLI, process to process: the same
//! argv (after the subcommand) must give byte-identical stdout and the same success/failure.
//!
//! Lives in the `cvm-measure` package so that cargo builds the binary for it. Needs
//! `CVM_FIXTURES` and `CVM_ORACLE_BIN`, as set by `cargo xtask test`.

use std::path::PathBuf;
use std::process::Command;

fn env_dir(var: &str, hint: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: {hint}")))
}

fn fixture(id: &str) -> String {
    let p = env_dir("CVM_FIXTURES", "run the suite with `cargo xtask test`").join(id);
    assert!(p.exists(), "fixture {id} missing at {}: run `cargo xtask fixtures`", p.display());
    p.to_string_lossy().into_owned()
}

#[test]
fn stdout_is_byte_identical_to_sev_snp_measure() {
    let oracle = env_dir("CVM_ORACLE_BIN", "run the suite with `cargo xtask test`").join("sev-snp-measure");
    assert!(oracle.exists(), "sev-snp-measure missing at {}: run `cargo xtask install test`", oracle.display());
    let (o1, o2, o3, k1) = (fixture("O1"), fixture("O2"), fixture("O3"), fixture("K1"));
    let cases: Vec<Vec<&str>> = vec![
        vec!["--mode", "snp:ovmf-hash", "--ovmf", &o1],
        vec!["--mode", "snp:ovmf-hash", "--ovmf", &o2, "--output-format", "base64"],
        vec!["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Genoa", "--ovmf", &o1],
        vec!["--mode", "snp", "--vcpus", "2", "--vcpu-sig", "0xa00f11", "--guest-features", "0x21", "--ovmf", &o3],
        vec!["--mode", "snp", "--vcpus", "3", "--vcpu-family", "26", "--vcpu-model", "17", "--vcpu-stepping", "1", "--ovmf", &o2],
        vec!["--mode", "snp", "--vcpus", "8", "--vmm-type", "ec2", "--ovmf", &o1, "--output-format", "base64"],
        vec!["--mode", "snp", "--vcpus", "2", "--vmm-type", "gce", "--ovmf", &o1, "-v"],
        vec![
            "--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", &o1,
            "--snp-ovmf-hash", "52de7f3ba560307ec6c22a5cb001524d5e560467b5d618c715cfe3c6f1addcadb91563693fbfa433ae18c2412d739a95",
        ],
        vec!["--mode", "seves", "--vcpus", "4", "--vcpu-type", "EPYC-Milan", "--ovmf", &o1, "--verbose"],
        vec!["--mode", "sev", "--ovmf", &o2, "--output-format", "base64"],
        vec!["--mode", "sev", "--ovmf", &o1, "-v"],
        // Refusals: nothing on stdout, failure status.
        vec!["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", &o1, "--kernel", &k1, "--append", "console=ttyS0 loglevel=7"],
        vec!["--mode", "seves", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--ovmf", &o1, "--kernel", &k1],
        vec!["--mode", "snp", "--vcpu-type", "EPYC-v4", "--ovmf", &o1],
        vec!["--mode", "snp", "--vcpus", "1", "--ovmf", &o1],
        vec!["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--vmm-type", "kvm", "--ovmf", &o1],
        vec!["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v4", "--initrd", &k1, "--ovmf", &o1],
        vec!["--mode", "snp", "--vcpus", "1", "--vcpu-type", "EPYC-v5", "--ovmf", &o1],
    ];
    let mut failures = Vec::new();
    for argv in &cases {
        let py = Command::new(&oracle).args(argv).output().expect("running sev-snp-measure");
        let rs = Command::new(env!("CARGO_BIN_EXE_cvm-measure")).arg("snp").args(argv).output().expect("running cvm-measure");
        if py.stdout != rs.stdout || py.status.success() != rs.status.success() {
            failures.push(format!(
                "{argv:?}\n  sev-snp-measure ({}): {:?} {:?}\n  cvm-measure ({}): {:?} {:?}",
                py.status,
                String::from_utf8_lossy(&py.stdout),
                String::from_utf8_lossy(&py.stderr).lines().last().unwrap_or(""),
                rs.status,
                String::from_utf8_lossy(&rs.stdout),
                String::from_utf8_lossy(&rs.stderr),
            ));
        }
        if !rs.status.success() {
            assert_eq!(rs.status.code(), Some(2), "{argv:?}: could-not-compute exits 2");
            assert!(!rs.stderr.is_empty(), "{argv:?}: a refusal says why on stderr");
        }
    }
    assert!(failures.is_empty(), "{} of {} CLI cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn json_output_names_fields_in_lowercase_hex() {
    let o1 = fixture("O1");
    let out = Command::new(env!("CARGO_BIN_EXE_cvm-measure"))
        .args(["snp", "--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-v4", "--ovmf", &o1, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // V5 of the design note.
    assert_eq!(v["measurement"], "676826e902524799a067f7c43b3ab0101dce73a2506d41436dd2f8472fa208081f11f9e65ca5d2439785732a0bfd8339");
    assert_eq!(v["vcpus"], 4);
    assert_eq!(v["vcpu_sig"], "0x800f12");
    assert_eq!(v["ap_eip"], "0x80b004");
    assert_eq!(v["vmm_type"], "QEMU");
}
