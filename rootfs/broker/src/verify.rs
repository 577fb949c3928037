//! TPM2 quote verification (pure): the agent's `QuoteEvidence` plus the enrolled AK, the nonce
//! and the reported PCRs in, a verified attest or the first failed check out.
//!
//! Checks, in order: the quote's AK public is byte for byte the enrolled one (read from the TPM
//! before the guest ran: a quote signed by any other key proves nothing); it is an ECC NIST
//! P-256 restricted signing key with ECDSA-SHA256; the signature is ECDSA-SHA256 and verifies
//! over the `TPMS_ATTEST` bytes; magic is `TPM_GENERATED_VALUE`; type is `TPM_ST_ATTEST_QUOTE`;
//! `qualifiedSigner` is the AK's Qualified Name as an endorsement-hierarchy primary (the
//! agent's template); `extraData` equals the nonce; the selection is sha256-only; `pcrDigest`
//! equals sha256 of the reported PCR values concatenated in selection order.

use cvm_agent::protocol::QuoteEvidence;
use cvm_agent::tpm::attest::{
    name_sha256, pcr_digest_sha256, qualified_name_primary_sha256, Attest, EccPublic,
    EcdsaSignature,
};
use cvm_agent::tpm::commands::{
    TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN_ENCRYPT, TPM_ALG_ECDSA, TPM_ALG_SHA256,
    TPM_ECC_NIST_P256, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
};
use cvm_agent::tpm::AK_HIERARCHY;
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
    #[error(
        "quote signed by an AK that was not enrolled: its Name is {name}, the enrolled AK's is \
         {enrolled}"
    )]
    NotEnrolled { name: String, enrolled: String },
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
    /// The AK's Name (`nameAlg || sha256(TPMT_PUBLIC)`), i.e. the enrolled AK's.
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

