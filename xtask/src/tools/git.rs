//! git (tested with 2.39): the file list of a checkout, for `verify-repro`'s copy of it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::{cmd, Shell};

/// The files of the working tree at `root` that git tracks, plus the untracked ones it does not
/// ignore (so uncommitted edits and new files are included, `target/` and `out/` are not),
/// relative to `root`, sorted. Tracked files deleted from the working tree are left out.
pub fn worktree_files(sh: &Shell, root: &Path) -> Result<Vec<PathBuf>> {
    let _d = sh.push_dir(root);
    let c = cmd!(sh, "git ls-files -z --cached --others --exclude-standard");
    eprintln!("$ {c}");
    let out = c
        .read()
        .with_context(|| format!("listing the files of the checkout {}", root.display()))?;
    let mut files: Vec<PathBuf> = out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| root.join(p).symlink_metadata().is_ok())
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}
