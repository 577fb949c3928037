//! Checks on the project's *own* build outputs (issue 5): the firmware metadata the
//! measurement code depends on is present in what we built, and the third-party oracle
//! `sev-snp-measure` 0.0.13 agrees with `cvm-measure` on the AmdSev build with the built kernel,
//! an initrd and a command line (the case Debian's OVMF cannot express: it has no kernel hashes).

use cvm_measurements::ovmf::sev::{OvmfSevInfo, SevSectionType};
use cvm_measurements::ovmf::tdvf::{TdvfDescriptor, TdvfSectionType};
use cvm_measurements::snp::{self, LaunchParams, SevFirmware, SevHashTable, SevMode, VmmType};
use cvm_tests::{built, oracle};
use std::process::Command;

fn read(rel: &str) -> Vec<u8> {
    let p = built(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn intel_tdx_build_has_tdvf_metadata() {
    let fw = read("firmware/ovmf-tdx/OVMF.fd");
    let d = TdvfDescriptor::parse(&fw).expect("TDVF metadata of the IntelTdx build");
    for ty in [TdvfSectionType::Bfv, TdvfSectionType::Cfv, TdvfSectionType::TdHob, TdvfSectionType::TempMem] {
        assert!(d.section(ty).is_some(), "IntelTdx build lacks TDVF section {ty:?}: {d:#?}");
    }
    let bfv = d.section(TdvfSectionType::Bfv).unwrap();
    assert!(bfv.mr_extend(), "BFV must be MR.EXTENDed");
    // MRTD over our own build is computable in both page orders, and the orders differ.
    use cvm_measurements::tdx::{mrtd, PageAddOrder};
    let a = mrtd(&fw, &d, PageAddOrder::SinglePass).expect("MRTD single pass");
    let b = mrtd(&fw, &d, PageAddOrder::TwoPass).expect("MRTD two pass");
    assert_ne!(a, b);
}

#[test]
fn amd_sev_build_has_kernel_hashes_and_the_vtpm_build_does_not() {
    let snp = OvmfSevInfo::parse(&read("firmware/ovmf-snp/OVMF.fd")).expect("SEV metadata of the AmdSev build");
    assert!(snp.has_section(SevSectionType::SnpKernelHashes), "AmdSev build lacks SNP_KERNEL_HASHES: {snp:#?}");
    assert!(snp.supports_sev_kernel_hashes(), "AmdSev build has no hash-table block: {snp:#?}");
    let tbl = snp.hash_table.expect("hash table block");
    assert!(tbl.gpa != 0 && tbl.size >= 0xA8, "hash table block {tbl:?}");
    assert!(snp.sev_es_reset_eip.is_some(), "no SEV-ES reset block");

    let vtpm = OvmfSevInfo::parse(&read("firmware/ovmf-vtpm/OVMF.fd")).expect("SEV metadata of OvmfPkgX64");
    assert!(!vtpm.supports_sev_kernel_hashes(), "OvmfPkgX64 unexpectedly supports kernel hashes");
}

#[test]
fn sev_snp_measure_agrees_on_amd_sev_build_with_kernel_initrd_cmdline() {
    let ovmf = built("firmware/ovmf-snp/OVMF.fd");
    let kernel = built("kernel/bzImage");
    let dir = std::env::temp_dir().join(format!("cvm-built-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let initrd = dir.join("initrd");
    std::fs::write(&initrd, b"070701 not a real cpio, only hashed").unwrap();
    let cmdline = "console=ttyS0 root=/dev/dm-0 ro panic=-1";

    let fw_bytes = std::fs::read(&ovmf).unwrap();
    let fw = SevFirmware::parse(&fw_bytes).unwrap();
    let hashes = SevHashTable::from_blobs(
        &std::fs::read(&kernel).unwrap(),
        Some(&std::fs::read(&initrd).unwrap()),
        Some(cmdline.as_bytes()),
    );
    let cases: &[(&str, u32, &str, u64, &str)] = &[
        ("snp", 1, "EPYC-Milan", 0x1, "QEMU"),
        ("snp", 4, "EPYC-Genoa", 0x21, "QEMU"),
        ("snp", 2, "EPYC-v4", 0x1, "ec2"),
        ("seves", 2, "EPYC-Milan", 0x1, "QEMU"),
        ("sev", 1, "EPYC-Milan", 0x1, "QEMU"),
    ];
    for &(mode, vcpus, cpu, gf, vmm) in cases {
        let p = LaunchParams {
            mode: match mode { "snp" => SevMode::Snp, "seves" => SevMode::SevEs, _ => SevMode::Sev },
            vcpus,
            vcpu_sig: snp::cpu_type(cpu).expect("cpu type").sig() as u64,
            guest_features: gf,
            vmm: match vmm { "ec2" => VmmType::Ec2, _ => VmmType::Qemu },
            hashes: Some(hashes.clone()),
            snp_ovmf_hash: None,
        };
        let ours = hex::encode(snp::launch_digest(&fw, &p).expect("cvm-measure digest"));
        let out = Command::new(oracle("sev-snp-measure"))
            .args(["--mode", mode, "--vcpus", &vcpus.to_string(), "--vcpu-type", cpu])
            .args(["--guest-features", &format!("{gf:#x}"), "--vmm-type", vmm, "--output-format", "hex"])
            .arg("--ovmf").arg(&ovmf).arg("--kernel").arg(&kernel).arg("--initrd").arg(&initrd)
            .args(["--append", cmdline])
            .output()
            .expect("running sev-snp-measure");
        assert!(out.status.success(), "sev-snp-measure failed: {}", String::from_utf8_lossy(&out.stderr));
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(ours, theirs, "{mode} {vcpus} {cpu} gf={gf:#x} {vmm} on the AmdSev build");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every TDX entry of the manifest names its predicted event log (a CCEL artefact), and
/// replaying that log gives the entry's RTMR0-3: the log explains the values.
#[test]
fn tdx_event_logs_in_the_manifest_replay_to_its_rtmrs() {
    use cvm_measurements::eventlog::{alg::TPM_ALG_SHA384, ccel, replay, EventLog};
    let m: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let mut checked = 0;
    for s in m["shapes"].as_array().unwrap() {
        for e in s["tdx"].as_array().into_iter().flatten() {
            let rel = e["event_log"].as_str().unwrap_or_else(|| panic!("{}: no event_log in {e}", s["name"]));
            let log = EventLog::parse(&read(rel)).unwrap_or_else(|err| panic!("{rel}: {err}"));
            let regs = replay::replay::<sha2::Sha384>(&log, TPM_ALG_SHA384).unwrap();
            for (mr, value) in regs {
                let Some(r) = ccel::rtmr_of_mr_index(mr) else { continue };
                assert_eq!(hex::encode(value), e[format!("rtmr{r}")].as_str().unwrap(), "{rel}: RTMR{r}");
                checked += 1;
            }
            let listed = m["artefacts"].as_array().unwrap().iter().any(|a| a["path"] == rel);
            assert!(listed, "{rel} is not among the manifest's artefacts");
            // The ACPI/SMBIOS capture it was predicted with: QEMU version, shape argv, files.
            let cap = &e["acpi_capture"];
            assert_eq!(cap["source"], "qemu", "{rel}: {e}");
            assert!(cap["qemu_version"].as_str().is_some_and(|v| v.starts_with("QEMU emulator version")), "{cap}");
            let argv: Vec<&str> = cap["argv"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
            let smp = argv.iter().position(|&a| a == "-smp").map(|i| argv[i + 1]);
            assert_eq!(smp, Some(e["vcpus"].to_string().as_str()), "{cap}");
            assert_eq!(cap["files"].as_object().map(|f| f.len()), Some(5), "{cap}");
        }
    }
    assert!(checked >= 3, "only {checked} RTMRs checked");
}

/// The manifest pins every Debian package of the root file system by the sha256 of its .deb,
/// and that is the sha256 Debian's archive index lists for that version (one `apt-cache show`
/// with the trixie lists `cargo xtask install` adds).
#[test]
fn rootfs_debs_in_the_manifest_match_the_debian_archive_index() {
    let m: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let debs: Vec<(&str, &str, &str)> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            let name = i["name"].as_str()?.strip_prefix("deb:")?.split(':').next()?;
            Some((name, i["version"].as_str()?, i["sha256"].as_str()?))
        })
        .collect();
    assert!(debs.len() >= 20, "only {} deb: inputs in the manifest", debs.len());
    let out = Command::new("apt-cache")
        .arg("show")
        .args(debs.iter().map(|(n, v, _)| format!("{n}={v}")))
        .output()
        .expect("running apt-cache");
    // Records: `Package:`, `Version:`, `SHA256:` lines, separated by blank lines.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut index: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for record in text.split("\n\n") {
        let field = |k: &str| record.lines().find_map(|l| l.strip_prefix(k)).map(str::to_owned);
        if let (Some(p), Some(v), Some(h)) = (field("Package: "), field("Version: "), field("SHA256: ")) {
            index.entry((p, v)).or_default().push(h);
        }
    }
    let mut checked = 0;
    for (name, version, sha256) in &debs {
        let Some(listed) = index.get(&(name.to_string(), version.to_string())) else { continue };
        assert!(
            listed.iter().any(|h| h == sha256),
            "{name} {version}: the manifest pins {sha256}, the archive index lists {listed:?}"
        );
        checked += 1;
    }
    if checked == 0 {
        eprintln!("SKIPPED rootfs_debs_in_the_manifest_match_the_debian_archive_index: apt-cache knows none of the versions (no trixie lists: run `cargo xtask install build`)");
    } else {
        eprintln!("{checked} of {} packages checked against the archive index", debs.len());
    }
}
