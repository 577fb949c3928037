//! The initial VMSA page of each vCPU as QEMU/KVM, EC2 and GCE build it: AMD APM vol. 2,
//! appendix B, table B-4 "VMSA Layout, State Save Area for SEV-ES" (Linux
//! `struct sev_es_save_area`, `arch/x86/include/asm/svm.h`). Only the fields a VMM sets at
//! reset are modelled; every other byte of the 4 KiB page is zero.
//!
//! Values follow sev-snp-measure 0.0.13 `vmsa.py` (KVM_SEV_INIT2 era: MXCSR 0x1F80 and
//! FCW 0x37F under QEMU) and are checked against its digests by the golden and oracle tests.

use super::gctx::PAGE_BYTES;

/// EIP of the bootstrap processor at reset.
pub const BSP_EIP: u32 = 0xFFFF_FFF0;

/// SEV_FEATURES of every SVSM VMSA (SNPActive only); `--guest-features` does not apply.
pub const SVSM_SEV_FEATURES: u64 = 0x1;

/// VMM flavour: each builds a slightly different initial register state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VmmType {
    /// Upstream QEMU/KVM (with KVM_SEV_INIT2).
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

impl VmmType {
    /// sev-snp-measure's `--vmm-type` spelling.
    pub fn name(self) -> &'static str {
        match self {
            VmmType::Qemu => "QEMU",
            VmmType::Ec2 => "ec2",
            VmmType::Gce => "gce",
        }
    }

    /// Parse sev-snp-measure's `--vmm-type` spelling (case-sensitive, as it is).
    pub fn from_name(s: &str) -> Option<VmmType> {
        [VmmType::Qemu, VmmType::Ec2, VmmType::Gce].into_iter().find(|v| v.name() == s)
    }
}

/// `struct vmcb_seg`: a segment register in the save area (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmcbSeg {
    /// Selector.
    pub selector: u16,
    /// Attributes (packed descriptor flags).
    pub attrib: u16,
    /// Limit.
    pub limit: u32,
    /// Base.
    pub base: u64,
}

impl VmcbSeg {
    const fn new(selector: u16, attrib: u16, limit: u32, base: u64) -> VmcbSeg {
        VmcbSeg { selector, attrib, limit, base }
    }

    fn write(&self, page: &mut [u8; PAGE_BYTES], off: usize) {
        page[off..off + 2].copy_from_slice(&self.selector.to_le_bytes());
        page[off + 2..off + 4].copy_from_slice(&self.attrib.to_le_bytes());
        page[off + 4..off + 8].copy_from_slice(&self.limit.to_le_bytes());
        page[off + 8..off + 16].copy_from_slice(&self.base.to_le_bytes());
    }
}

/// The VMSA (`struct sev_es_save_area`, APM vol. 2 table B-4): the fields a VMM sets at reset.
#[doc(alias = "VMSA")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vmsa {
    pub es: VmcbSeg,
    pub cs: VmcbSeg,
    pub ss: VmcbSeg,
    pub ds: VmcbSeg,
    pub fs: VmcbSeg,
    pub gs: VmcbSeg,
    pub gdtr: VmcbSeg,
    pub ldtr: VmcbSeg,
    pub idtr: VmcbSeg,
    pub tr: VmcbSeg,
    pub efer: u64,
    pub cr4: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    pub g_pat: u64,
    pub rdx: u64,
    pub sev_features: u64,
    pub xcr0: u64,
    pub mxcsr: u32,
    pub x87_fcw: u16,
}

