//! OCI image pull onto the encrypted data disk, with digest checks and optional cosign
//! signature verification.
//!
//! Pure parts: [`ImageRef::parse`], [`verify_digest`], [`Manifest`] parsing and
//! [`verify_simple_signing`] (cosign's "simple signing" payload, reference-values.md §4 F:
//! `{"critical":{"identity":{"docker-reference":..},"image":{"docker-manifest-digest":..},
//! "type":"cosign container image signature"},"optional":..}` signed with ECDSA P-256/SHA-256,
//! the DER signature base64 in the layer annotation `dev.cosignproject.cosign/signature`, the
//! signature manifest tagged `sha256-<hex>.sig`).
//! [`pull`] fetches over [`crate::http`] (OCI distribution API v2) and writes the verified blobs
//! as an OCI-layout-like tree `<dest>/blobs/sha256/<hex>` + `<dest>/manifest.json`, then
//! unpacks the layers into `<dest>/<manifest hex>/rootfs` ([`crate::unpack`]).
//! Not done: multi-arch indexes, registry auth, zstd layers.

use crate::http;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";

/// Image and signature failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("image reference {0:?}: expected host:port/repo[:tag|@sha256:hex]")]
    Reference(String),
    #[error("{what}: digest {actual} does not match expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: size {actual} does not match descriptor size {expected}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("digest {0:?} is not sha256:<64 hex>")]
    BadDigest(String),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("registry: {0}")]
    Registry(String),
    #[error(transparent)]
    Http(#[from] http::Error),
    #[error("unpacking: {0}")]
    Unpack(#[from] crate::unpack::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `host:port/repo[:tag]` or `host:port/repo@sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let err = || Error::Reference(s.into());
        let (registry, rest) = s.split_once('/').ok_or_else(err)?;
        let (repository, reference) = if let Some((r, d)) = rest.split_once('@') {
            check_digest(d)?;
            (r, d.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r, t.to_string()),
                _ => (rest, "latest".to_string()),
            }
        };
        if registry.is_empty() || repository.is_empty() || reference.is_empty() {
            return Err(err());
        }
        Ok(ImageRef {
            registry: registry.into(),
            repository: repository.into(),
            reference,
        })
    }

    pub fn is_digest(&self) -> bool {
        self.reference.starts_with("sha256:")
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn check_digest(d: &str) -> Result<(), Error> {
    match d.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(Error::BadDigest(d.into())),
    }
}

/// Checks `bytes` against a `sha256:` digest.
pub fn verify_digest(what: &str, expected: &str, bytes: &[u8]) -> Result<(), Error> {
    check_digest(expected)?;
    let actual = sha256_digest(bytes);
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: what.into(),
            expected: expected.into(),
            actual,
        });
    }
    Ok(())
}

/// An OCI/Docker v2 descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::Manifest(e.to_string()))?;
        if m.schema_version != 2 {
            return Err(Error::Manifest(format!(
                "schemaVersion {}, expected 2",
                m.schema_version
            )));
        }
        for d in std::iter::once(&m.config).chain(&m.layers) {
            check_digest(&d.digest)?;
        }
        Ok(m)
    }
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    image: CriticalImage,
    #[serde(rename = "type")]
    kind: String,
    identity: Identity,
}
#[derive(Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}
#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

/// Verifies one cosign simple-signing payload: the ECDSA P-256 signature (base64 DER) over the
/// payload bytes with `public_key_pem` (SPKI PEM, as `cosign.pub`), its type, and that it names
/// `manifest_digest`. Returns the signed `docker-reference` (not checked: the guest reaches the
/// registry under another name, 10.0.2.2, than the one it was signed under).
pub fn verify_simple_signing(
    payload: &[u8],
    signature_b64: &str,
    public_key_pem: &str,
    manifest_digest: &str,
) -> Result<String, Error> {
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public_key_pem)
        .map_err(|e| Error::Signature(format!("public key is not a P-256 SPKI PEM: {e}")))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| Error::Signature(format!("signature is not base64: {e}")))?;
    let sig = p256::ecdsa::Signature::from_der(&der)
        .map_err(|e| Error::Signature(format!("signature is not DER: {e}")))?;
    key.verify(payload, &sig)
        .map_err(|_| Error::Signature("ECDSA verification failed".into()))?;
    let p: SimpleSigning = serde_json::from_slice(payload)
        .map_err(|e| Error::Signature(format!("payload is not simple signing: {e}")))?;
    if p.critical.kind != COSIGN_SIGNATURE_TYPE {
        return Err(Error::Signature(format!(
            "payload type {:?}",
            p.critical.kind
        )));
    }
    if p.critical.image.docker_manifest_digest != manifest_digest {
        return Err(Error::Signature(format!(
            "payload signs {}, not {manifest_digest}",
            p.critical.image.docker_manifest_digest
        )));
    }
    Ok(p.critical.identity.docker_reference)
}

