//! vCPU signatures: the CPUID Fn0000_0001 EAX value QEMU writes into each VMSA's RDX, from the
//! AMD CPUID Specification (pub. 25481, "CPUID Fn0000_0001_EAX Family, Model, Stepping
//! Identifiers"), and the QEMU CPU models sev-snp-measure 0.0.13 accepts by name.

/// The 32-bit CPUID(1).EAX signature for a family, model and stepping:
/// `(ext_fam << 20) | (ext_model << 16) | (base_fam << 8) | (model_lo << 4) | stepping`, with
/// `base_fam = min(family, 0xF)` and `ext_fam = family - 0xF` above that.
pub const fn cpu_sig(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) =
        if family > 0xF { (0xF, (family - 0xF) & 0xFF) } else { (family, 0) };
    let model_low = model & 0xF;
    let model_high = (model >> 4) & 0xF;
    (family_high << 20) | (model_high << 16) | (family_low << 8) | (model_low << 4) | (stepping & 0xF)
}

/// A QEMU CPU model and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuType {
    /// QEMU `-cpu` name.
    pub name: &'static str,
    /// Family, model, stepping of the model (decimal, as QEMU's `builtin_x86_defs`).
    pub family_model_stepping: (u32, u32, u32),
}

impl CpuType {
    /// The CPUID(1).EAX signature.
    pub const fn sig(&self) -> u32 {
        let (f, m, s) = self.family_model_stepping;
        cpu_sig(f, m, s)
    }
}

const fn t(name: &'static str, f: u32, m: u32, s: u32) -> CpuType {
    CpuType { name, family_model_stepping: (f, m, s) }
}

/// Every CPU type sev-snp-measure 0.0.13 accepts for `--vcpu-type`, in its order (QEMU
/// `builtin_x86_defs` EPYC models and their versions).
pub const CPU_TYPES: &[CpuType] = &[
    t("EPYC", 23, 1, 2),
    t("EPYC-v1", 23, 1, 2),
    t("EPYC-v2", 23, 1, 2),
    t("EPYC-IBPB", 23, 1, 2),
    t("EPYC-v3", 23, 1, 2),
    t("EPYC-v4", 23, 1, 2),
    t("EPYC-Rome", 23, 49, 0),
    t("EPYC-Rome-v1", 23, 49, 0),
    t("EPYC-Rome-v2", 23, 49, 0),
    t("EPYC-Rome-v3", 23, 49, 0),
    t("EPYC-Milan", 25, 1, 1),
    t("EPYC-Milan-v1", 25, 1, 1),
    t("EPYC-Milan-v2", 25, 1, 1),
    t("EPYC-Genoa", 25, 17, 0),
    t("EPYC-Genoa-v1", 25, 17, 0),
    t("EPYC-Turin", 26, 0, 0),
];

/// Look a CPU type up by its exact (case-sensitive) name.
pub fn cpu_type(name: &str) -> Option<&'static CpuType> {
    CPU_TYPES.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_design_note() {
        let sig = |n| cpu_type(n).unwrap().sig();
        assert_eq!(sig("EPYC-v4"), 0x0080_0F12);
        assert_eq!(sig("EPYC-IBPB"), 0x0080_0F12);
        assert_eq!(sig("EPYC-Rome-v3"), 0x0083_0F10);
        assert_eq!(sig("EPYC-Milan"), 0x00A0_0F11);
        assert_eq!(sig("EPYC-Genoa-v1"), 0x00A1_0F10);
        assert_eq!(sig("EPYC-Turin"), 0x00B0_0F00);
        assert_eq!(cpu_type("epyc"), None);
        assert_eq!(CPU_TYPES.len(), 16);
    }

    #[test]
    fn formula_fields() {
        // family <= 0xF: no extended family; model and stepping masked to their nibbles.
        assert_eq!(cpu_sig(6, 0x55, 7), 0x0005_0657);
        assert_eq!(cpu_sig(0xF, 0, 0x1F), 0x0000_0F0F);
        // family 0x10 + 0xFF wraps the 8-bit extended family.
        assert_eq!(cpu_sig(0xF + 0x100, 0, 0), 0x0000_0F00);
        assert_eq!(cpu_sig(0x1A, 0x11, 0x2), 0x00B1_0F12);
    }
}
