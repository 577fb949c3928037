//! The few TPM 2.0 commands the agent needs, as pure builders and response parsers
//! (TPM 2.0 Library Part 3: TPM2_Startup §9.3, TPM2_CreatePrimary §24.1, TPM2_Quote §18.4,
//! TPM2_PCR_Read §22.4, TPM2_PCR_Extend §22.2, TPM2_FlushContext §28.4, TPM2_Shutdown §9.4).
//!
//! Authorisation is always the empty password session (`TPM_RS_PW`): the endorsement
//! hierarchy and the AK have empty auth on a fresh vTPM (swtpm, QEMU).

use super::marshal::{Error, Reader, Writer};

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;

pub const TPM_CC_STARTUP: u32 = 0x0000_0144;
pub const TPM_CC_SHUTDOWN: u32 = 0x0000_0145;
pub const TPM_CC_CREATE_PRIMARY: u32 = 0x0000_0131;
pub const TPM_CC_QUOTE: u32 = 0x0000_0158;
pub const TPM_CC_PCR_READ: u32 = 0x0000_017e;
pub const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
pub const TPM_CC_FLUSH_CONTEXT: u32 = 0x0000_0165;

pub const TPM_SU_CLEAR: u16 = 0x0000;
pub const TPM_RC_SUCCESS: u32 = 0;
/// TPM2_Startup when the TPM is already started.
pub const TPM_RC_INITIALIZE: u32 = 0x0000_0100;

pub const TPM_RS_PW: u32 = 0x4000_0009;
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000b;

pub const TPM_ALG_SHA256: u16 = 0x000b;
pub const TPM_ALG_SHA384: u16 = 0x000c;
pub const TPM_ALG_NULL: u16 = 0x0010;
pub const TPM_ALG_ECDSA: u16 = 0x0018;
pub const TPM_ALG_ECC: u16 = 0x0023;
pub const TPM_ECC_NIST_P256: u16 = 0x0003;

/// TPMA_OBJECT bits of the AK (Part 2 §8.3).
pub const TPMA_OBJECT_FIXED_TPM: u32 = 1 << 1;
pub const TPMA_OBJECT_FIXED_PARENT: u32 = 1 << 4;
pub const TPMA_OBJECT_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
pub const TPMA_OBJECT_USER_WITH_AUTH: u32 = 1 << 6;
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
pub const TPMA_OBJECT_SIGN_ENCRYPT: u32 = 1 << 18;
/// The AK template's attributes: a restricted signing key that never leaves the TPM
/// (the same set `tpm2_createak` uses, 0x00050072).
pub const AK_ATTRIBUTES: u32 = TPMA_OBJECT_FIXED_TPM
    | TPMA_OBJECT_FIXED_PARENT
    | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
    | TPMA_OBJECT_USER_WITH_AUTH
    | TPMA_OBJECT_RESTRICTED
    | TPMA_OBJECT_SIGN_ENCRYPT;

/// Largest response the agent accepts (TPM responses are well under 4 KiB).
pub const MAX_RESPONSE_BYTES: usize = 8192;

/// A `TPMS_PCR_SELECTION`: one bank and the PCR indices selected in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash: u16,
    /// Ascending, each < 24.
    pub pcrs: Vec<u8>,
}

impl PcrSelection {
    /// sha256 bank, PCRs 0..=9: what the agent quotes.
    pub fn sha256_0_to_9() -> Self {
        PcrSelection {
            hash: TPM_ALG_SHA256,
            pcrs: (0..=9).collect(),
        }
    }
}

/// Command failures from parsing a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    #[error("TPM returned response code {rc:#x} for command {command:#x}")]
    Code { command: u32, rc: u32 },
    #[error("response header: size field {field} but {actual} bytes received")]
    Size { field: u32, actual: usize },
    #[error(transparent)]
    Parse(#[from] Error),
}

fn command(tag: u16, code: u32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut inner = Writer::default();
    body(&mut inner);
    let mut w = Writer::default();
    let size = 10 + inner.buf.len() as u32;
    w.u16(tag).u32(size).u32(code).bytes(&inner.buf);
    w.buf
}

/// Authorisation area with one empty password session (Part 1 §19.6.4).
fn password_auth(w: &mut Writer) {
    // authorizationSize: handle(4) + nonce(2) + attributes(1) + hmac(2)
    w.u32(9).u32(TPM_RS_PW).tpm2b(&[]).u8(0).tpm2b(&[]);
}

