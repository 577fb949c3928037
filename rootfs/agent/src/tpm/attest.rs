//! Parsers for what a quote consists of: `TPMS_ATTEST` (Part 2 §10.12.12), `TPMT_SIGNATURE`
//! with ECDSA (§11.3.4), and an ECC `TPMT_PUBLIC` (§12.2.4), plus the object Name (Part 1 §16).
//! Pure and panic-free on any input; shared by the agent (bounds) and the broker (verification).

use super::commands::{
    read_pcr_selections, PcrSelection, TPM_ALG_ECC, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_SHA256,
};
use super::marshal::{Error, Reader};
use sha2::{Digest, Sha256};

/// `TPMS_ATTEST` of type `TPM_ST_ATTEST_QUOTE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    pub magic: u32,
    pub attest_type: u16,
    pub qualified_signer: Vec<u8>,
    pub extra_data: Vec<u8>,
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: u8,
    pub firmware_version: u64,
    /// `TPMS_QUOTE_INFO.pcrSelect`.
    pub pcr_select: Vec<PcrSelection>,
    /// `TPMS_QUOTE_INFO.pcrDigest`.
    pub pcr_digest: Vec<u8>,
}

impl Attest {
    /// Parses a quote's `TPMS_ATTEST`; any other attestation type is an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("TPMS_ATTEST.magic")?;
        let attest_type = r.u16("TPMS_ATTEST.type")?;
        if attest_type != super::commands::TPM_ST_ATTEST_QUOTE {
            return Err(Error::Unexpected {
                what: "TPMS_ATTEST.type",
                value: attest_type as u32,
            });
        }
        let qualified_signer = r.tpm2b("TPMS_ATTEST.qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b("TPMS_ATTEST.extraData")?.to_vec();
        let clock = r.u64("TPMS_CLOCK_INFO.clock")?;
        let reset_count = r.u32("TPMS_CLOCK_INFO.resetCount")?;
        let restart_count = r.u32("TPMS_CLOCK_INFO.restartCount")?;
        let safe = r.u8("TPMS_CLOCK_INFO.safe")?;
        let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
        let pcr_select = read_pcr_selections(&mut r)?;
        let pcr_digest = r.tpm2b("TPMS_QUOTE_INFO.pcrDigest")?.to_vec();
        r.finish("TPMS_ATTEST")?;
        Ok(Attest {
            magic,
            attest_type,
            qualified_signer,
            extra_data,
            clock,
            reset_count,
            restart_count,
            safe,
            firmware_version,
            pcr_select,
            pcr_digest,
        })
    }
}

/// `TPMT_SIGNATURE` with `sigAlg = TPM_ALG_ECDSA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaSignature {
    pub hash: u16,
    pub r: Vec<u8>,
    pub s: Vec<u8>,
}

impl EcdsaSignature {
    pub fn read(r: &mut Reader) -> Result<Self, Error> {
        let alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
        if alg != TPM_ALG_ECDSA {
            return Err(Error::Unexpected {
                what: "TPMT_SIGNATURE.sigAlg",
                value: alg as u32,
            });
        }
        let hash = r.u16("TPMS_SIGNATURE_ECDSA.hash")?;
        let sr = r.tpm2b("TPMS_SIGNATURE_ECDSA.signatureR")?.to_vec();
        let ss = r.tpm2b("TPMS_SIGNATURE_ECDSA.signatureS")?.to_vec();
        Ok(EcdsaSignature { hash, r: sr, s: ss })
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let sig = Self::read(&mut r)?;
        r.finish("TPMT_SIGNATURE")?;
        Ok(sig)
    }
}

/// An ECC `TPMT_PUBLIC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EccPublic {
    pub name_alg: u16,
    pub object_attributes: u32,
    pub auth_policy: Vec<u8>,
    pub symmetric: u16,
    pub scheme: u16,
    pub scheme_hash: Option<u16>,
    pub curve_id: u16,
    pub kdf: u16,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

