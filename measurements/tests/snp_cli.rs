//! `cvm-measure snp` against the `sev-snp-measure` 0.0.13 CLI, process to process: the same
//! argv (after the subcommand) must give byte-identical stdout and the same success/failure.
//!
//! Lives in the `cvm-measure` package so that cargo builds the binary for it. Needs
//! `CVM_FIXTURES` and `CVM_ORACLE_BIN`, as set by `cargo xtask test`; `snp:svsm` also runs on
//! every OVMF in `CVM_EXTRA_OVMF` (colon-separated; `cargo xtask test` passes the built AmdSev
//! OVMF). There is no Coconut SVSM binary on the test machines, so the `snp:svsm` cases build
//! synthetic ones (footer table, `SVSM_INFO` entry, `ASEV` metadata) and let both tools parse
//! them.

use cvm_measurements::guid::EfiGuid;
use cvm_measurements::ovmf::footer::{OVMF_TABLE_FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID, SEV_METADATA_OFFSET_GUID, SVSM_INFO_GUID};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn env_dir(var: &str, hint: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: {hint}")))
}

fn fixture(id: &str) -> String {
    let p = env_dir("CVM_FIXTURES", "run the suite with `cargo xtask test`").join(id);
    assert!(p.exists(), "fixture {id} missing at {}: run `cargo xtask fixtures`", p.display());
    p.to_string_lossy().into_owned()
}

fn oracle() -> PathBuf {
    let oracle = env_dir("CVM_ORACLE_BIN", "run the suite with `cargo xtask test`").join("sev-snp-measure");
    assert!(oracle.exists(), "sev-snp-measure missing at {}: run `cargo xtask install test`", oracle.display());
    oracle
}

/// `argv` through sev-snp-measure and through `cvm-measure snp`, both in `cwd`.
fn run_both(oracle: &Path, argv: &[&str], cwd: &Path) -> (Output, Output) {
    let py = Command::new(oracle).args(argv).current_dir(cwd).output().expect("running sev-snp-measure");
    let rs = Command::new(env!("CARGO_BIN_EXE_cvm-measure"))
        .arg("snp")
        .args(argv)
        .current_dir(cwd)
        .output()
        .expect("running cvm-measure");
    (py, rs)
}

/// A description of the difference when stdout or success/failure differ. Also checks that a
/// cvm-measure refusal exits 2 and says why on stderr.
fn difference(argv: &[&str], py: &Output, rs: &Output) -> Option<String> {
    if !rs.status.success() {
        assert_eq!(rs.status.code(), Some(2), "{argv:?}: could-not-compute exits 2");
        assert!(!rs.stderr.is_empty(), "{argv:?}: a refusal says why on stderr");
    }
    (py.stdout != rs.stdout || py.status.success() != rs.status.success()).then(|| {
        format!(
            "{argv:?}\n  sev-snp-measure ({}): {:?} {:?}\n  cvm-measure ({}): {:?} {:?}",
            py.status,
            String::from_utf8_lossy(&py.stdout),
            String::from_utf8_lossy(&py.stderr).lines().last().unwrap_or(""),
            rs.status,
            String::from_utf8_lossy(&rs.stdout),
            String::from_utf8_lossy(&rs.stderr),
        )
    })
}

#[test]
fn stdout_is_byte_identical_to_sev_snp_measure() {
    let oracle = oracle();
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
    let cwd = std::env::temp_dir();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|argv| {
            let (py, rs) = run_both(&oracle, argv, &cwd);
            difference(argv, &py, &rs)
        })
        .collect();
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

/// A synthetic Coconut-SVSM-like image of `size` bytes: a position-dependent pattern (so every
/// page hashes differently), an `ASEV` table with `sections` (gpa, size, type) 0x800 bytes
/// before the end, and the OVMF footer table with a SEV-ES reset block (ignored in this mode),
/// the SVSM entry offset (`SVSM_INFO_GUID`, unless `entry` is `None`) and the metadata pointer.
fn synth_svsm(size: usize, entry: Option<u32>, sections: &[(u32, u32, u32)]) -> Vec<u8> {
    let mut img: Vec<u8> = (0..size).map(|i| (i / 7 ^ i >> 12) as u8).collect();
    let asev_from_end = 0x800usize;
    let mut asev = b"ASEV".to_vec();
    for v in [16 + 12 * sections.len() as u32, 1, sections.len() as u32] {
        asev.extend_from_slice(&v.to_le_bytes());
    }
    for (gpa, len, ty) in sections {
        asev.extend([gpa, len, ty].iter().flat_map(|v| v.to_le_bytes()));
    }
    let at = size - asev_from_end;
    img[at..at + asev.len()].copy_from_slice(&asev);
    let mut entries: Vec<(EfiGuid, [u8; 4])> = vec![(SEV_ES_RESET_BLOCK_GUID, 0x80B004u32.to_le_bytes())];
    entries.extend(entry.map(|e| (SVSM_INFO_GUID, e.to_le_bytes())));
    entries.push((SEV_METADATA_OFFSET_GUID, (asev_from_end as u32).to_le_bytes()));
    // Entries are read backwards from the footer: data, then u16 length, then GUID.
    let mut table = Vec::new();
    for (guid, data) in entries.iter().rev() {
        table.extend_from_slice(data);
        table.extend_from_slice(&(data.len() as u16 + 18).to_le_bytes());
        table.extend_from_slice(guid.as_bytes());
    }
    table.extend_from_slice(&(table.len() as u16 + 18).to_le_bytes());
    table.extend_from_slice(OVMF_TABLE_FOOTER_GUID.as_bytes());
    let end = size - 0x20;
    img[end - table.len()..end].copy_from_slice(&table);
    img
}