/// Marshals a `TPML_PCR_SELECTION`.
pub fn write_pcr_selections(w: &mut Writer, sels: &[PcrSelection]) {
    w.u32(sels.len() as u32);
    for s in sels {
        let mut bitmap = [0u8; 3];
        for &p in &s.pcrs {
            bitmap[(p / 8) as usize % 3] |= 1 << (p % 8);
        }
        w.u16(s.hash).u8(3).bytes(&bitmap);
    }
}

/// Unmarshals a `TPML_PCR_SELECTION`.
pub fn read_pcr_selections(r: &mut Reader) -> Result<Vec<PcrSelection>, Error> {
    let count = r.u32("TPML_PCR_SELECTION.count")?;
    if count > 16 {
        return Err(Error::Unexpected {
            what: "TPML_PCR_SELECTION.count",
            value: count,
        });
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let hash = r.u16("TPMS_PCR_SELECTION.hash")?;
        let n = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
        // PCR indices are kept as u8: more than 32 bytes (256 PCRs) would wrap them.
        if n > 32 {
            return Err(Error::Unexpected {
                what: "TPMS_PCR_SELECTION.sizeofSelect",
                value: n.into(),
            });
        }
        let bitmap = r.take(n as usize, "TPMS_PCR_SELECTION.pcrSelect")?;
        let mut pcrs = Vec::new();
        for (byte_idx, b) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                if b & (1 << bit) != 0 {
                    pcrs.push((byte_idx * 8 + bit) as u8);
                }
            }
        }
        out.push(PcrSelection { hash, pcrs });
    }
    Ok(out)
}

/// TPM2_Startup(TPM_SU_CLEAR).
pub fn startup() -> Vec<u8> {
    command(TPM_ST_NO_SESSIONS, TPM_CC_STARTUP, |w| {
        w.u16(TPM_SU_CLEAR);
    })
}

/// TPM2_Shutdown(TPM_SU_CLEAR).
pub fn shutdown() -> Vec<u8> {
    command(TPM_ST_NO_SESSIONS, TPM_CC_SHUTDOWN, |w| {
        w.u16(TPM_SU_CLEAR);
    })
}

/// TPM2_PCR_Extend of one sha256 digest into `pcr`.
pub fn pcr_extend_sha256(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    command(TPM_ST_SESSIONS, TPM_CC_PCR_EXTEND, |w| {
        w.u32(pcr);
        password_auth(w);
        w.u32(1).u16(TPM_ALG_SHA256).bytes(digest);
    })
}

/// TPM2_PCR_Read of one selection (a TPM returns at most 8 digests per call).
pub fn pcr_read(sel: &PcrSelection) -> Vec<u8> {
    command(TPM_ST_NO_SESSIONS, TPM_CC_PCR_READ, |w| {
        write_pcr_selections(w, std::slice::from_ref(sel))
    })
}

/// The AK template: ECC NIST P-256, restricted signing, ECDSA-SHA256, nameAlg sha256,
/// empty authPolicy and unique (so the same hierarchy seed always yields the same key).
pub fn ak_template() -> Vec<u8> {
    let mut w = Writer::default();
    w.u16(TPM_ALG_ECC)
        .u16(TPM_ALG_SHA256)
        .u32(AK_ATTRIBUTES)
        .tpm2b(&[]) // authPolicy
        .u16(TPM_ALG_NULL) // symmetric
        .u16(TPM_ALG_ECDSA)
        .u16(TPM_ALG_SHA256) // scheme
        .u16(TPM_ECC_NIST_P256)
        .u16(TPM_ALG_NULL) // kdf
        .tpm2b(&[]) // unique.x
        .tpm2b(&[]); // unique.y
    w.buf
}

/// TPM2_CreatePrimary of the AK template under `hierarchy`.
pub fn create_primary_ak(hierarchy: u32) -> Vec<u8> {
    command(TPM_ST_SESSIONS, TPM_CC_CREATE_PRIMARY, |w| {
        w.u32(hierarchy);
        password_auth(w);
        // TPM2B_SENSITIVE_CREATE { userAuth: empty, data: empty }
        w.tpm2b_with(|w| {
            w.tpm2b(&[]).tpm2b(&[]);
        });
        w.tpm2b(&ak_template());
        w.tpm2b(&[]); // outsideInfo
        w.u32(0); // creationPCR: empty TPML_PCR_SELECTION
    })
}

