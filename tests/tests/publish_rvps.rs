//! RVPS registration end to end over gRPC on 127.0.0.1: the `cvm-publish` client against the
//! in-repo test RVPS (same proto as Trustee's `reference.ReferenceValueProviderService`).
//! Register → query back equal, re-register idempotent, unknown id absent, RVPS errors surface
//! with their status. Trustee's own RVPS is a manual oracle (shared/design/reference-values.md §5).

mod publish_common;

use cvm_publish::message::Message;
use cvm_publish::rvps::{RvpsClient, RvpsError};
use cvm_publish::test_server::TestRvps;
use cvm_publish::ReferenceValues;
use publish_common::{hex_of, manifest, runtime};
use serde_json::json;

fn values() -> ReferenceValues {
    ReferenceValues::from_manifest_bytes(&manifest())
        .expect("test manifest has values")
        .with_versioned_ids("example.org/guest", "v0.1.0")
        .expect("valid prefix and tag")
}

#[test]
fn register_then_query_back_equal_and_idempotent() {
    runtime().block_on(async {
        let server = TestRvps::start()
            .await
            .expect("test RVPS starts on 127.0.0.1");
        let mut client = RvpsClient::connect(&server.endpoint())
            .await
            .expect("connects");
        let values = values();

        let ids = client
            .register_confirmed(&values)
            .await
            .expect("registers and confirms");
        let sample = values.to_sample();
        assert_eq!(ids, sample.keys().cloned().collect::<Vec<_>>());
        assert_eq!(
            server.stored(),
            sample.clone().into_iter().collect(),
            "server stores exactly the sample"
        );
        assert_eq!(
            client.query("mr_td").await.unwrap(),
            Some(json!([hex_of(0x11, 48)]))
        );
        assert_eq!(
            client.query("snp_launch_measurement").await.unwrap(),
            Some(json!([hex_of(0x51, 48), hex_of(0x54, 48)])),
            "one array entry per vCPU count"
        );
        assert_eq!(
            client
                .query("rvps:///example.org/guest/tdx/rtmr_2:v0.1.0")
                .await
                .unwrap(),
            Some(json!([hex_of(0x22, 48)]))
        );
        assert_eq!(
            client.query("tpm_pcr11").await.unwrap(),
            Some(json!([hex_of(0x4b, 32)]))
        );

        let before = server.stored();
        client
            .register_confirmed(&values)
            .await
            .expect("re-registering is fine");
        assert_eq!(server.registrations(), 2);
        assert_eq!(server.stored(), before, "re-register changes nothing");
    });
}

#[test]
fn unknown_id_is_absent() {
    runtime().block_on(async {
        let server = TestRvps::start().await.unwrap();
        let mut client = RvpsClient::connect(&server.endpoint()).await.unwrap();
        assert_eq!(client.query("mr_td").await.unwrap(), None);
    });
}

#[test]
fn rvps_rejections_surface_as_aborted() {
    runtime().block_on(async {
        let server = TestRvps::start().await.unwrap();
        let mut client = RvpsClient::connect(&server.endpoint()).await.unwrap();
        let mut m = Message::sample(&values());
        m.version = "0.2.0".into();
        match client.register(&m).await {
            Err(RvpsError::Register { code, message, .. }) => {
                assert_eq!(code, tonic::Code::Aborted);
                assert!(
                    message.contains("Version unmatched! Need 0.1.0, given 0.2.0."),
                    "{message}"
                );
            }
            other => panic!("expected an ABORTED registration, got {other:?}"),
        }
        assert_eq!(server.registrations(), 0);
        assert!(
            server.stored().is_empty(),
            "a rejected message stores nothing"
        );
    });
}

#[test]
fn closed_port_names_the_endpoint() {
    runtime().block_on(async {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        match RvpsClient::connect(&endpoint).await {
            Err(e @ RvpsError::Connect { .. }) => assert!(e.to_string().contains(&endpoint), "{e}"),
            Err(e) => panic!("expected a connect error, got {e}"),
            Ok(_) => panic!("connected to a closed port {endpoint}"),
        }
    });
}

