//! Signing and verification with ECDSA P-256 / SHA-256 (RFC 6979 deterministic signatures, DER,
//! base64), keys as PKCS#8 (private) and SPKI (public) PEM, as cosign reads them
//! (`shared/design/reference-values.md` §4).
//!
//! Verification is fail-closed: every check must pass, and each failure says which.

use crate::dsse::{self, b64, unb64, Envelope, EnvelopeSignature, Statement, Subject};
use crate::manifest::{Artefact, Manifest, ManifestError};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::Signature;
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sha2::{Digest, Sha256};

/// A private signing key.
pub struct SigningKey(p256::ecdsa::SigningKey);

/// A public verification key.
#[derive(Clone)]
pub struct VerifyingKey(p256::ecdsa::VerifyingKey);

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct KeyError {
    what: &'static str,
    reason: String,
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SigningKey {
        SigningKey(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Read a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), unencrypted.
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey)
            .map_err(|e| KeyError {
                what: "not an unencrypted PKCS#8 PEM ECDSA P-256 private key",
                reason: e.to_string(),
            })
    }

    /// PKCS#8 PEM of the private key (write it with mode 0600).
    pub fn to_pkcs8_pem(&self) -> String {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-256 key always encodes as PKCS#8")
            .to_string()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(*self.0.verifying_key())
    }

    /// base64 of the DER ECDSA signature over `message` (SHA-256 inside).
    fn sign_b64(&self, message: &[u8]) -> String {
        let sig: Signature = self.0.sign(message);
        b64(sig.to_der().as_bytes())
    }
}

impl VerifyingKey {
    /// Read an SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_public_key_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(VerifyingKey)
            .map_err(|e| KeyError {
                what: "not an SPKI PEM ECDSA P-256 public key",
                reason: e.to_string(),
            })
    }

    /// SPKI PEM of the public key.
    pub fn to_public_key_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key always encodes as SPKI")
    }

    fn verify_b64(&self, message: &[u8], sig_b64: &str) -> bool {
        let Ok(der) = unb64(sig_b64) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            return false;
        };
        self.0.verify(message, &sig).is_ok()
    }
}

/// The envelope `keyid`: lowercase hex sha256 of the public key's DER SPKI. A hint only;
/// verification tries the given key whatever the keyid says.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .0
        .to_public_key_der()
        .expect("a P-256 key always encodes as SPKI");
    hex::encode(Sha256::digest(der.as_bytes()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The in-toto Statement about a manifest: subjects are the manifest file (`manifest_name`, the
/// exact `manifest_bytes`) and every artefact (by path, in manifest order); the predicate is the
/// manifest itself.
pub fn statement(manifest_bytes: &[u8], manifest_name: &str) -> Result<Statement, ManifestError> {
    let manifest = Manifest::from_bytes(manifest_bytes)?;
    let mut subject = vec![Subject::sha256(manifest_name, &sha256_hex(manifest_bytes))];
    subject.extend(
        manifest
            .artefacts
            .iter()
            .map(|a| Subject::sha256(&a.path, &a.sha256)),
    );
    let predicate =
        serde_json::from_slice(manifest_bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    Ok(Statement {
        statement_type: dsse::STATEMENT_TYPE.into(),
        subject,
        predicate_type: dsse::PREDICATE_TYPE.into(),
        predicate,
    })
}

/// Sign a manifest: the DSSE envelope (canonical pretty JSON) of its [`statement`].
pub fn sign(
    manifest_bytes: &[u8],
    manifest_name: &str,
    key: &SigningKey,
) -> Result<Vec<u8>, ManifestError> {
    let st = statement(manifest_bytes, manifest_name)?;
    let payload =
        crate::canonical::to_compact(&st).map_err(|e| ManifestError::Json(e.to_string()))?;
    let sig = key.sign_b64(&dsse::pae(dsse::PAYLOAD_TYPE, &payload));
    let env = Envelope {
        payload_type: dsse::PAYLOAD_TYPE.into(),
        payload: b64(&payload),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig,
        }],
    };
    crate::canonical::to_pretty(&env).map_err(|e| ManifestError::Json(e.to_string()))
}

/// A `cosign sign-blob`-style signature of any bytes: base64 DER ECDSA over SHA-256(bytes).
pub fn sign_blob(bytes: &[u8], key: &SigningKey) -> String {
    key.sign_b64(bytes)
}

/// Check a [`sign_blob`] signature.
pub fn verify_blob(bytes: &[u8], signature_b64: &str, key: &VerifyingKey) -> bool {
    key.verify_b64(bytes, signature_b64.trim())
}

/// Why verification failed. [`VerifyError::is_unreadable`] tells "could not check" (exit 2)
/// from "checked and wrong" (exit 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("envelope is not a DSSE envelope: {0}")]
    Envelope(String),
    #[error("envelope payloadType is {0:?}, expected {PAYLOAD_TYPE:?}", PAYLOAD_TYPE = dsse::PAYLOAD_TYPE)]
    PayloadType(String),
    #[error("envelope has no signature")]
    Unsigned,
    #[error("no signature in the envelope verifies with the given key ({0} tried)")]
    BadSignature(usize),
    #[error("payload is not an in-toto Statement: {0}")]
    Statement(String),
    #[error("statement {field} is {found:?}, expected {expected:?}")]
    StatementField {
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("no subject of the statement has the manifest's sha256 {0}: the envelope is for another manifest")]
    ManifestNotCovered(String),
    #[error("the signed predicate differs from the manifest file")]
    PredicateMismatch,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(
        "artefact {role} ({path}) is not a subject of the signed statement with sha256 {sha256}"
    )]
    ArtefactNotCovered {
        role: String,
        path: String,
        sha256: String,
    },
    #[error("artefact {role} ({path}): {field} is {found}, manifest says {expected}")]
    ArtefactMismatch {
        role: String,
        path: String,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("artefact {role} ({path}) could not be read: {reason}")]
    ArtefactUnreadable {
        role: String,
        path: String,
        reason: String,
    },
}

