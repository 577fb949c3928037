//! Authenticode image digests of PE/COFF files (Microsoft "Windows Authenticode Portable
//! Executable Signature Format" 1.0, "Calculating the PE Image Hash"; PE format spec §"Optional
//! Header"), as UEFI `DxeImageVerificationLib` / `DxeTpmMeasureBootLib` compute them for
//! `EV_EFI_BOOT_SERVICES_APPLICATION`. Used for bzImages (Linux EFI stub) and UKIs.
//!
//! Generic over the hash: SHA-384 for TDX RTMR1, SHA-256 for a vTPM's PCR 4.
//!
//! The hash covers, in order: the headers up to `CheckSum`; the headers from after `CheckSum` up
//! to the Certificate Table data directory (index 4); the rest of the headers up to
//! `SizeOfHeaders`; every section with `SizeOfRawData > 0` sorted by `PointerToRawData`; then
//! the bytes after the last section that are not the attribute-certificate table. A signed and
//! an unsigned build of the same image therefore hash alike.

use sha2::Digest;

/// Errors from PE parsing; every variant names the field and its file offset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "PE image truncated: {what} needs {need} bytes at offset {offset:#x}, image has {have}"
    )]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    #[error("PE field {field} at offset {offset:#x}: {problem}")]
    Invalid {
        field: &'static str,
        offset: u64,
        problem: String,
    },
}

/// `IMAGE_NT_OPTIONAL_HDR32_MAGIC`.
pub const PE32_MAGIC: u16 = 0x10b;
/// `IMAGE_NT_OPTIONAL_HDR64_MAGIC`.
pub const PE32_PLUS_MAGIC: u16 = 0x20b;
/// `IMAGE_DIRECTORY_ENTRY_SECURITY`: the Certificate Table.
const CERTIFICATE_TABLE_INDEX: u32 = 4;
const SECTION_HEADER_BYTES: usize = 40;

/// A byte range of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub offset: usize,
    pub len: usize,
}

/// The parsed layout of a PE image: exactly what the Authenticode hash needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeLayout {
    /// File offset of `OptionalHeader.CheckSum`.
    pub checksum_offset: usize,
    /// File offset of the Certificate Table data directory, if the image has one.
    pub cert_dir_offset: Option<usize>,
    /// `OptionalHeader.SizeOfHeaders`.
    pub size_of_headers: usize,
    /// The Certificate Table (file offset, size); zero-sized when unsigned.
    pub cert_table: Range,
    /// Raw data of every section with `SizeOfRawData > 0`, sorted by `PointerToRawData`.
    pub sections: Vec<Range>,
    /// The same sections in table order, each with its `VirtualAddress` (an RVA).
    pub mapped: Vec<(u32, Range)>,
}

fn rd<const N: usize>(img: &[u8], offset: usize, what: &'static str) -> Result<[u8; N], Error> {
    offset
        .checked_add(N)
        .and_then(|e| img.get(offset..e))
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Truncated {
            what,
            offset: offset as u64,
            need: N as u64,
            have: img.len() as u64,
        })
}
fn u16_at(img: &[u8], o: usize, what: &'static str) -> Result<u16, Error> {
    rd::<2>(img, o, what).map(u16::from_le_bytes)
}
fn u32_at(img: &[u8], o: usize, what: &'static str) -> Result<u32, Error> {
    rd::<4>(img, o, what).map(u32::from_le_bytes)
}
fn check_range(
    image_len: usize,
    offset: usize,
    len: usize,
    what: &'static str,
) -> Result<Range, Error> {
    match offset.checked_add(len) {
        Some(end) if end <= image_len => Ok(Range { offset, len }),
        _ => Err(Error::Truncated {
            what,
            offset: offset as u64,
            need: len as u64,
            have: image_len as u64,
        }),
    }
}

impl PeLayout {
    /// Parse the DOS, COFF and optional headers and the section table.
    pub fn parse(img: &[u8]) -> Result<PeLayout, Error> {
        Self::parse_head(img, img.len())
    }

