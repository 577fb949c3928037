//! mkfs.erofs: Debian package `erofs-utils` 1.8.6 from trixie (tested 1.8.6; 1.5 from
//! bookworm lacks `--all-time`). Packs the mkosi tree into the read-only root file system.
//!
//! Reproducible options: `-T<epoch> --all-time` (every inode and the superblock get
//! SOURCE_DATE_EPOCH), `-U<uuid>` (a derived UUID, not a random one), `--all-root`,
//! `--workers=1` (single-threaded compression, so block order cannot depend on scheduling).
//! lz4hc keeps the image small; the guest kernel needs `CONFIG_EROFS_FS_ZIP` (LZ4 is built in).

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// `mkfs.erofs --version` (first line).
pub fn version(sh: &Shell) -> Result<String> {
    let v = cmd!(sh, "mkfs.erofs --version")
        .read()
        .context("running `mkfs.erofs --version`")?;
    Ok(v.lines().next().unwrap_or_default().to_string())
}

/// Make `image` from directory `tree`.
pub fn mkfs(
    sh: &Shell,
    tree: &Path,
    image: &Path,
    uuid: &str,
    source_date_epoch: u64,
) -> Result<()> {
    let t = format!("-T{source_date_epoch}");
    let u = format!("-U{uuid}");
    cmd!(sh, "mkfs.erofs --quiet -zlz4hc,level=12 {t} --all-time {u} --all-root --workers=1 {image} {tree}")
        .env("SOURCE_DATE_EPOCH", source_date_epoch.to_string())
        .run()
        .with_context(|| format!("mkfs.erofs {} from {}", image.display(), tree.display()))?;
    Ok(())
}
