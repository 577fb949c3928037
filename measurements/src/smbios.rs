//! SMBIOS (DMTF DSP0134) as OVMF publishes it and edk2 ≥ stable202505 measures it.
//!
//! Since edk2-stable202505 OvmfPkg carries `SmbiosMeasurementDxe`: at ReadyToBoot it measures
//! the published SMBIOS structure table, filtered, as `EV_EFI_HANDOFF_TABLES` (PCR 1 with a TPM,
//! RTMR0 in a TD). Its digest depends on the VM shape (memory, vCPUs, CPU model, QEMU machine
//! version) and on strings compiled into the firmware. This module derives the measured bytes
//! from their two sources:
//! - QEMU's fw_cfg files `etc/smbios/smbios-anchor` and `etc/smbios/smbios-tables` (captured
//!   like the ACPI files);
//! - the firmware's default BIOS Information (Type 0) strings, read from its
//!   `SmbiosPlatformDxe` ([`OvmfType0::from_smbios_platform_dxe`]).
//!
//! The steps mirror edk2 (2025.02 source):
//! 1. `OvmfPkg/SmbiosPlatformDxe` `InstallAllStructures`: `Add()` every QEMU structure up to its
//!    type 127, keeping QEMU's handle; if QEMU sent no Type 0, add `mOvmfDefaultType0` with the
//!    PCD strings under the lowest free handle ([`ovmf_published_table`]).
//! 2. `MdeModulePkg/Universal/SmbiosDxe` `SmbiosCreateTable`: the records in insertion order,
//!    then an end-of-table structure (type 127) whose handle is the largest handle
//!    (`GetMaxSmbiosHandle`: 0xFFFE for SMBIOS 2.0, else 0xFEFF).
//! 3. `MdeModulePkg/Universal/SmbiosMeasurementDxe` `FilterSmbiosTable`: blank and zero the
//!    fields of its block list ([`filter_for_measurement`]); the digest is over the whole
//!    filtered table.
//!
//! Checked against a real boot: Debian sid's 2026.08 OVMF under QEMU 10.0 with swtpm logged
//! exactly the SHA-256 and SHA-384 of these bytes (measurements/tests/smbios.rs).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Error {
    /// The input ends inside a structure.
    #[error(
        "SMBIOS {input}: truncated: {what} at offset {offset:#x} runs past its end ({len} bytes)"
    )]
    Truncated {
        input: &'static str,
        what: &'static str,
        offset: usize,
        len: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("SMBIOS {input}: {field} at offset {offset:#x}: {problem}")]
    Invalid {
        input: &'static str,
        field: &'static str,
        offset: usize,
        problem: String,
    },
    /// The firmware's SmbiosPlatformDxe does not show the code this model follows.
    #[error("firmware SmbiosPlatformDxe: {0}")]
    PlatformDxe(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `SMBIOS_STRUCTURE.Type` of the end-of-table structure.
pub const TYPE_END_OF_TABLE: u8 = 127;
/// Types from here on are OEM-specific (`SMBIOS_OEM_BEGIN`).
const OEM_BEGIN: u8 = 128;

/// One structure: the formatted area (`Length` bytes from the 4-byte header on) and its string
/// set, up to and including the double NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Structure<'a> {
    pub bytes: &'a [u8],
}

impl Structure<'_> {
    pub fn structure_type(&self) -> u8 {
        self.bytes[0]
    }
    /// `SMBIOS_STRUCTURE.Length`: the formatted area's size.
    pub fn length(&self) -> u8 {
        self.bytes[1]
    }
    pub fn handle(&self) -> u16 {
        u16::from_le_bytes([self.bytes[2], self.bytes[3]])
    }
}

/// Split a structure table (QEMU's `etc/smbios/smbios-tables`) into structures, up to and
/// including the first end-of-table structure or the end of the input. `input` names the input
/// in errors.
pub fn structures<'a>(table: &'a [u8], input: &'static str) -> Result<Vec<Structure<'a>>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < table.len() {
        let s = structure_at(table, off, input)?;
        off += s.bytes.len();
        out.push(s);
        if s.structure_type() == TYPE_END_OF_TABLE {
            break;
        }
    }
    Ok(out)
}

