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
//! 5. a short run of every cargo-fuzz target (needs a nightly toolchain; said plainly if absent);
//! 6. `verify-repro`: a second build from scratch in a copy of the checkout (other umask, TZ,
//!    locale, -j, empty cache), every output compared byte for byte with step 2's. It costs a
//!    whole cold build (25-35 min on the 2-core reference machine), so it is last and
//!    bounded by a time budget (`--budget`, default 75 of CI's 90 minutes, leaving room for
//!    compiling xtask before the command starts): it starts only when at least 35 minutes are
//!    left, and gives up (said plainly, not a failure) when they run out. On a fresh machine, whose step 2 is itself a cold build, it is therefore
//!    usually not run. `--repro` runs it without a limit, `--no-repro` never; a difference
//!    between the builds is always a failure.
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

    let t = Instant::now();
    fuzz_short(sh)?;
    phase_done("fuzz", t);

    let t = Instant::now();
    match repro_plan(flags, total.elapsed()) {
        ReproPlan::Skip(why) => eprintln!("    VERIFY-REPRO NOT RUN: {why}"),
        ReproPlan::Run(limit) => {
            tools::stage("test: verify-repro (one more build from scratch in another directory, compared byte for byte)");
            let mut c = cmd!(sh, "{xtask} verify-repro --no-install --spec {spec}");
            if let Some(m) = limit {
                eprintln!("    time limit {m} min (what is left of the {}-min budget)", flags.budget);
                let m = m.to_string();
                c = c.args(["--time-limit", &m]);
            }
            let status = std::process::Command::from(c).status().context("starting verify-repro")?;
            match status.code() {
                Some(0) => phase_done("verify-repro", t),
                Some(crate::verify_repro::EXIT_TIME_LIMIT) => eprintln!(
                    "    VERIFY-REPRO INCOMPLETE after {:.0}s: build B did not finish within the budget; \
                     nothing was compared (run `cargo xtask verify-repro` on its own)",
                    t.elapsed().as_secs_f64()
                ),
                _ => anyhow::bail!("verify-repro failed ({status})"),
            }
        }
    }

    eprintln!("==> test: all phases passed in {:.0}s", total.elapsed().as_secs_f64());
    Ok(())
}

/// A from-scratch build B needs about this long on the 2-core reference machine (27-35 min
/// idle, docs/benchmarks.md): verify-repro is not started with less time left.
const REPRO_MIN_MINUTES: u64 = 35;

enum ReproPlan {
    Skip(String),
    /// Run, with this time limit in minutes (None: no limit).
    Run(Option<u64>),
}

/// Whether verify-repro runs, given the flags and the time the earlier phases took.
fn repro_plan(flags: &TestFlags, elapsed: std::time::Duration) -> ReproPlan {
    if flags.no_repro {
        return ReproPlan::Skip("--no-repro".into());
    }
    if flags.repro {
        return ReproPlan::Run(None);
    }
    let used = elapsed.as_secs().div_ceil(60);
    let left = flags.budget.saturating_sub(used);
    if left < REPRO_MIN_MINUTES {
        return ReproPlan::Skip(format!(
            "the earlier phases took {used} of the {}-min budget (--budget) and a from-scratch build needs \
             about {REPRO_MIN_MINUTES}; run `cargo xtask verify-repro` (or `cargo xtask test --repro`) \
             on its own; docs/reproducibility.md has the last result",
            flags.budget
        ));
    }
    ReproPlan::Run(Some(left))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn flags(repro: bool, no_repro: bool, budget: u64) -> TestFlags {
        TestFlags { no_install: true, repro, no_repro, budget }
    }

    #[test]
    fn verify_repro_runs_only_with_enough_budget_left() {
        let min = |m: u64| Duration::from_secs(m * 60);
        // Warm machine: 16 minutes used of 80, 64 left as the limit.
        assert!(matches!(repro_plan(&flags(false, false, 80), min(16)), ReproPlan::Run(Some(64))));
        // A partial minute counts as used.
        assert!(matches!(repro_plan(&flags(false, false, 80), min(16) + Duration::from_secs(1)), ReproPlan::Run(Some(63))));
        // Exactly the minimum left still runs; one minute less does not.
        assert!(matches!(repro_plan(&flags(false, false, 80), min(45)), ReproPlan::Run(Some(35))));
        assert!(matches!(repro_plan(&flags(false, false, 80), min(46)), ReproPlan::Skip(_)));
        // Cold machine: the build alone took most of the budget; past the budget too.
        assert!(matches!(repro_plan(&flags(false, false, 80), min(56)), ReproPlan::Skip(_)));
        assert!(matches!(repro_plan(&flags(false, false, 80), min(200)), ReproPlan::Skip(_)));
        // --repro: no limit whatever the time; --no-repro: never.
        assert!(matches!(repro_plan(&flags(true, false, 80), min(200)), ReproPlan::Run(None)));
        assert!(matches!(repro_plan(&flags(false, true, 80), min(0)), ReproPlan::Skip(_)));
    }
}
