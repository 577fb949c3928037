//! PI firmware volumes (PI spec 1.8 vol. 3 ch. 2-3; edk2 `MdePkg/Include/Pi/PiFirmwareVolume.h`,
//! `PiFirmwareFile.h`): a strict reader of firmware volumes, their FFS files and section streams,
//! and the LZMA-compressed GUID-defined section OVMF packs its PEI and DXE volumes into.
//!
//! - [`FirmwareVolume::parse`]: `EFI_FIRMWARE_VOLUME_HEADER` (`_FVH`, revision 2, block map,
//!   16-bit header checksum), the optional extended header (`FvName`), then the 8-byte aligned
//!   FFS files up to the first erased header. Every file header is checked: 8-bit header checksum,
//!   the file checksum (or `FFS_FIXED_CHECKSUM` 0xAA), size (24-bit, or the 64-bit
//!   `ExtendedSize` of `FFS_ATTRIB_LARGE_FILE`, only in an FFS3 volume), state bits (read with the
//!   volume's erase polarity).
//! - [`parse_sections`]: a section stream (4-byte aligned `EFI_COMMON_SECTION_HEADER`s, 24-bit
//!   size or the 32-bit extended size when the 24 bits are `0xFFFFFF`);
//!   [`Section::guid_defined`] reads `EFI_GUID_DEFINED_SECTION`.
//! - [`lzma_decompress`]: edk2's `LzmaCompress` format (`gLzmaCustomDecompressGuid`): 5 bytes
//!   of LZMA properties, the uncompressed size as a little-endian `u64`, the stream; the size is
//!   capped ([`MAX_DECOMPRESSED`]) before anything is decoded.
//! - [`OvmfMemFvs::parse`]: OVMF's `FVMAIN_COMPACT` (`OvmfPkg/OvmfPkgX64.fdf`): one
//!   `EFI_FV_FILETYPE_FIRMWARE_VOLUME_IMAGE` file holding one LZMA GUID-defined section whose
//!   content is a section stream with two `EFI_SECTION_FIRMWARE_VOLUME_IMAGE` sections, PEIFV and
//!   DXEFV, as SEC (`OvmfPkg/Sec/SecMain.c` `DecompressMemFvs`) copies them to RAM.
//!
//! Offsets in errors are offsets in the buffer given to the parser; errors inside decompressed
//! data are wrapped in [`Error::Within`], which names the section they came from.

use crate::uefi::load_option::EfiLoadOption;
use super::{read_array, read_slice, read_u16, read_u32, read_u64, Error, Result};
use crate::guid::EfiGuid;

/// `EFI_FIRMWARE_FILE_SYSTEM2_GUID`.
pub const FFS2_GUID: EfiGuid = EfiGuid::from_str_const("8c8ce578-8a3d-4f1c-9935-896185c32dd3");
/// `EFI_FIRMWARE_FILE_SYSTEM3_GUID`: like FFS2, and large files (`FFS_ATTRIB_LARGE_FILE`) allowed.
pub const FFS3_GUID: EfiGuid = EfiGuid::from_str_const("5473c07a-3dcb-4dca-bd6f-1e9689e7349a");
/// `gLzmaCustomDecompressGuid`: a GUID-defined section in edk2's LZMA format.
pub const LZMA_CUSTOM_DECOMPRESS_GUID: EfiGuid =
    EfiGuid::from_str_const("ee4e5898-3914-4259-9d6e-dc7bd79403cf");

/// The largest decompressed section accepted (OVMF's PEIFV + DXEFV are 15.4 MiB).
pub const MAX_DECOMPRESSED: usize = 64 << 20;

/// `EFI_FVH_SIGNATURE`.
const FVH_SIGNATURE: &[u8; 4] = b"_FVH";
/// `EFI_FVH_REVISION`.
const FVH_REVISION: u8 = 2;
/// `EFI_FVB2_ERASE_POLARITY`.
const FVB2_ERASE_POLARITY: u32 = 0x800;
/// Bytes of `EFI_FIRMWARE_VOLUME_HEADER` before the block map.
const FVH_FIXED: usize = 0x38;
/// `EFI_FIRMWARE_VOLUME_EXT_HEADER`: `FvName` + `ExtHeaderSize`.
const FV_EXT_HEADER: usize = 20;

/// `FFS_ATTRIB_LARGE_FILE`.
pub const FFS_ATTRIB_LARGE_FILE: u8 = 0x01;
/// `FFS_ATTRIB_CHECKSUM`.
pub const FFS_ATTRIB_CHECKSUM: u8 = 0x40;
/// `FFS_FIXED_CHECKSUM`: `IntegrityCheck.Checksum.File` of a file without `FFS_ATTRIB_CHECKSUM`.
const FFS_FIXED_CHECKSUM: u8 = 0xAA;
const FFS_HEADER: usize = 24;
const FFS_HEADER2: usize = 32;

/// `EFI_FV_FILETYPE_PEI_CORE`.
pub const FV_FILETYPE_PEI_CORE: u8 = 0x04;
/// `EFI_FV_FILETYPE_PEIM`.
pub const FV_FILETYPE_PEIM: u8 = 0x06;
/// `EFI_FV_FILETYPE_FIRMWARE_VOLUME_IMAGE`.
pub const FV_FILETYPE_FIRMWARE_VOLUME_IMAGE: u8 = 0x0B;
/// `EFI_FV_FILETYPE_FFS_PAD`.
pub const FV_FILETYPE_FFS_PAD: u8 = 0xF0;

