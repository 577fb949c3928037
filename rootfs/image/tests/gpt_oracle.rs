//! Oracle: `cvm_rootfs::gpt_read` against `sfdisk --json` (util-linux, Debian package `fdisk`)
//! and `sgdisk -p` (Debian package `gdisk`), on two disks:
//!
//! - one `cvm_rootfs::disk::write` made (what the image pipeline ships): the reader's table and
//!   its `layout()` equal the layout that was written, and both tools agree field by field;
//! - one `sgdisk` made from a blank file (not our writer): a non-ASCII name, attribute bits,
//!   a type our layouts never use, a gap between partitions.

mod oracle;

use cvm_rootfs::disk::{self, PartitionKind, PartitionSpec};
use cvm_rootfs::gpt_read::{self, Gpt};
use oracle::{run, scratch};
use std::io::Cursor;
use std::path::Path;

/// sfdisk's `attrs` string: named bits 0-2, then `GUID:` and the set bits 48-63.
fn sfdisk_attrs(a: u64) -> Option<String> {
    let mut parts: Vec<String> = [
        (0, "RequiredPartition"),
        (1, "NoBlockIOProtocol"),
        (2, "LegacyBIOSBootable"),
    ]
    .iter()
    .filter(|(b, _)| a & (1 << b) != 0)
    .map(|(_, n)| n.to_string())
    .collect();
    let guid: Vec<String> = (48..64)
        .filter(|b| a & (1 << b) != 0)
        .map(|b| b.to_string())
        .collect();
    if !guid.is_empty() {
        parts.push(format!("GUID:{}", guid.join(",")));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn check_against_tools(dir: &Path, img: &[u8], g: &Gpt) {
    let path = dir.join("disk.img");
    std::fs::write(&path, img).unwrap();
    let p = path.to_str().unwrap();

    let json = run("sfdisk", &["--json", p], dir, b"", "fdisk");
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let t = &v["partitiontable"];
    assert_eq!(t["label"], "gpt");
    assert_eq!(t["id"], g.primary.disk_guid.to_string().to_uppercase());
    assert_eq!(t["firstlba"], g.primary.first_usable_lba);
    assert_eq!(t["lastlba"], g.primary.last_usable_lba);
    assert_eq!(t["sectorsize"], 512);
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), g.partitions.len());
    for (s, e) in parts.iter().zip(&g.partitions) {
        assert_eq!(s["node"], format!("{p}{}", e.index));
        assert_eq!(s["start"], e.first_lba);
        assert_eq!(s["size"], e.last_lba - e.first_lba + 1);
        assert_eq!(s["type"], e.type_guid.to_string().to_uppercase());
        assert_eq!(s["uuid"], e.unique_guid.to_string().to_uppercase());
        assert_eq!(s["name"].as_str().unwrap_or(""), e.name);
        assert_eq!(
            s["attrs"].as_str().map(String::from),
            sfdisk_attrs(e.attributes),
            "partition {}",
            e.index
        );
    }

    let text = String::from_utf8(run("sgdisk", &["-p", p], dir, b"", "gdisk")).unwrap();
    let want_head = [
        format!("Disk {p}: {} sectors", g.disk_bytes / 512),
        format!(
            "Disk identifier (GUID): {}",
            g.primary.disk_guid.to_string().to_uppercase()
        ),
        format!(
            "Partition table holds up to {} entries",
            g.primary.num_entries
        ),
        format!(
            "Main partition table begins at sector {} and ends at sector {}",
            g.primary.entries_lba,
            g.primary.entries_lba
                + u64::from(g.primary.num_entries) * u64::from(g.primary.entry_size) / 512
                - 1
        ),
        format!(
            "First usable sector is {}, last usable sector is {}",
            g.primary.first_usable_lba, g.primary.last_usable_lba
        ),
    ];
    for w in &want_head {
        assert!(text.contains(w.as_str()), "sgdisk -p lacks {w:?}:\n{text}");
    }
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), g.partitions.len(), "{text}");
    for (r, e) in rows.iter().zip(&g.partitions) {
        // Number, Start, End, Size, unit, Code, Name (optional, may hold spaces).
        assert_eq!(r[0], e.index.to_string());
        assert_eq!(r[1], e.first_lba.to_string());
        assert_eq!(r[2], e.last_lba.to_string());
        assert_eq!(r[6..].join(" "), e.name);
    }
    let verify = String::from_utf8(run("sgdisk", &["-v", p], dir, b"", "gdisk")).unwrap();
    assert!(verify.contains("No problems found"), "{verify}");
}

