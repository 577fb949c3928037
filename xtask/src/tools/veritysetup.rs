//! veritysetup: Debian package `cryptsetup-bin` (tested 2.6.1 from bookworm and 2.7.5 from
//! trixie). The hash tree itself is computed in Rust (`cvm_rootfs::verity`); the build runs
//! `veritysetup verify` on its output as an independent check, which is pure userspace (never
//! `veritysetup open`: the build host has no device-mapper).

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// `veritysetup --version`, e.g. `veritysetup 2.7.5`.
pub fn version(sh: &Shell) -> Result<String> {
    let v = cmd!(sh, "veritysetup --version")
        .read()
        .context("running `veritysetup --version`")?;
    Ok(v.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// `veritysetup verify DATA HASH ROOT` for a hash device with a superblock.
pub fn verify(sh: &Shell, data: &Path, hash: &Path, root_hash_hex: &str) -> Result<()> {
    cmd!(sh, "veritysetup verify {data} {hash} {root_hash_hex}")
        .run()
        .with_context(|| {
            format!(
                "veritysetup rejected {} + {} with root hash {root_hash_hex}",
                data.display(),
                hash.display()
            )
        })?;
    Ok(())
}
