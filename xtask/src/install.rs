//! `cargo xtask install [test|all]`: install what the tasks need, saying what it does.

use crate::flags::InstallFlags;
use crate::tools::{self, apt, python};
use anyhow::{bail, Result};
use xshell::Shell;

/// Debian packages for the test suite's oracles (bookworm unless noted).
const TEST_PACKAGES: &[&str] = &["python3-venv", "cryptsetup-bin", "gdisk", "dosfstools", "mtools", "binutils"];

pub fn run(sh: &Shell, flags: &InstallFlags) -> Result<()> {
    match flags.set.as_str() {
        "test" | "all" => install_test(sh),
        other => bail!("unknown tool set {other:?}: use `test` or `all`"),
    }
}

pub fn install_test(sh: &Shell) -> Result<()> {
    tools::stage("install: apt suites and pins (trixie, bookworm-backports at priority 100)");
    apt::ensure_suites(sh)?;
    tools::stage("install: Debian packages for the test oracles");
    apt::install(sh, None, TEST_PACKAGES)?;
    tools::stage("install: Python venv with sev-snp-measure (PyPI)");
    python::ensure_venv(sh)?;
    Ok(())
}
