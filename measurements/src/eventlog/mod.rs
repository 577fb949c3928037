//! TCG crypto-agile event logs (TCG PC Client Platform Firmware Profile 1.05, §10): reading and
//! writing `TCG_PCR_EVENT2` logs, the confidential-computing event log (CCEL) TDVF publishes,
//! replaying a log into register values, and the events firmware and the Linux EFI stub measure
//! (`events`). Hash-algorithm generic, so the same code serves TDX RTMRs (SHA-384, CC MR index)
//! and vTPM PCRs (SHA-256 and SHA-384 banks).

pub mod ccel;
pub mod events;
pub mod replay;
pub mod tcg2;

pub use tcg2::{EventLog, TcgEfiSpecIdEvent, TcgPcrEvent2, TpmtHa};

/// Errors from parsing an event log. Offsets are from the start of the log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("event log truncated: {what} of event {event} needs {need} bytes at offset {offset}, log has {have}")]
    Truncated {
        what: &'static str,
        event: usize,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("event log {field} of event {event} at offset {offset}: {problem}")]
    Invalid {
        field: &'static str,
        event: usize,
        offset: usize,
        problem: String,
    },
}

/// TCG event types (PC Client PFP 1.05, Table 9), named as the spec names them.
pub mod event_type {
    pub const EV_POST_CODE: u32 = 0x1;
    pub const EV_NO_ACTION: u32 = 0x3;
    pub const EV_SEPARATOR: u32 = 0x4;
    pub const EV_ACTION: u32 = 0x5;
    pub const EV_EVENT_TAG: u32 = 0x6;
    pub const EV_S_CRTM_CONTENTS: u32 = 0x7;
    pub const EV_S_CRTM_VERSION: u32 = 0x8;
    pub const EV_IPL: u32 = 0xD;
    pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0xA;
    pub const EV_COMPACT_HASH: u32 = 0xC;
    pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
    pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
    pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
    pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
    pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
    pub const EV_EFI_GPT_EVENT: u32 = 0x8000_0006;
    pub const EV_EFI_ACTION: u32 = 0x8000_0007;
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
    pub const EV_EFI_HANDOFF_TABLES: u32 = 0x8000_0009;
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
    pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000B;
    pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
    pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;

    /// The spec name of `t`, or `None` for a value this crate does not know.
    pub fn name(t: u32) -> Option<&'static str> {
        Some(match t {
            EV_POST_CODE => "EV_POST_CODE",
            EV_NO_ACTION => "EV_NO_ACTION",
            EV_SEPARATOR => "EV_SEPARATOR",
            EV_ACTION => "EV_ACTION",
            EV_EVENT_TAG => "EV_EVENT_TAG",
            EV_S_CRTM_CONTENTS => "EV_S_CRTM_CONTENTS",
            EV_S_CRTM_VERSION => "EV_S_CRTM_VERSION",
            EV_IPL => "EV_IPL",
            EV_PLATFORM_CONFIG_FLAGS => "EV_PLATFORM_CONFIG_FLAGS",
            EV_COMPACT_HASH => "EV_COMPACT_HASH",
            EV_EFI_VARIABLE_DRIVER_CONFIG => "EV_EFI_VARIABLE_DRIVER_CONFIG",
            EV_EFI_VARIABLE_BOOT => "EV_EFI_VARIABLE_BOOT",
            EV_EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
            EV_EFI_BOOT_SERVICES_DRIVER => "EV_EFI_BOOT_SERVICES_DRIVER",
            EV_EFI_RUNTIME_SERVICES_DRIVER => "EV_EFI_RUNTIME_SERVICES_DRIVER",
            EV_EFI_GPT_EVENT => "EV_EFI_GPT_EVENT",
            EV_EFI_ACTION => "EV_EFI_ACTION",
            EV_EFI_PLATFORM_FIRMWARE_BLOB => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
            EV_EFI_HANDOFF_TABLES => "EV_EFI_HANDOFF_TABLES",
            EV_EFI_PLATFORM_FIRMWARE_BLOB2 => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
            EV_EFI_HANDOFF_TABLES2 => "EV_EFI_HANDOFF_TABLES2",
            EV_EFI_VARIABLE_BOOT2 => "EV_EFI_VARIABLE_BOOT2",
            EV_EFI_VARIABLE_AUTHORITY => "EV_EFI_VARIABLE_AUTHORITY",
            _ => return None,
        })
    }
}

/// `TPM_ALG_ID` values (TPM 2.0 Part 2, Table 9) for the banks this crate replays.
pub mod alg {
    pub const TPM_ALG_SHA1: u16 = 0x0004;
    pub const TPM_ALG_SHA256: u16 = 0x000B;
    pub const TPM_ALG_SHA384: u16 = 0x000C;
    pub const TPM_ALG_SHA512: u16 = 0x000D;

    /// Digest size of a known algorithm.
    pub fn digest_size(alg: u16) -> Option<u16> {
        match alg {
            TPM_ALG_SHA1 => Some(20),
            TPM_ALG_SHA256 => Some(32),
            TPM_ALG_SHA384 => Some(48),
            TPM_ALG_SHA512 => Some(64),
            _ => None,
        }
    }
}
