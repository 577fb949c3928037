//! `cvm-manifest`: the measurement manifest of an image build and its signature.
//!
//! - [`Manifest`] (`manifest.rs`): versioned schema (`schema_version` = [`SCHEMA_VERSION`]),
//!   artefacts by role with relative path, sha256 and size, pinned inputs, verity root hash,
//!   cmdline, initdata digest, per-shape TDX/SNP measurements and the image's vTPM PCRs with
//!   their events (checked: they replay to the PCRs); written as canonical JSON
//!   (`canonical.rs`: sorted keys, no clock time, no absolute paths).
//! - [`dsse`]: the in-toto Statement v1 about the manifest (subjects: the manifest file and every
//!   artefact; predicate: the manifest) in a DSSE envelope.
//! - [`sign`]: ECDSA P-256/SHA-256 keys (PKCS#8 / SPKI PEM), [`sign::sign`], and fail-closed
//!   [`sign::verify`] + [`sign::verify_artefacts`].
//!
//! **Invariant:** no file, process, network or clock access; callers read and write files.
//! Depends on nothing else in the workspace (`cvm-measure` and `xtask` depend on it).

pub mod canonical;
pub mod dsse;
mod manifest;
pub mod sign;

pub use manifest::{
    role, vtpm_bank_size, Artefact, ImageInfo, Input, Manifest, ManifestError, ShapeMeasurements,
    Verity, VtpmEvent, VtpmMeasurements, FILE_NAME, SCHEMA_VERSION, VTPM_BOOT_UEFI_DISK,
};
