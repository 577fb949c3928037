//! Fuzz target `ovmf_fv`: arbitrary bytes through the PI firmware-volume parser
//! (`cvm_measurements::ovmf::fv`) and the vTPM PCR 0 model on top of it
//! (`vtpm::pcr0::OvmfPcr0::from_firmware`), as a verifier runs them on an untrusted `OVMF.fd`.
//! Any panic is a bug: the library must answer with a typed error.
//!
//! The first byte picks the mode, so the fuzzer gets past the checksums without seeds:
//! - 0: the rest as a flash image (incl. the `etc/boot/` probe of `QemuKernelLoaderFsDxe`), a
//!   volume, a section stream, and through the PCR 0 model;
//! - 1: the rest as a volume whose header (signature, revision, length, block map, checksum)
//!   and file headers (sizes kept, state valid, fixed file checksum, header checksum) are
//!   repaired first, so the file and section parsers see what the fuzzer wrote;
//! - 2: the rest as edk2 LZMA data (1 MiB cap).

#![no_main]

use cvm_measurements::ovmf::fv::{
    lzma_decompress, parse_sections, volumes, FirmwareVolume, OvmfMemFvs, FFS2_GUID, FFS3_GUID,
    SECTION_GUID_DEFINED,
};
use cvm_measurements::vtpm::pcr0::OvmfPcr0;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;

fn sections(stream: &[u8]) {
    if let Ok(ss) = parse_sections(stream, 0) {
        for s in ss.iter().filter(|s| s.section_type == SECTION_GUID_DEFINED) {
            if let Ok(g) = s.guid_defined() {
                let _ = lzma_decompress(g.data, g.data_offset, CAP);
            }
        }
    }
}

/// Make `fv` a volume with valid header and file-header checksums (see the module doc).
fn repair(fv: &mut [u8]) {
    let len = fv.len() & !7;
    if len < 0x48 {
        return;
    }
    let fv = &mut fv[..len];
    let ffs3 = fv[0x2C] & 1 != 0;
    fv[0x10..0x20].copy_from_slice(if ffs3 { FFS3_GUID.as_bytes() } else { FFS2_GUID.as_bytes() });
    fv[0x20..0x28].copy_from_slice(&(len as u64).to_le_bytes());
    fv[0x28..0x2C].copy_from_slice(b"_FVH");
    fv[0x2D] |= 0x08; // erase polarity 1
    fv[0x30..0x32].copy_from_slice(&0x48u16.to_le_bytes());
    fv[0x32..0x34].fill(0);
    fv[0x34..0x36].fill(0);
    fv[0x37] = 2;
    fv[0x38..0x3C].copy_from_slice(&1u32.to_le_bytes());
    fv[0x3C..0x40].copy_from_slice(&(len as u32).to_le_bytes());
    fv[0x40..0x48].fill(0);
    let sum = fv[..0x48]
        .chunks_exact(2)
        .fold(0u16, |s, c| s.wrapping_add(u16::from_le_bytes([c[0], c[1]])));
    fv[0x32..0x34].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
    let mut off: usize = 0x48;
    while off.checked_add(32).is_some_and(|e| e <= len) {
        let large = fv[off + 19] & 0x01 != 0;
        let hl = if large { 32 } else { 24 };
        fv[off + 19] &= !0x40; // no file checksum: the fixed value
        fv[off + 17] = 0xAA;
        fv[off + 23] = 0xF8; // data valid, erase polarity 1
        fv[off + 16] = 0;
        let sum = fv[off..off + hl]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 17 && *i != 23)
            .fold(0u8, |s, (_, &b)| s.wrapping_add(b));
        fv[off + 16] = sum.wrapping_neg();
        let size = if large {
            u64::from_le_bytes(fv[off + 24..off + 32].try_into().unwrap()) as usize
        } else {
            u32::from_le_bytes([fv[off + 20], fv[off + 21], fv[off + 22], 0]) as usize
        };
        if size < hl {
            break;
        }
        off = match off.checked_add(size).and_then(|e| e.checked_add(7)) {
            Some(n) => n & !7,
            None => break,
        };
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = volumes(rest);
            let _ = FirmwareVolume::parse(rest, 0);
            sections(rest);
            if let Ok(m) = OvmfMemFvs::parse(rest) {
                let _ = m.reads_qemu_named_blobs();
                let _ = m.measures_smbios();
            }
            let _ = OvmfPcr0::from_firmware(rest);
        }
        1 => {
            let mut fv = rest.to_vec();
            repair(&mut fv);
            if let Ok(v) = FirmwareVolume::parse(&fv, 0) {
                for f in &v.files {
                    sections(f.data);
                }
            }
            let _ = volumes(&fv);
            let _ = OvmfPcr0::from_firmware(&fv);
        }
        _ => {
            let _ = lzma_decompress(rest, 0, CAP);
        }
    }
});
