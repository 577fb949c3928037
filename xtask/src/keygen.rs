//! `cargo xtask keygen --out DIR`: a new ECDSA P-256 key for signing manifests
//! (`cvm_manifest::sign`): `DIR/signing.pem` (PKCS#8 PEM, mode 0600, written atomically) and
//! `DIR/signing.pub` (SPKI PEM, for `cvm-measure verify --key` and `cosign --key`).
//! An existing private key is never overwritten.

use crate::flags::KeygenFlags;
use crate::tools;
use anyhow::{bail, Context, Result};
use cvm_manifest::sign::{key_id, SigningKey};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn run(flags: &KeygenFlags) -> Result<()> {
    let private = flags.out.join("signing.pem");
    let public = flags.out.join("signing.pub");
    if private.exists() {
        bail!(
            "{} exists: refusing to overwrite a signing key (move it away first)",
            private.display()
        );
    }
    tools::stage(&format!(
        "keygen: ECDSA P-256 signing key into {}",
        flags.out.display()
    ));
    let key = SigningKey::generate();
    write_private(&private, key.to_pkcs8_pem().as_bytes())?;
    tools::write_atomic(&public, key.verifying_key().to_public_key_pem().as_bytes())?;
    eprintln!(
        "    wrote {} (0600) and {}; key id {}",
        private.display(),
        public.display(),
        key_id(&key.verifying_key())
    );
    Ok(())
}

/// Like `tools::write_atomic`, but the file is created with mode 0600, so the key is never
/// readable by others, not even while it is written.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("key path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".signing.pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
