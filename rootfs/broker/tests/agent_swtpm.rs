//! End-to-end attestation against a real TPM 2.0 simulator: swtpm (Debian `swtpm`, 0.7.1
//! tested) over its Unix server socket. The agent quotes PCRs over the broker's nonce, the
//! broker verifies the quote and the reference values, and releases or refuses the key.
//!
//! swtpm is required: if it is missing these tests FAIL and name `cargo xtask install test`.

use cvm_agent::evidence::Sources;
use cvm_agent::protocol::QuoteEvidence;
use cvm_agent::session::{self, Agent};
use cvm_agent::tpm::commands::{PcrSelection, TPM_ALG_SHA256, TPM_RH_ENDORSEMENT};
use cvm_agent::tpm::transport::StreamTransport;
use cvm_agent::tpm::Tpm;
use cvm_broker::session::{serve, Broker};
use cvm_broker::verify::{verify_quote, VerifyError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A swtpm process with its own state directory, killed on drop.
struct Swtpm {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
}

impl Swtpm {
    fn start() -> Swtpm {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cvm-swtpm-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("tpm.sock");
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--flags", "not-need-init"])
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
        Swtpm { child, dir, sock }
    }

    fn connect(&self) -> Tpm<StreamTransport<UnixStream>> {
        let mut tpm = Tpm::new(StreamTransport::new(
            UnixStream::connect(&self.sock).unwrap(),
        ));
        tpm.startup().unwrap();
        tpm
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

#[test]
fn quote_verified_and_key_released() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let reference = extend_and_read(&mut tpm);
    let key = [0x5a; 32];
    let (host, agent) = run_session(tpm, Broker { reference, key, pull: None });
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
    assert!(
        ev.problems
            .iter()
            .any(|p| p.contains("binary_bios_measurements")),
        "missing sources are reported"
    );
}

#[test]
fn tampered_reference_pcr_is_refused_and_named() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let mut reference = extend_and_read(&mut tpm);
    reference.insert(8, "00".repeat(32));
    let (host, agent) = run_session(
        tpm,
        Broker {
            reference,
            key: [1; 32],
            pull: None,
        },
    );
    assert!(!host.released);
    let reason = host.refusal.unwrap();
    assert!(reason.starts_with("PCR 8 is "), "{reason}");
    assert_eq!(host.agent_done, Some(false));
    assert!(
        host.agent_errors
            .iter()
            .any(|e| e.contains("key broker refused: PCR 8")),
        "{:?}",
        host.agent_errors
    );
    assert_eq!(
        agent,
        session::Outcome {
            ok: false,
            key_released: false
        }
    );
}

#[test]
fn wrong_nonce_and_tampered_values_fail_verification() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let pcrs = extend_and_read(&mut tpm);
    let nonce = [0x11u8; 32];
    let q = tpm
        .quote(TPM_RH_ENDORSEMENT, &nonce, &[PcrSelection::sha256_0_to_9()])
        .unwrap();
    let q = QuoteEvidence {
        attest: hex::encode(&q.attest),
        signature: hex::encode(&q.signature),
        ak_public: hex::encode(&q.ak_public),
    };

    let ok = verify_quote(&q, &nonce, &pcrs).unwrap();
    assert_eq!(ok.quoted_pcrs, (0..10).collect::<Vec<u32>>());

    assert_eq!(
        verify_quote(&q, &[0x12; 32], &pcrs),
        Err(VerifyError::Nonce)
    );

    let mut tampered = pcrs.clone();
    tampered.insert(8, "00".repeat(32));
    assert_eq!(
        verify_quote(&q, &nonce, &tampered),
        Err(VerifyError::PcrDigest)
    );

    let mut missing = pcrs.clone();
    missing.remove(&3);
    assert_eq!(
        verify_quote(&q, &nonce, &missing),
        Err(VerifyError::MissingPcr(3))
    );

    let mut bad_attest = q.clone();
    let mut a = hex::decode(&q.attest).unwrap();
    let last = a.len() - 1;
    a[last] ^= 1; // inside pcrDigest
    bad_attest.attest = hex::encode(a);
    assert_eq!(
        verify_quote(&bad_attest, &nonce, &pcrs),
        Err(VerifyError::Signature)
    );

    // A quote by another TPM's AK over the same nonce does not pass as this one's.
    let other = Swtpm::start();
    let mut other_tpm = other.connect();
    let q2 = other_tpm
        .quote(TPM_RH_ENDORSEMENT, &nonce, &[PcrSelection::sha256_0_to_9()])
        .unwrap();
    let mut mixed = q.clone();
    mixed.signature = hex::encode(q2.signature);
    assert_eq!(
        verify_quote(&mixed, &nonce, &pcrs),
        Err(VerifyError::Signature)
    );
}

#[test]
fn ak_is_stable_across_quotes() {
    let swtpm = Swtpm::start();
    let mut tpm = swtpm.connect();
    let sel = [PcrSelection::sha256_0_to_9()];
    let a = tpm.quote(TPM_RH_ENDORSEMENT, &[1; 32], &sel).unwrap();
    let b = tpm.quote(TPM_RH_ENDORSEMENT, &[2; 32], &sel).unwrap();
    assert_eq!(
        a.ak_public, b.ak_public,
        "fixed template under the same seed gives the same AK"
    );
    assert_ne!(a.attest, b.attest);
}

/// Runs the `cvm-mock-kbs` binary attached (like to QEMU's chardev socket) to a Unix socket
/// whose other end is the agent session; returns the binary's exit status and stderr.
fn run_mock_kbs_binary(
    reference: &BTreeMap<u32, String>,
    tpm: Tpm<StreamTransport<UnixStream>>,
) -> (bool, String) {
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
