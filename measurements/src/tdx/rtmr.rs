//! RTMR0..3 for QEMU + TDVF direct kernel boot (tdx-measure.md §2.3-2.7), as a list of typed
//! events in log order, so the same data gives register values, a CCEL event log and a
//! per-event explanation.
//!
//! Every digest is computed from inputs: the TD HOB from the memory size and the TDVF metadata,
//! the CFV from the firmware bytes, the Secure Boot variables, BootOrder and Boot#### from their
//! UEFI structures, the ACPI blobs from a capture of the VM shape, the kernel by Authenticode.
//!
//! Event *data* (what a CCEL log carries beside each digest) is informative only: where TDVF
//! puts runtime addresses in it, this model writes the values it knows (GPAs, sizes) and zeros
//! for the rest. Replay and verification use digests only.

use super::acpi::AcpiBlobs;
use super::qemu::{patch_kernel_setup_header, QemuModel};
use crate::ovmf::fv::OvmfMemFvs;
use super::td_hob::TdHob;
use super::{mrtd, sha384, Error, Sha384};
use crate::eventlog::alg::TPM_ALG_SHA384;
use crate::eventlog::ccel::{empty_ccel, CC_MR_INDEX_RTMR0};
use crate::eventlog::event_type::*;
use crate::eventlog::events::{
    efi_action, image_load_event_data, linux_stub_events, secure_boot_config_events, Measured,
};
use crate::eventlog::replay::extend;
use crate::eventlog::{EventLog, TcgPcrEvent2, TpmtHa};
use crate::guid::EfiGuid;
use crate::ovmf::tdvf::{TdvfDescriptor, TdvfSectionType};
use crate::uefi::variable::{boot_order_data, secure_boot_variables_empty, EFI_GLOBAL_VARIABLE};
use crate::uefi::{EfiLoadOption, UefiVariableData};

pub use crate::eventlog::events::{
    effective_cmdline, EFI_CALLING_EFI_APPLICATION, EFI_EXIT_BOOT_SERVICES_INVOCATION,
    EFI_EXIT_BOOT_SERVICES_SUCCEEDED, INITRD_EVENT_TAG_ID, LOAD_OPTIONS_EVENT_TAG_ID,
    OVMF_INITRD_CMDLINE_SUFFIX,
};

/// Which set and order of events the firmware measures: versioned data per OVMF generation
/// (P3). Detection from the firmware bytes is not possible in general; the caller pins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OvmfEventModel {
    /// edk2 with commit `efaf893` ("Fix the SeparatorEvent issue in RTMRs") and before
    /// edk2-stable202505: 13 RTMR0 events, the ReadyToBoot separator in RTMR1. Debian trixie
    /// 2025.02, Ubuntu 2025.02, dstack ≤ 0.6.
    Pre202505,
    /// edk2 before `efaf893` (e.g. Ubuntu `2024.02-3+tdx1.0`): the ReadyToBoot separator is
    /// measured into RTMR0 after Boot0000, RTMR1 has none.
    LegacySeparatorInRtmr0,
    /// edk2-stable202505 and later (docs/tdx-ovmf-202505.md): 17 RTMR0 events. New: the
    /// fw_cfg `BootMenu` and `bootorder` items (after the CFV), the SMBIOS table
    /// (`EV_EFI_HANDOFF_TABLES`, after the ACPI blobs), and two boot options
    /// (BootManagerMenuApp, "EFI Firmware Setup"). The SMBIOS digest depends on the VM shape and
    /// on the firmware's own Type 0 strings: [`crate::smbios::measured_table`] derives the
    /// bytes from QEMU's fw_cfg SMBIOS files and the firmware.
    Stable202505 {
        /// SHA-384 of the filtered SMBIOS structure table (SmbiosMeasurementDxe).
        smbios_digest: Sha384,
        /// The table has a 64-bit (SMBIOS 3) entry point: the event names
        /// `gEfiSmbios3TableGuid` rather than `gEfiSmbiosTableGuid` (event data only).
        smbios3: bool,
    },
}

