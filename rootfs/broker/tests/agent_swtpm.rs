//! End-to-end attestation against a real TPM 2.0 simulator: swtpm (Debian `swtpm`, 0.7.1
//! tested) over its Unix server socket. The agent quotes PCRs over the broker's nonce, the
//! broker verifies the quote and the reference values, and releases or refuses the key.
//! The broker accepts only the AK enrolled beforehand from the same TPM state, as
//! `cargo xtask boot-test` enrolls it (`xtask/src/tools/swtpm.rs`): a second swtpm's AK is
//! refused.
//!
//! swtpm is required: if it is missing these tests FAIL and name `cargo xtask install test`.

use cvm_agent::evidence::Sources;
use cvm_agent::protocol::QuoteEvidence;
use cvm_agent::session::{self, Agent};
use cvm_agent::tpm::commands::{PcrSelection, TPM_ALG_SHA256};
use cvm_agent::tpm::transport::StreamTransport;
use cvm_agent::tpm::Tpm;
use cvm_broker::session::{serve, Broker};
use cvm_broker::verify::{verify_quote, VerifyError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufReader, ErrorKind};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A swtpm process with its own state directory, killed on drop (the directory removed).
struct Swtpm {
    process: Process,
    dir: PathBuf,
    sock: PathBuf,
}

/// A child process, killed (if still running) and reaped on drop, also when a test panics.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to a swtpm data socket: the file exists from bind(), connections are refused
/// until listen().
fn connect_to(sock: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match UnixStream::connect(sock) {
            Ok(s) => return s,
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("connecting to {}: {e}", sock.display()),
        }
    }
}

/// A new, empty swtpm state directory (swtpm manufactures the TPM, seeds included, at the
/// first start on it).
fn fresh_state_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cvm-swtpm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `swtpm socket --tpm2` on the state in `dir` with its data socket `dir/<sock_name>`
/// and `flags`; returns once the socket exists.
fn spawn_swtpm(dir: &Path, sock_name: &str, flags: &[&str]) -> (Process, PathBuf) {
    let sock = dir.join(sock_name);
    let child = Command::new("swtpm")
        .args(["socket", "--tpm2"])
        .args(flags)
        .arg("--tpmstate")
        .arg(format!("dir={}", dir.display()))
        .arg("--server")
        .arg(format!("type=unixio,path={}", sock.display()))
        .arg("--log")
        .arg(format!("file={}", dir.join("swtpm.log").display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run swtpm ({e}): it is required by this test; install it with `cargo xtask install test`")
        });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "swtpm did not create {} in 20 s",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), sock)
}

/// Enrollment as `cargo xtask boot-test` does it: a short-lived swtpm on the state in `dir`,
/// asked for the AK with the agent's own code, then shut down cleanly (TPM2_Shutdown, and
/// `--terminate` ends it when the connection closes). Returns the AK as the agent sends it.
fn enroll(dir: &Path) -> String {
    let (mut process, sock) = spawn_swtpm(
        dir,
        "enroll.sock",
        &["--terminate", "--flags", "startup-clear"],
    );
    let mut tpm = Tpm::new(StreamTransport::new(connect_to(&sock)));
    let ak = tpm.ak_public().unwrap();
    tpm.shutdown().unwrap();
    drop(tpm);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = process.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the enrollment swtpm did not exit after its client closed the connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "enrollment swtpm: {status}");
    hex::encode(ak)
}

impl Swtpm {
    fn start() -> Swtpm {
        Swtpm::start_in(fresh_state_dir())
    }

    /// Serves the state in `dir` (and removes it on drop).
    fn start_in(dir: PathBuf) -> Swtpm {
        let (process, sock) = spawn_swtpm(&dir, "tpm.sock", &["--flags", "not-need-init"]);
        Swtpm { process, dir, sock }
    }

