//! Key-release policy (pure): the reported PCRs must equal the reference values, and every
//! reference PCR must be covered by the verified quote (an unquoted value proves nothing).

use std::collections::BTreeMap;

/// Why a key is refused; `Display` is what the agent sees in `refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("PCR {pcr} is {actual}, reference value is {expected}")]
    PcrMismatch {
        pcr: u32,
        expected: String,
        actual: String,
    },
    #[error("PCR {pcr} has a reference value but was not reported")]
    PcrMissing { pcr: u32 },
    #[error("PCR {pcr} has a reference value but is not covered by the quote")]
    PcrNotQuoted { pcr: u32 },
}

/// Reference values: PCR index → lowercase hex (sha256 bank), e.g. from the manifest.
pub type ReferencePcrs = BTreeMap<u32, String>;

/// Parses `{"0":"hex",...}` (the manifest's PCR map).
pub fn parse_reference(json: &str) -> anyhow::Result<ReferencePcrs> {
    let raw: BTreeMap<String, String> = serde_json::from_str(json)?;
    raw.into_iter()
        .map(|(k, v)| {
            let idx: u32 = k
                .parse()
                .map_err(|_| anyhow::format_err!("PCR index {k:?} is not a number"))?;
            let bytes =
                hex::decode(&v).map_err(|_| anyhow::format_err!("PCR {idx} value is not hex"))?;
            anyhow::ensure!(
                bytes.len() == 32,
                "PCR {idx} value is {} bytes, expected 32 (sha256)",
                bytes.len()
            );
            Ok((idx, hex::encode(bytes)))
        })
        .collect()
}

/// Checks PCRs in ascending index order; the first difference is returned.
pub fn check_reference(
    reference: &ReferencePcrs,
    reported: &BTreeMap<u32, String>,
    quoted: &[u32],
) -> Result<(), Refusal> {
    for (&pcr, expected) in reference {
        let actual = reported.get(&pcr).ok_or(Refusal::PcrMissing { pcr })?;
        if !quoted.contains(&pcr) {
            return Err(Refusal::PcrNotQuoted { pcr });
        }
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Refusal::PcrMismatch {
                pcr,
                expected: expected.clone(),
                actual: actual.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[(u32, &str)]) -> BTreeMap<u32, String> {
        v.iter().map(|(k, s)| (*k, s.repeat(32))).collect()
    }

    #[test]
    fn first_differing_pcr_is_named() {
        let reference = map(&[(0, "00"), (4, "44"), (9, "99")]);
        let reported = map(&[(0, "00"), (4, "45"), (9, "98")]);
        let r = check_reference(&reference, &reported, &[0, 4, 9]).unwrap_err();
        assert!(matches!(r, Refusal::PcrMismatch { pcr: 4, .. }));
        assert!(r.to_string().starts_with("PCR 4 is 4545"), "{r}");
    }

    #[test]
    fn equal_values_pass_and_unquoted_fail() {
        let reference = map(&[(0, "00"), (9, "99")]);
        assert_eq!(
            check_reference(
                &reference,
                &map(&[(0, "00"), (9, "99"), (10, "aa")]),
                &[0, 9]
            ),
            Ok(())
        );
        assert_eq!(
            check_reference(&reference, &map(&[(0, "00"), (9, "99")]), &[0]),
            Err(Refusal::PcrNotQuoted { pcr: 9 })
        );
        assert_eq!(
            check_reference(&reference, &map(&[(0, "00")]), &[0, 9]),
            Err(Refusal::PcrMissing { pcr: 9 })
        );
    }

    #[test]
    fn reference_json() {
        let r = parse_reference(&format!(r#"{{"4":"{}"}}"#, "AB".repeat(32))).unwrap();
        assert_eq!(r[&4], "ab".repeat(32));
        assert!(parse_reference(r#"{"x":"00"}"#).is_err());
        assert!(parse_reference(r#"{"1":"00"}"#).is_err());
    }
}
