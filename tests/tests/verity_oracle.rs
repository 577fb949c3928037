//! Oracle: `cvm_rootfs::verity` against the real `veritysetup` (Debian `cryptsetup-bin`).
//!
//! For data sizes with 0, 1, 2 and 3 tree levels and block counts around the 128-hash
//! branching factor, with and without superblock:
//! - `veritysetup verify` accepts our hash device and root hash;
//! - `veritysetup format` with our salt (and our superblock UUID) gives the same root hash and
//!   a byte-identical hash device;
//! - after flipping one data byte, `veritysetup verify` reports the corruption.

mod rootfs_common;

use cvm_rootfs::verity::{self, HashLayout, Salt};
use rootfs_common::{bytes, path_str, run, run_ok, scratch};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

fn root_hash_line(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .unwrap_or_else(|| panic!("no `Root hash:` line in veritysetup output:\n{stdout}"))
        .trim()
        .to_string()
}

fn layout_args(v: &verity::Verity) -> Vec<String> {
    match v.layout {
        HashLayout::Superblock => vec![],
        HashLayout::NoSuperblock => vec![
            "--no-superblock".into(),
            "--format=1".into(),
            "--hash=sha256".into(),
            "--data-block-size=4096".into(),
            "--hash-block-size=4096".into(),
            format!("--data-blocks={}", v.data_blocks),
            format!("--salt={}", v.salt.to_hex()),
        ],
    }
}

fn verify(data: &Path, hash: &Path, v: &verity::Verity) -> std::process::Output {
    let mut args = layout_args(v);
    args.extend([
        "verify".into(),
        path_str(data).into(),
        path_str(hash).into(),
        v.root_hash_hex(),
    ]);
    run(
        "veritysetup",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

fn check_size(blocks: usize) {
    let dir = scratch(&format!("verity-{blocks}"));
    let data = dir.join("data.img");
    let contents = bytes(blocks as u64 + 11, blocks * 4096);
    std::fs::write(&data, &contents).unwrap();
    let salt = Salt::derive(&[blocks as u8; 32]);

    for layout in [HashLayout::Superblock, HashLayout::NoSuperblock] {
        let ours = dir.join(format!("ours-{layout:?}.hash"));
        let v = verity::format(
            File::open(&data).unwrap(),
            BufWriter::new(File::create(&ours).unwrap()),
            &salt,
            layout,
        )
        .unwrap();
        assert_eq!(v.data_blocks, blocks as u64);
        assert_eq!(std::fs::metadata(&ours).unwrap().len(), v.hash_bytes);

        let out = verify(&data, &ours, &v);
        assert!(
            out.status.success(),
            "veritysetup verify rejected our tree ({blocks} blocks, {layout:?}): {out:?}"
        );

        let theirs = dir.join(format!("theirs-{layout:?}.hash"));
        let mut args = vec!["format".to_string(), format!("--salt={}", salt.to_hex())];
        match layout {
            HashLayout::Superblock => args.push(format!("--uuid={}", v.uuid_string())),
            HashLayout::NoSuperblock => args.push("--no-superblock".into()),
        }
        args.extend([path_str(&data).into(), path_str(&theirs).into()]);
        let stdout = run_ok(
            "veritysetup",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(
            root_hash_line(&stdout),
            v.root_hash_hex(),
            "root hash, {blocks} blocks, {layout:?}"
        );
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
            "hash device differs from veritysetup's ({blocks} blocks, {layout:?})"
        );

        // Flip one byte in the last data block: verify must fail.
        let mut bad = contents.clone();
        let at = bad.len() - 1000;
        bad[at] ^= 0x01;
        let bad_path = dir.join("bad.img");
        std::fs::write(&bad_path, &bad).unwrap();
        let out = verify(&bad_path, &ours, &v);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "veritysetup verify accepted corrupted data ({blocks} blocks, {layout:?})"
        );
        assert!(
            stderr.contains("Verification failed")
                || stderr.contains("Verification of root hash failed"),
            "unexpected veritysetup error for corrupted data: {stderr}"
        );
    }
}

#[test]
fn one_block_no_tree() {
    check_size(1);
}

#[test]
fn one_level_127_and_128() {
    check_size(127);
    check_size(128);
}

#[test]
fn two_levels_129() {
    check_size(129);
}

#[test]
fn three_levels_16385() {
    // 128 * 128 + 1 blocks (64 MiB): the smallest data device with three levels.
    check_size(128 * 128 + 1);
}

#[test]
fn superblock_written_by_veritysetup_parses() {
    let dir = scratch("verity-sb-parse");
    let data = dir.join("data.img");
    std::fs::write(&data, bytes(5, 300 * 4096)).unwrap();
    let hash = dir.join("theirs.hash");
    run_ok(
        "veritysetup",
        &["format", "--salt=00ff", path_str(&data), path_str(&hash)],
    );
    let sb = verity::Superblock::parse(&std::fs::read(&hash).unwrap()).unwrap();
    assert_eq!(sb.data_blocks, 300);
    assert_eq!(sb.salt, vec![0x00, 0xff]);
    assert_eq!(sb.algorithm, "sha256");
    assert_eq!(
        (
            sb.version,
            sb.hash_type,
            sb.data_block_size,
            sb.hash_block_size
        ),
        (1, 1, 4096, 4096)
    );
}