    fn connect(&self) -> Tpm<StreamTransport<UnixStream>> {
        let mut tpm = Tpm::new(StreamTransport::new(connect_to(&self.sock)));
        tpm.startup().unwrap();
        tpm
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The AK of a TPM already in use (the tests that are not about enrollment).
fn ak_of(tpm: &mut Tpm<StreamTransport<UnixStream>>) -> String {
    hex::encode(tpm.ak_public().unwrap())
}

fn extend_and_read(tpm: &mut Tpm<StreamTransport<UnixStream>>) -> BTreeMap<u32, String> {
    let digest: [u8; 32] = Sha256::digest(b"cvm-agent test measurement").into();
    tpm.pcr_extend_sha256(8, &digest).unwrap();
    let pcrs = tpm
        .pcr_read(TPM_ALG_SHA256, &(0..10).collect::<Vec<u8>>())
        .unwrap();
    // PCR 8 = sha256(zeros || digest) after one extend from reset.
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(digest);
    assert_eq!(pcrs[&8], h.finalize().to_vec(), "PCR 8 after one extend");
    pcrs.into_iter().map(|(k, v)| (k, hex::encode(v))).collect()
}

fn broker(reference: BTreeMap<u32, String>, enrolled_ak: String, key: [u8; 32]) -> Broker {
    Broker {
        reference,
        enrolled_ak,
        key,
        pull: None,
    }
}

/// Runs broker and agent against each other over a socket pair.
fn run_session(
    tpm: Tpm<StreamTransport<UnixStream>>,
    broker: Broker,
) -> (cvm_broker::session::Outcome, session::Outcome) {
    let (host_end, guest_end) = UnixStream::pair().unwrap();
    let empty_root =
        std::env::temp_dir().join(format!("cvm-agent-empty-root-{}", std::process::id()));
    std::fs::create_dir_all(&empty_root).unwrap();
    let agent_thread = std::thread::spawn(move || {
        let mut agent = Agent {
            sources: Sources {
                root: empty_root,
                pcrs_from_tpm: true,
                veritysetup: None,
            },
            tpm: Some(tpm),
            data_disk: None,
            pull: None,
        };
        let mut r = BufReader::new(guest_end.try_clone().unwrap());
        let mut w = guest_end;
        session::run(&mut r, &mut w, &mut agent).unwrap()
    });
    let host = serve(
        &broker,
        &mut BufReader::new(host_end.try_clone().unwrap()),
        &mut &host_end,
    )
    .unwrap();
    (host, agent_thread.join().unwrap())
}

/// The broker refused with a reason starting with `reason`, and the agent got it and failed.
fn assert_refused(host: &cvm_broker::session::Outcome, agent: &session::Outcome, reason: &str) {
    assert!(!host.released);
    let got = host.refusal.as_deref().unwrap_or_default();
    assert!(
        got.starts_with(reason),
        "refusal {got:?}, expected {reason:?}..."
    );
    assert_eq!(host.agent_done, Some(false));
    let sent = format!("key broker refused: {reason}");
    assert!(
        host.agent_errors.iter().any(|e| e.contains(&sent)),
        "{:?}",
        host.agent_errors
    );
    assert_eq!(
        *agent,
        session::Outcome {
            ok: false,
            key_released: false
        }
    );
}

#[test]
fn quote_verified_and_key_released() {
    // Enrolled from one swtpm process, quoted by the next one on the same state: the AK is a
    // function of the state's endorsement seed alone.
    let dir = fresh_state_dir();
    let enrolled_ak = enroll(&dir);
    let swtpm = Swtpm::start_in(dir);
    let mut tpm = swtpm.connect();
    let reference = extend_and_read(&mut tpm);
    let key = [0x5a; 32];
    let (host, agent) = run_session(tpm, broker(reference, enrolled_ak.clone(), key));
    assert_eq!(host.refusal, None, "agent errors: {:?}", host.agent_errors);
    assert!(host.released);
    assert_eq!(host.agent_done, Some(true));
    assert_eq!(
        agent,
        session::Outcome {
            ok: true,
            key_released: true
        }
    );
    assert!(
        host.agent_steps
            .iter()
            .any(|s| s.contains("TPM2_Quote over sha256:0-9")),
        "{:?}",
        host.agent_steps
    );
    assert!(host.agent_steps.iter().any(|s| s.contains("key released")));
    let ev = host.evidence.unwrap();
    assert_eq!(ev.quote.unwrap().ak_public, enrolled_ak);
    assert!(
        ev.problems
            .iter()
            .any(|p| p.contains("binary_bios_measurements")),
        "missing sources are reported"
    );
}

#[test]
fn quote_by_another_tpm_is_refused_naming_the_ak() {
    let dir = fresh_state_dir();
    let enrolled_ak = enroll(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    // Another TPM with exactly the PCR values the reference expects: its quote is genuine,
    // but signed by an AK that was not enrolled.
    let other = Swtpm::start();
    let mut tpm = other.connect();
    let reference = extend_and_read(&mut tpm);
    assert_ne!(
        ak_of(&mut tpm),
        enrolled_ak,
        "two swtpm states gave the same AK"
    );
    let (host, agent) = run_session(tpm, broker(reference, enrolled_ak, [2; 32]));
    assert_refused(
        &host,
        &agent,
        "quote rejected: quote signed by an AK that was not enrolled: its Name is 000b",
    );
}

#[test]
fn tampered_reference_pcr_is_refused_and_named() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let mut reference = extend_and_read(&mut tpm);
    reference.insert(8, "00".repeat(32));
    let enrolled_ak = ak_of(&mut tpm);
    let (host, agent) = run_session(tpm, broker(reference, enrolled_ak, [1; 32]));
    assert_refused(&host, &agent, "PCR 8 is ");
}

#[test]
fn wrong_nonce_and_tampered_values_fail_verification() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let pcrs = extend_and_read(&mut tpm);
    let nonce = [0x11u8; 32];
    let q = tpm.quote(&nonce, &[PcrSelection::sha256_0_to_9()]).unwrap();
    let q = QuoteEvidence {
        attest: hex::encode(&q.attest),
        signature: hex::encode(&q.signature),
        ak_public: hex::encode(&q.ak_public),
    };

    let ok = verify_quote(&q, &q.ak_public, &nonce, &pcrs).unwrap();
    assert_eq!(ok.quoted_pcrs, (0..10).collect::<Vec<u32>>());

    assert_eq!(
        verify_quote(&q, &q.ak_public, &[0x12; 32], &pcrs),
        Err(VerifyError::Nonce)
    );

    let mut tampered = pcrs.clone();
    tampered.insert(8, "00".repeat(32));
    assert_eq!(
        verify_quote(&q, &q.ak_public, &nonce, &tampered),
        Err(VerifyError::PcrDigest)
    );

    let mut missing = pcrs.clone();
    missing.remove(&3);
    assert_eq!(
        verify_quote(&q, &q.ak_public, &nonce, &missing),
        Err(VerifyError::MissingPcr(3))
    );

    let mut bad_attest = q.clone();
    let mut a = hex::decode(&q.attest).unwrap();
    let last = a.len() - 1;
    a[last] ^= 1; // inside pcrDigest
    bad_attest.attest = hex::encode(a);
    assert_eq!(
        verify_quote(&bad_attest, &q.ak_public, &nonce, &pcrs),
        Err(VerifyError::Signature)
    );

    // A quote by another TPM's AK over the same nonce does not pass as this one's.
    let other = Swtpm::start();
    let mut other_tpm = other.connect();
    let q2 = other_tpm
        .quote(&nonce, &[PcrSelection::sha256_0_to_9()])
        .unwrap();
    let mut mixed = q.clone();
    mixed.signature = hex::encode(&q2.signature);
    assert_eq!(
        verify_quote(&mixed, &q.ak_public, &nonce, &pcrs),
        Err(VerifyError::Signature)
    );
    // That TPM's own, genuine quote: refused, its AK is not the enrolled one.
    let q2 = QuoteEvidence {
        attest: hex::encode(&q2.attest),
        signature: hex::encode(&q2.signature),
        ak_public: hex::encode(&q2.ak_public),
    };
    assert!(matches!(
        verify_quote(&q2, &q.ak_public, &nonce, &pcrs),
        Err(VerifyError::NotEnrolled { .. })
    ));
}

#[test]
fn ak_is_stable_across_quotes() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let sel = [PcrSelection::sha256_0_to_9()];
    let a = tpm.quote(&[1; 32], &sel).unwrap();
    let b = tpm.quote(&[2; 32], &sel).unwrap();
    assert_eq!(
        a.ak_public, b.ak_public,
        "fixed template under the same seed gives the same AK"
    );
    assert_ne!(a.attest, b.attest);
    assert_eq!(
        tpm.ak_public().unwrap(),
        a.ak_public,
        "what enrollment reads"
    );
}