/// The cosign signature tag for a manifest digest: `sha256-<hex>.sig`.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replacen(':', "-", 1))
}

/// What to pull and where.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub image: ImageRef,
    /// Registry base URL, e.g. `http://10.0.2.2:5000`.
    pub registry_url: String,
    pub dest: PathBuf,
    /// When set (from initdata), the image must carry a valid cosign signature by this key.
    pub cosign_public_key_pem: Option<String>,
}

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

fn fetch(url: &str, accept: &str) -> Result<http::Response, Error> {
    let r = http::get(url, &[("Accept", accept)])?;
    if r.status != 200 {
        return Err(Error::Registry(format!("GET {url}: HTTP {}", r.status)));
    }
    Ok(r)
}

fn fetch_blob(req: &PullRequest, d: &Descriptor) -> Result<Vec<u8>, Error> {
    let url = format!(
        "{}/v2/{}/blobs/{}",
        req.registry_url, req.image.repository, d.digest
    );
    let body = fetch(&url, "*/*")?.body;
    if body.len() as u64 != d.size {
        return Err(Error::SizeMismatch {
            what: d.digest.clone(),
            expected: d.size,
            actual: body.len() as u64,
        });
    }
    verify_digest(&format!("blob {}", d.digest), &d.digest, &body)?;
    Ok(body)
}

fn check_signature(
    req: &PullRequest,
    key_pem: &str,
    digest: &str,
    log: &mut dyn FnMut(String),
) -> Result<(), Error> {
    let url = format!(
        "{}/v2/{}/manifests/{}",
        req.registry_url,
        req.image.repository,
        signature_tag(digest)
    );
    log(format!("GET {url} (cosign signature)"));
    let r = http::get(&url, &[("Accept", ACCEPT)])?;
    if r.status == 404 {
        return Err(Error::Signature(format!(
            "image {digest} is not signed (no {})",
            signature_tag(digest)
        )));
    }
    if r.status != 200 {
        return Err(Error::Registry(format!("GET {url}: HTTP {}", r.status)));
    }
    let sig_manifest = Manifest::parse(&r.body)?;
    let mut failures = Vec::new();
    for layer in sig_manifest
        .layers
        .iter()
        .filter(|l| l.media_type == MEDIA_COSIGN_SIMPLE_SIGNING)
    {
        let Some(sig) = layer.annotations.get(COSIGN_SIGNATURE_ANNOTATION) else {
            failures.push(format!(
                "{}: no {COSIGN_SIGNATURE_ANNOTATION}",
                layer.digest
            ));
            continue;
        };
        let payload = fetch_blob(req, layer)?;
        match verify_simple_signing(&payload, sig, key_pem, digest) {
            Ok(identity) => {
                log(format!(
                    "cosign signature {} valid (signed identity {identity})",
                    layer.digest
                ));
                return Ok(());
            }
            Err(e) => failures.push(format!("{}: {e}", layer.digest)),
        }
    }
    Err(Error::Signature(format!(
        "no valid signature for {digest}: [{}]",
        failures.join("; ")
    )))
}