impl EccPublic {
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let alg = r.u16("TPMT_PUBLIC.type")?;
        if alg != TPM_ALG_ECC {
            return Err(Error::Unexpected {
                what: "TPMT_PUBLIC.type",
                value: alg as u32,
            });
        }
        let name_alg = r.u16("TPMT_PUBLIC.nameAlg")?;
        let object_attributes = r.u32("TPMT_PUBLIC.objectAttributes")?;
        let auth_policy = r.tpm2b("TPMT_PUBLIC.authPolicy")?.to_vec();
        let symmetric = r.u16("TPMS_ECC_PARMS.symmetric")?;
        if symmetric != TPM_ALG_NULL {
            r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?;
            r.u16("TPMT_SYM_DEF_OBJECT.mode")?;
        }
        let scheme = r.u16("TPMS_ECC_PARMS.scheme")?;
        let scheme_hash = if scheme != TPM_ALG_NULL {
            Some(r.u16("TPMT_ECC_SCHEME.hashAlg")?)
        } else {
            None
        };
        let curve_id = r.u16("TPMS_ECC_PARMS.curveID")?;
        let kdf = r.u16("TPMS_ECC_PARMS.kdf")?;
        if kdf != TPM_ALG_NULL {
            r.u16("TPMT_KDF_SCHEME.hashAlg")?;
        }
        let x = r.tpm2b("TPMS_ECC_POINT.x")?.to_vec();
        let y = r.tpm2b("TPMS_ECC_POINT.y")?.to_vec();
        r.finish("TPMT_PUBLIC")?;
        Ok(EccPublic {
            name_alg,
            object_attributes,
            auth_policy,
            symmetric,
            scheme,
            scheme_hash,
            curve_id,
            kdf,
            x,
            y,
        })
    }
}

/// The TPM Name of an object whose nameAlg is sha256: `nameAlg || sha256(TPMT_PUBLIC)`.
pub fn name_sha256(public: &[u8]) -> Vec<u8> {
    let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public));
    name
}

/// The Qualified Name of a primary object (Part 1 §16.6): `nameAlg || sha256(QN(hierarchy) ||
/// Name)`, where a hierarchy's QN is its handle. `TPMS_ATTEST.qualifiedSigner` carries this.
pub fn qualified_name_primary_sha256(hierarchy: u32, name: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(hierarchy.to_be_bytes());
    h.update(name);
    let mut qn = TPM_ALG_SHA256.to_be_bytes().to_vec();
    qn.extend_from_slice(&h.finalize());
    qn
}

/// `pcrDigest` as the TPM computes it: sha256 over the PCR values concatenated in selection order.
pub fn pcr_digest_sha256<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in values {
        h.update(v);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::commands::{
        ak_template, write_pcr_selections, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE,
    };
    use crate::tpm::marshal::Writer;

    #[test]
    fn ak_template_parses_as_ecc_public() {
        let p = EccPublic::parse(&ak_template()).unwrap();
        assert_eq!(p.curve_id, 3);
        assert_eq!(p.scheme, TPM_ALG_ECDSA);
        assert_eq!(p.scheme_hash, Some(TPM_ALG_SHA256));
        assert!(p.x.is_empty());
    }

    #[test]
    fn attest_round_trip() {
        let mut w = Writer::default();
        w.u32(TPM_GENERATED_VALUE)
            .u16(TPM_ST_ATTEST_QUOTE)
            .tpm2b(&[0, 0x0b, 1])
            .tpm2b(&[7; 32]);
        w.u32(0).u32(42).u32(1).u32(2).u8(1).u32(0).u32(3);
        write_pcr_selections(&mut w, &[PcrSelection::sha256_0_to_9()]);
        w.tpm2b(&[9; 32]);
        let a = Attest::parse(&w.buf).unwrap();
        assert_eq!(a.clock, 42);
        assert_eq!(a.firmware_version, 3);
        assert_eq!(a.extra_data, vec![7; 32]);
        assert_eq!(a.pcr_select, vec![PcrSelection::sha256_0_to_9()]);
        let mut long = w.buf.clone();
        long.push(0);
        assert!(matches!(Attest::parse(&long), Err(Error::Trailing { .. })));
    }

    #[test]
    fn pcr_digest_known_answer() {
        // sha256 of 64 zero bytes (two all-zero PCRs).
        let z = [0u8; 32];
        assert_eq!(
            hex::encode(pcr_digest_sha256([&z[..], &z[..]])),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
    }
}