    /// Parse from `img`, the first bytes (at least the headers and section table) of an image
    /// of `image_len` bytes; ranges are checked against `image_len`.
    pub fn parse_head(img: &[u8], image_len: usize) -> Result<PeLayout, Error> {
        if rd::<2>(img, 0, "DOS header e_magic")? != *b"MZ" {
            return Err(Error::Invalid {
                field: "e_magic",
                offset: 0,
                problem: "not \"MZ\"".into(),
            });
        }
        let pe = u32_at(img, 0x3c, "DOS header e_lfanew")? as usize;
        if rd::<4>(img, pe, "PE signature")? != *b"PE\0\0" {
            return Err(Error::Invalid {
                field: "PE signature",
                offset: pe as u64,
                problem: "not \"PE\\0\\0\"".into(),
            });
        }
        let coff = pe + 4;
        let n_sections = u16_at(img, coff + 2, "COFF NumberOfSections")? as usize;
        let opt_size = u16_at(img, coff + 16, "COFF SizeOfOptionalHeader")? as usize;
        let opt = coff + 20;
        let magic = u16_at(img, opt, "OptionalHeader.Magic")?;
        let (n_rva_off, dirs_off) = match magic {
            PE32_MAGIC => (opt + 92, opt + 96),
            PE32_PLUS_MAGIC => (opt + 108, opt + 112),
            m => {
                return Err(Error::Invalid {
                    field: "OptionalHeader.Magic",
                    offset: opt as u64,
                    problem: format!("{m:#x} is neither PE32 nor PE32+"),
                })
            }
        };
        let checksum_offset = opt + 64;
        u32_at(img, checksum_offset, "OptionalHeader.CheckSum")?;
        let size_of_headers = u32_at(img, opt + 60, "OptionalHeader.SizeOfHeaders")? as usize;
        let n_rva = u32_at(img, n_rva_off, "OptionalHeader.NumberOfRvaAndSizes")?;
        let (cert_dir_offset, cert_table) = if n_rva > CERTIFICATE_TABLE_INDEX {
            let o = dirs_off + 8 * CERTIFICATE_TABLE_INDEX as usize;
            if o + 8 > opt + opt_size {
                return Err(Error::Invalid {
                    field: "OptionalHeader.NumberOfRvaAndSizes",
                    offset: n_rva_off as u64,
                    problem: format!(
                        "{n_rva} directories do not fit in SizeOfOptionalHeader {opt_size}"
                    ),
                });
            }
            let va = u32_at(img, o, "Certificate Table VirtualAddress")? as usize;
            let size = u32_at(img, o + 4, "Certificate Table Size")? as usize;
            let t = if size == 0 {
                Range { offset: 0, len: 0 }
            } else {
                check_range(image_len, va, size, "Certificate Table")?
            };
            (Some(o), t)
        } else {
            (None, Range { offset: 0, len: 0 })
        };
        check_range(image_len, 0, size_of_headers, "headers (SizeOfHeaders)")?;
        if size_of_headers < cert_dir_offset.map_or(checksum_offset + 4, |c| c + 8) {
            return Err(Error::Invalid {
                field: "OptionalHeader.SizeOfHeaders",
                offset: (opt + 60) as u64,
                problem: format!("{size_of_headers:#x} ends inside the optional header"),
            });
        }
        let table = opt + opt_size;
        let mut mapped = Vec::with_capacity(n_sections);
        for i in 0..n_sections {
            let s = table + SECTION_HEADER_BYTES * i;
            let rva = u32_at(img, s + 12, "section VirtualAddress")?;
            let size = u32_at(img, s + 16, "section SizeOfRawData")? as usize;
            let ptr = u32_at(img, s + 20, "section PointerToRawData")? as usize;
            if size > 0 {
                mapped.push((rva, check_range(image_len, ptr, size, "section raw data")?));
            }
        }
        let mut sections: Vec<Range> = mapped.iter().map(|&(_, r)| r).collect();
        sections.sort_by_key(|r| r.offset);
        Ok(PeLayout {
            checksum_offset,
            cert_dir_offset,
            size_of_headers,
            cert_table,
            sections,
            mapped,
        })
    }

    /// The file offset holding the byte at `rva`, if a section's raw data covers it.
    pub fn offset_of_rva(&self, rva: u32) -> Option<usize> {
        self.mapped.iter().find_map(|&(va, r)| {
            let d = rva.checked_sub(va)? as usize;
            (d < r.len).then_some(r.offset + d)
        })
    }

    /// The byte ranges hashed, in order.
    pub fn hashed_ranges(&self, image_len: usize) -> Vec<Range> {
        let mut out = Vec::with_capacity(self.sections.len() + 4);
        let mut push = |offset: usize, end: usize| {
            if end > offset {
                out.push(Range {
                    offset,
                    len: end - offset,
                });
            }
        };
        push(0, self.checksum_offset);
        match self.cert_dir_offset {
            Some(c) => {
                push(self.checksum_offset + 4, c);
                push(c + 8, self.size_of_headers);
            }
            None => push(self.checksum_offset + 4, self.size_of_headers),
        }
        let mut sum = self.size_of_headers;
        for s in &self.sections {
            push(s.offset, s.offset + s.len);
            sum += s.len;
        }
        // Trailing data: everything after the bytes hashed so far, minus the certificate table.
        let tail_end = image_len.saturating_sub(self.cert_table.len);
        push(sum.min(tail_end), tail_end);
        out
    }
}

/// The Authenticode digest of `img` with hash `D`.
pub fn authenticode<D: Digest>(img: &[u8]) -> Result<Vec<u8>, Error> {
    authenticode_overlay::<D>(img, img)
}

