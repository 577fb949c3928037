//! Running the oracle programs of `cpio_oracle.rs` and `gpt_oracle.rs` (GNU cpio, sgdisk,
//! sfdisk). A missing program fails the test with the package that provides it: an oracle is
//! never skipped silently.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `program args...` in `dir` with `stdin` fed in, `LC_ALL=C TZ=UTC`; requires exit status
/// 0 and returns stdout. `package` is named when the program is missing.
pub fn run(program: &str, args: &[&str], dir: &Path, stdin: &[u8], package: &str) -> Vec<u8> {
    eprintln!("$ (cd {} && {program} {})", dir.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): install the Debian package {package} (`cargo xtask install all`, or `apt-get install {package}`)")
        });
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().expect("waiting for the oracle");
    feeder
        .join()
        .expect("stdin feeder")
        .expect("writing the oracle's stdin");
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh, empty scratch directory for one test, under cargo's target tmpdir.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
