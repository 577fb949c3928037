//! Parsing of OVMF / TDVF firmware images: everything the measurement code needs to know about
//! a firmware file, read from its bytes (never hard-coded per build).
//!
//! - [`footer`]: the GUIDed table at the end of the reset vector (`ResetVectorVtf0.asm`).
//! - [`fv`]: PI firmware volumes, FFS files, sections, and OVMF's LZMA-compressed PEIFV/DXEFV.

pub mod footer;
pub mod fv;
pub mod sev;
pub mod tdvf;

pub use footer::{FooterEntry, FooterTable};

/// Errors from firmware parsing. Every variant names the structure and the file offset, so a
/// user can tell a truncated download from a firmware flavour without the expected section.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The file is too short for a structure that must be there.
    #[error("firmware truncated: {what} needs {need} bytes at offset {offset:#x}, file has {have}")]
    Truncated { what: &'static str, offset: u64, need: u64, have: u64 },
    /// A field holds a value the format does not allow.
    #[error("firmware field {field} at offset {offset:#x}: {problem}")]
    Invalid { field: &'static str, offset: u64, problem: String },
    /// A structure the caller asked for is absent (e.g. no SEV metadata in a TDVF build).
    #[error("firmware has no {0}")]
    Missing(&'static str),
    /// Compressed data that does not decode.
    #[error("firmware compressed data at offset {offset:#x}: {problem}")]
    Decompress { offset: u64, problem: String },
    /// An error inside decompressed or nested data; `context` says where that data came from
    /// (offsets in `source` are relative to it).
    #[error("{context}: {source}")]
    Within { context: String, source: Box<Error> },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Read a little-endian `u16` at `offset`, or a [`Error::Truncated`] naming `what`.
pub(crate) fn read_u16(data: &[u8], offset: usize, what: &'static str) -> Result<u16> {
    read_array::<2>(data, offset, what).map(u16::from_le_bytes)
}

/// Read a little-endian `u32` at `offset`, or a [`Error::Truncated`] naming `what`.
pub(crate) fn read_u32(data: &[u8], offset: usize, what: &'static str) -> Result<u32> {
    read_array::<4>(data, offset, what).map(u32::from_le_bytes)
}

/// Read a little-endian `u64` at `offset`, or a [`Error::Truncated`] naming `what`.
pub(crate) fn read_u64(data: &[u8], offset: usize, what: &'static str) -> Result<u64> {
    read_array::<8>(data, offset, what).map(u64::from_le_bytes)
}

/// Borrow `len` bytes at `offset`, or a [`Error::Truncated`] naming `what`.
pub(crate) fn read_slice<'a>(
    data: &'a [u8],
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8]> {
    offset
        .checked_add(len)
        .and_then(|end| data.get(offset..end))
        .ok_or(Error::Truncated { what, offset: offset as u64, need: len as u64, have: data.len() as u64 })
}

pub(crate) fn read_array<const N: usize>(
    data: &[u8],
    offset: usize,
    what: &'static str,
) -> Result<[u8; N]> {
    let s = read_slice(data, offset, N, what)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}
