//! Third-party OCI tools on 127.0.0.1 for the tests: Debian's `docker-registry` (distribution
//! 2.8) on a free port with a throwaway filesystem store, and `oras` (trixie). A missing tool
//! fails with the install command (`cargo xtask install test`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry serve` on 127.0.0.1:<free port> with its storage in a temp dir; killed
/// (and reaped) on drop, so a failing test leaves no registry behind.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        // Own config: loopback listener, filesystem storage, no auth (the packaged
        // /etc/docker/registry/config.yml listens on :5000 with htpasswd).
        let yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("store").display()
        );
        std::fs::write(&config, yaml).unwrap();
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log).unwrap();
        eprintln!("$ docker-registry serve {}", config.display());
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run docker-registry ({e}): run `cargo xtask install test`")
            });
        let mut reg = Registry {
            child,
            addr,
            log,
            _dir: dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited ({status}):\n{}", self.log_text());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "docker-registry not listening on {} after 20 s:\n{}",
                self.addr,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `oras` in `cwd` (also its HOME, so its config and cache stay out of the real home);
/// panics with its output when it fails.
pub fn oras(args: &[&str], cwd: &Path) -> String {
    eprintln!("$ oras {}", args.join(" "));
    let out = Command::new("oras")
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd) // keep oras' config/cache out of the real home
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run oras ({e}): run `cargo xtask install test` (oras from trixie)")
        });
    assert!(
        out.status.success(),
        "oras {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
