//! Build stages of `cargo xtask build-image`. Each maps pinned inputs to a content-addressed
//! cache entry (see [`crate::cache`]): the key is computed before anything runs.
//!
//! Builds run at FIXED absolute paths under [`BUILD_ROOT`] (`/var/tmp/cvm-build`), not in
//! the checkout or `$HOME`: edk2's output depends on the absolute build path (the PE debug
//! record's size), and the kernel's build directory is fixed for the same reason. So the
//! checkout location and the user do not change any artefact. One build at a time per
//! stage: each stage holds an exclusive lock on `BUILD_ROOT/<stage>.lock`.

pub mod agent;
pub mod disk;
pub mod firmware;
pub mod kernel;
pub mod measure;
pub mod rootfs;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Where kernel and edk2 trees are unpacked and built, identical on every machine.
pub const BUILD_ROOT: &str = "/var/tmp/cvm-build";

/// Exclusive lock on `BUILD_ROOT/<name>.lock`, held until the returned file is dropped.
pub fn lock(name: &str) -> Result<std::fs::File> {
    let dir = Path::new(BUILD_ROOT);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if f.try_lock().is_err() {
        eprintln!("    waiting for another build holding {}", path.display());
        f.lock().with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(f)
}

/// Download directory for pinned source archives (inside the cache; safe to delete).
pub fn downloads_dir() -> Result<PathBuf> {
    Ok(crate::tools::cache_dir()?.join("downloads"))
}

/// Check a downloaded file against its pinned sha256.
pub fn check_sha256(path: &Path, want: &str) -> Result<()> {
    let got = crate::tools::sha256_file(path)?;
    anyhow::ensure!(
        got.eq_ignore_ascii_case(want),
        "{}: sha256 {got} does not match the pin {want} (delete the file to re-download, or update the pin)",
        path.display()
    );
    Ok(())
}

/// Copy `from` to `to` (for cache entries: plain copies, mode 0644 from umask-independent fs::copy).
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
