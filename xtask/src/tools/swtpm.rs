//! swtpm (Debian `swtpm`/`swtpm-tools` 0.7.x, installed by `cargo xtask install test`): the
//! software TPM 2.0 of the mock TEE. One instance per boot, with a fresh state directory
//! (`swtpm_setup` allocates the sha256 and sha384 PCR banks), serving QEMU's `tpm-emulator`
//! backend over a Unix control socket; it exits when QEMU disconnects (`--terminate`) and is
//! killed when the handle is dropped.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm.
pub struct Swtpm {
    child: Child,
    /// The control socket QEMU connects to.
    pub ctrl: PathBuf,
    pub log: PathBuf,
}

impl Swtpm {
    /// Initialise a TPM in `dir` (emptied first) and start serving it.
    pub fn start(dir: &Path) -> Result<Swtpm> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dir.join("swtpm.log");
        let mut setup = Command::new("swtpm_setup");
        setup
            .args(["--tpm2", "--pcr-banks", "sha256,sha384", "--overwrite", "--tpmstate"])
            .arg(dir)
            .arg("--logfile")
            .arg(&log);
        super::log_command(&setup);
        let o = setup
            .output()
            .context("running swtpm_setup (install it with `cargo xtask install test`)")?;
        anyhow::ensure!(
            o.status.success(),
            "swtpm_setup failed ({}): {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim(),
            super::log_tail(&log, 20)
        );
        let ctrl = dir.join("ctrl.sock");
        let mut c = Command::new("swtpm");
        c.args(["socket", "--tpm2", "--terminate", "--tpmstate"])
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--log")
            .arg(format!("file={},level=1", log.display()))
            .stdin(Stdio::null());
        super::log_command(&c);
        let child = c.spawn().context("starting swtpm (install it with `cargo xtask install test`)")?;
        let mut s = Swtpm { child, ctrl, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.ctrl.exists() {
            if let Some(st) = s.child.try_wait()? {
                anyhow::bail!("swtpm exited ({st}) before serving:\n{}", super::log_tail(&s.log, 20));
            }
            anyhow::ensure!(Instant::now() < deadline, "swtpm did not create {} in 30 s", s.ctrl.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(s)
    }

    /// QEMU arguments attaching this TPM as a CRB device.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=chrtpm,path={}", self.ctrl.display()),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-crb,tpmdev=tpm0".into(),
        ]
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
