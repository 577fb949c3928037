//! GNU make driving the Linux kernel's kbuild (Debian: `make`, `gcc` via build-essential,
//! `flex`, `bison`, `bc`, `libelf-dev`, `libssl-dev`; tested with make 4.3 and gcc 12.2 on
//! bookworm building Debian's linux-source-6.12 6.12.117). Used for `tinyconfig`,
//! `scripts/kconfig/merge_config.sh -m`, `olddefconfig` and `bzImage`.
//!
//! Reproducibility: every kbuild call gets the fixed identity below (`KBUILD_BUILD_*`,
//! `SOURCE_DATE_EPOCH`), `LC_ALL=C`/`TZ=UTC` (from [`super::shell`]) and `umask 022`
//! (through `sh -c`, since the process umask cannot be set without `unsafe`).

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// 2024-01-01T00:00:00Z, the project's fixed build epoch.
pub const SOURCE_DATE_EPOCH: &str = "1704067200";

/// The environment that makes kbuild output independent of who builds, when and where.
pub const KBUILD_ENV: &[(&str, &str)] = &[
    ("ARCH", "x86_64"),
    ("KBUILD_BUILD_TIMESTAMP", "Mon Jan  1 00:00:00 UTC 2024"),
    ("KBUILD_BUILD_USER", "builder"),
    ("KBUILD_BUILD_HOST", "cvm-builder"),
    ("KBUILD_BUILD_VERSION", "1"),
    ("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH),
];

/// Parallel jobs (make -j, edk2 -n): `$CVM_JOBS` when it is a positive number (verify-repro
/// varies it), else the number of CPUs available to this process. In no cache key: the
/// parallelism must not change an output.
pub fn jobs() -> usize {
    let cpus = || std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match std::env::var("CVM_JOBS") {
        Err(_) => cpus(),
        Ok(v) => v.trim().parse().ok().filter(|&n: &usize| n > 0).unwrap_or_else(|| {
            eprintln!("    warning: CVM_JOBS={v:?} is not a positive number; using {}", cpus());
            cpus()
        }),
    }
}

/// A kbuild line that stands for one compiled unit (for the progress heartbeat).
pub fn is_kbuild_unit(line: &str) -> bool {
    line.starts_with("  CC ") || line.starts_with("  AS ")
}

/// `make -C SRC O=BUILD ARCH=x86_64 TARGETS...` with the reproducible environment, output to `log`.
pub fn kbuild(sh: &Shell, src: &Path, build: &Path, targets: &[&str], log: &Path, heartbeat: bool) -> Result<()> {
    let o = format!("O={}", build.display());
    let j = format!("-j{}", jobs());
    let mut c = cmd!(sh, "sh -c 'umask 022 && exec \"$@\"' sh make -C {src} {o} ARCH=x86_64 {j} {targets...}");
    for (k, v) in KBUILD_ENV {
        c = c.env(k, v);
    }
    super::run_logged(c, log, heartbeat.then_some(("kernel", is_kbuild_unit as fn(&str) -> bool)))
        .with_context(|| format!("building {targets:?} in {}", build.display()))
}

/// `scripts/kconfig/merge_config.sh -m -O BUILD BUILD/.config FRAGMENTS...` (merge only; the
/// caller runs `olddefconfig` and checks that the requested options landed).
pub fn merge_config(sh: &Shell, src: &Path, build: &Path, fragments: &[&Path], log: &Path) -> Result<()> {
    let _d = sh.push_dir(src);
    let base = build.join(".config");
    let mut c = cmd!(sh, "sh -c 'umask 022 && exec \"$@\"' sh ./scripts/kconfig/merge_config.sh -m -O {build} {base} {fragments...}");
    for (k, v) in KBUILD_ENV {
        c = c.env(k, v);
    }
    super::run_logged(c, log, None).with_context(|| format!("merging config fragments into {}", base.display()))
}

/// First lines of `gcc --version`, `make --version`, `ld --version`, `flex --version`,
/// `bison --version`: part of the kernel cache key.
pub fn toolchain_versions(sh: &Shell) -> Result<Vec<(String, String)>> {
    let mut v = Vec::new();
    for prog in ["gcc", "make", "ld", "flex", "bison"] {
        let out = cmd!(sh, "{prog} --version").quiet().read().with_context(|| format!("{prog} --version (run `cargo xtask install build`)"))?;
        v.push((prog.to_string(), out.lines().next().unwrap_or_default().to_string()));
    }
    Ok(v)
}
