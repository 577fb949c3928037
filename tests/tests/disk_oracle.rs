//! Oracle: the GPT disk and FAT ESP of `cvm_rootfs::{disk, esp}` against the real tools.
//!
//! One disk is built as the image pipeline builds it (ESP with `EFI/BOOT/BOOTX64.EFI`, a
//! verity data partition and its hash partition), then:
//! - `sgdisk -v` finds no problems and `fdisk -l` lists the three partitions with their
//!   discoverable-partition types and no warning;
//! - `sgdisk -i` shows the partition GUIDs derived from the root hash and our disk GUID;
//! - `fsck.vfat -n` checks the ESP clean, `mdir` lists it and `mcopy` returns the kernel
//!   byte for byte;
//! - `veritysetup verify` accepts the root and hash partitions cut from the disk;
//! - a second build is bit-identical.

mod rootfs_common;

use cvm_rootfs::disk;
use cvm_rootfs::esp::{self, EspConfig, EspFile};
use cvm_rootfs::verity::{self, HashLayout, Salt};
use rootfs_common::{bytes, path_str, run, run_ok, scratch};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use std::path::{Path, PathBuf};

struct Built {
    disk: Vec<u8>,
    layout: disk::Layout,
    verity: verity::Verity,
    kernel: Vec<u8>,
}

fn build() -> Built {
    let kernel = bytes(1, 3_000_000 + 17); // stands in for the EFI-stub kernel
    let files = [EspFile {
        path: esp::BOOTX64_PATH,
        contents: &kernel,
    }];
    let esp_img = esp::build(
        &files,
        &EspConfig {
            bytes: esp::recommended_bytes(&files),
            source_date_epoch: 1_704_067_200,
        },
    )
    .unwrap();
    let root = bytes(2, 300 * 4096); // stands in for the erofs image
    let salt = Salt::derive(&Sha256::digest(&root).into());
    let mut hash = Vec::new();
    let v = verity::format(&root[..], &mut hash, &salt, HashLayout::Superblock).unwrap();
    let parts = disk::verity_image_partitions(&esp_img, &v);
    let layout = disk::layout(&parts, disk::disk_guid(&parts)).unwrap();
    let img = disk::write(
        Cursor::new(Vec::new()),
        &layout,
        &mut [&mut &esp_img[..], &mut &root[..], &mut &hash[..]],
    )
    .unwrap()
    .into_inner();
    Built {
        disk: img,
        layout,
        verity: v,
        kernel,
    }
}

fn cut(b: &Built, index: usize, dir: &Path, name: &str) -> PathBuf {
    let p = &b.layout.partitions[index];
    let start = p.offset_bytes() as usize;
    let path = dir.join(name);
    std::fs::write(&path, &b.disk[start..start + p.spec.bytes as usize]).unwrap();
    path
}

#[test]
fn gpt_read_by_sgdisk_and_fdisk() {
    let dir = scratch("disk-gpt");
    let b = build();
    let img = dir.join("disk.img");
    std::fs::write(&img, &b.disk).unwrap();

    let v = run_ok("sgdisk", &["-v", path_str(&img)]);
    assert!(v.contains("No problems found"), "sgdisk -v:\n{v}");

    let out = run("fdisk", &["-l", path_str(&img)]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "fdisk -l complained:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Disklabel type: gpt"), "{stdout}");
    let disk_id = format!(
        "Disk identifier: {}",
        b.layout.disk_guid.hyphenated().to_string().to_uppercase()
    );
    assert!(
        stdout.contains(&disk_id),
        "fdisk -l lacks {disk_id:?}:\n{stdout}"
    );
    for t in [
        "EFI System",
        "Linux root (x86-64)",
        "Linux root verity (x86-64)",
    ] {
        assert!(
            stdout.contains(t),
            "fdisk -l lacks partition type {t:?}:\n{stdout}"
        );
    }

    let root_hash = b.verity.root_hash_hex().to_uppercase();
    for (n, half) in [(2, &root_hash[..32]), (3, &root_hash[32..])] {
        let info = run_ok("sgdisk", &["-i", &n.to_string(), path_str(&img)]);
        let guid = info
            .lines()
            .find_map(|l| l.strip_prefix("Partition unique GUID: "))
            .unwrap_or_else(|| panic!("sgdisk -i {n}:\n{info}"))
            .replace('-', "");
        assert_eq!(guid, half, "partition {n} GUID is not its root hash half");
        let first = b.layout.partitions[n - 1].first_lba;
        assert!(
            info.contains(&format!("First sector: {first} ")),
            "sgdisk -i {n}:\n{info}"
        );
    }
}

#[test]
fn esp_read_by_fsck_vfat_and_mtools() {
    let dir = scratch("disk-esp");
    let b = build();
    let img = dir.join("disk.img");
    std::fs::write(&img, &b.disk).unwrap();
    let esp_path = cut(&b, 0, &dir, "esp.img");

    let out = run("fsck.vfat", &["-n", "-v", path_str(&esp_path)]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fsck.vfat -n failed:\n{text}");
    for bad in [
        "Dirty bit",
        "differences between boot sector",
        "Leaving filesystem unchanged",
        "wrong",
        "Fixing",
        "uninitialized",
    ] {
        assert!(!text.contains(bad), "fsck.vfat -n reports {bad:?}:\n{text}");
    }
    assert!(text.contains("32 bit entries"), "not FAT32:\n{text}");

    // mtools reads the ESP in place inside the disk image (`file@@offset`).
    let at = format!(
        "{}@@{}",
        path_str(&img),
        b.layout.partitions[0].offset_bytes()
    );
    let listing = run_ok("mdir", &["-i", &at, "::/EFI/BOOT"]);
    assert!(listing.contains("BOOTX64  EFI"), "mdir:\n{listing}");
    let back = dir.join("BOOTX64.EFI");
    run_ok(
        "mcopy",
        &["-n", "-i", &at, "::/EFI/BOOT/BOOTX64.EFI", path_str(&back)],
    );
    assert!(
        std::fs::read(&back).unwrap() == b.kernel,
        "kernel read back by mcopy differs"
    );
    let info = run_ok("minfo", &["-i", &at, "::"]);
    let serial = format!(
        "serial number: {:08X}",
        esp::volume_id(&[EspFile {
            path: esp::BOOTX64_PATH,
            contents: &b.kernel
        }])
    );
    assert!(
        info.contains(&serial),
        "minfo lacks serial {serial}:\n{info}"
    );
}

#[test]
fn verity_partitions_verify() {
    let dir = scratch("disk-verity");
    let b = build();
    let data = cut(&b, 1, &dir, "root.img");
    let hash = cut(&b, 2, &dir, "root-verity.img");
    run_ok(
        "veritysetup",
        &[
            "verify",
            path_str(&data),
            path_str(&hash),
            &b.verity.root_hash_hex(),
        ],
    );
}

#[test]
fn two_builds_are_bit_identical() {
    let (a, b) = (build(), build());
    assert!(a.disk == b.disk, "two disk builds differ");
    assert_eq!(a.layout, b.layout);
}
