//! Python oracles in a private venv: `sev-snp-measure` (PyPI, pinned) for the SNP differential
//! test. The venv lives in the cache dir.

use anyhow::Result;
use std::path::PathBuf;
use xshell::{cmd, Shell};

/// PyPI packages, pinned by version.
pub const PIP_PACKAGES: &[&str] = &["sev-snp-measure==0.0.13"];

/// Create the venv if needed and install the pinned packages; returns the venv's `bin/`.
pub fn ensure_venv(sh: &Shell) -> Result<PathBuf> {
    let venv = super::cache_dir()?.join("venv");
    let bin = venv.join("bin");
    if !bin.join("sev-snp-measure").exists() {
        cmd!(sh, "python3 -m venv {venv}").run()?;
        let pip = bin.join("pip");
        cmd!(sh, "{pip} install -q --disable-pip-version-check {PIP_PACKAGES...}").run()?;
    }
    Ok(bin)
}
