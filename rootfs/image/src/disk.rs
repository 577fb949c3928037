//! GPT disks: layout, protective MBR, primary and backup GPT (through the `gpt` crate) and
//! partition contents, with the type GUIDs of the UAPI Discoverable Partitions Specification
//! (ESP, x86-64 root, x86-64 root-verity) and no random GUID anywhere.
//!
//! - Partitions start 1 MiB aligned (LBA 2048 first), 512-byte logical blocks, 128 entries.
//! - Root and root-verity partition UUIDs come from the root hash as systemd-repart derives
//!   them ([`verity_partition_uuids`]): the data partition's UUID is the first 128 bits of the
//!   root hash, the hash partition's the last 128, so `roothash = uuid(root) ‖ uuid(verity)`.
//! - Other GUIDs are [`derive_uuid`] of a domain string and the contents.
//! - Both read-only root partitions carry GPT attribute bit 60 (read-only, as repart sets it
//!   for `Verity=` partitions).
//! - [`crate::gpt_read`] reads a table back, strictly, and [`crate::gpt_read::Gpt::layout`]
//!   turns it into the [`Layout`] that was written.

use gpt::partition_types::{OperatingSystem, Type};
use gpt::{GptConfig, GptDisk};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use uuid::Uuid;

use crate::verity::{self, Verity};

/// EFI system partition (UEFI 2.10 §5.3.3).
pub const ESP_TYPE: Uuid = Uuid::from_u128(0xc12a7328_f81f_11d2_ba4b_00a0c93ec93b);
/// Root partition (x86-64), Discoverable Partitions Specification.
pub const ROOT_X86_64_TYPE: Uuid = Uuid::from_u128(0x4f68bce3_e8cd_4db1_96e7_fbcaf984b709);
/// Root verity partition (x86-64), Discoverable Partitions Specification.
pub const ROOT_X86_64_VERITY_TYPE: Uuid = Uuid::from_u128(0x2c7357ed_ebd2_46d9_aec1_23d437ec2bf5);
/// GPT attribute bit 60: read-only (Discoverable Partitions Specification).
pub const ATTR_READ_ONLY: u64 = 1 << 60;

/// Bytes per logical block.
pub const SECTOR_BYTES: u64 = 512;
/// Partition start alignment.
pub const ALIGN_BYTES: u64 = 1 << 20;
/// Sectors the backup GPT takes at the end of the disk: 32 of entries plus the header.
const BACKUP_GPT_SECTORS: u64 = 33;

/// Errors of this module; each names the partition or structure concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("partition {index} ({name}): size {bytes} is not a positive multiple of 4096")]
    BadPartitionSize {
        index: usize,
        name: String,
        bytes: u64,
    },
    #[error("partition {index} ({name}): contents ended after {got} of {bytes} bytes")]
    ShortContents {
        index: usize,
        name: String,
        got: u64,
        bytes: u64,
    },
    #[error("{what}: expected {expected} contents readers, got {got}")]
    ContentsCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("disk device must be empty before writing, it has {bytes} bytes")]
    DeviceNotEmpty { bytes: u64 },
    #[error("GPT: {0}")]
    Gpt(#[from] gpt::GptError),
    #[error("protective MBR: {0}")]
    Mbr(#[from] gpt::mbr::MBRError),
    #[error("disk I/O while {what}: {source}")]
    Io { what: String, source: io::Error },
}

/// What a partition is for; decides type GUID, name and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionKind {
    Esp,
    RootX86_64,
    RootX86_64Verity,
}

impl PartitionKind {
    pub fn type_guid(self) -> Uuid {
        match self {
            PartitionKind::Esp => ESP_TYPE,
            PartitionKind::RootX86_64 => ROOT_X86_64_TYPE,
            PartitionKind::RootX86_64Verity => ROOT_X86_64_VERITY_TYPE,
        }
    }