#[test]
fn reader_agrees_with_sfdisk_and_sgdisk_on_our_disk() {
    let dir = scratch("gpt-ours");
    let root_hash: [u8; 32] = std::array::from_fn(|i| (i * 7 + 3) as u8);
    let (r, v) = disk::verity_partition_uuids(&root_hash);
    let specs = [
        PartitionSpec {
            kind: PartitionKind::Esp,
            uuid: disk::derive_uuid("esp", &[b"oracle"]),
            bytes: 3 << 20,
        },
        PartitionSpec {
            kind: PartitionKind::RootX86_64,
            uuid: r,
            bytes: 37 * 4096,
        },
        PartitionSpec {
            kind: PartitionKind::RootX86_64Verity,
            uuid: v,
            bytes: 2 * 4096,
        },
    ];
    let layout = disk::layout(&specs, disk::disk_guid(&specs)).unwrap();
    let contents: Vec<Vec<u8>> = specs.iter().map(|s| vec![0x5a; s.bytes as usize]).collect();
    let (a, b, c) = (&contents[0][..], &contents[1][..], &contents[2][..]);
    let img = disk::write(
        Cursor::new(Vec::new()),
        &layout,
        &mut [&mut { a }, &mut { b }, &mut { c }],
    )
    .unwrap()
    .into_inner();

    let g = gpt_read::read(&mut Cursor::new(&img)).unwrap();
    assert_eq!(g.layout().unwrap(), layout);
    check_against_tools(&dir, &img, &g);
}

#[test]
fn reader_agrees_with_sfdisk_and_sgdisk_on_an_sgdisk_disk() {
    let dir = scratch("gpt-sgdisk");
    let path = dir.join("disk.img");
    std::fs::write(&path, vec![0u8; 12 << 20]).unwrap();
    let p = path.to_str().unwrap();
    run(
        "sgdisk",
        &[
            "-o",
            "-U",
            "01234567-89AB-CDEF-0123-456789ABCDEF",
            "-n",
            "1:2048:+1M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system",
            "-u",
            "1:11111111-2222-3333-4444-555555555555",
            "-n",
            "2:6144:+64K",
            "-t",
            "2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            "-c",
            "2:rööt ✓",
            "-A",
            "2:set:60",
            "-A",
            "2:set:0",
            "-A",
            "2:set:2",
            "-A",
            "2:set:63",
            "-n",
            "3:0:0",
            "-t",
            "3:8300",
            p,
        ],
        &dir,
        b"",
        "gdisk",
    );
    let img = std::fs::read(&path).unwrap();
    let g = gpt_read::read(&mut Cursor::new(&img)).unwrap();
    assert_eq!(g.partitions.len(), 3);
    assert_eq!(
        g.primary.disk_guid.to_string(),
        "01234567-89ab-cdef-0123-456789abcdef"
    );
    assert_eq!(
        g.partitions[0].unique_guid.to_string(),
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(g.partitions[1].name, "rööt ✓");
    assert_eq!(g.partitions[1].attributes, (1 << 60) | (1 << 63) | 1 | 4);
    assert_eq!(g.partitions[2].last_lba, g.primary.last_usable_lba);
    // Valid GPT, but not a disk::write layout: the ESP is not named "esp" (and partition 3's
    // Linux filesystem type is none of ours).
    let e = g.layout().unwrap_err();
    assert!(
        matches!(
            e,
            gpt_read::Error::Partition {
                index: 1,
                field: "name",
                ..
            }
        ),
        "{e}"
    );
    check_against_tools(&dir, &img, &g);
}