fn structure_at<'a>(table: &'a [u8], off: usize, input: &'static str) -> Result<Structure<'a>> {
    let truncated = |what| Error::Truncated {
        input,
        what,
        offset: off,
        len: table.len(),
    };
    let header = table
        .get(off..off + 4)
        .ok_or(truncated("SMBIOS_STRUCTURE header"))?;
    let length = usize::from(header[1]);
    if length < 4 {
        return Err(Error::Invalid {
            input,
            field: "SMBIOS_STRUCTURE.Length",
            offset: off + 1,
            problem: format!("{length} is shorter than the 4-byte header"),
        });
    }
    let strings = table
        .get(off + length..)
        .ok_or(truncated("formatted area"))?;
    let end = strings
        .windows(2)
        .position(|w| w == [0, 0])
        .ok_or(truncated("string set (no double NUL)"))?;
    Ok(Structure {
        bytes: &table[off..off + length + end + 2],
    })
}

/// The entry point QEMU offers (`etc/smbios/smbios-anchor`): OVMF's SmbiosVersionLib sets the
/// SMBIOS version from it, and SmbiosDxe then publishes a 64-bit (`_SM3_`) entry point for
/// version 3 and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPoint {
    pub major: u8,
    pub minor: u8,
    /// `_SM3_` (SMBIOS 3.0 64-bit entry point) rather than `_SM_`.
    pub is_64_bit: bool,
}

impl EntryPoint {
    /// Parse an `_SM_` (2.1 32-bit) or `_SM3_` (3.0 64-bit) entry point structure.
    pub fn parse(anchor: &[u8]) -> Result<EntryPoint> {
        const INPUT: &str = "smbios-anchor";
        let (is_64_bit, at) = if anchor.starts_with(b"_SM3_") {
            (true, 7)
        } else if anchor.starts_with(b"_SM_") {
            (false, 6)
        } else {
            return Err(Error::Invalid {
                input: INPUT,
                field: "anchor string",
                offset: 0,
                problem: "neither \"_SM_\" nor \"_SM3_\"".into(),
            });
        };
        let v = anchor.get(at..at + 2).ok_or(Error::Truncated {
            input: INPUT,
            what: "MajorVersion, MinorVersion",
            offset: at,
            len: anchor.len(),
        })?;
        Ok(EntryPoint {
            major: v[0],
            minor: v[1],
            is_64_bit,
        })
    }

    /// The handle SmbiosDxe gives its end-of-table structure (`GetMaxSmbiosHandle`).
    fn end_of_table_handle(&self) -> u16 {
        if (self.major, self.minor) == (2, 0) {
            0xFFFE
        } else {
            0xFEFF
        }
    }
}

/// The default BIOS Information strings of an OVMF build: `PcdFirmwareVendor`,
/// `PcdFirmwareVersionString` and `PcdFirmwareReleaseDateString`, after SmbiosPlatformDxe's
/// substitution of strings shorter than 3 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvmfType0 {
    pub vendor: String,
    pub version: String,
    pub release_date: String,
}

impl OvmfType0 {
    /// The structure SmbiosPlatformDxe adds (`mOvmfDefaultType0`, `SMBIOS_TABLE_TYPE0` of 0x1A
    /// bytes, then the three strings), with `handle`.
    pub fn structure(&self, handle: u16) -> Vec<u8> {
        let mut s = vec![0u8, 0x1A];
        s.extend_from_slice(&handle.to_le_bytes());
        s.extend_from_slice(&[1, 2]); // Vendor, BiosVersion
        s.extend_from_slice(&0xE800u16.to_le_bytes()); // BiosSegment
        s.extend_from_slice(&[3, 0]); // BiosReleaseDate, BiosSize
        s.extend_from_slice(&(1u64 << 3).to_le_bytes()); // BiosCharacteristicsNotSupported
        s.extend_from_slice(&[0, 0x1C]); // VM, UEFI, target content distribution
        s.extend_from_slice(&[0, 0, 0xFF, 0xFF]); // BIOS and EC releases
        s.extend_from_slice(&[0, 0]); // ExtendedBiosSize
        for text in [&self.vendor, &self.version, &self.release_date] {
            s.extend_from_slice(text.as_bytes());
            s.push(0);
        }
        s.push(0);
        s
    }