impl OvmfEventModel {
    /// The boot options this generation of OVMF creates for a `-kernel` boot, in BootOrder
    /// order, as OVMF's own builds name them (see [`OvmfEventModel::boot_options_of`]).
    pub fn boot_options(self) -> Vec<EfiLoadOption> {
        match self {
            Self::Stable202505 { .. } => vec![
                EfiLoadOption::ovmf_boot_manager_menu_app(),
                EfiLoadOption::ovmf_firmware_setup(),
            ],
            _ => vec![EfiLoadOption::ovmf_ui_app()],
        }
    }

    /// The same boot options derived from `firmware` as edk2 derives them: the volume that
    /// holds each application and its user-interface name (Boot0000), UiApp's volume with
    /// PlatformBootManagerLib's "EFI Firmware Setup" (Boot0001 from stable202505). Needs the
    /// decompressed `FVMAIN_COMPACT` (~280 ms; `cvm-measure` caches the answer per firmware).
    pub fn boot_options_of(self, firmware: &OvmfMemFvs) -> Result<Vec<EfiLoadOption>, Error> {
        use crate::uefi::load_option::{BOOT_MANAGER_MENU_APP_FILE_GUID, UI_APP_FILE_GUID};
        let find = |attributes: u32, file, what: &str| {
            firmware
                .boot_manager_menu_option(attributes, file)?
                .ok_or_else(|| Error::Unsupported {
                    model: self.name(),
                    problem: format!("the firmware has no {what} in FVMAIN_COMPACT to make its boot option from"),
                })
        };
        Ok(match self {
            Self::Stable202505 { .. } => {
                let menu = EfiLoadOption::ovmf_boot_manager_menu_app();
                let setup = EfiLoadOption::ovmf_firmware_setup();
                let mut ui = find(setup.attributes, &UI_APP_FILE_GUID, "UiApp")?;
                ui.description = setup.description;
                vec![find(menu.attributes, &BOOT_MANAGER_MENU_APP_FILE_GUID, "BootManagerMenuApp")?, ui]
            }
            _ => {
                let ui = EfiLoadOption::ovmf_ui_app();
                vec![find(ui.attributes, &UI_APP_FILE_GUID, "UiApp")?]
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pre202505 => "pre202505",
            Self::LegacySeparatorInRtmr0 => "legacy-separator-in-rtmr0",
            Self::Stable202505 { .. } => "stable202505",
        }
    }
}

/// Everything that determines MRTD and RTMR0..2 of a direct-boot TD.
#[derive(Debug, Clone, Copy)]
pub struct TdxBoot<'a> {
    /// The unified `OVMF.fd` image loaded with `-bios`.
    pub firmware: &'a [u8],
    pub memory_bytes: u64,
    pub acpi: AcpiBlobs<'a>,
    /// The kernel file as given to `-kernel` (a bzImage with an EFI stub, i.e. a PE image).
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// The `-append` string.
    pub cmdline: &'a str,
    pub qemu: QemuModel,
    pub ovmf: OvmfEventModel,
    /// Whether `firmware` reads QEMU's `etc/boot/*` blobs, when the caller already knows
    /// (`cvm-measure` caches it per firmware digest); `None`: probed when the QEMU model needs
    /// it ([`QemuModel::kernel_patched`]; an LZMA decompression of `FVMAIN_COMPACT`).
    pub firmware_reads_named_blobs: Option<bool>,
    /// The boot options, when the caller derived them from the firmware
    /// ([`OvmfEventModel::boot_options_of`]); `None`: the model's ([`OvmfEventModel::boot_options`]).
    pub boot_options: Option<&'a [EfiLoadOption]>,
}

/// One predicted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxEvent {
    /// 0..=3.
    pub rtmr: usize,
    pub event_type: u32,
    pub digest: Sha384,
    /// The event data a CCEL log would carry (informative, see the module doc).
    pub event_data: Vec<u8>,
    /// What was measured, for people.
    pub description: String,
}

