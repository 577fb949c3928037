//! The in-toto Statement v1 about a manifest and the DSSE envelope carrying it.
//!
//! DSSE v1 (secure-systems-lab/dsse `protocol.md`): the signature is over
//! `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN in ASCII decimal;
//! the envelope is `{payloadType, payload: base64(body), signatures: [{keyid, sig: base64}]}`.
//! in-toto Statement v1 (in-toto/attestation `spec/v1/statement.md`):
//! `{_type, subject: [{name, digest: {sha256}}], predicateType, predicate}`.
//! cosign 2.5 `verify-blob-attestation` accepts both (`tests/tests/cosign.rs`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// DSSE payload type of an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// This project's predicate type: the predicate is a [`crate::Manifest`] of schema 1.
/// (`.example` is reserved: the URI names the format, it is not fetched.)
pub const PREDICATE_TYPE: &str = "https://cvm-image.example/manifest/v1";

/// DSSE pre-authentication encoding: the bytes that are signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope (JSON field names as the DSSE spec spells them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// base64 (standard alphabet, padded) of the payload.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Hint which key signed; not trusted (see [`crate::sign::key_id`]).
    #[serde(default)]
    pub keyid: String,
    /// base64 of the DER ECDSA signature over [`pae`].
    pub sig: String,
}

/// An in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Value,
}

/// One in-toto subject: a named file and its digests (algorithm → lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn sha256(name: &str, hex: &str) -> Subject {
        Subject {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
        }
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn unb64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE protocol.md test vector: type "http://example.com/HelloWorld", body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelope_uses_dsse_field_names() {
        let e = Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: b64(b"{}"),
            signatures: vec![EnvelopeSignature {
                keyid: "k".into(),
                sig: "c2ln".into(),
            }],
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["payloadType"], PAYLOAD_TYPE);
        assert_eq!(v["payload"], "e30=");
        assert_eq!(v["signatures"][0]["sig"], "c2ln");
    }
}
