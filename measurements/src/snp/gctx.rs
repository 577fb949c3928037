//! The SNP guest context's launch digest (`GCTX.LD`) and the `PAGE_INFO` structure it is
//! extended with: AMD SEV-SNP Firmware ABI Specification (pub. 56860), section 8.17
//! `SNP_LAUNCH_UPDATE`, table "Layout of the PAGE_INFO Structure".
//!
//! `LD ← SHA-384(PAGE_INFO)` for every page, with `PAGE_INFO.DIGEST_CUR = LD`.

// Small inputs only (PAGE_INFO records, single pages): plain `sha2`, so an SNP process never
// loads libcrypto (crate::hash); the firmware pages go through `hash::sha384_each`.
use sha2::{Digest, Sha384};

/// Size of a launch digest (SHA-384).
pub const LD_BYTES: usize = 48;
/// Guest page size.
pub const PAGE_BYTES: usize = 4096;
/// GPA KVM records VMSA pages at: `(u64)-1`, page-aligned, bits above 51 cleared.
pub const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// A launch digest (48 bytes, SHA-384 sized).
pub type LaunchDigest = [u8; LD_BYTES];

/// `PAGE_TYPE` values of `PAGE_INFO` (ABI spec, table "Page Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// `PAGE_TYPE_NORMAL`: contents measured.
    Normal = 1,
    /// `PAGE_TYPE_VMSA`: a VMSA, contents measured.
    Vmsa = 2,
    /// `PAGE_TYPE_ZERO`: zero-filled, contents not hashed.
    Zero = 3,
    /// `PAGE_TYPE_UNMEASURED`.
    Unmeasured = 4,
    /// `PAGE_TYPE_SECRETS`.
    Secrets = 5,
    /// `PAGE_TYPE_CPUID`.
    Cpuid = 6,
}

/// `PAGE_INFO`: the 0x70-byte record hashed into the launch digest for each page
/// (SEV-SNP Firmware ABI spec, section 8.17.2, table "Layout of the PAGE_INFO Structure").
#[doc(alias = "PAGE_INFO")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct PageInfo {
    /// 0x00 `DIGEST_CUR`: the launch digest before this page.
    pub digest_cur: [u8; LD_BYTES],
    /// 0x30 `CONTENTS`: SHA-384 of the page (NORMAL, VMSA) or zero.
    pub contents: [u8; LD_BYTES],
    /// 0x60 `LENGTH`: 0x70.
    pub length: u16,
    /// 0x62 `PAGE_TYPE`.
    pub page_type: u8,
    /// 0x63 `IMI_PAGE`.
    pub imi_page: u8,
    /// 0x64 `VMPL3_PERMS`.
    pub vmpl3_perms: u8,
    /// 0x65 `VMPL2_PERMS`.
    pub vmpl2_perms: u8,
    /// 0x66 `VMPL1_PERMS`.
    pub vmpl1_perms: u8,
    /// 0x67 reserved.
    pub _reserved0: u8,
    /// 0x68 `GPA`.
    pub gpa: u64,
}

const _: () = assert!(std::mem::size_of::<PageInfo>() == 0x70);

impl PageInfo {
    /// The record for one page with the default (zero) IMI and VMPL permissions.
    pub fn new(digest_cur: LaunchDigest, page_type: PageType, gpa: u64, contents: LaunchDigest) -> PageInfo {
        PageInfo {
            digest_cur,
            contents,
            length: std::mem::size_of::<PageInfo>() as u16,
            page_type: page_type as u8,
            imi_page: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            _reserved0: 0,
            gpa,
        }
    }

    /// The little-endian bytes the PSP hashes.
    pub fn to_bytes(&self) -> [u8; 0x70] {
        let mut b = [0u8; 0x70];
        b[0x00..0x30].copy_from_slice(&self.digest_cur);
        b[0x30..0x60].copy_from_slice(&self.contents);
        b[0x60..0x62].copy_from_slice(&self.length.to_le_bytes());
        b[0x62] = self.page_type;
        b[0x63] = self.imi_page;
        b[0x64] = self.vmpl3_perms;
        b[0x65] = self.vmpl2_perms;
        b[0x66] = self.vmpl1_perms;
        b[0x67] = self._reserved0;
        b[0x68..0x70].copy_from_slice(&self.gpa.to_le_bytes());
        b
    }
}

/// SHA-384 of `data`.
pub fn sha384(data: &[u8]) -> LaunchDigest {
    Sha384::digest(data).into()
}

/// Threads hashing firmware pages. Fixed, not probed: `available_parallelism` reads cgroup
/// files, and this library does no I/O. Two matches the project's reference machines.
const PAGE_HASH_THREADS: usize = 2;

/// Pages a thread claims at a time. Work is shared, not split in halves up front: a thread
/// that starts late (waking an idle vCPU can take a millisecond in a VM) then simply takes
/// fewer batches, instead of the whole digest waiting for its half.
const PAGES_PER_BATCH: usize = 32;