/// `EFI_SECTION_GUID_DEFINED`.
pub const SECTION_GUID_DEFINED: u8 = 0x02;
/// `EFI_SECTION_PE32`.
pub const SECTION_PE32: u8 = 0x10;
/// `EFI_SECTION_TE`.
pub const SECTION_TE: u8 = 0x12;
/// `EFI_SECTION_USER_INTERFACE`.
pub const SECTION_USER_INTERFACE: u8 = 0x15;
/// `EFI_SECTION_FIRMWARE_VOLUME_IMAGE`.
pub const SECTION_FIRMWARE_VOLUME_IMAGE: u8 = 0x17;

/// File states (`EFI_FFS_FILE_STATE` bits), the highest set bit being the state.
const FILE_HEADER_CONSTRUCTION: u8 = 0x01;
const FILE_HEADER_VALID: u8 = 0x02;
const FILE_DATA_VALID: u8 = 0x04;
const FILE_MARKED_FOR_UPDATE: u8 = 0x08;
const FILE_DELETED: u8 = 0x10;
const FILE_HEADER_INVALID: u8 = 0x20;

fn invalid(field: &'static str, offset: usize, problem: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        offset: offset as u64,
        problem: problem.into(),
    }
}

/// `Error::Truncated`: `what` needs `need` bytes at `off` of `buf` (reported at `base + off`).
fn cut(what: &'static str, buf: &[u8], off: usize, base: usize, need: usize) -> Error {
    Error::Truncated {
        what,
        offset: (base + off) as u64,
        need: need as u64,
        have: buf.len().saturating_sub(off) as u64,
    }
}

fn align_up(x: usize, a: usize) -> Option<usize> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}

/// One firmware volume: its bytes (`FvLength` of them) and its live files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareVolume<'a> {
    /// The whole volume, header included.
    pub bytes: &'a [u8],
    pub file_system: EfiGuid,
    pub attributes: u32,
    pub header_length: usize,
    /// `FvName` of the extended header, if there is one.
    pub name: Option<EfiGuid>,
    /// The files whose state is valid (deleted and header-invalid files are skipped), in order.
    pub files: Vec<FfsFile<'a>>,
}

/// One FFS file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfsFile<'a> {
    /// Offset of the file header in the volume.
    pub offset: usize,
    pub name: EfiGuid,
    pub file_type: u8,
    pub attributes: u8,
    /// 24, or 32 for a large file.
    pub header_len: usize,
    /// The file's content after the header (a section stream for most file types).
    pub data: &'a [u8],
}

impl<'a> FfsFile<'a> {
    /// Offset of the file's data in the volume.
    pub fn data_offset(&self) -> usize {
        self.offset + self.header_len
    }

    /// The file's sections (offsets relative to the volume).
    pub fn sections(&self) -> Result<Vec<Section<'a>>> {
        parse_sections(self.data, self.data_offset())
    }
}

impl<'a> FirmwareVolume<'a> {
    /// Parse the volume at the start of `data` (`base`: its offset in the caller's buffer, for
    /// error messages). `data` may extend past the volume.
    pub fn parse(data: &'a [u8], base: usize) -> Result<FirmwareVolume<'a>> {
        let at = |o: usize| base + o;
        let bad = |field, o: usize, p: String| invalid(field, at(o), p);
        let trunc = |e: Error| match e {
            Error::Truncated {
                what,
                offset,
                need,
                have,
            } => Error::Truncated {
                what,
                offset: offset + base as u64,
                need,
                have,
            },
            e => e,
        };
        let header = read_slice(data, 0, FVH_FIXED, "EFI_FIRMWARE_VOLUME_HEADER").map_err(trunc)?;
        if &header[0x28..0x2C] != FVH_SIGNATURE {
            return Err(bad("FV Signature", 0x28, "not \"_FVH\"".into()));
        }
        let file_system = EfiGuid(read_array::<16>(header, 0x10, "FileSystemGuid")?);
        let fv_length = read_u64(header, 0x20, "FvLength")?;
        let attributes = read_u32(header, 0x2C, "Attributes")?;
        let header_length = usize::from(read_u16(header, 0x30, "HeaderLength")?);
        let ext_offset = usize::from(read_u16(header, 0x34, "ExtHeaderOffset")?);
        let revision = header[0x37];
        if revision != FVH_REVISION {
            return Err(bad("FV Revision", 0x37, format!("{revision}, expected 2")));
        }
        if fv_length > data.len() as u64 {
            return Err(Error::Truncated {
                what: "firmware volume (FvLength)",
                offset: base as u64,
                need: fv_length,
                have: data.len() as u64,
            });
        }
        let len = fv_length as usize;
        if header_length < FVH_FIXED + 8 || header_length % 2 != 0 || header_length > len {
            return Err(bad(
                "FV HeaderLength",
                0x30,
                format!("{header_length:#x} (volume of {len:#x} bytes)"),
            ));
        }
        let bytes = &data[..len];
        // Block map: (NumBlocks, Length) pairs ending with (0, 0), which ends the header.
        let mut off = FVH_FIXED;
        let mut total: u64 = 0;
        loop {
            let n = read_u32(bytes, off, "FV BlockMap NumBlocks").map_err(trunc)?;
            let l = read_u32(bytes, off + 4, "FV BlockMap Length").map_err(trunc)?;
            off += 8;
            if n == 0 && l == 0 {
                break;
            }
            if n == 0 || l == 0 {
                return Err(bad("FV BlockMap", off - 8, format!("entry ({n}, {l:#x})")));
            }
            total = total.saturating_add(u64::from(n) * u64::from(l));
            if off + 8 > header_length {
                return Err(bad(
                    "FV BlockMap",
                    off,
                    "no (0, 0) terminator within HeaderLength".into(),
                ));
            }
        }
        if off != header_length {
            return Err(bad(
                "FV HeaderLength",
                0x30,
                format!("{header_length:#x}, the block map ends at {off:#x}"),
            ));
        }
        if total != fv_length {
            return Err(bad(
                "FV BlockMap",
                FVH_FIXED,
                format!("blocks cover {total:#x} bytes, FvLength is {fv_length:#x}"),
            ));
        }
        let sum = bytes[..header_length].chunks_exact(2).fold(0u16, |s, c| {
            s.wrapping_add(u16::from_le_bytes([c[0], c[1]]))
        });
        if sum != 0 {
            return Err(bad(
                "FV Checksum",
                0x32,
                format!("the header's 16-bit words sum to {sum:#06x}, not 0"),
            ));
        }
        let (name, files_at) = if ext_offset == 0 {
            (None, header_length)
        } else {
            if ext_offset < header_length {
                return Err(bad(
                    "FV ExtHeaderOffset",
                    0x34,
                    format!("{ext_offset:#x} is inside the header ({header_length:#x} bytes)"),
                ));
            }
            let ext = read_slice(
                bytes,
                ext_offset,
                FV_EXT_HEADER,
                "EFI_FIRMWARE_VOLUME_EXT_HEADER",
            )
            .map_err(trunc)?;
            let name = EfiGuid(read_array::<16>(ext, 0, "FvName")?);
            let size = read_u32(ext, 16, "ExtHeaderSize")? as usize;
            if size < FV_EXT_HEADER || ext_offset + size > len {
                return Err(bad(
                    "FV ExtHeaderSize",
                    ext_offset + 16,
                    format!("{size:#x} at {ext_offset:#x} in a volume of {len:#x} bytes"),
                ));
            }
            (Some(name), ext_offset + size)
        };
        let polarity = attributes & FVB2_ERASE_POLARITY != 0;
        let large_ok = file_system == FFS3_GUID;
        let files = if file_system == FFS2_GUID || file_system == FFS3_GUID {
            parse_files(bytes, files_at, polarity, large_ok, base)?
        } else {
            Vec::new()
        };
        Ok(FirmwareVolume {
            bytes,
            file_system,
            attributes,
            header_length,
            name,
            files,
        })
    }

    /// `EFI_FVB2_ERASE_POLARITY`: erased bytes are 0xFF (else 0x00).
    pub fn erase_polarity(&self) -> bool {
        self.attributes & FVB2_ERASE_POLARITY != 0
    }

    /// The files of type `file_type`.
    pub fn files_of_type(&self, file_type: u8) -> impl Iterator<Item = &FfsFile<'a>> {
        self.files.iter().filter(move |f| f.file_type == file_type)
    }

