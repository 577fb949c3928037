//! Oracle: `cvm_rootfs::cpio` against GNU cpio (Debian package `cpio`).
//!
//! - `cpio -itv` lists our writer's archive exactly as our reader parses it (type and
//!   permissions, link count, owner, size or device numbers, mtime, name, symlink target), and
//!   `cpio -idm` extracts the same tree (contents, modes, symlink targets, device numbers);
//! - our reader parses an archive `cpio -o -H newc` made from a real tree (files of every length
//!   mod 4, nested directories, a symlink, a hard link pair, a FIFO) into what `lstat` says.

mod oracle;

use cvm_rootfs::cpio::{self, Entry, Writer};
use oracle::{run, scratch};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// `ls -l` style type and permission string, as `cpio -tv` prints it.
fn mode_string(mode: u32) -> String {
    let t = match mode & cpio::S_IFMT {
        cpio::S_IFDIR => 'd',
        cpio::S_IFLNK => 'l',
        cpio::S_IFCHR => 'c',
        cpio::S_IFBLK => 'b',
        cpio::S_IFIFO => 'p',
        cpio::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 1 << (8 - i);
        let mut ch = if mode & bit != 0 { c } else { '-' };
        // setuid/setgid/sticky
        for (special, pos, set, unset) in [
            (0o4000, 2, 's', 'S'),
            (0o2000, 5, 's', 'S'),
            (0o1000, 8, 't', 'T'),
        ] {
            if i == pos && mode & special != 0 {
                ch = if ch == 'x' { set } else { unset };
            }
        }
        s.push(ch);
    }
    s
}

/// The `cpio -itv --numeric-uid-gid` line (whitespace-separated tokens) for an entry whose
/// mtime is 0 (TZ=UTC).
fn listing_tokens(e: &Entry) -> Vec<String> {
    let mut t = vec![
        mode_string(e.mode),
        e.nlink.to_string(),
        e.uid.to_string(),
        e.gid.to_string(),
    ];
    match e.file_type() {
        cpio::S_IFCHR | cpio::S_IFBLK => {
            t.push(format!("{},", e.rdev.0));
            t.push(e.rdev.1.to_string());
        }
        _ => t.push(e.data.len().to_string()),
    }
    assert_eq!(e.mtime, 0, "listing_tokens formats mtime 0 only");
    t.extend(["Jan", "1", "1970"].map(String::from));
    t.push(e.name.to_string());
    if e.file_type() == cpio::S_IFLNK {
        t.push("->".into());
        t.push(String::from_utf8(e.data.to_vec()).unwrap());
    }
    t
}

/// The boot smoke test's shape plus a setuid file, a FIFO and a block device:
/// (name, mode, data, (rdev major, minor)).
type Row = (&'static str, u32, &'static [u8], (u32, u32));

#[rustfmt::skip]
const OURS: [Row; 13] = [
    ("bin", 0o040755, b"", (0, 0)),
    ("dev", 0o040755, b"", (0, 0)),
    ("etc", 0o040755, b"", (0, 0)),
    ("etc/deep", 0o040700, b"", (0, 0)),
    ("bin/busybox", 0o100755, b"\x7fELF not really busybox\n", (0, 0)),
    ("bin/sh", 0o120777, b"busybox", (0, 0)),
    ("bin/su", 0o104755, b"x", (0, 0)),
    ("dev/console", 0o020600, b"", (5, 1)),
    ("dev/vda", 0o060660, b"", (254, 0)),
    ("dev/initctl", 0o010600, b"", (0, 0)),
    ("etc/deep/empty", 0o100644, b"", (0, 0)),
    ("etc/deep/two", 0o100600, b"ab", (0, 0)),
    ("init", 0o100755, b"#!/bin/sh\necho CVM-BOOT-SMOKE-OK\n", (0, 0)),
];

