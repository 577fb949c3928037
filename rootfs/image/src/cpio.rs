//! cpio "newc" archives (SVR4 without CRC, magic `070701`), the format the kernel's initramfs
//! unpacker reads (Documentation/driver-api/early-userspace/buffer-format.rst):
//!
//! - [`Writer`]: a deterministic writer (mtime 0, uid/gid 0, inode numbers in entry order, no
//!   padding after the trailer), used for the boot smoke test's initramfs;
//! - [`parse`]: a strict, bounds-checked reader for archives from elsewhere (untrusted input:
//!   it answers every malformed archive with an [`Error`] naming the offset and the field, and
//!   has the fuzz target `cpio`).
//!
//! A header is the magic and 13 fields of 8 ASCII hex digits (110 bytes), then the NUL-terminated
//! name, zero-padded to a multiple of 4, then the data, zero-padded to a multiple of 4. The
//! entry named `TRAILER!!!` ends the archive; only zero bytes may follow it (GNU cpio pads to
//! 512-byte blocks).

/// Magic of a newc header.
pub const MAGIC: &[u8; 6] = b"070701";
/// Header length: magic + 13 × 8 hex digits.
pub const HEADER_BYTES: usize = 110;
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// Most entries [`parse`] accepts (the trailer not counted).
pub const MAX_ENTRIES: usize = 1 << 20;
/// Longest name [`parse`] accepts, NUL included (Linux `PATH_MAX`).
pub const MAX_NAME_BYTES: u32 = 4096;

/// File type bits of `mode` (`S_IFMT`) and the types newc carries.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// The 13 header fields in order, as named in buffer-format.rst.
const FIELDS: [&str; 13] = [
    "c_ino",
    "c_mode",
    "c_uid",
    "c_gid",
    "c_nlink",
    "c_mtime",
    "c_filesize",
    "c_maj",
    "c_min",
    "c_rmaj",
    "c_rmin",
    "c_namesize",
    "c_chksum",
];

/// A deterministic newc writer: every header has mtime 0 and uid/gid 0, inode numbers count
/// from 1 in entry order, directories have nlink 2 and everything else 1.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
    ino: u32,
}

impl Writer {
    /// Append one entry: `mode` includes the file type bits; `rdev` = (major, minor) for
    /// device nodes; `data` is the file content or the symlink target.
    ///
    /// # Panics
    /// If `name` contains a NUL byte or `name` or `data` is 4 GiB or longer (a newc field
    /// holds 32 bits); callers build archives from their own, known-small files.
    pub fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let size = u32::try_from(data.len()).expect("cpio entry data is below 4 GiB");
        self.header(self.ino, mode, nlink, size, rdev, name);
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, size: u32, rdev: (u32, u32), name: &str) {
        assert!(
            !name.contains('\0'),
            "cpio entry name {name:?} contains NUL"
        );
        let namesize = u32::try_from(name.len() + 1).expect("cpio entry name is below 4 GiB");
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.buf.extend_from_slice(MAGIC);
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// Append the `TRAILER!!!` entry and return the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(0, 0, 1, 0, (0, 0), TRAILER);
        self.buf
    }
}