/// TPM2_Quote with the key's own scheme over `sels`, `qualifying_data` ≤ 64 bytes.
///
/// # Panics
/// If `qualifying_data` is longer than 64 bytes ([`crate::protocol::parse_nonce`] checks this).
pub fn quote(key: u32, qualifying_data: &[u8], sels: &[PcrSelection]) -> Vec<u8> {
    assert!(
        qualifying_data.len() <= 64,
        "qualifyingData is a TPM2B_DATA (≤ 64 bytes)"
    );
    command(TPM_ST_SESSIONS, TPM_CC_QUOTE, |w| {
        w.u32(key);
        password_auth(w);
        w.tpm2b(qualifying_data);
        w.u16(TPM_ALG_NULL); // inScheme: use the key's scheme
        write_pcr_selections(w, sels);
    })
}

/// TPM2_FlushContext(handle).
pub fn flush_context(handle: u32) -> Vec<u8> {
    command(TPM_ST_NO_SESSIONS, TPM_CC_FLUSH_CONTEXT, |w| {
        w.u32(handle);
    })
}

/// Checks the response header; returns the response code and the bytes after the header.
pub fn split_response(resp: &[u8]) -> Result<(u32, &[u8]), ResponseError> {
    let mut r = Reader::new(resp);
    let _tag = r.u16("response tag")?;
    let size = r.u32("response size")?;
    let rc = r.u32("response code")?;
    if size as usize != resp.len() {
        return Err(ResponseError::Size {
            field: size,
            actual: resp.len(),
        });
    }
    Ok((rc, &resp[10..]))
}

fn success_body(command: u32, resp: &[u8]) -> Result<&[u8], ResponseError> {
    match split_response(resp)? {
        (TPM_RC_SUCCESS, body) => Ok(body),
        (rc, _) => Err(ResponseError::Code { command, rc }),
    }
}

/// Parameters of a response with sessions: skips `parameterSize`, returns exactly the parameters.
fn session_params<'a>(r: &mut Reader<'a>) -> Result<Reader<'a>, Error> {
    let n = r.u32("parameterSize")?;
    Ok(Reader::new(r.take(n as usize, "response parameters")?))
}

/// TPM2_CreatePrimary response: the object handle and the marshalled `TPMT_PUBLIC`.
pub fn parse_create_primary(resp: &[u8]) -> Result<(u32, Vec<u8>), ResponseError> {
    let mut r = Reader::new(success_body(TPM_CC_CREATE_PRIMARY, resp)?);
    let handle = r.u32("objectHandle")?;
    let mut p = session_params(&mut r)?;
    let public = p.tpm2b("outPublic")?.to_vec();
    Ok((handle, public))
}

