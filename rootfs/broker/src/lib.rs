//! **TEST FIXTURE — not a production key broker.** `cvm-broker` is the host-side counterpart of
//! `cvm-agent` used by the tests and the boot test: a mock KBS that speaks the agent protocol
//! (`cvm_agent::protocol`) on the host end of the virtio-serial channel (or a TCP/Unix socket).
//!
//! Per session: send `hello` with a fresh nonce → receive `evidence` → [`verify::verify_quote`]
//! (the enrolled AK, its signature, TPM_GENERATED, ATTEST_QUOTE, nonce, pcrDigest) →
//! [`policy::check_reference`] (PCRs equal the manifest's reference values) → `key` or
//! `refused` naming the first failure.
//!
//! The AK is enrolled, not trusted on first use: the caller reads its public key from the TPM
//! it created before the guest runs (`cvm_agent::tpm::Tpm::ak_public`; `cargo xtask boot-test`
//! does it on the swtpm state QEMU then uses) and sets [`session::Broker::enrolled_ak`]; a
//! quote signed by any other key is refused. Known limits of the mock: enrollment trusts the
//! caller's TPM (no EK certificate chain, no MakeCredential/ActivateCredential), and the key is
//! whatever the test configured.

pub mod policy;
pub mod session;
pub mod verify;
