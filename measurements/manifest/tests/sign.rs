//! Signing and verification at the crate boundary: a signed manifest verifies, and each kind of
//! tampering is refused with its own error.

use cvm_manifest::dsse::{self, Envelope, Statement};
use cvm_manifest::sign::{self, FileDigest, SigningKey, VerifyError, VerifyingKey};
use cvm_manifest::{role, Artefact, ImageInfo, Manifest, ShapeMeasurements};
use serde_json::json;
use sha2::{Digest, Sha256};

const KERNEL: &[u8] = b"not really a kernel";

fn manifest() -> Manifest {
    let mut m = Manifest::new(
        ImageInfo {
            name: "t".into(),
            version: "1".into(),
            test_image: true,
        },
        "ro".into(),
    );
    m.artefacts.push(Artefact {
        role: role::KERNEL.into(),
        path: "kernel/bzImage".into(),
        sha256: hex::encode(Sha256::digest(KERNEL)),
        size: KERNEL.len() as u64,
    });
    m.shapes.push(ShapeMeasurements {
        name: "s".into(),
        tdx: Some(json!({"mrtd": "00"})),
        snp: None,
        vtpm: None,
    });
    m
}

fn signed() -> (SigningKey, Vec<u8>, Vec<u8>) {
    let key = SigningKey::generate();
    let bytes = manifest().to_bytes().unwrap();
    let env = sign::sign(&bytes, "manifest.json", &key).unwrap();
    (key, bytes, env)
}

/// Re-sign a modified statement with `key` (what an attacker holding the key could do).
fn resign(env: &[u8], key: &SigningKey, edit: impl Fn(&mut Statement)) -> Vec<u8> {
    let mut e: Envelope = serde_json::from_slice(env).unwrap();
    let payload = base64_decode(&e.payload);
    let mut st: Statement = serde_json::from_slice(&payload).unwrap();
    edit(&mut st);
    let payload = serde_json::to_vec(&st).unwrap();
    e.payload = base64_encode(&payload);
    e.signatures[0].sig = sign::sign_blob(&dsse::pae(dsse::PAYLOAD_TYPE, &payload), key);
    serde_json::to_vec(&e).unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn signed_manifest_verifies_and_artefacts_match() {
    let (key, bytes, env) = signed();
    let m = sign::verify(&env, &bytes, &key.verifying_key()).unwrap();
    assert_eq!(m, manifest());
    sign::verify_artefacts(&m, |a| {
        assert_eq!(a.path, "kernel/bzImage");
        Ok(FileDigest::of_reader(KERNEL).unwrap())
    })
    .unwrap();
    // The statement names the manifest and the artefact.
    let e: Envelope = serde_json::from_slice(&env).unwrap();
    let st: Statement = serde_json::from_slice(&base64_decode(&e.payload)).unwrap();
    let names: Vec<&str> = st.subject.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["manifest.json", "kernel/bzImage"]);
    assert_eq!(st.statement_type, "https://in-toto.io/Statement/v1");
    assert_eq!(e.signatures[0].keyid, sign::key_id(&key.verifying_key()));
}

#[test]
fn signing_is_deterministic() {
    let (key, bytes, env) = signed();
    assert_eq!(sign::sign(&bytes, "manifest.json", &key).unwrap(), env);
}

#[test]
fn keys_round_trip_through_pem() {
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
    let public = key.verifying_key().to_public_key_pem();
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );
    assert_eq!(back.verifying_key().to_public_key_pem(), public);
    let vk = VerifyingKey::from_public_key_pem(&public).unwrap();
    let sig = sign::sign_blob(b"blob", &back);
    assert!(sign::verify_blob(b"blob", &sig, &vk));
    assert!(!sign::verify_blob(b"blob!", &sig, &vk));
    assert!(SigningKey::from_pkcs8_pem(&public).is_err());
    assert!(VerifyingKey::from_public_key_pem(&pem).is_err());
}

#[test]
fn wrong_key_is_refused() {
    let (_, bytes, env) = signed();
    let other = SigningKey::generate().verifying_key();
    assert!(matches!(
        sign::verify(&env, &bytes, &other),
        Err(VerifyError::BadSignature(1))
    ));
}

