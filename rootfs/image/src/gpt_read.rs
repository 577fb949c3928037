//! A strict GPT reader (UEFI 2.10 §5.2-5.3): protective MBR, primary and backup header, partition
//! entry arrays; the inverse of [`crate::disk::write`] for checking a disk image and the one place
//! this crate reads a partition table from bytes it did not write (fuzz target `gpt`).
//!
//! Everything is checked and every refusal is an [`Error`] naming the byte offset and the field:
//! the MBR's 0x55AA and its single 0xEE record, both headers' signature, revision, size,
//! CRC32 and reserved field, `MyLBA`/`AlternateLBA` (primary at LBA 1, backup at the last LBA),
//! the usable range and both entry arrays (inside the disk, outside the usable range and the
//! headers, at least 16 KiB as the spec requires, at most [`MAX_ARRAY_BYTES`]), the entry array
//! CRC32 and the backup's array being identical to the primary's, each used entry's LBA range
//! (inside the usable range), name (UTF-16LE, zero after its end) and unique GUID (non-nil,
//! distinct), and that no two partitions overlap. Reads at most two arrays and three sectors.

use crate::disk::{self, PartitionKind, PartitionSpec, PlacedPartition, SECTOR_BYTES};
use std::io::{self, Read, Seek, SeekFrom};
use uuid::Uuid;

/// "EFI PART".
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// GPT revision 1.0.
pub const REVISION: u32 = 0x0001_0000;
/// Smallest header (the defined fields).
pub const HEADER_BYTES: u32 = 92;
/// The spec's minimum space for a partition entry array.
pub const MIN_ARRAY_BYTES: u64 = 16384;
/// Largest partition entry array accepted (a bound on what is read into memory).
pub const MAX_ARRAY_BYTES: u64 = 1 << 20;
/// Largest partition entry accepted.
pub const MAX_ENTRY_BYTES: u32 = 4096;
/// Smallest disk with room for MBR, both headers and two minimal arrays, in sectors.
pub const MIN_DISK_SECTORS: u64 = 3 + 2 * (MIN_ARRAY_BYTES / SECTOR_BYTES);

/// Which copy of the table a field belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Primary,
    Backup,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Table::Primary => "primary GPT",
            Table::Backup => "backup GPT",
        })
    }
}

/// Why a disk was refused; offsets are bytes from the start of the disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("disk I/O while {what}: {source}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
    #[error("disk of {bytes} bytes: {reason}")]
    DiskSize { bytes: u64, reason: &'static str },
    #[error("{field} at offset {offset}: value {value:#x} {reason}")]
    Field {
        offset: u64,
        field: &'static str,
        value: u64,
        reason: &'static str,
    },
    #[error("{copy}: {field} at offset {offset}: stored CRC32 {stored:#010x}, computed {computed:#010x}")]
    Crc {
        copy: Table,
        offset: u64,
        field: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("backup GPT: {field} is {backup}, the primary says {primary}")]
    Mismatch {
        field: &'static str,
        primary: String,
        backup: String,
    },
    #[error("backup GPT: partition entry array at offset {offset} differs from the primary's")]
    ArrayMismatch { offset: u64 },
    #[error("partition {index}: name at offset {offset} {reason}")]
    Name {
        index: u32,
        offset: u64,
        reason: &'static str,
    },
    #[error("partitions {first} and {second} overlap (LBA {lba})")]
    Overlap { first: u32, second: u32, lba: u64 },
    #[error("partitions {first} and {second} have the same unique GUID {guid}")]
    DuplicateGuid { first: u32, second: u32, guid: Uuid },
    #[error("partition {index}: type {guid} is none of ESP, root-x86-64, root-x86-64-verity")]
    UnknownType { index: u32, guid: Uuid },
    #[error("partition {index}: {field} {reason}")]
    Partition {
        index: u32,
        field: &'static str,
        reason: String,
    },
}

