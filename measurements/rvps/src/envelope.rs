//! The binding check between a manifest and its DSSE envelope, done before anything is
//! published: the envelope carries an in-toto Statement (`payloadType`
//! `application/vnd.in-toto+json`) with at least one signature, and one of the Statement's
//! subjects has the manifest's sha256 (`shared/design/reference-values.md` §3 items 3-4).
//!
//! This checks structure and binding only. The signature itself is checked with the pinned
//! public key by the signing crate (`cvm-manifest`), which the caller runs first.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// DSSE payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
const STATEMENT_TYPES: &[&str] = &[
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<Value>,
}

/// The parts of an in-toto Statement this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Statement {
    /// `https://in-toto.io/Statement/v1` (or v0.1).
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The project's predicate type URI.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What the statement is about.
    pub subject: Vec<Subject>,
}

/// One in-toto subject.
#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    /// Usually the file name (`manifest.json`).
    #[serde(default)]
    pub name: String,
    /// Algorithm → lowercase hex.
    pub digest: std::collections::BTreeMap<String, String>,
}

/// Why an envelope does not vouch for a manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("DSSE envelope is not JSON {{payloadType, payload, signatures}}: {0}; pass the .dsse.json the sign step wrote")]
    NotDsse(String),
    #[error("DSSE envelope payloadType is {0:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("DSSE envelope has no signatures: sign the manifest before publishing")]
    Unsigned,
    #[error("DSSE payload is not a base64 in-toto Statement: {0}")]
    Statement(String),
    #[error("DSSE payload _type is {0:?}, expected https://in-toto.io/Statement/v1")]
    StatementType(String),
    #[error("envelope does not cover this manifest: no subject has sha256 {manifest_sha256} (subjects: {subjects}); was the manifest rebuilt after signing? Re-run the sign step")]
    SubjectMismatch {
        manifest_sha256: String,
        subjects: String,
    },
}

/// Checks that `envelope` (DSSE JSON bytes) is a signed in-toto Statement whose subject is
/// `manifest` (the exact bytes that were signed), and returns the Statement.
pub fn check_envelope(envelope: &[u8], manifest: &[u8]) -> Result<Statement, EnvelopeError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| EnvelopeError::NotDsse(e.to_string()))?;
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType(env.payload_type));
    }
    if env.signatures.is_empty() {
        return Err(EnvelopeError::Unsigned);
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(&env.payload)
        .map_err(|e| EnvelopeError::Statement(format!("base64: {e}")))?;
    let st: Statement =
        serde_json::from_slice(&payload).map_err(|e| EnvelopeError::Statement(e.to_string()))?;
    if !STATEMENT_TYPES.contains(&st.statement_type.as_str()) {
        return Err(EnvelopeError::StatementType(st.statement_type));
    }
    let want = hex::encode(Sha256::digest(manifest));
    if !st
        .subject
        .iter()
        .any(|s| s.digest.get("sha256") == Some(&want))
    {
        let subjects = st
            .subject
            .iter()
            .map(|s| {
                format!(
                    "{}={}",
                    s.name,
                    s.digest.get("sha256").map_or("<no sha256>", String::as_str)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(EnvelopeError::SubjectMismatch {
            manifest_sha256: want,
            subjects,
        });
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(subject_sha: &str, sigs: usize) -> Vec<u8> {
        let st = json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example.org/p",
                        "subject": [{"name": "manifest.json", "digest": {"sha256": subject_sha}}], "predicate": {}});
        let payload = base64::engine::general_purpose::STANDARD.encode(st.to_string());
        let sigs: Vec<Value> = (0..sigs)
            .map(|_| json!({"keyid": "", "sig": "AA=="}))
            .collect();
        json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": payload, "signatures": sigs})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn binds_only_the_signed_manifest() {
        let m = br#"{"a":1}"#;
        let sha = hex::encode(Sha256::digest(m));
        let st = check_envelope(&envelope(&sha, 1), m).unwrap();
        assert_eq!(st.subject[0].name, "manifest.json");
        let e = check_envelope(&envelope(&sha, 1), br#"{"a":2}"#).unwrap_err();
        assert!(matches!(e, EnvelopeError::SubjectMismatch { .. }), "{e}");
        assert!(matches!(
            check_envelope(&envelope(&sha, 0), m),
            Err(EnvelopeError::Unsigned)
        ));
        assert!(matches!(
            check_envelope(b"[]", m),
            Err(EnvelopeError::NotDsse(_))
        ));
    }
}
