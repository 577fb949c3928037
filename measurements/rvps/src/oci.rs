//! Publishing manifest + DSSE envelope as one OCI artifact (`shared/design/reference-values.md`
//! §4 D/E): an image manifest with `artifactType` [`ARTIFACT_TYPE`], the empty config
//! (`application/vnd.oci.empty.v1+json`, data `{}`) and two layers, each titled with
//! `org.opencontainers.image.title` so `oras pull` writes them under their file names.
//!
//! The artifact is a pure function of the two inputs (no `created` annotation), so pushing the
//! same files again gives the same manifest digest. Blobs go first, the manifest (and so the
//! tag) last, and the tag is then resolved and its layers compared: a tag never points at a
//! half-uploaded artifact, and `Ok` means the registry serves what was pushed.
//!
//! Plain HTTP, loopback registries only (see the crate docs).

use crate::loopback::{host_of, is_loopback_host};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;

/// `artifactType` of the published artifact.
pub const ARTIFACT_TYPE: &str = "application/vnd.cvm-image.measurements.v1+json";
/// Media type of the manifest layer (the measurement manifest JSON).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.cvm-image.manifest.v1+json";
/// Media type of the DSSE envelope layer (the one Sigstore uses for DSSE).
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The OCI empty descriptor's media type, used for the config.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// File name (layer title) of the manifest in the artifact.
pub const MANIFEST_TITLE: &str = "manifest.json";
/// File name (layer title) of the envelope in the artifact.
pub const ENVELOPE_TITLE: &str = "manifest.dsse.json";
const TITLE: &str = "org.opencontainers.image.title";

/// The two files of a published artifact.
pub struct Artifact {
    /// The measurement manifest, exactly the bytes that were signed.
    pub manifest: Vec<u8>,
    /// The DSSE envelope over `manifest`.
    pub envelope: Vec<u8>,
}

/// Where an artifact went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The reference pushed to (`127.0.0.1:5000/repo:tag`).
    pub reference: String,
    /// The image manifest digest the tag resolves to (`sha256:…`).
    pub digest: String,
}

/// Why a push did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    #[error("OCI reference {reference:?} is not host:port/repository:tag ({reason})")]
    Reference { reference: String, reason: String },
    #[error("OCI registry {0:?} is not on loopback: pushes use plain HTTP, so only 127.0.0.1/localhost/::1 registries are accepted")]
    NotLoopback(String),
    #[error("pushing to {reference} failed: {reason}; is the registry running (`docker-registry serve <config>`) and the repository writable?")]
    Push { reference: String, reason: String },
    #[error("reading back {reference} failed: {reason}")]
    ReadBack { reference: String, reason: String },
    #[error("{reference} resolves to {found} after the push, expected layers {expected}; another writer may be pushing the same tag")]
    NotConfirmed {
        reference: String,
        expected: String,
        found: String,
    },
}

impl Artifact {
    fn layers(&self) -> Vec<ImageLayer> {
        let layer = |data: &[u8], media_type: &str, title: &str| {
            ImageLayer::new(
                data.to_vec(),
                media_type.into(),
                Some(BTreeMap::from([(TITLE.into(), title.into())])),
            )
        };
        vec![
            layer(&self.manifest, MANIFEST_MEDIA_TYPE, MANIFEST_TITLE),
            layer(&self.envelope, ENVELOPE_MEDIA_TYPE, ENVELOPE_TITLE),
        ]
    }

    fn config() -> Config {
        Config::new(b"{}".to_vec(), EMPTY_MEDIA_TYPE.into(), None)
    }

    /// The OCI image manifest this artifact is pushed as (pure and deterministic).
    pub fn image_manifest(&self) -> OciImageManifest {
        let mut m = OciImageManifest::build(&self.layers(), &Self::config(), None);
        m.media_type = Some(OCI_IMAGE_MEDIA_TYPE.into());
        m.artifact_type = Some(ARTIFACT_TYPE.into());
        m
    }
}