    /// The file named `name`, if any.
    pub fn file(&self, name: &EfiGuid) -> Option<&FfsFile<'a>> {
        self.files.iter().find(|f| &f.name == name)
    }
}

fn parse_files<'a>(
    fv: &'a [u8],
    start: usize,
    polarity: bool,
    large_ok: bool,
    base: usize,
) -> Result<Vec<FfsFile<'a>>> {
    let erased = if polarity { 0xFF } else { 0x00 };
    let mut files = Vec::new();
    let mut off = align_up(start, 8).unwrap_or(usize::MAX);
    while off.checked_add(FFS_HEADER).is_some_and(|e| e <= fv.len()) {
        let h = &fv[off..off + FFS_HEADER];
        if h.iter().all(|&b| b == erased) {
            break;
        }
        let attributes = h[19];
        let large = attributes & FFS_ATTRIB_LARGE_FILE != 0;
        let (size, header_len) = if large {
            if !large_ok {
                return Err(invalid(
                    "FFS Attributes",
                    base + off + 19,
                    "FFS_ATTRIB_LARGE_FILE in a volume that is not FFS3",
                ));
            }
            let ext = read_u64(fv, off + FFS_HEADER, "FFS ExtendedSize")
                .map_err(|_| cut("EFI_FFS_FILE_HEADER2", fv, off, base, FFS_HEADER2))?;
            (ext, FFS_HEADER2)
        } else {
            (
                u64::from(u32::from_le_bytes([h[20], h[21], h[22], 0])),
                FFS_HEADER,
            )
        };
        let end = (off as u64).saturating_add(size);
        if size < header_len as u64 || end > fv.len() as u64 {
            return Err(invalid(
                "FFS Size",
                base + off + if large { FFS_HEADER } else { 20 },
                format!(
                    "{size:#x} (header {header_len} bytes, {:#x} bytes left in the volume)",
                    fv.len() - off
                ),
            ));
        }
        let end = end as usize;
        // Header checksum: the header with State and IntegrityCheck.File taken as 0 sums to 0.
        let hdr = &fv[off..off + header_len];
        let sum = hdr
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 17 && *i != 23)
            .fold(0u8, |s, (_, &b)| s.wrapping_add(b));
        if sum != 0 {
            return Err(invalid(
                "FFS IntegrityCheck.Checksum.Header",
                base + off + 16,
                format!("the header sums to {sum:#04x}, not 0"),
            ));
        }
        let raw_state = h[23];
        let state = if polarity { !raw_state } else { raw_state };
        let top = (0..8).rev().map(|b| 1u8 << b).find(|b| state & b != 0);
        match top {
            Some(FILE_DATA_VALID) | Some(FILE_MARKED_FOR_UPDATE) => {}
            Some(FILE_DELETED) | Some(FILE_HEADER_INVALID) => {
                off = align_up(end, 8).unwrap_or(usize::MAX);
                continue;
            }
            Some(FILE_HEADER_CONSTRUCTION) | Some(FILE_HEADER_VALID) | None | Some(_) => {
                return Err(invalid(
                    "FFS State",
                    base + off + 23,
                    format!("{raw_state:#04x}: the file is not complete"),
                ));
            }
        }
        let data = &fv[off + header_len..end];
        let file_sum = h[17];
        if attributes & FFS_ATTRIB_CHECKSUM != 0 {
            let s = data.iter().fold(file_sum, |s, &b| s.wrapping_add(b));
            if s != 0 {
                return Err(invalid(
                    "FFS IntegrityCheck.Checksum.File",
                    base + off + 17,
                    format!("the data and checksum sum to {s:#04x}, not 0"),
                ));
            }
        } else if file_sum != FFS_FIXED_CHECKSUM {
            return Err(invalid(
                "FFS IntegrityCheck.Checksum.File",
                base + off + 17,
                format!("{file_sum:#04x} without FFS_ATTRIB_CHECKSUM, expected 0xaa"),
            ));
        }
        files.push(FfsFile {
            offset: off,
            name: EfiGuid(h[..16].try_into().expect("16 bytes")),
            file_type: h[18],
            attributes,
            header_len,
            data,
        });
        off = align_up(end, 8).unwrap_or(usize::MAX);
    }
    Ok(files)
}