    /// Read the strings from the PE image of OVMF's `SmbiosPlatformDxe` (any edk2 since the
    /// PCD-based default Type 0, 2023). They are fixed-at-build PCDs, UTF-16 constants in the
    /// image, found the way its code takes them: `InstallAllStructures` loads the vendor,
    /// then the literal L"unknown", the version, L"unknown" again, the date, then the fallback
    /// date literal. The image's RIP-relative `lea` instructions are scanned for targets in that
    /// pattern; an image without it is refused rather than guessed at.
    pub fn from_smbios_platform_dxe(pe: &[u8]) -> Result<OvmfType0> {
        let layout = crate::pe::PeLayout::parse(pe)
            .map_err(|e| Error::PlatformDxe(format!("not a PE image: {e}")))?;
        let utf16_at = |rva: u32| -> Option<String> {
            let off = layout.offset_of_rva(rva)?;
            let units: Vec<u16> = pe
                .get(off..)?
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take(256)
                .collect();
            let end = units.iter().position(|&u| u == 0)?;
            String::from_utf16(&units[..end]).ok()
        };
        // Targets of `lea r64, [rip + disp32]` (REX.W 8D, ModRM mod 00 r/m 101), in code order.
        let targets: Vec<u32> = layout
            .mapped
            .iter()
            .flat_map(|&(va, r)| {
                let code = &pe[r.offset..r.offset + r.len];
                code.windows(7).enumerate().filter_map(move |(i, w)| {
                    let lea = matches!(w[0], 0x48 | 0x4C) && w[1] == 0x8D && w[2] & 0xC7 == 0x05;
                    let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
                    lea.then(|| (va as i64 + i as i64 + 7 + i64::from(disp)) as u32)
                })
            })
            .collect();
        let strings: Vec<Option<String>> = targets.iter().map(|&t| utf16_at(t)).collect();
        let is = |i: usize, text: &str| strings.get(i).and_then(|s| s.as_deref()) == Some(text);
        let found = (0..strings.len()).find(|&i| {
            is(i + 1, "unknown")
                && is(i + 3, "unknown")
                && [i, i + 2, i + 4, i + 5]
                    .iter()
                    .all(|&k| strings.get(k).is_some_and(|s| s.is_some()))
        });
        let Some(i) = found else {
            return Err(Error::PlatformDxe(
                "no default Type 0 strings found (the vendor, L\"unknown\", version, L\"unknown\", \
                 date, fallback date pattern of InstallAllStructures)"
                    .into(),
            ));
        };
        let text = |k: usize| strings[k].clone().unwrap_or_default();
        let pick = |s: String, fallback: String| if s.chars().count() < 3 { fallback } else { s };
        let vendor = pick(text(i), "unknown".into());
        let version = pick(text(i + 2), "unknown".into());
        let release_date = pick(text(i + 4), text(i + 5));
        for s in [&vendor, &version, &release_date] {
            if !s.is_ascii() {
                return Err(Error::PlatformDxe(format!("{s:?} is not ASCII")));
            }
        }
        Ok(OvmfType0 {
            vendor,
            version,
            release_date,
        })
    }
}

/// The structure table OVMF publishes for QEMU's `tables` and `anchor`: what
/// SmbiosMeasurementDxe reads from the entry point, up to and including the end-of-table
/// structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTable {
    pub entry_point: EntryPoint,
    pub bytes: Vec<u8>,
}