/// Pulls the image: manifest (digest-checked when pinned), signature (when a key is set),
/// config and layers (each sha256- and size-checked), written under `dest`; then the layers are
/// unpacked into `dest/<manifest hex>/rootfs` (see [`crate::unpack`]).
pub fn pull(req: &PullRequest, log: &mut dyn FnMut(String)) -> Result<Manifest, Error> {
    let url = format!(
        "{}/v2/{}/manifests/{}",
        req.registry_url, req.image.repository, req.image.reference
    );
    log(format!("GET {url}"));
    let r = fetch(&url, ACCEPT)?;
    let digest = sha256_digest(&r.body);
    if req.image.is_digest() {
        verify_digest("manifest", &req.image.reference, &r.body)?;
    }
    if let Some(claimed) = r.headers.get("docker-content-digest") {
        if claimed != &digest {
            return Err(Error::DigestMismatch {
                what: "manifest (Docker-Content-Digest)".into(),
                expected: claimed.clone(),
                actual: digest,
            });
        }
    }
    log(format!("manifest {digest} ({} bytes)", r.body.len()));
    let manifest = Manifest::parse(&r.body)?;
    match &req.cosign_public_key_pem {
        Some(pem) => check_signature(req, pem, &digest, log)?,
        None => log("no cosign key in initdata: signature not required".into()),
    }
    let blobs = req.dest.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|source| Error::Write {
        path: blobs.clone(),
        source,
    })?;
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let body = fetch_blob(req, d)?;
        let path = blobs.join(&d.digest["sha256:".len()..]);
        std::fs::write(&path, &body).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        log(format!(
            "blob {} verified ({} bytes) -> {}",
            d.digest,
            body.len(),
            path.display()
        ));
    }
    let path = req.dest.join("manifest.json");
    std::fs::write(&path, &r.body).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    log(format!(
        "image {}/{}@{digest} pulled to {}",
        req.image.registry,
        req.image.repository,
        req.dest.display()
    ));
    let rootfs = req.dest.join(&digest["sha256:".len()..]).join("rootfs");
    crate::unpack::unpack_image(
        &blobs,
        &manifest.layers,
        &rootfs,
        crate::unpack::Limits::default(),
        log,
    )?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    #[test]
    fn image_refs() {
        let r = ImageRef::parse("10.0.2.2:5000/guest/app:v1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("10.0.2.2:5000", "guest/app", "v1")
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/app@{d}")).unwrap();
        assert!(r.is_digest());
        assert_eq!(
            ImageRef::parse("127.0.0.1:5000/app").unwrap().reference,
            "latest"
        );
        assert!(ImageRef::parse("127.0.0.1:5000/app@sha256:12").is_err());
        assert!(ImageRef::parse("noslash").is_err());
    }

    #[test]
    fn digests() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(verify_digest("x", &sha256_digest(b"abc"), b"abc").is_ok());
        assert!(matches!(
            verify_digest("x", &sha256_digest(b"abc"), b"abd"),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(matches!(
            verify_digest("x", "md5:00", b""),
            Err(Error::BadDigest(_))
        ));
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
    }

    #[test]
    fn manifest_parsing() {
        let d = sha256_digest(b"x");
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{d}","size":1}},"layers":[{{"mediaType":"{MEDIA_COSIGN_SIMPLE_SIGNING}","digest":"{d}","size":1,"annotations":{{"{COSIGN_SIGNATURE_ANNOTATION}":"c2ln"}}}}]}}"#
        );
        let m = Manifest::parse(m.as_bytes()).unwrap();
        assert_eq!(m.layers[0].annotations[COSIGN_SIGNATURE_ANNOTATION], "c2ln");
        assert!(Manifest::parse(br#"{"schemaVersion":1,"config":{},"layers":[]}"#).is_err());
    }

    fn payload(digest: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/guest/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes()
    }

    #[test]
    fn simple_signing_accepts_only_the_right_key_and_digest() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = sk
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let other = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
        let other_pem = other
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let digest = sha256_digest(b"manifest");
        let p = payload(&digest);
        let sig: p256::ecdsa::Signature = sk.sign(&p);
        let sig_b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());

        assert_eq!(
            verify_simple_signing(&p, &sig_b64, &pem, &digest).unwrap(),
            "127.0.0.1:5000/guest/app"
        );
        // wrong key
        assert!(matches!(
            verify_simple_signing(&p, &sig_b64, &other_pem, &digest),
            Err(Error::Signature(_))
        ));
        // signature valid but for another image
        let e = verify_simple_signing(&p, &sig_b64, &pem, &sha256_digest(b"other")).unwrap_err();
        assert!(e.to_string().contains("payload signs"), "{e}");
        // tampered payload
        let mut t = p.clone();
        t[10] ^= 1;
        assert!(verify_simple_signing(&t, &sig_b64, &pem, &digest).is_err());
        // unsigned / garbage
        assert!(verify_simple_signing(&p, "", &pem, &digest).is_err());
    }
}
