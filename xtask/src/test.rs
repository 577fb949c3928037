//! `cargo xtask test`: the project's test command (README, `.ci/run`). In order:
//!
//! 1. install the oracles (Debian packages, the sev-snp-measure venv) and fetch the pinned
//!    fixtures;
//! 2. `build-image` the default spec (cached by content: only what changed is rebuilt);
//! 3. `cargo test --workspace --release` with `CVM_FIXTURES`, `CVM_ORACLE_BIN`,
//!    `CVM_BUILT_OUT` and `CVM_EXTRA_OVMF` set, so no oracle or built-image test is skipped;
//! 4. `boot-test`: the built image boots under QEMU with the mock TEE (swtpm); predicted =
//!    measured, the key is released and the LUKS data disk formatted and reopened, and every
//!    tamper case (rootfs, cmdline, kernel, initrd, firmware, signature) is caught;
//! 5. with `--repro` only: `verify-repro`, a second build from scratch in a copy of the
//!    checkout (other umask, TZ, locale, -j, empty cache), every output compared byte for byte
//!    with step 2's. Not run by default: it costs a whole cold build (about an hour on the
//!    loaded reference machine; its last run found all 13 outputs identical,
//!    docs/reproducibility.md); the phase says so when skipped;
//! 6. a short run of every cargo-fuzz target (needs a nightly toolchain; said plainly if absent).
//!
//! Each phase prints its duration.

use crate::flags::TestFlags;
use crate::{fixtures, install, tools};
use anyhow::{Context, Result};
use std::time::Instant;
use xshell::{cmd, Shell};

/// Seconds each fuzz target runs in the test command (longer runs: `fuzz/README.md`).
const FUZZ_SECONDS_PER_TARGET: u32 = 20;

pub fn run(sh: &Shell, flags: &TestFlags) -> Result<()> {
    let total = Instant::now();
    let xtask = std::env::current_exe().context("locating the xtask binary")?;

    let t = Instant::now();
    if !flags.no_install {
        install::install_test(sh)?;
        install::install_build(sh)?;
        install::install_rootfs(sh)?;
    }
    let venv_bin = tools::python::ensure_venv(sh)?;
    let fixtures = fixtures::run(sh)?;
    phase_done("setup (packages, venv, fixtures)", t);

    let t = Instant::now();
    tools::stage("test: build-image (default spec)");
    let spec = tools::workspace_root().join(cvm_image_spec::DEFAULT_FILE);
    cmd!(sh, "{xtask} build-image --no-install --spec {spec}").run()?;
    let built = built_out_dir()?;
    phase_done("build-image", t);

    let t = Instant::now();
    tools::stage("test: cargo test --workspace --release (unit, golden vectors, oracles, built image)");
    let extra_ovmf = built.join("firmware/ovmf-snp/OVMF.fd");
    cmd!(sh, "cargo test --workspace --release")
        .env("CVM_FIXTURES", &fixtures)
        .env("CVM_ORACLE_BIN", &venv_bin)
        .env("CVM_BUILT_OUT", &built)
        .env("CVM_EXTRA_OVMF", &extra_ovmf)
        .run()?;
    phase_done("cargo test", t);

    let t = Instant::now();
    tools::stage("test: boot-test (the built image under QEMU with swtpm and the test key broker)");
    cmd!(sh, "{xtask} boot-test --out {built}").run()?;
    phase_done("boot-test", t);

    if flags.repro {
        let t = Instant::now();
        tools::stage("test: verify-repro (one more build from scratch in another directory, compared byte for byte)");
        cmd!(sh, "{xtask} verify-repro --no-install --spec {spec}").run()?;
        phase_done("verify-repro", t);
    } else {
        eprintln!(
            "    VERIFY-REPRO NOT RUN: it needs a whole cold build; run `cargo xtask test --repro` or \
             `cargo xtask verify-repro` (docs/reproducibility.md has the last result)"
        );
    }

    let t = Instant::now();
    fuzz_short(sh)?;
    phase_done("fuzz", t);

    eprintln!("==> test: all phases passed in {:.0}s", total.elapsed().as_secs_f64());
    Ok(())
}

fn phase_done(what: &str, t: Instant) {
    eprintln!("    {what} took {:.1}s", t.elapsed().as_secs_f64());
}

/// `out/<name>/` of the default spec, as `build-image` wrote it.
fn built_out_dir() -> Result<std::path::PathBuf> {
    let spec = cvm_image_spec::ImageSpec::parse(cvm_image_spec::DEFAULT, "image-spec/default.toml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = tools::workspace_root().join("out").join(&spec.image.name);
    anyhow::ensure!(dir.join("manifest.json").exists(), "build-image wrote no {}/manifest.json", dir.display());
    Ok(dir)
}

/// Run every fuzz target for a short time. Needs nightly + cargo-fuzz: installed when
/// possible; when the toolchain cannot be had here, say so plainly (the seeded
/// "random bytes never panic" unit tests still ran in `cargo test`).
fn fuzz_short(sh: &Shell) -> Result<()> {
    tools::stage("test: short fuzz runs (cargo +nightly fuzz)");
    let have_nightly = cmd!(sh, "rustup run nightly rustc --version").quiet().ignore_stderr().read().is_ok()
        || cmd!(sh, "rustup toolchain install nightly --profile minimal").run().is_ok();
    if !have_nightly {
        eprintln!("    FUZZ SKIPPED: no nightly toolchain can be installed on this machine (libFuzzer needs one)");
        return Ok(());
    }
    if cmd!(sh, "cargo fuzz --version").quiet().ignore_stderr().read().is_err() {
        cmd!(sh, "cargo install --locked cargo-fuzz").run()?;
    }
    let _d = sh.push_dir(tools::workspace_root().join("fuzz"));
    let targets = cmd!(sh, "cargo +nightly fuzz list").read()?;
    let max_time = format!("-max_total_time={FUZZ_SECONDS_PER_TARGET}");
    for target in targets.lines().map(str::trim).filter(|l| !l.is_empty()) {
        eprintln!("    fuzzing {target} for {FUZZ_SECONDS_PER_TARGET}s");
        cmd!(sh, "cargo +nightly fuzz run {target} -- {max_time} -max_len=65536").run()?;
    }
    Ok(())
}
