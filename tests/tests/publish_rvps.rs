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