/// The manifest as `build-image` writes it (cvm-manifest types, canonical bytes): shapes, and
/// the image-wide vTPM PCRs per bank at the top level, with events that replay to them.
fn built_manifest() -> (Vec<u8>, cvm_manifest::VtpmMeasurements) {
    use cvm_manifest::{Artefact, ImageInfo, Manifest, ShapeMeasurements, VtpmMeasurements};
    use sha2::{Digest, Sha256, Sha384};
    use std::collections::BTreeMap;
    let mut pcrs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut events = Vec::new();
    for pcr in [0u8, 4, 5, 7, 9] {
        let (d256, d384) = (vec![pcr + 1; 32], vec![pcr + 1; 48]);
        let v256 = Sha256::digest([vec![0; 32], d256.clone()].concat());
        let v384 = Sha384::digest([vec![0; 48], d384.clone()].concat());
        pcrs.entry("sha256".into())
            .or_default()
            .insert(pcr.to_string(), hex::encode(v256));
        pcrs.entry("sha384".into())
            .or_default()
            .insert(pcr.to_string(), hex::encode(v384));
        events.push(cvm_manifest::VtpmEvent {
            pcr: u32::from(pcr),
            event_type: "EV_SEPARATOR".into(),
            digests: [
                ("sha256".into(), hex::encode(d256)),
                ("sha384".into(), hex::encode(d384)),
            ]
            .into(),
            description: "separator".into(),
        });
    }
    let vtpm = VtpmMeasurements {
        firmware_role: "ovmf-vtpm".into(),
        boot: None,
        pcrs,
        events,
    };
    let mut m = Manifest::new(
        ImageInfo {
            name: "guest".into(),
            version: "v0.1.0".into(),
            test_image: true,
        },
        "console=ttyS0".into(),
    );
    m.artefacts.push(Artefact {
        role: "ovmf-vtpm".into(),
        path: "firmware/ovmf-vtpm/OVMF.fd".into(),
        sha256: hex_of(0xf0, 32),
        size: 4 << 20,
    });
    m.shapes.push(ShapeMeasurements {
        name: "tdx-2cpu".into(),
        tdx: Some(json!({"vcpus": 2, "mrtd": hex_of(0x11, 48)})),
        snp: None,
        vtpm: None,
    });
    m.vtpm = Some(vtpm.clone());
    (m.to_bytes().expect("a valid manifest"), vtpm)
}

/// The vTPM PCRs of a built manifest (top-level `vtpm`, per bank, beside `shapes`) are
/// registered as `tpm_pcr<n>` from the sha256 bank, the ids Trustee's default policy reads, and
/// read back equal; the sha384 bank is not published.
#[test]
fn vtpm_pcrs_of_a_built_manifest_register_as_tpm_pcr_ids() {
    let (bytes, vtpm) = built_manifest();
    let values = ReferenceValues::from_manifest_bytes(&bytes)
        .expect("values")
        .with_versioned_ids("example.org/guest", "v0.1.0")
        .expect("valid prefix and tag");
    let sample = values.to_sample();
    let tpm_ids: Vec<&String> = sample.keys().filter(|k| k.starts_with("tpm_pcr")).collect();
    assert_eq!(
        tpm_ids,
        ["tpm_pcr0", "tpm_pcr4", "tpm_pcr5", "tpm_pcr7", "tpm_pcr9"]
    );
    runtime().block_on(async {
        let server = TestRvps::start().await.unwrap();
        let mut client = RvpsClient::connect(&server.endpoint()).await.unwrap();
        client
            .register_confirmed(&values)
            .await
            .expect("registers and confirms");
        for (pcr, want) in &vtpm.pcrs["sha256"] {
            assert_eq!(
                client.query(&format!("tpm_pcr{pcr}")).await.unwrap(),
                Some(json!([want])),
                "tpm_pcr{pcr}"
            );
        }
        assert_eq!(
            client
                .query("rvps:///example.org/guest/vtpm/tpm_pcr0:v0.1.0")
                .await
                .unwrap(),
            Some(json!([vtpm.pcrs["sha256"]["0"]]))
        );
        assert_eq!(
            client.query("mr_td").await.unwrap(),
            Some(json!([hex_of(0x11, 48)]))
        );
        let stored = server.stored();
        for (pcr, v384) in &vtpm.pcrs["sha384"] {
            assert!(
                !stored
                    .values()
                    .any(|v| v.to_string().contains(v384.as_str())),
                "sha384 PCR {pcr} published"
            );
        }
    });
}
