//! `snp:svsm`: the SNP launch digest of a guest whose VMPL0 runs a Coconut SVSM that the
//! Coconut QEMU fork loads beside OVMF, bit-for-bit as sev-snp-measure 0.0.13 computes it
//! (`guest.py` `svsm_calc_launch_digest`, `ovmf.py` `SVSM`, `vmsa.py` `VMSA_SVSM`; design note
//! `../shared/design/snp-measure.md` §2.10). Pages in launch order:
//!
//! 1. OVMF as NORMAL pages, mapped to end at 4 GiB: the `snp:ovmf-hash` stage 1. OVMF's own
//!    metadata sections are **not** measured in this mode.
//! 2. The SVSM binary as NORMAL pages, mapped to end at `OVMF GPA − vars_size` (the OVMF_VARS
//!    flash sits between the two).
//! 3. The SVSM's SEV metadata sections, as SNP measures an OVMF's under QEMU with no kernel
//!    ([`super::launch`]'s metadata pass: `SNP_KERNEL_HASHES` is then ZERO pages).
//! 4. One VMSA per vCPU, every one the same [`Vmsa::svsm_reset_state`] at the SVSM entry point
//!    (offset from the `SVSM_INFO_GUID` footer entry + the SVSM's GPA), SEV_FEATURES 0x1.
//!
//! The SVSM binary has the OVMF footer table ([`crate::ovmf::footer`]) and `ASEV` metadata
//! ([`crate::ovmf::sev`]). The mode models that QEMU fork only (no EC2/GCE); current Coconut
//! releases boot from IGVM files instead, which are not implemented.

use super::gctx::{sha384, Gctx, LaunchDigest, PAGE_BYTES};
use super::launch::{update_metadata_pages, SevFirmware};
use super::vmsa::{Vmsa, VmmType};
use super::{Error, Result};
use crate::ovmf::footer::{FooterTable, SVSM_INFO_GUID};
use crate::ovmf::sev::{metadata_sections, SevMetadataSection};

/// A Coconut SVSM binary and what its launch needs from it, parsed once (sev-snp-measure's
/// `SVSM` class, without the placement, which depends on the OVMF and vars size).
#[derive(Debug, Clone)]
pub struct SvsmImage<'a> {
    data: &'a [u8],
    entry_offset: u32,
    sections: Vec<SevMetadataSection>,
}

/// Where an SVSM sits in guest memory for one OVMF and vars size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvsmPlacement {
    /// GPA of the SVSM's first byte: `OVMF GPA − vars_size − SVSM size`.
    pub gpa: u64,
    /// The vCPUs' RIP: the `SVSM_INFO_GUID` entry's offset + [`SvsmPlacement::gpa`].
    pub reset_eip: u64,
}

impl<'a> SvsmImage<'a> {
    /// Parse the footer table, the `SVSM_INFO_GUID` entry (required) and the SEV metadata of
    /// `data`. Errors are [`Error::Svsm`] (malformed table or metadata) or
    /// [`Error::MissingSvsmInfo`].
    pub fn parse(data: &'a [u8]) -> Result<SvsmImage<'a>> {
        let table = FooterTable::parse(data).map_err(Error::Svsm)?;
        let entry_offset = table.find_u32(&SVSM_INFO_GUID, "SVSM info entry").map_err(Error::Svsm)?;
        let entry_offset = entry_offset.ok_or(Error::MissingSvsmInfo)?;
        let sections = metadata_sections(data, &table).map_err(Error::Svsm)?;
        Ok(SvsmImage { data, entry_offset, sections })
    }

    /// The SVSM bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The entry point's offset from the start of the image (first `u32` of the
    /// `SVSM_INFO_GUID` entry).
    pub fn entry_offset(&self) -> u32 {
        self.entry_offset
    }

    /// The SVSM's SEV metadata sections, in table order.
    pub fn sections(&self) -> &[SevMetadataSection] {
        &self.sections
    }

    /// The placement when the SVSM ends `vars_size` bytes below an OVMF starting at
    /// `ovmf_gpa`; [`Error::SvsmBelowZero`] when that would start below GPA 0.
    pub fn place(&self, ovmf_gpa: u64, vars_size: u64) -> Result<SvsmPlacement> {
        let svsm_size = self.data.len() as u64;
        let gpa = ovmf_gpa
            .checked_sub(vars_size)
            .and_then(|end| end.checked_sub(svsm_size))
            .ok_or(Error::SvsmBelowZero { ovmf_gpa, vars_size, svsm_size })?;
        Ok(SvsmPlacement { gpa, reset_eip: gpa + u64::from(self.entry_offset) })
    }
}

/// `snp:svsm` state after the OVMF, SVSM and metadata pages, ready for the VMSAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvsmPrepared {
    ld: LaunchDigest,
    placement: SvsmPlacement,
}

