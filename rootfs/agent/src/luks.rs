//! The encrypted data disk: LUKS2 on first boot, open + mount on later boots.
//!
//! [`plan`] is pure: it turns the disk state (is it LUKS yet?) into the exact list of commands
//! and file steps. [`run`] executes a plan with `std::process`, logging every command line and
//! feeding the key on stdin (`--key-file -`), never in argv or a file.
//!
//! The key is 32 random bytes from the broker, not a passphrase, so key stretching buys nothing:
//! `--pbkdf pbkdf2 --pbkdf-force-iterations 1000` keeps luksFormat/open fast under QEMU TCG and
//! avoids argon2id's memory cost in a 512 MiB guest.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the data disk is and where it goes.
#[derive(Debug, Clone)]
pub struct Config {
    pub device: PathBuf,
    /// device-mapper name, e.g. `cvm-data` → `/dev/mapper/cvm-data`.
    pub mapper_name: String,
    pub mount_point: PathBuf,
    /// Marker file name inside the mount point.
    pub marker: String,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run `program args...`; if `key_on_stdin`, the key is written to its stdin.
    Run {
        program: String,
        args: Vec<String>,
        key_on_stdin: bool,
    },
    CreateDir(PathBuf),
    /// First boot: write `contents` to the marker file.
    WriteMarker {
        path: PathBuf,
        contents: String,
    },
    /// Later boots: the marker must exist.
    ReadMarker(PathBuf),
}

impl Step {
    /// The command line as logged (the key never appears in it).
    pub fn display(&self) -> String {
        match self {
            Step::Run {
                program,
                args,
                key_on_stdin,
            } => {
                let mut s = program.clone();
                for a in args {
                    s.push(' ');
                    s.push_str(a);
                }
                if *key_on_stdin {
                    s.push_str("  (key on stdin)");
                }
                s
            }
            Step::CreateDir(p) => format!("mkdir -p {}", p.display()),
            Step::WriteMarker { path, .. } => format!("write marker {}", path.display()),
            Step::ReadMarker(p) => format!("read marker {}", p.display()),
        }
    }
}

fn run(program: &str, args: &[&str], key_on_stdin: bool) -> Step {
    Step::Run {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        key_on_stdin,
    }
}

/// The probe deciding first vs later boot: `cryptsetup isLuks <device>` (exit 0 = LUKS).
pub fn probe(cfg: &Config) -> Step {
    run(
        "cryptsetup",
        &["isLuks", &cfg.device.to_string_lossy()],
        false,
    )
}

/// The steps for a disk that `is_luks` or not yet.
pub fn plan(cfg: &Config, is_luks: bool) -> Vec<Step> {
    let dev = cfg.device.to_string_lossy().into_owned();
    let mapped = format!("/dev/mapper/{}", cfg.mapper_name);
    let mnt = cfg.mount_point.to_string_lossy().into_owned();
    let marker = cfg.mount_point.join(&cfg.marker);
    let open = run(
        "cryptsetup",
        &[
            "open",
            "--type",
            "luks2",
            "--key-file",
            "-",
            &dev,
            &cfg.mapper_name,
        ],
        true,
    );
    let mut steps = Vec::new();
    if !is_luks {
        steps.push(run(
            "cryptsetup",
            &[
                "luksFormat",
                "--type",
                "luks2",
                "--batch-mode",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
                "-",
                &dev,
            ],
            true,
        ));
        steps.push(open);
        steps.push(run("mkfs.ext4", &["-q", "-L", "cvm-data", &mapped], false));
        steps.push(Step::CreateDir(cfg.mount_point.clone()));
        steps.push(run("mount", &["-t", "ext4", &mapped, &mnt], false));
        steps.push(Step::WriteMarker {
            path: marker,
            contents: "cvm-agent data disk initialised\n".into(),
        });
    } else {
        steps.push(open);
        steps.push(Step::CreateDir(cfg.mount_point.clone()));
        steps.push(run("mount", &["-t", "ext4", &mapped, &mnt], false));
        steps.push(Step::ReadMarker(marker));
    }
    steps
}

/// Outcome of a successful [`run_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Formatted,
    Reopened { marker: String },
}

