//! vTPM PCR prediction for QEMU + OVMF (OvmfPkgX64 with `TPM2_ENABLE`): the image-dependent
//! PCRs and their events, for the SHA-256 and SHA-384 banks. Two boot paths:
//! - direct kernel boot (`-bios OVMF.fd -kernel K [-initrd I] -append C`): [`measure`], below;
//! - UEFI boot of the built disk by a boot option in the image's variable store (how the
//!   image boots on a vTPM platform and in `cargo xtask boot-test`): [`disk_boot`], which adds
//!   the `EV_EFI_GPT_EVENT` to PCR 5 and orders PCR 4 differently.
//!
//! What the firmware and the Linux EFI stub extend, in log order (checked against real boots with
//! swtpm, `measurements/tests/vectors/vtpm/`):
//!
//! | PCR | events |
//! |---|---|
//! | 0 | `EV_S_CRTM_VERSION` (`PcdFirmwareVersionString`); `EV_EFI_PLATFORM_FIRMWARE_BLOB` PEIFV, DXEFV (decompressed from `FVMAIN_COMPACT`; PEIFV as in RAM, see [`pcr0`]); `EV_SEPARATOR` |
//! | 7 | `EV_EFI_VARIABLE_DRIVER_CONFIG` SecureBoot, PK, KEK, db, dbx (`UEFI_VARIABLE_DATA`, empty data), `EV_SEPARATOR` |
//! | 4 | `EV_EFI_BOOT_SERVICES_APPLICATION`: Authenticode of the kernel file, **unpatched**; `EV_EFI_ACTION` "Calling EFI Application from Boot Option"; `EV_SEPARATOR` |
//! | 5 | `EV_SEPARATOR`; `EV_EFI_ACTION` "Exit Boot Services Invocation", "... Returned with Success" |
//! | 9 | `EV_EVENT_TAG` LoadOptions (UTF-16LE command line + NUL, with OVMF's ` initrd=initrd`), `EV_EVENT_TAG` "Linux initrd" (the initrd file) |
//!
//! - The kernel is measured as the file: QEMU ≥ 10.0 publishes the kernel without its setup
//!   header patches as fw_cfg `etc/boot/kernel` and OVMF ≥ edk2-stable202502 loads that, so
//!   PCR 4 depends neither on the guest memory size nor on the initrd size (captures at 512 MiB
//!   and 2 GiB agree). Older QEMU/OVMF pairs measure the patched header: not modelled.
//! - PCR 5 has no `EV_EFI_GPT_EVENT` with direct boot, even with a GPT disk attached (capture
//!   `ovmf-vtpm-disk`): it is the same for every image.
//! - PCR 7 is computed for firmware whose variable store enrolls no Secure Boot keys (checked
//!   in the firmware's varstore, [`varstore`]); enrolled keys are refused, not guessed.
//! - PCR 0 is read from the firmware file ([`pcr0`]): a different firmware changes the volume
//!   digests. It models the q35 machine (PeiCore caches the ICH9 ACPI timer port inside the
//!   measured PEIFV).
//! - Not predicted: PCR 1 (ACPI, boot variables: they depend on the VM shape and attached
//!   devices), PCRs 2, 3, 6 (separators only).
//!
//! Checking a real boot: parse its log with [`EventLog::parse`], then [`check_log`] against the
//! prediction and the PCR values the TPM reported.

pub mod disk_boot;
pub mod pcr0;
pub mod varstore;

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Sha256, Sha384};

use crate::eventlog::alg::{TPM_ALG_SHA256, TPM_ALG_SHA384};
use crate::eventlog::event_type::{self, EV_EFI_BOOT_SERVICES_APPLICATION, EV_NO_ACTION};
use crate::eventlog::events::{
    efi_action, image_load_event_data, linux_stub_events, secure_boot_config_events, separator,
    Measured, EFI_CALLING_EFI_APPLICATION, EFI_EXIT_BOOT_SERVICES_INVOCATION,
    EFI_EXIT_BOOT_SERVICES_SUCCEEDED,
};
use crate::eventlog::{EventLog, TcgEfiSpecIdEvent, TcgPcrEvent2, TpmtHa};
use crate::guid::EfiGuid;
use crate::uefi::device_path::{
    device_path_bytes, DevicePathNode, MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP, MEDIA_VENDOR_DP,
};
use crate::uefi::utf16le;
use crate::uefi::variable::secure_boot_variables_empty;