#[test]
fn gnu_cpio_lists_and_extracts_our_archive_as_we_parse_it() {
    let dir = scratch("cpio-ours");
    let mut w = Writer::default();
    for (name, mode, data, rdev) in OURS {
        w.entry(name, mode, data, rdev);
    }
    let archive = w.finish();
    let entries = cpio::parse(&archive).unwrap();
    let parsed: Vec<_> = entries
        .iter()
        .map(|e| (e.name, e.mode, e.data, e.rdev))
        .collect();
    assert_eq!(parsed, OURS);

    let listing = run(
        "cpio",
        &["-itv", "--numeric-uid-gid"],
        &dir,
        &archive,
        "cpio",
    );
    let listing = String::from_utf8(listing).unwrap();
    let got: Vec<Vec<String>> = listing
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let want: Vec<Vec<String>> = entries.iter().map(listing_tokens).collect();
    assert_eq!(got, want, "cpio -itv listing:\n{listing}");

    let out = dir.join("root");
    std::fs::create_dir(&out).unwrap();
    run(
        "cpio",
        &["-idm", "--no-absolute-filenames"],
        &out,
        &archive,
        "cpio",
    );
    for e in &entries {
        let path = out.join(e.name);
        let md = std::fs::symlink_metadata(&path).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(md.mode(), e.mode, "{}: mode", e.name);
        match e.file_type() {
            cpio::S_IFREG => assert_eq!(std::fs::read(&path).unwrap(), e.data, "{}", e.name),
            cpio::S_IFLNK => assert_eq!(
                std::fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_encoded_bytes(),
                e.data,
                "{}",
                e.name
            ),
            cpio::S_IFCHR | cpio::S_IFBLK => {
                assert!(md.file_type().is_char_device() || md.file_type().is_block_device());
                let rdev = md.rdev();
                // Linux dev_t: major in bits 8..20 (and 32..), minor in 0..8 (and 20..32).
                let (maj, min) = (
                    ((rdev >> 8) & 0xfff) as u32,
                    ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as u32,
                );
                assert_eq!((maj, min), e.rdev, "{}: rdev", e.name);
            }
            cpio::S_IFDIR => assert!(md.is_dir()),
            cpio::S_IFIFO => assert!(md.file_type().is_fifo()),
            t => panic!("unexpected type {t:o}"),
        }
        // Directories get new mtimes as cpio fills them; symlinks keep the extraction time.
        if ![cpio::S_IFLNK, cpio::S_IFDIR].contains(&e.file_type()) {
            assert_eq!(md.mtime(), 0, "{}: mtime", e.name);
        }
    }
    let extracted = walk(&out);
    let mut names: Vec<&str> = entries.iter().map(|e| e.name).collect();
    names.sort_unstable();
    assert_eq!(extracted, names, "cpio extracted exactly our entries");
}

fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort_unstable();
    out
}

#[test]
fn we_parse_what_gnu_cpio_writes() {
    let dir = scratch("cpio-theirs");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
    for n in 0..9usize {
        std::fs::write(tree.join(format!("a/f{n}")), vec![b'0' + n as u8; n]).unwrap();
    }
    std::fs::write(tree.join("a/b/c/exec"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        tree.join("a/b/c/exec"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    std::os::unix::fs::symlink("../f3", tree.join("a/b/link")).unwrap();
    std::fs::write(tree.join("hard1"), b"shared").unwrap();
    std::fs::hard_link(tree.join("hard1"), tree.join("hard2")).unwrap();
    run("mkfifo", &["a/fifo"], &tree, b"", "coreutils");

    let mut names = walk(&tree);
    names.sort_unstable();
    let list = names.join("\n") + "\n";
    let archive = run(
        "cpio",
        &["-o", "-H", "newc", "--quiet"],
        &tree,
        list.as_bytes(),
        "cpio",
    );
    assert_eq!(archive.len() % 512, 0, "GNU cpio pads to 512-byte blocks");

    let entries = cpio::parse(&archive).unwrap();
    let parsed: Vec<&str> = entries.iter().map(|e| e.name).collect();
    assert_eq!(parsed, names);
    for e in &entries {
        let path = tree.join(e.name);
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(e.mode, md.mode(), "{}: mode", e.name);
        assert_eq!((e.uid, e.gid), (md.uid(), md.gid()), "{}: owner", e.name);
        assert_eq!(i64::from(e.mtime), md.mtime(), "{}: mtime", e.name);
        assert_eq!(e.nlink as u64, md.nlink(), "{}: nlink", e.name);
        assert_eq!(e.ino as u64, md.ino() & 0xffff_ffff, "{}: ino", e.name);
        match e.file_type() {
            cpio::S_IFREG if e.name == "hard1" => {
                // GNU cpio stores a hard-linked file's data with its last link only.
                assert!(e.data.is_empty(), "hard1 carries no data");
            }
            cpio::S_IFREG => assert_eq!(e.data, std::fs::read(&path).unwrap(), "{}", e.name),
            cpio::S_IFLNK => assert_eq!(e.data, b"../f3"),
            cpio::S_IFDIR => assert!(md.is_dir()),
            cpio::S_IFIFO => assert!(md.file_type().is_fifo()),
            t => panic!("{}: unexpected type {t:o}", e.name),
        }
    }
    // Reading it again with a byte flipped in every header field position is refused, never a panic.
    for i in (0..110).step_by(7) {
        let mut b = archive.clone();
        b[i] = b'z';
        assert!(cpio::parse(&b).is_err(), "byte {i}");
    }
}