impl VerifyError {
    /// True when an input could not be read (as opposed to read and found wrong).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, VerifyError::ArtefactUnreadable { .. })
    }
}

/// Verify `envelope` (DSSE JSON) against `key` and `manifest_bytes`: a signature verifies, the
/// payload is an in-toto Statement v1 of [`dsse::PREDICATE_TYPE`], a subject has the manifest's
/// sha256, the predicate equals the manifest, the manifest is valid and each of its artefacts is
/// a subject with the same digest. Returns the manifest; artefact files are checked by
/// [`verify_artefacts`].
pub fn verify(
    envelope: &[u8],
    manifest_bytes: &[u8],
    key: &VerifyingKey,
) -> Result<Manifest, VerifyError> {
    let env: Envelope =
        serde_json::from_slice(envelope).map_err(|e| VerifyError::Envelope(e.to_string()))?;
    if env.payload_type != dsse::PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType(env.payload_type));
    }
    if env.signatures.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    let payload = unb64(&env.payload)
        .map_err(|e| VerifyError::Envelope(format!("payload is not base64: {e}")))?;
    let pae = dsse::pae(&env.payload_type, &payload);
    if !env.signatures.iter().any(|s| key.verify_b64(&pae, &s.sig)) {
        return Err(VerifyError::BadSignature(env.signatures.len()));
    }
    // Only now, with the payload authenticated, is it parsed.
    let st: Statement =
        serde_json::from_slice(&payload).map_err(|e| VerifyError::Statement(e.to_string()))?;
    if st.statement_type != dsse::STATEMENT_TYPE {
        return Err(VerifyError::StatementField {
            field: "_type",
            found: st.statement_type,
            expected: dsse::STATEMENT_TYPE,
        });
    }
    if st.predicate_type != dsse::PREDICATE_TYPE {
        return Err(VerifyError::StatementField {
            field: "predicateType",
            found: st.predicate_type,
            expected: dsse::PREDICATE_TYPE,
        });
    }
    let covers = |sha: &str| {
        st.subject
            .iter()
            .any(|s| s.digest.get("sha256").map(String::as_str) == Some(sha))
    };
    let manifest_sha = sha256_hex(manifest_bytes);
    if !covers(&manifest_sha) {
        return Err(VerifyError::ManifestNotCovered(manifest_sha));
    }
    let manifest_value: serde_json::Value =
        serde_json::from_slice(manifest_bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    if manifest_value != st.predicate {
        return Err(VerifyError::PredicateMismatch);
    }
    let manifest = Manifest::from_bytes(manifest_bytes)?;
    for a in &manifest.artefacts {
        let named = st
            .subject
            .iter()
            .any(|s| s.name == a.path && s.digest.get("sha256") == Some(&a.sha256));
        if !named {
            return Err(VerifyError::ArtefactNotCovered {
                role: a.role.clone(),
                path: a.path.clone(),
                sha256: a.sha256.clone(),
            });
        }
    }
    Ok(manifest)
}

/// The sha256 (lowercase hex) and size of one artefact file, as the caller measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub sha256: String,
    pub size: u64,
}

impl FileDigest {
    /// Digest of everything `r` yields (the caller opens the file).
    pub fn of_reader(mut r: impl std::io::Read) -> std::io::Result<FileDigest> {
        let mut h = Sha256::new();
        let size = std::io::copy(&mut r, &mut h)?;
        Ok(FileDigest {
            sha256: hex::encode(h.finalize()),
            size,
        })
    }
}

/// Check every artefact of `manifest` against the file `digest_of` measures for it (the caller
/// reads the files: this crate does no I/O). Stops at the first problem.
pub fn verify_artefacts(
    manifest: &Manifest,
    mut digest_of: impl FnMut(&Artefact) -> Result<FileDigest, String>,
) -> Result<(), VerifyError> {
    for a in &manifest.artefacts {
        let d = digest_of(a).map_err(|reason| VerifyError::ArtefactUnreadable {
            role: a.role.clone(),
            path: a.path.clone(),
            reason,
        })?;
        let mismatch = |field, expected: String, found: String| VerifyError::ArtefactMismatch {
            role: a.role.clone(),
            path: a.path.clone(),
            field,
            expected,
            found,
        };
        if d.size != a.size {
            return Err(mismatch("size", a.size.to_string(), d.size.to_string()));
        }
        if d.sha256 != a.sha256 {
            return Err(mismatch("sha256", a.sha256.clone(), d.sha256));
        }
    }
    Ok(())
}
