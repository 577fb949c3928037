//! `cvm-agent`: the guest side of the attestation and key-release flow.
//!
//! The agent talks to the host over one byte stream (virtio-serial port
//! `/dev/virtio-ports/org.cvm.agent.0` in the guest) using the newline-delimited JSON protocol of
//! [`protocol`].
//! The flow is: host `hello{nonce}` → agent `evidence` (PCRs, event log, TPM2 quote over the
//! nonce, cmdline, dm-verity status, configfs-tsm report) → host `key` or `refused` → agent opens
//! the LUKS data disk ([`luks`]), pulls images ([`oci`]) and unpacks their layers ([`unpack`])
//! → agent `done`.
//!
//! Pure modules (no I/O): [`protocol`], [`tpm::marshal`], [`tpm::commands`], [`tpm::attest`],
//! [`evidence::assemble`], [`luks::plan`], [`oci`] digest and signature checks.
//! I/O lives in [`tpm::transport`], [`evidence::collect`], [`luks::run`], [`http`] and
//! [`session`].

pub mod evidence;
pub mod http;
pub mod luks;
pub mod oci;
pub mod protocol;
pub mod session;
pub mod tpm;
pub mod unpack;