fn exec(step: &Step, key: &[u8]) -> anyhow::Result<()> {
    match step {
        Step::Run {
            program,
            args,
            key_on_stdin,
        } => {
            let mut child = Command::new(program)
                .args(args)
                .stdin(if *key_on_stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| anyhow::format_err!("spawning {program}: {e}"))?;
            if *key_on_stdin {
                let mut stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| anyhow::format_err!("{program}: no stdin"))?;
                stdin.write_all(key)?;
            }
            let out = child.wait_with_output()?;
            if !out.status.success() {
                anyhow::bail!(
                    "`{}` failed with {}: {}",
                    step.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        }
        Step::CreateDir(p) => std::fs::create_dir_all(p)
            .map_err(|e| anyhow::format_err!("mkdir {}: {e}", p.display())),
        Step::WriteMarker { path, contents } => std::fs::write(path, contents)
            .map_err(|e| anyhow::format_err!("writing {}: {e}", path.display())),
        Step::ReadMarker(p) => std::fs::read_to_string(p)
            .map(|_| ())
            .map_err(|e| anyhow::format_err!("reading {}: {e}", p.display())),
    }
}

/// Probes the disk, then runs the plan, logging each step before running it.
pub fn run_plan(cfg: &Config, key: &[u8], log: &mut dyn FnMut(String)) -> anyhow::Result<Outcome> {
    let probe = probe(cfg);
    log(format!("running: {}", probe.display()));
    let is_luks = exec(&probe, key).is_ok();
    log(format!(
        "{} is {}",
        cfg.device.display(),
        if is_luks {
            "LUKS (later boot)"
        } else {
            "not LUKS (first boot)"
        }
    ));
    for step in plan(cfg, is_luks) {
        log(format!("running: {}", step.display()));
        exec(&step, key)?;
    }
    let marker_path: &Path = &cfg.mount_point.join(&cfg.marker);
    if is_luks {
        let marker = std::fs::read_to_string(marker_path)?;
        log(format!("data disk reopened, marker: {}", marker.trim()));
        Ok(Outcome::Reopened { marker })
    } else {
        log("data disk formatted, opened and mounted".into());
        Ok(Outcome::Formatted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            device: "/dev/vdb".into(),
            mapper_name: "cvm-data".into(),
            mount_point: "/run/cvm-data".into(),
            marker: "cvm-marker".into(),
        }
    }

    #[test]
    fn first_boot_formats_then_writes_marker() {
        let steps: Vec<String> = plan(&cfg(), false).iter().map(Step::display).collect();
        assert_eq!(
            steps,
            [
                "cryptsetup luksFormat --type luks2 --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - /dev/vdb  (key on stdin)",
                "cryptsetup open --type luks2 --key-file - /dev/vdb cvm-data  (key on stdin)",
                "mkfs.ext4 -q -L cvm-data /dev/mapper/cvm-data",
                "mkdir -p /run/cvm-data",
                "mount -t ext4 /dev/mapper/cvm-data /run/cvm-data",
                "write marker /run/cvm-data/cvm-marker",
            ]
        );
    }

    #[test]
    fn later_boot_never_formats() {
        let steps = plan(&cfg(), true);
        assert!(steps
            .iter()
            .all(|s| !s.display().contains("luksFormat") && !s.display().contains("mkfs")));
        assert_eq!(
            steps.last(),
            Some(&Step::ReadMarker("/run/cvm-data/cvm-marker".into()))
        );
        assert_eq!(probe(&cfg()).display(), "cryptsetup isLuks /dev/vdb");
    }

    #[test]
    fn key_is_only_on_stdin() {
        for s in plan(&cfg(), false) {
            if let Step::Run {
                args, key_on_stdin, ..
            } = &s
            {
                if *key_on_stdin {
                    assert!(
                        args.windows(2).any(|w| w == ["--key-file", "-"]),
                        "{}",
                        s.display()
                    );
                }
            }
        }
    }

    #[test]
    fn failing_command_is_an_error_naming_it() {
        let err = exec(&run("false", &["--flag"], false), b"k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`false --flag` failed"), "{err}");
    }
}
