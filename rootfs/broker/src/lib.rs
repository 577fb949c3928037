//! **TEST FIXTURE — not a production key broker.** `cvm-broker` is the host-side counterpart of
//! `cvm-agent` used by the tests and the boot test: a mock KBS that speaks the agent protocol
//! (`cvm_agent::protocol`) on the host end of the virtio-serial channel (or a TCP/Unix socket).
//!
//! Per session: send `hello` with a fresh nonce → receive `evidence` → [`verify::verify_quote`]
//! (AK signature, TPM_GENERATED, ATTEST_QUOTE, nonce, pcrDigest) → [`policy::check_reference`]
//! (PCRs equal the manifest's reference values) → `key` or `refused` naming the first failure.
//!
//! Known limits of the mock: the AK is trusted on first use (no EK certificate chain, no
//! MakeCredential/ActivateCredential), and the key is whatever the test configured.

pub mod policy;
pub mod session;
pub mod verify;