/// The fields of one GPT header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub header_size: u32,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable_lba: u64,
    pub last_usable_lba: u64,
    pub disk_guid: Uuid,
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    pub entries_crc32: u32,
}

impl Header {
    fn array_bytes(&self) -> u64 {
        u64::from(self.num_entries) * u64::from(self.entry_size)
    }
    fn array_sectors(&self) -> u64 {
        self.array_bytes().div_ceil(SECTOR_BYTES)
    }
}

/// One used partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based slot in the entry array.
    pub index: u32,
    pub type_guid: Uuid,
    pub unique_guid: Uuid,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

/// A disk's partition table, both copies checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt {
    pub disk_bytes: u64,
    pub primary: Header,
    pub backup: Header,
    /// Used entries in slot order.
    pub partitions: Vec<Entry>,
}

/// CRC32 (IEEE 802.3, reflected, as GPT uses it).
pub fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &b| {
        (crc >> 8) ^ CRC32_TABLE[usize::from(crc as u8 ^ b)]
    })
}

/// The byte-at-a-time table of [`crc32`] (polynomial 0xedb88320).
const CRC32_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn guid(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes_le(a)
}

fn read_at<D: Read + Seek>(
    dev: &mut D,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io { what, source };
    dev.seek(SeekFrom::Start(offset)).map_err(io)?;
    // `len` is at most MAX_ARRAY_BYTES (checked before every call).
    let mut buf = vec![0u8; len as usize];
    dev.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

fn field(offset: u64, field: &'static str, value: u64, reason: &'static str) -> Error {
    Error::Field {
        offset,
        field,
        value,
        reason,
    }
}

/// Reads and checks the whole table of `dev` (see the module doc for what is checked).
pub fn read<D: Read + Seek>(dev: &mut D) -> Result<Gpt, Error> {
    let disk_bytes = dev.seek(SeekFrom::End(0)).map_err(|source| Error::Io {
        what: "checking the disk size",
        source,
    })?;
    if !disk_bytes.is_multiple_of(SECTOR_BYTES) {
        return Err(Error::DiskSize {
            bytes: disk_bytes,
            reason: "not a whole number of 512-byte sectors",
        });
    }
    let sectors = disk_bytes / SECTOR_BYTES;
    if sectors < MIN_DISK_SECTORS {
        return Err(Error::DiskSize {
            bytes: disk_bytes,
            reason: "too small for a protective MBR, two GPT headers and two 16 KiB entry arrays",
        });
    }
    let last_lba = sectors - 1;
    check_mbr(
        &read_at(dev, 0, SECTOR_BYTES, "reading the protective MBR")?,
        last_lba,
    )?;

    let primary = read_header(dev, Table::Primary, 1, last_lba)?;
    let backup = read_header(dev, Table::Backup, last_lba, last_lba)?;
    type Get = fn(&Header) -> String;
    let fields: [(&'static str, Get); 5] = [
        ("DiskGUID", |h| h.disk_guid.to_string()),
        ("FirstUsableLBA", |h| h.first_usable_lba.to_string()),
        ("LastUsableLBA", |h| h.last_usable_lba.to_string()),
        ("NumberOfPartitionEntries", |h| h.num_entries.to_string()),
        ("SizeOfPartitionEntry", |h| h.entry_size.to_string()),
    ];
    for (field, get) in fields {
        let (primary, backup) = (get(&primary), get(&backup));
        if primary != backup {
            return Err(Error::Mismatch {
                field,
                primary,
                backup,
            });
        }
    }

    let array = read_array(dev, Table::Primary, &primary)?;
    let backup_array = read_array(dev, Table::Backup, &backup)?;
    if array != backup_array {
        return Err(Error::ArrayMismatch {
            offset: backup.entries_lba * SECTOR_BYTES,
        });
    }
    let partitions = read_entries(&array, &primary)?;
    Ok(Gpt {
        disk_bytes,
        primary,
        backup,
        partitions,
    })
}

fn check_mbr(mbr: &[u8], last_lba: u64) -> Result<(), Error> {
    if mbr[510..512] != [0x55, 0xaa] {
        return Err(field(
            510,
            "MBR signature",
            u64::from(u16::from_le_bytes([mbr[510], mbr[511]])),
            "is not 0xaa55",
        ));
    }
    let rec = &mbr[446..462];
    if rec[4] != 0xee {
        return Err(field(
            446 + 4,
            "MBR partition 1 OSType",
            rec[4].into(),
            "is not 0xee (protective)",
        ));
    }
    if le32(rec, 8) != 1 {
        return Err(field(
            446 + 8,
            "MBR partition 1 StartingLBA",
            le32(rec, 8).into(),
            "is not 1",
        ));
    }
    let size = u32::try_from(last_lba).unwrap_or(u32::MAX);
    if le32(rec, 12) != size {
        return Err(field(
            446 + 12,
            "MBR partition 1 SizeInLBA",
            le32(rec, 12).into(),
            "is not the disk size minus 1 (or 0xffffffff)",
        ));
    }
    if let Some(i) = mbr[462..510].iter().position(|&b| b != 0) {
        return Err(field(
            462 + i as u64,
            "MBR partitions 2-4",
            mbr[462 + i].into(),
            "is not zero (hybrid MBRs are refused)",
        ));
    }
    Ok(())
}

fn read_header<D: Read + Seek>(
    dev: &mut D,
    copy: Table,
    lba: u64,
    last_lba: u64,
) -> Result<Header, Error> {
    let base = lba * SECTOR_BYTES;
    let s = read_at(dev, base, SECTOR_BYTES, "reading a GPT header")?;
    let at = |o: usize| base + o as u64;
    if &s[..8] != SIGNATURE {
        return Err(field(
            at(0),
            "GPT Signature",
            le64(&s, 0),
            "is not \"EFI PART\"",
        ));
    }
    if le32(&s, 8) != REVISION {
        return Err(field(
            at(8),
            "GPT Revision",
            le32(&s, 8).into(),
            "is not 0x00010000",
        ));
    }
    let header_size = le32(&s, 12);
    if !(HEADER_BYTES..=SECTOR_BYTES as u32).contains(&header_size) {
        return Err(field(
            at(12),
            "GPT HeaderSize",
            header_size.into(),
            "is outside 92..=512",
        ));
    }
    let stored = le32(&s, 16);
    let mut h = s[..header_size as usize].to_vec();
    h[16..20].fill(0);
    let computed = crc32(&h);
    if stored != computed {
        return Err(Error::Crc {
            copy,
            offset: at(16),
            field: "HeaderCRC32",
            stored,
            computed,
        });
    }
    if le32(&s, 20) != 0 {
        return Err(field(
            at(20),
            "GPT Reserved",
            le32(&s, 20).into(),
            "is not zero",
        ));
    }
    let hdr = Header {
        header_size,
        my_lba: le64(&s, 24),
        alternate_lba: le64(&s, 32),
        first_usable_lba: le64(&s, 40),
        last_usable_lba: le64(&s, 48),
        disk_guid: guid(&s, 56),
        entries_lba: le64(&s, 72),
        num_entries: le32(&s, 80),
        entry_size: le32(&s, 84),
        entries_crc32: le32(&s, 88),
    };
    let alternate = if copy == Table::Primary { last_lba } else { 1 };
    if hdr.my_lba != lba {
        return Err(field(
            at(24),
            "GPT MyLBA",
            hdr.my_lba,
            "is not the LBA the header is at",
        ));
    }
    if hdr.alternate_lba != alternate {
        return Err(field(
            at(32),
            "GPT AlternateLBA",
            hdr.alternate_lba,
            "is not the other header's LBA (1 / last)",
        ));
    }
    let es = hdr.entry_size;
    if !(128..=MAX_ENTRY_BYTES).contains(&es) || !es.is_power_of_two() {
        return Err(field(
            at(84),
            "GPT SizeOfPartitionEntry",
            es.into(),
            "is not 128 × 2^n up to 4096",
        ));
    }
    let array_bytes = hdr.array_bytes();
    if !(MIN_ARRAY_BYTES..=MAX_ARRAY_BYTES).contains(&array_bytes) {
        return Err(field(
            at(80),
            "GPT NumberOfPartitionEntries",
            hdr.num_entries.into(),
            "gives an entry array outside 16 KiB..=1 MiB",
        ));
    }
    let (first, last) = (hdr.first_usable_lba, hdr.last_usable_lba);
    // Primary: LBA 0 MBR, 1 header, array, usable range; backup: usable, array, header.
    if first < 2 || first > last {
        return Err(field(
            at(40),
            "GPT FirstUsableLBA",
            first,
            "is below 2 or above LastUsableLBA",
        ));
    }
    if last >= last_lba {
        return Err(field(
            at(48),
            "GPT LastUsableLBA",
            last,
            "is not below the last LBA",
        ));
    }
    let (lo, hi) = match copy {
        Table::Primary => (2, first),
        Table::Backup => (last + 1, last_lba),
    };
    let e = hdr.entries_lba;
    if e < lo
        || e.checked_add(hdr.array_sectors())
            .is_none_or(|end| end > hi)
    {
        return Err(field(
            at(72),
            "GPT PartitionEntryLBA",
            e,
            "puts the entry array over a header or the usable range",
        ));
    }
    Ok(hdr)
}

fn read_array<D: Read + Seek>(dev: &mut D, copy: Table, h: &Header) -> Result<Vec<u8>, Error> {
    let array = read_at(
        dev,
        h.entries_lba * SECTOR_BYTES,
        h.array_bytes(),
        "reading a partition entry array",
    )?;
    let computed = crc32(&array);
    if computed != h.entries_crc32 {
        return Err(Error::Crc {
            copy,
            offset: h.my_lba * SECTOR_BYTES + 88,
            field: "PartitionEntryArrayCRC32",
            stored: h.entries_crc32,
            computed,
        });
    }
    Ok(array)
}

fn read_entries(array: &[u8], h: &Header) -> Result<Vec<Entry>, Error> {
    let base = h.entries_lba * SECTOR_BYTES;
    let mut out: Vec<Entry> = Vec::new();
    for (i, e) in array.chunks_exact(h.entry_size as usize).enumerate() {
        let index = i as u32 + 1;
        let off = base + (i * h.entry_size as usize) as u64;
        let type_guid = guid(e, 0);
        if type_guid.is_nil() {
            continue;
        }
        let entry = Entry {
            index,
            type_guid,
            unique_guid: guid(e, 16),
            first_lba: le64(e, 32),
            last_lba: le64(e, 40),
            attributes: le64(e, 48),
            name: name(&e[56..128], index, off + 56)?,
        };
        if entry.unique_guid.is_nil() {
            return Err(field(
                off + 16,
                "UniquePartitionGUID",
                0,
                "is nil in a used entry",
            ));
        }
        if entry.first_lba < h.first_usable_lba || entry.first_lba > entry.last_lba {
            return Err(field(
                off + 32,
                "StartingLBA",
                entry.first_lba,
                "is below FirstUsableLBA or above EndingLBA",
            ));
        }
        if entry.last_lba > h.last_usable_lba {
            return Err(field(
                off + 40,
                "EndingLBA",
                entry.last_lba,
                "is above LastUsableLBA",
            ));
        }
        if let Some(o) = out.iter().find(|o| o.unique_guid == entry.unique_guid) {
            return Err(Error::DuplicateGuid {
                first: o.index,
                second: index,
                guid: entry.unique_guid,
            });
        }
        out.push(entry);
    }
    let mut by_start: Vec<&Entry> = out.iter().collect();
    by_start.sort_by_key(|e| e.first_lba);
    for w in by_start.windows(2) {
        if w[1].first_lba <= w[0].last_lba {
            return Err(Error::Overlap {
                first: w[0].index.min(w[1].index),
                second: w[0].index.max(w[1].index),
                lba: w[1].first_lba,
            });
        }
    }
    Ok(out)
}

/// PartitionName: UTF-16LE, ends at the first NUL (or fills all 36 units); the rest is zero.
fn name(raw: &[u8], index: u32, offset: u64) -> Result<String, Error> {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let len = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    if let Some(i) = units[len..].iter().position(|&u| u != 0) {
        return Err(Error::Name {
            index,
            offset: offset + 2 * (len + i) as u64,
            reason: "has non-zero units after its terminating NUL",
        });
    }
    char::decode_utf16(units[..len].iter().copied())
        .collect::<Result<String, _>>()
        .map_err(|_| Error::Name {
            index,
            offset,
            reason: "is not valid UTF-16",
        })
}

impl Gpt {
    /// The [`disk::Layout`] this table describes, if it is one [`disk::write`] could have
    /// written: used slots 1..=n without holes, each of a known [`PartitionKind`] with that
    /// kind's name and attributes, a size that is a multiple of 4096. `write(layout(read(d)))`
    /// gives back `d`'s table.
    pub fn layout(&self) -> Result<disk::Layout, Error> {
        let mut partitions = Vec::with_capacity(self.partitions.len());
        for (i, e) in self.partitions.iter().enumerate() {
            let part = |field, reason: String| Error::Partition {
                index: e.index,
                field,
                reason,
            };
            if e.index as usize != i + 1 {
                return Err(part("slot", format!("follows an empty slot {}", i + 1)));
            }
            let kind = [
                PartitionKind::Esp,
                PartitionKind::RootX86_64,
                PartitionKind::RootX86_64Verity,
            ]
            .into_iter()
            .find(|k| k.type_guid() == e.type_guid)
            .ok_or(Error::UnknownType {
                index: e.index,
                guid: e.type_guid,
            })?;
            if e.name != kind.name() {
                return Err(part(
                    "name",
                    format!("{:?} is not {:?}", e.name, kind.name()),
                ));
            }
            if e.attributes != kind.attributes() {
                return Err(part(
                    "attributes",
                    format!("{:#x} are not {:#x}", e.attributes, kind.attributes()),
                ));
            }
            let bytes = (e.last_lba - e.first_lba + 1) * SECTOR_BYTES;
            if !bytes.is_multiple_of(4096) {
                return Err(part("size", format!("{bytes} is not a multiple of 4096")));
            }
            partitions.push(PlacedPartition {
                spec: PartitionSpec {
                    kind,
                    uuid: e.unique_guid,
                    bytes,
                },
                first_lba: e.first_lba,
                last_lba: e.last_lba,
            });
        }
        Ok(disk::Layout {
            disk_guid: self.primary.disk_guid,
            disk_bytes: self.disk_bytes,
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{derive_uuid, disk_guid, layout, verity_partition_uuids, write};
    use std::io::Cursor;

    fn specs() -> Vec<PartitionSpec> {
        let (r, v) = verity_partition_uuids(&std::array::from_fn(|i| i as u8));
        vec![
            PartitionSpec {
                kind: PartitionKind::Esp,
                uuid: derive_uuid("esp", &[b"y"]),
                bytes: 1 << 20,
            },
            PartitionSpec {
                kind: PartitionKind::RootX86_64,
                uuid: r,
                bytes: 5 * 4096,
            },
            PartitionSpec {
                kind: PartitionKind::RootX86_64Verity,
                uuid: v,
                bytes: 4096,
            },
        ]
    }

    fn disk() -> (disk::Layout, Vec<u8>) {
        let s = specs();
        let l = layout(&s, disk_guid(&s)).unwrap();
        let (a, b, c) = (vec![1u8; 1 << 20], vec![2u8; 5 * 4096], vec![3u8; 4096]);
        let img = write(
            Cursor::new(Vec::new()),
            &l,
            &mut [&mut &a[..], &mut &b[..], &mut &c[..]],
        )
        .unwrap()
        .into_inner();
        (l, img)
    }

    #[test]
    fn crc32_known_answer() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn reads_back_what_disk_write_wrote() {
        let (l, img) = disk();
        let g = read(&mut Cursor::new(&img)).unwrap();
        assert_eq!(g.layout().unwrap(), l);
        assert_eq!(g.partitions[2].name, "root-x86-64-verity");
        assert_eq!(g.partitions[1].attributes, disk::ATTR_READ_ONLY);
        assert_eq!(
            (g.primary.my_lba, g.primary.alternate_lba),
            (1, img.len() as u64 / 512 - 1)
        );
        assert_eq!(
            (g.backup.my_lba, g.backup.alternate_lba),
            (img.len() as u64 / 512 - 1, 1)
        );
        assert_eq!(
            (
                g.primary.num_entries,
                g.primary.entry_size,
                g.primary.entries_lba
            ),
            (128, 128, 2)
        );
        assert_eq!(g.backup.entries_lba, g.backup.last_usable_lba + 1);
    }

    /// Recomputes both headers' CRCs after a test edits a header field.
    fn reseal(img: &mut [u8], header_at: usize) {
        img[header_at + 16..header_at + 20].fill(0);
        let c = crc32(&img[header_at..header_at + 92]);
        img[header_at + 16..header_at + 20].copy_from_slice(&c.to_le_bytes());
    }

    /// Edits entry `i` of both arrays and fixes the array and header CRCs.
    fn edit_entry(img: &mut [u8], i: usize, f: impl Fn(&mut [u8])) {
        let backup = img.len() - 512;
        let backup_array = le64(img, backup + 72) as usize * 512;
        for (hdr, arr) in [(512, 1024), (backup, backup_array)] {
            f(&mut img[arr + 128 * i..arr + 128 * (i + 1)]);
            let c = crc32(&img[arr..arr + 16384]);
            img[hdr + 88..hdr + 92].copy_from_slice(&c.to_le_bytes());
            reseal(img, hdr);
        }
    }

    #[test]
    fn refusals_name_field_and_offset() {
        let (_, img) = disk();
        let err = |img: &[u8]| read(&mut Cursor::new(img)).unwrap_err().to_string();

        let mut b = img.clone();
        b[512] = b'X';
        assert!(
            err(&b).contains("GPT Signature at offset 512"),
            "{}",
            err(&b)
        );
        let mut b = img.clone();
        b[512 + 40] ^= 1;
        assert!(
            err(&b).contains("primary GPT: HeaderCRC32 at offset 528"),
            "{}",
            err(&b)
        );
        let mut b = img.clone();
        b[1024 + 5] ^= 1;
        assert!(
            err(&b).contains("primary GPT: PartitionEntryArrayCRC32 at offset 600"),
            "{}",
            err(&b)
        );
        let mut b = img.clone();
        b[510] = 0;
        assert!(
            err(&b).contains("MBR signature at offset 510"),
            "{}",
            err(&b)
        );
        let mut b = img.clone();
        let n = b.len() - 512;
        b[n + 56] ^= 1; // backup DiskGUID
        reseal(&mut b, n);
        assert!(err(&b).contains("backup GPT: DiskGUID"), "{}", err(&b));
        let mut b = img.clone();
        b[512 + 80] = 0x10; // 16 entries: 2 KiB array
        reseal(&mut b, 512);
        assert!(
            err(&b).contains("NumberOfPartitionEntries at offset 592"),
            "{}",
            err(&b)
        );
        // A disk cut short: the MBR size no longer fits; with that fixed, the primary points past the end.
        let mut b = img[..img.len() - 512].to_vec();
        assert!(err(&b).contains("SizeInLBA at offset 458"), "{}", err(&b));
        let n = (b.len() / 512 - 1) as u32;
        b[458..462].copy_from_slice(&n.to_le_bytes());
        assert!(
            err(&b).contains("GPT AlternateLBA at offset 544"),
            "{}",
            err(&b)
        );
        assert!(err(&img[..1000]).contains("not a whole number"));
        assert!(err(&img[..4096]).contains("too small"));

        // Partition 2 starts inside partition 1.
        let mut b = img.clone();
        edit_entry(&mut b, 1, |e| {
            e[32..40].copy_from_slice(&2100u64.to_le_bytes())
        });
        assert!(
            err(&b).contains("partitions 1 and 2 overlap (LBA 2100)"),
            "{}",
            err(&b)
        );
        // Partition 3 past the usable range.
        let mut b = img.clone();
        edit_entry(&mut b, 2, |e| {
            e[40..48].copy_from_slice(&u64::MAX.to_le_bytes())
        });
        assert!(err(&b).contains("EndingLBA at offset 1320"), "{}", err(&b));
        // Same unique GUID twice.
        let mut b = img.clone();
        let g1: [u8; 16] = b[1024 + 16..1024 + 32].try_into().unwrap();
        edit_entry(&mut b, 1, |e| e[16..32].copy_from_slice(&g1));
        assert!(
            err(&b).contains("partitions 1 and 2 have the same unique GUID"),
            "{}",
            err(&b)
        );
        // A name with an unpaired surrogate, and one with bytes after its NUL.
        let mut b = img.clone();
        edit_entry(&mut b, 0, |e| {
            e[56..58].copy_from_slice(&0xd800u16.to_le_bytes())
        });
        assert!(
            err(&b).contains("partition 1: name at offset 1080 is not valid UTF-16"),
            "{}",
            err(&b)
        );
        let mut b = img.clone();
        edit_entry(&mut b, 0, |e| e[100] = 1);
        assert!(err(&b).contains("non-zero units after"), "{}", err(&b));
        // Backup array differs (both CRCs valid).
        let mut b = img.clone();
        let backup = b.len() - 512;
        let arr = le64(&b, backup + 72) as usize * 512;
        b[arr + 3 * 128] = 1; // an unused slot gets a type byte
        let c = crc32(&b[arr..arr + 16384]);
        b[backup + 88..backup + 92].copy_from_slice(&c.to_le_bytes());
        reseal(&mut b, backup);
        assert!(err(&b).contains("differs from the primary"), "{}", err(&b));

        // Valid GPT, but not one disk::write makes.
        let mut b = img.clone();
        edit_entry(&mut b, 0, |e| e[0] ^= 1);
        let g = read(&mut Cursor::new(&b)).unwrap();
        assert!(matches!(
            g.layout(),
            Err(Error::UnknownType { index: 1, .. })
        ));
        let mut b = img.clone();
        edit_entry(&mut b, 0, |e| e.fill(0));
        let g = read(&mut Cursor::new(&b)).unwrap();
        assert!(g
            .layout()
            .unwrap_err()
            .to_string()
            .contains("follows an empty slot 1"));
    }

    #[test]
    fn mutated_disks_never_panic() {
        let (_, img) = disk();
        // Keep the interesting part small: MBR, primary header + array, backup array + header.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let backup = img.len() - 512;
        for round in 0..3_000 {
            let mut b = img.clone();
            for _ in 0..1 + next() % 3 {
                let i = match next() % 4 {
                    0 => (next() % 512) as usize,
                    1 => 512 + (next() % 92) as usize,
                    2 => 1024 + (next() % 512) as usize,
                    _ => backup + (next() % 92) as usize,
                };
                b[i] = next() as u8;
            }
            if round % 2 == 0 {
                reseal(&mut b, 512);
                reseal(&mut b, backup);
            }
            let _ = read(&mut Cursor::new(&b)).map(|g| g.layout());
        }
    }
}
