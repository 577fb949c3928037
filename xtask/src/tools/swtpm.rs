//! swtpm (Debian `swtpm`/`swtpm-tools` 0.7.x, installed by `cargo xtask install test`): the
//! software TPM 2.0 of the mock TEE. One instance per boot, with a fresh state directory
//! (`swtpm_setup` allocates the sha256 and sha384 PCR banks), serving QEMU's `tpm-emulator`
//! backend over a Unix control socket; it exits when QEMU disconnects (`--terminate`) and is
//! killed when the handle is dropped.
//!
//! Before QEMU starts, the AK is enrolled: a short-lived swtpm on the same state, with a data
//! socket, is asked for the AK public key by the agent's own code
//! (`cvm_agent::tpm::Tpm::ak_public`: the same template under the same hierarchy as every quote,
//! so the AK depends only on the state's endorsement seed), then shut down in order
//! (TPM2_Shutdown, connection closed, `--terminate`) so the state is saved before the instance
//! QEMU uses reads it. The broker accepts quotes by [`Swtpm::ak_public`] only.

use anyhow::{Context, Result};
use cvm_agent::tpm::attest::name_sha256;
use cvm_agent::tpm::transport::StreamTransport;
use cvm_agent::tpm::Tpm;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; stopped when dropped.
pub struct Swtpm {
    _process: Running,
    /// The control socket QEMU connects to.
    pub ctrl: PathBuf,
    /// The enrolled AK: hex `TPMT_PUBLIC`, the encoding of the agent's `QuoteEvidence::ak_public`.
    pub ak_public: String,
}

/// A swtpm process, killed (if still running) and reaped on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `swtpm socket --tpm2 --tpmstate dir=DIR ARGS --log file=LOG,level=1`.
fn swtpm_socket(dir: &Path, log: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("swtpm");
    c.args(["socket", "--tpm2", "--tpmstate"])
        .arg(format!("dir={}", dir.display()))
        .args(args)
        .arg("--log")
        .arg(format!("file={},level=1", log.display()))
        .stdin(Stdio::null());
    c
}

/// Spawns swtpm (`c`, printed first) and waits until it has created `socket`.
fn spawn(mut c: Command, socket: &Path, log: &Path) -> Result<Running> {
    super::log_command(&c);
    let child = c.spawn().context("starting swtpm (install it with `cargo xtask install test`)")?;
    let mut r = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        if let Some(st) = r.0.try_wait()? {
            anyhow::bail!("swtpm exited ({st}) before serving:\n{}", super::log_tail(log, 20));
        }
        anyhow::ensure!(Instant::now() < deadline, "swtpm did not create {} in 30 s", socket.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(r)
}

/// Enrollment: a short-lived swtpm on the state in `dir` (`--flags startup-clear`: it sends
/// TPM2_Startup itself) is asked for the AK with the agent's code, shut down with
/// TPM2_Shutdown(CLEAR) and, once the connection is closed, exits (`--terminate`) with its
/// state saved. Returns the AK as hex `TPMT_PUBLIC`.
fn enroll_ak(dir: &Path, log: &Path) -> Result<String> {
    let sock = dir.join("enroll.sock");
    let server = format!("type=unixio,path={}", sock.display());
    let c = swtpm_socket(dir, log, &["--terminate", "--flags", "startup-clear", "--server", &server]);
    let mut running = spawn(c, &sock, log)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            // The socket file exists from bind(); connections are refused until listen().
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to {}", sock.display())),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tpm = Tpm::new(StreamTransport::new(stream));
    let ak = tpm.ak_public().context("reading the AK (TPM2_CreatePrimary of the agent's template)")?;
    tpm.shutdown()?;
    drop(tpm);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = running.0.try_wait()? {
            break st;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the enrollment swtpm did not exit within 30 s of its client closing the connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(status.success(), "the enrollment swtpm exited with {status}:\n{}", super::log_tail(log, 20));
    eprintln!("    swtpm: enrolled AK, Name {}", hex::encode(name_sha256(&ak)));
    Ok(hex::encode(ak))
}

impl Swtpm {
    /// Initialise a TPM in `dir` (emptied first), enroll its AK and start serving it.
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
        let ak_public = enroll_ak(dir, &log).context("enrolling the swtpm's AK")?;
        let ctrl = dir.join("ctrl.sock");
        let ctrl_arg = format!("type=unixio,path={}", ctrl.display());
        let process = spawn(swtpm_socket(dir, &log, &["--terminate", "--ctrl", &ctrl_arg]), &ctrl, &log)?;
        Ok(Swtpm { _process: process, ctrl, ak_public })
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