impl SvsmPrepared {
    /// Measure steps 1-3 of the module doc: `ovmf`'s pages, `svsm`'s pages ending `vars_size`
    /// bytes below the OVMF, and `svsm`'s metadata sections.
    pub fn new(ovmf: &SevFirmware<'_>, svsm: &SvsmImage<'_>, vars_size: u64) -> Result<SvsmPrepared> {
        let placement = svsm.place(ovmf.gpa()?, vars_size)?;
        let size = svsm.data.len() as u64;
        if !size.is_multiple_of(PAGE_BYTES as u64) {
            return Err(Error::SvsmSizeNotPageMultiple { size });
        }
        let mut g = Gctx::from_seed(ovmf.snp_ovmf_hash()?);
        g.update_normal_pages(placement.gpa, svsm.data);
        update_metadata_pages(&mut g, &svsm.sections, None, None, VmmType::Qemu)?;
        Ok(SvsmPrepared { ld: g.ld(), placement })
    }

    /// The LD after the OVMF, SVSM and metadata pages (before any VMSA; the digest for 0 vCPUs).
    pub fn ld_before_vmsas(&self) -> LaunchDigest {
        self.ld
    }

    /// Where the SVSM was placed.
    pub fn placement(&self) -> SvsmPlacement {
        self.placement
    }

    /// The VMSA every vCPU gets for CPUID(1).EAX `vcpu_sig`.
    pub fn vmsa(&self, vcpu_sig: u64) -> Vmsa {
        Vmsa::svsm_reset_state(self.placement.reset_eip, vcpu_sig)
    }

    /// The launch digest for `vcpus` identical VMSAs.
    pub fn launch_digest(&self, vcpus: u32, vcpu_sig: u64) -> LaunchDigest {
        let vmsa_hash = sha384(&self.vmsa(vcpu_sig).to_page());
        let mut g = Gctx::from_seed(self.ld);
        for _ in 0..vcpus {
            g.update_vmsa_page(vmsa_hash);
        }
        g.ld()
    }
}

