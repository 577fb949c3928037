//! Fuzz target `smbios`: the SMBIOS parsers of `cvm_measurements::smbios`, whose inputs come
//! from users (`--acpi-dir` captures) and firmware images. The first byte (mod 3) chooses:
//!
//! - 0: the rest as QEMU's `smbios-tables`, with a 2.8 and a 3.0 entry point, through
//!   `measured_table`; the filtered table must be as long as the published one.
//! - 1: the rest through `filter_for_measurement` and `EntryPoint::parse`.
//! - 2: the rest as SmbiosPlatformDxe's PE image, through `OvmfType0::from_smbios_platform_dxe`.
//!
//! Any panic is a bug: each must answer with a typed error.

#![no_main]

use cvm_measurements::smbios::{self, EntryPoint, OvmfType0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, input)) = data.split_first() else { return };
    let type0 = OvmfType0 { vendor: "EDK II".into(), version: "unknown".into(), release_date: "02/02/2022".into() };
    match sel % 3 {
        0 => {
            for anchor in [&b"_SM_\0\x1f\x02\x08"[..], b"_SM3_\0\0\x03\x00"] {
                if let Ok((_, bytes)) = smbios::measured_table(input, anchor, &type0) {
                    let published = smbios::ovmf_published_table(input, anchor, &type0).expect("published");
                    assert_eq!(bytes.len(), published.bytes.len());
                }
            }
        }
        1 => {
            let _ = smbios::filter_for_measurement(input);
            let _ = EntryPoint::parse(input);
        }
        _ => {
            let _ = OvmfType0::from_smbios_platform_dxe(input);
        }
    }
});