/// The PCRs this module predicts.
pub const PREDICTED_PCRS: [u32; 5] = [0, 4, 5, 7, 9];

pub use disk_boot::{measure_disk, VtpmDiskBoot};

/// Vendor GUID of OVMF's `QemuKernelLoaderFsDxe` media device path (`VenMedia(...)/kernel`).
pub const QEMU_KERNEL_LOADER_FS_MEDIA_GUID: EfiGuid =
    EfiGuid::from_str_const("1428f772-b64a-441e-b8c3-9ebdd7f893c7");

/// A PCR bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bank {
    Sha256,
    Sha384,
}

/// The banks predicted, in the order OVMF logs their digests.
pub const BANKS: [Bank; 2] = [Bank::Sha256, Bank::Sha384];

impl Bank {
    /// `sha256`, `sha384`: as in `/sys/class/tpm/tpm0/pcr-<bank>/` and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
        }
    }
    pub fn from_name(s: &str) -> Option<Bank> {
        BANKS.into_iter().find(|b| b.name() == s)
    }
    /// `TPM_ALG_ID`.
    pub fn alg(self) -> u16 {
        match self {
            Bank::Sha256 => TPM_ALG_SHA256,
            Bank::Sha384 => TPM_ALG_SHA384,
        }
    }
    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            Bank::Sha256 => 32,
            Bank::Sha384 => 48,
        }
    }
    fn hash(self, m: &Measured<'_>) -> Vec<u8> {
        match self {
            Bank::Sha256 => m.digest::<Sha256>(),
            Bank::Sha384 => m.digest::<Sha384>(),
        }
    }
}

/// PCR index → value, one bank.
pub type PcrValues = BTreeMap<u32, Vec<u8>>;

/// Errors from predicting vTPM PCRs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("kernel image: {0}")]
    Kernel(#[from] crate::pe::Error),
    #[error("firmware variable store at offset {offset:#x}: {problem}")]
    Varstore { offset: usize, problem: String },
    #[error("GPT at disk offset {offset:#x}: {problem}")]
    Gpt { offset: usize, problem: String },
    #[error("not modelled: {0}")]
    Unsupported(String),
    #[error("firmware: {0}")]
    Firmware(#[from] crate::ovmf::Error),
}

/// What determines PCRs 0, 4, 5, 7 and 9 of a direct-boot VM.
#[derive(Debug, Clone, Copy)]
pub struct VtpmBoot<'a> {
    /// The unified `OVMF.fd` given to `-bios` (TPM2-enabled OvmfPkgX64).
    pub firmware: &'a [u8],
    /// The kernel file given to `-kernel` (a bzImage with an EFI stub).
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// The `-append` string.
    pub cmdline: &'a str,
}

/// One predicted event, with its digest in every bank of [`BANKS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtpmEvent {
    pub pcr: u32,
    pub event_type: u32,
    /// Digests in [`BANKS`] order.
    pub digests: Vec<(Bank, Vec<u8>)>,
    /// The event data the log carries (the kernel event's load address, a run-time value, is 0).
    pub event_data: Vec<u8>,
    /// What was measured, for people.
    pub description: String,
}

impl VtpmEvent {
    fn from_measured(pcr: u32, m: Measured<'_>) -> VtpmEvent {
        VtpmEvent {
            pcr,
            event_type: m.event_type,
            digests: BANKS.iter().map(|&b| (b, b.hash(&m))).collect(),
            event_data: m.event_data,
            description: m.description,
        }
    }

    /// The digest in `bank`.
    pub fn digest(&self, bank: Bank) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(b, _)| *b == bank)
            .map(|(_, d)| d.as_slice())
    }

    /// The event as a log record (both banks).
    pub fn to_pcr_event2(&self) -> TcgPcrEvent2 {
        TcgPcrEvent2 {
            pcr_index: self.pcr,
            event_type: self.event_type,
            digests: self
                .digests
                .iter()
                .map(|(b, d)| TpmtHa {
                    hash_alg: b.alg(),
                    digest: d.clone(),
                })
                .collect(),
            event: self.event_data.clone(),
        }
    }
}

/// The predicted events (log order) and the PCR values they give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtpmMeasurement {
    pub events: Vec<VtpmEvent>,
    /// Bank → PCR → value, for the PCRs of [`PREDICTED_PCRS`].
    pub pcrs: BTreeMap<Bank, PcrValues>,
}

