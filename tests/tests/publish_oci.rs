//! OCI publishing against real third-party tools on 127.0.0.1 (shared/design/reference-values.md
//! §4 D/E): Debian's `docker-registry` (distribution 2.8) serves a throwaway filesystem store,
//! `cvm-publish` pushes manifest + DSSE envelope, `oras pull` must return byte-identical files
//! and `oras manifest fetch` our artifact type; re-pushing gives the same manifest digest.
//! A missing tool fails with the install command (`cargo xtask install test`).

mod publish_common;

use cvm_publish::oci::{self, Artifact};
use publish_common::{envelope, manifest, runtime};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `docker-registry serve` on 127.0.0.1:<free port> with its storage in a temp dir; killed
/// (and reaped) on drop, so a failing test leaves no registry behind.
struct Registry {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oras(args: &[&str], cwd: &Path) -> String {
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

#[test]
fn push_pull_byte_identical_and_repush_same_digest() {
    let registry = Registry::start();
    let reference = format!("{}/guest/refvals:v0.1.0", registry.addr);
    let manifest = manifest();
    let artifact = Artifact {
        envelope: envelope(&manifest),
        manifest,
    };
    let rt = runtime();

    let first = rt
        .block_on(oci::push(&reference, &artifact))
        .expect("push to loopback registry");
    assert!(first.digest.starts_with("sha256:"), "{first:?}");

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    oras(
        &[
            "pull",
            "--plain-http",
            "-o",
            out.to_str().unwrap(),
            &reference,
        ],
        work.path(),
    );
    assert_eq!(
        std::fs::read(out.join(oci::MANIFEST_TITLE)).unwrap(),
        artifact.manifest,
        "manifest.json differs after oras pull"
    );
    assert_eq!(
        std::fs::read(out.join(oci::ENVELOPE_TITLE)).unwrap(),
        artifact.envelope,
        "envelope differs after oras pull"
    );

    let fetched = oras(
        &["manifest", "fetch", "--plain-http", &reference],
        work.path(),
    );
    let fetched: serde_json::Value =
        serde_json::from_str(&fetched).expect("oras prints the manifest JSON");
    assert_eq!(fetched["artifactType"], oci::ARTIFACT_TYPE);
    assert_eq!(fetched["config"]["mediaType"], oci::EMPTY_MEDIA_TYPE);
    let descriptor = oras(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            "--descriptor",
            &reference,
        ],
        work.path(),
    );
    assert!(
        descriptor.contains(&first.digest),
        "oras sees digest {descriptor}, push said {}",
        first.digest
    );

    let second = rt
        .block_on(oci::push(&reference, &artifact))
        .expect("re-push");
    assert_eq!(
        second.digest, first.digest,
        "re-publishing the same files must give the same digest"
    );

    let other = Artifact {
        envelope: envelope(b"{}"),
        manifest: artifact.manifest.clone(),
    };
    let third = rt
        .block_on(oci::push(
            &format!("{}/guest/refvals:other", registry.addr),
            &other,
        ))
        .unwrap();
    assert_ne!(
        third.digest, first.digest,
        "different envelope, different artifact"
    );
}

#[test]
fn push_to_stopped_registry_fails_with_reference() {
    let addr = {
        let registry = Registry::start();
        registry.addr.clone()
    }; // dropped: killed
    let reference = format!("{addr}/guest/refvals:v1");
    let m = manifest();
    let err = runtime()
        .block_on(oci::push(
            &reference,
            &Artifact {
                envelope: envelope(&m),
                manifest: m,
            },
        ))
        .expect_err("nothing listens any more");
    assert!(err.to_string().contains(&reference), "{err}");
}