    /// The GPT partition name, as systemd-repart names these types by default.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Esp => "esp",
            PartitionKind::RootX86_64 => "root-x86-64",
            PartitionKind::RootX86_64Verity => "root-x86-64-verity",
        }
    }

    pub fn attributes(self) -> u64 {
        match self {
            PartitionKind::Esp => 0,
            PartitionKind::RootX86_64 | PartitionKind::RootX86_64Verity => ATTR_READ_ONLY,
        }
    }
}

/// One partition to place: kind, unique GUID, and size of its contents in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpec {
    pub kind: PartitionKind,
    pub uuid: Uuid,
    /// Contents size; a multiple of 4096. The partition is exactly this long.
    pub bytes: u64,
}

/// A partition with its place on the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedPartition {
    pub spec: PartitionSpec,
    pub first_lba: u64,
    /// Inclusive, as GPT stores it.
    pub last_lba: u64,
}

impl PlacedPartition {
    pub fn offset_bytes(&self) -> u64 {
        self.first_lba * SECTOR_BYTES
    }
}

/// The whole disk: size, GUID, partitions in table order (entry 1 first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub disk_guid: Uuid,
    pub disk_bytes: u64,
    pub partitions: Vec<PlacedPartition>,
}

/// The partition UUIDs systemd-repart gives a verity pair with root hash `root_hash`:
/// (data = first 16 bytes, hash = last 16 bytes), taken as the UUID's big-endian text bytes.
pub fn verity_partition_uuids(root_hash: &[u8; 32]) -> (Uuid, Uuid) {
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    a.copy_from_slice(&root_hash[..16]);
    b.copy_from_slice(&root_hash[16..]);
    (Uuid::from_bytes(a), Uuid::from_bytes(b))
}

/// A UUID derived from `domain` and `parts`: the first 16 bytes of `sha256(domain ‖ 0 ‖
/// for each part: len as u64 LE ‖ part)`, with the version 4 / RFC 9562 variant bits set.
pub fn derive_uuid(domain: &str, parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0]);
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(u).into_uuid()
}

/// The disk GUID for these partitions: [`derive_uuid`] over each partition's type, UUID and
/// size, so it changes whenever any partition does.
pub fn disk_guid(parts: &[PartitionSpec]) -> Uuid {
    let fields: Vec<[u8; 40]> = parts
        .iter()
        .map(|p| {
            let mut f = [0u8; 40];
            f[..16].copy_from_slice(p.kind.type_guid().as_bytes());
            f[16..32].copy_from_slice(p.uuid.as_bytes());
            f[32..].copy_from_slice(&p.bytes.to_le_bytes());
            f
        })
        .collect();
    let refs: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
    derive_uuid("cvm-image gpt disk guid v1", &refs)
}

/// The partitions of a verity-protected image, in table order: ESP (contents `esp`), root
/// (the verity data device, `verity.data_blocks` blocks) and root-verity (the hash device as
/// [`verity::format`] wrote it). Root and root-verity UUIDs are [`verity_partition_uuids`];
/// the ESP's is [`derive_uuid`] of `"cvm-image esp partition uuid v1"` and the ESP's sha256.
pub fn verity_image_partitions(esp: &[u8], verity: &Verity) -> [PartitionSpec; 3] {
    let (root_uuid, verity_uuid) = verity_partition_uuids(&verity.root_hash);
    let esp_digest: [u8; 32] = Sha256::digest(esp).into();
    [
        PartitionSpec {
            kind: PartitionKind::Esp,
            uuid: derive_uuid("cvm-image esp partition uuid v1", &[&esp_digest]),
            bytes: esp.len() as u64,
        },
        PartitionSpec {
            kind: PartitionKind::RootX86_64,
            uuid: root_uuid,
            bytes: verity.data_blocks * u64::from(verity::BLOCK_BYTES),
        },
        PartitionSpec {
            kind: PartitionKind::RootX86_64Verity,
            uuid: verity_uuid,
            bytes: verity.hash_bytes,
        },
    ]
}