/// MRTD, RTMR0..3 and the events behind the RTMRs in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxMeasurement {
    pub mrtd: Sha384,
    pub rtmr: [Sha384; 4],
    pub events: Vec<TdxEvent>,
}

impl TdxMeasurement {
    /// Set the digest of the SMBIOS table event (stable202505) and replay the RTMRs: for a
    /// caller that derives the table from facts of the firmware keyed by its MRTD, known only
    /// after measuring.
    pub fn set_smbios_digest(&mut self, digest: Sha384) -> Result<(), Error> {
        let e = self
            .events
            .iter_mut()
            .find(|e| e.rtmr == 0 && e.event_type == EV_EFI_HANDOFF_TABLES)
            .ok_or(Error::Unsupported {
                model: "stable202505",
                problem: "no SMBIOS table event to set (an older event model)".into(),
            })?;
        e.digest = digest;
        self.rtmr = replay_events(&self.events);
        Ok(())
    }

    /// The events as a CCEL log (SHA-384 bank, CC MR index in `pcrIndex`).
    pub fn to_ccel(&self) -> EventLog {
        let mut log = empty_ccel();
        log.events = self.events.iter().map(TdxEvent::to_pcr_event2).collect();
        log
    }
}

impl TdxEvent {
    fn new(
        rtmr: usize,
        event_type: u32,
        preimage: &[u8],
        event_data: Vec<u8>,
        description: impl Into<String>,
    ) -> TdxEvent {
        TdxEvent {
            rtmr,
            event_type,
            digest: sha384(preimage),
            event_data,
            description: description.into(),
        }
    }

    /// A shared event model (`eventlog::events`) hashed with SHA-384 into `rtmr`.
    pub fn from_measured(rtmr: usize, m: Measured<'_>) -> TdxEvent {
        TdxEvent::new(rtmr, m.event_type, &m.preimage, m.event_data, m.description)
    }

    pub fn to_pcr_event2(&self) -> TcgPcrEvent2 {
        TcgPcrEvent2 {
            pcr_index: CC_MR_INDEX_RTMR0 + self.rtmr as u32,
            event_type: self.event_type,
            digests: vec![TpmtHa {
                hash_alg: TPM_ALG_SHA384,
                digest: self.digest.to_vec(),
            }],
            event: self.event_data.clone(),
        }
    }
}

/// `gUefiOvmfPkgTokenSpaceGuid`, the vendor GUID TDVF uses for the TD HOB handoff table.
const OVMF_TOKEN_SPACE_GUID: EfiGuid =
    EfiGuid::from_str_const("93bb96af-b9f2-4eb8-9462-e0ba74564236");

/// The TD HOB event (RTMR0 #1).
pub fn td_hob_event(desc: &TdvfDescriptor, memory_bytes: u64) -> Result<TdxEvent, Error> {
    let hob = TdHob::for_q35(desc, memory_bytes)?;
    // UEFI_HANDOFF_TABLE_POINTERS2: description, one table entry (vendor GUID, address).
    let mut data = vec![8u8];
    data.extend_from_slice(b"TdxTable");
    data.extend_from_slice(&1u64.to_le_bytes());
    data.extend_from_slice(OVMF_TOKEN_SPACE_GUID.as_bytes());
    data.extend_from_slice(&hob.hob_gpa.to_le_bytes());
    Ok(TdxEvent::new(
        0,
        EV_EFI_HANDOFF_TABLES2,
        &hob.to_bytes(),
        data,
        format!("TD HOB ({} resource descriptors)", hob.resources.len()),
    ))
}

