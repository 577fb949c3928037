//! `cvm_measurements`: predict, from bytes, the launch measurements that confidential-VM
//! hardware reports: AMD SEV/SEV-ES/SEV-SNP launch digests, Intel TDX MRTD and RTMR0-3, vTPM
//! PCRs, and the event logs that explain them.
//!
//! **Invariant:** this library is pure. It does no file, process, network or clock access:
//! callers (the `cvm-measure` CLI, `xtask`) read files and pass `&[u8]`.

pub mod guid;
pub mod hash;
pub mod ovmf;
pub mod snp;
pub mod eventlog;
pub mod initdata;
pub mod pe;
pub mod smbios;
pub mod tdx;
pub mod uefi;
pub mod vtpm;