impl VtpmMeasurement {
    /// The value of `pcr` in `bank`, if predicted.
    pub fn pcr(&self, bank: Bank, pcr: u32) -> Option<&[u8]> {
        self.pcrs.get(&bank)?.get(&pcr).map(Vec::as_slice)
    }

    /// The events of one PCR, in order.
    pub fn events_of(&self, pcr: u32) -> impl Iterator<Item = &VtpmEvent> {
        self.events.iter().filter(move |e| e.pcr == pcr)
    }

    /// The predicted events as a crypto-agile TCG2 log (SHA-256 + SHA-384, as OVMF writes).
    pub fn to_event_log(&self) -> EventLog {
        EventLog {
            spec_id: spec_id(),
            events: self.events.iter().map(VtpmEvent::to_pcr_event2).collect(),
        }
    }
}

/// The spec ID header of a SHA-256 + SHA-384 log.
pub fn spec_id() -> TcgEfiSpecIdEvent {
    TcgEfiSpecIdEvent::for_algorithms(&BANKS.map(|b| (b.alg(), b.size() as u16)))
}

/// The kernel's device path as OVMF's `QemuKernelLoaderFsDxe` reports it:
/// `VenMedia(1428f772-…)/\kernel`.
pub fn kernel_device_path() -> Vec<u8> {
    device_path_bytes(&[
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_VENDOR_DP,
            data: QEMU_KERNEL_LOADER_FS_MEDIA_GUID.as_bytes().to_vec(),
        },
        DevicePathNode {
            node_type: MEDIA_DEVICE_PATH,
            sub_type: MEDIA_FILEPATH_DP,
            data: utf16le("kernel", true),
        },
        DevicePathNode::end(),
    ])
}

/// The PCR 4 kernel event: Authenticode of the unpatched kernel file in both banks.
pub fn kernel_event(kernel: &[u8]) -> Result<VtpmEvent, Error> {
    // Two passes over a large image: one per bank, side by side.
    let (sha256, sha384) = std::thread::scope(|s| {
        let a = s.spawn(|| crate::pe::authenticode::<Sha256>(kernel));
        let b = crate::pe::authenticode::<crate::hash::Sha384>(kernel);
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    });
    Ok(VtpmEvent {
        pcr: 4,
        event_type: EV_EFI_BOOT_SERVICES_APPLICATION,
        digests: vec![(Bank::Sha256, sha256?), (Bank::Sha384, sha384?)],
        event_data: image_load_event_data(0, kernel.len() as u64, &kernel_device_path()),
        description: "kernel Authenticode (file as given to -kernel)".into(),
    })
}

/// PCR 7: the Secure Boot configuration. Refuses firmware whose varstore holds PK, KEK, db or
/// dbx (their measurement with enrolled keys is not modelled).
pub fn secure_boot_events(firmware: &[u8]) -> Result<Vec<VtpmEvent>, Error> {
    let vars = secure_boot_variables_empty();
    if let Some(v) = varstore::enrolled_secure_boot_key(firmware)? {
        return Err(Error::Unsupported(format!(
            "the firmware's variable store holds {} ({} bytes): Secure Boot keys are enrolled",
            v.name,
            v.data.len()
        )));
    }
    let mut ev: Vec<VtpmEvent> = secure_boot_config_events(&vars)
        .into_iter()
        .map(|m| VtpmEvent::from_measured(7, m))
        .collect();
    ev.push(VtpmEvent::from_measured(7, separator()));
    Ok(ev)
}

/// PCR 0's events from the firmware (S-CRTM version, PEIFV, DXEFV), without the separator.
pub fn firmware_events(firmware: &[u8]) -> Result<Vec<VtpmEvent>, Error> {
    Ok(pcr0::OvmfPcr0::from_firmware(firmware)?.events())
}

