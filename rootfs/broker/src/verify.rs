//! TPM2 quote verification (pure): the agent's `QuoteEvidence` plus the nonce and reported PCRs
//! in, a verified attest or the first failed check out.
//!
//! Checks, in order: AK public is an ECC NIST P-256 restricted signing key with ECDSA-SHA256;
//! signature is ECDSA-SHA256 and verifies over the `TPMS_ATTEST` bytes; magic is
//! `TPM_GENERATED_VALUE`; type is `TPM_ST_ATTEST_QUOTE`; `qualifiedSigner` is the AK's Qualified Name as an
//! endorsement-hierarchy primary (the agent's template);
//! `extraData` equals the nonce; the selection is sha256-only; `pcrDigest` equals sha256 of the
//! reported PCR values concatenated in selection order.

use cvm_agent::protocol::QuoteEvidence;
use cvm_agent::tpm::attest::{
    name_sha256, pcr_digest_sha256, qualified_name_primary_sha256, Attest, EccPublic,
    EcdsaSignature,
};
use cvm_agent::tpm::commands::{
    TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN_ENCRYPT, TPM_ALG_ECDSA, TPM_ALG_SHA256,
    TPM_ECC_NIST_P256, TPM_GENERATED_VALUE, TPM_RH_ENDORSEMENT, TPM_ST_ATTEST_QUOTE,
};
use p256::ecdsa::signature::Verifier;
use std::collections::BTreeMap;

/// The first check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{field} is not valid hex")]
    Hex { field: &'static str },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    #[error("AK is not a P-256 restricted ECDSA-SHA256 signing key: {0}")]
    AkTemplate(String),
    #[error("quote signature does not verify with the AK")]
    Signature,
    #[error("attest magic {0:#x} is not TPM_GENERATED_VALUE")]
    Magic(u32),
    #[error("attest type {0:#x} is not TPM_ST_ATTEST_QUOTE")]
    Type(u16),
    #[error(
        "qualifiedSigner is not the Qualified Name of the AK as an endorsement-hierarchy primary"
    )]
    Signer,
    #[error("extraData does not match the nonce")]
    Nonce,
    #[error("quote selects bank {0:#x}; only sha256 is accepted")]
    Bank(u16),
    #[error("PCR {0} is quoted but not reported")]
    MissingPcr(u32),
    #[error("pcrDigest does not match the reported PCR values")]
    PcrDigest,
}

/// A quote that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedQuote {
    pub attest: Attest,
    /// PCR indices covered by the quote (sha256 bank).
    pub quoted_pcrs: Vec<u32>,
    /// sha256 of the AK public area, for pinning across boots.
    pub ak_name: Vec<u8>,
}

fn unhex(field: &'static str, s: &str) -> Result<Vec<u8>, VerifyError> {
    hex::decode(s).map_err(|_| VerifyError::Hex { field })
}

