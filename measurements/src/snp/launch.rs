//! The launch pipelines (design note §2.5, §2.8): SNP (firmware pages, metadata sections in
//! table order, VMSAs), its stage-1 split (`snp:ovmf-hash`), SEV-ES and SEV.
//!
//! Sweeps: [`SnpPrepared`] and [`SevEsPrepared`] hold the state after everything but the
//! VMSAs, which come last; each (vCPU count, signature, features) then costs two VMSA hashes
//! and one 112-byte SHA-384 per vCPU (SNP), or the VMSA bytes (SEV-ES).

use super::gctx::{sha384, Gctx, LaunchDigest, PageType, PAGE_BYTES};
use super::hashes::SevHashTable;
use super::vmsa::{Vmsa, VmmType, BSP_EIP};
use super::{Error, Result};
use crate::ovmf::sev::{OvmfSevInfo, SevHashTableBlock, SevMetadataSection, SevSectionType};
use sha2::{Digest, Sha256};

/// Guest mode (sev-snp-measure `--mode`; `snp:svsm` is [`super::svsm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SevMode {
    /// SEV: SHA-256 of the firmware (and hash table).
    Sev,
    /// SEV-ES: SHA-256 of the firmware, hash table and VMSAs.
    SevEs,
    /// SEV-SNP: the PSP's rolling SHA-384 launch digest.
    Snp,
}

/// A firmware image and what the AMD launch needs from it, parsed once.
#[derive(Debug, Clone)]
pub struct SevFirmware<'a> {
    data: &'a [u8],
    info: OvmfSevInfo,
}

