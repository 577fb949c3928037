//! The guest agent's image-signature check (`cvm_agent::oci::pull` with a cosign public key,
//! as initdata gives it) against signatures made by the real `cosign sign` (Debian trixie's
//! cosign, key pair from `cosign generate-key-pair`, no transparency log), on an image pushed
//! with `oras` to Debian's `docker-registry` on 127.0.0.1: the signed image is pulled, the
//! same image with another key's public key is refused, an unsigned image is refused, and
//! `cosign verify` agrees on each verdict. A missing tool fails with the install command.

mod registry_common;

use cvm_agent::oci::{self, ImageRef, PullRequest};
use registry_common::{oras, Registry};
use std::path::Path;
use std::process::Command;

/// Run cosign in `dir` (its HOME too) with an empty key password; returns (success, output).
fn cosign(dir: &Path, args: &[&str]) -> (bool, String) {
    eprintln!("$ cosign {}", args.join(" "));
    let out = Command::new("cosign")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("COSIGN_PASSWORD", "")
        .env("TUF_ROOT", dir.join("tuf"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run cosign ({e}): run `cargo xtask install test` (cosign from trixie)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Push a one-layer image whose layer holds `content`; returns its manifest digest.
fn push_image(reg: &Registry, dir: &Path, repo: &str, content: &str) -> String {
    let tree = dir.join(format!("tree-{repo}"));
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::write(tree.join("etc/hello"), content).unwrap();
    let layer = format!("layer-{repo}.tar");
    let st = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--format=ustar", "-cf", &layer, "-C"])
        .arg(&tree)
        .arg(".")
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let out = oras(
        &["push", "--plain-http", &format!("{}/{repo}:v1", reg.addr), &format!("{layer}:application/vnd.oci.image.layer.v1.tar")],
        dir,
    );
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in oras output:\n{out}"))
        .trim()
        .to_string()
}

fn pull(reg: &Registry, dir: &Path, repo: &str, digest: &str, key: &Path) -> Result<(), String> {
    let image = ImageRef::parse(&format!("{}/{repo}@{digest}", reg.addr)).unwrap();
    let req = PullRequest {
        image,
        registry_url: format!("http://{}", reg.addr),
        dest: dir.join(format!("pulled-{repo}-{}", key.file_name().unwrap().to_string_lossy())),
        cosign_public_key_pem: Some(std::fs::read_to_string(key).unwrap()),
    };
    let mut log = |l: String| eprintln!("agent: {l}");
    oci::pull(&req, &mut log).map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn agent_accepts_exactly_what_cosign_signed() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let signed = push_image(&reg, dir, "app", "signed\n");
    let unsigned = push_image(&reg, dir, "other", "unsigned\n");

    std::fs::create_dir_all(dir.join("k1")).unwrap();
    std::fs::create_dir_all(dir.join("k2")).unwrap();
    for k in ["k1", "k2"] {
        let (ok, out) = cosign(&dir.join(k), &["generate-key-pair"]);
        assert!(ok, "cosign generate-key-pair: {out}");
    }
    let (k1_key, k1_pub, k2_pub) = (dir.join("k1/cosign.key"), dir.join("k1/cosign.pub"), dir.join("k2/cosign.pub"));
    let signed_ref = format!("{}/app@{signed}", reg.addr);
    let (ok, out) = cosign(
        dir,
        &["sign", "--key", k1_key.to_str().unwrap(), "--tlog-upload=false", "--allow-http-registry", "--yes", &signed_ref],
    );
    assert!(ok, "cosign sign: {out}");

    // cosign's own verdicts, so the agent is compared with the tool, not with itself.
    let verify = |r: &str, key: &Path| {
        cosign(dir, &["verify", "--key", key.to_str().unwrap(), "--insecure-ignore-tlog", "--allow-http-registry", r]).0
    };
    let unsigned_ref = format!("{}/other@{unsigned}", reg.addr);
    assert!(verify(&signed_ref, &k1_pub), "cosign verify rejects its own signature");
    assert!(!verify(&signed_ref, &k2_pub), "cosign verify accepts another key");
    assert!(!verify(&unsigned_ref, &k1_pub), "cosign verify accepts an unsigned image");

    pull(&reg, dir, "app", &signed, &k1_pub).unwrap_or_else(|e| panic!("agent refused the cosign-signed image: {e}"));
    let e = pull(&reg, dir, "app", &signed, &k2_pub).expect_err("agent accepted a signature by another key");
    assert!(e.contains("signature") || e.contains("ECDSA"), "{e}");
    let e = pull(&reg, dir, "other", &unsigned, &k1_pub).expect_err("agent accepted an unsigned image");
    assert!(e.contains("signature") || e.contains("sig"), "{e}");
}