#[test]
fn tampered_manifest_is_refused() {
    let (key, bytes, env) = signed();
    let mut m = manifest();
    m.cmdline = "ro init=/bin/sh".into();
    let other = m.to_bytes().unwrap();
    assert!(matches!(
        sign::verify(&env, &other, &key.verifying_key()),
        Err(VerifyError::ManifestNotCovered(_))
    ));
    // Same value, different bytes (not canonical): the digest no longer matches either.
    let reformatted =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()).unwrap();
    assert!(matches!(
        sign::verify(&env, &reformatted, &key.verifying_key()),
        Err(VerifyError::ManifestNotCovered(_))
    ));
}

#[test]
fn tampered_envelope_is_refused() {
    let (key, bytes, env) = signed();
    let mut e: Envelope = serde_json::from_slice(&env).unwrap();
    let mut payload = base64_decode(&e.payload);
    let i = payload.len() - 3;
    payload[i] ^= 1;
    e.payload = base64_encode(&payload);
    let tampered = serde_json::to_vec(&e).unwrap();
    assert!(matches!(
        sign::verify(&tampered, &bytes, &key.verifying_key()),
        Err(VerifyError::BadSignature(_))
    ));
    e.signatures.clear();
    assert!(matches!(
        sign::verify(
            &serde_json::to_vec(&e).unwrap(),
            &bytes,
            &key.verifying_key()
        ),
        Err(VerifyError::Unsigned)
    ));
    let mut e: Envelope = serde_json::from_slice(&env).unwrap();
    e.payload_type = "application/json".into();
    assert!(matches!(
        sign::verify(
            &serde_json::to_vec(&e).unwrap(),
            &bytes,
            &key.verifying_key()
        ),
        Err(VerifyError::PayloadType(_))
    ));
    assert!(matches!(
        sign::verify(b"{}", &bytes, &key.verifying_key()),
        Err(VerifyError::Envelope(_))
    ));
}

#[test]
fn validly_signed_but_wrong_statements_are_refused() {
    let (key, bytes, env) = signed();
    let vk = key.verifying_key();
    let wrong_type = resign(&env, &key, |st| {
        st.predicate_type = "https://slsa.dev/provenance/v1".into()
    });
    assert!(matches!(
        sign::verify(&wrong_type, &bytes, &vk),
        Err(VerifyError::StatementField {
            field: "predicateType",
            ..
        })
    ));
    let wrong_stmt = resign(&env, &key, |st| {
        st.statement_type = "https://in-toto.io/Statement/v0.1".into()
    });
    assert!(matches!(
        sign::verify(&wrong_stmt, &bytes, &vk),
        Err(VerifyError::StatementField { field: "_type", .. })
    ));
    let other_predicate = resign(&env, &key, |st| {
        st.predicate["cmdline"] = json!("ro init=/bin/sh")
    });
    assert!(matches!(
        sign::verify(&other_predicate, &bytes, &vk),
        Err(VerifyError::PredicateMismatch)
    ));
    let no_artefact = resign(&env, &key, |st| st.subject.truncate(1));
    assert!(matches!(
        sign::verify(&no_artefact, &bytes, &vk),
        Err(VerifyError::ArtefactNotCovered { .. })
    ));
}

#[test]
fn artefact_mismatches_are_refused() {
    let m = manifest();
    let e = sign::verify_artefacts(&m, |_| {
        Ok(FileDigest::of_reader(&b"not really a kernal"[..]).unwrap())
    })
    .unwrap_err();
    assert!(
        matches!(
            &e,
            VerifyError::ArtefactMismatch {
                field: "sha256",
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_unreadable());
    let e = sign::verify_artefacts(&m, |_| Ok(FileDigest::of_reader(&b"short"[..]).unwrap()))
        .unwrap_err();
    assert!(
        matches!(&e, VerifyError::ArtefactMismatch { field: "size", .. }),
        "{e}"
    );
    let e = sign::verify_artefacts(&m, |_| Err("No such file".into())).unwrap_err();
    assert!(
        e.is_unreadable() && e.to_string().contains("kernel/bzImage"),
        "{e}"
    );
}
