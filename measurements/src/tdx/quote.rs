//! TDX quotes (Intel "TDX DCAP Quote Generation Library and Quote Verification Library" API,
//! quote format v4 §A.3 and v5 §A.4): the 48-byte header and the TD report body with MRTD,
//! RTMR0..3 and REPORTDATA. Signatures are not checked here (that is the verifier's job); this
//! is for comparing predicted registers with a quote.

use super::Sha384;

/// `Quote Header.TEE Type` for TDX.
pub const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// Header bytes.
pub const QUOTE_HEADER_BYTES: usize = 48;
/// TD report body bytes for TDX 1.0 (`TD_QUOTE_BODY`, v4 / v5 body type 2).
pub const TD_REPORT_BODY_BYTES: usize = 584;

/// Errors from quote parsing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("quote truncated: {what} needs {need} bytes at offset {offset}, quote has {have}")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("quote field {field} at offset {offset}: {problem}")]
    Invalid {
        field: &'static str,
        offset: usize,
        problem: String,
    },
}

/// `Quote Header` (48 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteHeader {
    pub version: u16,
    pub attestation_key_type: u16,
    pub tee_type: u32,
    pub qe_svn: u16,
    pub pce_svn: u16,
    pub qe_vendor_id: [u8; 16],
    pub user_data: [u8; 20],
}

/// `TD Quote Body` / TD report body (TDX 1.0 fields; a TDX 1.5 body adds `TEE_TCB_SVN2` and
/// `MRSERVICETD` after these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReportBody {
    pub tee_tcb_svn: [u8; 16],
    pub mr_seam: Sha384,
    pub mr_signer_seam: Sha384,
    pub seam_attributes: [u8; 8],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mr_td: Sha384,
    pub mr_config_id: Sha384,
    pub mr_owner: Sha384,
    pub mr_owner_config: Sha384,
    pub rtmr: [Sha384; 4],
    pub report_data: [u8; 64],
}

/// A parsed TDX quote (header and body; signature data left as bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdxQuote {
    pub header: QuoteHeader,
    pub body: TdReportBody,
    /// `Quote Signature Data` (with its length prefix stripped), unparsed.
    pub signature_data: Vec<u8>,
}

struct R<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Error> {
        let s = self.d.get(self.pos..self.pos + N).ok_or(Error::Truncated {
            what,
            offset: self.pos,
            need: N,
            have: self.d.len(),
        })?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Error> {
        self.take::<2>(what).map(u16::from_le_bytes)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Error> {
        self.take::<4>(what).map(u32::from_le_bytes)
    }
}

impl TdxQuote {
    /// Parse a v4 or v5 TDX quote.
    pub fn parse(data: &[u8]) -> Result<TdxQuote, Error> {
        let mut r = R { d: data, pos: 0 };
        let header = QuoteHeader {
            version: r.u16("header.version")?,
            attestation_key_type: r.u16("header.att_key_type")?,
            tee_type: r.u32("header.tee_type")?,
            qe_svn: r.u16("header.qe_svn")?,
            pce_svn: r.u16("header.pce_svn")?,
            qe_vendor_id: r.take("header.qe_vendor_id")?,
            user_data: r.take("header.user_data")?,
        };
        if header.tee_type != TEE_TYPE_TDX {
            return Err(Error::Invalid {
                field: "header.tee_type",
                offset: 4,
                problem: format!("{:#x} is not TDX (0x81)", header.tee_type),
            });
        }
        let body_len = match header.version {
            4 => TD_REPORT_BODY_BYTES,
            5 => {
                let ty = r.u16("v5 body type")?;
                let size = r.u32("v5 body size")? as usize;
                match ty {
                    2 | 3 if size >= TD_REPORT_BODY_BYTES => size,
                    _ => {
                        return Err(Error::Invalid {
                            field: "v5 body type",
                            offset: QUOTE_HEADER_BYTES,
                            problem: format!(
                                "type {ty} size {size} is not a TDX 1.0/1.5 report body"
                            ),
                        })
                    }
                }
            }
            v => {
                return Err(Error::Invalid {
                    field: "header.version",
                    offset: 0,
                    problem: format!("quote version {v} (only 4 and 5 are TDX quotes)"),
                })
            }
        };
        let body_start = r.pos;
        if data.len() < body_start + body_len {
            return Err(Error::Truncated {
                what: "TD report body",
                offset: body_start,
                need: body_len,
                have: data.len(),
            });
        }
        let body = TdReportBody {
            tee_tcb_svn: r.take("tee_tcb_svn")?,
            mr_seam: r.take("mr_seam")?,
            mr_signer_seam: r.take("mr_signer_seam")?,
            seam_attributes: r.take("seam_attributes")?,
            td_attributes: r.take("td_attributes")?,
            xfam: r.take("xfam")?,
            mr_td: r.take("mr_td")?,
            mr_config_id: r.take("mr_config_id")?,
            mr_owner: r.take("mr_owner")?,
            mr_owner_config: r.take("mr_owner_config")?,
            rtmr: [
                r.take("rtmr0")?,
                r.take("rtmr1")?,
                r.take("rtmr2")?,
                r.take("rtmr3")?,
            ],
            report_data: r.take("report_data")?,
        };
        r.pos = body_start + body_len;
        let sig_len = r.u32("signature data length")? as usize;
        let signature_data = data
            .get(r.pos..r.pos + sig_len)
            .ok_or(Error::Truncated {
                what: "signature data",
                offset: r.pos,
                need: sig_len,
                have: data.len(),
            })?
            .to_vec();
        Ok(TdxQuote {
            header,
            body,
            signature_data,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic v4 quote with distinct register bytes (RTMRn filled with 0x10 + n).
    pub(crate) fn synth_v4() -> Vec<u8> {
        let mut q = vec![0u8; QUOTE_HEADER_BYTES + TD_REPORT_BODY_BYTES + 4 + 8];
        q[0..2].copy_from_slice(&4u16.to_le_bytes());
        q[2..4].copy_from_slice(&2u16.to_le_bytes());
        q[4..8].copy_from_slice(&TEE_TYPE_TDX.to_le_bytes());
        q[184..232].fill(0xAA); // MRTD, absolute offset 184 (tdx-measure.md §1)
        for n in 0..4 {
            let o = 48 + 328 + 48 * n;
            q[o..o + 48].fill(0x10 + n as u8);
        }
        q[48 + 520..48 + 584].fill(0x55);
        q[632..636].copy_from_slice(&8u32.to_le_bytes());
        q
    }

    #[test]
    fn parses_offsets() {
        let q = TdxQuote::parse(&synth_v4()).unwrap();
        assert_eq!(q.body.mr_td, [0xAA; 48]);
        assert_eq!(q.body.rtmr[0], [0x10; 48]);
        assert_eq!(q.body.rtmr[3], [0x13; 48]);
        assert_eq!(q.body.report_data, [0x55; 64]);
        assert_eq!(q.signature_data.len(), 8);
    }

    #[test]
    fn truncated_or_wrong_quotes_are_errors() {
        let q = synth_v4();
        for n in [0, 10, 47, 48, 200, 631, 635, 639] {
            assert!(
                matches!(TdxQuote::parse(&q[..n]), Err(Error::Truncated { .. })),
                "{n}"
            );
        }
        let mut bad = q.clone();
        bad[4] = 0;
        assert!(matches!(
            TdxQuote::parse(&bad),
            Err(Error::Invalid {
                field: "header.tee_type",
                ..
            })
        ));
    }
}
