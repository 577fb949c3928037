//! The SEV kernel-hashes table QEMU writes into guest memory for measured direct boot
//! (QEMU `target/i386/sev.c`, `SevHashTable`/`PaddedSevHashTable`, "must be identical" to what
//! OVMF's `BlobVerifierLibSevHashes` expects).
//!
//! 168-byte table (header GUID, u16 length, then cmdline, initrd and kernel entries, each GUID,
//! u16 length 0x32 and a SHA-256), padded with zeros to a multiple of 16 (176 bytes).

use super::gctx::PAGE_BYTES;
use crate::guid::EfiGuid;
use sha2::{Digest, Sha256};

/// `SEV_HASH_TABLE_HEADER_GUID`.
pub const SEV_HASH_TABLE_HEADER_GUID: EfiGuid = EfiGuid::from_str_const("9438d606-4f22-4cc9-b479-a793d411fd21");
/// `SEV_CMDLINE_ENTRY_GUID`.
pub const SEV_CMDLINE_ENTRY_GUID: EfiGuid = EfiGuid::from_str_const("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");
/// `SEV_INITRD_ENTRY_GUID`.
pub const SEV_INITRD_ENTRY_GUID: EfiGuid = EfiGuid::from_str_const("44baf731-3a2f-4bd7-9af1-41e29169781d");
/// `SEV_KERNEL_ENTRY_GUID`.
pub const SEV_KERNEL_ENTRY_GUID: EfiGuid = EfiGuid::from_str_const("4de79437-abd2-427f-b835-d5b172d2045b");

/// Size of one `SevHashTableEntry`: GUID, u16 length, SHA-256.
pub const SEV_HASH_TABLE_ENTRY_BYTES: usize = 16 + 2 + 32;
/// Size of `SevHashTable`: GUID, u16 length, three entries (0xA8).
pub const SEV_HASH_TABLE_BYTES: usize = 16 + 2 + 3 * SEV_HASH_TABLE_ENTRY_BYTES;
/// Size of `PaddedSevHashTable`: the table rounded up to 16 bytes (0xB0).
pub const PADDED_SEV_HASH_TABLE_BYTES: usize = SEV_HASH_TABLE_BYTES.next_multiple_of(16);

/// `SevHashTable`: the SHA-256 digests of the cmdline (with its NUL), the initrd and the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SevHashTable {
    /// SHA-256 of the command line bytes followed by one NUL.
    pub cmdline: [u8; 32],
    /// SHA-256 of the initrd file (of nothing when there is no initrd).
    pub initrd: [u8; 32],
    /// SHA-256 of the kernel file, exactly as given to QEMU.
    pub kernel: [u8; 32],
}

impl SevHashTable {
    /// Hash the blobs as QEMU does. An absent or empty `cmdline` hashes a single NUL; an absent
    /// initrd hashes the empty string.
    pub fn from_blobs(kernel: &[u8], initrd: Option<&[u8]>, cmdline: Option<&[u8]>) -> SevHashTable {
        let mut c = Sha256::new();
        c.update(cmdline.unwrap_or_default());
        c.update([0u8]);
        SevHashTable {
            cmdline: c.finalize().into(),
            initrd: Sha256::digest(initrd.unwrap_or_default()).into(),
            kernel: Sha256::digest(kernel).into(),
        }
    }

    /// The 176-byte `PaddedSevHashTable`.
    pub fn to_padded_bytes(&self) -> [u8; PADDED_SEV_HASH_TABLE_BYTES] {
        let mut b = [0u8; PADDED_SEV_HASH_TABLE_BYTES];
        b[..16].copy_from_slice(SEV_HASH_TABLE_HEADER_GUID.as_bytes());
        b[16..18].copy_from_slice(&(SEV_HASH_TABLE_BYTES as u16).to_le_bytes());
        for (i, (guid, hash)) in [
            (SEV_CMDLINE_ENTRY_GUID, &self.cmdline),
            (SEV_INITRD_ENTRY_GUID, &self.initrd),
            (SEV_KERNEL_ENTRY_GUID, &self.kernel),
        ]
        .into_iter()
        .enumerate()
        {
            let o = 18 + i * SEV_HASH_TABLE_ENTRY_BYTES;
            b[o..o + 16].copy_from_slice(guid.as_bytes());
            b[o + 16..o + 18].copy_from_slice(&(SEV_HASH_TABLE_ENTRY_BYTES as u16).to_le_bytes());
            b[o + 18..o + 50].copy_from_slice(hash);
        }
        b
    }

    /// The SNP kernel-hashes page: zeros with the padded table at `offset_in_page`, or `None`
    /// when the table would not fit in the page.
    pub fn to_page(&self, offset_in_page: usize) -> Option<[u8; PAGE_BYTES]> {
        let end = offset_in_page.checked_add(PADDED_SEV_HASH_TABLE_BYTES).filter(|&e| e <= PAGE_BYTES)?;
        let mut p = [0u8; PAGE_BYTES];
        p[offset_in_page..end].copy_from_slice(&self.to_padded_bytes());
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_qemu() {
        assert_eq!(SEV_HASH_TABLE_ENTRY_BYTES, 0x32);
        assert_eq!(SEV_HASH_TABLE_BYTES, 0xA8);
        assert_eq!(PADDED_SEV_HASH_TABLE_BYTES, 0xB0);
    }

    /// §2.6: default digests and the byte layout given in §8 ("padded hash table" row).
    #[test]
    fn layout_and_default_digests_match_the_design_note() {
        let t = SevHashTable::from_blobs(b"kernel", None, None);
        assert_eq!(hex::encode(t.cmdline), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        assert_eq!(hex::encode(t.initrd), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        // An empty --append hashes like none.
        assert_eq!(SevHashTable::from_blobs(b"kernel", None, Some(b"")).cmdline, t.cmdline);
        let b = t.to_padded_bytes();
        assert_eq!(hex::encode(&b[..18]), "06d63894224fc94cb479a793d411fd21a800");
        assert_eq!(hex::encode(&b[0x12..0x24]), "d82dd09720bd944caa78e7714d36ab2a3200");
        assert_eq!(&b[0x24..0x44], &t.cmdline);
        assert_eq!(hex::encode(&b[0x44..0x56]), "31f7ba442f3ad74b9af141e29169781d3200");
        assert_eq!(&b[0x56..0x76], &t.initrd);
        assert_eq!(hex::encode(&b[0x76..0x88]), "3794e74dd2ab7f42b835d5b172d2045b3200");
        assert_eq!(&b[0x88..0xA8], &t.kernel);
        assert_eq!(&b[0xA8..], &[0u8; 8]);
    }

    #[test]
    fn cmdline_hash_includes_the_nul() {
        // §7 C1: sha256("console=ttyS0 loglevel=7\0").
        let t = SevHashTable::from_blobs(b"", None, Some(b"console=ttyS0 loglevel=7"));
        assert_eq!(hex::encode(t.cmdline), "321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a");
    }

    #[test]
    fn page_places_table_at_offset_and_rejects_overflow() {
        let t = SevHashTable::from_blobs(b"k", Some(b"i"), Some(b"c"));
        let p = t.to_page(0xC00).unwrap();
        assert_eq!(&p[0xC00..0xCB0], &t.to_padded_bytes());
        assert!(p[..0xC00].iter().chain(&p[0xCB0..]).all(|&b| b == 0));
        assert!(t.to_page(PAGE_BYTES - PADDED_SEV_HASH_TABLE_BYTES).is_some());
        assert!(t.to_page(PAGE_BYTES - PADDED_SEV_HASH_TABLE_BYTES + 1).is_none());
    }
}
