//! diffoscope (Debian `diffoscope-minimal` 240 from bookworm, installed with the test set and
//! by `verify-repro`): explains how two differing build outputs differ. Optional: callers
//! check [`available`] and fall back to the first differing offset alone.

use anyhow::{Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// Whether `diffoscope` runs here.
pub fn available(sh: &Shell) -> bool {
    cmd!(sh, "diffoscope --version").quiet().ignore_stdout().ignore_stderr().run().is_ok()
}

/// How a diffoscope run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Identical,
    Differ,
    /// Killed after the time limit (`timeout` exit 124); the text report may be partial.
    TimedOut,
    /// diffoscope's own error (exit 2 or another status).
    Failed(i32),
}

/// `timeout SECONDS diffoscope --no-progress --text TEXT --max-text-report-size BYTES A B`.
pub fn compare(sh: &Shell, a: &Path, b: &Path, text: &Path, seconds: u32, max_bytes: u64) -> Result<Verdict> {
    if let Some(dir) = text.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (secs, max) = (seconds.to_string(), max_bytes.to_string());
    let c = cmd!(sh, "timeout {secs} diffoscope --no-progress --text {text} --max-text-report-size {max} {a} {b}");
    eprintln!("$ {c}");
    let out = c.ignore_status().ignore_stdout().output().context("running diffoscope")?;
    Ok(match out.status.code() {
        Some(0) => Verdict::Identical,
        Some(1) => Verdict::Differ,
        Some(124) => Verdict::TimedOut,
        c => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            eprintln!("    diffoscope failed ({c:?}): {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
            Verdict::Failed(c.unwrap_or(-1))
        }
    })
}
