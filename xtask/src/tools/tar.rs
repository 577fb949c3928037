//! GNU tar for unpacking pinned source archives (Debian `tar`, `xz-utils`; tested with tar
//! 1.34). Ownership and modes are not taken from the archive (`--no-same-owner`,
//! `--no-same-permissions`), so the unpacked tree does not depend on who unpacks it.

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// `tar -xf ARCHIVE -C DIR [--strip-components=N]`.
pub fn extract(sh: &Shell, archive: &Path, dir: &Path, strip: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let strip = format!("--strip-components={strip}");
    cmd!(sh, "tar --no-same-owner --no-same-permissions -xf {archive} -C {dir} {strip}")
        .run()
        .with_context(|| format!("unpacking {} into {}", archive.display(), dir.display()))
}

/// `tar -cf ARCHIVE -C DIR .` with everything that varies between machines fixed (name order,
/// mtime 0, owner 0:0, ustar format), so equal trees give equal archives.
pub fn create(sh: &Shell, dir: &Path, archive: &Path) -> Result<()> {
    cmd!(sh, "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar -cf {archive} -C {dir} .")
        .run()
        .with_context(|| format!("packing {} into {}", dir.display(), archive.display()))
}
