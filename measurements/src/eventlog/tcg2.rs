//! `TCG_PCR_EVENT2` logs in the crypto-agile format (TCG PC Client Platform Firmware Profile
//! 1.05, §10.2): a leading SHA-1-format `TCG_PCR_EVENT` carrying `TCG_EfiSpecIdEvent`
//! ("Spec ID Event03", which declares the digest sizes), then `TCG_PCR_EVENT2` records.
//!
//! Reading stops at the end of the buffer or at an all-`0xFF` / all-zero record header, which is
//! how a CCEL log area that is larger than its content is padded.

use super::{event_type::EV_NO_ACTION, Error};

/// Signature of `TCG_EfiSpecIdEvent` for crypto-agile logs.
pub const SPEC_ID_EVENT03_SIGNATURE: [u8; 16] = *b"Spec ID Event03\0";

/// `TCG_EfiSpecIdEvent` (PFP 1.05, Table 20).
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "TCG_EfiSpecIdEvent")]
pub struct TcgEfiSpecIdEvent {
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    pub uintn_size: u8,
    /// `(algorithmId, digestSize)` pairs, in log order.
    pub digest_sizes: Vec<(u16, u16)>,
    pub vendor_info: Vec<u8>,
}

impl TcgEfiSpecIdEvent {
    /// The header edk2 writes for a log with the given banks (spec 2.0 errata 0, UINTN = 8 bytes
    /// encoded as 2 = "UINT64").
    pub fn for_algorithms(algs: &[(u16, u16)]) -> TcgEfiSpecIdEvent {
        TcgEfiSpecIdEvent {
            platform_class: 0,
            spec_version_minor: 0,
            spec_version_major: 2,
            spec_errata: 0,
            uintn_size: 2,
            digest_sizes: algs.to_vec(),
            vendor_info: Vec::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = SPEC_ID_EVENT03_SIGNATURE.to_vec();
        out.extend_from_slice(&self.platform_class.to_le_bytes());
        out.extend_from_slice(&[
            self.spec_version_minor,
            self.spec_version_major,
            self.spec_errata,
            self.uintn_size,
        ]);
        out.extend_from_slice(&(self.digest_sizes.len() as u32).to_le_bytes());
        for (alg, size) in &self.digest_sizes {
            out.extend_from_slice(&alg.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
        }
        out.push(self.vendor_info.len() as u8);
        out.extend_from_slice(&self.vendor_info);
        out
    }

    fn parse(r: &mut Reader<'_>) -> Result<TcgEfiSpecIdEvent, Error> {
        let sig = r.bytes(16, "TCG_EfiSpecIdEvent.signature")?;
        if sig != SPEC_ID_EVENT03_SIGNATURE {
            return Err(r.invalid(
                "TCG_EfiSpecIdEvent.signature",
                format!(
                    "{:?} is not \"Spec ID Event03\"",
                    String::from_utf8_lossy(sig)
                ),
            ));
        }
        let platform_class = r.u32("TCG_EfiSpecIdEvent.platformClass")?;
        let v = r.bytes(4, "TCG_EfiSpecIdEvent.specVersion")?;
        let n = r.u32("TCG_EfiSpecIdEvent.numberOfAlgorithms")?;
        if n == 0 || n > 16 {
            return Err(r.invalid(
                "TCG_EfiSpecIdEvent.numberOfAlgorithms",
                format!("{n} is outside 1..=16"),
            ));
        }
        let mut digest_sizes = Vec::new();
        for _ in 0..n {
            digest_sizes.push((
                r.u16("TCG_EfiSpecIdEvent.algorithmId")?,
                r.u16("TCG_EfiSpecIdEvent.digestSize")?,
            ));
        }
        let vn = r.bytes(1, "TCG_EfiSpecIdEvent.vendorInfoSize")?[0] as usize;
        let vendor_info = r.bytes(vn, "TCG_EfiSpecIdEvent.vendorInfo")?.to_vec();
        Ok(TcgEfiSpecIdEvent {
            platform_class,
            spec_version_minor: v[0],
            spec_version_major: v[1],
            spec_errata: v[2],
            uintn_size: v[3],
            digest_sizes,
            vendor_info,
        })
    }
}

/// `TPMT_HA`: one digest of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "TPMT_HA")]
pub struct TpmtHa {
    pub hash_alg: u16,
    pub digest: Vec<u8>,
}

/// `TCG_PCR_EVENT2` (PFP 1.05, Table 10). In a CCEL log `pcr_index` holds the CC measurement
/// register index (UEFI 2.10 §38.4.1: 0 MRTD, 1..=4 RTMR0..3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(alias = "TCG_PCR_EVENT2")]
pub struct TcgPcrEvent2 {
    pub pcr_index: u32,
    pub event_type: u32,
    pub digests: Vec<TpmtHa>,
    pub event: Vec<u8>,
}

impl TcgPcrEvent2 {
    /// The digest for `alg`, if the event carries one.
    pub fn digest(&self, alg: u16) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|d| d.hash_alg == alg)
            .map(|d| d.digest.as_slice())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.pcr_index.to_le_bytes());
        out.extend_from_slice(&self.event_type.to_le_bytes());
        out.extend_from_slice(&(self.digests.len() as u32).to_le_bytes());
        for d in &self.digests {
            out.extend_from_slice(&d.hash_alg.to_le_bytes());
            out.extend_from_slice(&d.digest);
        }
        out.extend_from_slice(&(self.event.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.event);
        out
    }
}

