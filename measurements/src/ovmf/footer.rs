//! The OVMF GUIDed footer table (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`).
//!
//! The firmware is mapped to end at 4 GiB. The table ends 0x20 bytes before the end of the file
//! (GPA 0xFFFF_FFE0): the last 18 bytes before that are `u16 table_len` followed by the footer
//! GUID `96b582de-1fb2-45f7-baea-a366c55a082d`. Entries are laid out backwards from there, each
//! ending with `u16 entry_len` (data + 18) and its GUID; the entry's data precedes them.

use super::{read_array, read_u16, Error, Result};
use crate::guid::EfiGuid;

/// `OVMF_TABLE_FOOTER_GUID`.
pub const OVMF_TABLE_FOOTER_GUID: EfiGuid =
    EfiGuid::from_str_const("96b582de-1fb2-45f7-baea-a366c55a082d");
/// `SEV_ES_RESET_BLOCK_GUID`: u32 AP reset address.
pub const SEV_ES_RESET_BLOCK_GUID: EfiGuid =
    EfiGuid::from_str_const("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
/// `SEV_METADATA_OFFSET_GUID` (`OVMF_SEV_METADATA_GUID`): u32 offset of `ASEV` from the file end.
pub const SEV_METADATA_OFFSET_GUID: EfiGuid =
    EfiGuid::from_str_const("dc886566-984a-4798-a75e-5585a7bf67cc");
/// `SEV_HASH_TABLE_RV_GUID`: u32 GPA, u32 size of the kernel-hashes table.
pub const SEV_HASH_TABLE_RV_GUID: EfiGuid =
    EfiGuid::from_str_const("7255371f-3a3b-4b04-927b-1da6efa8d454");
/// `SEV_SECRET_GUID`: u32 GPA, u32 size of the SEV secret block.
pub const SEV_SECRET_GUID: EfiGuid = EfiGuid::from_str_const("4c2eb361-7d9b-4cc3-8081-127c90d3d294");
/// `TDX_METADATA_OFFSET_GUID`: u32 offset of the TDVF descriptor (`TDVF`) from the file end.
pub const TDX_METADATA_OFFSET_GUID: EfiGuid =
    EfiGuid::from_str_const("e47a6535-984a-4798-865e-4685a7bf8ec2");
/// SVSM info GUID (Coconut SVSM binaries): u32 entry offset.
pub const SVSM_INFO_GUID: EfiGuid = EfiGuid::from_str_const("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd");

/// Bytes between the end of the table and the end of the file (GPA 0xFFFF_FFE0 .. 4 GiB).
const TABLE_END_FROM_FILE_END: usize = 0x20;
/// `u16` length + GUID, at the end of the table and of every entry.
const HEADER_BYTES: usize = 2 + 16;

/// One entry of the footer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterEntry {
    pub guid: EfiGuid,
    /// File offset of the entry's data.
    pub data_offset: u64,
    pub data: Vec<u8>,
}

/// The parsed footer table, entries in file order from the end backwards (as edk2 walks it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FooterTable {
    pub entries: Vec<FooterEntry>,
}

impl FooterTable {
    /// Parse the table of a whole firmware file. A file without the footer GUID has an empty
    /// table (not an error: plain SeaBIOS-style images have none); a table that is present but
    /// malformed is an error naming the entry and offset.
    pub fn parse(fw: &[u8]) -> Result<FooterTable> {
        if fw.len() < TABLE_END_FROM_FILE_END + HEADER_BYTES {
            return Err(Error::Truncated {
                what: "OVMF footer table",
                offset: 0,
                need: (TABLE_END_FROM_FILE_END + HEADER_BYTES) as u64,
                have: fw.len() as u64,
            });
        }
        let end = fw.len() - TABLE_END_FROM_FILE_END;
        let guid_off = end - 16;
        let guid = EfiGuid(read_array::<16>(fw, guid_off, "footer GUID")?);
        if guid != OVMF_TABLE_FOOTER_GUID {
            return Ok(FooterTable::default());
        }
        let len_off = end - HEADER_BYTES;
        let table_len = read_u16(fw, len_off, "footer table length")? as usize;
        if table_len < HEADER_BYTES || table_len > end {
            return Err(Error::Invalid {
                field: "footer table length",
                offset: len_off as u64,
                problem: format!("{table_len} is outside 18..={end}"),
            });
        }
        let start = end - table_len;
        let mut q = end - HEADER_BYTES;
        let mut entries = Vec::new();
        while q > start {
            if q - start < HEADER_BYTES {
                return Err(Error::Invalid {
                    field: "footer table entry",
                    offset: start as u64,
                    problem: format!("{} stray bytes before the first entry", q - start),
                });
            }
            let guid = EfiGuid(read_array::<16>(fw, q - 16, "footer entry GUID")?);
            let len_off = q - HEADER_BYTES;
            let entry_len = read_u16(fw, len_off, "footer entry length")? as usize;
            if entry_len < HEADER_BYTES || entry_len > q - start {
                return Err(Error::Invalid {
                    field: "footer entry length",
                    offset: len_off as u64,
                    problem: format!(
                        "entry {guid} claims {entry_len} bytes, {} remain in the table",
                        q - start
                    ),
                });
            }
            let data_offset = q - entry_len;
            entries.push(FooterEntry {
                guid,
                data_offset: data_offset as u64,
                data: fw[data_offset..q - HEADER_BYTES].to_vec(),
            });
            q = data_offset;
        }
        Ok(FooterTable { entries })
    }

