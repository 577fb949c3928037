//! Debian's `docker-registry` (distribution 2.8, installed by `cargo xtask install test`) on
//! 127.0.0.1:<free port> with its storage in a given directory, and `oras` (1.2, trixie) to
//! push to it. Test fixtures of `boot-test`; the registry is killed when the handle drops.

use anyhow::{Context, Result};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xshell::{cmd, Shell};

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl Registry {
    /// Start a registry storing into `dir` (emptied first).
    pub fn start(dir: &Path) -> Result<Registry> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        // Own config: loopback only, filesystem storage, no auth (the packaged config listens
        // on :5000 with htpasswd).
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("store").display()
            ),
        )?;
        let log = dir.join("registry.log");
        let out = std::fs::File::create(&log)?;
        let mut c = Command::new("docker-registry");
        c.arg("serve").arg(&config).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        super::log_command(&c);
        let child = c.spawn().context("starting docker-registry (install it with `cargo xtask install test`)")?;
        let mut r = Registry { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&r.addr).is_err() {
            if let Some(st) = r.child.try_wait()? {
                anyhow::bail!("docker-registry exited ({st}):\n{}", super::log_tail(&r.log, 20));
            }
            anyhow::ensure!(Instant::now() < deadline, "docker-registry not listening on {} after 30 s", r.addr);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(r)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `oras push --plain-http REF --config CONFIG:TYPE LAYER:TYPE` run in `dir` (oras records
/// the file names relative to it), exporting the pushed manifest; returns its bytes.
pub fn oras_push(sh: &Shell, dir: &Path, reference: &str, config: (&str, &str), layer: (&str, &str)) -> Result<Vec<u8>> {
    let _d = sh.push_dir(dir);
    let _h = sh.push_env("HOME", dir); // keep oras' config and cache out of the real home
    let manifest = dir.join("pushed-manifest.json");
    let config = format!("{}:{}", config.0, config.1);
    let layer = format!("{}:{}", layer.0, layer.1);
    cmd!(sh, "oras push --plain-http --export-manifest {manifest} --config {config} {reference} {layer}")
        .run()
        .with_context(|| format!("oras push {reference} (install oras with `cargo xtask install test`)"))?;
    std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))
}