/// Assemble the table as SmbiosPlatformDxe and SmbiosDxe do (module doc, steps 1 and 2).
pub fn ovmf_published_table(
    tables: &[u8],
    anchor: &[u8],
    type0: &OvmfType0,
) -> Result<PublishedTable> {
    let entry_point = EntryPoint::parse(anchor)?;
    let all = structures(tables, "smbios-tables")?;
    let end = all
        .iter()
        .position(|s| s.structure_type() == TYPE_END_OF_TABLE);
    let Some(end) = end else {
        return Err(Error::Invalid {
            input: "smbios-tables",
            field: "end-of-table structure",
            offset: tables.len(),
            problem: "missing (InstallAllStructures walks up to type 127)".into(),
        });
    };
    let records = &all[..end];
    let mut handles = std::collections::BTreeSet::new();
    let mut bytes = Vec::with_capacity(tables.len() + 128);
    for s in records {
        if !handles.insert(s.handle()) {
            return Err(Error::Invalid {
                input: "smbios-tables",
                field: "SMBIOS_STRUCTURE.Handle",
                offset: s.bytes.as_ptr() as usize - tables.as_ptr() as usize + 2,
                problem: format!(
                    "{:#06x} is used twice (SmbiosDxe would refuse the second)",
                    s.handle()
                ),
            });
        }
        bytes.extend_from_slice(s.bytes);
    }
    if !records.iter().any(|s| s.structure_type() == 0) {
        // GetAvailableSmbiosHandle: the lowest handle not yet allocated.
        let free = (0..=u16::MAX).find(|h| !handles.contains(h)).unwrap_or(0);
        bytes.extend_from_slice(&type0.structure(free));
    }
    bytes.extend_from_slice(&[TYPE_END_OF_TABLE, 4]);
    bytes.extend_from_slice(&entry_point.end_of_table_handle().to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    Ok(PublishedTable { entry_point, bytes })
}

/// One entry of SmbiosMeasurementDxe's block list: a field at `offset` of `size` bytes; a
/// string field's string is blanked with spaces before its index byte is zeroed.
struct Field {
    offset: usize,
    size: usize,
    is_string: bool,
}

const fn string(offset: usize) -> Field {
    Field {
        offset,
        size: 1,
        is_string: true,
    }
}
const fn value(offset: usize, size: usize) -> Field {
    Field {
        offset,
        size,
        is_string: false,
    }
}

/// `mSmbiosFilterStandardTableBlackList` (offsets of `IndustryStandard/SmBios.h`); `None`:
/// every byte after the header is zeroed.
fn block_list(structure_type: u8) -> Option<Option<&'static [Field]>> {
    const TYPE1: &[Field] = &[string(0x07), value(0x08, 16), value(0x18, 1)];
    const TYPE2: &[Field] = &[string(0x07), string(0x0A)];
    const TYPE3: &[Field] = &[string(0x07), string(0x08)];
    const TYPE4: &[Field] = &[
        string(0x20),   // SerialNumber
        string(0x21),   // AssetTag
        string(0x22),   // PartNumber
        value(0x23, 1), // CoreCount
        value(0x24, 1), // EnabledCoreCount
        value(0x25, 1), // ThreadCount
        value(0x2A, 2), // CoreCount2
        value(0x2C, 2), // EnabledCoreCount2
        value(0x2E, 2), // ThreadCount2
        value(0x11, 1), // Voltage
        value(0x16, 2), // CurrentSpeed
    ];
    const TYPE17: &[Field] = &[string(0x18), string(0x19), string(0x1A)];
    const TYPE22: &[Field] = &[string(0x07), value(0x10, 2), value(0x12, 2)];
    const TYPE23: &[Field] = &[value(0x05, 2)];
    const TYPE27: &[Field] = &[value(0x0C, 2)];
    const TYPE39: &[Field] = &[string(0x08), string(0x09), string(0x0A)];
    Some(match structure_type {
        1 => Some(TYPE1),
        2 => Some(TYPE2),
        3 => Some(TYPE3),
        4 => Some(TYPE4),
        17 => Some(TYPE17),
        22 => Some(TYPE22),
        23 => Some(TYPE23),
        27 => Some(TYPE27),
        39 => Some(TYPE39),
        11 | 15 | 18 | 31 | 33 => None,
        t if t >= OEM_BEGIN => None,
        _ => return None,
    })
}

/// `FilterSmbiosTable`: the bytes SmbiosMeasurementDxe hashes for `table` (a whole published
/// table, [`PublishedTable::bytes`]).
pub fn filter_for_measurement(table: &[u8]) -> Result<Vec<u8>> {
    let mut out = table.to_vec();
    let mut off = 0;
    while off < table.len() {
        let s = structure_at(table, off, "published table")?;
        let len = s.bytes.len();
        let entry = &mut out[off..off + len];
        match block_list(s.structure_type()) {
            None => {}
            Some(None) => entry[4..].fill(0),
            Some(Some(fields)) => {
                for f in fields {
                    if usize::from(s.length()) < f.offset + f.size {
                        continue;
                    }
                    let id = entry[f.offset];
                    if f.is_string && id != 0 {
                        let (start, end) =
                            string_span(entry, s.length(), id).ok_or_else(|| Error::Invalid {
                                input: "published table",
                                field: "string index",
                                offset: off + f.offset,
                                problem: format!(
                                    "type {} names string {id}, which its string set lacks",
                                    s.structure_type()
                                ),
                            })?;
                        entry[start..end].fill(b' ');
                    }
                    entry[f.offset..f.offset + f.size].fill(0);
                }
            }
        }
        off += len;
        if s.structure_type() == TYPE_END_OF_TABLE {
            break;
        }
    }
    out.truncate(off);
    Ok(out)
}

/// The byte range of string `id` (1-based) in `entry`'s string set, without its NUL.
fn string_span(entry: &[u8], length: u8, id: u8) -> Option<(usize, usize)> {
    let mut start = usize::from(length);
    for _ in 1..id {
        let nul = entry[start..].iter().position(|&b| b == 0)?;
        start += nul + 1;
        if entry.get(start) == Some(&0) {
            return None; // the double NUL: the set has fewer strings
        }
    }
    let len = entry[start..].iter().position(|&b| b == 0)?;
    Some((start, start + len))
}

