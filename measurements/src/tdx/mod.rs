//! Intel TDX launch measurements for QEMU + TDVF (OVMF) direct kernel boot: MRTD from the TDVF
//! metadata, RTMR0..3 from a versioned model of the events TDVF and the Linux EFI stub extend,
//! and parsing of TDX quotes to compare against.
//!
//! Algorithms and vectors: `shared/design/tdx-measure.md` (§2 algorithm, §5.2 vectors).
//!
//! - [`mrtd`]: `TDH.MEM.PAGE.ADD` / `TDH.MR.EXTEND` stream, [`PageAddOrder`].
//! - [`td_hob`]: the TD HOB QEMU builds (`hw/i386/tdvf-hob.c`) and TDVF measures.
//! - [`qemu`]: what the QEMU version changes ([`QemuModel`]): page order, kernel header patch.
//! - [`acpi`]: the fw_cfg ACPI blobs measured into RTMR0.
//! - [`rtmr`]: the event lists per register and [`OvmfEventModel`].
//! - [`quote`]: TDX quote v4/v5 header and TD report body.

pub mod acpi;
pub mod mrtd;
pub mod qemu;
pub mod quote;
pub mod rtmr;
pub mod td_hob;

pub use acpi::AcpiBlobs;
pub use mrtd::{mrtd, PageAddOrder};
pub use qemu::QemuModel;
pub use rtmr::{OvmfEventModel, TdxBoot, TdxMeasurement};

/// A SHA-384 digest or register value.
pub type Sha384 = [u8; 48];

/// Errors from computing TDX measurements.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Firmware(#[from] crate::ovmf::Error),
    #[error("kernel image: {0}")]
    Kernel(#[from] crate::pe::Error),
    #[error("kernel setup header field {field} at offset {offset:#x}: {problem}")]
    KernelHeader {
        field: &'static str,
        offset: u64,
        problem: String,
    },
    #[error("TDVF section {index}: {problem}")]
    Section { index: usize, problem: String },
    #[error(
        "memory size {0:#x} bytes is too small for a TD (need at least the TDVF ranges below it)"
    )]
    Memory(u64),
    #[error("OVMF event model {model}: {problem}")]
    Unsupported {
        model: &'static str,
        problem: String,
    },
}

/// `SHA384(data)` as an array.
pub fn sha384(data: &[u8]) -> Sha384 {
    use sha2::Digest;
    crate::hash::Sha384::digest(data).into()
}
