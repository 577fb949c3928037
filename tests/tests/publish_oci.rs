//! OCI publishing against real third-party tools on 127.0.0.1 (shared/design/reference-values.md
//! §4 D/E): Debian's `docker-registry` (distribution 2.8) serves a throwaway filesystem store,
//! `cvm-publish` pushes manifest + DSSE envelope, `oras pull` must return byte-identical files
//! and `oras manifest fetch` our artifact type; re-pushing gives the same manifest digest.
//! A missing tool fails with the install command (`cargo xtask install test`).

mod publish_common;
mod registry_common;

use cvm_publish::oci::{self, Artifact};
use publish_common::{envelope, manifest, runtime};
use registry_common::{oras, Registry};


#[test]
fn push_pull_byte_identical_and_repush_same_digest() {
    let registry = Registry::start();
    let reference = format!("{}/guest/refvals:v0.1.0", registry.addr);
    let manifest = manifest();
    let artifact = Artifact {
        envelope: envelope(&manifest),
        manifest,
    };
    let rt = runtime();

    let first = rt
        .block_on(oci::push(&reference, &artifact))
        .expect("push to loopback registry");
    assert!(first.digest.starts_with("sha256:"), "{first:?}");

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    oras(
        &[
            "pull",
            "--plain-http",
            "-o",
            out.to_str().unwrap(),
            &reference,
        ],
        work.path(),
    );
    assert_eq!(
        std::fs::read(out.join(oci::MANIFEST_TITLE)).unwrap(),
        artifact.manifest,
        "manifest.json differs after oras pull"
    );
    assert_eq!(
        std::fs::read(out.join(oci::ENVELOPE_TITLE)).unwrap(),
        artifact.envelope,
        "envelope differs after oras pull"
    );

    let fetched = oras(
        &["manifest", "fetch", "--plain-http", &reference],
        work.path(),
    );
    let fetched: serde_json::Value =
        serde_json::from_str(&fetched).expect("oras prints the manifest JSON");
    assert_eq!(fetched["artifactType"], oci::ARTIFACT_TYPE);
    assert_eq!(fetched["config"]["mediaType"], oci::EMPTY_MEDIA_TYPE);
    let descriptor = oras(
        &[
            "manifest",
            "fetch",
            "--plain-http",
            "--descriptor",
            &reference,
        ],
        work.path(),
    );
    assert!(
        descriptor.contains(&first.digest),
        "oras sees digest {descriptor}, push said {}",
        first.digest
    );

    let second = rt
        .block_on(oci::push(&reference, &artifact))
        .expect("re-push");
    assert_eq!(
        second.digest, first.digest,
        "re-publishing the same files must give the same digest"
    );

    let other = Artifact {
        envelope: envelope(b"{}"),
        manifest: artifact.manifest.clone(),
    };
    let third = rt
        .block_on(oci::push(
            &format!("{}/guest/refvals:other", registry.addr),
            &other,
        ))
        .unwrap();
    assert_ne!(
        third.digest, first.digest,
        "different envelope, different artifact"
    );
}

#[test]
fn push_to_stopped_registry_fails_with_reference() {
    let addr = {
        let registry = Registry::start();
        registry.addr.clone()
    }; // dropped: killed
    let reference = format!("{addr}/guest/refvals:v1");
    let m = manifest();
    let err = runtime()
        .block_on(oci::push(
            &reference,
            &Artifact {
                envelope: envelope(&m),
                manifest: m,
            },
        ))
        .expect_err("nothing listens any more");
    assert!(err.to_string().contains(&reference), "{err}");
}
