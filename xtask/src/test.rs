//! `cargo xtask test`: the project's test command (README, `.ci/run`). Installs the oracles,
//! fetches the pinned fixtures, then runs the whole workspace's tests with
//! `CVM_FIXTURES` and `CVM_ORACLE_BIN` pointing at them, so no oracle test is skipped.

use crate::flags::TestFlags;
use crate::{fixtures, install, tools};
use anyhow::Result;
use std::time::Instant;
use xshell::{cmd, Shell};

pub fn run(sh: &Shell, flags: &TestFlags) -> Result<()> {
    let t0 = Instant::now();
    if !flags.no_install {
        install::install_test(sh)?;
    }
    let venv_bin = tools::python::ensure_venv(sh)?;
    let fixtures = fixtures::run(sh)?;
    eprintln!("    setup took {:.1}s", t0.elapsed().as_secs_f64());

    tools::stage("test: cargo test --workspace (unit, golden vectors, oracles)");
    let t1 = Instant::now();
    cmd!(sh, "cargo test --workspace --release")
        .env("CVM_FIXTURES", &fixtures)
        .env("CVM_ORACLE_BIN", &venv_bin)
        .run()?;
    eprintln!("    tests took {:.1}s", t1.elapsed().as_secs_f64());
    Ok(())
}