impl<'a> SevFirmware<'a> {
    /// Parse the footer table, SEV metadata, reset block and hash-table block of `data`.
    pub fn parse(data: &'a [u8]) -> Result<SevFirmware<'a>> {
        Ok(SevFirmware { data, info: OvmfSevInfo::parse(data)? })
    }

    /// The parsed SEV information.
    pub fn info(&self) -> &OvmfSevInfo {
        &self.info
    }

    /// The firmware bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// GPA of the first byte: the image is mapped to end at 4 GiB.
    pub fn gpa(&self) -> Result<u64> {
        let size = self.data.len() as u64;
        (1u64 << 32).checked_sub(size).ok_or(Error::FirmwareTooLarge { size })
    }

    /// Stage 1 of the SNP digest (`snp:ovmf-hash`): the LD after every firmware page.
    pub fn snp_ovmf_hash(&self) -> Result<LaunchDigest> {
        let size = self.data.len() as u64;
        if size % PAGE_BYTES as u64 != 0 {
            return Err(Error::FirmwareSizeNotPageMultiple { size });
        }
        let mut g = Gctx::default();
        g.update_normal_pages(self.gpa()?, self.data);
        Ok(g.ld())
    }
}

/// The BSP VMSA and, for more than one vCPU, the AP VMSA of one (signature, features, VMM)
/// tuple.
fn bsp_ap_vmsas(ap_eip: u32, vcpus: u32, sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Result<(Vmsa, Option<Vmsa>)> {
    let bsp = Vmsa::reset_state(BSP_EIP, sev_features, vcpu_sig, vmm);
    let ap = if vcpus > 1 {
        if ap_eip == 0 {
            return Err(Error::ZeroApEip { vcpus });
        }
        Some(Vmsa::reset_state(ap_eip, sev_features, vcpu_sig, vmm))
    } else {
        None
    };
    Ok((bsp, ap))
}

/// The VMSAs measured for `vcpus` vCPUs in launch order: vCPU 0 is the BSP, the others APs
/// starting at `ap_eip` (the firmware's SEV-ES reset block). `sev_features` is the SNP
/// `guest_features`, or 0 for SEV-ES.
pub fn vmsas(ap_eip: Option<u32>, vcpus: u32, sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Result<Vec<Vmsa>> {
    let ap_eip = ap_eip.ok_or(Error::MissingResetBlock)?;
    let (bsp, ap) = bsp_ap_vmsas(ap_eip, vcpus, sev_features, vcpu_sig, vmm)?;
    Ok((0..vcpus).map(|i| if i == 0 { bsp } else { ap.unwrap_or(bsp) }).collect())
}

/// SNP state after the firmware and metadata pages, ready for VMSAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnpPrepared {
    ld: LaunchDigest,
    ap_eip: Option<u32>,
    vmm: VmmType,
}

impl SnpPrepared {
    /// Measure the metadata sections (table order) on top of `stage1` (the firmware pages'
    /// LD, computed by [`SevFirmware::snp_ovmf_hash`] or given as `--snp-ovmf-hash`).
    pub fn new(fw: &SevFirmware<'_>, stage1: LaunchDigest, hashes: Option<&SevHashTable>, vmm: VmmType) -> Result<Self> {
        let mut g = Gctx::from_seed(stage1);
        let info = fw.info();
        update_metadata_pages(&mut g, &info.sections, info.hash_table, hashes, vmm)?;
        Ok(SnpPrepared { ld: g.ld(), ap_eip: info.sev_es_reset_eip, vmm })
    }

    /// The LD after the firmware and metadata pages (before any VMSA).
    pub fn ld_before_vmsas(&self) -> LaunchDigest {
        self.ld
    }

    /// The AP reset EIP, if the firmware has a reset block.
    pub fn ap_eip(&self) -> Option<u32> {
        self.ap_eip
    }

    /// The final SNP launch digest for one shape.
    pub fn launch_digest(&self, vcpus: u32, vcpu_sig: u64, guest_features: u64) -> Result<LaunchDigest> {
        let table = self.sweep(vcpus, vcpu_sig, guest_features)?;
        Ok(table.last().copied().unwrap_or(self.ld))
    }

    /// Digests for 1..=`max_vcpus` vCPUs (element `i` is for `i + 1` vCPUs), each extending the
    /// previous one by one AP VMSA.
    pub fn sweep(&self, max_vcpus: u32, vcpu_sig: u64, guest_features: u64) -> Result<Vec<LaunchDigest>> {
        let ap_eip = self.ap_eip.ok_or(Error::MissingResetBlock)?;
        let (bsp, ap) = bsp_ap_vmsas(ap_eip, max_vcpus, guest_features, vcpu_sig, self.vmm)?;
        let bsp_hash = sha384(&bsp.to_page());
        let ap_hash = ap.map(|a| sha384(&a.to_page())).unwrap_or(bsp_hash);
        let mut g = Gctx::from_seed(self.ld);
        let mut out = Vec::with_capacity(max_vcpus as usize);
        for i in 0..max_vcpus {
            g.update_vmsa_page(if i == 0 { bsp_hash } else { ap_hash });
            out.push(g.ld());
        }
        Ok(out)
    }
}

/// The metadata pass of an SNP launch (sev-snp-measure `snp_update_metadata_pages`): every
/// section in table order by type (design note §2.5), EC2's CPUID pages after the loop, and the
/// refusal of a kernel without an `SNP_KERNEL_HASHES` section. Shared by plain SNP (the OVMF's
/// sections) and `snp:svsm` (the SVSM's sections, QEMU, no kernel).
pub(crate) fn update_metadata_pages(
    g: &mut Gctx,
    sections: &[SevMetadataSection],
    hash_table: Option<SevHashTableBlock>,
    hashes: Option<&SevHashTable>,
    vmm: VmmType,
) -> Result<()> {
    for (index, s) in sections.iter().enumerate() {
        let gpa = u64::from(s.gpa);
        let pages = |g: &mut Gctx, ty| {
            if s.size as usize % PAGE_BYTES != 0 {
                return Err(Error::SectionSizeNotPageMultiple { index, size: s.size, desc_offset: s.desc_offset });
            }
            g.update_empty_pages(ty, gpa, u64::from(s.size));
            Ok(())
        };
        match s.section_type {
            SevSectionType::SnpSecMem if vmm == VmmType::Gce => pages(g, PageType::Unmeasured)?,
            SevSectionType::SnpSecMem | SevSectionType::SvsmCaa => pages(g, PageType::Zero)?,
            SevSectionType::SnpSecrets => g.update(PageType::Secrets, gpa, [0; 48]),
            SevSectionType::Cpuid if vmm == VmmType::Ec2 => {}
            SevSectionType::Cpuid => g.update(PageType::Cpuid, gpa, [0; 48]),
            SevSectionType::SnpKernelHashes => match hashes {
                None => pages(g, PageType::Zero)?,
                Some(h) => {
                    let block = hash_table.ok_or(Error::MissingHashTableBlock)?;
                    let page = h
                        .to_page(block.gpa as usize % PAGE_BYTES)
                        .ok_or(Error::HashTableCrossesPage { gpa: block.gpa })?;
                    if s.size as usize != PAGE_BYTES {
                        return Err(Error::KernelHashesSectionSize { index, size: s.size, desc_offset: s.desc_offset });
                    }
                    g.update(PageType::Normal, gpa, sha384(&page));
                }
            },
            SevSectionType::Unknown(section_type) => {
                return Err(Error::UnknownSectionType { index, section_type, desc_offset: s.desc_offset })
            }
        }
    }
    if vmm == VmmType::Ec2 {
        for s in sections.iter().filter(|s| s.section_type == SevSectionType::Cpuid) {
            g.update(PageType::Cpuid, u64::from(s.gpa), [0; 48]);
        }
    }
    if hashes.is_some() && !sections.iter().any(|s| s.section_type == SevSectionType::SnpKernelHashes) {
        return Err(Error::KernelWithoutSnpKernelHashesSection);
    }
    Ok(())
}

/// SEV-ES state after the firmware (and hash table), ready for VMSAs.
#[derive(Clone)]
pub struct SevEsPrepared {
    state: Sha256,
    ap_eip: Option<u32>,
}

impl SevEsPrepared {
    /// Hash the firmware and, with a kernel, the padded hash table.
    pub fn new(fw: &SevFirmware<'_>, hashes: Option<&SevHashTable>) -> Result<Self> {
        Ok(SevEsPrepared { state: sev_state(fw, hashes)?, ap_eip: fw.info().sev_es_reset_eip })
    }

    /// The SEV-ES launch digest for one shape (VMSAs carry SEV_FEATURES 0).
    pub fn launch_digest(&self, vcpus: u32, vcpu_sig: u64, vmm: VmmType) -> Result<[u8; 32]> {
        let ap_eip = self.ap_eip.ok_or(Error::MissingResetBlock)?;
        let (bsp, ap) = bsp_ap_vmsas(ap_eip, vcpus, 0, vcpu_sig, vmm)?;
        let mut h = self.state.clone();
        if vcpus > 0 {
            h.update(bsp.to_page());
        }
        if let Some(ap) = ap {
            let page = ap.to_page();
            for _ in 1..vcpus {
                h.update(page);
            }
        }
        Ok(h.finalize().into())
    }
}

/// SHA-256 state over the firmware and, with a kernel, the padded hash table.
fn sev_state(fw: &SevFirmware<'_>, hashes: Option<&SevHashTable>) -> Result<Sha256> {
    let mut h = Sha256::new();
    h.update(fw.data());
    if let Some(t) = hashes {
        if !fw.info().supports_sev_kernel_hashes() {
            return Err(Error::KernelHashesUnsupported);
        }
        h.update(t.to_padded_bytes());
    }
    Ok(h)
}

/// Inputs of one launch besides the firmware (sev-snp-measure's `calc_launch_digest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchParams {
    /// Guest mode.
    pub mode: SevMode,
    /// Number of vCPUs (= VMSAs); unused for SEV.
    pub vcpus: u32,
    /// CPUID(1).EAX put in RDX by QEMU; unused for SEV and by EC2/GCE.
    pub vcpu_sig: u64,
    /// SNP `SEV_FEATURES` (sev-snp-measure default 0x1).
    pub guest_features: u64,
    /// VMM flavour.
    pub vmm: VmmType,
    /// Kernel/initrd/cmdline hashes when a kernel is measured.
    pub hashes: Option<SevHashTable>,
    /// SNP only: a precomputed stage-1 LD (`--snp-ovmf-hash`) instead of hashing the firmware.
    pub snp_ovmf_hash: Option<LaunchDigest>,
}

/// The SNP launch digest (48 bytes).
pub fn snp_launch_digest(fw: &SevFirmware<'_>, p: &LaunchParams) -> Result<LaunchDigest> {
    let stage1 = match p.snp_ovmf_hash {
        Some(seed) => seed,
        None => fw.snp_ovmf_hash()?,
    };
    SnpPrepared::new(fw, stage1, p.hashes.as_ref(), p.vmm)?.launch_digest(p.vcpus, p.vcpu_sig, p.guest_features)
}

/// The SEV-ES launch digest (32 bytes, the LD before the HMAC of §1).
pub fn seves_launch_digest(fw: &SevFirmware<'_>, p: &LaunchParams) -> Result<[u8; 32]> {
    SevEsPrepared::new(fw, p.hashes.as_ref())?.launch_digest(p.vcpus, p.vcpu_sig, p.vmm)
}

/// The SEV launch digest (32 bytes): SHA-256 of the firmware and hash table.
pub fn sev_launch_digest(fw: &SevFirmware<'_>, hashes: Option<&SevHashTable>) -> Result<[u8; 32]> {
    Ok(sev_state(fw, hashes)?.finalize().into())
}

/// The launch digest for `p.mode`: 48 bytes for SNP, 32 for SEV and SEV-ES.
pub fn launch_digest(fw: &SevFirmware<'_>, p: &LaunchParams) -> Result<Vec<u8>> {
    Ok(match p.mode {
        SevMode::Snp => snp_launch_digest(fw, p)?.to_vec(),
        SevMode::SevEs => seves_launch_digest(fw, p)?.to_vec(),
        SevMode::Sev => sev_launch_digest(fw, p.hashes.as_ref())?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovmf::sev::tests::synth_fw;

    const SECTIONS: &[(u32, u32, u32)] =
        &[(0x800000, 0x9000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3), (0x810000, 0x1000, 0x10)];

    fn params(mode: SevMode) -> LaunchParams {
        LaunchParams {
            mode,
            vcpus: 3,
            vcpu_sig: 0x00A00F11,
            guest_features: 1,
            vmm: VmmType::Qemu,
            hashes: None,
            snp_ovmf_hash: None,
        }
    }

    /// The SNP digest rebuilt page by page from §2.5 with `Gctx` primitives only.
    #[test]
    fn snp_matches_a_by_hand_replay_of_section_2_5() {
        let fw = synth_fw(0x4000, SECTIONS, (0x810C00, 0x400));
        let f = SevFirmware::parse(&fw).unwrap();
        let t = SevHashTable::from_blobs(b"kernel", Some(b"initrd"), Some(b"console=ttyS0"));
        let mut p = params(SevMode::Snp);
        p.hashes = Some(t);
        let got = snp_launch_digest(&f, &p).unwrap();

        let mut g = Gctx::default();
        for i in 0..4u64 {
            let page = &fw[i as usize * 4096..(i as usize + 1) * 4096];
            g.update(PageType::Normal, 0xFFFF_C000 + i * 4096, sha384(page));
        }
        for i in 0..9u64 {
            g.update(PageType::Zero, 0x800000 + i * 4096, [0; 48]);
        }
        g.update(PageType::Secrets, 0x80D000, [0; 48]);
        g.update(PageType::Cpuid, 0x80E000, [0; 48]);
        let mut page = [0u8; 4096];
        page[0xC00..0xCB0].copy_from_slice(&t.to_padded_bytes());
        g.update(PageType::Normal, 0x810000, sha384(&page));
        g.update_vmsa_page(sha384(&Vmsa::reset_state(BSP_EIP, 1, 0x00A00F11, VmmType::Qemu).to_page()));
        let ap = sha384(&Vmsa::reset_state(0x80B004, 1, 0x00A00F11, VmmType::Qemu).to_page());
        g.update_vmsa_page(ap);
        g.update_vmsa_page(ap);
        assert_eq!(got, g.ld());
    }

    #[test]
    fn sweep_prefixes_equal_single_shape_digests() {
        let fw = synth_fw(0x4000, SECTIONS, (0, 0));
        let f = SevFirmware::parse(&fw).unwrap();
        let prep = SnpPrepared::new(&f, f.snp_ovmf_hash().unwrap(), None, VmmType::Qemu).unwrap();
        let table = prep.sweep(5, 0x00800F12, 1).unwrap();
        for n in 1..=5u32 {
            let mut p = params(SevMode::Snp);
            p.vcpus = n;
            p.vcpu_sig = 0x00800F12;
            assert_eq!(table[n as usize - 1], snp_launch_digest(&f, &p).unwrap(), "{n} vCPUs");
        }
        assert_ne!(table[0], table[1]);
    }

    #[test]
    fn ec2_moves_cpuid_pages_after_the_loop_and_gce_unmeasures_sec_mem() {
        let fw = synth_fw(0x4000, SECTIONS, (0, 0));
        let f = SevFirmware::parse(&fw).unwrap();
        let s1 = f.snp_ovmf_hash().unwrap();
        let lds: Vec<_> = [VmmType::Qemu, VmmType::Ec2, VmmType::Gce]
            .into_iter()
            .map(|v| SnpPrepared::new(&f, s1, None, v).unwrap().ld_before_vmsas())
            .collect();
        assert_ne!(lds[0], lds[1]);
        assert_ne!(lds[0], lds[2]);
        // Moving the CPUID section to the end of the table gives the EC2 order under QEMU rules.
        let reordered = synth_fw(0x4000, &[SECTIONS[0], SECTIONS[1], SECTIONS[3], SECTIONS[2]], (0, 0));
        let r = SevFirmware::parse(&reordered).unwrap();
        let q = SnpPrepared::new(&r, s1, None, VmmType::Qemu).unwrap().ld_before_vmsas();
        assert_eq!(q, lds[1]);
    }

    #[test]
    fn refusals_match_sev_snp_measure() {
        let t = SevHashTable::from_blobs(b"k", None, None);
        let no_hashes = synth_fw(0x4000, &SECTIONS[..3], (0, 0));
        let f = SevFirmware::parse(&no_hashes).unwrap();
        let mut p = params(SevMode::Snp);
        p.hashes = Some(t);
        assert_eq!(snp_launch_digest(&f, &p), Err(Error::KernelWithoutSnpKernelHashesSection));
        p.mode = SevMode::SevEs;
        assert_eq!(seves_launch_digest(&f, &p), Err(Error::KernelHashesUnsupported));
        assert_eq!(sev_launch_digest(&f, Some(&t)), Err(Error::KernelHashesUnsupported));

        let unknown = synth_fw(0x4000, &[(0x800000, 0x1000, 1), (0x900000, 0x1000, 7)], (0, 0));
        let f = SevFirmware::parse(&unknown).unwrap();
        let e = snp_launch_digest(&f, &params(SevMode::Snp)).unwrap_err();
        assert!(matches!(e, Error::UnknownSectionType { index: 1, section_type: 7, .. }), "{e}");
        // SEV-ES never looks at the section types.
        assert!(seves_launch_digest(&f, &params(SevMode::SevEs)).is_ok());

        let odd = vec![0u8; 4097];
        let f = SevFirmware::parse(&odd).unwrap();
        assert_eq!(f.snp_ovmf_hash(), Err(Error::FirmwareSizeNotPageMultiple { size: 4097 }));
        assert_eq!(seves_launch_digest(&f, &params(SevMode::SevEs)), Err(Error::MissingResetBlock));
    }

    #[test]
    fn seves_hashes_firmware_table_and_vmsas_in_order() {
        let fw = synth_fw(0x4000, SECTIONS, (0x810C00, 0x400));
        let f = SevFirmware::parse(&fw).unwrap();
        let t = SevHashTable::from_blobs(b"k", None, Some(b"x"));
        let mut p = params(SevMode::SevEs);
        p.hashes = Some(t);
        let mut h = Sha256::new();
        h.update(&fw);
        h.update(t.to_padded_bytes());
        h.update(Vmsa::reset_state(BSP_EIP, 0, 0x00A00F11, VmmType::Qemu).to_page());
        let ap = Vmsa::reset_state(0x80B004, 0, 0x00A00F11, VmmType::Qemu).to_page();
        h.update(ap);
        h.update(ap);
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(seves_launch_digest(&f, &p).unwrap(), want);
    }
}
