//! `cvm-measure verify --manifest M --signature S --key K [--artifacts-dir D] [--production]`:
//! check a signed measurement manifest (`cvm_manifest::sign::verify`): the DSSE envelope's ECDSA
//! P-256 signature under the SPKI PEM key, the in-toto Statement's type, predicate type and
//! subjects, the predicate equal to the manifest; with `--artifacts-dir`, every artefact's size and
//! sha256. Exit 0 verified, 1 anything wrong (signature, digest, test image with `--production`),
//! 2 an input could not be read.

use crate::input::read;
use anyhow::{Context, Result};
use cvm_manifest::sign::{self, FileDigest, VerifyingKey};
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The manifest file (`manifest.json`), exactly the bytes that were signed
    #[arg(long, value_name = "FILE")]
    manifest: PathBuf,
    /// Its DSSE envelope (`manifest.dsse.json`)
    #[arg(long, value_name = "FILE")]
    signature: PathBuf,
    /// The signer's public key, SPKI PEM (`cargo xtask keygen` writes `signing.pub`)
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Also check every artefact's size and sha256 under this directory (paths are relative)
    #[arg(long, value_name = "DIR")]
    artifacts_dir: Option<PathBuf>,
    /// Refuse a test image (mock TEE parts allowed)
    #[arg(long)]
    production: bool,
}


pub fn run(a: Args) -> Result<i32> {
    let manifest = read(&a.manifest, "manifest")?;
    let envelope = read(&a.signature, "signature")?;
    let key_pem = String::from_utf8(read(&a.key, "key")?.to_vec())
        .with_context(|| format!("key {} is not PEM text", a.key.display()))?;
    let key = VerifyingKey::from_public_key_pem(&key_pem)
        .with_context(|| format!("key {}", a.key.display()))?;
    let m = match sign::verify(&envelope, &manifest, &key) {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "FAILED: {} / {}: {e}",
                a.manifest.display(),
                a.signature.display()
            );
            return Ok(1);
        }
    };
    if a.production && m.image.test_image {
        eprintln!(
            "FAILED: {}: image {} is a test image (test_image = true) and --production was given",
            a.manifest.display(),
            m.image.name
        );
        return Ok(1);
    }
    let checked = match &a.artifacts_dir {
        Some(dir) => {
            let res = sign::verify_artefacts(&m, |art| {
                let p = dir.join(&art.path);
                std::fs::File::open(&p)
                    .and_then(FileDigest::of_reader)
                    .map_err(|e| format!("{}: {e}", p.display()))
            });
            match res {
                Ok(()) => format!(
                    "{} artefacts checked in {}",
                    m.artefacts.len(),
                    dir.display()
                ),
                Err(e) if e.is_unreadable() => return Err(e.into()),
                Err(e) => {
                    eprintln!("FAILED: {e}");
                    return Ok(1);
                }
            }
        }
        None => format!(
            "{} artefacts not checked (no --artifacts-dir)",
            m.artefacts.len()
        ),
    };
    println!(
        "Verified OK: {} {} ({} shapes; {checked})",
        m.image.name,
        m.image.version,
        m.shapes.len()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cvm_manifest::sign::SigningKey;
    use cvm_manifest::{role, Artefact, ImageInfo, Manifest};
    use sha2::{Digest, Sha256};

    /// A signed manifest with one artefact in a fresh directory; returns the flags for it.
    fn setup(name: &str) -> (PathBuf, Args) {
        let dir =
            std::env::temp_dir().join(format!("cvm-measure-verify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        let kernel = b"kernel bytes";
        std::fs::write(dir.join("kernel/bzImage"), kernel).unwrap();
        let mut m = Manifest::new(
            ImageInfo {
                name: "t".into(),
                version: "1".into(),
                test_image: true,
            },
            "ro".into(),
        );
        m.artefacts.push(Artefact {
            role: role::KERNEL.into(),
            path: "kernel/bzImage".into(),
            sha256: hex::encode(Sha256::digest(kernel)),
            size: kernel.len() as u64,
        });
        let bytes = m.to_bytes().unwrap();
        let key = SigningKey::generate();
        std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
        std::fs::write(
            dir.join("manifest.dsse.json"),
            sign::sign(&bytes, "manifest.json", &key).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("signing.pub"),
            key.verifying_key().to_public_key_pem(),
        )
        .unwrap();
        let args = Args {
            manifest: dir.join("manifest.json"),
            signature: dir.join("manifest.dsse.json"),
            key: dir.join("signing.pub"),
            artifacts_dir: Some(dir.clone()),
            production: false,
        };
        (dir, args)
    }

    #[test]
    fn exit_codes() {
        let (dir, args) = setup("codes");
        let again = |edit: &dyn Fn(&mut Args)| {
            let mut a = args.clone();
            edit(&mut a);
            run(a)
        };
        assert_eq!(again(&|_| {}).unwrap(), 0);
        assert_eq!(again(&|a| a.artifacts_dir = None).unwrap(), 0);
        // A test image is refused for production.
        assert_eq!(again(&|a| a.production = true).unwrap(), 1);
        // Another key: bad signature.
        std::fs::write(
            dir.join("other.pub"),
            SigningKey::generate().verifying_key().to_public_key_pem(),
        )
        .unwrap();
        assert_eq!(again(&|a| a.key = dir.join("other.pub")).unwrap(), 1);
        // Unreadable inputs: exit 2 (an error).
        assert!(again(&|a| a.manifest = dir.join("missing.json")).is_err());
        assert!(again(&|a| a.key = dir.join("manifest.json")).is_err());
        // A changed artefact: mismatch; a missing one: unreadable.
        std::fs::write(dir.join("kernel/bzImage"), b"kernel bytez").unwrap();
        assert_eq!(again(&|_| {}).unwrap(), 1);
        std::fs::remove_file(dir.join("kernel/bzImage")).unwrap();
        assert!(again(&|_| {}).is_err());
        assert_eq!(again(&|a| a.artifacts_dir = None).unwrap(), 0);
        // A changed manifest: not covered by the signature.
        let mut text = std::fs::read_to_string(&args.manifest).unwrap();
        text = text.replace("\"ro\"", "\"rw\"");
        std::fs::write(&args.manifest, text).unwrap();
        assert_eq!(again(&|a| a.artifacts_dir = None).unwrap(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