/// The CFV event (RTMR0 #2): SHA-384 of the type-1 section's raw bytes.
pub fn cfv_event(fw: &[u8], desc: &TdvfDescriptor) -> Result<TdxEvent, Error> {
    let s = desc
        .section(TdvfSectionType::Cfv)
        .ok_or(crate::ovmf::Error::Missing("TDVF CFV section"))?;
    let bytes = desc.section_bytes(fw, s)?;
    // UEFI_PLATFORM_FIRMWARE_BLOB2: description, base, length.
    let mut data = vec![3u8];
    data.extend_from_slice(b"CFV");
    data.extend_from_slice(&s.memory_address.to_le_bytes());
    data.extend_from_slice(&u64::from(s.raw_data_size).to_le_bytes());
    Ok(TdxEvent::new(
        0,
        EV_EFI_PLATFORM_FIRMWARE_BLOB2,
        bytes,
        data,
        format!(
            "CFV ({:#x} bytes at file offset {:#x})",
            s.raw_data_size, s.data_offset
        ),
    ))
}

/// The Secure Boot events are those of empty variables (Secure Boot off). A CFV (the variable
/// store TDVF starts from) holding PK, KEK, db or dbx, as in Debian's `OVMF.inteltdx.ms.fd`,
/// would be measured with its keys and would verify the kernel: refused, not guessed.
fn refuse_enrolled_keys(fw: &[u8], desc: &TdvfDescriptor, model: OvmfEventModel) -> Result<(), Error> {
    let Some(s) = desc.section(TdvfSectionType::Cfv) else { return Ok(()) };
    let unsupported = |problem| Error::Unsupported { model: model.name(), problem };
    let cfv = desc.section_bytes(fw, s)?;
    match crate::vtpm::varstore::enrolled_secure_boot_key(cfv) {
        Ok(None) => Ok(()),
        Ok(Some(v)) => Err(unsupported(format!(
            "the firmware's variable store (CFV) holds {} ({} bytes): Secure Boot keys are \
             enrolled, and their measurement and the kernel's verification are not modelled \
             (use a firmware without enrolled keys, e.g. OVMF.inteltdx.fd, not .ms.fd)",
            v.name,
            v.data.len()
        ))),
        Err(e) => Err(unsupported(format!("reading the CFV's variables: {e}"))),
    }
}

fn separator(rtmr: usize) -> TdxEvent {
    TdxEvent::from_measured(rtmr, crate::eventlog::events::separator())
}

fn action(rtmr: usize, s: &str) -> TdxEvent {
    TdxEvent::from_measured(rtmr, efi_action(s))
}

fn boot_variable(name: &str, data: &[u8]) -> TdxEvent {
    let var = UefiVariableData::new(EFI_GLOBAL_VARIABLE, name, data);
    // The digest covers the variable data only (edk2 `MeasureVariable` for EV_EFI_VARIABLE_BOOT).
    TdxEvent::new(0, EV_EFI_VARIABLE_BOOT, data, var.to_bytes(), name)
}

/// QEMU's fw_cfg `bootorder` with `-kernel` on q35 (fw_cfg DMA): the option ROM that boots
/// the kernel is the only boot device (`system/bootdevice.c`, `get_boot_devices_list`).
pub const QEMU_KERNEL_BOOTORDER: &[u8] = b"/rom@genroms/linuxboot_dma.bin\0";

/// A fw_cfg item OVMF ≥ stable202505 caches and measures (`QemuFwCfgCacheInit.c`): the digest
/// is over the item's bytes, the event data `"QEMU FW CFG\0"` and the name padded to 56 bytes.
fn fw_cfg_event(name: &str, data: &[u8]) -> TdxEvent {
    let mut event_data = b"QEMU FW CFG\0".to_vec();
    let mut field = [0u8; 56];
    field[..name.len()].copy_from_slice(name.as_bytes());
    event_data.extend_from_slice(&field);
    let what = format!("fw_cfg {name} ({} bytes)", data.len());
    TdxEvent::new(0, EV_PLATFORM_CONFIG_FLAGS, data, event_data, what)
}