/// Verifies `quote` against the enrolled AK (hex `TPMT_PUBLIC`, the encoding of
/// `QuoteEvidence::ak_public`), `nonce` and the reported sha256 PCR values (index → hex).
pub fn verify_quote(
    quote: &QuoteEvidence,
    enrolled_ak: &str,
    nonce: &[u8],
    reported_sha256: &BTreeMap<u32, String>,
) -> Result<VerifiedQuote, VerifyError> {
    let attest_bytes = unhex("attest", &quote.attest)?;
    let sig_bytes = unhex("signature", &quote.signature)?;
    let ak_bytes = unhex("ak_public", &quote.ak_public)?;
    let enrolled = unhex("enrolled AK", enrolled_ak)?;
    if ak_bytes != enrolled {
        return Err(VerifyError::NotEnrolled {
            name: hex::encode(name_sha256(&ak_bytes)),
            enrolled: hex::encode(name_sha256(&enrolled)),
        });
    }

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
    if attest.qualified_signer != qualified_name_primary_sha256(AK_HIERARCHY, &ak_name) {
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
            verify_quote(&q, "", &[0; 32], &BTreeMap::new()),
            Err(VerifyError::Hex { field: "signature" })
        );
        let q = QuoteEvidence {
            attest: "00".into(),
            signature: "00".into(),
            ak_public: "0023".into(),
        };
        assert!(matches!(
            verify_quote(&q, "0023", &[0; 32], &BTreeMap::new()),
            Err(VerifyError::Parse { .. })
        ));
        assert_eq!(
            verify_quote(&q, "0023zz", &[0; 32], &BTreeMap::new()),
            Err(VerifyError::Hex {
                field: "enrolled AK"
            })
        );
    }

    /// A quote exactly as a TPM would make it, signed by a software P-256 key (`secret`):
    /// its `TPMT_PUBLIC` (the AK template with the key as `unique`), the `TPMS_ATTEST` and
    /// the `TPMT_SIGNATURE`.
    fn software_quote(secret: u8, nonce: &[u8], pcrs: &BTreeMap<u32, String>) -> QuoteEvidence {
        use cvm_agent::tpm::commands::{
            ak_template, write_pcr_selections, PcrSelection, TPM_ALG_ECDSA,
        };
        use cvm_agent::tpm::marshal::Writer;
        use p256::ecdsa::signature::Signer;
        let key = p256::ecdsa::SigningKey::from_bytes(&[secret; 32].into()).unwrap();
        let point = key.verifying_key().to_encoded_point(false);
        let mut public = ak_template();
        public.truncate(public.len() - 4); // the empty unique.x and unique.y
        let mut w = Writer { buf: public };
        w.tpm2b(point.x().unwrap()).tpm2b(point.y().unwrap());
        let public = w.buf;

        let sel = PcrSelection::sha256_0_to_9();
        let values: Vec<Vec<u8>> = sel
            .pcrs
            .iter()
            .map(|p| hex::decode(&pcrs[&(*p as u32)]).unwrap())
            .collect();
        let mut a = Writer::default();
        a.u32(TPM_GENERATED_VALUE)
            .u16(TPM_ST_ATTEST_QUOTE)
            .tpm2b(&qualified_name_primary_sha256(
                AK_HIERARCHY,
                &name_sha256(&public),
            ))
            .tpm2b(nonce);
        a.u32(0).u32(1000).u32(1).u32(0).u8(1).u32(0).u32(0); // clock info, firmware
        write_pcr_selections(&mut a, &[sel]);
        a.tpm2b(&pcr_digest_sha256(values.iter().map(Vec::as_slice)));
        let sig: p256::ecdsa::Signature = key.sign(&a.buf);
        let mut s = Writer::default();
        s.u16(TPM_ALG_ECDSA)
            .u16(TPM_ALG_SHA256)
            .tpm2b(&sig.r().to_bytes())
            .tpm2b(&sig.s().to_bytes());
        QuoteEvidence {
            attest: hex::encode(&a.buf),
            signature: hex::encode(&s.buf),
            ak_public: hex::encode(&public),
        }
    }

    #[test]
    fn quote_signed_by_another_key_is_refused() {
        let nonce = [0x33; 32];
        let pcrs: BTreeMap<u32, String> = (0..10)
            .map(|i| (i, format!("{i:02x}").repeat(32)))
            .collect();
        let enrolled = software_quote(1, &nonce, &pcrs).ak_public;
        // Control: the enrolled key's quote passes every check, so the forgery below differs
        // in nothing but the key.
        let ok = verify_quote(&software_quote(1, &nonce, &pcrs), &enrolled, &nonce, &pcrs).unwrap();
        assert_eq!(ok.quoted_pcrs, (0..10).collect::<Vec<u32>>());
        assert_eq!(ok.ak_name, name_sha256(&hex::decode(&enrolled).unwrap()));
        // Uppercase hex is the same enrolled key.
        assert!(verify_quote(
            &software_quote(1, &nonce, &pcrs),
            &enrolled.to_uppercase(),
            &nonce,
            &pcrs
        )
        .is_ok());

        // An attacker's own key signs the same PCRs and nonce: a valid quote, but not by the AK.
        let forged = software_quote(2, &nonce, &pcrs);
        let err = verify_quote(&forged, &enrolled, &nonce, &pcrs).unwrap_err();
        assert!(matches!(err, VerifyError::NotEnrolled { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("quote signed by an AK that was not enrolled: its Name is 000b"),
            "{msg}"
        );
        assert!(
            msg.contains(&hex::encode(name_sha256(&hex::decode(&enrolled).unwrap()))),
            "{msg}"
        );

        // The enrolled AK claimed with another key's signature still fails on the signature.
        let mut claimed = forged;
        claimed.ak_public = enrolled.clone();
        assert_eq!(
            verify_quote(&claimed, &enrolled, &nonce, &pcrs).map(|_| ()),
            Err(VerifyError::Signature)
        );
    }
}
