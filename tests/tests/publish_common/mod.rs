//! Inputs shared by `publish_rvps.rs` and `publish_oci.rs`: a small measurement manifest with
//! TDX, SNP and vTPM values for two VM shapes, and a DSSE envelope whose in-toto subject is
//! that manifest (placeholder signature: these tests cover publishing, not signing).

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};

/// `n` bytes of `b`, lowercase hex.
pub fn hex_of(b: u8, n: usize) -> String {
    hex::encode(vec![b; n])
}

/// Manifest JSON bytes: shape 0 is TDX + vTPM, shape 1 is SNP with two vCPU counts.
pub fn manifest() -> Vec<u8> {
    let m = json!({
        "image": {"name": "guest", "version": "v0.1.0"},
        "shapes": [
            {"name": "tdx-2cpu",
             "tdx": {"mrtd": hex_of(0x11, 48), "rtmr0": hex_of(0x20, 48), "rtmr1": hex_of(0x21, 48),
                     "rtmr2": hex_of(0x22, 48), "rtmr3": hex_of(0, 48)},
             "vtpm": {"pcrs": {"4": hex_of(0x44, 32), "11": hex_of(0x4b, 32)}}},
            {"name": "snp-genoa",
             "snp": [{"vcpus": 1, "launch_digest": hex_of(0x51, 48)},
                     {"vcpus": 4, "launch_digest": hex_of(0x54, 48)}]}
        ]
    });
    serde_json::to_vec_pretty(&m).expect("manifest serialises")
}

/// A DSSE envelope (in-toto Statement v1) whose subject is `manifest`.
pub fn envelope(manifest: &[u8]) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "manifest.json", "digest": {"sha256": hex::encode(Sha256::digest(manifest))}}],
        "predicateType": "https://example.org/cvm-image/reference-values/v0.1",
        "predicate": {}
    });
    let payload = base64::engine::general_purpose::STANDARD.encode(statement.to_string());
    let env = json!({"payloadType": "application/vnd.in-toto+json", "payload": payload,
                     "signatures": [{"keyid": "test", "sig": "MEUCIQ=="}]});
    serde_json::to_vec(&env).expect("envelope serialises")
}

/// A current-thread tokio runtime with IO and timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