/// One archive member as [`parse`] found it; `data` and `name` borrow from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Offset of the entry's header in the archive.
    pub offset: usize,
    pub ino: u32,
    /// Permission and file type bits (`S_IFMT`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// (major, minor) of the device holding the file.
    pub dev: (u32, u32),
    /// (major, minor) of a character or block device node.
    pub rdev: (u32, u32),
    /// Path as stored (no leading `/` check: that is the extractor's business).
    pub name: &'a str,
    /// File content, or the target of a symbolic link.
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// `mode & S_IFMT`.
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// Why an archive was refused; `offset` is where in the archive the problem is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cpio: {field} at offset {offset}: need {need} bytes, {have} left")]
    Truncated {
        offset: usize,
        field: &'static str,
        need: usize,
        have: usize,
    },
    #[error("cpio: header at offset {offset}: magic {found:?}, expected \"070701\" (newc)")]
    BadMagic { offset: usize, found: String },
    #[error("cpio: {field} at offset {offset}: {found:?} is not 8 hex digits")]
    BadHex {
        offset: usize,
        field: &'static str,
        found: String,
    },
    #[error("cpio: {field} at offset {offset}: value {value:#x} {reason}")]
    BadValue {
        offset: usize,
        field: &'static str,
        value: u32,
        reason: &'static str,
    },
    #[error("cpio: name at offset {offset}: {reason}")]
    BadName { offset: usize, reason: &'static str },
    #[error("cpio: {field} at offset {offset}: padding byte is not zero")]
    NonZeroPadding { offset: usize, field: &'static str },
    #[error("cpio: more than {max} entries (entry at offset {offset})")]
    TooManyEntries { offset: usize, max: usize },
    #[error("cpio: archive ends at offset {offset} without a {TRAILER} entry")]
    NoTrailer { offset: usize },
    #[error("cpio: non-zero byte at offset {offset} after the {TRAILER} entry")]
    TrailingData { offset: usize },
}

/// Bounds-checked cursor over the archive.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], Error> {
        let have = self.buf.len() - self.pos;
        if n > have {
            return Err(Error::Truncated {
                offset: self.pos,
                field,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Skips the zero padding up to the next multiple of 4.
    fn pad(&mut self, field: &'static str) -> Result<(), Error> {
        let start = self.pos;
        let n = (4 - self.pos % 4) % 4;
        let pad = self.take(n, field)?;
        match pad.iter().position(|&b| b != 0) {
            Some(i) => Err(Error::NonZeroPadding {
                offset: start + i,
                field,
            }),
            None => Ok(()),
        }
    }
}

fn hex_field(raw: &[u8], offset: usize, field: &'static str) -> Result<u32, Error> {
    let bad = || Error::BadHex {
        offset,
        field,
        found: String::from_utf8_lossy(raw).into_owned(),
    };
    raw.iter().try_fold(0u32, |acc, &b| {
        let d = char::from(b).to_digit(16).ok_or_else(bad)?;
        Ok((acc << 4) | d)
    })
}

/// Parses a whole newc archive: every entry before the trailer, in archive order.
///
/// Strict: each header must carry the `070701` magic and 8 hex digits per field, `c_chksum` 0,
/// a known file type, a non-empty UTF-8 name of at most [`MAX_NAME_BYTES`] with its only NUL at
/// the end, zero padding; directories and device nodes must have no data; the archive must end
/// with `TRAILER!!!` followed by nothing but zero bytes; at most [`MAX_ENTRIES`] entries.
/// Hard links are reported as stored (GNU cpio puts the data on the last link only).
pub fn parse(archive: &[u8]) -> Result<Vec<Entry<'_>>, Error> {
    let mut c = Cursor {
        buf: archive,
        pos: 0,
    };
    let mut entries = Vec::new();
    loop {
        let offset = c.pos;
        if offset == archive.len() {
            return Err(Error::NoTrailer { offset });
        }
        let magic = c.take(MAGIC.len(), "magic")?;
        if magic != MAGIC {
            return Err(Error::BadMagic {
                offset,
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let mut v = [0u32; 13];
        for (i, field) in FIELDS.iter().enumerate() {
            let at = c.pos;
            v[i] = hex_field(c.take(8, field)?, at, field)?;
        }
        let field_offset = |i: usize| offset + MAGIC.len() + 8 * i;
        let [ino, mode, uid, gid, nlink, mtime, filesize, maj, min, rmaj, rmin, namesize, chksum] =
            v;
        if chksum != 0 {
            return Err(Error::BadValue {
                offset: field_offset(12),
                field: "c_chksum",
                value: chksum,
                reason: "is not 0 (newc carries no checksum)",
            });
        }
        if !(2..=MAX_NAME_BYTES).contains(&namesize) {
            return Err(Error::BadValue {
                offset: field_offset(11),
                field: "c_namesize",
                value: namesize,
                reason: "is outside 2..=4096 (a name and its NUL)",
            });
        }
        let name_at = c.pos;
        let raw = c.take(namesize as usize, "name")?;
        // namesize >= 2, so `raw` has a last byte.
        let (&last, text) = raw.split_last().unwrap_or((&1, &[]));
        if last != 0 {
            return Err(Error::BadName {
                offset: name_at + raw.len() - 1,
                reason: "does not end with NUL at c_namesize",
            });
        }
        if let Some(i) = text.iter().position(|&b| b == 0) {
            return Err(Error::BadName {
                offset: name_at + i,
                reason: "has a NUL before its end",
            });
        }
        let name = std::str::from_utf8(text).map_err(|e| Error::BadName {
            offset: name_at + e.valid_up_to(),
            reason: "is not UTF-8",
        })?;
        c.pad("name padding")?;
        if name == TRAILER {
            if filesize != 0 {
                return Err(Error::BadValue {
                    offset: field_offset(6),
                    field: "c_filesize",
                    value: filesize,
                    reason: "of the trailer is not 0",
                });
            }
            let rest = &archive[c.pos..];
            if let Some(i) = rest.iter().position(|&b| b != 0) {
                return Err(Error::TrailingData { offset: c.pos + i });
            }
            return Ok(entries);
        }
        if entries.len() == MAX_ENTRIES {
            return Err(Error::TooManyEntries {
                offset,
                max: MAX_ENTRIES,
            });
        }
        let kind = mode & S_IFMT;
        let known = [
            S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO,
        ];
        if !known.contains(&kind) || mode & !(S_IFMT | 0o7777) != 0 {
            return Err(Error::BadValue {
                offset: field_offset(1),
                field: "c_mode",
                value: mode,
                reason: "has no known file type or bits above S_IFMT",
            });
        }
        if filesize != 0 && ![S_IFREG, S_IFLNK].contains(&kind) {
            return Err(Error::BadValue {
                offset: field_offset(6),
                field: "c_filesize",
                value: filesize,
                reason: "is not 0 for an entry that is neither a file nor a symlink",
            });
        }
        if kind == S_IFLNK && filesize == 0 {
            return Err(Error::BadValue {
                offset: field_offset(6),
                field: "c_filesize",
                value: 0,
                reason: "is 0 for a symlink (no target)",
            });
        }
        let data = c.take(filesize as usize, "data")?;
        c.pad("data padding")?;
        entries.push(Entry {
            offset,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            dev: (maj, min),
            rdev: (rmaj, rmin),
            name,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive the boot smoke test builds, with a fake busybox.
    fn sample() -> Vec<u8> {
        let mut c = Writer::default();
        for d in ["bin", "dev", "proc", "sys"] {
            c.entry(d, 0o040755, b"", (0, 0));
        }
        c.entry("bin/busybox", 0o100755, b"\x7fELF fake", (0, 0));
        c.entry("bin/sh", 0o120777, b"busybox", (0, 0));
        c.entry("dev/console", 0o020600, b"", (5, 1));
        c.entry("init", 0o100755, b"#!/bin/sh\n", (0, 0));
        c.finish()
    }

    #[test]
    fn newc_header_layout() {
        let mut c = Writer::default();
        c.entry("init", 0o100755, b"abc", (0, 0));
        let b = c.finish();
        // 110-byte header, "init\0" (5) -> 115, padded to 116; data 3 -> 119, padded to 120.
        assert_eq!(&b[..6], b"070701");
        assert_eq!(&b[6..14], b"00000001", "ino");
        assert_eq!(&b[14..22], b"000081ed", "mode 0100755");
        assert_eq!(&b[54..62], b"00000003", "filesize");
        assert_eq!(&b[94..102], b"00000005", "namesize includes NUL");
        assert_eq!(&b[110..115], b"init\0");
        assert_eq!(&b[116..119], b"abc");
        assert_eq!(&b[120..126], b"070701");
        assert_eq!(&b[230..241], b"TRAILER!!!\0");
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn reader_round_trips_the_writer() {
        let a = sample();
        let e = parse(&a).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "proc",
                "sys",
                "bin/busybox",
                "bin/sh",
                "dev/console",
                "init"
            ]
        );
        let inos: Vec<u32> = e.iter().map(|e| e.ino).collect();
        assert_eq!(inos, (1..=8).collect::<Vec<_>>());
        assert_eq!((e[0].mode, e[0].nlink, e[0].data), (0o040755, 2, &b""[..]));
        assert_eq!(e[4].data, b"\x7fELF fake");
        assert_eq!((e[5].file_type(), e[5].data), (S_IFLNK, &b"busybox"[..]));
        assert_eq!((e[6].file_type(), e[6].rdev), (S_IFCHR, (5, 1)));
        assert_eq!(e[7].data, b"#!/bin/sh\n");
        assert!(e
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 0 && e.dev == (0, 0)));

        // Every data length modulo 4 and name length modulo 4 round-trips.
        let mut w = Writer::default();
        let names: Vec<String> = (1..=8).map(|n| "n".repeat(n)).collect();
        for (i, n) in names.iter().enumerate() {
            w.entry(n, 0o100644, &vec![i as u8 + 1; i], (0, 0));
        }
        let a = w.finish();
        let e = parse(&a).unwrap();
        for (i, (e, n)) in e.iter().zip(&names).enumerate() {
            assert_eq!((e.name, e.data), (n.as_str(), &vec![i as u8 + 1; i][..]));
        }

        // GNU cpio pads to 512-byte blocks with zeros after the trailer.
        let mut padded = sample();
        padded.resize(padded.len().next_multiple_of(512), 0);
        assert_eq!(parse(&padded).unwrap().len(), 8);
        assert!(parse(&Writer::default().finish()).unwrap().is_empty());
    }

    #[test]
    fn errors_name_offset_and_field() {
        let a = sample();
        assert_eq!(parse(&[]), Err(Error::NoTrailer { offset: 0 }));
        assert!(matches!(
            parse(&a[..a.len() - 4]),
            Err(Error::Truncated { field: "name", .. })
        ));
        let mut b = a.clone();
        b[1] = b'8';
        assert!(matches!(parse(&b), Err(Error::BadMagic { offset: 0, .. })));
        let mut b = a.clone();
        b[14] = b'g';
        assert!(matches!(
            parse(&b),
            Err(Error::BadHex {
                offset: 14,
                field: "c_mode",
                ..
            })
        ));
        let mut b = a.clone();
        b[109] = b'1';
        assert!(matches!(
            parse(&b),
            Err(Error::BadValue {
                offset: 102,
                field: "c_chksum",
                ..
            })
        ));
        // "bin\0" fills 114 exactly; the next header starts at 116 after two padding bytes.
        let mut b = a.clone();
        b[114] = 1;
        assert_eq!(
            parse(&b),
            Err(Error::NonZeroPadding {
                offset: 114,
                field: "name padding"
            })
        );
        let mut b = a.clone();
        b[111] = 0;
        assert!(matches!(parse(&b), Err(Error::BadName { offset: 111, .. })));
        let mut b = a.clone();
        b.push(7);
        assert_eq!(parse(&b), Err(Error::TrailingData { offset: a.len() }));
        // A directory with data.
        let mut b = a.clone();
        b[61] = b'4';
        assert!(matches!(
            parse(&b),
            Err(Error::BadValue {
                offset: 54,
                field: "c_filesize",
                ..
            })
        ));
        // A huge file size is a truncation, not an allocation.
        let mut w = Writer::default();
        w.entry("f", 0o100644, b"x", (0, 0));
        let mut b = w.finish();
        b[54..62].copy_from_slice(b"ffffffff");
        assert!(matches!(
            parse(&b),
            Err(Error::Truncated {
                field: "data",
                need: 0xffff_ffff,
                ..
            })
        ));
        // Unknown file type.
        let mut b = a.clone();
        b[14..22].copy_from_slice(b"000f01ed");
        assert!(matches!(
            parse(&b),
            Err(Error::BadValue {
                offset: 14,
                field: "c_mode",
                ..
            })
        ));
    }

    #[test]
    fn mutated_and_truncated_archives_never_panic() {
        let a = sample();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in 0..a.len() {
            assert!(parse(&a[..len]).is_err(), "truncated to {len} must fail");
        }
        for _ in 0..5_000 {
            let mut b = a.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % b.len() as u64) as usize;
                b[i] = match next() % 3 {
                    0 => next() as u8,
                    1 => b"0123456789abcdef"[(next() % 16) as usize],
                    _ => b[i] ^ 1,
                };
            }
            let _ = parse(&b);
        }
    }
}