/// Byte offsets of the modelled fields in the save area (APM vol. 2 table B-4).
pub mod offsets {
    pub const ES: usize = 0x000;
    pub const CS: usize = 0x010;
    pub const SS: usize = 0x020;
    pub const DS: usize = 0x030;
    pub const FS: usize = 0x040;
    pub const GS: usize = 0x050;
    pub const GDTR: usize = 0x060;
    pub const LDTR: usize = 0x070;
    pub const IDTR: usize = 0x080;
    pub const TR: usize = 0x090;
    pub const EFER: usize = 0x0D0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3B0;
    pub const XCR0: usize = 0x3E8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

impl Vmsa {
    /// The reset state of a vCPU starting at `eip` (BSP: [`BSP_EIP`]; AP: the SEV-ES reset
    /// block address), with `sev_features` (SNP `guest_features`, 0 for SEV-ES) and CPUID(1).EAX
    /// `vcpu_sig` in RDX (QEMU only; EC2 and GCE put 0x600 there).
    pub fn reset_state(eip: u32, sev_features: u64, vcpu_sig: u64, vmm: VmmType) -> Vmsa {
        let (mut cs_attrib, mut ss_attrib, mut tr_attrib) = (0x9B, 0x93, 0x8B);
        let mut g_pat = 0x0007_0406_0007_0406; // APM vol. 2 section A.3 PAT reset value
        let (rdx, mxcsr, x87_fcw) = match vmm {
            VmmType::Qemu => (vcpu_sig, 0x1F80, 0x037F),
            VmmType::Ec2 => {
                if eip == BSP_EIP {
                    cs_attrib = 0x9A;
                }
                ss_attrib = 0x92;
                tr_attrib = 0x83;
                (0x600, 0, 0)
            }
            VmmType::Gce => {
                g_pat = 0x0007_0106;
                (0x600, 0, 0)
            }
        };
        let data = VmcbSeg::new(0, 0x93, 0xFFFF, 0);
        Vmsa {
            es: data,
            cs: VmcbSeg::new(0xF000, cs_attrib, 0xFFFF, u64::from(eip & 0xFFFF_0000)),
            ss: VmcbSeg::new(0, ss_attrib, 0xFFFF, 0),
            ds: data,
            fs: data,
            gs: data,
            gdtr: VmcbSeg::new(0, 0, 0xFFFF, 0),
            ldtr: VmcbSeg::new(0, 0x82, 0xFFFF, 0),
            idtr: VmcbSeg::new(0, 0, 0xFFFF, 0),
            tr: VmcbSeg::new(0, tr_attrib, 0xFFFF, 0),
            efer: 0x1000, // EFER.SVME, set by KVM
            cr4: 0x40,    // CR4.MCE, set by KVM
            cr0: 0x10,
            dr7: 0x400,
            dr6: 0xFFFF_0FF0,
            rflags: 0x2,
            rip: u64::from(eip & 0xFFFF),
            g_pat,
            rdx,
            sev_features,
            xcr0: 0x1,
            mxcsr,
            x87_fcw,
        }
    }

    /// The state every vCPU of a Coconut-SVSM launch starts in (sev-snp-measure 0.0.13
    /// `VMSA_SVSM`, QEMU only): 32-bit protected mode with flat segments (CS selector 8,
    /// ES/SS/DS/FS selector 16, limit 4 GiB), CR0.PE set, RIP the absolute SVSM entry point
    /// `eip`, SEV_FEATURES [`SVSM_SEV_FEATURES`] and CPUID(1).EAX `vcpu_sig` in RDX.
    ///
    /// X87 FCW stays 0 while MXCSR is 0x1F80: `vmsa.py` passes `fcw=` instead of `x87_fcw=`
    /// and ctypes ignores the unknown keyword (`../shared/design/snp-measure.md` §2.10;
    /// checked with `sev-snp-measure --dump-vmsa`).
    pub fn svsm_reset_state(eip: u64, vcpu_sig: u64) -> Vmsa {
        let flat_data = VmcbSeg::new(16, 0xC93, 0xFFFF_FFFF, 0);
        Vmsa {
            es: flat_data,
            cs: VmcbSeg::new(8, 0xC9B, 0xFFFF_FFFF, 0),
            ss: flat_data,
            ds: flat_data,
            fs: flat_data,
            gs: VmcbSeg::new(0, 0x93, 0xFFFF, 0),
            gdtr: VmcbSeg::new(0, 0, 0xFFFF, 0),
            ldtr: VmcbSeg::new(0, 0x82, 0xFFFF, 0),
            idtr: VmcbSeg::new(0, 0, 0xFFFF, 0),
            tr: VmcbSeg::new(0, 0x8B, 0xFFFF, 0),
            efer: 0x1000,
            cr4: 0x40,
            cr0: 0x11, // CR0.ET | CR0.PE
            dr7: 0x400,
            dr6: 0xFFFF_0FF0,
            rflags: 0x2,
            rip: eip,
            g_pat: 0x0007_0406_0007_0406,
            rdx: vcpu_sig,
            sev_features: SVSM_SEV_FEATURES,
            xcr0: 0x1,
            mxcsr: 0x1F80,
            x87_fcw: 0,
        }
    }