/// `--mode snp:svsm`: digests for 0-64 vCPUs, each way of giving the signature, `--vars-size`
/// and `--vars-file` (an empty one too), hex/base64/verbose output, the inputs the mode ignores,
/// the VMSAs `--dump-vmsa` writes, and the refusals (stdout empty in both, failure in both, and
/// where sev-snp-measure's message is user-facing, the same message on stderr).
#[test]
fn svsm_stdout_and_vmsa_dumps_are_byte_identical_to_sev_snp_measure() {
    let oracle = oracle();
    let mut ovmfs = vec![fixture("O1")];
    if let Some(extra) = std::env::var_os("CVM_EXTRA_OVMF") {
        ovmfs.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()).map(|p| p.to_string_lossy().into_owned()));
    }
    let dir = std::env::temp_dir().join(format!("cvm-svsm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.to_string_lossy().into_owned()
    };
    // Every section type sev-snp-measure knows, SNP_KERNEL_HASHES included (ZERO pages here).
    let all_types = [(0x80_0000, 0x9000, 1), (0x80_9000, 0x1000, 2), (0x80_A000, 0x1000, 3), (0x80_B000, 0x1000, 4), (0x80_C000, 0x1000, 0x10)];
    let svsm = file("svsm.bin", &synth_svsm(0x4_0000, Some(0x1000), &all_types));
    let svsm_small = file("svsm-small.bin", &synth_svsm(0x3000, Some(0x24), &[(0x10_0000, 0x2000, 4), (0x10_2000, 0x1000, 3)]));
    let no_info = file("svsm-noinfo.bin", &synth_svsm(0x3000, None, &all_types));
    let unknown_type = file("svsm-type7.bin", &synth_svsm(0x3000, Some(0), &[(0x80_0000, 0x1000, 7)]));
    let odd_size = file("svsm-odd.bin", &synth_svsm(0x3010, Some(0), &[]));
    let vars = file("OVMF_VARS.fd", &vec![0u8; 540_672]);
    let empty_vars = file("empty-vars.fd", &[]);
    let k = file("kernel", b"not measured in this mode");
    let missing = dir.join("no-such-file").to_string_lossy().into_owned();

    // (argv after the OVMF, a message both tools must print on stderr)
    let mut cases: Vec<(Vec<String>, Option<&str>)> = Vec::new();
    for ovmf in &ovmfs {
        let ok = |rest: &[&str]| {
            let mut v: Vec<String> = ["--mode", "snp:svsm", "--ovmf", ovmf].iter().map(|s| s.to_string()).collect();
            v.extend(rest.iter().map(|s| s.to_string()));
            (v, None)
        };
        cases.extend([
            ok(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "131072"]),
            ok(&["--vcpus", "2", "--vcpu-type", "EPYC-Milan", "--svsm", &svsm, "--vars-file", &vars, "-v"]),
            ok(&["--vcpus", "4", "--vcpu-sig", "0xa00f11", "--svsm", &svsm, "--vars-size", "540672", "--output-format", "base64"]),
            ok(&["--vcpus", "64", "--vcpu-family", "25", "--vcpu-model", "17", "--vcpu-stepping", "0", "--svsm", &svsm, "--vars-size", "4096"]),
            ok(&["--vcpus", "4", "--vcpu-type", "EPYC-Genoa", "--svsm", &svsm_small, "--vars-file", &empty_vars]),
            ok(&["--vcpus", "0", "--vcpu-type", "EPYC-v4", "--svsm", &svsm_small, "--vars-size", "1"]),
            // Not page-aligned: sev-snp-measure measures at the unaligned GPA, so do we.
            ok(&["--vcpus", "3", "--vcpu-type", "EPYC-Turin", "--svsm", &svsm_small, "--vars-size", "1000", "--verbose"]),
            // Ignored by the mode (cvm-measure warns on stderr): kernel and guest features.
            ok(&["--vcpus", "2", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "131072", "--kernel", &k, "--append", "x"]),
            ok(&["--vcpus", "2", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "131072", "--guest-features", "0x21"]),
        ]);
    }
    let o1 = &ovmfs[0];
    let refuse = |rest: &[&str], msg: Option<&'static str>| {
        let mut v: Vec<String> = ["--mode", "snp:svsm", "--ovmf", o1].iter().map(|s| s.to_string()).collect();
        v.extend(rest.iter().map(|s| s.to_string()));
        (v, msg)
    };
    let needs_vars = Some("snp:svsm mode requires --vars-size or --vars-file");
    cases.extend([
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm], needs_vars),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "0"], needs_vars),
        // sev-snp-measure: an empty path is absent; clap refuses the empty value itself.
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-file", ""], None),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "4096", "--vars-file", &vars], None),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-file", &missing], None),
        refuse(&["--vcpus", "1", "--svsm", &svsm, "--vars-size", "4096"], Some("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest mode 'snp:svsm'")),
        refuse(&["--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "4096"], Some("missing --vcpus N in guest mode 'snp:svsm'")),
        refuse(&["--vcpus", "1", "--vmm-type", "ec2", "--svsm", &svsm, "--vars-size", "4096"], Some("SVSM mode is only implemented for Qemu.")),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "4096", "--snp-ovmf-hash", "00"], Some("SNP OVMF hash only works with SNP")),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--vars-size", "4096"], None),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &no_info, "--vars-size", "4096"], Some("Can't find SVSM_INFO_GUID entry in SVSM table")),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &unknown_type, "--vars-size", "4096"], None),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &odd_size, "--vars-size", "4096"], None),
        // OVMF (4 MiB) ends at 4 GiB: this puts the SVSM's start below GPA 0.
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "4290772993"], None),
        refuse(&["--vcpus", "1", "--vcpu-type", "EPYC-v4", "--svsm", &svsm, "--vars-size", "99999999999999"], None),
    ]);

    let mut failures = Vec::new();
    let (mut agree_ok, mut agree_err) = (0, 0);
    for (argv, msg) in &cases {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (py, rs) = run_both(&oracle, &argv, &dir);
        if let Some(d) = difference(&argv, &py, &rs) {
            failures.push(d);
            continue;
        }
        if py.status.success() {
            agree_ok += 1;
        } else {
            agree_err += 1;
        }
        if let Some(m) = msg {
            for (tool, out) in [("sev-snp-measure", &py), ("cvm-measure", &rs)] {
                if !String::from_utf8_lossy(&out.stderr).contains(m) {
                    failures.push(format!("{argv:?}: {tool} stderr lacks {m:?}: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
        }
    }

    // --dump-vmsa: the same vmsa<N>.bin files, byte for byte.
    for (n, ovmf) in ["5", "1"].iter().zip(&ovmfs) {
        let argv = ["--mode", "snp:svsm", "--vcpus", n, "--vcpu-type", "EPYC-Genoa", "--ovmf", ovmf, "--svsm", &svsm, "--vars-size", "540672", "--dump-vmsa"];
        let (py_dir, rs_dir) = (dir.join(format!("py-{n}")), dir.join(format!("rs-{n}")));
        std::fs::create_dir_all(&py_dir).unwrap();
        std::fs::create_dir_all(&rs_dir).unwrap();
        let py = Command::new(&oracle).args(argv).current_dir(&py_dir).output().unwrap();
        let rs = Command::new(env!("CARGO_BIN_EXE_cvm-measure")).arg("snp").args(argv).current_dir(&rs_dir).output().unwrap();
        failures.extend(difference(&argv, &py, &rs));
        let listing = |d: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
                .collect();
            v.sort();
            v
        };
        let (want, got) = (listing(&py_dir), listing(&rs_dir));
        assert_eq!(want.len(), n.parse::<usize>().unwrap(), "sev-snp-measure wrote {} VMSA files", want.len());
        if want != got {
            failures.push(format!("{argv:?}: --dump-vmsa files differ: {:?} vs {:?}", want.iter().map(|f| &f.0).collect::<Vec<_>>(), got.iter().map(|f| &f.0).collect::<Vec<_>>()));
        }
    }
    // --json carries the same digest, and where the SVSM went.
    let argv = ["--mode", "snp:svsm", "--vcpus", "2", "--vcpu-type", "EPYC-v4", "--ovmf", o1, "--svsm", &svsm, "--vars-size", "131072"];
    let (py, _) = run_both(&oracle, &argv, &dir);
    let rs = Command::new(env!("CARGO_BIN_EXE_cvm-measure")).arg("snp").args(argv).arg("--json").output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&rs.stdout).expect("--json prints JSON");
    assert_eq!(j["measurement"].as_str().map(|m| format!("{m}\n")), Some(String::from_utf8(py.stdout).unwrap()));
    // O1 is 4 MiB: it starts at 0xFFC0_0000; 0x20000 bytes of vars and the 0x40000-byte SVSM below.
    assert_eq!(j["svsm_gpa"], "0xffba0000");
    assert_eq!(j["svsm_eip"], "0xffba1000");
    assert_eq!(j["vars_size"], 131072);

    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("snp:svsm: {agree_ok} digests and {agree_err} refusals agree with sev-snp-measure over {} OVMF files", ovmfs.len());
    assert!(failures.is_empty(), "{} of {} snp:svsm cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
