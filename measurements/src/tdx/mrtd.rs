//! MRTD: the SHA-384 the TDX module accumulates while the VMM builds the TD (Intel TDX Module
//! ABI spec, `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND`; tdx-measure.md §2.2). Each page-add and
//! each 256-byte extend contributes a 128-byte record (plus, for extends, the 256 bytes).

use sha2::Digest;

use crate::hash::Sha384;

use super::{Error, Sha384 as Digest48};
use crate::ovmf::tdvf::TdvfDescriptor;

/// Bytes per TD page.
pub const PAGE_BYTES: u64 = 4096;
/// Bytes per `TDH.MR.EXTEND` chunk.
pub const MR_EXTEND_CHUNK_BYTES: usize = 256;

/// The order in which the host issues page adds and extends. Hosts differ (P1 in the note).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageAddOrder {
    /// Per page: `PAGE.ADD` then its 16 extends. Upstream KVM `KVM_TDX_INIT_MEM_REGION`
    /// (Linux 6.16), QEMU ≥ 9, GCE, td-shim.
    SinglePass,
    /// Per section: every `PAGE.ADD`, then every extend. QEMU 8.x, Canonical 8.2.2 +tdx.
    TwoPass,
}

/// The 128-byte record the TDX module hashes for `TDH.MEM.PAGE.ADD`: ASCII `MEM.PAGE.ADD`
/// zero-padded to 16 bytes, the GPA (u64 LE), zeros to 128.
#[doc(alias = "MEM_PAGE_ADD")]
pub fn page_add_record(gpa: u64) -> [u8; 128] {
    record(b"MEM.PAGE.ADD", gpa)
}

/// The 128-byte header the TDX module hashes for `TDH.MR.EXTEND` of the 256 bytes at `gpa`:
/// ASCII `MR.EXTEND` zero-padded to 16 bytes, the GPA (u64 LE), zeros to 128.
#[doc(alias = "MR_EXTEND")]
pub fn mr_extend_record(gpa: u64) -> [u8; 128] {
    record(b"MR.EXTEND", gpa)
}

fn record(tag: &[u8], gpa: u64) -> [u8; 128] {
    let mut r = [0u8; 128];
    r[..tag.len()].copy_from_slice(tag);
    r[16..24].copy_from_slice(&gpa.to_le_bytes());
    r
}

/// MRTD of a TDVF firmware image built in `order`. Sections are processed in table order;
/// `PAGE.AUG` sections are not page-added; sections with `MR.EXTEND` are extended from their
/// raw file data.
pub fn mrtd(fw: &[u8], desc: &TdvfDescriptor, order: PageAddOrder) -> Result<Digest48, Error> {
    let mut h = Sha384::new();
    for (index, s) in desc.sections.iter().enumerate() {
        let data = if s.mr_extend() {
            let d = desc.section_bytes(fw, s)?;
            if d.len() as u64 != s.memory_data_size {
                return Err(Error::Section {
                    index,
                    problem: format!(
                        "MR.EXTEND needs raw size == memory size, got {:#x} vs {:#x}",
                        d.len(),
                        s.memory_data_size
                    ),
                });
            }
            Some(d)
        } else {
            None
        };
        let pages = s.pages();
        let add = |h: &mut Sha384, p: u64| {
            if !s.page_aug() {
                h.update(page_add_record(s.memory_address + p * PAGE_BYTES));
            }
        };
        let extend = |h: &mut Sha384, p: u64, data: &[u8]| {
            let page = &data[(p * PAGE_BYTES) as usize..((p + 1) * PAGE_BYTES) as usize];
            for (c, chunk) in page.chunks_exact(MR_EXTEND_CHUNK_BYTES).enumerate() {
                h.update(mr_extend_record(
                    s.memory_address + p * PAGE_BYTES + (c * MR_EXTEND_CHUNK_BYTES) as u64,
                ));
                h.update(chunk);
            }
        };
        match order {
            PageAddOrder::SinglePass => {
                for p in 0..pages {
                    add(&mut h, p);
                    if let Some(d) = data {
                        extend(&mut h, p, d);
                    }
                }
            }
            PageAddOrder::TwoPass => {
                for p in 0..pages {
                    add(&mut h, p);
                }
                if let Some(d) = data {
                    for p in 0..pages {
                        extend(&mut h, p, d);
                    }
                }
            }
        }
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovmf::tdvf::tests::{sec, synth};
    use crate::ovmf::tdvf::TdvfSectionType;

    #[test]
    fn records_layout() {
        let r = page_add_record(0xffc8_4000);
        assert_eq!(&r[..16], b"MEM.PAGE.ADD\0\0\0\0");
        assert_eq!(&r[16..24], 0xffc8_4000u64.to_le_bytes());
        assert!(r[24..].iter().all(|&b| b == 0));
        assert_eq!(&mr_extend_record(1)[..16], b"MR.EXTEND\0\0\0\0\0\0\0");
    }

    #[test]
    fn small_firmware_by_hand_and_orders_differ() {
        let secs = [
            sec(0, 0x2000, 0xffff_e000, 0x2000, TdvfSectionType::Bfv, 1),
            sec(0, 0, 0x80_0000, 0x1000, TdvfSectionType::TempMem, 0),
        ];
        let mut fw = synth(&secs, 0x4000);
        fw[..0x2000]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8);
        let d = TdvfDescriptor::parse(&fw).unwrap();
        let mut h = Sha384::new();
        for p in 0..2u64 {
            h.update(page_add_record(0xffff_e000 + p * 4096));
            for c in 0..16u64 {
                h.update(mr_extend_record(0xffff_e000 + p * 4096 + c * 256));
                let o = (p * 4096 + c * 256) as usize;
                h.update(&fw[o..o + 256]);
            }
        }
        h.update(page_add_record(0x80_0000));
        let expect: [u8; 48] = h.finalize().into();
        assert_eq!(mrtd(&fw, &d, PageAddOrder::SinglePass).unwrap(), expect);
        assert_ne!(mrtd(&fw, &d, PageAddOrder::TwoPass).unwrap(), expect);
    }
}