/// The SMBIOS table event of OVMF ≥ stable202505 (SmbiosMeasurementDxe, at ReadyToBoot):
/// `EV_EFI_HANDOFF_TABLES` with an `EFI_HANDOFF_TABLE_POINTERS` for the SMBIOS table. The
/// event data is informative: its GUID is `gEfiSmbiosTableGuid`, as a 2026.08 OVMF logs it under
/// QEMU 10.0's q35 (32-bit entry point; `gEfiSmbios3TableGuid` with a 64-bit one), and the
/// table's address is not known offline (0 here). The digest is the caller's.
fn smbios_event(digest: Sha384, smbios3: bool) -> TdxEvent {
    const SMBIOS_TABLE_GUID: crate::guid::EfiGuid =
        crate::guid::EfiGuid::from_str_const("eb9d2d31-2d88-11d3-9a16-0090273fc14d");
    const SMBIOS3_TABLE_GUID: crate::guid::EfiGuid =
        crate::guid::EfiGuid::from_str_const("f2fd1544-9794-4a2c-992e-e5bbcf20e394");
    let mut event_data = 1u64.to_le_bytes().to_vec();
    let guid = if smbios3 { SMBIOS3_TABLE_GUID } else { SMBIOS_TABLE_GUID };
    event_data.extend_from_slice(guid.as_bytes());
    event_data.extend_from_slice(&0u64.to_le_bytes());
    TdxEvent {
        rtmr: 0,
        event_type: EV_EFI_HANDOFF_TABLES,
        digest,
        event_data,
        description: "SMBIOS structure table, filtered (SmbiosMeasurementDxe)".into(),
    }
}

/// RTMR0 events up to and including the ACPI blobs (#1-#11 of the pre-202505 model; with the
/// two fw_cfg events after the CFV for stable202505).
pub fn rtmr0_platform_events(
    fw: &[u8],
    desc: &TdvfDescriptor,
    memory_bytes: u64,
    acpi: &AcpiBlobs<'_>,
    model: OvmfEventModel,
) -> Result<Vec<TdxEvent>, Error> {
    let mut ev = vec![td_hob_event(desc, memory_bytes)?, cfv_event(fw, desc)?];
    refuse_enrolled_keys(fw, desc, model)?;
    if let OvmfEventModel::Stable202505 { .. } = model {
        // FW_CFG_BOOT_MENU (0x0e): 0 without `-boot menu=on`.
        ev.push(fw_cfg_event("BootMenu", &[0, 0]));
        ev.push(fw_cfg_event("bootorder", QEMU_KERNEL_BOOTORDER));
    }
    ev.extend(
        secure_boot_config_events(&secure_boot_variables_empty())
            .into_iter()
            .map(|m| TdxEvent::from_measured(0, m)),
    );
    ev.push(separator(0));
    for (name, blob) in acpi.in_order() {
        ev.push(TdxEvent::new(
            0,
            EV_PLATFORM_CONFIG_FLAGS,
            blob,
            b"ACPI DATA".to_vec(),
            format!("ACPI fw_cfg {name} ({} bytes)", blob.len()),
        ));
    }
    Ok(ev)
}

/// Bytes of the kernel's start that the header patch works on (see [`kernel_event`]).
const KERNEL_HEAD_BYTES: usize = 64 * 1024;

/// The kernel image event (RTMR1 #1): Authenticode SHA-384 of the kernel as OVMF loads it.
pub fn kernel_event(
    kernel: &[u8],
    memory_bytes: u64,
    initrd_size: Option<u64>,
    header_patched: bool,
) -> Result<TdxEvent, Error> {
    // QEMU patches bytes 0x210..0x230 only: patch a copy of the first 64 KiB (which holds the
    // PE headers and section table of a bzImage) and hash it as an overlay on the file.
    let digest: Sha384 = if header_patched {
        let head = &kernel[..kernel.len().min(KERNEL_HEAD_BYTES)];
        let patched = patch_kernel_setup_header(head, memory_bytes, initrd_size)?;
        let mut d = [0u8; 48];
        d.copy_from_slice(&crate::pe::authenticode_overlay::<crate::hash::Sha384>(
            kernel, &patched,
        )?);
        d
    } else {
        crate::pe::authenticode_sha384(kernel)?
    };
    // UEFI_IMAGE_LOAD_EVENT: location (unknown: 0), length, link-time address, no device path.
    let data = image_load_event_data(0, kernel.len() as u64, &[]);
    let how = if header_patched {
        "setup header patched as QEMU < 10.1 does in the traditional fw_cfg kernel blob"
    } else {
        "unpatched file"
    };
    Ok(TdxEvent {
        rtmr: 1,
        event_type: EV_EFI_BOOT_SERVICES_APPLICATION,
        digest,
        event_data: data,
        description: format!("kernel Authenticode ({how})"),
    })
}

