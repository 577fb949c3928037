//! `cvm-publish`: the output end of the pipeline. Takes a measurement manifest (JSON bytes) and
//! its DSSE envelope, and
//!
//! - derives the reference values an attestation service compares against
//!   ([`reference_values`]: TDX `mr_td`/`rtmr_*`, SNP `snp_launch_measurement`, vTPM
//!   `tpm_pcr*`, the ids of Trustee's default EAR policy, plus optional versioned `rvps:///` ids),
//! - wraps them as a Trustee RVPS `sample` registration message ([`message`]),
//! - registers them with an RVPS over gRPC and reads every id back ([`rvps`]),
//! - pushes manifest + envelope as one OCI artifact to a registry ([`oci`]).
//!
//! [`test_server`] is an in-memory RVPS speaking the same proto, for tests on 127.0.0.1.
//!
//! Network access is for loopback endpoints only: the RVPS API is plaintext and
//! unauthenticated, and the OCI push uses plain HTTP. The gRPC code is generated from
//! `proto/reference.proto` and checked in ([`proto`]), so building needs no protoc.
//!
//! Source for the wire formats: `shared/design/reference-values.md` (§1.2 service, §1.3 message,
//! §1.4 sample extractor, §1.6 policy ids, §4 D/E registry commands).

pub mod envelope;
pub mod message;
pub mod oci;
#[rustfmt::skip]
#[path = "generated/reference.rs"]
pub mod proto;
pub mod reference_values;
pub mod rvps;
pub mod test_server;

mod loopback;

pub use envelope::{check_envelope, EnvelopeError, Statement};
pub use message::{Message, MessageError};
pub use reference_values::{ReferenceValues, ReferenceValuesError};
