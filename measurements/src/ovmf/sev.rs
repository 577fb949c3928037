//! What AMD SEV / SEV-ES / SEV-SNP launches need from an OVMF image: the SEV metadata
//! (`ASEV` header and section descriptors, edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`),
//! the SEV-ES reset block (AP reset EIP) and the kernel-hashes table block, all located through
//! the GUIDed footer table ([`super::footer`]).
//!
//! Parsing keeps unknown section types (an open enum): whether they are an error depends on the
//! launch mode (SNP measures every section; SEV and SEV-ES never look at them), which is the
//! behaviour of sev-snp-measure 0.0.13.

use super::footer::{
    FooterTable, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID, SEV_METADATA_OFFSET_GUID,
};
use super::{read_array, read_slice, read_u32, Error, Result};

/// `"ASEV"`: signature of the SEV metadata header.
pub const SEV_METADATA_SIGNATURE: [u8; 4] = *b"ASEV";
/// Size of the `ASEV` header: signature, length, version, number of sections.
pub const SEV_METADATA_HEADER_BYTES: usize = 16;
/// Size of one section descriptor: u32 gpa, u32 size, u32 type.
pub const SEV_METADATA_DESC_BYTES: usize = 12;

/// Type of an SEV metadata section (`OvmfSevMetadata.asm`, `OVMF_SECTION_TYPE_*`).
///
/// Open: a type this code does not know is kept as [`SevSectionType::Unknown`], so a parse
/// never fails on a new edk2 section type; the SNP launch rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SevSectionType {
    /// 1, `SNP_SEC_MEM`: memory pre-validated by the VMM (measured as ZERO pages).
    SnpSecMem,
    /// 2, `SNP_SECRETS`: the SNP secrets page.
    SnpSecrets,
    /// 3, `CPUID`: the SNP CPUID page.
    Cpuid,
    /// 4, `SVSM_CAA`: the SVSM calling-area page (edk2 2024+).
    SvsmCaa,
    /// 0x10, `SNP_KERNEL_HASHES`: the page holding the kernel-hashes table (AmdSevX64 only).
    SnpKernelHashes,
    /// Any other value, kept as read.
    Unknown(u32),
}

impl SevSectionType {
    /// Decode the descriptor's `type` field.
    pub fn from_u32(v: u32) -> SevSectionType {
        match v {
            1 => SevSectionType::SnpSecMem,
            2 => SevSectionType::SnpSecrets,
            3 => SevSectionType::Cpuid,
            4 => SevSectionType::SvsmCaa,
            0x10 => SevSectionType::SnpKernelHashes,
            other => SevSectionType::Unknown(other),
        }
    }

    /// The `type` field value.
    pub fn as_u32(self) -> u32 {
        match self {
            SevSectionType::SnpSecMem => 1,
            SevSectionType::SnpSecrets => 2,
            SevSectionType::Cpuid => 3,
            SevSectionType::SvsmCaa => 4,
            SevSectionType::SnpKernelHashes => 0x10,
            SevSectionType::Unknown(v) => v,
        }
    }
}

/// One SEV metadata section descriptor (`OvmfSevMetadataSectionDesc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevMetadataSection {
    /// Guest-physical address of the section.
    pub gpa: u32,
    /// Size in bytes.
    pub size: u32,
    /// Section type.
    pub section_type: SevSectionType,
    /// File offset of the descriptor (for error messages).
    pub desc_offset: u64,
}

/// The kernel-hashes table block (`SEV_HASH_TABLE_RV_GUID` entry): where QEMU writes the
/// [`crate::snp::hashes::SevHashTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevHashTableBlock {
    /// GPA of the table (AmdSevX64: 0x0081_0C00; OvmfPkgX64: 0 = unsupported).
    pub gpa: u32,
    /// Size reserved for the table (AmdSevX64: 0x400).
    pub size: u32,
}

/// Everything an AMD launch digest needs from the firmware, besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OvmfSevInfo {
    /// SEV metadata sections, in table order (the order is part of the SNP digest). Empty when
    /// the firmware has no `SEV_METADATA_OFFSET_GUID` entry.
    pub sections: Vec<SevMetadataSection>,
    /// AP reset address from the SEV-ES reset block, if the firmware has one.
    pub sev_es_reset_eip: Option<u32>,
    /// The kernel-hashes table block, if the firmware has the entry (it may be 0/0).
    pub hash_table: Option<SevHashTableBlock>,
}

impl OvmfSevInfo {
    /// Parse the SEV-relevant parts of a whole firmware file.
    pub fn parse(fw: &[u8]) -> Result<OvmfSevInfo> {
        let table = FooterTable::parse(fw)?;
        Self::from_footer(fw, &table)
    }

