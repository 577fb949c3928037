//! TDVF metadata (Intel "TDX Virtual Firmware Design Guide", rev. 1.x, §11 "TDVF Metadata"):
//! the `TDVF` descriptor that tells the VMM which firmware ranges to `TDH.MEM.PAGE.ADD`,
//! which to `TDH.MR.EXTEND`, and where the TD HOB and temporary memory live.
//!
//! Located through the footer-table entry `TDX_METADATA_OFFSET_GUID`, whose last four data bytes
//! are the distance from the end of the file to the descriptor; the descriptor is preceded by the
//! 16-byte `TDX_METADATA_GUID` (edk2 `OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm`).

use super::{read_array, read_slice, read_u32, read_u64, Error, FooterTable, Result};
use crate::guid::EfiGuid;
use crate::ovmf::footer::TDX_METADATA_OFFSET_GUID;

/// `TDX_METADATA_GUID`, stored just before the descriptor.
pub const TDX_METADATA_GUID: EfiGuid =
    EfiGuid::from_str_const("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae");
/// `TDVF_SIGNATURE`.
pub const TDVF_SIGNATURE: [u8; 4] = *b"TDVF";
/// `TDVF_SECTION_ATTRIBUTES_MR_EXTEND`: the VMM must `TDH.MR.EXTEND` the section's pages.
pub const TDVF_SECTION_ATTRIBUTES_MR_EXTEND: u32 = 1 << 0;
/// `TDVF_SECTION_ATTRIBUTES_PAGE_AUG`: the pages are added later with `TDH.MEM.PAGE.AUG`.
pub const TDVF_SECTION_ATTRIBUTES_PAGE_AUG: u32 = 1 << 1;

const DESCRIPTOR_HEADER_BYTES: usize = 16;
const SECTION_BYTES: usize = 32;
/// Bound on the section count, far above any real firmware (edk2 emits 4..8).
const MAX_SECTIONS: u32 = 256;
const PAGE: u64 = 4096;

/// `TDVF_SECTION.Type` (Design Guide Table 11-2). Open: unknown values survive as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TdvfSectionType {
    /// 0: Boot Firmware Volume (code), normally MR.EXTENDed.
    Bfv,
    /// 1: Configuration Firmware Volume (the baked-in UEFI variable store).
    Cfv,
    /// 2: The TD HOB the VMM fills in.
    TdHob,
    /// 3: Temporary memory used by SEC/PEI.
    TempMem,
    /// 4: Permanent memory.
    PermMem,
    /// 5: A payload (td-shim).
    Payload,
    /// 6: Payload parameters (td-shim).
    PayloadParam,
    /// Any other value (e.g. td-shim's `TD_INFO`).
    Other(u32),
}

impl TdvfSectionType {
    pub fn from_raw(v: u32) -> TdvfSectionType {
        match v {
            0 => Self::Bfv,
            1 => Self::Cfv,
            2 => Self::TdHob,
            3 => Self::TempMem,
            4 => Self::PermMem,
            5 => Self::Payload,
            6 => Self::PayloadParam,
            o => Self::Other(o),
        }
    }
}

/// `TDVF_SECTION` (Design Guide Table 11-2), 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdvfSection {
    /// File offset of the section's raw data.
    pub data_offset: u32,
    pub raw_data_size: u32,
    /// Guest-physical address, 4 KiB aligned.
    pub memory_address: u64,
    /// Bytes of guest memory, a 4 KiB multiple, at least `raw_data_size`.
    pub memory_data_size: u64,
    pub section_type: TdvfSectionType,
    pub attributes: u32,
}

impl TdvfSection {
    pub fn mr_extend(&self) -> bool {
        self.attributes & TDVF_SECTION_ATTRIBUTES_MR_EXTEND != 0
    }
    pub fn page_aug(&self) -> bool {
        self.attributes & TDVF_SECTION_ATTRIBUTES_PAGE_AUG != 0
    }
    /// Number of 4 KiB pages.
    pub fn pages(&self) -> u64 {
        self.memory_data_size / PAGE
    }
}

