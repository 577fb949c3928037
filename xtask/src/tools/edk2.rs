//! EDK II (TianoCore) builds of OVMF/TDVF from Debian's `edk2` source package (tested with
//! 2025.02-8+deb13u1 from trixie, nasm 2.16.01, iasl 20200925, gcc 12.2, system
//! Python 3). Debian packages: `nasm`, `acpica-tools`, `uuid-dev`, `python3`, `patch`,
//! build-essential.
//!
//! Traps handled here: `edksetup.sh` reads its caller's positional parameters, so it is
//! sourced from `bash -c` after `set --`; the PATH `python3` may be a pyenv shim, so
//! `PYTHON_COMMAND=/usr/bin/python3`; the `.dsc` of the Debian source package 404s on the
//! mirror, so `apt-get source --download-only` may fail after fetching both tarballs (the
//! caller checks the tarballs' pinned sha256 instead of the exit status).

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// The Python edk2's BaseTools run under.
pub const PYTHON: &str = "/usr/bin/python3";

/// `apt-get source --download-only edk2=VERSION` into `dir`. Returns whether apt succeeded;
/// a failure is expected when only the `.dsc` is missing.
pub fn download_source(sh: &Shell, dir: &Path, version: &str) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _d = sh.push_dir(dir);
    let spec = format!("edk2={version}");
    let ok = cmd!(sh, "apt-get source --download-only -qq {spec}").run().is_ok();
    if !ok {
        eprintln!("    apt-get source reported an error (the .dsc is known to 404); checking the tarballs");
    }
    Ok(ok)
}

/// Apply `patches/series` of a Debian source package in order with `patch -p1`.
pub fn apply_series(sh: &Shell, src: &Path, patches_dir: &Path) -> Result<usize> {
    let series = patches_dir.join("series");
    let text = std::fs::read_to_string(&series).with_context(|| format!("reading {}", series.display()))?;
    let _d = sh.push_dir(src);
    let mut n = 0;
    for name in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let p = patches_dir.join(name.split_whitespace().next().unwrap_or(name));
        cmd!(sh, "patch -p1 --forward --batch --no-backup-if-mismatch -i {p}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("applying {} (from {})", p.display(), series.display()))?;
        n += 1;
    }
    eprintln!("    applied {n} patches from {}", series.display());
    Ok(n)
}

/// A line of edk2 build output that stands for one compiled unit.
pub fn is_edk2_unit(line: &str) -> bool {
    line.starts_with("\"gcc\"") || line.starts_with("\"nasm\"") || line.starts_with("gcc ")
}

/// `make -C BaseTools -jN` (the C tools GenFw, GenFv, ...).
pub fn build_basetools(sh: &Shell, src: &Path, log: &Path) -> Result<()> {
    let j = format!("-j{}", super::make::jobs());
    let bt = src.join("BaseTools");
    let c = cmd!(sh, "make -C {bt} {j}").env("PYTHON_COMMAND", PYTHON).env("SOURCE_DATE_EPOCH", super::make::SOURCE_DATE_EPOCH);
    super::run_logged(c, log, Some(("BaseTools", is_edk2_unit as fn(&str) -> bool))).with_context(|| format!("building {}", bt.display()))
}

/// `. ./edksetup.sh; build -a X64 -t GCC5 -b RELEASE -p DSC FLAGS... -n 1 genmake`, then the
/// same with `-n N --skip-autogen`, in `src`.
///
/// Two passes because edk2's AutoGen is not deterministic with more than one worker: `build -n N`
/// starts N AutoGen processes that take modules from a shared queue, and a library's PCD objects
/// are cached per process. So a module-scoped VOID* PCD shorter than its DEC default gets an
/// array sized by whichever module the same process handled first: OvmfPkg's
/// `PcdEntryPointOverrideDefaultValue` ("no" for IScsiDxe, "yes" in the DEC, both through
/// UefiDriverEntryPointFwCfgOverrideLib) came out as `[3]` or `[4]`, and the ovmf-vtpm
/// `OVMF.fd` differed between two builds of the same inputs (found by `cargo xtask
/// verify-repro`: a full `-n 2` build gave `[3]`, a `-n 3` one `[4]`; `genmake` alone gave `[4]`
/// with `-n 1` and `-n 2`, `[3]` with `-n 3`, 4, 8 and 16).
/// One AutoGen worker takes the modules in queue order (~20 s); compiling and linking keep N jobs.
pub fn build(sh: &Shell, src: &Path, dsc: &str, flags: &[String], label: &str, log: &Path) -> Result<()> {
    let _d = sh.push_dir(src);
    let n = super::make::jobs().to_string();
    let script = "n=$1; shift; args=(\"$@\"); set --; . ./edksetup.sh >/dev/null \
        && build \"${args[@]}\" -n 1 genmake && build \"${args[@]}\" -n \"$n\" --skip-autogen";
    let c = cmd!(sh, "bash -c {script} edk2-build {n} -a X64 -t GCC5 -b RELEASE -p {dsc} {flags...}")
        .env("PYTHON_COMMAND", PYTHON)
        .env("SOURCE_DATE_EPOCH", super::make::SOURCE_DATE_EPOCH)
        .env_remove("WORKSPACE")
        .env_remove("EDK_TOOLS_PATH")
        .env_remove("CONF_PATH")
        .env_remove("PACKAGES_PATH");
    super::run_logged(c, log, Some((label, is_edk2_unit as fn(&str) -> bool))).with_context(|| format!("building {dsc} in {}", src.display()))
}

/// `nasm -v`, `iasl -v`, `python3 --version`, `gcc --version`, `make --version` (first
/// lines): part of the firmware cache key.
pub fn toolchain_versions(sh: &Shell) -> Result<Vec<(String, String)>> {
    let mut v = Vec::new();
    for (prog, flag) in [("nasm", "-v"), ("iasl", "-v"), (PYTHON, "--version"), ("gcc", "--version"), ("make", "--version")] {
        let out = cmd!(sh, "{prog} {flag}").quiet().ignore_status().read().with_context(|| format!("{prog} {flag} (run `cargo xtask install build`)"))?;
        let line = out.lines().map(str::trim).filter(|l| !l.is_empty()).take(3).collect::<Vec<_>>().join(" / ");
        anyhow::ensure!(!line.is_empty(), "{prog} {flag} printed nothing: is it installed? (`cargo xtask install build`)");
        v.push((prog.to_string(), line));
    }
    Ok(v)
}
