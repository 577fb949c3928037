//! The EFI system partition: a FAT32 file system built in memory with the `fatfs` crate,
//! holding `EFI/BOOT/BOOTX64.EFI` (the kernel's EFI stub, UEFI 2.10 §3.5.1.1 removable-media
//! default path) and any other files the caller passes.
//!
//! Reproducible by construction: the volume serial is derived from the files
//! ([`volume_id`]), every directory-entry timestamp is the fixed `SOURCE_DATE_EPOCH`
//! ([`FixedTime`]), files are added in path order, and `fatfs` is built without `chrono`, so
//! no wall clock is reachable. The file system is unmounted cleanly (dirty flag cleared).

use fatfs::{
    Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider,
};
use sha2::{Digest, Sha256};
use std::io::{self, Cursor, Write};

/// The removable-media boot path for x86-64 (UEFI 2.10 §3.5.1.1).
pub const BOOTX64_PATH: &str = "EFI/BOOT/BOOTX64.EFI";
/// Domain-separation prefix of [`volume_id`].
pub const VOLUME_ID_DOMAIN: &[u8] = b"cvm-image esp volume id v1\0";
/// Volume label written to the boot sector and the root directory (11 bytes, space padded).
pub const VOLUME_LABEL: [u8; 11] = *b"ESP        ";
/// Smallest ESP [`recommended_bytes`] gives: 64 MiB, so FAT32 with 512-byte clusters fits
/// (FAT32 needs at least 65,525 clusters).
pub const MIN_ESP_BYTES: u64 = 64 << 20;

const MIB: u64 = 1 << 20;

/// Errors of this module; each names the ESP path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "ESP file {path:?}: path must be relative and '/'-separated, each part an 8.3 short name (no LFN entries are written)"
    )]
    BadPath { path: String },
    #[error("ESP file {path:?} appears twice")]
    Duplicate { path: String },
    #[error("ESP size {bytes} is not a positive multiple of 1 MiB")]
    BadSize { bytes: u64 },
    #[error("FAT {op} {path:?}: {source}")]
    Fat {
        op: &'static str,
        path: String,
        source: io::Error,
    },
}

/// One file to put on the ESP.
#[derive(Clone, Copy, Debug)]
pub struct EspFile<'a> {
    /// Path from the root, e.g. [`BOOTX64_PATH`]; parent directories are created.
    pub path: &'a str,
    pub contents: &'a [u8],
}

/// Everything [`build`] needs besides the files.
#[derive(Clone, Copy, Debug)]
pub struct EspConfig {
    /// Size of the file system in bytes (a multiple of 1 MiB; see [`recommended_bytes`]).
    pub bytes: u64,
    /// Timestamp of every directory entry, seconds since 1970 UTC (clamped to the FAT range
    /// 1980..2107). Use the build's `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
}

/// A `fatfs` time provider that always answers the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedTime(pub DateTime);

impl FixedTime {
    /// The DOS date-time of `unix_seconds` (UTC), clamped to 1980-01-01..2107-12-31.
    /// DOS times have 2-second resolution; `fatfs` keeps the odd second in the 10 ms field.
    pub fn from_unix(unix_seconds: u64) -> FixedTime {
        const MIN: u64 = 315_532_800; // 1980-01-01T00:00:00Z
        const MAX: u64 = 4_354_819_199; // 2107-12-31T23:59:59Z
        let t = unix_seconds.clamp(MIN, MAX);
        let (days, secs) = (t / 86_400, t % 86_400);
        let (year, month, day) = civil_from_days(days as i64);
        FixedTime(DateTime {
            date: Date {
                year: year as u16,
                month: month as u16,
                day: day as u16,
            },
            time: Time {
                hour: (secs / 3600) as u16,
                min: (secs / 60 % 60) as u16,
                sec: (secs % 60) as u16,
                millis: 0,
            },
        })
    }
}

impl TimeProvider for FixedTime {
    fn get_current_date(&self) -> Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> DateTime {
        self.0
    }
}

