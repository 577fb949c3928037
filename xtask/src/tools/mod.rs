//! The one place that runs external programs. Every command line is printed before it runs
//! (`$ cmd args`), with a fixed, reproducible environment (`LC_ALL=C`, `TZ=UTC`).
//! One submodule per program family; stages call their typed functions.

pub mod apt;
pub mod diffoscope;
pub mod edk2;
pub mod erofs;
pub mod git;
pub mod make;
pub mod mkosi;
pub mod python;
pub mod qemu;
pub mod registry;
pub mod swtpm;
pub mod tar;
pub mod veritysetup;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use xshell::Shell;

/// A shell rooted at the workspace, with the reproducible environment applied.
pub fn shell() -> Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    sh.set_var("LC_ALL", "C");
    sh.set_var("TZ", "UTC");
    Ok(sh)
}

/// The workspace root (parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// The content-addressed cache (outside the checkout; safe to delete):
/// `$CVM_CACHE_DIR`, else `$XDG_CACHE_HOME/cvm-image`, else `~/.cache/cvm-image`.
pub fn cache_dir() -> Result<PathBuf> {
    // An empty variable counts as unset (it would otherwise mean "the current directory").
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("CVM_CACHE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("cvm-image"));
    }
    let home = std::env::var_os("HOME").context("neither CVM_CACHE_DIR, XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/cvm-image"))
}

/// Print a stage banner to stderr.
pub fn stage(name: &str) {
    eprintln!("==> {name}");
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The executable `prog` resolves to on `PATH` (symlinks followed), e.g. `gcc` →
/// `/usr/bin/x86_64-linux-gnu-gcc-12`.
pub fn executable(prog: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
        .with_context(|| format!("{prog} is not on PATH (run `cargo xtask install build`)"))?
        .canonicalize()
        .with_context(|| format!("resolving {prog}"))
}

/// Write `bytes` to `path` atomically (temp file in the same directory, then rename), so a
/// failed run never leaves a half-written artefact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().unwrap_or_default().to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Run a long program with stdout+stderr streamed to `log` (created, with the command line as
/// its first line), printing the command line first and, with `heartbeat = Some((label,
/// is_unit))`, a periodic "still building" line counting log lines matching `is_unit`.
/// On failure the error carries the exact command line, exit status and the log's last lines.
pub fn run_logged(cmd: xshell::Cmd<'_>, log: &Path, heartbeat: Option<(&str, fn(&str) -> bool)>) -> Result<()> {
    use std::io::Write;
    let line = cmd.to_string();
    eprintln!("$ {line}");
    eprintln!("    (output: {})", log.display());
    let dir = log.parent().context("log path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut f = std::fs::File::create(log).with_context(|| format!("creating log {}", log.display()))?;
    writeln!(f, "$ {line}").with_context(|| format!("writing log {}", log.display()))?;
    let mut c: std::process::Command = cmd.into();
    c.stdin(std::process::Stdio::null());
    c.stdout(f.try_clone().with_context(|| format!("cloning log {}", log.display()))?);
    c.stderr(f);
    let hb = heartbeat.map(|(label, is_unit)| crate::progress::Heartbeat::start(label, log.to_path_buf(), is_unit));
    let status = c.status().with_context(|| format!("starting `{line}`"));
    drop(hb);
    let status = status?;
    if !status.success() {
        anyhow::bail!(
            "command failed ({status}):\n  $ {line}\n--- last lines of {} ---\n{}",
            log.display(),
            log_tail(log, 40)
        );
    }
    Ok(())
}

/// The last `n` lines of a text file (for error messages).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Print a `std::process::Command` line as `$ program args` (for the few tools that are
/// spawned rather than run to completion through xshell).
pub fn log_command(c: &std::process::Command) {
    let mut line = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        line.push(' ');
        line.push_str(&a.to_string_lossy());
    }
    eprintln!("$ {line}");
}
