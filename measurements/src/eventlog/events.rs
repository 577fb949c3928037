//! The events UEFI firmware (edk2 `Tcg2Dxe` / `TdTcg2Dxe`) and the Linux EFI stub measure, before
//! hashing: event type, digest preimage, event data. Hash-independent, so the TDX RTMR model
//! (SHA-384 into CC MR indexes) and the vTPM PCR model (SHA-256 and SHA-384 banks) build the
//! same events from one place and differ only in the register and the banks.

use std::borrow::Cow;

use sha2::Digest;

use super::event_type::{EV_EFI_ACTION, EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EVENT_TAG, EV_SEPARATOR};
use crate::uefi::{utf16le, UefiVariableData};

/// `EFI_ACTION` strings edk2 measures (`MdePkg/Include/Guid/EventGroup.h`, `Tcg2Dxe.c`).
pub const EFI_CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
pub const EFI_EXIT_BOOT_SERVICES_INVOCATION: &str = "Exit Boot Services Invocation";
pub const EFI_EXIT_BOOT_SERVICES_SUCCEEDED: &str = "Exit Boot Services Returned with Success";
/// Linux EFI stub tagged-event IDs (`drivers/firmware/efi/libstub/efi-stub-helper.c`).
pub const LOAD_OPTIONS_EVENT_TAG_ID: u32 = 0x8F3B_22ED;
pub const INITRD_EVENT_TAG_ID: u32 = 0x8F3B_22EC;
/// OVMF's kernel loader appends this to the command line when QEMU passes an initrd
/// (`OvmfPkg/Library/X86QemuLoadImageLib`).
pub const OVMF_INITRD_CMDLINE_SUFFIX: &str = " initrd=initrd";

/// One measured event before hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured<'a> {
    pub event_type: u32,
    /// What is hashed into the event's digests.
    pub preimage: Cow<'a, [u8]>,
    /// What the log carries beside the digests.
    pub event_data: Vec<u8>,
    /// What was measured, for people.
    pub description: String,
}

impl<'a> Measured<'a> {
    pub fn new(
        event_type: u32,
        preimage: impl Into<Cow<'a, [u8]>>,
        event_data: Vec<u8>,
        description: impl Into<String>,
    ) -> Measured<'a> {
        Measured {
            event_type,
            preimage: preimage.into(),
            event_data,
            description: description.into(),
        }
    }

    /// `H(preimage)`.
    pub fn digest<D: Digest>(&self) -> Vec<u8> {
        D::digest(&self.preimage).to_vec()
    }
}

/// `EV_SEPARATOR` with the 4-byte zero value edk2 measures at ReadyToBoot (and for PCR 7 after
/// the Secure Boot configuration).
pub fn separator() -> Measured<'static> {
    Measured::new(EV_SEPARATOR, vec![0; 4], vec![0; 4], "separator")
}

/// `EV_EFI_ACTION`: the ASCII string, no NUL, is both preimage and event data.
pub fn efi_action(s: &str) -> Measured<'static> {
    Measured::new(
        EV_EFI_ACTION,
        s.as_bytes().to_vec(),
        s.as_bytes().to_vec(),
        s,
    )
}

/// `EV_EVENT_TAG` as the Linux EFI stub logs it: `TCG_PCClientTaggedEvent` (taggedEventID,
/// taggedEventDataSize, taggedEventData = `what` with its NUL) over `preimage`.
pub fn tagged_event<'a>(id: u32, what: &str, preimage: impl Into<Cow<'a, [u8]>>) -> Measured<'a> {
    let text = [what.as_bytes(), &[0]].concat();
    let mut data = id.to_le_bytes().to_vec();
    data.extend_from_slice(&(text.len() as u32).to_le_bytes());
    data.extend_from_slice(&text);
    Measured::new(EV_EVENT_TAG, preimage, data, what)
}

/// The command line the Linux EFI stub sees in `LoadOptions`: `cmdline` plus OVMF's
/// ` initrd=initrd` when an initrd is passed.
pub fn effective_cmdline(cmdline: &str, has_initrd: bool) -> String {
    if has_initrd {
        format!("{cmdline}{OVMF_INITRD_CMDLINE_SUFFIX}")
    } else {
        cmdline.to_owned()
    }
}

/// What the Linux EFI stub (6.8+) measures, in order: LoadOptions (UTF-16LE + NUL) and the
/// initrd. An empty command line without initrd is not measured (no LoadOptions). TDX puts
/// them in RTMR2, a TPM in PCR 9.
pub fn linux_stub_events<'a>(cmdline: &str, initrd: Option<&'a [u8]>) -> Vec<Measured<'a>> {
    let mut ev = Vec::new();
    let line = effective_cmdline(cmdline, initrd.is_some());
    if !line.is_empty() {
        ev.push(tagged_event(
            LOAD_OPTIONS_EVENT_TAG_ID,
            "LOADED_IMAGE::LoadOptions",
            utf16le(&line, true),
        ));
    }
    if let Some(i) = initrd {
        ev.push(tagged_event(INITRD_EVENT_TAG_ID, "Linux initrd", i));
    }
    ev
}

/// `EV_EFI_VARIABLE_DRIVER_CONFIG` events of the Secure Boot variables: the serialized
/// `UEFI_VARIABLE_DATA` is both preimage and event data.
pub fn secure_boot_config_events(vars: &[UefiVariableData]) -> Vec<Measured<'static>> {
    vars.iter()
        .map(|v| {
            let b = v.to_bytes();
            Measured::new(
                EV_EFI_VARIABLE_DRIVER_CONFIG,
                b.clone(),
                b,
                v.unicode_name.clone(),
            )
        })
        .collect()
}

/// `UEFI_IMAGE_LOAD_EVENT` (PFP 1.05, Table 14) for `EV_EFI_BOOT_SERVICES_APPLICATION`:
/// ImageLocationInMemory, ImageLengthInMemory, ImageLinkTimeAddress, LengthOfDevicePath, the
/// device path. The load address is a run-time value: models write `location` 0 when they do not
/// know it.
pub fn image_load_event_data(location: u64, length: u64, device_path: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(32 + device_path.len());
    data.extend_from_slice(&location.to_le_bytes());
    data.extend_from_slice(&length.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    data.extend_from_slice(&(device_path.len() as u64).to_le_bytes());
    data.extend_from_slice(device_path);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Sha256, Sha384};

    #[test]
    fn separator_and_action_digests() {
        assert_eq!(
            hex::encode(separator().digest::<Sha256>()),
            "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119"
        );
        let h = hex::encode(separator().digest::<Sha384>());
        assert!(h.starts_with("394341b7") && h.ends_with("89f0"), "{h}");
        let a = efi_action(EFI_CALLING_EFI_APPLICATION);
        assert_eq!(a.event_data, EFI_CALLING_EFI_APPLICATION.as_bytes());
        assert_eq!(a.preimage, a.event_data);
    }

    #[test]
    fn stub_events_follow_the_initrd() {
        assert!(linux_stub_events("", None).is_empty());
        let ev = linux_stub_events("", Some(b"x"));
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].preimage, utf16le(" initrd=initrd", true));
        assert_eq!(ev[1].preimage.as_ref(), b"x");
        // taggedEventID, size 13, "Linux initrd\0"
        assert_eq!(
            &ev[1].event_data[..8],
            [0xec, 0x22, 0x3b, 0x8f, 13, 0, 0, 0]
        );
    }
}
