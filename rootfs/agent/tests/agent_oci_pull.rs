//! `oci::pull` against a fake OCI registry on 127.0.0.1 (a thread serving fixed responses):
//! digests are checked, a tampered blob is refused, and with a cosign key an unsigned or
//! wrongly signed image is refused while a correctly signed one is pulled; a pulled image's
//! layer is unpacked into `<dest>/<manifest hex>/rootfs`.

use base64::Engine;
use cvm_agent::oci::{
    self, sha256_digest, ImageRef, PullRequest, COSIGN_SIGNATURE_ANNOTATION,
    MEDIA_COSIGN_SIMPLE_SIGNING,
};
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Serves `routes` (path → body) forever; unknown paths get 404.
fn registry(routes: HashMap<String, Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let req = String::from_utf8_lossy(&req);
            let path = req.split(' ').nth(1).unwrap_or("").to_string();
            let _ = match routes.get(&path) {
                Some(body) => s
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                            .as_bytes(),
                    )
                    .and_then(|()| s.write_all(body)),
                None => s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    format!("http://{addr}")
}

fn manifest(config: &[u8], layers: &[(&str, &[u8], Option<&str>)]) -> Vec<u8> {
    let desc = |mt: &str, b: &[u8], ann: Option<&str>| {
        let ann = ann
            .map(|a| format!(r#","annotations":{{"{COSIGN_SIGNATURE_ANNOTATION}":"{a}"}}"#))
            .unwrap_or_default();
        format!(
            r#"{{"mediaType":"{mt}","digest":"{}","size":{}{ann}}}"#,
            sha256_digest(b),
            b.len()
        )
    };
    let layers: Vec<String> = layers.iter().map(|(mt, b, a)| desc(mt, b, *a)).collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        desc("application/vnd.oci.image.config.v1+json", config, None),
        layers.join(",")
    )
    .into_bytes()
}

/// A gzip'd tar layer holding `etc/hello` = `text`.
fn layer_tgz(text: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut h = tar::Header::new_ustar();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/hello", text).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

struct Image {
    routes: HashMap<String, Vec<u8>>,
    digest: String,
}

fn image(layer: &[u8]) -> Image {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let m = manifest(
        &config,
        &[("application/vnd.oci.image.layer.v1.tar+gzip", layer, None)],
    );
    let digest = sha256_digest(&m);
    let mut routes = HashMap::new();
    routes.insert("/v2/guest/app/manifests/v1".to_string(), m.clone());
    routes.insert(format!("/v2/guest/app/manifests/{digest}"), m);
    routes.insert(
        format!("/v2/guest/app/blobs/{}", sha256_digest(&config)),
        config,
    );
    routes.insert(
        format!("/v2/guest/app/blobs/{}", sha256_digest(layer)),
        layer.to_vec(),
    );
    Image { routes, digest }
}

/// Adds a cosign signature by `key` over `digest` under the `sha256-<hex>.sig` tag.
fn sign(img: &mut Image, key: &p256::ecdsa::SigningKey) {
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5000/guest/app"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        img.digest
    )
    .into_bytes();
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    let m = manifest(
        b"{}",
        &[(MEDIA_COSIGN_SIMPLE_SIGNING, &payload, Some(&sig))],
    );
    img.routes.insert(
        format!(
            "/v2/guest/app/manifests/{}",
            oci::signature_tag(&img.digest)
        ),
        m,
    );
    img.routes.insert(
        format!("/v2/guest/app/blobs/{}", sha256_digest(b"{}")),
        b"{}".to_vec(),
    );
    img.routes.insert(
        format!("/v2/guest/app/blobs/{}", sha256_digest(&payload)),
        payload,
    );
}

fn request(url: String, reference: &str, key: Option<&p256::ecdsa::SigningKey>) -> PullRequest {
    static N: AtomicU32 = AtomicU32::new(0);
    let dest = std::env::temp_dir().join(format!(
        "cvm-agent-pull-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    PullRequest {
        image: ImageRef::parse(&format!("127.0.0.1:5000/guest/app{reference}")).unwrap(),
        registry_url: url,
        dest,
        cosign_public_key_pem: key.map(|k| {
            k.verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap()
        }),
    }
}

#[test]
fn pull_checks_digests_and_writes_blobs() {
    let layer_bytes = layer_tgz(b"layer bytes");
    let mut img = image(&layer_bytes);
    // A registry that answers a pinned digest with a manifest that does not hash to it.
    let wrong = format!("@{}", sha256_digest(b"another manifest"));
    let served = img.routes[&format!("/v2/guest/app/manifests/{}", img.digest)].clone();
    img.routes.insert(
        format!("/v2/guest/app/manifests{}", wrong.replace('@', "/")),
        served,
    );
    let url = registry(img.routes.clone());
    let req = request(url.clone(), &format!("@{}", img.digest), None);
    let mut logs = Vec::new();
    let m = oci::pull(&req, &mut |l| logs.push(l)).unwrap();
    let layer = req
        .dest
        .join("blobs/sha256")
        .join(&m.layers[0].digest["sha256:".len()..]);
    assert_eq!(std::fs::read(layer).unwrap(), layer_bytes);
    assert!(logs.iter().any(|l| l.contains("no cosign key")), "{logs:?}");
    let rootfs = req.dest.join(&img.digest["sha256:".len()..]).join("rootfs");
    assert_eq!(
        std::fs::read(rootfs.join("etc/hello")).unwrap(),
        b"layer bytes"
    );
    assert_eq!(
        logs.last().unwrap(),
        &format!("image unpacked: 1 layers -> {}", rootfs.display())
    );
    std::fs::remove_dir_all(&req.dest).unwrap();

    let err = oci::pull(&request(url, &wrong, None), &mut |_| {}).unwrap_err();
    assert!(matches!(err, oci::Error::DigestMismatch { .. }), "{err}");
}

#[test]
fn tampered_layer_is_refused() {
    let mut img = image(b"layer bytes");
    let key = format!("/v2/guest/app/blobs/{}", sha256_digest(b"layer bytes"));
    img.routes.insert(key, b"LAYER BYTES".to_vec());
    let err = oci::pull(&request(registry(img.routes), ":v1", None), &mut |_| {}).unwrap_err();
    assert!(matches!(err, oci::Error::DigestMismatch { .. }), "{err}");
}

#[test]
fn cosign_key_requires_a_valid_signature() {
    let good = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
    let bad = p256::ecdsa::SigningKey::from_slice(&[4u8; 32]).unwrap();

    let unsigned = image(b"unsigned");
    let err = oci::pull(
        &request(registry(unsigned.routes), ":v1", Some(&good)),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("is not signed"), "{err}");

    let mut wrongly = image(b"wrongly signed");
    sign(&mut wrongly, &bad);
    let err = oci::pull(
        &request(registry(wrongly.routes), ":v1", Some(&good)),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("no valid signature"), "{err}");

    let mut signed = image(&layer_tgz(b"signed"));
    sign(&mut signed, &good);
    let req = request(registry(signed.routes), ":v1", Some(&good));
    let mut logs = Vec::new();
    oci::pull(&req, &mut |l| logs.push(l)).unwrap();
    assert!(
        logs.iter()
            .any(|l| l.contains("cosign signature") && l.contains("valid")),
        "{logs:?}"
    );
    std::fs::remove_dir_all(&req.dest).unwrap();
}