/// Predict PCRs 0, 4, 5, 7, 9 and their events.
pub fn measure(boot: &VtpmBoot<'_>) -> Result<VtpmMeasurement, Error> {
    // First the variable store: its check also says plainly when the file is no OVMF.fd.
    let pcr7 = secure_boot_events(boot.firmware)?;
    // The firmware volumes (16 MB to decompress and hash) beside the kernel's Authenticode.
    let (pcr0, kernel) = std::thread::scope(|s| {
        let k = s.spawn(|| kernel_event(boot.kernel));
        let f = firmware_events(boot.firmware);
        (f, k.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    });
    let mut events = pcr0?;
    events.extend(pcr7);
    events.push(kernel?);
    events.push(VtpmEvent::from_measured(
        4,
        efi_action(EFI_CALLING_EFI_APPLICATION),
    ));
    // ReadyToBoot: the separators of PCRs 0-7 (1, 2, 3, 6 are not predicted).
    events.push(VtpmEvent::from_measured(0, separator()));
    events.push(VtpmEvent::from_measured(4, separator()));
    events.push(VtpmEvent::from_measured(5, separator()));
    events.extend(
        linux_stub_events(boot.cmdline, boot.initrd)
            .into_iter()
            .map(|m| VtpmEvent::from_measured(9, m)),
    );
    for a in [
        EFI_EXIT_BOOT_SERVICES_INVOCATION,
        EFI_EXIT_BOOT_SERVICES_SUCCEEDED,
    ] {
        events.push(VtpmEvent::from_measured(5, efi_action(a)));
    }
    let pcrs = BANKS
        .iter()
        .map(|&b| (b, replay_events(&events, b)))
        .collect();
    Ok(VtpmMeasurement { events, pcrs })
}

/// Replay predicted events into PCR values of one bank.
pub fn replay_events(events: &[VtpmEvent], bank: Bank) -> PcrValues {
    let mut pcrs = PcrValues::new();
    for e in events {
        let reg = pcrs.entry(e.pcr).or_insert_with(|| vec![0; bank.size()]);
        if let Some(d) = e.digest(bank) {
            extend(bank, reg, d);
        }
    }
    pcrs
}

fn extend(bank: Bank, reg: &mut [u8], digest: &[u8]) {
    match bank {
        Bank::Sha256 => crate::eventlog::replay::extend::<Sha256>(reg, digest),
        Bank::Sha384 => crate::eventlog::replay::extend::<Sha384>(reg, digest),
    }
}

/// Replay a TPM event log (e.g. `binary_bios_measurements`) into one bank's PCR values. PCRs
/// the log never extends are absent (their value is all zeros).
pub fn replay_log(log: &EventLog, bank: Bank) -> Result<PcrValues, crate::eventlog::Error> {
    match bank {
        Bank::Sha256 => crate::eventlog::replay::replay::<Sha256>(log, bank.alg()),
        Bank::Sha384 => crate::eventlog::replay::replay::<Sha384>(log, bank.alg()),
    }
}

/// A PCR whose value is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrMismatch {
    pub bank: Bank,
    pub pcr: u32,
    pub expected: Vec<u8>,
    /// `None`: the TPM did not report this PCR.
    pub found: Option<Vec<u8>>,
}

impl fmt::Display for PcrMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PCR {} ({}): expected {}, found {}",
            self.pcr,
            self.bank.name(),
            hex::encode(&self.expected),
            self.found.as_ref().map_or("nothing".into(), hex::encode)
        )
    }
}

/// An event of one PCR that differs between prediction and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMismatch {
    pub pcr: u32,
    /// 0-based position among the PCR's extending events.
    pub position: usize,
    /// The predicted event, `None` when the log has more events than predicted.
    pub expected: Option<String>,
    /// The logged event, `None` when the log has fewer events than predicted.
    pub found: Option<String>,
}

impl fmt::Display for EventMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PCR {} event {}: expected {}, found {}",
            self.pcr,
            self.position + 1,
            self.expected.as_deref().unwrap_or("no event"),
            self.found.as_deref().unwrap_or("no event")
        )
    }
}

fn describe(event_type: u32, digests: &[(Bank, Option<&[u8]>)], what: &str) -> String {
    let name = event_type::name(event_type).map_or(format!("{event_type:#x}"), str::to_owned);
    let d: Vec<String> = digests
        .iter()
        .map(|(b, d)| format!("{}:{}", b.name(), d.map_or("none".into(), hex::encode)))
        .collect();
    format!("{name} {} ({what})", d.join(" "))
}

