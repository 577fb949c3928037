//! Host ↔ agent wire protocol: newline-delimited JSON, one message per line, versioned.
//!
//! Every line is a JSON object `{"v":1,"type":...,...}`; lines longer than [`MAX_LINE_BYTES`]
//! are rejected on both sides (the stream is then closed, since it cannot be resynchronised).
//! Host → agent: `hello`, `key`, `refused`. Agent → host: `evidence`, `step`, `error`, `done`.
//! This module is pure: bytes in, messages out.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::BufRead;

/// Protocol version carried in the `v` field of every message.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest accepted line, newline excluded (1 MiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Default virtio-serial port name (QEMU `virtserialport,name=...`).
pub const VIRTIO_PORT_NAME: &str = "org.cvm.agent.0";

/// One protocol message; `type` selects the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Host → agent: start attestation; `nonce` is hex, 16..=64 bytes. `pull` asks the agent
    /// to pull an image onto the data disk once the key is released (as a container runtime
    /// asks for an image); the agent still checks its digest and, when its own configuration
    /// (initdata) names a cosign key, its signature.
    Hello {
        nonce: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pull: Option<PullSpec>,
    },
    /// Agent → host: the evidence answering the last `hello`.
    Evidence { evidence: Box<Evidence> },
    /// Host → agent: the broker accepted the evidence; `key` is the hex data-disk key.
    Key { key: String },
    /// Host → agent: the broker refused; `reason` names the first failed check.
    Refused { reason: String },
    /// Agent → host: a log line saying what the agent just did.
    Step { message: String },
    /// Either direction: a failure; `fatal` means the sender stops after it.
    Error { message: String, fatal: bool },
    /// Agent → host: the agent finished; `ok` is false if any fatal error happened.
    Done { ok: bool },
}

/// An image the host asks the agent to pull: `image` is `registry/repository@sha256:...` or
/// `:tag`; `registry_url` is where the agent reaches that registry (e.g. `http://10.0.2.100:5000`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSpec {
    pub image: String,
    pub registry_url: String,
}

/// Everything the agent reports about the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// PCR values by bank (`sha256`, `sha384`), index → lowercase hex.
    /// On the wire the index is a JSON object key (a decimal string).
    #[serde(deserialize_with = "de_pcr_banks")]
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
    /// base64 of `binary_bios_measurements`, if readable.
    pub event_log: Option<String>,
    /// TPM2 quote over the hello nonce, if a TPM answered.
    pub quote: Option<QuoteEvidence>,
    /// `/proc/cmdline`, trailing newline removed.
    pub cmdline: Option<String>,
    /// device-mapper devices and what could be read about each.
    pub dm_devices: Vec<DmDevice>,
    /// configfs-tsm report, or why there is none.
    pub tsm_report: TsmReport,
    /// Every source that could not be read, with the reason (never silently dropped).
    pub problems: Vec<String>,
}

/// Reads PCR banks with decimal-string indices. serde's derived map-key parsing does not work
/// inside an internally tagged enum (the content is buffered first), so keys are parsed here.
fn de_pcr_banks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, BTreeMap<u32, String>>, D::Error> {
    let raw = BTreeMap::<String, BTreeMap<String, String>>::deserialize(d)?;
    raw.into_iter()
        .map(|(bank, values)| {
            let values = values
                .into_iter()
                .map(|(k, v)| {
                    k.parse::<u32>().map(|k| (k, v)).map_err(|_| {
                        serde::de::Error::custom(format!("PCR index {k:?} is not a number"))
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok((bank, values))
        })
        .collect()
}

/// TPM2_Quote output as marshalled by the TPM, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteEvidence {
    /// `TPM2B_ATTEST` contents: the marshalled `TPMS_ATTEST` that was signed.
    pub attest: String,
    /// Marshalled `TPMT_SIGNATURE`.
    pub signature: String,
    /// Marshalled `TPMT_PUBLIC` of the attestation key.
    pub ak_public: String,
}

/// One `/sys/block/dm-*` device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmDevice {
    pub dev: String,
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// Output of `veritysetup status <name>`, if the program exists and succeeded.
    pub verity_status: Option<String>,
    /// Result of reading the whole device (`/dev/dm-N`): `ok: read N bytes`, or `error: ...`
    /// naming the byte offset where the kernel refused the data (dm-verity returns EIO for a
    /// block whose hash does not match the tree).
    #[serde(default)]
    pub read_check: Option<String>,
}

/// configfs-tsm (`/sys/kernel/config/tsm/report`) result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TsmReport {
    Available { provider: String, outblob: String },
    Unavailable { reason: String },
}

impl Default for TsmReport {
    fn default() -> Self {
        TsmReport::Unavailable {
            reason: "not collected".into(),
        }
    }
}

/// Codec failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("message is not valid JSON for protocol v{PROTOCOL_VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported protocol version {found} (expected {PROTOCOL_VERSION})")]
    Version { found: u32 },
    #[error("reading line: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    msg: Message,
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u32,
    #[serde(flatten)]
    msg: &'a Message,
}