/// The bytes the SMBIOS handoff-table event hashes, from QEMU's fw_cfg files and the firmware's
/// Type 0 strings: [`ovmf_published_table`] then [`filter_for_measurement`].
pub fn measured_table(
    tables: &[u8],
    anchor: &[u8],
    type0: &OvmfType0,
) -> Result<(EntryPoint, Vec<u8>)> {
    let t = ovmf_published_table(tables, anchor, type0)?;
    Ok((t.entry_point, filter_for_measurement(&t.bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> OvmfType0 {
        OvmfType0 {
            vendor: "Debian distribution of EDK II".into(),
            version: "2026.08+ds-2".into(),
            release_date: "09/26/2026".into(),
        }
    }

    /// A type 1 with serial "S123", UUID 0x11.., wake-up 6, then type 127.
    fn qemu_tables() -> Vec<u8> {
        let mut t = vec![1, 27, 0x00, 0x01, 1, 2, 3, 4];
        t.extend_from_slice(&[0x11; 16]);
        t.extend_from_slice(&[6, 0, 0]);
        t.extend_from_slice(b"QEMU\0PC\0v1\0S123\0\0");
        t.extend_from_slice(&[127, 4, 0, 0x7F, 0, 0]);
        t
    }

    #[test]
    fn type0_is_added_with_the_lowest_free_handle_and_the_end_gets_0xfeff() {
        let anchor = b"_SM_\0\x1f\x02\x08";
        let t = ovmf_published_table(&qemu_tables(), anchor, &debian()).unwrap();
        let s = structures(&t.bytes, "test").unwrap();
        let shape: Vec<(u8, u16)> = s.iter().map(|s| (s.structure_type(), s.handle())).collect();
        assert_eq!(shape, [(1, 0x100), (0, 0), (127, 0xFEFF)]);
        assert_eq!(
            s[1].bytes.len(),
            0x1A + "Debian distribution of EDK II".len() + 1 + 13 + 11 + 1
        );
        let v2_0 = ovmf_published_table(&qemu_tables(), b"_SM_\0\x1f\x02\x00", &debian()).unwrap();
        assert_eq!(&v2_0.bytes[v2_0.bytes.len() - 4..], &[0xFE, 0xFF, 0, 0]);
    }

    #[test]
    fn filter_blanks_serial_and_zeroes_uuid_and_wake_up() {
        let f = filter_for_measurement(&qemu_tables()).unwrap();
        assert_eq!(f.len(), qemu_tables().len());
        assert_eq!(f[7], 0, "SerialNumber index");
        assert_eq!(&f[8..24], &[0; 16]);
        assert_eq!(f[24], 0);
        assert!(
            f.windows(6).any(|w| w == b"v1\0   "),
            "serial blanked, length kept"
        );
        assert_eq!(f[4], 1, "Manufacturer untouched");
    }

    #[test]
    fn whole_types_and_oem_types_are_zeroed_after_the_header() {
        let mut t = vec![11, 5, 0x00, 0x0B, 1];
        t.extend_from_slice(b"oem\0\0");
        t.extend_from_slice(&[200, 4, 1, 0]);
        t.extend_from_slice(b"x\0\0");
        let f = filter_for_measurement(&t).unwrap();
        assert_eq!(&f[..4], &t[..4]);
        assert!(f[4..10].iter().all(|&b| b == 0));
        assert_eq!(&f[10..14], &t[10..14]);
        assert!(f[14..].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let mut t = qemu_tables();
        t.truncate(30);
        let e = ovmf_published_table(&t, b"_SM_\0\x1f\x02\x08", &debian()).unwrap_err();
        assert!(e.to_string().contains("smbios-tables: truncated"), "{e}");
        let e = EntryPoint::parse(b"_DMI_").unwrap_err();
        assert!(e.to_string().contains("smbios-anchor"), "{e}");
        assert!(EntryPoint::parse(b"_SM3_\0").is_err());
        let no_end = &qemu_tables()[..qemu_tables().len() - 6];
        assert!(ovmf_published_table(no_end, b"_SM_\0\x1f\x02\x08", &debian()).is_err());
        let mut bad_string = qemu_tables();
        bad_string[7] = 9; // serial names string 9 of 4
        assert!(filter_for_measurement(&bad_string).is_err());
        let mut short = qemu_tables();
        short[1] = 2;
        assert!(structures(&short, "t").is_err());
    }
}
