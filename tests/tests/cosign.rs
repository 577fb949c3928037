//! Oracle: Debian trixie's `cosign` (2.5) checks what `cvm-manifest` signs, offline
//! (`--insecure-ignore-tlog=true`, commands from `shared/design/reference-values.md` §4 A/B):
//! - `verify-blob-attestation` accepts our DSSE envelope for the manifest and for an artefact,
//!   and rejects a different blob, a tampered envelope, another key and another predicate type;
//! - `verify-blob` accepts our `sign_blob` signature and rejects it over changed bytes.
//!
//! A missing cosign fails with the install command (`cargo xtask install test`).

use cvm_manifest::dsse::PREDICATE_TYPE;
use cvm_manifest::sign::{self, FileDigest, SigningKey};
use cvm_manifest::{role, Artefact, ImageInfo, Manifest};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cvm-cosign-oracle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("kernel")).unwrap();
    d
}

fn cosign(args: &[&str]) -> Output {
    eprintln!("$ cosign {}", args.join(" "));
    Command::new("cosign").args(args).env("TUF_ROOT", std::env::temp_dir().join("cvm-cosign-tuf")).output().unwrap_or_else(|e| {
        panic!("cannot run cosign ({e}): install it with `cargo xtask install test` (Debian trixie package cosign)")
    })
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn attest(key: &Path, envelope: &Path, predicate_type: &str, blob: &Path) -> Output {
    cosign(&[
        "verify-blob-attestation",
        "--key",
        p(key),
        "--signature",
        p(envelope),
        "--type",
        predicate_type,
        "--insecure-ignore-tlog=true",
        p(blob),
    ])
}

#[test]
fn cosign_accepts_our_signatures_and_rejects_tampering() {
    let dir = scratch();
    let kernel = b"\x4d\x5akernel image bytes";
    std::fs::write(dir.join("kernel/bzImage"), kernel).unwrap();
    let d = FileDigest::of_reader(&kernel[..]).unwrap();
    let mut m = Manifest::new(
        ImageInfo {
            name: "oracle".into(),
            version: "1".into(),
            test_image: true,
        },
        "console=ttyS0".into(),
    );
    m.artefacts.push(Artefact {
        role: role::KERNEL.into(),
        path: "kernel/bzImage".into(),
        sha256: d.sha256,
        size: d.size,
    });
    let bytes = m.to_bytes().unwrap();
    let key = SigningKey::generate();
    let (manifest, envelope, public) = (
        dir.join("manifest.json"),
        dir.join("manifest.dsse.json"),
        dir.join("signing.pub"),
    );
    std::fs::write(&manifest, &bytes).unwrap();
    std::fs::write(
        &envelope,
        sign::sign(&bytes, "manifest.json", &key).unwrap(),
    )
    .unwrap();
    std::fs::write(&public, key.verifying_key().to_public_key_pem()).unwrap();

    let ok = attest(&public, &envelope, PREDICATE_TYPE, &manifest);
    assert!(
        ok.status.success(),
        "cosign rejected our envelope:\n{}",
        text(&ok)
    );
    assert!(text(&ok).contains("Verified OK"), "{}", text(&ok));
    let ok = attest(
        &public,
        &envelope,
        PREDICATE_TYPE,
        &dir.join("kernel/bzImage"),
    );
    assert!(
        ok.status.success(),
        "cosign rejected the artefact subject:\n{}",
        text(&ok)
    );

    // A blob that is not a subject.
    let other = dir.join("other.json");
    std::fs::write(&other, [&bytes[..], b" "].concat()).unwrap();
    let bad = attest(&public, &envelope, PREDICATE_TYPE, &other);
    assert!(
        !bad.status.success() && text(&bad).contains("no matching subject digest"),
        "{}",
        text(&bad)
    );
    // Another predicate type.
    let bad = attest(
        &public,
        &envelope,
        "https://slsa.dev/provenance/v1",
        &manifest,
    );
    assert!(!bad.status.success(), "{}", text(&bad));
    // Another key.
    let other_pub = dir.join("other.pub");
    std::fs::write(
        &other_pub,
        SigningKey::generate().verifying_key().to_public_key_pem(),
    )
    .unwrap();
    let bad = attest(&other_pub, &envelope, PREDICATE_TYPE, &manifest);
    assert!(!bad.status.success(), "{}", text(&bad));
    // A tampered payload (one byte of the statement changed, signature kept).
    let env_text = std::fs::read_to_string(&envelope).unwrap();
    let at = env_text.find("\"payload\": \"").expect("payload field") + "\"payload\": \"".len();
    let flipped = if env_text.as_bytes()[at] == b'e' {
        "f"
    } else {
        "e"
    };
    let tampered_text = format!("{}{flipped}{}", &env_text[..at], &env_text[at + 1..]);
    let tampered = dir.join("tampered.dsse.json");
    std::fs::write(&tampered, tampered_text).unwrap();
    let bad = attest(&public, &tampered, PREDICATE_TYPE, &manifest);
    assert!(!bad.status.success(), "{}", text(&bad));

    // A plain blob signature, as `cosign sign-blob` makes.
    let sig = dir.join("manifest.json.sig");
    std::fs::write(&sig, sign::sign_blob(&bytes, &key)).unwrap();
    let ok = cosign(&[
        "verify-blob",
        "--key",
        p(&public),
        "--signature",
        p(&sig),
        "--insecure-ignore-tlog=true",
        p(&manifest),
    ]);
    assert!(
        ok.status.success(),
        "cosign rejected our blob signature:\n{}",
        text(&ok)
    );
    let bad = cosign(&[
        "verify-blob",
        "--key",
        p(&public),
        "--signature",
        p(&sig),
        "--insecure-ignore-tlog=true",
        p(&other),
    ]);
    assert!(!bad.status.success(), "{}", text(&bad));
    std::fs::remove_dir_all(&dir).unwrap();
}
