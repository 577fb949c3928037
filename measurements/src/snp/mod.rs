//! AMD SEV, SEV-ES and SEV-SNP launch digests for QEMU/KVM (and EC2, GCE) + OVMF direct boot,
//! bit-for-bit as sev-snp-measure 0.0.13 computes them (`../shared/design/snp-measure.md` §2).
//!
//! - [`gctx`]: `PAGE_INFO` and the rolling SHA-384 launch digest (SNP ABI spec §8.17).
//! - [`vmsa`]: the initial VMSA page per vCPU and VMM flavour (APM vol. 2 table B-4).
//! - [`hashes`]: the kernel-hashes table QEMU builds for measured direct boot.
//! - [`cpu`]: vCPU signatures (CPUID(1).EAX) and the named QEMU EPYC models.
//! - [`launch`]: the per-mode pipelines, with a pre-parse / per-shape sweep API: the firmware
//!   is hashed once and each (vCPU count, signature, features) costs a few SHA-384 calls.
//! - [`svsm`]: `snp:svsm`, a Coconut SVSM binary loaded below OVMF (Coconut's QEMU fork).
//!
//! IGVM is not implemented.

pub mod cpu;
pub mod gctx;
pub mod hashes;
pub mod launch;
pub mod svsm;
pub mod vmsa;

pub use cpu::{cpu_sig, cpu_type, CpuType, CPU_TYPES};
pub use gctx::{Gctx, LaunchDigest, PageInfo, PageType};
pub use hashes::SevHashTable;
pub use launch::{
    launch_digest, seves_launch_digest, sev_launch_digest, snp_launch_digest, vmsas, LaunchParams, SevEsPrepared,
    SevFirmware, SevMode, SnpPrepared,
};
pub use svsm::{svsm_launch_digest, SvsmImage, SvsmPlacement, SvsmPrepared};
pub use vmsa::{Vmsa, VmmType, SVSM_SEV_FEATURES};

/// Errors computing an AMD launch digest. The first three are sev-snp-measure 0.0.13's own
/// refusals (same wording, so scripts matching its messages keep working).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// SNP with a kernel, but the firmware has no `SNP_KERNEL_HASHES` metadata section
    /// (an OvmfPkgX64 build, e.g. Debian's; use an AmdSevX64 build).
    #[error("Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section")]
    KernelWithoutSnpKernelHashesSection,
    /// SEV / SEV-ES with a kernel, but the hash-table block is absent or at GPA 0.
    #[error("Kernel specified but OVMF doesn't support kernel/initrd/cmdline measurement")]
    KernelHashesUnsupported,
    /// A metadata section type this implementation (and sev-snp-measure 0.0.13) does not know.
    #[error("unknown OVMF metadata section type {section_type:#x} (descriptor {index} at file offset {desc_offset:#x})")]
    UnknownSectionType { index: usize, section_type: u32, desc_offset: u64 },
    /// SEV-ES / SNP need the AP reset address.
    #[error("Can't find SEV_ES_RESET_BLOCK_GUID entry in OVMF table")]
    MissingResetBlock,
    /// The reset block holds EIP 0, so no AP VMSA can be built (sev-snp-measure crashes here).
    #[error("SEV-ES reset block holds AP EIP 0: cannot build VMSAs for {vcpus} vCPUs")]
    ZeroApEip { vcpus: u32 },
    /// SNP with a kernel: the firmware has no `SEV_HASH_TABLE_RV_GUID` entry to place the table.
    #[error("Can't find SEV_HASH_TABLE_RV_GUID entry in OVMF table")]
    MissingHashTableBlock,
    /// The padded hash table at the hash-block GPA would cross the end of its page.
    #[error("kernel hashes table at GPA {gpa:#x} does not fit in its 4 KiB page")]
    HashTableCrossesPage { gpa: u32 },
    /// The `SNP_KERNEL_HASHES` section must be exactly one page when a kernel is measured.
    #[error("SNP_KERNEL_HASHES section {index} (file offset {desc_offset:#x}) has size {size:#x}, expected 0x1000")]
    KernelHashesSectionSize { index: usize, size: u32, desc_offset: u64 },
    /// A page-granular section whose size is not a multiple of 4 KiB.
    #[error("metadata section {index} (file offset {desc_offset:#x}) has size {size:#x}, not a multiple of 4 KiB")]
    SectionSizeNotPageMultiple { index: usize, size: u32, desc_offset: u64 },
    /// The firmware must be a whole number of 4 KiB pages to be measured page by page.
    #[error("firmware size {size} is not a multiple of 4096")]
    FirmwareSizeNotPageMultiple { size: u64 },
    /// The firmware must fit below 4 GiB.
    #[error("firmware size {size} does not fit below 4 GiB")]
    FirmwareTooLarge { size: u64 },
    /// The firmware could not be parsed.
    #[error(transparent)]
    Firmware(#[from] crate::ovmf::Error),
    /// `snp:svsm`: the SVSM binary has no `SVSM_INFO_GUID` footer entry (its entry point);
    /// sev-snp-measure's wording.
    #[error("Can't find SVSM_INFO_GUID entry in SVSM table")]
    MissingSvsmInfo,
    /// `snp:svsm`: the SVSM binary's footer table or SEV metadata is malformed.
    #[error("SVSM: {0}")]
    Svsm(crate::ovmf::Error),
    /// `snp:svsm`: the SVSM must be a whole number of 4 KiB pages to be measured page by page.
    #[error("SVSM size {size} is not a multiple of 4096")]
    SvsmSizeNotPageMultiple { size: u64 },
    /// `snp:svsm`: OVMF GPA − vars size − SVSM size is below 0 (sev-snp-measure fails with an
    /// `OverflowError` on the negative GPA).
    #[error("SVSM of {svsm_size:#x} bytes cannot end {vars_size:#x} bytes (vars size) below OVMF at GPA {ovmf_gpa:#x}: it would start below GPA 0")]
    SvsmBelowZero { ovmf_gpa: u64, vars_size: u64, svsm_size: u64 },
}

/// Result with this module's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
