//! `cargo xtask publish`: publish a signed measurement manifest. Checks that the DSSE envelope
//! covers the manifest and derives the reference values before any network call, then pushes
//! manifest + envelope as an OCI artifact (`--oci`) and registers the values with an RVPS
//! (`--rvps`), reading every id back. Both endpoints must be on loopback (see `cvm-publish`).
//!
//! With `--key` the envelope's signature is verified first (`cvm_manifest::sign::verify`,
//! fail-closed): the RVPS verifies nothing, so this is the trust check before registration.

use crate::flags::PublishFlags;
use crate::tools;
use anyhow::{bail, Context, Result};
use cvm_publish::{oci, rvps::RvpsClient, ReferenceValues};

pub fn run(flags: &PublishFlags) -> Result<()> {
    if flags.rvps.is_none() && flags.oci.is_none() {
        bail!("nothing to publish: give --oci 127.0.0.1:5000/<repo>:<tag> and/or --rvps http://127.0.0.1:50003");
    }
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read(p).with_context(|| {
            format!(
                "reading {what} {} (run `cargo xtask build-image` first)",
                p.display()
            )
        })
    };
    let manifest = read(&flags.manifest, "manifest")?;
    let envelope = read(&flags.envelope, "DSSE envelope")?;

    tools::stage("publish: check the envelope covers the manifest; derive reference values");
    match &flags.key {
        Some(key_path) => {
            let pem = std::fs::read_to_string(key_path)
                .with_context(|| format!("reading public key {}", key_path.display()))?;
            let key = cvm_manifest::sign::VerifyingKey::from_public_key_pem(&pem)
                .with_context(|| format!("{} is not an SPKI PEM P-256 public key", key_path.display()))?;
            cvm_manifest::sign::verify(&envelope, &manifest, &key).with_context(|| {
                format!("{} is not a valid signature of {} by {}", flags.envelope.display(), flags.manifest.display(), key_path.display())
            })?;
            eprintln!("    signature verified with {}", key_path.display());
        }
        None => eprintln!("    WARNING: no --key: the envelope's signature is NOT verified (the RVPS checks none either)"),
    }
    let statement = cvm_publish::check_envelope(&envelope, &manifest).with_context(|| {
        format!(
            "{} does not vouch for {}",
            flags.envelope.display(),
            flags.manifest.display()
        )
    })?;
    eprintln!(
        "    in-toto statement {} ({})",
        statement.predicate_type, statement.statement_type
    );
    let mut values = ReferenceValues::from_manifest_bytes(&manifest)
        .with_context(|| format!("reading reference values from {}", flags.manifest.display()))?;
    if let (Some(prefix), Some(tag)) = (&flags.rv_prefix, &flags.rv_tag) {
        values = values.with_versioned_ids(prefix, tag)?;
    }
    eprintln!("    {} reference value ids", values.len());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    if let Some(reference) = &flags.oci {
        tools::stage(&format!("publish: push OCI artifact {reference}"));
        let artifact = oci::Artifact {
            manifest: manifest.clone(),
            envelope: envelope.clone(),
        };
        let pushed = rt.block_on(oci::push(reference, &artifact))?;
        eprintln!("    pushed {}@{}", pushed.reference, pushed.digest);
    }
    if let Some(endpoint) = &flags.rvps {
        tools::stage(&format!(
            "publish: register reference values with RVPS {endpoint}"
        ));
        let ids = rt.block_on(async {
            let mut client = RvpsClient::connect(endpoint).await?;
            client.register_confirmed(&values).await
        })?;
        for id in &ids {
            eprintln!("    confirmed {id}");
        }
    }
    Ok(())
}