/// The volumes of a flash image laid out back to back from offset 0 (a unified `OVMF.fd`: NV
/// store, FVMAIN_COMPACT, SECFV), with their offsets.
pub fn volumes(fd: &[u8]) -> Result<Vec<(usize, FirmwareVolume<'_>)>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < fd.len() {
        let fv = FirmwareVolume::parse(&fd[off..], off)?;
        let len = fv.bytes.len();
        if len == 0 {
            return Err(invalid("FvLength", off + 0x20, "0"));
        }
        out.push((off, fv));
        off += len;
    }
    Ok(out)
}

/// One section of a section stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// Offset of the section header (relative to what [`parse_sections`] was given as base).
    pub offset: usize,
    pub section_type: u8,
    /// 4, or 8 with the extended size.
    pub header_len: usize,
    /// The section after its common header.
    pub body: &'a [u8],
}

/// An `EFI_GUID_DEFINED_SECTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuidDefinedSection<'a> {
    pub guid: EfiGuid,
    pub attributes: u16,
    /// Offset of `data` in the section's buffer (as for [`Section::offset`]).
    pub data_offset: usize,
    /// The section's data (from `DataOffset` to the end of the section).
    pub data: &'a [u8],
}

impl<'a> Section<'a> {
    /// Read the section as `EFI_GUID_DEFINED_SECTION` (type 0x02).
    pub fn guid_defined(&self) -> Result<GuidDefinedSection<'a>> {
        if self.section_type != SECTION_GUID_DEFINED {
            return Err(invalid(
                "section Type",
                self.offset + 3,
                format!("{:#04x}, not EFI_SECTION_GUID_DEFINED", self.section_type),
            ));
        }
        let b = self.body;
        let here = self.offset + self.header_len;
        let fixed = read_slice(b, 0, 20, "EFI_GUID_DEFINED_SECTION")
            .map_err(|_| cut("EFI_GUID_DEFINED_SECTION", b, 0, here, 20))?;
        let guid = EfiGuid(read_array::<16>(fixed, 0, "SectionDefinitionGuid")?);
        let data_offset = usize::from(read_u16(fixed, 16, "DataOffset")?);
        let attributes = read_u16(fixed, 18, "Attributes")?;
        let section_len = self.header_len + b.len();
        if data_offset < self.header_len + 20 || data_offset > section_len {
            return Err(invalid(
                "EFI_GUID_DEFINED_SECTION DataOffset",
                here + 16,
                format!("{data_offset:#x} in a section of {section_len:#x} bytes"),
            ));
        }
        Ok(GuidDefinedSection {
            guid,
            attributes,
            data_offset: self.offset + data_offset,
            data: &b[data_offset - self.header_len..],
        })
    }
}

/// Parse a section stream (`base`: the stream's offset, added to offsets in results and
/// errors). Sections are 4-byte aligned from the start of the stream.
pub fn parse_sections(stream: &[u8], base: usize) -> Result<Vec<Section<'_>>> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < stream.len() {
        let h = read_slice(stream, off, 4, "EFI_COMMON_SECTION_HEADER")
            .map_err(|_| cut("EFI_COMMON_SECTION_HEADER", stream, off, base, 4))?;
        let size24 = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        let (size, header_len) = if size24 == 0x00FF_FFFF {
            let ext = read_u32(stream, off + 4, "section ExtendedSize")
                .map_err(|_| cut("EFI_COMMON_SECTION_HEADER2", stream, off, base, 8))?;
            (ext as usize, 8)
        } else {
            (size24, 4)
        };
        if size < header_len || off.checked_add(size).is_none_or(|e| e > stream.len()) {
            return Err(invalid(
                "section Size",
                base + off + if header_len == 8 { 4 } else { 0 },
                format!(
                    "{size:#x} (header {header_len} bytes, {:#x} bytes left in the stream)",
                    stream.len() - off
                ),
            ));
        }
        out.push(Section {
            offset: base + off,
            section_type: h[3],
            header_len,
            body: &stream[off + header_len..off + size],
        });
        off = match align_up(off + size, 4) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(out)
}