fn scalar(v: &[u8]) -> Result<[u8; 32], VerifyError> {
    let v = match v.len() {
        0..=32 => v,
        // A leading zero byte may pad a 33-byte value.
        33 if v[0] == 0 => &v[1..],
        n => {
            return Err(VerifyError::Parse {
                what: "ECDSA scalar",
                detail: format!("{n} bytes"),
            })
        }
    };
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// Verifies `quote` against `nonce` and the reported sha256 PCR values (index → hex).
pub fn verify_quote(
    quote: &QuoteEvidence,
    nonce: &[u8],
    reported_sha256: &BTreeMap<u32, String>,
) -> Result<VerifiedQuote, VerifyError> {
    let attest_bytes = unhex("attest", &quote.attest)?;
    let sig_bytes = unhex("signature", &quote.signature)?;
    let ak_bytes = unhex("ak_public", &quote.ak_public)?;

    let ak = EccPublic::parse(&ak_bytes).map_err(|e| VerifyError::Parse {
        what: "AK TPMT_PUBLIC",
        detail: e.to_string(),
    })?;
    let want = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    if ak.object_attributes & want != want {
        return Err(VerifyError::AkTemplate(format!(
            "attributes {:#x}",
            ak.object_attributes
        )));
    }
    if ak.curve_id != TPM_ECC_NIST_P256
        || ak.scheme != TPM_ALG_ECDSA
        || ak.scheme_hash != Some(TPM_ALG_SHA256)
    {
        return Err(VerifyError::AkTemplate(format!(
            "curve {:#x}, scheme {:#x}, hash {:?}",
            ak.curve_id, ak.scheme, ak.scheme_hash
        )));
    }
    if ak.name_alg != TPM_ALG_SHA256 {
        return Err(VerifyError::AkTemplate(format!(
            "nameAlg {:#x}",
            ak.name_alg
        )));
    }
    let mut point = vec![0x04];
    point.extend_from_slice(&scalar(&ak.x)?);
    point.extend_from_slice(&scalar(&ak.y)?);
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
        .map_err(|e| VerifyError::AkTemplate(format!("point not on P-256: {e}")))?;

    let sig = EcdsaSignature::parse(&sig_bytes).map_err(|e| VerifyError::Parse {
        what: "TPMT_SIGNATURE",
        detail: e.to_string(),
    })?;
    if sig.hash != TPM_ALG_SHA256 {
        return Err(VerifyError::Parse {
            what: "TPMT_SIGNATURE",
            detail: format!("hash {:#x}", sig.hash),
        });
    }
    let sig = p256::ecdsa::Signature::from_scalars(scalar(&sig.r)?, scalar(&sig.s)?)
        .map_err(|_| VerifyError::Signature)?;
    // ECDSA-SHA256: the verifier hashes the attest bytes with sha256, as the TPM did.
    key.verify(&attest_bytes, &sig)
        .map_err(|_| VerifyError::Signature)?;

    let attest = Attest::parse(&attest_bytes).map_err(|e| match e {
        cvm_agent::tpm::marshal::Error::Unexpected {
            what: "TPMS_ATTEST.type",
            value,
        } => VerifyError::Type(value as u16),
        e => VerifyError::Parse {
            what: "TPMS_ATTEST",
            detail: e.to_string(),
        },
    })?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(VerifyError::Magic(attest.magic));
    }
    if attest.attest_type != TPM_ST_ATTEST_QUOTE {
        return Err(VerifyError::Type(attest.attest_type));
    }
    let ak_name = name_sha256(&ak_bytes);
    if attest.qualified_signer != qualified_name_primary_sha256(TPM_RH_ENDORSEMENT, &ak_name) {
        return Err(VerifyError::Signer);
    }
    if attest.extra_data != nonce {
        return Err(VerifyError::Nonce);
    }
    let mut quoted = Vec::new();
    let mut values = Vec::new();
    for sel in &attest.pcr_select {
        if sel.hash != TPM_ALG_SHA256 {
            return Err(VerifyError::Bank(sel.hash));
        }
        for &p in &sel.pcrs {
            let idx = p as u32;
            let v = reported_sha256
                .get(&idx)
                .ok_or(VerifyError::MissingPcr(idx))?;
            values.push(unhex("pcr value", v)?);
            quoted.push(idx);
        }
    }
    if pcr_digest_sha256(values.iter().map(Vec::as_slice)).as_slice()
        != attest.pcr_digest.as_slice()
    {
        return Err(VerifyError::PcrDigest);
    }
    Ok(VerifiedQuote {
        attest,
        quoted_pcrs: quoted,
        ak_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_left_padded() {
        assert_eq!(scalar(&[1]).unwrap()[31], 1);
        assert_eq!(scalar(&[0; 33]).unwrap(), [0; 32]);
        assert!(scalar(&[1; 33]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let q = QuoteEvidence {
            attest: "00".into(),
            signature: "zz".into(),
            ak_public: "".into(),
        };
        assert_eq!(
            verify_quote(&q, &[0; 32], &BTreeMap::new()),
            Err(VerifyError::Hex { field: "signature" })
        );
        let q = QuoteEvidence {
            attest: "00".into(),
            signature: "00".into(),
            ak_public: "0023".into(),
        };
        assert!(matches!(
            verify_quote(&q, &[0; 32], &BTreeMap::new()),
            Err(VerifyError::Parse { .. })
        ));
    }
}