    /// The 4 KiB page the VMM hands to LAUNCH_UPDATE_VMSA.
    pub fn to_page(&self) -> [u8; PAGE_BYTES] {
        use offsets::*;
        let mut p = [0u8; PAGE_BYTES];
        for (seg, off) in [
            (&self.es, ES),
            (&self.cs, CS),
            (&self.ss, SS),
            (&self.ds, DS),
            (&self.fs, FS),
            (&self.gs, GS),
            (&self.gdtr, GDTR),
            (&self.ldtr, LDTR),
            (&self.idtr, IDTR),
            (&self.tr, TR),
        ] {
            seg.write(&mut p, off);
        }
        for (v, off) in [
            (self.efer, EFER),
            (self.cr4, CR4),
            (self.cr0, CR0),
            (self.dr7, DR7),
            (self.dr6, DR6),
            (self.rflags, RFLAGS),
            (self.rip, RIP),
            (self.g_pat, G_PAT),
            (self.rdx, RDX),
            (self.sev_features, SEV_FEATURES),
            (self.xcr0, XCR0),
        ] {
            p[off..off + 8].copy_from_slice(&v.to_le_bytes());
        }
        p[MXCSR..MXCSR + 4].copy_from_slice(&self.mxcsr.to_le_bytes());
        p[X87_FCW..X87_FCW + 2].copy_from_slice(&self.x87_fcw.to_le_bytes());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::gctx::sha384;

    fn u64_at(p: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(p[off..off + 8].try_into().unwrap())
    }

    #[test]
    fn qemu_ap_page_has_fields_at_table_b4_offsets() {
        let p = Vmsa::reset_state(0x80B004, 0x21, 0x00A00F11, VmmType::Qemu).to_page();
        // CS: selector 0xF000, attrib 0x9B, limit 0xFFFF, base 0x800000.
        assert_eq!(&p[0x10..0x20], &[0x00, 0xF0, 0x9B, 0x00, 0xFF, 0xFF, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0]);
        assert_eq!(u64_at(&p, 0x178), 0xB004);
        assert_eq!(u64_at(&p, 0x310), 0x00A00F11);
        assert_eq!(u64_at(&p, 0x3B0), 0x21);
        assert_eq!(u64_at(&p, 0x268), 0x0007_0406_0007_0406);
        assert_eq!(u64_at(&p, 0xD0), 0x1000);
        assert_eq!(u64_at(&p, 0x168), 0xFFFF_0FF0);
        assert_eq!(&p[0x408..0x40C], &0x1F80u32.to_le_bytes());
        assert_eq!(&p[0x410..0x412], &0x037Fu16.to_le_bytes());
        // LDTR attrib 0x82 at 0x72, TR attrib 0x8B at 0x92.
        assert_eq!(p[0x72], 0x82);
        assert_eq!(p[0x92], 0x8B);
        // Nothing beyond the FPU area is set.
        assert!(p[0x412..].iter().all(|&b| b == 0));
    }

    #[test]
    fn ec2_and_gce_differences() {
        let bsp = Vmsa::reset_state(BSP_EIP, 1, 0x1234, VmmType::Ec2);
        assert_eq!((bsp.cs.attrib, bsp.ss.attrib, bsp.tr.attrib, bsp.rdx, bsp.mxcsr), (0x9A, 0x92, 0x83, 0x600, 0));
        let ap = Vmsa::reset_state(0x80B004, 1, 0x1234, VmmType::Ec2);
        assert_eq!(ap.cs.attrib, 0x9B);
        let gce = Vmsa::reset_state(BSP_EIP, 1, 0x1234, VmmType::Gce);
        assert_eq!((gce.g_pat, gce.rdx, gce.x87_fcw), (0x0007_0106, 0x600, 0));
    }

    /// §8 intermediate values (O1, QEMU, EPYC-v4 = 0x00800F12, guest features 0x1).
    #[test]
    fn epyc_v4_vmsa_hashes_match_the_design_note() {
        let bsp = Vmsa::reset_state(BSP_EIP, 1, 0x0080_0F12, VmmType::Qemu).to_page();
        let ap = Vmsa::reset_state(0x80B004, 1, 0x0080_0F12, VmmType::Qemu).to_page();
        assert_eq!(
            hex::encode(sha384(&bsp)),
            "77920c4c629ff47e90c0e174fc1ad0eb6fa664f88cd4739488058a8c6cb1a77b3856f55378e9518d0da99452d51c553a"
        );
        assert_eq!(
            hex::encode(sha384(&ap)),
            "8413b852790765a310d95867a8b00bfca3a802b5a80830044b45e253fe96222657e11e53fcf63eb0e0afd722385bf7b4"
        );
    }

    /// The page `sev-snp-measure --mode snp:svsm --dump-vmsa` writes (0.0.13), byte for byte
    /// in every non-zero 16-byte row, for entry 0xFFBD_1234 and signature 0x00800F12.
    #[test]
    fn svsm_page_matches_the_dumped_vmsa() {
        let p = Vmsa::svsm_reset_state(0xFFBD_1234, 0x0080_0F12).to_page();
        let rows: &[(usize, [u8; 16])] = &[
            (0x000, [0x10, 0, 0x93, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x010, [0x08, 0, 0x9B, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x020, [0x10, 0, 0x93, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x030, [0x10, 0, 0x93, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x040, [0x10, 0, 0x93, 0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x050, [0, 0, 0x93, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x060, [0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x070, [0, 0, 0x82, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x080, [0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x090, [0, 0, 0x8B, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x0D0, [0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x140, [0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]),
            (0x150, [0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0]),
            (0x160, [0, 0x04, 0, 0, 0, 0, 0, 0, 0xF0, 0x0F, 0xFF, 0xFF, 0, 0, 0, 0]),
            (0x170, [0x02, 0, 0, 0, 0, 0, 0, 0, 0x34, 0x12, 0xBD, 0xFF, 0, 0, 0, 0]),
            (0x260, [0, 0, 0, 0, 0, 0, 0, 0, 0x06, 0x04, 0x07, 0, 0x06, 0x04, 0x07, 0]),
            (0x310, [0x12, 0x0F, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x3B0, [0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            (0x3E0, [0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0]),
            (0x400, [0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x1F, 0, 0, 0, 0, 0, 0]),
        ];
        let mut want = [0u8; PAGE_BYTES];
        for (off, row) in rows {
            want[*off..off + 16].copy_from_slice(row);
        }
        assert_eq!(p, want);
    }

    #[test]
    fn vmm_names_round_trip() {
        for v in [VmmType::Qemu, VmmType::Ec2, VmmType::Gce] {
            assert_eq!(VmmType::from_name(v.name()), Some(v));
        }
        assert_eq!(VmmType::from_name("qemu"), None);
    }
}