/// SHA-384 of each 4 KiB page of `data` (a multiple of 4 KiB), shared among
/// [`PAGE_HASH_THREADS`] threads: the page hashes are independent, only the `PAGE_INFO` chain
/// is sequential.
pub fn page_hashes(data: &[u8]) -> Vec<LaunchDigest> {
    let pages = data.len() / PAGE_BYTES;
    let mut out = vec![[0u8; LD_BYTES]; pages];
    // Several pages at once on CPUs with wide vectors (crate::hash::sha384_each).
    let hash_batch = |(o, d): (&mut [LaunchDigest], &[u8])| {
        let whole = o.len().min(d.len() / PAGE_BYTES);
        crate::hash::sha384_each(&d[..whole * PAGE_BYTES], PAGE_BYTES, &mut o[..whole]);
    };
    let batches = out
        .chunks_mut(PAGES_PER_BATCH)
        .zip(data.chunks(PAGES_PER_BATCH * PAGE_BYTES));
    if pages < 4 * PAGES_PER_BATCH {
        batches.for_each(hash_batch);
        return out;
    }
    // Workers take the next (output slots, page bytes) pair under a lock, then hash without it.
    // All workers are spawned and this thread only waits: hashing on the spawning thread beside
    // one helper measured ~2 ms slower per process on the reference VM.
    let batches = std::sync::Mutex::new(batches);
    let work = || loop {
        let next = batches.lock().unwrap_or_else(|e| e.into_inner()).next();
        match next {
            Some(b) => hash_batch(b),
            None => break,
        }
    };
    std::thread::scope(|s| {
        for _ in 0..PAGE_HASH_THREADS {
            s.spawn(work);
        }
    });
    out
}

/// The SNP guest context's launch digest while pages are being added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gctx {
    ld: LaunchDigest,
}

impl Default for Gctx {
    /// `LD₀` = 48 zero bytes.
    fn default() -> Self {
        Gctx { ld: [0u8; LD_BYTES] }
    }
}

impl Gctx {
    /// Continue from a known digest (e.g. the stage-1 `snp:ovmf-hash` value).
    pub fn from_seed(ld: LaunchDigest) -> Gctx {
        Gctx { ld }
    }

    /// The current launch digest.
    pub fn ld(&self) -> LaunchDigest {
        self.ld
    }

    /// Extend with one page's `PAGE_INFO`.
    pub fn update(&mut self, page_type: PageType, gpa: u64, contents: LaunchDigest) {
        self.ld = sha384(&PageInfo::new(self.ld, page_type, gpa, contents).to_bytes());
    }

    /// NORMAL pages for `data` (a multiple of 4 KiB; a trailing partial page is ignored, the
    /// caller checks the length) starting at `gpa`.
    pub fn update_normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, h) in page_hashes(data).into_iter().enumerate() {
            self.update(PageType::Normal, gpa + (i * PAGE_BYTES) as u64, h);
        }
    }

    /// `size / 4096` pages of `page_type` with zero contents starting at `gpa`.
    pub fn update_empty_pages(&mut self, page_type: PageType, gpa: u64, size: u64) {
        for i in 0..size / PAGE_BYTES as u64 {
            self.update(page_type, gpa + i * PAGE_BYTES as u64, [0u8; LD_BYTES]);
        }
    }

    /// One VMSA page, given the SHA-384 of its 4 KiB contents.
    pub fn update_vmsa_page(&mut self, vmsa_sha384: LaunchDigest) {
        self.update(PageType::Vmsa, VMSA_GPA, vmsa_sha384);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn page_info_field_offsets_match_the_abi_table() {
        assert_eq!(offset_of!(PageInfo, digest_cur), 0x00);
        assert_eq!(offset_of!(PageInfo, contents), 0x30);
        assert_eq!(offset_of!(PageInfo, length), 0x60);
        assert_eq!(offset_of!(PageInfo, page_type), 0x62);
        assert_eq!(offset_of!(PageInfo, imi_page), 0x63);
        assert_eq!(offset_of!(PageInfo, vmpl3_perms), 0x64);
        assert_eq!(offset_of!(PageInfo, vmpl1_perms), 0x66);
        assert_eq!(offset_of!(PageInfo, gpa), 0x68);
    }

    #[test]
    fn page_info_bytes_put_each_field_at_its_offset() {
        let pi = PageInfo::new([0x11; 48], PageType::Cpuid, 0x0102_0304_0506_0708, [0x22; 48]);
        let b = pi.to_bytes();
        assert_eq!(&b[..0x30], &[0x11; 48]);
        assert_eq!(&b[0x30..0x60], &[0x22; 48]);
        assert_eq!(&b[0x60..0x62], &[0x70, 0x00]);
        assert_eq!(b[0x62], 6);
        assert_eq!(&b[0x63..0x68], &[0; 5]);
        assert_eq!(&b[0x68..], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn update_hashes_the_page_info_record() {
        let mut g = Gctx::default();
        g.update(PageType::Zero, 0x800000, [0; 48]);
        // Independent construction of the same 112 bytes.
        let mut rec = vec![0u8; 96];
        rec.extend_from_slice(&[0x70, 0, 3, 0, 0, 0, 0, 0]);
        rec.extend_from_slice(&0x800000u64.to_le_bytes());
        assert_eq!(g.ld(), sha384(&rec));
    }

    #[test]
    fn parallel_page_hashes_equal_sequential() {
        let data: Vec<u8> = (0..PAGE_BYTES * 300).map(|i| (i * 7 % 251) as u8).collect();
        let par = page_hashes(&data);
        assert_eq!(par.len(), 300);
        for (i, h) in par.iter().enumerate() {
            assert_eq!(*h, sha384(&data[i * PAGE_BYTES..(i + 1) * PAGE_BYTES]), "page {i}");
        }
    }
}
