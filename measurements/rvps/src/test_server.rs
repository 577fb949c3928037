//! An in-memory RVPS for tests: serves `reference.ReferenceValueProviderService` from the same
//! proto as the client, on 127.0.0.1 with an ephemeral port, and follows the real service's
//! rules (`shared/design/reference-values.md` §1.2-1.5, §6): version must be `0.1.0`, only the
//! `sample` extractor, every payload key stored as is and overwriting, an unknown id answered
//! with an absent result, errors as status ABORTED.
//!
//! Trustee's RVPS itself cannot be built in CI (git dependencies); it stays a manual oracle.

use crate::message::Message;
use crate::proto::reference_value_provider_service_server::{
    ReferenceValueProviderService, ReferenceValueProviderServiceServer,
};
use crate::proto::{
    ReferenceValueQueryRequest, ReferenceValueQueryResponse, ReferenceValueRegisterRequest,
    ReferenceValueRegisterResponse,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};

/// Shared state: id → stored value, and how many registrations were accepted.
#[derive(Default)]
struct Store {
    values: BTreeMap<String, Value>,
    registrations: usize,
}

#[derive(Clone, Default)]
struct Service(Arc<Mutex<Store>>);

#[tonic::async_trait]
impl ReferenceValueProviderService for Service {
    async fn query_reference_value(
        &self,
        request: Request<ReferenceValueQueryRequest>,
    ) -> Result<Response<ReferenceValueQueryResponse>, Status> {
        let id = request.into_inner().reference_value_id;
        let store = self
            .0
            .lock()
            .map_err(|_| Status::internal("store poisoned"))?;
        let reference_value_results = store.values.get(&id).map(Value::to_string);
        Ok(Response::new(ReferenceValueQueryResponse {
            reference_value_results,
        }))
    }

    async fn register_reference_value(
        &self,
        request: Request<ReferenceValueRegisterRequest>,
    ) -> Result<Response<ReferenceValueRegisterResponse>, Status> {
        let text = request.into_inner().message;
        let sample = Message::parse(&text)
            .and_then(|m| m.sample_values())
            .map_err(|e| Status::aborted(format!("Register reference value: {e}")))?;
        let mut store = self
            .0
            .lock()
            .map_err(|_| Status::internal("store poisoned"))?;
        store.values.extend(sample);
        store.registrations += 1;
        Ok(Response::new(ReferenceValueRegisterResponse {}))
    }
}

/// A running test RVPS; stops when dropped.
pub struct TestRvps {
    addr: SocketAddr,
    state: Service,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestRvps {
    /// Starts serving on `127.0.0.1:<ephemeral>` on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Service::default();
        let (tx, rx) = oneshot::channel();
        let svc = ReferenceValueProviderServiceServer::new(state.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            let res = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = res {
                eprintln!("test RVPS on {addr} stopped with an error: {e}");
            }
        });
        Ok(TestRvps {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// `http://127.0.0.1:<port>`, for [`crate::rvps::RvpsClient::connect`].
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of everything stored (id → value).
    pub fn stored(&self) -> BTreeMap<String, Value> {
        self.state
            .0
            .lock()
            .expect("store not poisoned")
            .values
            .clone()
    }

    /// How many registration messages were accepted.
    pub fn registrations(&self) -> usize {
        self.state
            .0
            .lock()
            .expect("store not poisoned")
            .registrations
    }
}

impl Drop for TestRvps {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
