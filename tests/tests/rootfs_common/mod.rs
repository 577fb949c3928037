//! Helpers shared by `verity_oracle.rs` and `disk_oracle.rs`: running the Debian oracle tools
//! (`veritysetup`, `sgdisk`, `fdisk`, `fsck.vfat`, mtools) and a scratch directory per test.
//! A missing tool fails the test with the install command: an oracle is never skipped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run `program args...`; panics with an install hint if the program is missing.
pub fn run(program: &str, args: &[&str]) -> Output {
    eprintln!("$ {program} {}", args.join(" "));
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): run `cargo xtask install test` (cryptsetup-bin, gdisk, fdisk, dosfstools, mtools)"))
}

/// Run and require exit status 0; returns stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// A fresh, empty scratch directory for one test, under cargo's target tmpdir.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic pseudo-random bytes (xorshift64, fixed seed) of length `len`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}
