//! `cvm-publish` on what `cvm-manifest` really writes and signs: a `Manifest` with TDX, SNP (two
//! vCPU counts) and vTPM values, canonical bytes, a P-256 DSSE envelope. The envelope binding
//! check accepts it and refuses another manifest, and the reference values come out under the
//! EAR policy ids (a schema drift in either crate fails here).

use cvm_manifest::{sign, ImageInfo, Manifest, ShapeMeasurements, FILE_NAME};
use cvm_publish::{check_envelope, ReferenceValues};
use serde_json::json;

fn hex_of(b: u8, n: usize) -> String {
    hex::encode(vec![b; n])
}

fn manifest() -> Manifest {
    let image = ImageInfo {
        name: "guest".into(),
        version: "v0.1.0".into(),
        test_image: true,
    };
    let mut m = Manifest::new(image, "console=ttyS0".into());
    m.shapes.push(ShapeMeasurements {
        name: "tdx-2cpu".into(),
        tdx: Some(json!({"mrtd": hex_of(1, 48), "rtmr0": hex_of(2, 48), "rtmr1": hex_of(3, 48),
                         "rtmr2": hex_of(4, 48), "rtmr3": hex_of(0, 48)})),
        snp: Some(json!([{"vcpus": 1, "launch_digest": hex_of(5, 48)}, {"vcpus": 2, "launch_digest": hex_of(6, 48)}])),
        vtpm: Some(json!({"pcrs": {"11": hex_of(7, 32)}})),
    });
    m
}

#[test]
fn signed_cvm_manifest_publishes_policy_ids() {
    let bytes = manifest().to_bytes().expect("manifest serialises");
    let key = sign::SigningKey::generate();
    let envelope = sign::sign(&bytes, FILE_NAME, &key).expect("signs");
    sign::verify(&envelope, &bytes, &key.verifying_key())
        .expect("cvm-manifest verifies its own envelope");

    check_envelope(&envelope, &bytes).expect("cvm-publish accepts the binding");
    let other = {
        let mut m = manifest();
        m.cmdline.push_str(" quiet");
        m.to_bytes().unwrap()
    };
    assert!(
        check_envelope(&envelope, &other).is_err(),
        "an envelope for another manifest is refused"
    );

    let sample = ReferenceValues::from_manifest_bytes(&bytes)
        .expect("values from a real manifest")
        .to_sample();
    assert_eq!(sample["mr_td"], json!([hex_of(1, 48)]));
    assert_eq!(sample["rtmr_2"], json!([hex_of(4, 48)]));
    assert_eq!(
        sample["snp_launch_measurement"],
        json!([hex_of(5, 48), hex_of(6, 48)])
    );
    assert_eq!(sample["tpm_pcr11"], json!([hex_of(7, 32)]));
    assert_eq!(sample.len(), 7, "{:?}", sample.keys().collect::<Vec<_>>());
}