/// Encodes one message as a JSON line ending in `\n`.
pub fn encode(msg: &Message) -> Result<Vec<u8>, CodecError> {
    let mut line = serde_json::to_vec(&EnvelopeRef {
        v: PROTOCOL_VERSION,
        msg,
    })?;
    if line.len() > MAX_LINE_BYTES {
        return Err(CodecError::LineTooLong);
    }
    line.push(b'\n');
    Ok(line)
}

/// Decodes one line (with or without its trailing newline).
pub fn decode(line: &[u8]) -> Result<Message, CodecError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(CodecError::LineTooLong);
    }
    #[derive(Deserialize)]
    struct V {
        v: u32,
    }
    let v: V = serde_json::from_slice(line)?;
    if v.v != PROTOCOL_VERSION {
        return Err(CodecError::Version { found: v.v });
    }
    let env: Envelope = serde_json::from_slice(line)?;
    Ok(env.msg)
}

/// Reads one line of at most [`MAX_LINE_BYTES`]; `Ok(None)` at end of stream.
/// Empty lines are skipped (a serial console may emit them).
pub fn read_message(reader: &mut impl BufRead) -> Result<Option<Message>, CodecError> {
    loop {
        let mut buf = Vec::new();
        let n = std::io::Read::take(&mut *reader, MAX_LINE_BYTES as u64 + 2)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if !buf.ends_with(b"\n") && buf.len() > MAX_LINE_BYTES {
            return Err(CodecError::LineTooLong);
        }
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        return decode(&buf).map(Some);
    }
}

/// Decodes a hex nonce and checks its length (TPM2B_DATA holds at most 64 bytes).
pub fn parse_nonce(hex_nonce: &str) -> Result<Vec<u8>, String> {
    let nonce = hex::decode(hex_nonce).map_err(|e| format!("nonce is not hex: {e}"))?;
    if !(16..=64).contains(&nonce.len()) {
        return Err(format!("nonce is {} bytes, expected 16..=64", nonce.len()));
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_wire_format() {
        let line = encode(&Message::Hello {
            nonce: "00ff".into(),
            pull: None,
        })
        .unwrap();
        assert_eq!(line, b"{\"v\":1,\"type\":\"hello\",\"nonce\":\"00ff\"}\n");
        assert_eq!(
            decode(&line).unwrap(),
            Message::Hello {
                nonce: "00ff".into(),
                pull: None,
            }
        );
        let pull = Some(PullSpec {
            image: "r/x@sha256:00".into(),
            registry_url: "http://10.0.2.100:5000".into(),
        });
        let line = encode(&Message::Hello { nonce: "00ff".into(), pull: pull.clone() }).unwrap();
        assert_eq!(decode(&line).unwrap(), Message::Hello { nonce: "00ff".into(), pull });
    }

    #[test]
    fn evidence_round_trip() {
        let mut ev = Evidence::default();
        ev.pcrs
            .entry("sha256".into())
            .or_default()
            .insert(7, "ab".repeat(32));
        ev.quote = Some(QuoteEvidence {
            attest: "01".into(),
            signature: "02".into(),
            ak_public: "03".into(),
        });
        ev.problems.push("no event log".into());
        let msg = Message::Evidence {
            evidence: Box::new(ev),
        };
        let line = encode(&msg).unwrap();
        assert!(String::from_utf8_lossy(&line).contains(r#""pcrs":{"sha256":{"7":"abab"#));
        assert_eq!(decode(&line).unwrap(), msg);
        let bad = String::from_utf8(line)
            .unwrap()
            .replace(r#"{"7":"#, r#"{"x":"#);
        assert!(decode(bad.as_bytes()).is_err());
    }

    #[test]
    fn rejects_other_versions_and_types() {
        assert!(matches!(
            decode(br#"{"v":2,"type":"done","ok":true}"#),
            Err(CodecError::Version { found: 2 })
        ));
        assert!(matches!(
            decode(br#"{"v":1,"type":"reboot"}"#),
            Err(CodecError::Json(_))
        ));
        assert!(matches!(
            decode(br#"{"type":"done","ok":true}"#),
            Err(CodecError::Json(_))
        ));
    }

    #[test]
    fn reader_limits_line_length() {
        let mut long = vec![b'x'; MAX_LINE_BYTES + 10];
        long.push(b'\n');
        let mut r = std::io::Cursor::new(long);
        assert!(matches!(read_message(&mut r), Err(CodecError::LineTooLong)));

        let mut r = std::io::Cursor::new(b"\n{\"v\":1,\"type\":\"done\",\"ok\":false}\n".to_vec());
        assert_eq!(
            read_message(&mut r).unwrap(),
            Some(Message::Done { ok: false })
        );
        assert_eq!(read_message(&mut r).unwrap(), None);
    }

    #[test]
    fn nonce_length_is_checked() {
        assert!(parse_nonce(&"00".repeat(32)).is_ok());
        assert!(parse_nonce("00").is_err());
        assert!(parse_nonce(&"00".repeat(65)).is_err());
        assert!(parse_nonce("zz").is_err());
    }
}