/// Place `parts` in order, each 1 MiB aligned; the disk ends at the next MiB boundary that
/// leaves room for the backup GPT.
pub fn layout(parts: &[PartitionSpec], disk_guid: Uuid) -> Result<Layout, Error> {
    let mut next = ALIGN_BYTES;
    let mut placed = Vec::with_capacity(parts.len());
    for (index, p) in parts.iter().enumerate() {
        if p.bytes == 0 || p.bytes % 4096 != 0 {
            return Err(Error::BadPartitionSize {
                index,
                name: p.kind.name().into(),
                bytes: p.bytes,
            });
        }
        let first_lba = next / SECTOR_BYTES;
        let last_lba = first_lba + p.bytes / SECTOR_BYTES - 1;
        placed.push(PlacedPartition {
            spec: *p,
            first_lba,
            last_lba,
        });
        next = (next + p.bytes).div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
    }
    let end = placed
        .last()
        .map_or(ALIGN_BYTES, |p| (p.last_lba + 1) * SECTOR_BYTES);
    let disk_bytes = (end + BACKUP_GPT_SECTORS * SECTOR_BYTES).div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
    Ok(Layout {
        disk_guid,
        disk_bytes,
        partitions: placed,
    })
}

/// Write the disk described by `layout` to `dev`, which must be empty (a new file or an empty
/// `Cursor<Vec<u8>>`): protective MBR, both GPTs, then each partition's contents read from
/// `contents[i]` (exactly `bytes` bytes each). Unwritten gaps read as zeros. Returns `dev`.
pub fn write<D>(mut dev: D, layout: &Layout, contents: &mut [&mut dyn Read]) -> Result<D, Error>
where
    D: Read + Write + Seek + std::fmt::Debug,
{
    if contents.len() != layout.partitions.len() {
        return Err(Error::ContentsCount {
            what: "disk::write",
            expected: layout.partitions.len(),
            got: contents.len(),
        });
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    let len = dev
        .seek(SeekFrom::End(0))
        .map_err(io("checking the device size"))?;
    if len != 0 {
        return Err(Error::DeviceNotEmpty { bytes: len });
    }
    // Extend to the full size first: the gpt crate puts the backup header at the end.
    dev.seek(SeekFrom::Start(layout.disk_bytes - 1))
        .map_err(io("extending the device"))?;
    dev.write_all(&[0]).map_err(io("extending the device"))?;

    let sectors = layout.disk_bytes / SECTOR_BYTES;
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut dev)?;

    let mut disk: GptDisk<D> = GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(dev, Some(layout.disk_guid))?;
    let table: BTreeMap<u32, gpt::partition::Partition> = layout
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let entry = gpt::partition::Partition {
                part_type_guid: Type {
                    guid: p.spec.kind.type_guid(),
                    os: OperatingSystem::None,
                },
                part_guid: p.spec.uuid,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                flags: p.spec.kind.attributes(),
                name: p.spec.kind.name().to_string(),
            };
            (i as u32 + 1, entry)
        })
        .collect();
    disk.update_partitions(table)?;
    let mut dev = disk.write()?;

    for (index, (p, src)) in layout
        .partitions
        .iter()
        .zip(contents.iter_mut())
        .enumerate()
    {
        let what = format!("writing partition {index} ({})", p.spec.kind.name());
        dev.seek(SeekFrom::Start(p.offset_bytes()))
            .map_err(io(&what))?;
        let got = io::copy(&mut src.take(p.spec.bytes), &mut dev).map_err(io(&what))?;
        if got != p.spec.bytes {
            return Err(Error::ShortContents {
                index,
                name: p.spec.kind.name().into(),
                got,
                bytes: p.spec.bytes,
            });
        }
    }
    dev.flush().map_err(io("flushing the device"))?;
    Ok(dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn specs() -> Vec<PartitionSpec> {
        let (r, v) = verity_partition_uuids(&[0x11; 32]);
        vec![
            PartitionSpec {
                kind: PartitionKind::Esp,
                uuid: derive_uuid("esp", &[b"x"]),
                bytes: 2 << 20,
            },
            PartitionSpec {
                kind: PartitionKind::RootX86_64,
                uuid: r,
                bytes: 3 * 4096,
            },
            PartitionSpec {
                kind: PartitionKind::RootX86_64Verity,
                uuid: v,
                bytes: 4096,
            },
        ]
    }

    fn build() -> Vec<u8> {
        let s = specs();
        let l = layout(&s, disk_guid(&s)).unwrap();
        let (a, b, c) = (vec![0xaa; 2 << 20], vec![0xbb; 3 * 4096], vec![0xcc; 4096]);
        write(
            Cursor::new(Vec::new()),
            &l,
            &mut [&mut &a[..], &mut &b[..], &mut &c[..]],
        )
        .unwrap()
        .into_inner()
    }

    #[test]
    fn layout_is_aligned() {
        let s = specs();
        let l = layout(&s, disk_guid(&s)).unwrap();
        let starts: Vec<u64> = l.partitions.iter().map(|p| p.first_lba).collect();
        assert_eq!(starts, vec![2048, 3 * 2048, 4 * 2048]);
        assert_eq!(l.partitions[1].last_lba, 3 * 2048 + 24 - 1);
        assert_eq!(l.disk_bytes, 5 << 20);
    }

    #[test]
    fn writes_readable_gpt_with_our_guids() {
        let img = build();
        assert_eq!(img.len(), 5 << 20);
        assert_eq!(&img[510..512], &[0x55, 0xaa]);
        assert_eq!(&img[512..520], b"EFI PART");
        assert_eq!(&img[img.len() - 512..img.len() - 504], b"EFI PART");
        let disk = GptConfig::new()
            .open_from_device(Cursor::new(img.clone()))
            .unwrap();
        assert_eq!(*disk.guid(), disk_guid(&specs()));
        let parts: Vec<_> = disk.partitions().values().collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].part_type_guid.guid, ROOT_X86_64_TYPE);
        assert_eq!(
            parts[1].part_guid.to_string(),
            "11111111-1111-1111-1111-111111111111"
        );
        assert_eq!(parts[2].name, "root-x86-64-verity");
        assert_eq!(parts[2].flags, ATTR_READ_ONLY);
        assert_eq!(img[3 * 2048 * 512], 0xbb);
        assert_eq!(img[4 * 2048 * 512 + 4095], 0xcc);
        assert_eq!(img[4 * 2048 * 512 + 4096], 0);
        assert!(img == build(), "two builds are bit-identical");
    }

    #[test]
    fn verity_uuids_are_the_root_hash_halves() {
        let mut root = [0u8; 32];
        for (i, b) in root.iter_mut().enumerate() {
            *b = i as u8;
        }
        let (a, b) = verity_partition_uuids(&root);
        assert_eq!(format!("{}{}", a.simple(), b.simple()), hex::encode(root));
    }

    #[test]
    fn rejects_bad_sizes_and_short_contents() {
        let mut s = specs();
        s[1].bytes = 4097;
        assert!(matches!(
            layout(&s, Uuid::nil()),
            Err(Error::BadPartitionSize { index: 1, .. })
        ));
        let s = specs();
        let l = layout(&s, Uuid::nil()).unwrap();
        let (mut a, mut b, mut c) = (&[0u8; 10][..], &[0u8; 0][..], &[0u8; 0][..]);
        let e = write(Cursor::new(Vec::new()), &l, &mut [&mut a, &mut b, &mut c]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ShortContents {
                    index: 0,
                    got: 10,
                    ..
                }
            ),
            "{e}"
        );
        let e = write(Cursor::new(vec![1]), &l, &mut []).unwrap_err();
        assert!(matches!(e, Error::ContentsCount { .. }), "{e}");
    }
}