/// `TDVF_DESCRIPTOR` (Design Guide Table 11-1) with its sections in table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdvfDescriptor {
    /// File offset of the `TDVF` signature.
    pub descriptor_offset: u64,
    pub version: u32,
    pub sections: Vec<TdvfSection>,
}

impl TdvfDescriptor {
    /// Parse the descriptor of a whole (unified, `-bios`) firmware image. Validates that every
    /// section's raw data lies inside the file and that addresses and sizes are page multiples,
    /// so later users may slice `fw` with the section fields.
    pub fn parse(fw: &[u8]) -> Result<TdvfDescriptor> {
        let table = FooterTable::parse(fw)?;
        let entry = table.find(&TDX_METADATA_OFFSET_GUID).ok_or(Error::Missing(
            "TDX metadata (no TDX_METADATA_OFFSET_GUID footer entry)",
        ))?;
        let n = entry.data.len();
        let from_end =
            read_u32(&entry.data, n.saturating_sub(4), "TDX metadata offset").map_err(|_| {
                Error::Invalid {
                    field: "TDX metadata offset entry",
                    offset: entry.data_offset,
                    problem: format!("entry data is {n} bytes, need 4"),
                }
            })? as usize;
        let desc_off = fw.len().checked_sub(from_end).ok_or(Error::Invalid {
            field: "TDX metadata offset",
            offset: entry.data_offset,
            problem: format!(
                "{from_end:#x} is beyond the start of the {:#x}-byte file",
                fw.len()
            ),
        })?;
        if let Some(guid_off) = desc_off.checked_sub(16) {
            let guid = EfiGuid(read_array::<16>(fw, guid_off, "TDX metadata GUID")?);
            if guid != TDX_METADATA_GUID {
                return Err(Error::Invalid {
                    field: "TDX metadata GUID",
                    offset: guid_off as u64,
                    problem: format!("found {guid}, expected {TDX_METADATA_GUID}"),
                });
            }
        }
        let sig = read_array::<4>(fw, desc_off, "TDVF signature")?;
        if sig != TDVF_SIGNATURE {
            return Err(Error::Invalid {
                field: "TDVF signature",
                offset: desc_off as u64,
                problem: format!("found {:02x?}, expected \"TDVF\"", sig),
            });
        }
        let length = read_u32(fw, desc_off + 4, "TDVF length")?;
        let version = read_u32(fw, desc_off + 8, "TDVF version")?;
        let count = read_u32(fw, desc_off + 12, "TDVF NumberOfSectionEntries")?;
        if count > MAX_SECTIONS {
            return Err(Error::Invalid {
                field: "TDVF NumberOfSectionEntries",
                offset: desc_off as u64 + 12,
                problem: format!("{count} sections (more than {MAX_SECTIONS})"),
            });
        }
        let expect_len = DESCRIPTOR_HEADER_BYTES + SECTION_BYTES * count as usize;
        if length as usize != expect_len {
            return Err(Error::Invalid {
                field: "TDVF Length",
                offset: desc_off as u64 + 4,
                problem: format!("{length} != 16 + 32 * {count}"),
            });
        }
        read_slice(fw, desc_off, expect_len, "TDVF section table")?;
        let mut sections = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let o = desc_off + DESCRIPTOR_HEADER_BYTES + SECTION_BYTES * i;
            let s = TdvfSection {
                data_offset: read_u32(fw, o, "TDVF_SECTION.DataOffset")?,
                raw_data_size: read_u32(fw, o + 4, "TDVF_SECTION.RawDataSize")?,
                memory_address: read_u64(fw, o + 8, "TDVF_SECTION.MemoryAddress")?,
                memory_data_size: read_u64(fw, o + 16, "TDVF_SECTION.MemoryDataSize")?,
                section_type: TdvfSectionType::from_raw(read_u32(fw, o + 24, "TDVF_SECTION.Type")?),
                attributes: read_u32(fw, o + 28, "TDVF_SECTION.Attributes")?,
            };
            let bad = |field: &'static str, off: usize, problem: String| Error::Invalid {
                field,
                offset: off as u64,
                problem: format!("section {i}: {problem}"),
            };
            if s.memory_address % PAGE != 0 {
                return Err(bad(
                    "TDVF_SECTION.MemoryAddress",
                    o + 8,
                    format!("{:#x} is not 4 KiB aligned", s.memory_address),
                ));
            }
            if s.memory_data_size % PAGE != 0 || s.memory_data_size < u64::from(s.raw_data_size) {
                return Err(bad(
                    "TDVF_SECTION.MemoryDataSize",
                    o + 16,
                    format!(
                        "{:#x} is not a 4 KiB multiple of at least RawDataSize {:#x}",
                        s.memory_data_size, s.raw_data_size
                    ),
                ));
            }
            if s.memory_address.checked_add(s.memory_data_size).is_none() {
                return Err(bad(
                    "TDVF_SECTION.MemoryDataSize",
                    o + 16,
                    "range overflows the address space".into(),
                ));
            }
            if s.raw_data_size > 0 {
                let end = u64::from(s.data_offset) + u64::from(s.raw_data_size);
                if end > fw.len() as u64 {
                    return Err(Error::Truncated {
                        what: "TDVF section raw data",
                        offset: u64::from(s.data_offset),
                        need: u64::from(s.raw_data_size),
                        have: fw.len() as u64,
                    });
                }
            }
            if s.mr_extend() && u64::from(s.raw_data_size) != s.memory_data_size {
                return Err(bad(
                    "TDVF_SECTION.RawDataSize",
                    o + 4,
                    format!(
                        "MR.EXTEND section raw size {:#x} differs from memory size {:#x}",
                        s.raw_data_size, s.memory_data_size
                    ),
                ));
            }
            sections.push(s);
        }
        Ok(TdvfDescriptor {
            descriptor_offset: desc_off as u64,
            version,
            sections,
        })
    }

    /// The first section of `ty`.
    pub fn section(&self, ty: TdvfSectionType) -> Option<&TdvfSection> {
        self.sections.iter().find(|s| s.section_type == ty)
    }

    /// The raw bytes of a section (checked in-bounds by [`TdvfDescriptor::parse`]).
    pub fn section_bytes<'a>(&self, fw: &'a [u8], s: &TdvfSection) -> Result<&'a [u8]> {
        read_slice(
            fw,
            s.data_offset as usize,
            s.raw_data_size as usize,
            "TDVF section raw data",
        )
    }

    /// The Configuration Firmware Volume bytes (type-1 section), which TDVF measures into RTMR0.
    pub fn cfv<'a>(&self, fw: &'a [u8]) -> Result<&'a [u8]> {
        let s = self
            .section(TdvfSectionType::Cfv)
            .ok_or(Error::Missing("TDVF CFV section"))?;
        self.section_bytes(fw, s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic firmware with a TDVF descriptor holding `sections` (file size `size`).
    pub(crate) fn synth(sections: &[TdvfSection], size: usize) -> Vec<u8> {
        let mut desc = Vec::new();
        desc.extend_from_slice(TDX_METADATA_GUID.as_bytes());
        desc.extend_from_slice(b"TDVF");
        desc.extend_from_slice(&((16 + 32 * sections.len()) as u32).to_le_bytes());
        desc.extend_from_slice(&1u32.to_le_bytes());
        desc.extend_from_slice(&(sections.len() as u32).to_le_bytes());
        for s in sections {
            desc.extend_from_slice(&s.data_offset.to_le_bytes());
            desc.extend_from_slice(&s.raw_data_size.to_le_bytes());
            desc.extend_from_slice(&s.memory_address.to_le_bytes());
            desc.extend_from_slice(&s.memory_data_size.to_le_bytes());
            let ty = match s.section_type {
                TdvfSectionType::Bfv => 0,
                TdvfSectionType::Cfv => 1,
                TdvfSectionType::TdHob => 2,
                TdvfSectionType::TempMem => 3,
                TdvfSectionType::PermMem => 4,
                TdvfSectionType::Payload => 5,
                TdvfSectionType::PayloadParam => 6,
                TdvfSectionType::Other(o) => o,
            };
            desc.extend_from_slice(&ty.to_le_bytes());
            desc.extend_from_slice(&s.attributes.to_le_bytes());
        }
        // Descriptor placed 0x1000 bytes before the end; footer entry points at it.
        let desc_off = size - 0x1000;
        let mut fw = footer(Some(0x1000), size);
        fw[desc_off - 16..desc_off - 16 + desc.len()].copy_from_slice(&desc);
        fw
    }

    /// A firmware of `size` zero bytes whose footer table holds (or not) a TDX metadata entry.
    fn footer(tdx_offset: Option<u32>, size: usize) -> Vec<u8> {
        let mut table = Vec::new();
        if let Some(off) = tdx_offset {
            table.extend_from_slice(&off.to_le_bytes());
            table.extend_from_slice(&22u16.to_le_bytes());
            table.extend_from_slice(TDX_METADATA_OFFSET_GUID.as_bytes());
        }
        table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(crate::ovmf::footer::OVMF_TABLE_FOOTER_GUID.as_bytes());
        let mut fw = vec![0u8; size];
        let end = size - 0x20;
        fw[end - table.len()..end].copy_from_slice(&table);
        fw
    }

    pub(crate) fn sec(
        data_offset: u32,
        raw: u32,
        gpa: u64,
        mem: u64,
        ty: TdvfSectionType,
        attr: u32,
    ) -> TdvfSection {
        TdvfSection {
            data_offset,
            raw_data_size: raw,
            memory_address: gpa,
            memory_data_size: mem,
            section_type: ty,
            attributes: attr,
        }
    }

    #[test]
    fn parses_synthetic_descriptor() {
        let secs = [
            sec(0x1000, 0x1000, 0xffff_0000, 0x1000, TdvfSectionType::Bfv, 1),
            sec(0, 0x1000, 0xfffe_0000, 0x1000, TdvfSectionType::Cfv, 0),
            sec(0, 0, 0x80_9000, 0x2000, TdvfSectionType::TdHob, 0),
        ];
        let fw = synth(&secs, 0x4000);
        let d = TdvfDescriptor::parse(&fw).unwrap();
        assert_eq!(d.descriptor_offset, 0x3000);
        assert_eq!(d.version, 1);
        assert_eq!(d.sections, secs);
        assert_eq!(d.cfv(&fw).unwrap().len(), 0x1000);
    }

    #[test]
    fn bad_descriptors_are_errors() {
        let mut secs = [sec(
            0x1000,
            0x1000,
            0xffff_0100,
            0x1000,
            TdvfSectionType::Bfv,
            1,
        )];
        let err = TdvfDescriptor::parse(&synth(&secs, 0x4000)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "TDVF_SECTION.MemoryAddress",
                    ..
                }
            ),
            "{err}"
        );
        secs[0].memory_address = 0xffff_0000;
        secs[0].data_offset = 0x3800;
        let err = TdvfDescriptor::parse(&synth(&secs, 0x4000)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Truncated {
                    what: "TDVF section raw data",
                    ..
                }
            ),
            "{err}"
        );
        // No TDX entry at all.
        let fw = footer(None, 0x4000);
        assert!(matches!(TdvfDescriptor::parse(&fw), Err(Error::Missing(_))));
        // Section count too large for the file.
        let mut fw = synth(&[], 0x4000);
        fw[0x3000 + 12..0x3000 + 16].copy_from_slice(&200u32.to_le_bytes());
        fw[0x3000 + 4..0x3000 + 8].copy_from_slice(&(16u32 + 32 * 200).to_le_bytes());
        assert!(matches!(
            TdvfDescriptor::parse(&fw),
            Err(Error::Truncated { .. })
        ));
    }
}
