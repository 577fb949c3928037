//! The RVPS registration message `{version, type, payload}` (`shared/design/reference-values.md`
//! §1.3) and the `sample` provenance it carries (§1.4): a JSON object id → value, base64
//! (standard alphabet) in `payload`. The RVPS stores every key of the object as one reference
//! value, overwriting an earlier one of the same id.

use crate::ReferenceValues;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only message version Trustee's RVPS accepts.
pub const MESSAGE_VERSION: &str = "0.1.0";
/// The extractor this crate emits for (no signature check inside the RVPS: verify first).
pub const SAMPLE_TYPE: &str = "sample";

/// A registration message, as sent in `ReferenceValueRegisterRequest.message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Message version; the RVPS defaults it to `0.1.0` when absent.
    #[serde(default = "default_version")]
    pub version: String,
    /// Extractor name: `sample`, `swid` or `corim`.
    #[serde(rename = "type")]
    pub kind: String,
    /// base64 of the provenance.
    pub payload: String,
}

fn default_version() -> String {
    MESSAGE_VERSION.to_string()
}

/// A message that cannot be read; the texts follow Trustee's where it has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("registration message is not JSON {{version, type, payload}}: {0}")]
    NotJson(String),
    #[error("Version unmatched! Need {MESSAGE_VERSION}, given {0}.")]
    Version(String),
    #[error("Could not find extractor for {0}")]
    NoExtractor(String),
    #[error("sample payload is not base64 (standard alphabet): {0}")]
    Base64(String),
    #[error("sample payload is not a JSON object of id -> value: {0}")]
    Sample(String),
}

impl Message {
    /// The `sample` message registering every id of `values`.
    pub fn sample(values: &ReferenceValues) -> Self {
        let provenance =
            serde_json::to_vec(&Value::Object(values.to_sample())).expect("a JSON map serialises");
        Message {
            version: MESSAGE_VERSION.into(),
            kind: SAMPLE_TYPE.into(),
            payload: base64::engine::general_purpose::STANDARD.encode(provenance),
        }
    }

    /// The message as JSON text (fields in declaration order, deterministic).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("Message serialises")
    }

    /// Parses message JSON text.
    pub fn parse(json: &str) -> Result<Self, MessageError> {
        serde_json::from_str(json).map_err(|e| MessageError::NotJson(e.to_string()))
    }

    /// Checks version and type as the RVPS does and decodes the `sample` provenance.
    pub fn sample_values(&self) -> Result<Map<String, Value>, MessageError> {
        if self.version != MESSAGE_VERSION {
            return Err(MessageError::Version(self.version.clone()));
        }
        if self.kind != SAMPLE_TYPE {
            return Err(MessageError::NoExtractor(self.kind.clone()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| MessageError::Base64(e.to_string()))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(MessageError::Sample(format!("found {}", type_name(&other)))),
            Err(e) => Err(MessageError::Sample(e.to_string())),
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sample_round_trip() {
        let rv =
            ReferenceValues::from_manifest(&json!({"snp": {"launch_digest": "ab".repeat(48)}}))
                .unwrap();
        let m = Message::sample(&rv);
        let text = m.to_json();
        assert!(
            text.starts_with(r#"{"version":"0.1.0","type":"sample","payload":""#),
            "{text}"
        );
        let back = Message::parse(&text).unwrap();
        assert_eq!(
            back.sample_values().unwrap()["snp_launch_measurement"],
            json!(["ab".repeat(48)])
        );
    }

    #[test]
    fn rvps_rules() {
        let m = Message::parse(r#"{"type":"sample","payload":"e30="}"#).unwrap();
        assert_eq!(m.version, "0.1.0", "version defaults like the RVPS");
        assert!(m.sample_values().unwrap().is_empty());
        let e = Message::parse(r#"{"version":"0.2.0","type":"sample","payload":"e30="}"#)
            .unwrap()
            .sample_values();
        assert_eq!(
            e.unwrap_err().to_string(),
            "Version unmatched! Need 0.1.0, given 0.2.0."
        );
        let e = Message::parse(r#"{"type":"in-toto","payload":"e30="}"#)
            .unwrap()
            .sample_values();
        assert_eq!(
            e.unwrap_err().to_string(),
            "Could not find extractor for in-toto"
        );
        let e = Message::parse(r#"{"type":"sample","payload":"WzFd"}"#)
            .unwrap()
            .sample_values();
        assert!(matches!(e, Err(MessageError::Sample(_))));
    }
}