/// Compare, PCR by PCR, the predicted events with those a log extends (event type and every
/// bank's digest; event data is informative and not compared). Empty when they agree.
pub fn compare_events(predicted: &VtpmMeasurement, log: &EventLog) -> Vec<EventMismatch> {
    let mut out = Vec::new();
    for pcr in PREDICTED_PCRS {
        let want: Vec<&VtpmEvent> = predicted.events_of(pcr).collect();
        let got: Vec<&TcgPcrEvent2> = log
            .events
            .iter()
            .filter(|e| e.pcr_index == pcr && e.event_type != EV_NO_ACTION)
            .collect();
        for i in 0..want.len().max(got.len()) {
            let (w, g) = (want.get(i), got.get(i));
            let same = matches!((w, g), (Some(w), Some(g))
                if w.event_type == g.event_type
                    && BANKS.iter().all(|&b| w.digest(b) == g.digest(b.alg())));
            if !same {
                out.push(EventMismatch {
                    pcr,
                    position: i,
                    expected: w.map(|w| {
                        let d: Vec<_> = BANKS.iter().map(|&b| (b, w.digest(b))).collect();
                        describe(w.event_type, &d, &w.description)
                    }),
                    found: g.map(|g| {
                        let d: Vec<_> = BANKS.iter().map(|&b| (b, g.digest(b.alg()))).collect();
                        describe(g.event_type, &d, "logged")
                    }),
                });
            }
        }
    }
    out
}

/// Where `expected` and `reported` disagree, for the PCRs in `pcrs` (a PCR absent from
/// `expected` is all zeros).
pub fn compare_pcrs(
    bank: Bank,
    pcrs: impl IntoIterator<Item = u32>,
    expected: &PcrValues,
    reported: &PcrValues,
) -> Vec<PcrMismatch> {
    pcrs.into_iter()
        .filter_map(|pcr| {
            let want = expected
                .get(&pcr)
                .cloned()
                .unwrap_or_else(|| vec![0; bank.size()]);
            let got = reported.get(&pcr);
            (got != Some(&want)).then(|| PcrMismatch {
                bank,
                pcr,
                expected: want,
                found: got.cloned(),
            })
        })
        .collect()
}

/// The outcome of [`check_log`]; [`LogCheck::is_ok`] when every list is empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogCheck {
    /// PCRs 0..=9 whose reported value is not what replaying the log gives: the log does not
    /// explain the TPM (truncated, forged, or extended outside the log).
    pub replay: Vec<PcrMismatch>,
    /// Predicted PCRs whose reported value differs from the prediction.
    pub pcrs: Vec<PcrMismatch>,
    /// Predicted events that differ from the logged ones: which measurement moved.
    pub events: Vec<EventMismatch>,
}

impl LogCheck {
    pub fn is_ok(&self) -> bool {
        self.replay.is_empty() && self.pcrs.is_empty() && self.events.is_empty()
    }
}

impl fmt::Display for LogCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "event log and PCRs match the prediction");
        }
        for m in &self.replay {
            writeln!(f, "log replay: {m}")?;
        }
        for m in &self.pcrs {
            writeln!(f, "prediction: {m}")?;
        }
        for m in &self.events {
            writeln!(f, "event: {m}")?;
        }
        Ok(())
    }
}