/// RTMR2 events of the Linux EFI stub ([`linux_stub_events`]): LoadOptions (UTF-16LE + NUL)
/// and the initrd. An empty command line without initrd is not measured (no LoadOptions).
pub fn rtmr2_events(cmdline: &str, initrd: Option<&[u8]>) -> Vec<TdxEvent> {
    linux_stub_events(cmdline, initrd)
        .into_iter()
        .map(|m| TdxEvent::from_measured(2, m))
        .collect()
}

/// Predict MRTD, RTMR0..3 and the event log of a direct-boot TD.
pub fn measure(boot: &TdxBoot<'_>) -> Result<TdxMeasurement, Error> {
    let desc = TdvfDescriptor::parse(boot.firmware)?;
    // Two threads side by side: the kernel's Authenticode (11 MiB for a distribution kernel,
    // the longest single SHA-384 stream), and MRTD with the other RTMR0 digests and RTMR2
    // (command line, initrd), about half as many bytes. Both are spawned and this thread only
    // waits: measured on the reference VM, hashing on the spawning thread while one helper runs
    // was 2-3 ms slower per process (the new thread tends to share the spawner's vCPU at first).
    let initrd_size = boot.initrd.map(|i| i.len() as u64);
    let header_patched = boot.qemu.kernel_patched(|| match boot.firmware_reads_named_blobs {
        Some(known) => Ok(known),
        None => OvmfMemFvs::parse(boot.firmware)?.reads_qemu_named_blobs(),
    })?;
    let (kernel, firmware) = std::thread::scope(|s| {
        let kernel =
            s.spawn(|| kernel_event(boot.kernel, boot.memory_bytes, initrd_size, header_patched));
        let firmware = s.spawn(|| {
            mrtd(boot.firmware, &desc, boot.qemu.page_add_order).and_then(|m| {
                Ok((
                    m,
                    rtmr0_platform_events(
                    boot.firmware,
                    &desc,
                    boot.memory_bytes,
                    &boot.acpi,
                    boot.ovmf,
                )?,
                    rtmr2_events(boot.cmdline, boot.initrd),
                ))
            })
        });
        (kernel.join(), firmware.join())
    });
    let kernel = kernel.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    let firmware = firmware.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let (mrtd, mut events, rtmr2) = firmware?;
    events.push(kernel);
    if let OvmfEventModel::Stable202505 { smbios_digest, smbios3 } = boot.ovmf {
        events.push(smbios_event(smbios_digest, smbios3));
    }
    let options = match boot.boot_options {
        Some(o) => o.to_vec(),
        None => boot.ovmf.boot_options(),
    };
    let order: Vec<u16> = (0..options.len() as u16).collect();
    events.push(boot_variable("BootOrder", &boot_order_data(&order)));
    for (n, o) in order.iter().zip(&options) {
        events.push(boot_variable(&format!("Boot{n:04X}"), &o.to_bytes()));
    }
    events.push(action(1, EFI_CALLING_EFI_APPLICATION));
    events.push(separator(match boot.ovmf {
        OvmfEventModel::LegacySeparatorInRtmr0 => 0,
        _ => 1,
    }));
    events.extend(rtmr2);
    events.push(action(1, EFI_EXIT_BOOT_SERVICES_INVOCATION));
    events.push(action(1, EFI_EXIT_BOOT_SERVICES_SUCCEEDED));
    let rtmr = replay_events(&events);
    Ok(TdxMeasurement { mrtd, rtmr, events })
}