/// An upper-case 8.3 name: this crate writes short directory entries only (fatfs without its
/// `alloc` feature writes no long-name entries), so every name must fit one exactly.
fn is_short_name(name: &str) -> bool {
    let ok = |s: &str, max: usize| {
        (1..=max).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
    };
    match name.split_once('.') {
        Some((base, ext)) => ok(base, 8) && ok(ext, 3),
        None => ok(name, 8),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The FAT volume serial for these files: the first 4 bytes (little endian) of
/// `sha256(VOLUME_ID_DOMAIN ‖ for each file in path order: len(path) ‖ path ‖ len(contents) ‖
/// contents)`, lengths as u64 little endian.
pub fn volume_id(files: &[EspFile<'_>]) -> u32 {
    let mut sorted: Vec<&EspFile<'_>> = files.iter().collect();
    sorted.sort_by_key(|f| f.path);
    let mut h = Sha256::new();
    h.update(VOLUME_ID_DOMAIN);
    for f in sorted {
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update((f.contents.len() as u64).to_le_bytes());
        h.update(f.contents);
    }
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// An ESP size that fits `files` with room to spare: contents plus 25% plus 4 MiB, rounded up
/// to whole MiB, at least [`MIN_ESP_BYTES`].
pub fn recommended_bytes(files: &[EspFile<'_>]) -> u64 {
    let contents: u64 = files.iter().map(|f| f.contents.len() as u64).sum();
    (contents + contents / 4 + 4 * MIB)
        .div_ceil(MIB)
        .max(MIN_ESP_BYTES.div_ceil(MIB))
        * MIB
}

/// Build the ESP image: FAT32, 512-byte sectors, label [`VOLUME_LABEL`], serial
/// [`volume_id`], with `files` in path order.
pub fn build(files: &[EspFile<'_>], config: &EspConfig) -> Result<Vec<u8>, Error> {
    if config.bytes == 0 || config.bytes % MIB != 0 {
        return Err(Error::BadSize {
            bytes: config.bytes,
        });
    }
    let mut sorted: Vec<&EspFile<'_>> = files.iter().collect();
    sorted.sort_by_key(|f| f.path);
    for (i, f) in sorted.iter().enumerate() {
        let ok = f.path.split('/').all(is_short_name);
        if !ok {
            return Err(Error::BadPath {
                path: f.path.to_string(),
            });
        }
        if i > 0 && sorted[i - 1].path.eq_ignore_ascii_case(f.path) {
            return Err(Error::Duplicate {
                path: f.path.to_string(),
            });
        }
    }
    fn fat<'p>(op: &'static str, path: &'p str) -> impl FnOnce(io::Error) -> Error + 'p {
        move |source| Error::Fat {
            op,
            path: path.to_string(),
            source,
        }
    }

    let mut disk = Cursor::new(vec![0u8; config.bytes as usize]);
    let options = FormatVolumeOptions::new()
        .fat_type(FatType::Fat32)
        .bytes_per_sector(512)
        .volume_id(volume_id(files))
        .volume_label(VOLUME_LABEL);
    fatfs::format_volume(&mut disk, options).map_err(fat("format", "/"))?;

    // fatfs keeps a `&'static dyn TimeProvider`: leak one small value per ESP built.
    let time: &'static FixedTime =
        Box::leak(Box::new(FixedTime::from_unix(config.source_date_epoch)));
    let fs = FileSystem::new(
        &mut disk,
        FsOptions::new()
            .time_provider(time)
            .update_accessed_date(false),
    )
    .map_err(fat("mount", "/"))?;
    {
        let root = fs.root_dir();
        for f in &sorted {
            // `create_dir` makes one level (or opens it); walk the parents one by one.
            let (parents, name) = f.path.rsplit_once('/').unwrap_or(("", f.path));
            let mut dir = root.clone();
            for part in parents.split('/').filter(|p| !p.is_empty()) {
                dir = dir
                    .create_dir(part)
                    .map_err(fat("create directory", f.path))?;
            }
            let mut file = dir.create_file(name).map_err(fat("create file", f.path))?;
            file.truncate().map_err(fat("truncate", f.path))?;
            file.write_all(f.contents).map_err(fat("write", f.path))?;
            file.flush().map_err(fat("flush", f.path))?;
        }
    }
    // Count the free clusters now, so unmount writes them to FSInfo (fatfs leaves the count
    // "unknown" after formatting, which fsck.vfat reports).
    fs.stats().map_err(fat("count free clusters", "/"))?;
    fs.unmount().map_err(fat("unmount", "/"))?;
    let mut img = disk.into_inner();
    zero_dotdot_to_root(&mut img);
    Ok(img)
}

/// fatfs 0.3.6 gives a directory made in the root a `..` entry pointing at the root's first
/// cluster; the FAT specification (Microsoft FAT32 File System Specification 1.03, "FAT
/// Directory Structure") says `..` pointing at the root holds cluster 0, and fsck.vfat
/// repairs anything else. Set those entries to 0. The image is this module's own output, so
/// its BPB is trusted; only the root's first cluster is scanned (it holds a few entries).
fn zero_dotdot_to_root(img: &mut [u8]) {
    let u16_at = |b: &[u8], o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
    let bytes_per_sector = u16_at(img, 11);
    let cluster_bytes = usize::from(img[13]) * bytes_per_sector;
    let data_start = (u16_at(img, 14) + usize::from(img[16]) * u32_at(img, 36)) * bytes_per_sector;
    let root_cluster = u32_at(img, 44);
    let cluster_offset = |c: usize| data_start + (c - 2) * cluster_bytes;
    let root = cluster_offset(root_cluster);
    for entry in (root..root + cluster_bytes).step_by(32) {
        let (first, attr) = (img[entry], img[entry + 11]);
        if first == 0 {
            break;
        }
        if first == 0xe5 || attr & 0x10 == 0 || attr == 0x0f || img[entry..entry + 2] == *b". " {
            continue;
        }
        let child = (u16_at(img, entry + 20) << 16) | u16_at(img, entry + 26);
        let dotdot = cluster_offset(child) + 32;
        let points_at_root =
            (u16_at(img, dotdot + 20) << 16) | u16_at(img, dotdot + 26) == root_cluster;
        if img[dotdot..dotdot + 11] == *b"..         " && points_at_root {
            img[dotdot + 20..dotdot + 22].fill(0);
            img[dotdot + 26..dotdot + 28].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            (
                BOOTX64_PATH.to_string(),
                (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            ),
            ("LOADER/ENTRIES.SRL".to_string(), b"type1\n".to_vec()),
        ]
    }

    fn esp(files: &[(String, Vec<u8>)], epoch: u64) -> Vec<u8> {
        let f: Vec<EspFile<'_>> = files
            .iter()
            .map(|(p, c)| EspFile {
                path: p,
                contents: c,
            })
            .collect();
        build(
            &f,
            &EspConfig {
                bytes: recommended_bytes(&f),
                source_date_epoch: epoch,
            },
        )
        .unwrap()
    }

    #[test]
    fn files_read_back_with_fixed_times() {
        let fs_files = files();
        let img = esp(&fs_files, 1_704_067_200);
        let fs = FileSystem::new(Cursor::new(img), FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), FatType::Fat32);
        let f: Vec<EspFile<'_>> = fs_files
            .iter()
            .map(|(p, c)| EspFile {
                path: p,
                contents: c,
            })
            .collect();
        assert_eq!(fs.volume_id(), volume_id(&f));
        for (path, contents) in &fs_files {
            let mut back = Vec::new();
            fs.root_dir()
                .open_file(path)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(&back, contents, "{path}");
        }
        let boot = fs.root_dir().open_dir("EFI/BOOT").unwrap();
        let e = boot
            .iter()
            .map(|e| e.unwrap())
            .find(|e| e.short_file_name_as_bytes() == b"BOOTX64.EFI")
            .unwrap();
        let want = DateTime {
            date: Date {
                year: 2024,
                month: 1,
                day: 1,
            },
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        };
        assert_eq!(e.modified(), want);
        assert_eq!(e.created(), want);
    }

    #[test]
    fn reproducible_and_content_addressed() {
        let a = esp(&files(), 1_704_067_200);
        assert!(a == esp(&files(), 1_704_067_200));
        assert!(
            a != esp(&files(), 1_704_067_202),
            "the epoch reaches the directory entries"
        );
        let mut other = files();
        other[1].1.push(b'!');
        let ids = |fs: &[(String, Vec<u8>)]| {
            volume_id(
                &fs.iter()
                    .map(|(p, c)| EspFile {
                        path: p,
                        contents: c,
                    })
                    .collect::<Vec<_>>(),
            )
        };
        assert_ne!(
            ids(&files()),
            ids(&other),
            "one changed byte changes the serial"
        );
        let mut reordered = files();
        reordered.reverse();
        assert_eq!(
            ids(&files()),
            ids(&reordered),
            "input order does not matter"
        );
        assert!(a == esp(&reordered, 1_704_067_200));
    }

    #[test]
    fn dotdot_of_root_children_is_cluster_zero() {
        let img = esp(&files(), 0);
        let u16_at = |o: usize| usize::from(u16::from_le_bytes([img[o], img[o + 1]]));
        let cluster_of = |entry: usize| (u16_at(entry + 20) << 16) | u16_at(entry + 26);
        // 512-byte sectors and clusters, 8 reserved sectors, 2 FATs, root in cluster 2.
        let spf = u32::from_le_bytes([img[36], img[37], img[38], img[39]]) as usize;
        let data = (8 + 2 * spf) * 512;
        let root = data;
        let efi = (root..root + 512)
            .step_by(32)
            .find(|&e| &img[e..e + 11] == b"EFI        ")
            .unwrap();
        let efi_dir = data + (cluster_of(efi) - 2) * 512;
        assert_eq!(&img[efi_dir + 32..efi_dir + 43], b"..         ");
        assert_eq!(
            cluster_of(efi_dir + 32),
            0,
            "EFI/.. must be cluster 0 (the root)"
        );
        let boot = (efi_dir..efi_dir + 512)
            .step_by(32)
            .find(|&e| &img[e..e + 11] == b"BOOT       ")
            .unwrap();
        let boot_dir = data + (cluster_of(boot) - 2) * 512;
        assert_eq!(
            cluster_of(boot_dir + 32),
            cluster_of(efi),
            "EFI/BOOT/.. is EFI"
        );
    }

    #[test]
    fn dos_dates() {
        let d = |t| FixedTime::from_unix(t).0;
        assert_eq!(d(0), d(315_532_800)); // clamped to 1980-01-01
        let t = d(1_709_210_096); // 2024-02-29T12:34:56Z
        assert_eq!((t.date.year, t.date.month, t.date.day), (2024, 2, 29));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (12, 34, 56));
        assert_eq!(d(u64::MAX).date.year, 2107);
    }

    #[test]
    fn bad_inputs() {
        let c = EspConfig {
            bytes: MIN_ESP_BYTES,
            source_date_epoch: 0,
        };
        for p in [
            "",
            "/EFI",
            "EFI//X",
            "EFI/../X",
            "./X",
            "efi/boot",
            "EFI/LONGNAME9.EFI",
            "A.EFIX",
            "A.B.C",
        ] {
            assert!(
                matches!(
                    build(
                        &[EspFile {
                            path: p,
                            contents: b""
                        }],
                        &c
                    ),
                    Err(Error::BadPath { .. })
                ),
                "{p:?}"
            );
        }
        let dup = [
            EspFile {
                path: "A",
                contents: b"",
            },
            EspFile {
                path: "A",
                contents: b"",
            },
        ];
        assert!(matches!(build(&dup, &c), Err(Error::Duplicate { .. })));
        let c = EspConfig {
            bytes: MIN_ESP_BYTES + 1,
            source_date_epoch: 0,
        };
        assert!(matches!(build(&[], &c), Err(Error::BadSize { .. })));
    }
}