/// Decompress edk2's LZMA format: 5 bytes of properties, the uncompressed size (`u64` LE), the
/// stream. Sizes over `cap` are refused before decoding, and the output never grows past it.
/// `offset`: where `data` is, for errors.
pub fn lzma_decompress(data: &[u8], offset: usize, cap: usize) -> Result<Vec<u8>> {
    let size = read_u64(data, 5, "LZMA uncompressed size").map_err(|_| {
        cut(
            "LZMA header (properties + uncompressed size)",
            data,
            0,
            offset,
            13,
        )
    })?;
    if size > cap as u64 {
        return Err(invalid(
            "LZMA uncompressed size",
            offset + 5,
            format!(
                "{size:#x} bytes{}: over the cap of {cap:#x}",
                if size == u64::MAX {
                    " (unknown, end marker)"
                } else {
                    ""
                }
            ),
        ));
    }
    // Reserve for a plausible ratio only: a forged size costs nothing until data decodes.
    let mut out = CappedWriter {
        buf: Vec::with_capacity((size as usize).min(data.len().saturating_mul(32))),
        cap: size as usize,
    };
    let opts = lzma_rs::decompress::Options {
        unpacked_size: lzma_rs::decompress::UnpackedSize::ReadFromHeader,
        memlimit: Some(cap),
        allow_incomplete: false,
    };
    let mut input = data;
    lzma_rs::lzma_decompress_with_options(&mut input, &mut out, &opts).map_err(|e| {
        Error::Decompress {
            offset: offset as u64,
            problem: e.to_string(),
        }
    })?;
    if out.buf.len() as u64 != size {
        return Err(Error::Decompress {
            offset: offset as u64,
            problem: format!("{} bytes decoded, the header says {size}", out.buf.len()),
        });
    }
    Ok(out.buf)
}