/// TPM2_Quote response: the `TPMS_ATTEST` bytes and the marshalled `TPMT_SIGNATURE`.
pub fn parse_quote(resp: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ResponseError> {
    let mut r = Reader::new(success_body(TPM_CC_QUOTE, resp)?);
    let mut p = session_params(&mut r)?;
    let attest = p.tpm2b("quoted")?.to_vec();
    // Walk the TPMT_SIGNATURE to bound it, then keep its bytes verbatim.
    let rest = p.take(p.remaining(), "signature")?;
    let mut s = Reader::new(rest);
    super::attest::EcdsaSignature::read(&mut s)?;
    Ok((attest, rest[..s.offset()].to_vec()))
}

/// TPM2_PCR_Read response: the selection actually read and the digests in selection order.
pub fn parse_pcr_read(resp: &[u8]) -> Result<(Vec<PcrSelection>, Vec<Vec<u8>>), ResponseError> {
    let mut r = Reader::new(success_body(TPM_CC_PCR_READ, resp)?);
    let _update_counter = r.u32("pcrUpdateCounter")?;
    let sels = read_pcr_selections(&mut r)?;
    let count = r.u32("TPML_DIGEST.count")?;
    if count > 8 {
        return Err(Error::Unexpected {
            what: "TPML_DIGEST.count",
            value: count,
        }
        .into());
    }
    let mut digests = Vec::new();
    for _ in 0..count {
        digests.push(r.tpm2b("TPM2B_DIGEST")?.to_vec());
    }
    Ok((sels, digests))
}

/// Checks a response that carries no parameters the agent needs.
pub fn check_success(command: u32, resp: &[u8]) -> Result<(), ResponseError> {
    success_body(command, resp).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_bytes() {
        assert_eq!(
            startup(),
            [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0]
        );
        assert_eq!(
            shutdown(),
            [0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x45, 0, 0]
        );
    }

    #[test]
    fn pcr_selection_bitmap_round_trip() {
        let mut w = Writer::default();
        write_pcr_selections(&mut w, &[PcrSelection::sha256_0_to_9()]);
        assert_eq!(w.buf, [0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0x03, 0]);
        let got = read_pcr_selections(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(got, vec![PcrSelection::sha256_0_to_9()]);
    }

    #[test]
    fn pcr_selection_wider_than_u8_indices_is_refused() {
        // sizeofSelect 33: bit 0 of byte 32 would be PCR 256, read back as PCR 0.
        let mut w = Writer::default();
        w.u32(1).u16(TPM_ALG_SHA256).u8(33).bytes(&[0; 32]).u8(1);
        assert_eq!(
            read_pcr_selections(&mut Reader::new(&w.buf)),
            Err(Error::Unexpected {
                what: "TPMS_PCR_SELECTION.sizeofSelect",
                value: 33
            })
        );
        let mut w = Writer::default();
        w.u32(1).u16(TPM_ALG_SHA256).u8(32).bytes(&[0; 31]).u8(0x80);
        let got = read_pcr_selections(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(got[0].pcrs, [255]);
    }

    #[test]
    fn create_primary_layout() {
        let cmd = create_primary_ak(TPM_RH_ENDORSEMENT);
        let size = u32::from_be_bytes(cmd[2..6].try_into().unwrap()) as usize;
        assert_eq!(size, cmd.len());
        assert_eq!(&cmd[6..10], &TPM_CC_CREATE_PRIMARY.to_be_bytes());
        assert_eq!(&cmd[10..14], &TPM_RH_ENDORSEMENT.to_be_bytes());
        // auth area: size 9, TPM_RS_PW, empty nonce, attrs 0, empty hmac
        assert_eq!(&cmd[14..27], &[0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
        // TPM2B_SENSITIVE_CREATE of 4 bytes
        assert_eq!(&cmd[27..33], &[0, 4, 0, 0, 0, 0]);
        let tmpl = ak_template();
        assert_eq!(&cmd[33..35], &(tmpl.len() as u16).to_be_bytes());
        assert_eq!(&tmpl[4..8], &0x0005_0072u32.to_be_bytes());
    }

    #[test]
    fn quote_carries_nonce_and_selection() {
        let nonce = [0xaa; 32];
        let cmd = quote(0x8000_0000, &nonce, &[PcrSelection::sha256_0_to_9()]);
        assert_eq!(&cmd[10..14], &0x8000_0000u32.to_be_bytes());
        assert_eq!(&cmd[27..29], &[0, 32]);
        assert_eq!(&cmd[29..61], &nonce);
        assert_eq!(&cmd[61..63], &TPM_ALG_NULL.to_be_bytes());
        assert_eq!(&cmd[63..], &[0, 0, 0, 1, 0, 0x0b, 3, 0xff, 0x03, 0]);
    }

    #[test]
    fn error_code_is_reported() {
        let resp = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
        assert_eq!(
            parse_quote(&resp),
            Err(ResponseError::Code {
                command: TPM_CC_QUOTE,
                rc: 0x101
            })
        );
    }

    #[test]
    fn pcr_read_response_parses() {
        let mut w = Writer::default();
        w.u32(5);
        write_pcr_selections(
            &mut w,
            &[PcrSelection {
                hash: TPM_ALG_SHA256,
                pcrs: vec![0, 9],
            }],
        );
        w.u32(2).tpm2b(&[1; 32]).tpm2b(&[2; 32]);
        let mut resp = Writer::default();
        resp.u16(TPM_ST_NO_SESSIONS)
            .u32(10 + w.buf.len() as u32)
            .u32(0)
            .bytes(&w.buf);
        let (sels, digests) = parse_pcr_read(&resp.buf).unwrap();
        assert_eq!(sels[0].pcrs, [0, 9]);
        assert_eq!(digests, [vec![1; 32], vec![2; 32]]);
    }

    /// Deterministic xorshift so the test needs no `rand` dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_responses_never_panic() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000 {
            let len = (xorshift(&mut s) % 200) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| xorshift(&mut s) as u8).collect();
            // Make half of them pass the header checks so the body parsers are exercised.
            if round % 2 == 0 && buf.len() >= 10 {
                let n = buf.len() as u32;
                buf[2..6].copy_from_slice(&n.to_be_bytes());
                buf[6..10].copy_from_slice(&[0; 4]);
            }
            let _ = parse_quote(&buf);
            let _ = parse_create_primary(&buf);
            let _ = parse_pcr_read(&buf);
            let _ = super::super::attest::Attest::parse(&buf);
            let _ = super::super::attest::EccPublic::parse(&buf);
        }
    }
}