/// Runs the `cvm-mock-kbs` binary attached (like to QEMU's chardev socket) to a Unix socket
/// whose other end is the agent session; returns the binary's exit status and stderr.
fn run_mock_kbs_binary(
    reference: &BTreeMap<u32, String>,
    mut tpm: Tpm<StreamTransport<UnixStream>>,
) -> (bool, String) {
    let enrolled_ak = ak_of(&mut tpm);
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cvm-kbs-bin-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let refs: BTreeMap<String, &String> =
        reference.iter().map(|(k, v)| (k.to_string(), v)).collect();
    std::fs::write(dir.join("pcrs.json"), serde_json::to_string(&refs).unwrap()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cvm-mock-kbs"))
        .arg("--reference")
        .arg(dir.join("pcrs.json"))
        .arg("--ak-public")
        .arg(enrolled_ak)
        .args(["--key-hex", &"42".repeat(32), "--connect-unix"])
        .arg(&sock)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (guest_end, _) = listener.accept().unwrap();
    let empty_root = dir.join("root");
    let mut agent = Agent {
        sources: Sources {
            root: empty_root,
            pcrs_from_tpm: true,
            veritysetup: None,
        },
        tpm: Some(tpm),
        data_disk: None,
        pull: None,
    };
    session::run(
        &mut BufReader::new(guest_end.try_clone().unwrap()),
        &mut &guest_end,
        &mut agent,
    )
    .unwrap();
    drop(guest_end);
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mock_kbs_binary_releases_or_refuses() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let reference = extend_and_read(&mut tpm);
    let (ok, stderr) = run_mock_kbs_binary(&reference, tpm);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("evidence accepted, releasing key"),
        "{stderr}"
    );

    let mut tampered = reference.clone();
    tampered.insert(0, "11".repeat(32));
    let (ok, stderr) = run_mock_kbs_binary(&tampered, swtpm.connect());
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("refusing: PCR 0 is"), "{stderr}");
}
