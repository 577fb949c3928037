//! Authenticode digests (`cvm_measurements::pe`, what OVMF measures into PCR 4 / RTMR1 for the
//! kernel) against `pesign -h` (Debian package `pesign`), an independent implementation: the
//! Debian cloud kernel (fixture K1, signed: the certificate table is excluded) and the kernel
//! this project builds (unsigned bzImage), in sha256 and sha1 (pesign has no sha384; the
//! sha384 path is the same code with another `Digest`, and is checked against the §5.2 TDX
//! vectors in tdx_golden.rs). Also: a truncated image is an error for both.

use cvm_measurements::pe::authenticode;
use cvm_tests::{built, fixture};
use std::path::Path;
use std::process::Command;

/// `pesign -h -d <digest> -i <file>` → the hex digest it prints.
fn pesign(file: &Path, digest: &str) -> Result<String, String> {
    let out = Command::new("pesign")
        .args(["-h", "-d", digest, "-i"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run pesign ({e}): install it with `cargo xtask install test` (Debian package pesign)"));
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `<hex>` (older pesign) or `hash: <hex>` (pesign 116): the digest is the last word.
    Ok(text.split_whitespace().last().unwrap_or_default().to_string())
}

fn ours<D: sha2::Digest>(file: &Path) -> String {
    hex::encode(authenticode::<D>(&std::fs::read(file).unwrap()).unwrap())
}

#[test]
fn authenticode_agrees_with_pesign() {
    for file in [fixture("K1"), built("kernel/bzImage")] {
        let theirs = pesign(&file, "sha256").unwrap();
        assert_eq!(theirs.len(), 64, "pesign output for {}: {theirs:?}", file.display());
        assert_eq!(ours::<sha2::Sha256>(&file), theirs, "sha256 of {}", file.display());
        let theirs1 = pesign(&file, "sha1").unwrap();
        assert_eq!(ours::<sha1::Sha1>(&file), theirs1, "sha1 of {}", file.display());
    }
}

#[test]
fn truncated_image_is_an_error_for_both() {
    let k = std::fs::read(fixture("K1")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the section table / headers.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &k[..0x200]).unwrap();
    assert!(authenticode::<sha2::Sha256>(&k[..0x200]).is_err());
    assert!(pesign(&cut, "sha256").is_err(), "pesign accepted a 512-byte kernel");
}
