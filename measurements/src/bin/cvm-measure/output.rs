//! Files `cvm-measure` writes (`--event-log-out`, `--event-log-json`): written to a temporary
//! file beside the target and renamed, so an interrupted run never leaves a half-written log
//! that a later step could take for a whole one.

use std::path::Path;

use anyhow::{Context, Result};

/// Write `bytes` to `path` atomically (same directory, then rename).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {} to {}", tmp.display(), path.display())
    })
}