/// A `Vec` writer that refuses to grow past `cap`.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.cap {
            return Err(std::io::Error::other("more output than the declared size"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// OVMF's memory firmware volumes: the content of `FVMAIN_COMPACT`'s LZMA section, with where
/// PEIFV and DXEFV are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfMemFvs {
    /// The decompressed section stream.
    pub decompressed: Vec<u8>,
    /// PEIFV: range in `decompressed` (its `FvLength` bytes).
    pub peifv: std::ops::Range<usize>,
    /// DXEFV: range in `decompressed`.
    pub dxefv: std::ops::Range<usize>,
    /// Offset in the flash image of the GUID-defined section's data.
    pub compressed_at: usize,
}

impl OvmfMemFvs {
    /// Find and decompress FVMAIN_COMPACT in a flash image (`OVMF.fd` or `OVMF_CODE.fd`), and
    /// check that PEIFV and DXEFV parse as volumes.
    pub fn parse(fd: &[u8]) -> Result<OvmfMemFvs> {
        let mut found = Vec::new();
        for (fv_off, fv) in volumes(fd)? {
            for f in fv.files_of_type(FV_FILETYPE_FIRMWARE_VOLUME_IMAGE) {
                for s in f.sections()? {
                    if s.section_type != SECTION_GUID_DEFINED {
                        continue;
                    }
                    let g = s.guid_defined()?;
                    if g.guid == LZMA_CUSTOM_DECOMPRESS_GUID {
                        found.push((fv_off + g.data_offset, g.data));
                    }
                }
            }
        }
        let (at, data) = match found.as_slice() {
            [one] => *one,
            [] => return Err(Error::Missing(
                "FVMAIN_COMPACT (a firmware-volume-image file with an LZMA GUID-defined section)",
            )),
            more => {
                return Err(invalid(
                    "FVMAIN_COMPACT",
                    more[1].0,
                    format!(
                        "{} LZMA-compressed firmware-volume-image files, expected one",
                        more.len()
                    ),
                ))
            }
        };
        let decompressed = lzma_decompress(data, at, MAX_DECOMPRESSED)?;
        let within = |e: Error| Error::Within {
            context: format!("in the LZMA section decompressed from offset {at:#x}"),
            source: Box::new(e),
        };
        let fvs: Vec<std::ops::Range<usize>> = parse_sections(&decompressed, 0)
            .map_err(within)?
            .iter()
            .filter(|s| s.section_type == SECTION_FIRMWARE_VOLUME_IMAGE)
            .map(|s| {
                let start = s.offset + s.header_len;
                let fv = FirmwareVolume::parse(s.body, start)?;
                Ok(start..start + fv.bytes.len())
            })
            .collect::<Result<_>>()
            .map_err(within)?;
        let [peifv, dxefv] = <[_; 2]>::try_from(fvs).map_err(|v| {
            within(invalid(
                "EFI_SECTION_FIRMWARE_VOLUME_IMAGE",
                0,
                format!(
                    "{} firmware volume sections, expected 2 (PEIFV, DXEFV)",
                    v.len()
                ),
            ))
        })?;
        Ok(OvmfMemFvs {
            decompressed,
            peifv,
            dxefv,
            compressed_at: at,
        })
    }

    pub fn peifv(&self) -> &[u8] {
        &self.decompressed[self.peifv.clone()]
    }

    pub fn dxefv(&self) -> &[u8] {
        &self.decompressed[self.dxefv.clone()]
    }

    /// Whether the firmware's `QemuKernelLoaderFsDxe` reads QEMU's named `etc/boot/*` fw_cfg
    /// blobs (edk2-stable202502 on): such firmware takes the kernel from `etc/boot/kernel`,
    /// which QEMU ≥ 10.0 publishes *without* the setup-header patches it writes into the
    /// traditional kernel blob, so the kernel it measures is the file itself. Read from the
    /// driver's PE32 image: its `QemuKernelFetchNamedBlobs` compares fw_cfg file names with the
    /// string `"etc/boot/"`. The driver is looked for in both volumes of `FVMAIN_COMPACT`
    /// (OvmfPkgX64 and AmdSev: PEIFV + DXEFV; IntelTdx: DXEFV + NCCFV). Error when it is in
    /// neither (firmware without direct kernel boot).
    pub fn reads_qemu_named_blobs(&self) -> Result<bool> {
        let reads = self.with_file(&QEMU_KERNEL_LOADER_FS_DXE, |driver, _| {
            Ok(driver.sections()?.iter().any(|s| {
                s.section_type == SECTION_PE32
                    && s.body.windows(NAMED_BLOB_PREFIX.len()).any(|w| w == NAMED_BLOB_PREFIX)
            }))
        })?;
        reads.ok_or(Error::Missing("QemuKernelLoaderFsDxe (806040ca-dad9-4978-a3b4-2d2ab0c8a48f) in FVMAIN_COMPACT"))
    }

    /// Whether the firmware measures the SMBIOS table at ReadyToBoot (it carries
    /// SmbiosMeasurementDxe in either volume of `FVMAIN_COMPACT`): the mark of the edk2 ≥
    /// stable202505 event model (docs/tdx-ovmf-202505.md).
    pub fn measures_smbios(&self) -> Result<bool> {
        Ok(self.with_file(&SMBIOS_MEASUREMENT_DXE, |_, _| Ok(()))?.is_some())
    }

    /// The BIOS Information strings SmbiosPlatformDxe puts in its default Type 0 (read from its
    /// PE image, [`crate::smbios::OvmfType0::from_smbios_platform_dxe`]); `None` when the
    /// firmware has no SmbiosPlatformDxe.
    pub fn smbios_type0(&self) -> Result<Option<crate::smbios::OvmfType0>> {
        self.with_file(&SMBIOS_PLATFORM_DXE, |f, _| {
            let pe = f.sections()?.into_iter().find(|s| s.section_type == SECTION_PE32);
            let pe = pe.ok_or(Error::Missing("a PE32 section in SmbiosPlatformDxe"))?;
            crate::smbios::OvmfType0::from_smbios_platform_dxe(pe.body)
                .map_err(|e| Error::Within { context: "SmbiosPlatformDxe".into(), source: Box::new(Error::Invalid { field: "default Type 0 strings", offset: 0, problem: e.to_string() }) })
        })
    }

    /// The boot option edk2's `BmRegisterBootManagerMenu` registers for the application
    /// `file` of this firmware: `Fv(<name of the volume holding it>)/FvFile(file)`, described by
    /// the file's user-interface section. This is how Boot0000 comes about (UiApp before
    /// edk2-stable202505, BootManagerMenuApp from then on); `tdx::OvmfEventModel::boot_options_of`
    /// builds the TDX boot options with it. `None` when neither volume has the file.
    pub fn boot_manager_menu_option(&self, attributes: u32, file: &EfiGuid) -> Result<Option<EfiLoadOption>> {
        self.with_file(file, |f, fv_name| {
            let fv_name = fv_name.ok_or(Error::Missing("an FvName (extended header) on the volume holding the application"))?;
            let ui = f.sections()?.into_iter().find(|s| s.section_type == SECTION_USER_INTERFACE);
            let ui = ui.ok_or(Error::Missing("a user-interface section in the application's file"))?;
            let units: Vec<u16> = ui.body.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
            let description = String::from_utf16(&units).map_err(|_| Error::Missing("UTF-16 text in the user-interface section"))?;
            Ok(EfiLoadOption::fv_application_in(fv_name, attributes, &description, *file))
        })
    }

    /// `f(file, name of its volume)` for the first file named `guid` in the volumes of
    /// `FVMAIN_COMPACT` (first, then second); `None` when neither has it.
    fn with_file<T>(&self, guid: &EfiGuid, f: impl FnOnce(&FfsFile<'_>, Option<EfiGuid>) -> Result<T>) -> Result<Option<T>> {
        for (name, range) in [("first", &self.peifv), ("second", &self.dxefv)] {
            let fv = FirmwareVolume::parse(&self.decompressed[range.clone()], 0).map_err(|e| Error::Within {
                context: format!("the {name} volume of FVMAIN_COMPACT"),
                source: Box::new(e),
            })?;
            if let Some(file) = fv.file(guid) {
                return f(file, fv.name).map(Some);
            }
        }
        Ok(None)
    }
}

/// `OvmfPkg/SmbiosPlatformDxe/SmbiosPlatformDxe.inf` `FILE_GUID`: installs QEMU's SMBIOS
/// structures and the default Type 0.
pub const SMBIOS_PLATFORM_DXE: EfiGuid = EfiGuid::from_str_const("4110465d-5ff3-4f4b-b580-24ed0d06747a");
/// `MdeModulePkg/Universal/SmbiosMeasurementDxe/SmbiosMeasurementDxe.inf` `FILE_GUID`: OVMF
/// carries it from edk2 commit `cd76265f1` (2025-04, in edk2-stable202505).
pub const SMBIOS_MEASUREMENT_DXE: EfiGuid = EfiGuid::from_str_const("d27fed59-abb4-4fed-bead-2a878c7e4a7e");

/// `OvmfPkg/QemuKernelLoaderFsDxe/QemuKernelLoaderFsDxe.inf` `FILE_GUID`.
pub const QEMU_KERNEL_LOADER_FS_DXE: EfiGuid = EfiGuid::from_str_const("806040ca-dad9-4978-a3b4-2d2ab0c8a48f");
/// The NUL-terminated ASCII literal `QemuKernelFetchNamedBlobs` compares names with.
const NAMED_BLOB_PREFIX: &[u8] = b"etc/boot/\0";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A section: 4-byte header, or the 8-byte extended one when `extended`.
    pub(crate) fn section(section_type: u8, body: &[u8], extended: bool) -> Vec<u8> {
        let mut s = if extended {
            let mut h = vec![0xFF, 0xFF, 0xFF, section_type];
            h.extend_from_slice(&((body.len() + 8) as u32).to_le_bytes());
            h
        } else {
            let n = (body.len() + 4) as u32;
            vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, section_type]
        };
        s.extend_from_slice(body);
        s
    }

    /// A section stream (4-byte aligned).
    pub(crate) fn stream(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in sections {
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend_from_slice(s);
        }
        out
    }

    /// A GUID-defined section of edk2's LZMA format holding `content`.
    pub(crate) fn lzma_section(content: &[u8]) -> Vec<u8> {
        let mut packed = Vec::new();
        lzma_rs::lzma_compress_with_options(
            &mut &content[..],
            &mut packed,
            &lzma_rs::compress::Options {
                unpacked_size: lzma_rs::compress::UnpackedSize::WriteToHeader(Some(
                    content.len() as u64
                )),
            },
        )
        .unwrap();
        let mut body = LZMA_CUSTOM_DECOMPRESS_GUID.as_bytes().to_vec();
        body.extend_from_slice(&24u16.to_le_bytes()); // DataOffset: 4 + 20
        body.extend_from_slice(&1u16.to_le_bytes()); // PROCESSING_REQUIRED
        body.extend_from_slice(&packed);
        section(SECTION_GUID_DEFINED, &body, false)
    }

    /// A firmware volume (erase polarity 1, 0x1000-byte blocks) of `files` (name byte, type,
    /// data, large), padded with 0xFF to a multiple of 0x1000.
    pub(crate) fn volume(fs: EfiGuid, files: &[(u8, u8, Vec<u8>, bool)]) -> Vec<u8> {
        let mut body = Vec::new();
        let start = 0x48 + 0x18; // header, then an extended header of 0x18 bytes
        for (name, ty, data, large) in files {
            while (start + body.len()) % 8 != 0 {
                body.push(0xFF);
            }
            let hl = if *large { FFS_HEADER2 } else { FFS_HEADER };
            let mut h = vec![0u8; hl];
            h[..16].copy_from_slice(&[*name; 16]);
            h[18] = *ty;
            let size = hl + data.len();
            if *large {
                h[19] = FFS_ATTRIB_LARGE_FILE;
                h[24..32].copy_from_slice(&(size as u64).to_le_bytes());
            } else {
                h[20..23].copy_from_slice(&(size as u32).to_le_bytes()[..3]);
            }
            let sum = h.iter().fold(0u8, |s, &b| s.wrapping_add(b));
            h[16] = sum.wrapping_neg();
            h[17] = FFS_FIXED_CHECKSUM;
            h[23] = !(FILE_HEADER_CONSTRUCTION | FILE_HEADER_VALID | FILE_DATA_VALID);
            body.extend_from_slice(&h);
            body.extend_from_slice(data);
        }
        let len = (start + body.len()).div_ceil(0x1000) * 0x1000;
        let mut fv = vec![0xFFu8; len];
        fv[..0x10].fill(0);
        fv[0x10..0x20].copy_from_slice(fs.as_bytes());
        fv[0x20..0x28].copy_from_slice(&(len as u64).to_le_bytes());
        fv[0x28..0x2C].copy_from_slice(FVH_SIGNATURE);
        fv[0x2C..0x30].copy_from_slice(&0x0004_FEFFu32.to_le_bytes());
        fv[0x30..0x32].copy_from_slice(&0x48u16.to_le_bytes());
        fv[0x32..0x34].fill(0);
        fv[0x34..0x36].copy_from_slice(&0x48u16.to_le_bytes());
        fv[0x36] = 0;
        fv[0x37] = FVH_REVISION;
        fv[0x38..0x3C].copy_from_slice(&((len / 0x1000) as u32).to_le_bytes());
        fv[0x3C..0x40].copy_from_slice(&0x1000u32.to_le_bytes());
        fv[0x40..0x48].fill(0);
        let sum = fv[..0x48].chunks_exact(2).fold(0u16, |s, c| {
            s.wrapping_add(u16::from_le_bytes([c[0], c[1]]))
        });
        fv[0x32..0x34].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
        fv[0x48..0x58].copy_from_slice(&[0x77; 16]);
        fv[0x58..0x5C].copy_from_slice(&0x18u32.to_le_bytes());
        fv[0x5C..0x60].fill(0);
        fv[start..start + body.len()].copy_from_slice(&body);
        fv
    }

    /// An OVMF.fd-like flash image: an NV volume (no FFS), then FVMAIN_COMPACT holding an
    /// LZMA section with two volume sections (PEIFV with a PEI_CORE file, DXEFV).
    pub(crate) fn flash() -> Vec<u8> {
        let pei = volume(
            FFS2_GUID,
            &[(
                1,
                FV_FILETYPE_PEI_CORE,
                stream(&[section(SECTION_RAW, b"core", false)]),
                false,
            )],
        );
        let dxe = volume(FFS2_GUID, &[(2, 0x05, vec![0x19, 0, 0, 0], false)]);
        let content = stream(&[
            section(SECTION_RAW, &[0; 8], false),
            section(SECTION_FIRMWARE_VOLUME_IMAGE, &pei, false),
            section(SECTION_FIRMWARE_VOLUME_IMAGE, &dxe, true),
        ]);
        let compact = volume(
            FFS2_GUID,
            &[(
                3,
                FV_FILETYPE_FIRMWARE_VOLUME_IMAGE,
                stream(&[lzma_section(&content)]),
                false,
            )],
        );
        let nv = volume(crate::vtpm::varstore::SYSTEM_NV_DATA_FV_GUID, &[]);
        [nv, compact].concat()
    }

    const SECTION_RAW: u8 = 0x19;

    #[test]
    fn reads_a_flash_image_down_to_pei_and_dxe() {
        let fd = flash();
        let v = volumes(&fd).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].1.name, Some(EfiGuid([0x77; 16])));
        assert!(v[0].1.files.is_empty());
        let m = OvmfMemFvs::parse(&fd).unwrap();
        let pei = FirmwareVolume::parse(m.peifv(), 0).unwrap();
        let core = pei.files_of_type(FV_FILETYPE_PEI_CORE).next().unwrap();
        let s = core.sections().unwrap();
        assert_eq!((s[0].section_type, s[0].body), (SECTION_RAW, &b"core"[..]));
        assert_eq!(s[0].offset, core.data_offset());
        assert_eq!(FirmwareVolume::parse(m.dxefv(), 0).unwrap().files.len(), 1);
        // A truncated image names the volume that does not fit.
        let e = volumes(&fd[..fd.len() - 1]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Truncated {
                    what: "firmware volume (FvLength)",
                    offset: 0x1000,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn large_files_only_in_ffs3_and_extended_sections() {
        let big = stream(&[section(SECTION_RAW, &[7; 40], true)]);
        let fv3 = volume(FFS3_GUID, &[(9, 0x05, big.clone(), true)]);
        let v = FirmwareVolume::parse(&fv3, 0).unwrap();
        assert_eq!((v.files[0].header_len, v.files[0].data.len()), (32, 48));
        let s = v.files[0].sections().unwrap();
        assert_eq!((s[0].header_len, s[0].body.len()), (8, 40));
        let fv2 = volume(FFS2_GUID, &[(9, 0x05, big, true)]);
        let e = FirmwareVolume::parse(&fv2, 0x1000).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "FFS Attributes",
                    offset: 0x1073,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn checksums_and_sizes_are_checked_with_field_and_offset() {
        let fv = volume(FFS2_GUID, &[(1, 0x05, vec![0x19, 0, 0, 0], false)]);
        let field = |fv: &[u8]| match FirmwareVolume::parse(fv, 0) {
            Err(Error::Invalid { field, offset, .. }) => (field, offset),
            other => panic!("{other:?}"),
        };
        let mut bad = fv.clone();
        bad[0x33] ^= 1;
        assert_eq!(field(&bad), ("FV Checksum", 0x32));
        let mut bad = fv.clone();
        bad[0x60 + 2] ^= 1; // file name: header checksum
        assert_eq!(field(&bad), ("FFS IntegrityCheck.Checksum.Header", 0x70));
        let mut bad = fv.clone();
        bad[0x60 + 17] = 0; // fixed file checksum
        assert_eq!(field(&bad), ("FFS IntegrityCheck.Checksum.File", 0x71));
        let mut bad = fv.clone();
        bad[0x60 + 23] = !(FILE_HEADER_CONSTRUCTION | FILE_HEADER_VALID);
        assert_eq!(field(&bad), ("FFS State", 0x77));
        let mut bad = fv.clone();
        bad[0x37] = 1;
        assert_eq!(field(&bad), ("FV Revision", 0x37));
        // A deleted file is skipped.
        let mut del = fv.clone();
        del[0x60 + 23] =
            !(FILE_HEADER_CONSTRUCTION | FILE_HEADER_VALID | FILE_DATA_VALID | FILE_DELETED);
        assert!(FirmwareVolume::parse(&del, 0).unwrap().files.is_empty());
        // Sections: a size past the stream, a header cut short.
        let e = parse_sections(&[0x10, 0, 0, 0x19, 0], 0x40).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "section Size",
                    offset: 0x40,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_sections(&[4, 0, 0, 0x19, 0, 0], 0).unwrap_err();
        assert!(matches!(e, Error::Truncated { offset: 4, .. }), "{e}");
        // GUID-defined: DataOffset inside its own header.
        let mut g = lzma_section(b"x");
        g[20] = 8;
        let s = parse_sections(&g, 0).unwrap();
        let e = s[0].guid_defined().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "EFI_GUID_DEFINED_SECTION DataOffset",
                    offset: 20,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn lzma_sizes_are_capped_before_decoding() {
        let g = lzma_section(&[5u8; 1000]);
        let data = &g[24..];
        assert_eq!(lzma_decompress(data, 0, 1000).unwrap(), vec![5u8; 1000]);
        let e = lzma_decompress(data, 0x24, 999).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "LZMA uncompressed size",
                    offset: 0x29,
                    ..
                }
            ),
            "{e}"
        );
        // A stream cut short, and a header claiming more than the stream holds.
        assert!(matches!(
            lzma_decompress(&data[..data.len() - 4], 0, 1000),
            Err(Error::Decompress { .. })
        ));
        let mut more = data.to_vec();
        more[5..13].copy_from_slice(&1001u64.to_le_bytes());
        assert!(matches!(
            lzma_decompress(&more, 0, 2000),
            Err(Error::Decompress { .. })
        ));
        assert!(matches!(
            lzma_decompress(&data[..12], 0, 10),
            Err(Error::Truncated { .. })
        ));
    }

    /// Seeded mutation test, always run: flipped bytes and truncations of a flash image (and of
    /// its decompressed content) give `Ok` or a typed error, never a panic.
    #[test]
    fn mutated_images_never_panic() {
        let fd = flash();
        let inner = OvmfMemFvs::parse(&fd).unwrap().decompressed;
        let mut state = 0xF00D_u64;
        for round in 0..3_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let (base, hot) = if round % 2 == 0 {
                (&fd, 0x1000..0x1100)
            } else {
                (&inner, 0..0x200)
            };
            let mut b = base.clone();
            for k in 0..(state % 4 + 1) {
                let at = hot.start + ((state >> (8 * k)) as usize).wrapping_mul(31) % hot.len().min(b.len());
                b[at] = (state >> (16 + k)) as u8;
            }
            let cut = (state as usize >> 20) % b.len();
            for bytes in [&b[..], &b[..cut]] {
                let _ = volumes(bytes);
                let _ = OvmfMemFvs::parse(bytes);
                let _ = FirmwareVolume::parse(bytes, 0);
                if let Ok(s) = parse_sections(bytes, 0) {
                    for s in s {
                        let _ = s
                            .guid_defined()
                            .map(|g| lzma_decompress(g.data, 0, 1 << 16));
                    }
                }
                let _ = crate::vtpm::pcr0::OvmfPcr0::from_firmware(bytes);
            }
        }
    }
}