/// Parses `reference` and checks it names a tag on a loopback registry.
pub fn parse_reference(reference: &str) -> Result<Reference, OciError> {
    let err = |reason: &str| OciError::Reference {
        reference: reference.into(),
        reason: reason.into(),
    };
    let (registry, rest) = reference
        .split_once('/')
        .ok_or_else(|| err("no registry host"))?;
    if !is_loopback_host(host_of(registry)) {
        return Err(OciError::NotLoopback(registry.into()));
    }
    if rest.contains('@')
        || !rest
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
    {
        return Err(err("give an explicit :tag, not a digest"));
    }
    let r: Reference = reference
        .parse()
        .map_err(|e: oci_client::ParseError| err(&e.to_string()))?;
    if r.registry() != registry {
        return Err(err(
            "the first path component must be the registry host:port",
        ));
    }
    Ok(r)
}

/// Pushes `artifact` to `reference` (`127.0.0.1:5000/repo:tag`): blobs, then the manifest,
/// then resolves the tag and checks it lists exactly this artifact's layers.
pub async fn push(reference: &str, artifact: &Artifact) -> Result<Pushed, OciError> {
    let image = parse_reference(reference)?;
    // reqwest is built with rustls but no provider (loopback pushes are plain HTTP, no
    // aws-lc build); the ring provider is installed once so building the client cannot panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let auth = RegistryAuth::Anonymous;
    let manifest = artifact.image_manifest();
    let expected: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    let push_err = |e: oci_client::errors::OciDistributionError| OciError::Push {
        reference: reference.into(),
        reason: crate::rvps::error_chain(&e),
    };
    client
        .push(
            &image,
            &artifact.layers(),
            Artifact::config(),
            &auth,
            Some(manifest),
        )
        .await
        .map_err(push_err)?;

    let read_err = |e: oci_client::errors::OciDistributionError| OciError::ReadBack {
        reference: reference.into(),
        reason: crate::rvps::error_chain(&e),
    };
    let (found, digest) = client
        .pull_image_manifest(&image, &auth)
        .await
        .map_err(read_err)?;
    let found_layers: Vec<String> = found.layers.iter().map(|l| l.digest.clone()).collect();
    if found_layers != expected || found.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return Err(OciError::NotConfirmed {
            reference: reference.into(),
            expected: expected.join(", "),
            found: format!("{digest} with layers {}", found_layers.join(", ")),
        });
    }
    Ok(Pushed {
        reference: reference.into(),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_manifest_is_deterministic_and_typed() {
        let a = Artifact {
            manifest: b"{}".to_vec(),
            envelope: b"{\"payload\":\"\"}".to_vec(),
        };
        let m = a.image_manifest();
        let json = |m: &OciImageManifest| serde_json::to_string(m).unwrap();
        assert_eq!(json(&m), json(&a.image_manifest()));
        assert_eq!(m.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
        assert_eq!(m.config.media_type, EMPTY_MEDIA_TYPE);
        assert_eq!(
            m.config.digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m.layers.len(), 2);
        assert_eq!(
            m.layers[1].annotations.as_ref().unwrap()[TITLE],
            ENVELOPE_TITLE
        );
        assert!(
            m.annotations.is_none(),
            "no created annotation: re-push must give the same digest"
        );
    }

    #[test]
    fn references_must_be_loopback_tags() {
        assert!(parse_reference("127.0.0.1:5000/guest/refvals:v0.1.0").is_ok());
        assert!(parse_reference("localhost:5000/guest:v1").is_ok());
        assert!(matches!(
            parse_reference("registry.example.org/guest:v1"),
            Err(OciError::NotLoopback(_))
        ));
        assert!(matches!(
            parse_reference("127.0.0.1:5000/guest"),
            Err(OciError::Reference { .. })
        ));
        let d = format!("127.0.0.1:5000/guest@sha256:{}", "0".repeat(64));
        assert!(matches!(
            parse_reference(&d),
            Err(OciError::Reference { .. })
        ));
    }
}
