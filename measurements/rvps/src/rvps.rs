//! gRPC client for Trustee's RVPS (`reference.ReferenceValueProviderService`, plaintext h2c,
//! `shared/design/reference-values.md` §1.2): register a `sample` message, query ids back.
//!
//! [`RvpsClient::register_confirmed`] is the publishing entry: all ids go in **one**
//! `RegisterReferenceValue` call (the RVPS has no transactions and no delete RPC, so one message
//! is as close to all-or-nothing as the API allows), then every id is queried back and compared,
//! so a run that returns `Ok` has proved the RVPS serves exactly these values. Registering the
//! same values again is harmless: the RVPS overwrites by id.

use crate::loopback::is_loopback_host;
use crate::message::Message;
use crate::proto::reference_value_provider_service_client::ReferenceValueProviderServiceClient;
use crate::proto::{ReferenceValueQueryRequest, ReferenceValueRegisterRequest};
use crate::ReferenceValues;
use serde_json::Value;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// What went wrong talking to the RVPS; each names the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RvpsError {
    #[error("RVPS endpoint {0:?} is not an http://host:port URL on loopback: the RVPS API is plaintext and unauthenticated, so only 127.0.0.1/localhost/::1 are accepted (tunnel to a remote RVPS, e.g. ssh -L 50003:127.0.0.1:50003)")]
    Endpoint(String),
    #[error(
        "cannot connect to RVPS at {endpoint}: {reason}; is `rvps --address {authority}` running?"
    )]
    Connect {
        endpoint: String,
        authority: String,
        reason: String,
    },
    #[error("RVPS at {endpoint} refused the registration ({code:?}): {message}")]
    Register {
        endpoint: String,
        code: tonic::Code,
        message: String,
    },
    #[error("RVPS at {endpoint}: query for {id:?} failed ({code:?}): {message}")]
    Query {
        endpoint: String,
        id: String,
        code: tonic::Code,
        message: String,
    },
    #[error("RVPS at {endpoint} returned non-JSON for {id:?}: {text:?}")]
    NotJson {
        endpoint: String,
        id: String,
        text: String,
    },
    #[error("RVPS at {endpoint} did not confirm {id:?} after registering: expected {expected}, it returned {found}; nothing else was changed by this run beyond the one message; re-run to overwrite, and check nothing else registers the same id")]
    NotConfirmed {
        endpoint: String,
        id: String,
        expected: Value,
        found: String,
    },
}

/// A connection to one RVPS.
pub struct RvpsClient {
    endpoint: String,
    inner: ReferenceValueProviderServiceClient<Channel>,
}

impl RvpsClient {
    /// Connects to `endpoint` (`http://127.0.0.1:50003`); refuses non-loopback hosts.
    pub async fn connect(endpoint: &str) -> Result<Self, RvpsError> {
        let bad = || RvpsError::Endpoint(endpoint.to_string());
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or_else(bad)?
            .trim_end_matches('/');
        if authority.is_empty()
            || authority.contains('/')
            || !is_loopback_host(crate::loopback::host_of(authority))
        {
            return Err(bad());
        }
        let ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(|_| bad())?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15));
        let channel = ep.connect().await.map_err(|e| RvpsError::Connect {
            endpoint: endpoint.into(),
            authority: authority.into(),
            reason: error_chain(&e),
        })?;
        Ok(RvpsClient {
            endpoint: endpoint.into(),
            inner: ReferenceValueProviderServiceClient::new(channel),
        })
    }

    /// Sends one registration message.
    pub async fn register(&mut self, message: &Message) -> Result<(), RvpsError> {
        let req = ReferenceValueRegisterRequest {
            message: message.to_json(),
        };
        self.inner
            .register_reference_value(req)
            .await
            .map_err(|s| RvpsError::Register {
                endpoint: self.endpoint.clone(),
                code: s.code(),
                message: s.message().to_string(),
            })?;
        Ok(())
    }

    /// The stored value of `id` (JSON), or `None` when the RVPS does not know it.
    pub async fn query(&mut self, id: &str) -> Result<Option<Value>, RvpsError> {
        let req = ReferenceValueQueryRequest {
            reference_value_id: id.to_string(),
        };
        let res = self
            .inner
            .query_reference_value(req)
            .await
            .map_err(|s| RvpsError::Query {
                endpoint: self.endpoint.clone(),
                id: id.into(),
                code: s.code(),
                message: s.message().to_string(),
            })?;
        match res.into_inner().reference_value_results {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|_| RvpsError::NotJson {
                    endpoint: self.endpoint.clone(),
                    id: id.into(),
                    text,
                }),
        }
    }

    /// Registers every id of `values` in one `sample` message, then queries each id back and
    /// checks the RVPS returns exactly the registered value. Returns the ids confirmed.
    pub async fn register_confirmed(
        &mut self,
        values: &ReferenceValues,
    ) -> Result<Vec<String>, RvpsError> {
        let message = Message::sample(values);
        self.register(&message).await?;
        let mut confirmed = Vec::new();
        for (id, expected) in values.to_sample() {
            let found = self.query(&id).await?;
            if found.as_ref() != Some(&expected) {
                return Err(RvpsError::NotConfirmed {
                    endpoint: self.endpoint.clone(),
                    id,
                    expected,
                    found: found.map_or_else(|| "nothing".into(), |v| v.to_string()),
                });
            }
            confirmed.push(id);
        }
        Ok(confirmed)
    }
}

/// `e` and its sources, joined with `: ` (tonic's transport error hides the cause otherwise).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_non_loopback_before_connecting() {
        for bad in [
            "http://10.1.2.3:50003",
            "https://127.0.0.1:50003",
            "127.0.0.1:50003",
            "http://rvps:50003",
        ] {
            assert!(
                matches!(RvpsClient::connect(bad).await, Err(RvpsError::Endpoint(_))),
                "{bad}"
            );
        }
    }
}