/// The Authenticode digest of `img` with its first `head.len()` bytes replaced by `head` (e.g. a
/// kernel whose setup header a loader patched), without copying the image. The headers and
/// section table must lie within `head`.
pub fn authenticode_overlay<D: Digest>(img: &[u8], head: &[u8]) -> Result<Vec<u8>, Error> {
    if head.len() > img.len() {
        return Err(Error::Invalid {
            field: "overlay",
            offset: 0,
            problem: format!(
                "{} overlay bytes exceed the {}-byte image",
                head.len(),
                img.len()
            ),
        });
    }
    let layout = PeLayout::parse_head(head, img.len())?;
    let mut h = D::new();
    for r in layout.hashed_ranges(img.len()) {
        let (start, end) = (r.offset, r.offset + r.len);
        if start < head.len() {
            h.update(&head[start..end.min(head.len())]);
        }
        if end > head.len() {
            h.update(&img[start.max(head.len())..end]);
        }
    }
    Ok(h.finalize().to_vec())
}

/// SHA-384 Authenticode digest (TDX RTMR1).
pub fn authenticode_sha384(img: &[u8]) -> Result<[u8; 48], Error> {
    let mut out = [0u8; 48];
    out.copy_from_slice(&authenticode::<crate::hash::Sha384>(img)?);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::Sha256;

    /// A minimal PE32+ image: headers of 0x200 bytes, one section of 0x200 bytes, `tail` bytes
    /// after it, and an optional certificate table of `cert` bytes at the very end.
    pub(crate) fn tiny_pe(tail: usize, cert: usize) -> Vec<u8> {
        let mut img = vec![0u8; 0x400 + tail + cert];
        img[0..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        img[0x80..0x84].copy_from_slice(b"PE\0\0");
        let coff = 0x84;
        img[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
        img[coff + 16..coff + 18].copy_from_slice(&(112u16 + 16 * 8).to_le_bytes());
        let opt = coff + 20;
        img[opt..opt + 2].copy_from_slice(&PE32_PLUS_MAGIC.to_le_bytes());
        img[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        img[opt + 64..opt + 68].copy_from_slice(&0xdeadbeefu32.to_le_bytes());
        img[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        if cert > 0 {
            let d = opt + 112 + 32;
            img[d..d + 4].copy_from_slice(&((0x400 + tail) as u32).to_le_bytes());
            img[d + 4..d + 8].copy_from_slice(&(cert as u32).to_le_bytes());
        }
        let s = opt + 112 + 128;
        img[s..s + 5].copy_from_slice(b".text");
        img[s + 16..s + 20].copy_from_slice(&0x200u32.to_le_bytes());
        img[s + 20..s + 24].copy_from_slice(&0x200u32.to_le_bytes());
        for (i, b) in img[0x200..0x400 + tail].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        img
    }

    #[test]
    fn checksum_and_certificate_are_excluded() {
        let plain = tiny_pe(16, 0);
        let mut signed = tiny_pe(16, 64);
        signed[0x400 + 16..].fill(0xAA);
        let mut other_sum = plain.clone();
        other_sum[0x84 + 20 + 64] ^= 0xff;
        let h = authenticode::<Sha256>(&plain).unwrap();
        assert_eq!(authenticode::<Sha256>(&signed).unwrap(), h);
        assert_eq!(authenticode::<Sha256>(&other_sum).unwrap(), h);
        // Section bytes are covered.
        let mut changed = plain.clone();
        changed[0x300] ^= 1;
        assert_ne!(authenticode::<Sha256>(&changed).unwrap(), h);
        // Trailing bytes are covered.
        let mut tail = plain.clone();
        tail[0x405] ^= 1;
        assert_ne!(authenticode::<Sha256>(&tail).unwrap(), h);
        // Manual: headers minus checksum and cert dir, then the rest.
        let opt = 0x84 + 20;
        let mut m = Sha256::new();
        m.update(&plain[..opt + 64]);
        m.update(&plain[opt + 68..opt + 112 + 32]);
        m.update(&plain[opt + 112 + 40..]);
        assert_eq!(m.finalize().to_vec(), h);
    }

    #[test]
    fn overlay_equals_hashing_the_patched_copy() {
        let img = tiny_pe(700, 64);
        let mut patched = img.clone();
        patched[0x1f8] ^= 0x5a;
        patched[0x210] = 0xB0;
        for n in [0x300, 0x400, 0x500, img.len()] {
            assert_eq!(
                authenticode_overlay::<Sha256>(&img, &patched[..n]).unwrap(),
                authenticode::<Sha256>(&patched).unwrap(),
                "{n}"
            );
        }
        assert!(authenticode_overlay::<Sha256>(&img[..10], &patched).is_err());
    }

    #[test]
    fn truncations_are_errors_not_panics() {
        let img = tiny_pe(16, 64);
        for n in 0..img.len() {
            assert!(authenticode::<Sha256>(&img[..n]).is_err(), "cut at {n}");
        }
    }
}