/// Check a booted VM's TPM event log and reported PCR values (bank → PCR → value, e.g. from
/// `/sys/class/tpm/tpm0/pcr-<bank>/` or a quote) against a prediction: the log must replay to
/// the reported PCRs 0..=9 of every reported bank, the predicted PCRs must equal the reported
/// ones, and the predicted events the logged ones. An error only when the log cannot be
/// replayed (no digest for a reported bank).
pub fn check_log(
    predicted: &VtpmMeasurement,
    log: &EventLog,
    reported: &BTreeMap<Bank, PcrValues>,
) -> Result<LogCheck, crate::eventlog::Error> {
    let mut check = LogCheck::default();
    for (&bank, values) in reported {
        let replayed = replay_log(log, bank)?;
        check
            .replay
            .extend(compare_pcrs(bank, 0..=9, &replayed, values));
        if let Some(p) = predicted.pcrs.get(&bank) {
            check
                .pcrs
                .extend(compare_pcrs(bank, PREDICTED_PCRS, p, values));
        }
    }
    check.events = compare_events(predicted, log);
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel device path of the captured logs (`tpm2_eventlog`: 42 bytes).
    #[test]
    fn kernel_device_path_matches_ovmf() {
        assert_eq!(
            hex::encode(kernel_device_path()),
            "0403140072f728144ab61e44b8c39ebdd7f893c7040412006b00650072006e0065006c0000007fff0400"
        );
    }

    fn empty_varstore() -> Vec<u8> {
        varstore::tests::nv_volume(&[])
    }

    #[test]
    fn pcr7_known_answer_and_enrolled_keys_refused() {
        // SHA-256 of the captured boots (all of them: no keys in either firmware).
        let ev = secure_boot_events(&empty_varstore()).unwrap();
        assert_eq!(ev.len(), 6);
        assert_eq!(
            hex::encode(ev[0].digest(Bank::Sha256).unwrap()),
            "ce9ce386b52e099f3019e512a0d6062d6b560efe4ff3e5661c7525e2f9c263df"
        );
        assert_eq!(
            hex::encode(&replay_events(&ev, Bank::Sha256)[&7]),
            "b5710bf57d25623e4019027da116821fa99f5c81e9e38b87671cc574f9281439"
        );
        let db = crate::uefi::variable::EFI_IMAGE_SECURITY_DATABASE_GUID;
        let fw = varstore::tests::nv_volume(&[(0x3F, db, "db", b"cert")]);
        let e = secure_boot_events(&fw).unwrap_err();
        assert!(e.to_string().contains("db (4 bytes)"), "{e}");
        // A deleted db does not count.
        assert!(secure_boot_events(&varstore::tests::nv_volume(&[(0x3C, db, "db", b"x")])).is_ok());
    }

    fn sample() -> VtpmMeasurement {
        let mut events = secure_boot_events(&empty_varstore()).unwrap();
        events.push(VtpmEvent::from_measured(
            4,
            efi_action(EFI_CALLING_EFI_APPLICATION),
        ));
        events.extend(
            linux_stub_events("console=ttyS0", Some(b"initrd"))
                .into_iter()
                .map(|m| VtpmEvent::from_measured(9, m)),
        );
        let pcrs = BANKS
            .iter()
            .map(|&b| (b, replay_events(&events, b)))
            .collect();
        VtpmMeasurement { events, pcrs }
    }

    /// What a TPM that saw exactly `log` reports: every PCR 0..=23, zero unless extended.
    fn tpm(log: &EventLog) -> BTreeMap<Bank, PcrValues> {
        BANKS
            .iter()
            .map(|&b| {
                let mut v: PcrValues = (0..24).map(|i| (i, vec![0; b.size()])).collect();
                v.extend(replay_log(log, b).unwrap());
                (b, v)
            })
            .collect()
    }

    #[test]
    fn a_log_of_the_prediction_checks_and_a_changed_event_is_named() {
        let m = sample();
        let log = EventLog::parse(&m.to_event_log().to_bytes()).unwrap();
        assert!(check_log(&m, &log, &tpm(&log)).unwrap().is_ok());

        // The guest got another command line: PCR 9's first event and value differ.
        let mut other = log.clone();
        let ev = linux_stub_events("console=ttyS1", Some(b"initrd"));
        other.events[7] = VtpmEvent::from_measured(9, ev[0].clone()).to_pcr_event2();
        let reported = tpm(&other);
        let c = check_log(&m, &other, &reported).unwrap();
        assert!(c.replay.is_empty(), "{c}");
        assert_eq!(c.pcrs.iter().map(|p| p.pcr).collect::<Vec<_>>(), [9, 9]);
        assert_eq!(c.events.len(), 1);
        assert_eq!((c.events[0].pcr, c.events[0].position), (9, 0));
        assert!(c.to_string().contains("PCR 9 event 1"), "{c}");

        // A TPM value the log does not explain.
        let mut forged = reported.clone();
        forged
            .get_mut(&Bank::Sha256)
            .unwrap()
            .insert(4, vec![1; 32]);
        let c = check_log(&m, &other, &forged).unwrap();
        assert_eq!(c.replay.len(), 1);
        assert_eq!(c.replay[0].pcr, 4);

        // A log missing the last event of PCR 9.
        let mut short = log.clone();
        short.events.remove(8);
        let c = compare_events(&m, &short);
        assert_eq!(c.len(), 1);
        assert!(c[0].found.is_none() && c[0].expected.as_deref().unwrap().contains("Linux initrd"));
    }

    #[test]
    fn bank_names_round_trip() {
        for b in BANKS {
            assert_eq!(Bank::from_name(b.name()), Some(b));
        }
        assert_eq!(Bank::from_name("sha1"), None);
    }
}