/// A whole crypto-agile log: its `TCG_EfiSpecIdEvent` header and the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLog {
    pub spec_id: TcgEfiSpecIdEvent,
    pub events: Vec<TcgPcrEvent2>,
}

impl EventLog {
    /// Serialize: the SHA-1-format header event (`TCG_PCR_EVENT`, PCR 0, `EV_NO_ACTION`, zero
    /// digest) holding the spec ID event, then every event.
    pub fn to_bytes(&self) -> Vec<u8> {
        let spec = self.spec_id.to_bytes();
        let mut out = Vec::new();
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        out.extend_from_slice(&[0u8; 20]);
        out.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        out.extend_from_slice(&spec);
        for e in &self.events {
            out.extend_from_slice(&e.to_bytes());
        }
        out
    }

    /// Parse a log. Every digest size comes from the spec ID header; an algorithm the header
    /// does not declare is an error (its size would be unknown).
    pub fn parse(data: &[u8]) -> Result<EventLog, Error> {
        let mut r = Reader {
            data,
            pos: 0,
            event: 0,
        };
        r.u32("TCG_PCR_EVENT.pcrIndex")?;
        let t = r.u32("TCG_PCR_EVENT.eventType")?;
        if t != EV_NO_ACTION {
            return Err(r.invalid(
                "TCG_PCR_EVENT.eventType",
                format!("{t:#x}: a crypto-agile log starts with EV_NO_ACTION"),
            ));
        }
        r.bytes(20, "TCG_PCR_EVENT.digest")?;
        let size = r.u32("TCG_PCR_EVENT.eventSize")? as usize;
        let start = r.pos;
        let spec_id = TcgEfiSpecIdEvent::parse(&mut r)?;
        if r.pos - start > size {
            return Err(r.invalid(
                "TCG_PCR_EVENT.eventSize",
                format!("{size} is shorter than the spec ID event"),
            ));
        }
        r.pos = start;
        r.bytes(size, "TCG_PCR_EVENT.event")?;
        let mut events = Vec::new();
        loop {
            r.event = events.len() + 1;
            let rest = &data[r.pos..];
            if rest.is_empty() || is_padding(&rest[..rest.len().min(8)]) {
                break;
            }
            events.push(r.event2(&spec_id)?);
        }
        Ok(EventLog { spec_id, events })
    }
}