/// The `snp:svsm` launch digest (48 bytes) of `ovmf` with `svsm` below it and `vars_size`
/// bytes of OVMF_VARS between them, for `vcpus` vCPUs with signature `vcpu_sig`.
pub fn svsm_launch_digest(
    ovmf: &SevFirmware<'_>,
    svsm: &SvsmImage<'_>,
    vars_size: u64,
    vcpus: u32,
    vcpu_sig: u64,
) -> Result<LaunchDigest> {
    Ok(SvsmPrepared::new(ovmf, svsm, vars_size)?.launch_digest(vcpus, vcpu_sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::EfiGuid;
    use crate::ovmf::footer::SEV_METADATA_OFFSET_GUID;
    use crate::ovmf::sev::tests::{mutate, synth_fw, synth_image, SplitMix, SYNTH_META_OFF};
    use crate::snp::gctx::PageType;

    /// Every section type the SVSM pass handles, `SNP_KERNEL_HASHES` included (ZERO pages).
    const SVSM_SECTIONS: &[(u32, u32, u32)] =
        &[(0x800000, 0x3000, 1), (0x803000, 0x1000, 2), (0x804000, 0x1000, 3), (0x805000, 0x1000, 4), (0x806000, 0x2000, 0x10)];
    const ENTRY: u32 = 0x1234;
    const SIG: u64 = 0x00A0_0F11;

    fn svsm_entries(entry: Option<Vec<u8>>) -> Vec<(EfiGuid, Vec<u8>)> {
        let mut e = vec![(SEV_METADATA_OFFSET_GUID, SYNTH_META_OFF.to_le_bytes().to_vec())];
        if let Some(d) = entry {
            e.insert(0, (SVSM_INFO_GUID, d));
        }
        e
    }

    fn synth_svsm(size: usize, sections: &[(u32, u32, u32)]) -> Vec<u8> {
        synth_image(size, &svsm_entries(Some(ENTRY.to_le_bytes().to_vec())), sections)
    }

    fn ovmf() -> Vec<u8> {
        synth_fw(0x4000, &[(0x900000, 0x1000, 1)], (0, 0))
    }

    /// The digest rebuilt page by page from the module doc with `Gctx` primitives only.
    #[test]
    fn digest_matches_a_by_hand_replay() {
        let (ovmf, svsm) = (ovmf(), synth_svsm(0x3000, SVSM_SECTIONS));
        let f = SevFirmware::parse(&ovmf).unwrap();
        let s = SvsmImage::parse(&svsm).unwrap();
        let got = svsm_launch_digest(&f, &s, 0x20000, 3, SIG).unwrap();

        let mut g = Gctx::default();
        for (i, page) in ovmf.chunks(4096).enumerate() {
            g.update(PageType::Normal, 0xFFFF_C000 + i as u64 * 4096, sha384(page));
        }
        // OVMF at 0xFFFF_C000, 0x20000 bytes of vars below it, then the 0x3000-byte SVSM.
        let svsm_gpa = 0xFFFF_C000 - 0x20000 - 0x3000;
        for (i, page) in svsm.chunks(4096).enumerate() {
            g.update(PageType::Normal, svsm_gpa + i as u64 * 4096, sha384(page));
        }
        for i in 0..3 {
            g.update(PageType::Zero, 0x800000 + i * 4096, [0; 48]);
        }
        g.update(PageType::Secrets, 0x803000, [0; 48]);
        g.update(PageType::Cpuid, 0x804000, [0; 48]);
        g.update(PageType::Zero, 0x805000, [0; 48]);
        g.update(PageType::Zero, 0x806000, [0; 48]);
        g.update(PageType::Zero, 0x807000, [0; 48]);
        let vmsa = sha384(&Vmsa::svsm_reset_state(svsm_gpa + u64::from(ENTRY), SIG).to_page());
        for _ in 0..3 {
            g.update_vmsa_page(vmsa);
        }
        assert_eq!(got, g.ld());

        let prep = SvsmPrepared::new(&f, &s, 0x20000).unwrap();
        assert_eq!(prep.placement(), SvsmPlacement { gpa: svsm_gpa, reset_eip: svsm_gpa + 0x1234 });
        assert_eq!(prep.launch_digest(0, SIG), prep.ld_before_vmsas());
    }

    #[test]
    fn zero_vars_size_puts_the_svsm_right_below_the_ovmf() {
        let (ovmf, svsm) = (ovmf(), synth_svsm(0x2000, &[]));
        let f = SevFirmware::parse(&ovmf).unwrap();
        let s = SvsmImage::parse(&svsm).unwrap();
        assert_eq!(s.place(f.gpa().unwrap(), 0).unwrap().gpa, 0xFFFF_A000);
        assert_ne!(svsm_launch_digest(&f, &s, 0, 1, SIG).unwrap(), svsm_launch_digest(&f, &s, 0x1000, 1, SIG).unwrap());
    }

    #[test]
    fn missing_or_short_svsm_info_entry_is_an_error() {
        let no_info = synth_image(0x2000, &svsm_entries(None), SVSM_SECTIONS);
        assert!(matches!(SvsmImage::parse(&no_info), Err(Error::MissingSvsmInfo)));
        assert_eq!(Error::MissingSvsmInfo.to_string(), "Can't find SVSM_INFO_GUID entry in SVSM table");
        // A plain OVMF is not an SVSM.
        assert!(matches!(SvsmImage::parse(&ovmf()), Err(Error::MissingSvsmInfo)));
        let short = synth_image(0x2000, &svsm_entries(Some(vec![0x34, 0x12])), &[]);
        let e = SvsmImage::parse(&short).unwrap_err();
        assert!(matches!(e, Error::Svsm(crate::ovmf::Error::Invalid { field: "SVSM info entry", .. })), "{e}");
    }

    #[test]
    fn truncated_svsm_is_an_error() {
        let svsm = synth_svsm(0x2000, SVSM_SECTIONS);
        // Too short for a footer at all.
        let e = SvsmImage::parse(&svsm[..40]).unwrap_err();
        assert!(matches!(e, Error::Svsm(crate::ovmf::Error::Truncated { .. })), "{e}");
        // Cut at the front: the ASEV offset now points before the start of the file.
        let e = SvsmImage::parse(&svsm[0x1800..]).unwrap_err();
        assert!(matches!(e, Error::Svsm(crate::ovmf::Error::Invalid { field: "SEV metadata offset", .. })), "{e}");
        assert!(e.to_string().starts_with("SVSM: "), "{e}");
        // Cut at the end: the footer is gone, so is the SVSM_INFO entry.
        assert!(matches!(SvsmImage::parse(&svsm[..0x1FF0]), Err(Error::MissingSvsmInfo)));
        // A parsed image that is not whole pages cannot be measured.
        let odd = synth_svsm(0x2010, &[]);
        let f_bytes = ovmf();
        let f = SevFirmware::parse(&f_bytes).unwrap();
        let s = SvsmImage::parse(&odd).unwrap();
        assert_eq!(svsm_launch_digest(&f, &s, 0, 1, SIG), Err(Error::SvsmSizeNotPageMultiple { size: 0x2010 }));
    }

    #[test]
    fn placement_below_gpa_zero_is_an_error_not_a_wrap() {
        let svsm = synth_svsm(0x2000, &[]);
        let s = SvsmImage::parse(&svsm).unwrap();
        let ovmf_gpa = 0xFFFF_C000;
        assert_eq!(s.place(ovmf_gpa, ovmf_gpa - 0x2000).unwrap().gpa, 0);
        let below = Error::SvsmBelowZero { ovmf_gpa, vars_size: ovmf_gpa - 0x1000, svsm_size: 0x2000 };
        assert_eq!(s.place(ovmf_gpa, ovmf_gpa - 0x1000), Err(below));
        let huge = Error::SvsmBelowZero { ovmf_gpa, vars_size: u64::MAX, svsm_size: 0x2000 };
        assert_eq!(s.place(ovmf_gpa, u64::MAX), Err(huge));
        let f_bytes = ovmf();
        let f = SevFirmware::parse(&f_bytes).unwrap();
        assert!(matches!(svsm_launch_digest(&f, &s, u64::MAX, 1, SIG), Err(Error::SvsmBelowZero { .. })));
    }

    #[test]
    fn unknown_section_type_in_the_svsm_is_refused() {
        let svsm = synth_svsm(0x2000, &[(0x800000, 0x1000, 1), (0x801000, 0x1000, 9)]);
        let (ovmf, s) = (ovmf(), SvsmImage::parse(&svsm).unwrap());
        let f = SevFirmware::parse(&ovmf).unwrap();
        let e = svsm_launch_digest(&f, &s, 0, 1, SIG).unwrap_err();
        assert!(matches!(e, Error::UnknownSectionType { index: 1, section_type: 9, .. }), "{e}");
    }

    /// Seeded mutations of an SVSM (the `mutated_and_truncated_firmware_never_panics` rounds)
    /// through the parser and the whole pipeline: `Ok` or a typed error, never a panic.
    #[test]
    fn mutated_svsm_never_panics() {
        let mut rng = SplitMix(0x5157_5E11);
        let base = synth_svsm(0x3000, SVSM_SECTIONS);
        let ovmf = ovmf();
        let f = SevFirmware::parse(&ovmf).unwrap();
        let (mut oks, mut errs) = (0, 0);
        for i in 0..3000u32 {
            let svsm = mutate(&base, i, &mut rng);
            let Ok(s) = SvsmImage::parse(&svsm) else {
                errs += 1;
                continue;
            };
            // Keep the test fast: a mutated size can ask for a million pages.
            if s.sections().iter().any(|s| s.size > 0x10000) {
                continue;
            }
            let vars = [0, 0x1000, rng.next()][(rng.next() % 3) as usize];
            match svsm_launch_digest(&f, &s, vars, 2, SIG) {
                Ok(_) => oks += 1,
                Err(_) => errs += 1,
            }
        }
        assert!(oks > 100 && errs > 100, "{oks} ok, {errs} errors");
    }
}