/// Replay predicted events into RTMR0..3.
pub fn replay_events(events: &[TdxEvent]) -> [Sha384; 4] {
    let mut rtmr = [[0u8; 48]; 4];
    for e in events {
        extend::<sha2::Sha384>(&mut rtmr[e.rtmr], &e.digest);
    }
    rtmr
}

/// Replay a CCEL log into RTMR0..3 (events for MRTD or an index above RTMR3 are errors).
pub fn rtmrs_from_ccel(log: &EventLog) -> Result<[Sha384; 4], crate::eventlog::Error> {
    let regs = crate::eventlog::replay::replay::<sha2::Sha384>(log, TPM_ALG_SHA384)?;
    let mut rtmr = [[0u8; 48]; 4];
    for (idx, v) in regs {
        let r = crate::eventlog::ccel::rtmr_of_mr_index(idx).ok_or_else(|| {
            crate::eventlog::Error::Invalid {
                field: "TCG_PCR_EVENT2.pcrIndex",
                event: 0,
                offset: 0,
                problem: format!("CC MR index {idx} is not an RTMR (1..=4)"),
            }
        })?;
        rtmr[r].copy_from_slice(&v);
    }
    Ok(rtmr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Setting the SMBIOS digest after measuring gives what measuring with it would have:
    /// the event's digest, and RTMR0 replayed; a log without that event is refused.
    #[test]
    fn set_smbios_digest_replays_rtmr0() {
        let before = vec![separator(0), smbios_event([0; 48], false), separator(1)];
        let mut m = TdxMeasurement { mrtd: [1; 48], rtmr: replay_events(&before), events: before };
        m.set_smbios_digest([7; 48]).unwrap();
        let want = vec![separator(0), smbios_event([7; 48], false), separator(1)];
        assert_eq!(m.rtmr, replay_events(&want));
        assert_eq!(m.events[1].digest, [7; 48]);
        assert_ne!(m.rtmr[0], replay_events(&[separator(0), smbios_event([0; 48], false)])[0]);
        let mut old = TdxMeasurement { mrtd: [1; 48], rtmr: [[0; 48]; 4], events: vec![separator(0)] };
        assert!(old.set_smbios_digest([7; 48]).is_err());
    }

    /// tdx-measure.md §5.2 RTMR2 vector: cmdline with ` initrd=initrd`, 1 MiB zero initrd.
    #[test]
    fn rtmr2_known_answer() {
        let initrd = vec![0u8; 1 << 20];
        let ev = rtmr2_events("console=ttyS0 root=/dev/vda1 ro", Some(&initrd));
        assert_eq!(hex::encode(ev[0].digest), "68f7f5ce56b52054ea6be4e8136608cdf0b3b29a2c0ea6fff2f32910c1e87118dc21e7e7b9d8b42ebd085e8c029cbf2c");
        assert_eq!(hex::encode(ev[1].digest), "3164673a8ac27576ab5fc06b9adc4ce0aca5bd3025384b1cf2128a8795e747c431e882785a0bf8dc70b42995db388575");
        assert_eq!(hex::encode(replay_events(&ev)[2]), "3efe59620d09ec4ba38cab9dc7f7b33a0f9497cb6258ecf8ece5f5891e10c5a3c1942749df3716f06e8e30bc24816919");
    }

    #[test]
    fn separator_digest_is_the_well_known_value() {
        let h = hex::encode(separator(0).digest);
        assert!(h.starts_with("394341b7") && h.ends_with("89f0"), "{h}");
    }

    #[test]
    fn ccel_round_trip_replays_to_the_same_registers() {
        let mut ev = rtmr2_events("x", None);
        ev.push(action(1, EFI_CALLING_EFI_APPLICATION));
        ev.push(separator(0));
        let m = TdxMeasurement {
            mrtd: [0; 48],
            rtmr: replay_events(&ev),
            events: ev,
        };
        let bytes = m.to_ccel().to_bytes();
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(rtmrs_from_ccel(&log).unwrap(), m.rtmr);
        assert_eq!(log.events[0].pcr_index, 3);
    }
}