    /// Same as [`OvmfSevInfo::parse`], reusing an already parsed footer table.
    pub fn from_footer(fw: &[u8], table: &FooterTable) -> Result<OvmfSevInfo> {
        let sev_es_reset_eip = table.find_u32(&SEV_ES_RESET_BLOCK_GUID, "SEV-ES reset block")?;
        let hash_table = match table.find(&SEV_HASH_TABLE_RV_GUID) {
            None => None,
            Some(e) => {
                let gpa = read_u32(&e.data, 0, "SEV hash table block gpa").map_err(|_| {
                    Error::Invalid {
                        field: "SEV hash table block",
                        offset: e.data_offset,
                        problem: format!("entry data is {} bytes, need 4", e.data.len()),
                    }
                })?;
                // The size is informative only (no tool checks it); tolerate its absence.
                let size = read_u32(&e.data, 4, "SEV hash table block size").unwrap_or(0);
                Some(SevHashTableBlock { gpa, size })
            }
        };
        let sections = metadata_sections(fw, table)?;
        Ok(OvmfSevInfo { sections, sev_es_reset_eip, hash_table })
    }

    /// Whether the firmware can measure a kernel under SEV / SEV-ES: the hash-table block is
    /// present with a non-zero GPA (sev-snp-measure's `is_sev_hashes_table_supported`).
    pub fn supports_sev_kernel_hashes(&self) -> bool {
        matches!(self.hash_table, Some(b) if b.gpa != 0)
    }

    /// Whether any metadata section has `ty`.
    pub fn has_section(&self, ty: SevSectionType) -> bool {
        self.sections.iter().any(|s| s.section_type == ty)
    }
}

/// The SEV metadata sections of any image with an OVMF-style footer table (OVMF, or a Coconut
/// SVSM binary), in table order; empty when the table has no `SEV_METADATA_OFFSET_GUID` entry.
pub fn metadata_sections(fw: &[u8], table: &FooterTable) -> Result<Vec<SevMetadataSection>> {
    match table.find_u32(&SEV_METADATA_OFFSET_GUID, "SEV metadata offset")? {
        None => Ok(Vec::new()),
        Some(off) => parse_metadata(fw, off),
    }
}

