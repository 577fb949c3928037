//! `cvm-measure vtpm` as a process, on the capture of Debian's OVMF.fd (O1) booting Debian's
//! kernel (K1) with the vector initrd (`tests/vectors/vtpm/debian-ovmf-debian-kernel`): the
//! printed and JSON PCRs are the ones the TPM reported, `--check-log` accepts that boot's log
//! (exit 0) and names PCR 9 for another command line (exit 1), `--event-log-out` writes a log
//! that checks against its own prediction, unreadable inputs exit 2.
//!
//! Needs `CVM_FIXTURES`, as set by `cargo xtask test`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

mod vtpm_common;
use vtpm_common::source_path;

const BIN: &str = env!("CARGO_BIN_EXE_cvm-measure");
const VECTOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/vtpm/debian-ovmf-debian-kernel"
);
const INITRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/vtpm/initrd.cpio"
);
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet";

fn fixture(id: &str) -> String {
    let p = source_path(&format!("fixture:{id}"));
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask fixtures`",
        p.display()
    );
    p.to_string_lossy().into_owned()
}

fn vtpm(cmdline: &str, extra: &[&str]) -> Output {
    let (o1, k1) = (fixture("O1"), fixture("K1"));
    Command::new(BIN)
        .args([
            "vtpm",
            "--firmware",
            &o1,
            "--kernel",
            &k1,
            "--initrd",
            INITRD,
        ])
        .args(["--cmdline", cmdline])
        .args(extra)
        .output()
        .expect("spawning cvm-measure")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn captured_pcrs() -> Value {
    serde_json::from_slice(&std::fs::read(format!("{VECTOR}/pcrs.json")).unwrap()).unwrap()
}

#[test]
fn prints_the_captured_pcrs_as_text_and_json() {
    let pcrs = captured_pcrs();
    let o = vtpm(CMDLINE, &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut want = String::new();
    for bank in ["sha256", "sha384"] {
        for p in ["0", "4", "5", "7", "9"] {
            want += &format!("{bank} PCR{p}: {}\n", pcrs[bank][p].as_str().unwrap());
        }
    }
    assert_eq!(stdout(&o), want);

    let o = vtpm(CMDLINE, &["--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    for bank in ["sha256", "sha384"] {
        let got = v[bank].as_object().unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["0", "4", "5", "7", "9"]);
        for (p, h) in got {
            assert_eq!(h, &pcrs[bank][p], "{bank} PCR {p}");
        }
    }
    let events = v["events"].as_array().unwrap();
    // PCR 0: S-CRTM version, PEIFV, DXEFV, separator; PCR 7: 5 variables + separator; PCR 4:
    // kernel, action, separator; PCR 5: separator + 2 actions; PCR 9: command line, initrd.
    assert_eq!(events.len(), 18);
    assert_eq!(events[0]["event_type"], "EV_S_CRTM_VERSION");
    assert_eq!(events[2]["event_type"], "EV_EFI_PLATFORM_FIRMWARE_BLOB");
    assert_eq!(events[9]["event_type"], "EV_EFI_BOOT_SERVICES_APPLICATION");
    assert_eq!(events[9]["pcr"], 4);
    assert_eq!(events[14]["description"], "LOADED_IMAGE::LoadOptions");
    // The events parse as the manifest's vtpm.events.
    let typed: Vec<cvm_manifest::VtpmEvent> = serde_json::from_value(v["events"].clone()).unwrap();
    assert_eq!(
        typed[17].description,
        "Exit Boot Services Returned with Success"
    );
}

#[test]
fn check_log_accepts_the_boot_and_names_pcr9_for_another_cmdline() {
    let log = format!("{VECTOR}/binary_bios_measurements");
    let pcrs = format!("{VECTOR}/pcrs.json");
    let o = vtpm(CMDLINE, &["--check-log", &log, "--pcrs", &pcrs]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(stdout(&o), "event log and PCRs match the prediction\n");

    let o = vtpm(
        "console=ttyS0 panic=-1",
        &["--check-log", &log, "--pcrs", &pcrs],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("prediction: PCR 9 (sha256)"), "{out}");
    assert!(
        out.contains("event: PCR 9 event 1: expected EV_EVENT_TAG"),
        "{out}"
    );
    assert!(
        !out.contains("PCR 4") && !out.contains("log replay"),
        "{out}"
    );

    let o = vtpm("console=ttyS0 panic=-1", &["--check-log", &log, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["match"], false);
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
}

#[test]
fn event_log_out_checks_against_its_own_prediction() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_vtpm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("predicted.log");
    let out = out.to_str().unwrap();
    let o = vtpm(CMDLINE, &["--event-log-out", out]);
    assert_eq!(o.status.code(), Some(0));
    let log = cvm_measurements::eventlog::EventLog::parse(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(log.events.len(), 18);
    let o = vtpm(CMDLINE, &["--check-log", out]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn unreadable_inputs_exit_2_with_a_message() {
    let o = vtpm(CMDLINE, &["--kernel", "/nonexistent/bzImage"]);
    // clap refuses a repeated --kernel: also exit 2.
    assert_eq!(o.status.code(), Some(2));
    let k1 = fixture("K1");
    let run = |fw: &str, kernel: &str| {
        Command::new(BIN)
            .args(["vtpm", "--firmware", fw, "--kernel", kernel])
            .output()
            .unwrap()
    };
    let o = run("/nonexistent/OVMF.fd", &k1);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("reading firmware /nonexistent/OVMF.fd"));
    // The Debian kernel is no firmware: no variable store at its start.
    let o = run(&k1, &k1);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a unified OVMF.fd"));
    // The firmware is no kernel.
    let o1 = fixture("O1");
    let o = run(&o1, &o1);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("kernel image"));
}