/// A record header of all `0xFF` (erased log area) or all zeros ends the log.
fn is_padding(head: &[u8]) -> bool {
    head.iter().all(|&b| b == 0xFF) || head.iter().all(|&b| b == 0)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    event: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Error> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(Error::Truncated {
                what,
                event: self.event,
                offset: self.pos,
                need: n,
                have: self.data.len(),
            })?;
        self.pos += n;
        Ok(s)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        self.bytes(2, what)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        self.bytes(4, what)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn invalid(&self, field: &'static str, problem: String) -> Error {
        Error::Invalid {
            field,
            event: self.event,
            offset: self.pos,
            problem,
        }
    }

    fn event2(&mut self, spec: &TcgEfiSpecIdEvent) -> Result<TcgPcrEvent2, Error> {
        let pcr_index = self.u32("TCG_PCR_EVENT2.pcrIndex")?;
        let event_type = self.u32("TCG_PCR_EVENT2.eventType")?;
        let count = self.u32("TCG_PCR_EVENT2.digests.count")?;
        if count as usize > spec.digest_sizes.len() {
            return Err(self.invalid(
                "TCG_PCR_EVENT2.digests.count",
                format!(
                    "{count} digests, the header declares {} algorithms",
                    spec.digest_sizes.len()
                ),
            ));
        }
        let mut digests = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let hash_alg = self.u16("TPMT_HA.hashAlg")?;
            let size = spec
                .digest_sizes
                .iter()
                .find(|(a, _)| *a == hash_alg)
                .map(|(_, s)| *s as usize)
                .ok_or_else(|| {
                    self.invalid(
                        "TPMT_HA.hashAlg",
                        format!("algorithm {hash_alg:#06x} is not declared in the spec ID event"),
                    )
                })?;
            digests.push(TpmtHa {
                hash_alg,
                digest: self.bytes(size, "TPMT_HA.digest")?.to_vec(),
            });
        }
        let size = self.u32("TCG_PCR_EVENT2.eventSize")? as usize;
        let event = self.bytes(size, "TCG_PCR_EVENT2.event")?.to_vec();
        Ok(TcgPcrEvent2 {
            pcr_index,
            event_type,
            digests,
            event,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::alg::TPM_ALG_SHA384;
    use super::*;

    fn sample() -> EventLog {
        EventLog {
            spec_id: TcgEfiSpecIdEvent::for_algorithms(&[(TPM_ALG_SHA384, 48)]),
            events: vec![
                TcgPcrEvent2 {
                    pcr_index: 1,
                    event_type: 4,
                    digests: vec![TpmtHa {
                        hash_alg: TPM_ALG_SHA384,
                        digest: vec![7; 48],
                    }],
                    event: vec![0; 4],
                },
                TcgPcrEvent2 {
                    pcr_index: 2,
                    event_type: 0x8000_0007,
                    digests: vec![TpmtHa {
                        hash_alg: TPM_ALG_SHA384,
                        digest: vec![9; 48],
                    }],
                    event: b"x".to_vec(),
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_padding() {
        let log = sample();
        let mut bytes = log.to_bytes();
        assert_eq!(EventLog::parse(&bytes).unwrap(), log);
        bytes.extend_from_slice(&[0xFF; 64]);
        assert_eq!(EventLog::parse(&bytes).unwrap(), log);
    }

    #[test]
    fn every_truncation_is_a_clear_error() {
        let bytes = sample().to_bytes();
        let full = bytes.len();
        for n in 0..full {
            match EventLog::parse(&bytes[..n]) {
                // Cutting exactly at an event boundary yields a shorter, valid log.
                Ok(l) => assert!(l.events.len() < 2, "cut at {n}"),
                Err(e) => assert!(matches!(e, Error::Truncated { .. }), "cut at {n}: {e}"),
            }
        }
    }

    #[test]
    fn undeclared_algorithm_is_invalid() {
        let mut log = sample();
        log.events[0].digests[0].hash_alg = 0x000B;
        let err = EventLog::parse(&log.to_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Invalid {
                    field: "TPMT_HA.hashAlg",
                    event: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