    /// The data of the first entry with `guid`.
    pub fn find(&self, guid: &EfiGuid) -> Option<&FooterEntry> {
        self.entries.iter().find(|e| e.guid == *guid)
    }

    /// The first `u32` of the entry with `guid` (most entries hold an offset or address).
    pub fn find_u32(&self, guid: &EfiGuid, what: &'static str) -> Result<Option<u32>> {
        match self.find(guid) {
            None => Ok(None),
            Some(e) => super::read_u32(&e.data, 0, what)
                .map_err(|_| Error::Invalid {
                    field: what,
                    offset: e.data_offset,
                    problem: format!("entry data is {} bytes, need 4", e.data.len()),
                })
                .map(Some),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a firmware tail with the given entries (first = closest to the footer).
    pub(crate) fn synth(entries: &[(EfiGuid, Vec<u8>)], size: usize) -> Vec<u8> {
        let mut table = Vec::new();
        for (g, d) in entries.iter().rev() {
            table.extend_from_slice(d);
            table.extend_from_slice(&((d.len() + 18) as u16).to_le_bytes());
            table.extend_from_slice(g.as_bytes());
        }
        table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(OVMF_TABLE_FOOTER_GUID.as_bytes());
        let mut fw = vec![0u8; size];
        let end = size - 0x20;
        fw[end - table.len()..end].copy_from_slice(&table);
        fw
    }

    #[test]
    fn parses_synthetic_table_in_edk2_order() {
        let fw = synth(
            &[
                (SEV_ES_RESET_BLOCK_GUID, 0x80B004u32.to_le_bytes().to_vec()),
                (SEV_METADATA_OFFSET_GUID, 0x1234u32.to_le_bytes().to_vec()),
            ],
            4096,
        );
        let t = FooterTable::parse(&fw).unwrap();
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.entries[0].guid, SEV_ES_RESET_BLOCK_GUID);
        assert_eq!(t.find_u32(&SEV_ES_RESET_BLOCK_GUID, "reset").unwrap(), Some(0x80B004));
        assert_eq!(t.find_u32(&SEV_METADATA_OFFSET_GUID, "meta").unwrap(), Some(0x1234));
        assert_eq!(t.find_u32(&TDX_METADATA_OFFSET_GUID, "tdx").unwrap(), None);
    }

    #[test]
    fn no_footer_guid_means_empty_table() {
        assert_eq!(FooterTable::parse(&[0u8; 4096]).unwrap(), FooterTable::default());
    }

    #[test]
    fn corrupt_lengths_are_errors_not_panics() {
        let mut fw = synth(&[(SEV_ES_RESET_BLOCK_GUID, vec![1, 2, 3, 4])], 4096);
        let end = 4096 - 0x20;
        // Entry length larger than the table.
        fw[end - 18 - 18..end - 18 - 16].copy_from_slice(&0xFFFFu16.to_le_bytes());
        let err = FooterTable::parse(&fw).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: "footer entry length", .. }), "{err}");
        // Table length larger than the file.
        fw[end - 18..end - 16].copy_from_slice(&0xFFFFu16.to_le_bytes());
        assert!(matches!(FooterTable::parse(&fw), Err(Error::Invalid { .. })));
        assert!(matches!(FooterTable::parse(&[0u8; 10]), Err(Error::Truncated { .. })));
    }
}