/// Parse the `ASEV` header at `file_len - offset_from_end` and its descriptors.
fn parse_metadata(fw: &[u8], offset_from_end: u32) -> Result<Vec<SevMetadataSection>> {
    let off_from_end = offset_from_end as usize;
    let start = fw.len().checked_sub(off_from_end).ok_or(Error::Invalid {
        field: "SEV metadata offset",
        offset: 0,
        problem: format!("{offset_from_end:#x} from the end is before the start of the {}-byte file", fw.len()),
    })?;
    let sig = read_array::<4>(fw, start, "SEV metadata header")?;
    if sig != SEV_METADATA_SIGNATURE {
        return Err(Error::Invalid {
            field: "SEV metadata signature",
            offset: start as u64,
            problem: format!("expected \"ASEV\", found {}", hex::encode(sig)),
        });
    }
    let length = read_u32(fw, start + 4, "SEV metadata header")? as usize;
    let version = read_u32(fw, start + 8, "SEV metadata header")?;
    let num_sections = read_u32(fw, start + 12, "SEV metadata header")? as usize;
    if version != 1 {
        return Err(Error::Invalid {
            field: "SEV metadata version",
            offset: (start + 8) as u64,
            problem: format!("expected 1, found {version}"),
        });
    }
    let body_len = length.checked_sub(SEV_METADATA_HEADER_BYTES).ok_or(Error::Invalid {
        field: "SEV metadata length",
        offset: (start + 4) as u64,
        problem: format!("{length} is shorter than the 16-byte header"),
    })?;
    let body = read_slice(fw, start + SEV_METADATA_HEADER_BYTES, body_len, "SEV metadata descriptors")?;
    let need = num_sections.checked_mul(SEV_METADATA_DESC_BYTES).unwrap_or(usize::MAX);
    if need > body.len() {
        return Err(Error::Invalid {
            field: "SEV metadata num_sections",
            offset: (start + 12) as u64,
            problem: format!("{num_sections} descriptors need {need} bytes, header length leaves {}", body.len()),
        });
    }
    let mut sections = Vec::with_capacity(num_sections);
    for i in 0..num_sections {
        let d = i * SEV_METADATA_DESC_BYTES;
        let desc_offset = (start + SEV_METADATA_HEADER_BYTES + d) as u64;
        sections.push(SevMetadataSection {
            gpa: read_u32(body, d, "SEV metadata descriptor")?,
            size: read_u32(body, d + 4, "SEV metadata descriptor")?,
            section_type: SevSectionType::from_u32(read_u32(body, d + 8, "SEV metadata descriptor")?),
            desc_offset,
        });
    }
    Ok(sections)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::guid::EfiGuid;

    /// Offset from the end of a synthetic image at which [`synth_image`] puts the `ASEV` header.
    pub(crate) const SYNTH_META_OFF: u32 = 0x1000;

    /// A synthetic firmware image of `size` bytes with a footer table holding a reset block,
    /// a hash-table block and SEV metadata with `sections` (gpa, size, type).
    pub(crate) fn synth_fw(size: usize, sections: &[(u32, u32, u32)], hash_block: (u32, u32)) -> Vec<u8> {
        let mut hb = hash_block.0.to_le_bytes().to_vec();
        hb.extend_from_slice(&hash_block.1.to_le_bytes());
        let entries: Vec<(EfiGuid, Vec<u8>)> = vec![
            (SEV_ES_RESET_BLOCK_GUID, 0x80B004u32.to_le_bytes().to_vec()),
            (SEV_METADATA_OFFSET_GUID, SYNTH_META_OFF.to_le_bytes().to_vec()),
            (SEV_HASH_TABLE_RV_GUID, hb),
        ];
        synth_image(size, &entries, sections)
    }

    /// An image of `size` bytes with the footer table `entries` (first = closest to the footer)
    /// and an `ASEV` header with `sections` (gpa, size, type) [`SYNTH_META_OFF`] bytes before
    /// the end; `entries` should point at it with `SEV_METADATA_OFFSET_GUID`.
    pub(crate) fn synth_image(size: usize, entries: &[(EfiGuid, Vec<u8>)], sections: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut fw = crate::ovmf::footer::tests::synth(entries, size);
        let start = size - SYNTH_META_OFF as usize;
        let len = SEV_METADATA_HEADER_BYTES + sections.len() * SEV_METADATA_DESC_BYTES;
        fw[start..start + 4].copy_from_slice(b"ASEV");
        fw[start + 4..start + 8].copy_from_slice(&(len as u32).to_le_bytes());
        fw[start + 8..start + 12].copy_from_slice(&1u32.to_le_bytes());
        fw[start + 12..start + 16].copy_from_slice(&(sections.len() as u32).to_le_bytes());
        for (i, (g, s, t)) in sections.iter().enumerate() {
            let d = start + 16 + i * 12;
            fw[d..d + 4].copy_from_slice(&g.to_le_bytes());
            fw[d + 4..d + 8].copy_from_slice(&s.to_le_bytes());
            fw[d + 8..d + 12].copy_from_slice(&t.to_le_bytes());
        }
        fw
    }

    /// SplitMix64: the seeded generator of the mutation tests.
    pub(crate) struct SplitMix(pub(crate) u64);

    impl SplitMix {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// Mutation `round` of `base` (an image whose footer table and `ASEV` sit in its last
    /// 0x1100 bytes), by `round % 4`: 1-8 random bytes near the end, one u32 field near the end
    /// set to an edge value, a truncation from either end, or plain random bytes.
    pub(crate) fn mutate(base: &[u8], round: u32, rng: &mut SplitMix) -> Vec<u8> {
        let mut fw = base.to_vec();
        match round % 4 {
            0 => {
                for _ in 0..1 + rng.next() % 8 {
                    let off = fw.len() - 1 - (rng.next() % 0x1100) as usize;
                    fw[off] = rng.next() as u8;
                }
            }
            1 => {
                let off = fw.len() - 4 - 4 * (rng.next() % 0x440) as usize;
                let v = [0u32, 1, 0xFFF, 0x1000, 0xFFFF_FFFF, rng.next() as u32][(rng.next() % 6) as usize];
                fw[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            2 => {
                let cut = (rng.next() % fw.len() as u64) as usize;
                fw = if rng.next() % 2 == 0 { fw[cut..].to_vec() } else { fw[..cut].to_vec() };
            }
            _ => {
                let len = (rng.next() % 0x2100) as usize;
                fw = (0..len).map(|_| rng.next() as u8).collect();
            }
        }
        fw
    }

    #[test]
    fn parses_sections_in_table_order_with_unknown_types_kept() {
        let fw = synth_fw(0x4000, &[(0x800000, 0x9000, 1), (0x80D000, 0x1000, 2), (0x811000, 0x1000, 0x99)], (0x810C00, 0x400));
        let info = OvmfSevInfo::parse(&fw).unwrap();
        assert_eq!(info.sev_es_reset_eip, Some(0x80B004));
        assert_eq!(info.hash_table, Some(SevHashTableBlock { gpa: 0x810C00, size: 0x400 }));
        assert!(info.supports_sev_kernel_hashes());
        let types: Vec<_> = info.sections.iter().map(|s| s.section_type).collect();
        assert_eq!(types, vec![SevSectionType::SnpSecMem, SevSectionType::SnpSecrets, SevSectionType::Unknown(0x99)]);
        assert_eq!(info.sections[0].gpa, 0x800000);
        assert_eq!(info.sections[0].size, 0x9000);
        assert_eq!(info.sections[2].desc_offset, (0x4000 - 0x1000 + 16 + 24) as u64);
    }

    #[test]
    fn zero_hash_block_is_unsupported() {
        let fw = synth_fw(0x4000, &[], (0, 0));
        let info = OvmfSevInfo::parse(&fw).unwrap();
        assert!(!info.supports_sev_kernel_hashes());
        assert!(info.sections.is_empty());
    }

    #[test]
    fn section_type_round_trips() {
        for v in [1u32, 2, 3, 4, 0x10, 0, 5, 0xFFFF_FFFF] {
            assert_eq!(SevSectionType::from_u32(v).as_u32(), v);
        }
        assert_eq!(SevSectionType::from_u32(0x10), SevSectionType::SnpKernelHashes);
    }

    /// Seeded mutation test, always run (the nightly `fuzz/` target goes further): random
    /// byte and field overwrites, truncations from either end and plain random images must
    /// give `Ok` or a typed error from every parser and launch pipeline, never a panic.
    #[test]
    fn mutated_and_truncated_firmware_never_panics() {
        use crate::snp::{launch_digest, LaunchParams, SevFirmware, SevHashTable, SevMode, SnpPrepared, VmmType};
        let mut rng = SplitMix(0x0BAD_F00D);
        let base = synth_fw(0x3000, &[(0x800000, 0x2000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3), (0x810000, 0x1000, 0x10)], (0x810C00, 0x400));
        let hashes = SevHashTable::from_blobs(b"k", None, None);
        let (mut oks, mut errs) = (0, 0);
        for i in 0..3000u32 {
            let fw = mutate(&base, i, &mut rng);
            let _ = FooterTable::parse(&fw);
            let _ = OvmfSevInfo::parse(&fw);
            let Ok(f) = SevFirmware::parse(&fw) else {
                errs += 1;
                continue;
            };
            // A mutated size can legitimately ask for a million pages (sev-snp-measure would
            // hash them too); keep the test fast by not measuring those.
            if f.info().sections.iter().any(|s| s.size > 0x10000) {
                continue;
            }
            for (mode, vmm, kernel) in [(SevMode::Snp, VmmType::Qemu, true), (SevMode::Snp, VmmType::Ec2, false), (SevMode::SevEs, VmmType::Gce, true), (SevMode::Sev, VmmType::Qemu, true)] {
                let p = LaunchParams { mode, vcpus: 3, vcpu_sig: 0, guest_features: 1, vmm, hashes: kernel.then_some(hashes), snp_ovmf_hash: None };
                match launch_digest(&f, &p) {
                    Ok(_) => oks += 1,
                    Err(_) => errs += 1,
                }
            }
            if let Ok(prep) = SnpPrepared::new(&f, [0; 48], None, VmmType::Gce) {
                let _ = prep.sweep(3, 0, 1);
            }
        }
        // Both outcomes must occur, or the mutations are not reaching the parsers.
        assert!(oks > 100 && errs > 100, "{oks} ok, {errs} errors");
    }

    #[test]
    fn bad_header_fields_are_errors_naming_the_field() {
        let mut fw = synth_fw(0x4000, &[(0x800000, 0x1000, 1)], (0, 0));
        let start = 0x4000 - 0x1000;
        // Version 2.
        fw[start + 8] = 2;
        assert!(matches!(OvmfSevInfo::parse(&fw), Err(Error::Invalid { field: "SEV metadata version", .. })));
        fw[start + 8] = 1;
        // More descriptors than the header length covers.
        fw[start + 12] = 9;
        assert!(matches!(OvmfSevInfo::parse(&fw), Err(Error::Invalid { field: "SEV metadata num_sections", .. })));
        fw[start + 12] = 1;
        // Wrong signature.
        fw[start] = b'X';
        assert!(matches!(OvmfSevInfo::parse(&fw), Err(Error::Invalid { field: "SEV metadata signature", .. })));
    }
}
