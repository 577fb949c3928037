//! vTPM PCR prediction against real boots: the event logs and PCRs captured from QEMU + swtpm
//! + OVMF direct kernel boots in `tests/vectors/vtpm/` (how: its README.md and capture.sh).
//!
//! For every capture: our parser reads the log back byte for byte, replaying it gives the PCRs
//! the guest read from the TPM (0-9, both banks), and `vtpm::measure` over the same firmware,
//! kernel, initrd and command line predicts PCRs 0, 4, 5, 7, 9 and each of their events (PCR 0
//! for two independent firmware builds: ours and Debian's). The capture `ovmf-vtpm-uefi-disk`
//! is a UEFI boot of the built disk (`"boot": "uefi-disk"`): `vtpm::measure_disk` over the
//! firmware, the image's variable store, the kernel and the disk's first blocks. The inputs
//! are the built image (`CVM_BUILT_OUT`, as `cargo xtask test` sets it) and the pinned fixtures
//! (`CVM_FIXTURES`), checked against the sha256 each capture recorded. `tpm2_eventlog`
//! (tpm2-tools), where installed, cross-checks our parse of every log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cvm_measurements::eventlog::event_type::{self, EV_EFI_BOOT_SERVICES_APPLICATION};
use cvm_measurements::eventlog::events::effective_cmdline;
use cvm_measurements::eventlog::EventLog;
use cvm_measurements::vtpm::{
    self, check_log, compare_events, Bank, PcrValues, VtpmBoot, VtpmDiskBoot, BANKS,
    PREDICTED_PCRS,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod vtpm_common;
use vtpm_common::{read_source, source_path, VECTORS};

/// Every capture, as in capture.sh.
const CAPTURES: [&str; 8] = [
    "ovmf-vtpm",
    "ovmf-vtpm-cmdline-verity",
    "ovmf-vtpm-2g",
    "ovmf-vtpm-disk",
    "debian-ovmf",
    "debian-ovmf-debian-kernel",
    "ovmf-vtpm-no-initrd",
    "ovmf-vtpm-uefi-disk",
];

struct Capture {
    name: &'static str,
    dir: PathBuf,
    meta: Value,
    log_bytes: Vec<u8>,
    log: EventLog,
    /// What the guest read from /sys/class/tpm/tpm0/pcr-<bank>/0..23.
    pcrs: BTreeMap<Bank, PcrValues>,
}

fn load(name: &'static str) -> Capture {
    let dir = Path::new(VECTORS).join(name);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{name}/{f}: {e}"));
    let meta: Value = serde_json::from_slice(&read("capture.json")).unwrap();
    let log_bytes = read("binary_bios_measurements");
    let log = EventLog::parse(&log_bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let doc: Value = serde_json::from_slice(&read("pcrs.json")).unwrap();
    let pcrs = BANKS
        .iter()
        .map(|&b| {
            let v = (0..24)
                .map(|i| {
                    let h = doc[b.name()][i.to_string()].as_str().unwrap();
                    (i, hex::decode(h).unwrap())
                })
                .collect();
            (b, v)
        })
        .collect();
    Capture {
        name,
        dir,
        meta,
        log_bytes,
        log,
        pcrs,
    }
}

/// An input of a capture (`built:REL`, `fixture:ID`, `initrd.cpio`), checked against the
/// sha256 the capture recorded.
fn input(c: &Capture, what: &str) -> Vec<u8> {
    let src = c.meta[what]["source"].as_str().unwrap();
    let path = source_path(src);
    let bytes = read_source(src).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let want = c.meta[what]["sha256"].as_str().unwrap();
    let got = hex::encode(Sha256::digest(&bytes));
    assert_eq!(
        got,
        want,
        "{}: {what} {} is not the one the capture booted: the {what} changed since, so the \
         vector is stale. Recapture: measurements/tests/vectors/vtpm/capture.sh {} (README.md)",
        c.name,
        path.display(),
        c.name
    );
    bytes
}

#[test]
fn logs_parse_back_byte_for_byte_and_replay_to_the_captured_pcrs() {
    for name in CAPTURES {
        let c = load(name);
        assert_eq!(
            c.log.to_bytes(),
            c.log_bytes,
            "{name}: re-serialized log differs"
        );
        assert_eq!(c.log.spec_id, vtpm::spec_id(), "{name}: banks of the log");
        for bank in BANKS {
            let replayed = vtpm::replay_log(&c.log, bank).unwrap();
            let bad = vtpm::compare_pcrs(bank, 0..=9, &replayed, &c.pcrs[&bank]);
            assert!(bad.is_empty(), "{name}: {}", bad[0]);
            // And the log is not trivially empty: every predicted PCR is extended.
            for p in PREDICTED_PCRS {
                assert!(replayed.contains_key(&p), "{name}: PCR {p} not in the log");
            }
        }
    }
}

#[test]
fn predictions_match_every_capture_event_by_event() {
    for name in CAPTURES {
        let c = load(name);
        let (firmware, kernel) = (input(&c, "firmware"), input(&c, "kernel"));
        let initrd = (!c.meta["initrd"].is_null()).then(|| input(&c, "initrd"));
        let cmdline = c.meta["cmdline"].as_str().unwrap();
        // With an initrd OVMF hands the stub `cmdline initrd=initrd`: /proc/cmdline says so.
        let proc_cmdline = std::fs::read_to_string(c.dir.join("proc_cmdline")).unwrap();
        assert_eq!(
            proc_cmdline,
            effective_cmdline(cmdline, initrd.is_some()) + "\n",
            "{name}"
        );

        let uefi_disk = c.meta["boot"] == "uefi-disk";
        let m = if uefi_disk {
            let (vars, disk_prefix) = (input(&c, "vars"), input(&c, "disk_prefix"));
            vtpm::measure_disk(&VtpmDiskBoot {
                firmware: &firmware,
                varstore: &vars,
                loader: &kernel,
                disk_prefix: &disk_prefix,
            })
        } else {
            vtpm::measure(&VtpmBoot {
                firmware: &firmware,
                kernel: &kernel,
                initrd: initrd.as_deref(),
                cmdline,
            })
        }
        .unwrap_or_else(|e| panic!("{name}: {e}"));

        for bank in BANKS {
            for p in PREDICTED_PCRS {
                assert_eq!(
                    m.pcr(bank, p).map(hex::encode),
                    Some(hex::encode(&c.pcrs[&bank][&p])),
                    "{name}: PCR {p} {}",
                    bank.name()
                );
            }
        }
        let diff = compare_events(&m, &c.log);
        assert!(diff.is_empty(), "{name}: {}", diff[0]);
        // Event data too, except the kernel's load address (a run-time value).
        for p in PREDICTED_PCRS {
            let logged: Vec<_> = c.log.events.iter().filter(|e| e.pcr_index == p).collect();
            for (want, got) in m.events_of(p).zip(logged) {
                let (mut w, mut g) = (want.event_data.clone(), got.event.clone());
                if want.event_type == EV_EFI_BOOT_SERVICES_APPLICATION {
                    w[..8].fill(0);
                    g[..8].fill(0);
                    if uefi_disk {
                        // The firmware logs the expanded device path (PciRoot/Pci/HD/File:
                        // where QEMU put the disk), the prediction the boot option's short
                        // form: compare length and link-time address only.
                        (w, g) = (w[8..24].to_vec(), g[8..24].to_vec());
                    }
                }
                assert_eq!(
                    hex::encode(w),
                    hex::encode(g),
                    "{name}: PCR {p} {}",
                    want.description
                );
            }
        }
        let check = check_log(&m, &c.log, &c.pcrs).unwrap();
        assert!(check.is_ok(), "{name}: {check}");
    }
}

/// The vectors tell predictions apart: another capture's command line, kernel or initrd gives
/// the PCR and the event that moved, and nothing else.
#[test]
fn a_wrong_input_is_caught_and_named() {
    let a = load("ovmf-vtpm");
    let b = load("ovmf-vtpm-cmdline-verity");
    let e = load("debian-ovmf-debian-kernel");
    let (firmware, kernel, initrd) = (
        input(&a, "firmware"),
        input(&a, "kernel"),
        input(&a, "initrd"),
    );
    let cmdline_a = a.meta["cmdline"].as_str().unwrap();
    let boot = VtpmBoot {
        firmware: &firmware,
        kernel: &kernel,
        initrd: Some(&initrd),
        cmdline: cmdline_a,
    };
    let moved = |m: &vtpm::VtpmMeasurement, c: &Capture| {
        let check = check_log(m, &c.log, &c.pcrs).unwrap();
        assert!(check.replay.is_empty(), "{check}");
        let pcrs: std::collections::BTreeSet<u32> = check.pcrs.iter().map(|p| p.pcr).collect();
        let pcrs: Vec<u32> = pcrs.into_iter().collect();
        let events: Vec<(u32, usize)> = check.events.iter().map(|e| (e.pcr, e.position)).collect();
        (pcrs, events)
    };
    // Capture (a)'s prediction against capture (b): only the command line moved.
    let m = vtpm::measure(&boot).unwrap();
    assert_eq!(moved(&m, &b), (vec![9], vec![(9, 0)]));
    // Against the Debian kernel boot: only the kernel image moved.
    let fw_e = input(&e, "firmware");
    let m = vtpm::measure(&VtpmBoot {
        firmware: &fw_e,
        ..boot
    })
    .unwrap();
    assert_eq!(moved(&m, &e), (vec![4], vec![(4, 0)]));
    // Another firmware (ours instead of Debian's, same kernel, initrd, command line): PCR 0
    // only, and in it the S-CRTM version and both firmware volumes.
    let d = load("debian-ovmf");
    let m = vtpm::measure(&boot).unwrap();
    assert_eq!(moved(&m, &d), (vec![0], vec![(0, 0), (0, 1), (0, 2)]));
    // Without the initrd: the command line loses ` initrd=initrd` and the initrd event is gone.
    let m = vtpm::measure(&VtpmBoot {
        initrd: None,
        ..boot
    })
    .unwrap();
    assert_eq!(moved(&m, &a), (vec![9], vec![(9, 0), (9, 1)]));
}

/// The UEFI disk boot capture tells its inputs apart too: a variable store whose boot option
/// carries another command line moves PCR 9's LoadOptions, a disk with another GPT (one entry
/// byte changed) PCR 5's GPT event, and nothing else.
#[test]
fn uefi_disk_boot_names_the_boot_option_and_the_gpt() {
    use cvm_measurements::vtpm::disk_boot;
    let c = load("ovmf-vtpm-uefi-disk");
    let (firmware, kernel) = (input(&c, "firmware"), input(&c, "kernel"));
    let (vars, disk_prefix) = (input(&c, "vars"), input(&c, "disk_prefix"));
    let moved = |varstore: &[u8], disk_prefix: &[u8]| {
        let m = vtpm::measure_disk(&VtpmDiskBoot {
            firmware: &firmware,
            varstore,
            loader: &kernel,
            disk_prefix,
        })
        .unwrap();
        let check = check_log(&m, &c.log, &c.pcrs).unwrap();
        assert!(check.replay.is_empty(), "{check}");
        let pcrs: std::collections::BTreeSet<u32> = check.pcrs.iter().map(|p| p.pcr).collect();
        let events: Vec<(u32, usize)> = check.events.iter().map(|e| (e.pcr, e.position)).collect();
        (pcrs.into_iter().collect::<Vec<_>>(), events)
    };
    assert_eq!(moved(&vars, &disk_prefix), (vec![], vec![]));
    // The build's own store is what the firmware's NV volume plus the boot option gives.
    let option = disk_boot::first_boot_option(&vars).unwrap();
    let esp = disk_boot::EspPartition::of_boot_option(&option).unwrap();
    let cmdline = c.meta["cmdline"].as_str().unwrap();
    assert_eq!(disk_boot::image_varstore(&firmware, &esp, cmdline).unwrap(), vars);
    let other = disk_boot::image_varstore(&firmware, &esp, "console=ttyS0").unwrap();
    assert_eq!(moved(&other, &disk_prefix), (vec![9], vec![(9, 0)]));
    let mut gpt = disk_prefix.clone();
    gpt[2 * 512 + 56] ^= 1; // a byte of the first entry's name
    let e = vtpm::measure_disk(&VtpmDiskBoot {
        firmware: &firmware,
        varstore: &vars,
        loader: &kernel,
        disk_prefix: &gpt,
    })
    .unwrap_err();
    assert!(e.to_string().contains("PartitionEntryArrayCRC32"), "{e}");
    // With the CRCs recomputed, as a partitioning tool would write it, it is a valid GPT
    // that moves PCR 5's GPT event and nothing else.
    let (h, le32) = (512, |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()));
    let array_len = (le32(&gpt, h + 80) * le32(&gpt, h + 84)) as usize;
    let array_crc = crc32fast::hash(&gpt[2 * 512..2 * 512 + array_len]);
    gpt[h + 88..h + 92].copy_from_slice(&array_crc.to_le_bytes());
    gpt[h + 16..h + 20].fill(0);
    let header_crc = crc32fast::hash(&gpt[h..h + le32(&gpt, h + 12) as usize]);
    gpt[h + 16..h + 20].copy_from_slice(&header_crc.to_le_bytes());
    assert_eq!(moved(&vars, &gpt), (vec![5], vec![(5, 1)]));
}

/// tpm2-tools' `tpm2_eventlog` (an independent parser) reads the same events and replays them
/// to the same PCRs as we do.
#[test]
fn tpm2_eventlog_agrees_with_our_parse() {
    let Ok(out) = std::process::Command::new("tpm2_eventlog")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIPPED tpm2_eventlog_agrees_with_our_parse: tpm2_eventlog is not installed (Debian package tpm2-tools)");
        return;
    };
    assert!(out.status.success(), "tpm2_eventlog --version failed");
    for name in CAPTURES {
        let c = load(name);
        let out = std::process::Command::new("tpm2_eventlog")
            .arg(c.dir.join("binary_bios_measurements"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        let (events, pcrs) = parse_tpm2_eventlog(&yaml);
        // Their event 0 is the spec ID header event.
        assert_eq!(events.len(), c.log.events.len() + 1, "{name}: event count");
        for (i, (theirs, ours)) in events[1..].iter().zip(&c.log.events).enumerate() {
            let ours_t = (
                ours.pcr_index,
                event_type::name(ours.event_type).unwrap().to_owned(),
                BANKS
                    .iter()
                    .map(|b| {
                        (
                            b.name().to_owned(),
                            hex::encode(ours.digest(b.alg()).unwrap()),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
            assert_eq!(theirs, &ours_t, "{name}: event {}", i + 1);
        }
        for bank in BANKS {
            let ours = vtpm::replay_log(&c.log, bank).unwrap();
            let theirs = &pcrs[bank.name()];
            assert_eq!(
                theirs.keys().collect::<Vec<_>>(),
                ours.keys().collect::<Vec<_>>(),
                "{name}: PCRs tpm2_eventlog replays"
            );
            for (p, v) in theirs {
                assert_eq!(v, &hex::encode(&ours[p]), "{name}: PCR {p} {}", bank.name());
            }
        }
    }
}

type Tpm2Event = (u32, String, Vec<(String, String)>);

/// The events (PCR, type name, digests) and the replayed PCRs of `tpm2_eventlog`'s YAML.
fn parse_tpm2_eventlog(yaml: &str) -> (Vec<Tpm2Event>, BTreeMap<String, BTreeMap<u32, String>>) {
    let mut events: Vec<Tpm2Event> = Vec::new();
    let mut pcrs: BTreeMap<String, BTreeMap<u32, String>> = BTreeMap::new();
    let (mut in_pcrs, mut bank, mut alg) = (false, String::new(), String::new());
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    for line in yaml.lines() {
        let t = line.trim();
        if line.starts_with("pcrs:") {
            in_pcrs = true;
        } else if in_pcrs {
            if let Some(b) = t.strip_suffix(':') {
                bank = b.to_owned();
            } else if let Some((p, v)) = t.split_once(':') {
                let v = v.trim().trim_start_matches("0x").to_owned();
                pcrs.entry(bank.clone())
                    .or_default()
                    .insert(p.trim().parse().unwrap(), v);
            }
        } else if t.starts_with("- EventNum:") {
            events.push((0, String::new(), Vec::new()));
        } else if let Some(v) = t.strip_prefix("PCRIndex:") {
            events.last_mut().unwrap().0 = v.trim().parse().unwrap();
        } else if let Some(v) = t.strip_prefix("EventType:") {
            events.last_mut().unwrap().1 = v.trim().to_owned();
        } else if let Some(v) = t.strip_prefix("- AlgorithmId:") {
            alg = v.trim().to_owned();
        } else if let Some(v) = t.strip_prefix("Digest:") {
            // The header event's SHA-1 digest has no AlgorithmId line.
            if !alg.is_empty() {
                let a = std::mem::take(&mut alg);
                events.last_mut().unwrap().2.push((a, unquote(v)));
            }
        }
    }
    (events, pcrs)
}

/// PCR 0 of both firmware builds, spelled out (the values the captures' TPMs reported), and
/// what each event says: the S-CRTM version string and where the volumes were measured.
#[test]
fn pcr0_of_both_firmwares() {
    for (name, version, pcr0) in [
        (
            "ovmf-vtpm",
            "",
            "791342f653436736d9296b558590067019505ebb93a37fd21ed59607788ce331",
        ),
        (
            "debian-ovmf",
            "2025.02-8+deb13u1",
            "0101271704ccc2360ddbb08438d591c23fb8a0a9cb0cebc60cefea7868833f8e",
        ),
    ] {
        let c = load(name);
        let fw = input(&c, "firmware");
        let p = vtpm::pcr0::OvmfPcr0::from_firmware(&fw).unwrap();
        assert_eq!(p.crtm_version, version, "{name}");
        assert_eq!((p.peifv_base, p.peifv.len()), (0x820000, 0xe0000), "{name}");
        assert_eq!(
            (p.dxefv_base, p.dxefv().len()),
            (0x900000, 0xe80000),
            "{name}"
        );
        assert_eq!(
            hex::encode(&c.pcrs[&Bank::Sha256][&0]),
            pcr0,
            "{name}: captured PCR 0"
        );
        let (kernel, initrd) = (input(&c, "kernel"), input(&c, "initrd"));
        let m = vtpm::measure(&VtpmBoot {
            firmware: &fw,
            kernel: &kernel,
            initrd: Some(&initrd),
            cmdline: c.meta["cmdline"].as_str().unwrap(),
        })
        .unwrap();
        assert_eq!(
            m.pcr(Bank::Sha256, 0).map(hex::encode).as_deref(),
            Some(pcr0),
            "{name}"
        );
    }
}

/// A real edk2-stable202608 OVMF (Debian sid `ovmf-generic` 2026.08+ds-2, OvmfPkgX64 with a
/// TPM) booted with `-kernel` measures the boot options that the TDX `stable202505` model
/// predicts for RTMR0 (the same preimages: EV_EFI_VARIABLE_BOOT hashes the variable data), in
/// that order, right after the SMBIOS handoff table event (docs/tdx-ovmf-202505.md).
#[test]
fn sid_ovmf_2026_08_measures_the_stable202505_boot_options() {
    use cvm_measurements::eventlog::alg::TPM_ALG_SHA384;
    use cvm_measurements::eventlog::event_type::{EV_EFI_HANDOFF_TABLES, EV_EFI_VARIABLE_BOOT};
    use cvm_measurements::uefi::load_option::EfiLoadOption;
    use cvm_measurements::uefi::variable::{boot_order_data, UefiVariableData, EFI_GLOBAL_VARIABLE};
    let c = load("debian-sid-ovmf-2026.08");
    let pcr1: Vec<_> = c.log.events.iter().filter(|e| e.pcr_index == 1).collect();
    let smbios = pcr1
        .iter()
        .position(|e| e.event_type == EV_EFI_HANDOFF_TABLES)
        .expect("an SMBIOS handoff table event in PCR 1");
    assert_eq!(pcr1[smbios].event.len(), 32, "EFI_HANDOFF_TABLE_POINTERS");
    let boot: Vec<_> = pcr1[smbios + 1..]
        .iter()
        .filter(|e| e.event_type == EV_EFI_VARIABLE_BOOT)
        .collect();
    let want = [
        ("BootOrder", boot_order_data(&[0, 1])),
        ("Boot0000", EfiLoadOption::ovmf_boot_manager_menu_app().to_bytes()),
        ("Boot0001", EfiLoadOption::ovmf_firmware_setup().to_bytes()),
    ];
    assert_eq!(boot.len(), want.len(), "boot variable events after SMBIOS");
    for (e, (name, data)) in boot.iter().zip(&want) {
        let var = UefiVariableData::new(EFI_GLOBAL_VARIABLE, name, data).to_bytes();
        assert_eq!(hex::encode(&e.event), hex::encode(&var), "{name}");
        assert_eq!(
            e.digest(TPM_ALG_SHA384).unwrap(),
            sha2::Sha384::digest(data).as_slice(),
            "{name}: the digest covers the variable data"
        );
    }
}

/// The SMBIOS handoff-table event of that boot, derived: QEMU's fw_cfg SMBIOS files for the
/// capture's shape (`smbios-tables`, `smbios-anchor`: `cvm-measure tdx --qemu` with `--machine
/// q35 --cpu-model max`, 1 vCPU, 512 MiB, the same QEMU 10.0.13) assembled as OVMF does, with
/// the Type 0 strings read from the firmware's SmbiosPlatformDxe, then filtered as
/// SmbiosMeasurementDxe does. Both banks of the real log must match (module `smbios`).
#[test]
fn sid_ovmf_2026_08_smbios_event_is_derived_from_qemus_tables_and_the_firmware() {
    use cvm_measurements::eventlog::alg::{TPM_ALG_SHA256, TPM_ALG_SHA384};
    use cvm_measurements::eventlog::event_type::EV_EFI_HANDOFF_TABLES;
    use cvm_measurements::ovmf::fv::OvmfMemFvs;
    use cvm_measurements::smbios::{measured_table, OvmfType0};
    let name = "debian-sid-ovmf-2026.08";
    let c = load(name);
    let dir = Path::new(VECTORS).join(name);
    let xz = std::fs::read(dir.join("OVMF.fd.xz")).unwrap();
    let mut fw = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut fw).unwrap();
    let type0 = OvmfMemFvs::parse(&fw).unwrap().smbios_type0().unwrap().expect("SmbiosPlatformDxe");
    assert_eq!(
        type0,
        OvmfType0 {
            vendor: "Debian distribution of EDK II".into(),
            version: "2026.08+ds-2".into(),
            release_date: "09/26/2026".into(),
        }
    );
    let tables = std::fs::read(dir.join("smbios-tables")).unwrap();
    let anchor = std::fs::read(dir.join("smbios-anchor")).unwrap();
    let (entry_point, bytes) = measured_table(&tables, &anchor, &type0).unwrap();
    assert!(!entry_point.is_64_bit, "QEMU 10.0 q35 offers a 32-bit entry point");
    let event = c
        .log
        .events
        .iter()
        .find(|e| e.pcr_index == 1 && e.event_type == EV_EFI_HANDOFF_TABLES)
        .expect("the SMBIOS event");
    assert_eq!(
        event.digest(TPM_ALG_SHA256).map(hex::encode),
        Some(hex::encode(Sha256::digest(&bytes)))
    );
    assert_eq!(
        event.digest(TPM_ALG_SHA384).map(hex::encode),
        Some(hex::encode(sha2::Sha384::digest(&bytes)))
    );
    // A different memory size is a different table, hence a different digest.
    let mut other = tables.clone();
    let t19 = other.windows(2).position(|w| w == [19, 31]).expect("type 19");
    other[t19 + 8] ^= 1; // EndingAddress
    let (_, moved) = measured_table(&other, &anchor, &type0).unwrap();
    assert_ne!(moved, bytes);
}
